"""Upstream kubectl's streaming commands against the lab: ``logs`` options, ``logs -f``, ``cp``, and
``exec ... drbdadm status`` in a satellite.

kubectl binaries come from `.ci/install-kubectl` (the tests skip without them). The shared in-process
lab (``classes``) runs 06's record writer on a 3-way replicated volume: its ``ack`` lines are the log,
its records the file on the volume. Every time compared is the cluster's clock (lab seconds), never the
host's.
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbook_lib.drill_records import WRITER_SCRIPT
from runbook_lib.lab import control, tls
from runbook_lib.lab.storage import drbd
from runbook_lib.lab.workloads.pod_files import content
from tests.lab.test_lab_kubectl import KUBECTLS
from tests.storage_lab import NS, StorageLab, bound_claim, pvc_doc, running_pod, wait_for

VERSIONS = list(KUBECTLS)
WRITER = "stream-writer"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{9})Z (.*)$")  # RFC3339NanoFixed, then the line


@pytest.fixture(scope="module")
def kubeconfig(classes: StorageLab, tmp_path_factory) -> Path:
    """The shared lab also answers TLS, with a kubeconfig as `talosctl kubeconfig` writes it."""
    d = tmp_path_factory.mktemp("streams-kubeconfig")
    pki = tls.ensure_pki(d)
    classes.server.tls_context = pki.server_context()
    control.write_connection_files(d, classes.server.url, classes.lab.token, classes.lab.options["nodes"], pki=pki)
    return d / "kubeconfig"


def kubectl(version: str, kubeconfig: Path, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    binary = KUBECTLS[version]
    if not binary.exists():
        pytest.skip(f"kubectl {version} not installed ({binary}); run .ci/install-kubectl")
    proc = subprocess.run([str(binary), "--kubeconfig", str(kubeconfig), *args], capture_output=True, timeout=120,
                          env={"HOME": str(kubeconfig.parent), "PATH": os.environ.get("PATH", "")}, **kw)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _text(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.decode() if isinstance(proc.stdout, bytes) else proc.stdout


@pytest.fixture(scope="module")
def writer(classes: StorageLab):
    """06's record writer on a csi-replicated volume: (pod name, its node, the LINSTOR resource)."""
    s = classes
    s.core.create_namespaced_persistent_volume_claim("default", pvc_doc(f"{WRITER}-data", "csi-replicated"))
    claim = bound_claim(s, f"{WRITER}-data")
    s.core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": WRITER},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "writer", "image": "busybox:1.37", "command": ["sh", "-c", WRITER_SCRIPT],
            "env": [{"name": "RECORDS", "value": "/data/records.log"}, {"name": "INTERVAL", "value": "1"}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": f"{WRITER}-data"}}]}})
    pod = running_pod(s, WRITER)
    rd = s.core.read_persistent_volume(claim.spec.volume_name).spec.csi.volume_handle
    wait_for(lambda: len(s.core.read_namespaced_pod_log(WRITER, "default").splitlines()) >= 5, "5 records acknowledged")
    yield WRITER, pod.spec.node_name, rd
    s.core.delete_namespaced_pod(WRITER, "default")
    wait_for(lambda: WRITER not in {p.metadata.name for p in s.core.list_namespaced_pod("default").items}, "writer gone")
    s.core.delete_namespaced_persistent_volume_claim(f"{WRITER}-data", "default")


def _stamped(text: str) -> list[tuple[float, str]]:
    """(cluster time, line) of ``--timestamps`` output."""
    out = []
    for line in text.splitlines():
        m = STAMP.match(line)
        assert m, f"not an RFC3339NanoFixed-stamped line: {line!r}"
        secs = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
        out.append((secs + int(m.group(2)) / 1e9, m.group(3)))
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_logs_timestamps_tail_since_and_limit_bytes(classes: StorageLab, kubeconfig: Path, writer, version: str) -> None:
    pod = writer[0]
    lines = _stamped(_text(kubectl(version, kubeconfig, "logs", pod, "--timestamps", "--tail=3", text=True)))
    assert len(lines) == 3
    for at, line in lines:  # "ack <seq> <cluster time the record was formed> ...": the kubelet stamped it then
        assert line.startswith("ack ")
        assert at == pytest.approx(float(line.split()[2]), abs=1e-5)
    seqs = [int(line.split()[1]) for _at, line in lines]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    full = _text(kubectl(version, kubeconfig, "logs", pod, text=True))
    assert full.startswith("ack 1 ") and full.endswith("\n")
    assert _text(kubectl(version, kubeconfig, "logs", pod, "--limit-bytes=10", text=True)) == full[:10]
    # --since-time goes out in whole seconds (kubectl formats time.RFC3339): lines from that second on
    cut = int(lines[1][0])
    since = datetime.fromtimestamp(cut, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    newer = _stamped(_text(kubectl(version, kubeconfig, "logs", pod, "--timestamps", f"--since-time={since}", text=True)))
    assert newer and all(at >= cut for at, _line in newer)
    assert int(newer[0][1].split()[1]) <= seqs[1]  # nothing at or after the cut is missing
    everything = _text(kubectl(version, kubeconfig, "logs", pod, "--since=1000000s", text=True))
    assert everything.startswith(full)
    recent = _text(kubectl(version, kubeconfig, "logs", pod, "--since=1s", text=True)).splitlines()
    assert len(recent) <= 1  # one record per 40 cluster seconds at least (the writer's floor at this time scale)
    prev = kubectl(version, kubeconfig, "logs", pod, "--previous", check=False, text=True)
    assert prev.returncode != 0
    assert f'previous terminated container "writer" in pod "{pod}" not found' in prev.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_logs_follow_streams_new_lines_of_a_running_writer(classes: StorageLab, kubeconfig: Path, writer,
                                                          version: str) -> None:
    binary = KUBECTLS[version]
    if not binary.exists():
        pytest.skip(f"kubectl {version} not installed ({binary}); run .ci/install-kubectl")
    with classes.lab.lock:
        started = classes.lab.cluster_time()
    proc = subprocess.Popen([str(binary), "--kubeconfig", str(kubeconfig), "logs", "-f", "--timestamps", "--tail=1",
                             writer[0]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"HOME": str(kubeconfig.parent), "PATH": os.environ.get("PATH", "")})
    try:
        got = [proc.stdout.readline() for _ in range(4)]  # type: ignore[union-attr]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lines = _stamped("".join(got))
    seqs = [int(line.split()[1]) for _at, line in lines]
    assert seqs == list(range(seqs[0], seqs[0] + 4))  # each record once, in order, as written
    assert lines[-1][0] > started  # written after kubectl began to follow


@pytest.mark.parametrize("version", VERSIONS)
def test_logs_follow_ends_when_the_container_ends(classes: StorageLab, kubeconfig: Path, version: str) -> None:
    s, name = classes, f"ends-{version.replace('.', '')}"
    s.core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.37",
                                                  "command": ["sh", "-c", "echo started; sleep 3000"]}]}})
    try:
        wait_for(lambda: s.core.read_namespaced_pod(name, "default").status.phase in ("Running", "Succeeded"), "started")
        out = _text(kubectl(version, kubeconfig, "logs", "-f", name, text=True))
        assert out == "started\n"
        with s.lab.lock:
            now = s.lab.cluster_time()
        term = s.core.read_namespaced_pod(name, "default").status.container_statuses[0].state.terminated
        assert term is not None and term.finished_at.timestamp() <= now  # the stream ended with the container
    finally:
        s.core.delete_namespaced_pod(name, "default")


