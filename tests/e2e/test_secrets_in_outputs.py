"""No secret reaches any output file of a run (issue: reliability and security).

Scans every file of the e2e layer's shared 01-04 run, whose parameter file holds planted secrets, for them,
for the lab's kubeconfig token and talosconfig key, and for the secrets inside the nodes'
machine configurations (which notebook 01 reads and applies back).
"""

from __future__ import annotations

import json

import yaml

from runbook_lib.lab.talos.cluster import TalosCluster
from tests.e2e.conftest import PLANTED, URL_PASSWORD


def test_no_secret_in_any_output_file(installed) -> None:
    """The shared 01-04 run (tests/e2e/conftest.py) had secrets planted in its parameter file."""
    run, state = installed.run, json.loads((installed.lab / "state.json").read_text())
    assert b"RUNBOOK_SECRETS" not in installed.lab_environ and PLANTED.encode() not in installed.lab_environ
    secrets = {PLANTED, URL_PASSWORD, state["token"]}
    secrets |= set(TalosCluster.from_dict(state["talos"]).secret_values())
    talosconfig = yaml.safe_load((installed.lab / "talosconfig").read_text())
    secrets |= {v for ctx in talosconfig["contexts"].values() for k, v in ctx.items() if k in ("key", "crt", "ca")}
    secrets = {s for s in secrets if isinstance(s, str) and len(s) >= 8}
    assert len(secrets) > 5
    files = [p for p in run.rglob("*") if p.is_file()]
    assert len([p for p in files if p.suffix == ".ipynb"]) == 4
    text = installed.output + "".join(path.read_text(errors="replace") for path in files)
    leaked = sorted(s[:12] + "…" for s in secrets if s in text)
    assert not leaked, f"secrets found in outputs: {leaked}"
    for name in ("01-partition", "02-extensions-and-upgrade", "03-piraeus-install", "04-storage-classes"):
        nb = json.loads((run / f"{name}.ipynb").read_text())
        assert nb["metadata"]["runbook"]["parameters"]["secrets"] == {"linstor_passphrase": "***"}, name
        assert nb["metadata"]["runbook"]["parameters"]["factory_url"] == "https://***@factory.talos.dev", name
        papermill = nb["metadata"]["papermill"]["parameters"]
        assert "kubeconfig" not in papermill and "install" not in papermill.get("bench", {}), name
