"""No secret reaches any output file of a run (issue: reliability and security).

Plants a secret in the parameter file, then scans every file of the run directory for it,
for the lab's kubeconfig token and talosconfig key, and for the secrets inside the nodes'
machine configurations (which notebook 01 reads and applies back).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from runbook_lib.lab import control
from runbook_lib.lab.talos.cluster import TalosCluster
from tests.lab_helpers import run_dir_of, runbook, write_params

PLANTED = "planted-S3cret-passphrase-4711"
URL_PASSWORD = "url-Pa55word-0815"  # in factory_url's userinfo: a secret too


def test_no_secret_in_any_output_file(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    # the secret is also reused in other parameters, which papermill would write into the notebook
    params = write_params(tmp_path / "p.yaml", secrets={"linstor_passphrase": PLANTED},
                          kubeconfig=f"/nonexistent/{PLANTED}/kubeconfig",  # ignored by the lab target
                          bench={"install": f"apk add --no-cache fio # {PLANTED}"},
                          factory_url=f"https://runbook:{URL_PASSWORD}@factory.talos.dev")
    try:
        proc = runbook("run", "-f", str(params), "01", "--out", str(tmp_path / "out"), lab_dir=lab_dir, check=True)
        run = run_dir_of(proc)
        state = json.loads((lab_dir / "state.json").read_text())
        lab_env = Path(f"/proc/{control.status(lab_dir)['pid']}/environ").read_bytes()
        assert b"RUNBOOK_SECRETS" not in lab_env and PLANTED.encode() not in lab_env
        secrets = {PLANTED, URL_PASSWORD, state["token"]}
        secrets |= set(TalosCluster.from_dict(state["talos"]).secret_values())
        talosconfig = yaml.safe_load((lab_dir / "talosconfig").read_text())
        secrets |= {v for ctx in talosconfig["contexts"].values() for k, v in ctx.items() if k in ("key", "crt", "ca")}
        secrets = {s for s in secrets if isinstance(s, str) and len(s) >= 8}
        assert len(secrets) > 5
        files = [p for p in run.rglob("*") if p.is_file()]
        assert files
        text = proc.stdout + proc.stderr
        for path in files:
            text += path.read_text(errors="replace")
        leaked = sorted(s[:12] + "…" for s in secrets if s in text)
        assert not leaked, f"secrets found in outputs: {leaked}"
        rec = json.loads((run / "01-partition.ipynb").read_text())["metadata"]["runbook"]
        assert rec["parameters"]["secrets"] == {"linstor_passphrase": "***"}
        assert rec["parameters"]["factory_url"] == "https://***@factory.talos.dev"
        papermill = json.loads((run / "01-partition.ipynb").read_text())["metadata"]["papermill"]["parameters"]
        assert "kubeconfig" not in papermill and "install" not in papermill.get("bench", {})
    finally:
        control.remove(lab_dir)