def test_logs_of_a_pod_with_two_containers_need_a_container(classes: StorageLab, kubeconfig: Path,
                                                           tmp_path: Path) -> None:
    s, version = classes, VERSIONS[0]
    s.core.create_namespaced_config_map("default", {"metadata": {"name": "two-c"}, "data": {"greeting": "hi there\n"}})
    s.core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two-c"}, "spec": {
        "containers": [{"name": n, "image": "debian:13", "command": ["sleep", "infinity"],
                        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]} for n in ("a", "b")],
        "volumes": [{"name": "cfg", "configMap": {"name": "two-c"}}]}})
    try:
        running_pod(s, "two-c")
        raw = kubectl(version, kubeconfig, "get", "--raw", "/api/v1/namespaces/default/pods/two-c/log", check=False,
                      text=True)
        assert raw.returncode != 0
        assert "a container name must be specified for pod two-c, choose one of: [a b]" in raw.stderr
        assert kubectl(version, kubeconfig, "logs", "two-c", "-c", "b", text=True).stdout == ""
        bad = kubectl(version, kubeconfig, "logs", "two-c", "-c", "z", check=False, text=True)
        assert "container z is not valid for pod two-c" in bad.stderr
        # a ConfigMap mount: one read-only file per key, as the kubelet projects it
        kubectl(version, kubeconfig, "cp", "-c", "b", "default/two-c:/etc/cfg/greeting", str(tmp_path / "greeting"))
        assert (tmp_path / "greeting").read_text() == "hi there\n"
        refused = kubectl(version, kubeconfig, "cp", "-c", "b", str(tmp_path / "greeting"), "default/two-c:/etc/cfg/x",
                          check=False, text=True)
        assert refused.returncode != 0 and "x: Cannot open: Read-only file system" in refused.stderr  # GNU tar (debian)
    finally:
        s.core.delete_namespaced_pod("two-c", "default")
        s.core.delete_namespaced_config_map("two-c", "default")


