"""The notebooks' steps: one module per notebook, each using services, renderers and figures, never another step."""
