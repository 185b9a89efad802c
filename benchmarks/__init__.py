"""Performance measurements of the runbooks themselves (not timed tests): ``python -m benchmarks``."""