@pytest.mark.parametrize("version", VERSIONS)
def test_cp_out_of_and_into_a_pod(classes: StorageLab, kubeconfig: Path, writer, tmp_path: Path, version: str) -> None:
    s, (pod, node, rd) = classes, writer
    with s.lab.lock:
        before = drbd.read(s.lab, rd, node, "/records.log")
    out = tmp_path / "records.log"
    kubectl(version, kubeconfig, "cp", f"default/{pod}:/data/records.log", str(out))
    with s.lab.lock:
        after = drbd.read(s.lab, rd, node, "/records.log")
    copied = out.read_text().splitlines()
    assert before is not None and after is not None
    assert copied[:len(before)] == before and after[:len(copied)] == copied  # the replica's bytes at that moment

    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(70_000) + b"\x00\xff end")
    kubectl(version, kubeconfig, "cp", str(blob), f"default/{pod}:/data/blob-{version}.bin")
    back = tmp_path / "back.bin"
    kubectl(version, kubeconfig, "cp", f"default/{pod}:/data/blob-{version}.bin", str(back))
    assert back.read_bytes() == blob.read_bytes()

    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.txt").write_text("beta\n")
    kubectl(version, kubeconfig, "cp", str(tree), f"default/{pod}:/tmp/tree")
    home = tmp_path / "home"
    kubectl(version, kubeconfig, "cp", f"default/{pod}:/tmp/tree", str(home))
    assert (home / "a.txt").read_text() == "alpha\n" and (home / "sub" / "b.txt").read_text() == "beta\n"

    kubectl(version, kubeconfig, "cp", f"default/{pod}:/data/nope.txt", str(tmp_path / "nope"), check=False)
    assert not (tmp_path / "nope").exists()
    missing = kubectl(version, kubeconfig, "exec", pod, "--", "tar", "cf", "-", "/data/nope.txt", check=False, text=True)
    assert missing.returncode == 1 and "tar: /data/nope.txt: No such file or directory" in missing.stderr


