"""Texts the lab's streaming answers carry: ``drbdadm status`` (drbd-utils user/v9/drbdsetup.c ``status_cmd``),
PodLogOptions checks (pkg/apis/core/validation ``ValidatePodLogOptions``), the kubelet's log time stamps
(``RFC3339NanoFixed``) and the tar command lines kubectl cp runs (kubectl pkg/cmd/cp/cp.go)."""

from __future__ import annotations

import io
import tarfile

import pytest

from runbook_lib.lab.kubernetes import streaming
from runbook_lib.lab.kubernetes.types import ApiError
from runbook_lib.lab.linstor import drbdadm
from runbook_lib.lab.linstor.controller import LinstorController
from runbook_lib.lab.linstor.objects import Node, Replica, ResourceDefinition, VolumeDefinition
from runbook_lib.lab.workloads import logs, pod_tar


def _cluster(link=lambda rd, a, b: "n3" not in (a, b), volumes: int = 1) -> LinstorController:
    ctl = LinstorController()
    for i, n in enumerate(("n1", "n2", "n3", "n4")):
        ctl.nodes[n] = Node(n, f"u{i}", f"10.0.0.{i}", online=True, facts={"drbd_version": "9.2.16"})
    rd = ResourceDefinition("pvc-1", "u", "DfltRscGrp", 7000, "s", ["DRBD", "STORAGE"],
                            volumes=[VolumeDefinition(v, 1024, 1000 + v, f"v{v}") for v in range(volumes)])
    rd.replicas = {"n1": Replica("n1", "r1", 0, "p", role="Primary"),
                   "n2": Replica("n2", "r2", 1, "p", disk_state="Inconsistent",
                                 sync={"source": "n1", "done_kib": 1, "total_kib": 3}),
                   "n3": Replica("n3", "r3", 2, "p"),
                   "n4": Replica("n4", "r4", 3, "DfltDisklessStorPool", flags=["DISKLESS", "TIE_BREAKER"],
                                 disk_state="Diskless")}
    ctl.rds["pvc-1"] = rd
    ctl.link = link
    return ctl


def test_drbdadm_status_of_a_primary_with_a_resyncing_a_disconnected_and_a_diskless_peer() -> None:
    assert drbdadm.run(_cluster(), "n1", ["status"]) == (0, (
        "pvc-1 role:Primary\n"
        "  disk:UpToDate open:yes\n"
        "  n2 role:Secondary\n"
        "    replication:SyncSource peer-disk:Inconsistent done:33.33\n"
        "  n3 connection:Connecting\n"
        "  n4 role:Secondary\n"
        "    peer-disk:Diskless peer-client:yes\n"
        "\n"), "")
    code, out, _ = drbdadm.run(_cluster(), "n2", ["status", "pvc-1"])
    assert "  disk:Inconsistent open:no\n  n1 role:Primary\n    replication:SyncTarget peer-disk:UpToDate done:33.33\n" in out
    assert drbdadm.run(_cluster(), "n4", ["status"])[1].splitlines()[1] == "  disk:Diskless client:yes open:no"


def test_drbdadm_status_names_volumes_when_there_are_several_and_flags_lost_quorum() -> None:
    ctl = _cluster(link=lambda rd, a, b: False, volumes=2)
    ctl.rds["pvc-1"].props["DrbdOptions/Resource/quorum"] = "majority"
    out = drbdadm.run(ctl, "n1", ["status"])[1]
    assert out.splitlines()[:4] == ["pvc-1 role:Primary suspended:quorum", "  volume:0 disk:UpToDate quorum:no open:yes",
                                    "  volume:1 disk:UpToDate quorum:no open:yes", "  n2 connection:Connecting"]


def test_drbdadm_status_errors() -> None:
    ctl = _cluster()
    assert drbdadm.run(ctl, "n1", ["status", "pvc-x"]) == (1, "", "'pvc-x' not defined in your config (for this host).\n")
    ctl.nodes["n1"].facts = {"drbd_version": None}
    assert drbdadm.run(ctl, "n1", ["status"])[0] == 20
    ctl.rds.clear()
    assert drbdadm.run(ctl, "n2", ["status"]) == (0, "# No currently configured DRBD found.\n", "")


