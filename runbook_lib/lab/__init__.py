"""The lab: a simulated Talos + Kubernetes + LINSTOR cluster served on 127.0.0.1.

Production code never imports this package. The library reaches the lab the way it
reaches a real cluster: through a kubeconfig, a talosconfig and ``talosctl``/``helm``
executables, which ``python -m runbook_lib.lab connect`` prints for it.

Parts:

- :mod:`.clock`: accelerated lab time.
- :mod:`.faults`: fault injection book-keeping.
- :mod:`.kubeapi`: a Kubernetes API object store with real HTTP semantics.
- :mod:`.talos`: Talos nodes, disks, volumes, machine config, the Talos endpoint and the ``talosctl`` shim.
- :mod:`.linstor`: the LINSTOR controller model, its REST API and the ``linstor`` CLI.
- :mod:`.server`: the HTTP server tying it together, and persistence.
- :mod:`.control`: start/stop/status/reset of the server process.
"""