def test_cp_into_a_volume_is_the_volumes_content(classes: StorageLab, kubeconfig: Path, writer, tmp_path: Path) -> None:
    """What kubectl cp wrote is what other pods of the volume read (sha256sum in a Job pod on the same volume)."""
    s, (pod, _node, rd) = classes, writer
    local = tmp_path / "hello.txt"
    local.write_text("hello volume\n")
    kubectl(VERSIONS[0], kubeconfig, "cp", str(local), f"default/{pod}:/data/")  # a directory: kept under its name
    result = kubectl(VERSIONS[0], kubeconfig, "exec", pod, "--", "test", "-f", "/data/hello.txt", check=False)
    assert result.returncode == 0
    with s.lab.lock:
        assert content(s.lab.workloads.state.volume_data[rd]["/hello.txt"]) == b"hello volume\n"
    gone = kubectl(VERSIONS[0], kubeconfig, "exec", pod, "--", "test", "-d", "/data/nope", check=False)
    assert gone.returncode == 1


def _parse_status(text: str) -> dict:
    """drbdadm status text -> {resource: {role, disk, peers: {node: {role|connection, replication, peer-disk, done}}}}."""
    out: dict = {}
    res = peer = None
    for line in text.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        words = line.split()
        fields = dict(w.split(":", 1) for w in words if ":" in w)
        if indent == 0:
            res = out.setdefault(words[0], {"peers": {}, **fields})
        elif indent == 2 and words[0].startswith("disk:"):
            res.update(fields)
        elif indent == 2:
            peer = res["peers"].setdefault(words[0], {})
            peer.update(fields)
        else:
            peer.update(fields)
    return out


def _satellite(s: StorageLab, node: str) -> str:
    pods = s.core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/component=linstor-satellite").items
    return next(p.metadata.name for p in pods if p.spec.node_name == node)


def _status(version: str, kubeconfig: Path, s: StorageLab, node: str, *args: str) -> dict:
    proc = kubectl(version, kubeconfig, "-n", NS, "exec", _satellite(s, node), "-c", "linstor-satellite", "--",
                   "drbdadm", "status", *args, text=True)
    return _parse_status(proc.stdout)


def test_drbdadm_status_during_and_after_a_resync(classes: StorageLab, kubeconfig: Path, writer) -> None:
    s, (_pod, primary, rd) = classes, writer
    version = VERSIONS[0]
    other = next(n for n in sorted(s.lab.linstor.rds[rd].replicas) if n != primary)
    status = _status(version, kubeconfig, s, primary)
    assert status[rd]["role"] == "Primary" and status[rd]["disk"] == "UpToDate" and status[rd]["open"] == "yes"
    assert set(status[rd]["peers"]) == set(s.lab.linstor.rds[rd].replicas) - {primary}
    assert all(p == {"role": "Secondary", "peer-disk": "UpToDate"} for p in status[rd]["peers"].values())
    saved = dict(s.lab.options)
    try:
        with s.lab.lock:  # the volume changes fast while the link is cut, and resyncs slowly afterwards
            s.lab.options.update(workload_write_mib_s=256.0, drbd_resync_mib_s=0.05)
            cut = s.lab.faults.add("replication-down", primary, other)
        wait_for(lambda: drbd.missed_kib(s.lab, rd, other) > 64 * 1024, f"{other} missed 64 MiB")
        away = _status(version, kubeconfig, s, other, rd)
        assert away[rd]["peers"][primary] == {"connection": "Connecting"}
        assert away[rd]["disk"] == "Outdated"  # weakly connected: the Primary writes on through a peer it reaches
        with s.lab.lock:
            s.lab.faults.remove(cut.id)
        sync = wait_for(lambda: (r := s.lab.linstor.rds[rd].replicas[other].sync) and dict(r), f"{other} resyncing")
        target = _status(version, kubeconfig, s, other, rd)[rd]
        assert target["disk"] == "Inconsistent" and target["role"] == "Secondary"
        source_view = target["peers"][sync["source"]]
        assert source_view["replication"] == "SyncTarget" and source_view["peer-disk"] == "UpToDate"
        assert 0.0 <= float(source_view["done"]) < 100.0
        source = _status(VERSIONS[-1], kubeconfig, s, sync["source"])[rd]["peers"][other]
        assert source["replication"] == "SyncSource" and source["peer-disk"] == "Inconsistent"
        assert 0.0 <= float(source["done"]) < 100.0
        with s.lab.lock:
            s.lab.options["drbd_resync_mib_s"] = 110.0
        wait_for(lambda: s.lab.linstor.rds[rd].replicas[other].disk_state == "UpToDate", "resync done", 30)
    finally:
        with s.lab.lock:
            s.lab.options.clear()
            s.lab.options.update(saved)
    after = _status(version, kubeconfig, s, other)[rd]
    assert after["disk"] == "UpToDate"
    assert all("replication" not in p and p["peer-disk"] == "UpToDate" for p in after["peers"].values())
    missing = kubectl(version, kubeconfig, "-n", NS, "exec", _satellite(s, other), "-c", "linstor-satellite", "--",
                      "drbdadm", "status", "pvc-none", check=False, text=True)
    assert missing.returncode == 1 and "'pvc-none' not defined in your config (for this host)." in missing.stderr


