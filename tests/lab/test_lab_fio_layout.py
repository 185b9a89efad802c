"""The lab's fio lays out its IO file once per volume, as real fio does (fio filesetup.c: a file that exists
and is large enough is used as it is; a short one is extended)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runbook_lib.lab.kubernetes import objects as ko
from runbook_lib.lab.workloads.fio import FioRunner, model
from tests.storage_lab import StorageLab, bound_claim, pod_doc, pvc_doc, running_pod

FIO = ["fio", "--output-format=json", "--filename=/data/fio.dat", "--size=512M", "--ramp_time=1", "--runtime=2",
       "--name=seq-read", "--rw=read", "--bs=1M"]


def _fio(s: StorageLab, pod_name: str) -> float:
    """Lab seconds one fio run of ``FIO`` takes in ``pod_name``'s container."""
    with s.lab.lock:
        pod = ko.get(s.lab, "", "pods", "default", pod_name)
        container = {**pod["spec"]["containers"][0], "command": FIO}
        result = FioRunner().run(s.lab, pod, container, pod["spec"]["nodeName"], s.lab.clock.now())
    assert result is not None and result.exit_code == 0, result
    return result.duration


def test_second_run_on_the_same_volume_skips_the_layout(classes: StorageLab) -> None:
    s = classes
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc("fio-layout", "csi-replicated"))
    s.core.create_namespaced_pod("default", pod_doc("fio-layout", "fio-layout"))
    try:
        claim = bound_claim(s, "fio-layout")
        running_pod(s, "fio-layout")
        layout = 512 * 2**20 / model(s.lab).disk_write_bw
        first, second = _fio(s, "fio-layout"), _fio(s, "fio-layout")
        assert first == pytest.approx(second + layout)
        assert second == pytest.approx(3.0)  # ramp + runtime only
        pv = s.core.read_persistent_volume(claim.spec.volume_name)
        with s.lab.lock:  # the file shrinks to half (a truncate): the next run extends it
            s.lab.workloads.state.volume_data[pv.spec.csi.volume_handle]["/fio.dat"]["size"] //= 2
        assert _fio(s, "fio-layout") == pytest.approx(3.0 + layout / 2)
    finally:
        s.core.delete_namespaced_pod("fio-layout", "default")
        s.core.delete_namespaced_persistent_volume_claim("fio-layout", "default")


@pytest.mark.timeout(60)
def test_real_fio_keeps_an_existing_file_and_extends_a_short_one(tmp_path: Path) -> None:
    """What the lab models, checked on real fio: a read job leaves an existing, large enough file untouched."""
    fio = shutil.which("fio")
    if fio is None:
        pytest.skip("fio is not installed (apt-get install fio)")
    path = tmp_path / "fio.dat"
    argv = [fio, "--name=r", f"--filename={path}", "--size=1M", "--rw=read", "--bs=64k", "--ioengine=psync",
            "--output-format=json"]
    subprocess.run(argv, capture_output=True, timeout=50, check=True)
    assert path.stat().st_size == 2**20
    with path.open("r+b") as f:
        f.write(b"marker")
    subprocess.run(argv, capture_output=True, timeout=50, check=True)
    assert path.read_bytes()[:6] == b"marker"  # not laid out again
    with path.open("r+b") as f:
        f.truncate(2**19)
    subprocess.run(argv, capture_output=True, timeout=50, check=True)
    assert path.stat().st_size == 2**20  # a short file is extended