def test_wrap_printf_breaks_before_a_piece_past_80_columns() -> None:
    w = drbdadm._Wrap()
    w(0, "r" * 70)
    w(4, " role:Secondary")
    w(0, "\n")
    assert w.text() == "r" * 70 + "\n    role:Secondary\n"


@pytest.mark.parametrize(("query", "message"), [
    ({"tailLines": ["-1"]}, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
    ({"limitBytes": ["0"]}, "limitBytes: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": ["0"]}, "sinceSeconds: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": ["5"], "sinceTime": ["2026-01-01T00:00:00Z"]},
     "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"),
])
def test_pod_log_options_are_checked_as_the_api_server_does(query: dict, message: str) -> None:
    with pytest.raises(ApiError) as err:
        logs.parse_options(query, "p")
    assert err.value.code == 422 and message in str(err.value.status()["message"])


def test_log_stamps_are_rfc3339_nano_fixed_on_the_cluster_clock() -> None:
    class Talos:
        epoch = 1_700_000_000.0

    class FakeLab:
        talos = Talos()

    assert logs.stamp(FakeLab(), 1.5) == "2023-11-14T22:13:21.500000000Z"  # type: ignore[arg-type]
    assert logs.stamp(FakeLab(), 0) == "2023-11-14T22:13:20.000000000Z"  # type: ignore[arg-type]


def test_the_tar_command_lines_of_kubectl_cp() -> None:
    assert pod_tar.reads_stdin(["tar", "-xmf", "-", "-C", "/data"])
    assert pod_tar.reads_stdin(["tar", "--no-same-permissions", "--no-same-owner", "-xmf", "-", "-C", "/tmp"])
    assert not pod_tar.reads_stdin(["tar", "cf", "-", "/data/a"])
    assert pod_tar._parse(["cf", "-", "/data/a"]) == ("c", "-", None, ["/data/a"])
    assert pod_tar._parse(["-xmf", "-", "-C", "/tmp"]) == ("x", "-", "/tmp", [])


def _client_frame(payload: bytes, opcode: int = 2, fin: bool = True) -> bytes:
    """A masked client frame (RFC 6455 5.3), as gorilla/websocket sends them."""
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


def test_stdin_is_read_until_the_v5_close_signal_with_pings_answered_and_fragments_joined() -> None:
    big = bytes(range(256)) * 2
    wire = (_client_frame(b"\x00hello ") + _client_frame(b"k8s", opcode=9)  # a heartbeat ping between messages
            + _client_frame(b"\x00" + big[:100], fin=False) + _client_frame(big[100:], opcode=0)
            + _client_frame(b"\xff\x00") + _client_frame(b"\x00never read"))
    replies = io.BytesIO()
    got = streaming.read_stdin(streaming.Frames(io.BytesIO(wire), replies), "v5.channel.k8s.io")
    assert got == b"hello " + big
    assert replies.getvalue() == streaming.frame(b"k8s", opcode=10)  # the pong carries the ping's data


def test_stdin_ends_with_the_connection_on_v4_or_where_tar_stops_reading() -> None:
    wire = _client_frame(b"\x00abc") + _client_frame(b"\xff\x00") + _client_frame(b"\x00def")
    assert streaming.read_stdin(streaming.Frames(io.BytesIO(wire), io.BytesIO()), "v4.channel.k8s.io") == b"abcdef"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("a.txt")
        info.size = 700
        archive.addfile(info, io.BytesIO(b"x" * 700))
    whole = buf.getvalue()
    assert pod_tar.archive_complete(whole) and not pod_tar.archive_complete(whole[:1024])
    wire = b"".join(_client_frame(b"\x00" + whole[i:i + 100]) for i in range(0, 2048, 100)) + _client_frame(b"\x00more")
    got = streaming.read_stdin(streaming.Frames(io.BytesIO(wire), io.BytesIO()), "v4.channel.k8s.io",
                               pod_tar.archive_complete)
    assert got == whole[:2100]  # 512 header + 1024 data + the first zero block, in 100-byte messages