def test_a_pod_turns_running_only_once_its_container_started(fresh_lab: StorageLab) -> None:
    """kubelet's getPhase (pkg/kubelet/kubelet_pods.go): a container waiting for its first start (the image pull,
    its creation) keeps the pod Pending, so a client that waits for Running can read the log at once."""
    s = fresh_lab
    s.core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pulling"}, "spec": {
        "restartPolicy": "OnFailure", "nodeName": "lab-cp-3", "containers": [{"name": "c", "image": "docker.io/library/alpine:3.22",
                                                 "command": ["sh", "-c", "echo up; sleep infinity"]}]}})
    seen = []

    def observe() -> bool:
        status = s.core.read_namespaced_pod("pulling", "default").status
        states = [("running" if c.state.running else "waiting" if c.state.waiting else "terminated")
                  for c in status.container_statuses or []]
        seen.append((status.phase, tuple(states)))
        return status.phase == "Running"

    wait_for(observe, "pulling Running", 60)
    assert seen[-1] == ("Running", ("running",)), seen[-5:]
    assert all(states == ("running",) for phase, states in seen if phase == "Running"), seen
    assert s.core.read_namespaced_pod_log("pulling", "default") == "up\n"


def test_previous_is_the_log_of_the_container_before_its_restart(fresh_lab: StorageLab) -> None:
    """A node reboot restarts its containers: the log starts again and the old one is ``previous=true``."""
    s = fresh_lab
    s.core.create_namespaced_pod("default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "again"}, "spec": {
        "restartPolicy": "OnFailure", "nodeName": "lab-cp-2",
        "containers": [{"name": "c", "image": "busybox:1.37", "command": ["sh", "-c", "echo hello; sleep infinity"]}]}})
    running_pod(s, "again")
    assert s.core.read_namespaced_pod_log("again", "default") == "hello\n"
    with s.lab.lock:
        node = s.lab.talos.nodes["lab-cp-2"]
        boots = node.boot_count
        s.lab.talos.reboot(node, s.lab.clock.now())
    wait_for(lambda: node.boot_count > boots, "lab-cp-2 booted again", 30)
    wait_for(lambda: (c := s.core.read_namespaced_pod("again", "default").status.container_statuses[0]).restart_count
             == 1 and c.state.running is not None, "restarted")
    assert s.core.read_namespaced_pod_log("again", "default", previous=True) == "hello\n"
    current = s.core.read_namespaced_pod_log("again", "default", timestamps=True)
    before = s.core.read_namespaced_pod_log("again", "default", previous=True, timestamps=True)
    assert current.endswith(" hello\n") and before.endswith(" hello\n")
    assert _stamped(current)[0][0] > _stamped(before)[0][0]  # the second instance wrote its line after the reboot
