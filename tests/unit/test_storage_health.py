"""The storage health model and its verdicts, on captured LINSTOR responses and on views built in LINSTOR's format.

The built views go through the same parser as real answers (``/v1/view/resources`` JSON as in
``rest_v1_openapi.yaml``: volume ``state.disk_state`` and ``replication_states``, DRBD layer
``connections``), so every verdict here is a verdict on that format.
"""

from __future__ import annotations

import json

import pytest

from runbook_lib.errors import ParseError
from runbook_lib.kube import NodeState
from runbook_lib.storage_health import (
    is_back,
    may_go_down,
    model,
    red_flags_frame,
    replicas_frame,
    satellites_frame,
)
from tests.reference import reference_path

NODES = ("n1", "n2", "n3")


def resource(name: str, node: str, *, disk: str = "UpToDate", peers: dict[str, str] | None = None,
             repl: dict[str, tuple[str, float | None]] | None = None, flags: list[str] | None = None,
             reported: bool = True, in_use: bool = False) -> dict:
    """One ``/v1/view/resources`` entry; ``peers``: peer -> connection message (default: all Connected)."""
    peers = peers if peers is not None else {p: "Connected" for p in NODES if p != node}
    diskless = "DISKLESS" in (flags or [])
    drbd: dict = {"node_id": NODES.index(node) if node in NODES else 9, "drbd_volumes": [
        {"drbd_volume_definition": {"volume_number": 0, "minor_number": 1000}, "usable_size_kib": 1048576}]}
    volume: dict = {"volume_number": 0, "storage_pool_name": "DfltDisklessStorPool" if diskless else "pool",
                    "provider_kind": "DISKLESS" if diskless else "ZFS_THIN", "device_path": "/dev/drbd1000"}
    out: dict = {"name": name, "node_name": node, "layer_object": {"type": "DRBD", "drbd": drbd}, "volumes": [volume]}
    if flags:
        out["flags"] = flags
    if reported:
        drbd["connections"] = {p: {"connected": m == "Connected", "message": m} for p, m in peers.items()}
        drbd["may_promote"] = False
        state: dict = {"disk_state": "Diskless" if diskless else disk}
        if repl is not None:
            state["replication_states"] = {p: ({"replication_state": s} | ({"done_percentage": pct} if pct is not None else {}))
                                           for p, (s, pct) in repl.items()}
        volume["state"] = state
        out["state"] = {"in_use": in_use}
    return out


def healthy(name: str = "pvc-a") -> list[dict]:
    return [resource(name, n) for n in NODES]


def sats(**status: str) -> list[dict]:
    return [{"name": n, "connection_status": status.get(n, "ONLINE")} for n in NODES]


def view(resources: list[dict], satellites: list[dict] | None = None, kube: dict | None = None):
    return model(resources, satellites if satellites is not None else sats(), [], kube)


def test_captured_all_connected_response_lets_every_node_go_and_come_back() -> None:
    data = json.loads(reference_path("linstor", "samples", "view_resources_3replicas_all_connected.json").read_text())
    v = model(data, [{"name": f"node-{i}", "connection_status": "ONLINE"} for i in range(3)], [])
    for node in ("node-0", "node-1", "node-2"):
        assert may_go_down(v, node).ok
        assert is_back(v, node, v.held_by(node)).ok
    assert v.held_by("node-0") == {"rsc1": True}
    assert replicas_frame(v)["healthy"].all()


def test_captured_response_with_a_node_offline_refuses_the_next_node_and_names_why() -> None:
    """linstor-csi's fixture: node-0's satellite reported nothing, the others see it Connecting."""
    data = json.loads(reference_path("linstor", "samples", "view_resources_1of3_offline.json").read_text())
    v = model(data, [{"name": "node-0", "connection_status": "OFFLINE"}, {"name": "node-1", "connection_status": "ONLINE"},
                     {"name": "node-2", "connection_status": "ONLINE"}], [])
    verdict = may_go_down(v, "node-1")
    assert not verdict.ok
    assert verdict.resources() == ["rsc1", "satellite"]
    text = verdict.explain()
    assert "node-0: LINSTOR satellite OFFLINE" in text and "1 of 3 votes left" in text
    assert not is_back(v, "node-0", {"rsc1": True}).ok
    assert not v.has_quorum("rsc1", "node-0") and v.has_quorum("rsc1", "node-1")


def test_a_resync_anywhere_refuses_every_node_and_shows_progress() -> None:
    res = [resource("pvc-a", "n1", disk="Inconsistent", repl={"n2": ("SyncTarget", 42.0), "n3": ("Established", None)}),
           resource("pvc-a", "n2", repl={"n1": ("SyncSource", 42.0), "n3": ("Established", None)}),
           resource("pvc-a", "n3")] + healthy("pvc-b")
    v = view(res)
    for node in NODES:
        verdict = may_go_down(v, node)
        assert not verdict.ok and verdict.resources() == ["pvc-a"], verdict.explain()
    text = may_go_down(v, "n3").explain()
    assert "pvc-a on n1: Inconsistent, SyncTarget 42% from n2" in text and "wait for the resync" in text
    back = is_back(v, "n1", {"pvc-a": True, "pvc-b": True})
    assert not back.ok and not back.final and back.resources() == ["pvc-a"]
    assert is_back(view(healthy() + healthy("pvc-b")), "n1", {"pvc-a": True, "pvc-b": True}).ok


def test_a_replica_that_came_back_diskless_is_final_and_named() -> None:
    """talos#12478: the node is up, DRBD connected, but the disk did not attach."""
    res = [resource("pvc-a", "n1", disk="Diskless"), resource("pvc-a", "n2"), resource("pvc-a", "n3")]
    v = view(res)
    back = is_back(v, "n1", {"pvc-a": True})
    assert not back.ok and back.final
    assert "was diskful before, Diskless now" in back.explain() and "talos#12478" in back.explain()
    down = may_go_down(v, "n2")
    assert not down.ok and "placed diskful but attached without its disk" in down.explain()
    # still connecting: DRBD may not have attached yet, so the wait goes on
    early = view([resource("pvc-a", "n1", disk="Diskless", peers={"n2": "Connecting", "n3": "Connecting"}),
                  resource("pvc-a", "n2"), resource("pvc-a", "n3")])
    assert not is_back(early, "n1", {"pvc-a": True}).final


def test_a_replication_link_down_refuses_the_nodes_whose_loss_would_break_quorum() -> None:
    """n1-n2 cannot talk (a storage network fault): losing n3 leaves n1 and n2 unable to form a majority."""
    res = [resource("pvc-a", "n1", peers={"n2": "Connecting", "n3": "Connected"}),
           resource("pvc-a", "n2", peers={"n1": "Connecting", "n3": "Connected"}),
           resource("pvc-a", "n3")]
    v = view(res)
    verdict = may_go_down(v, "n3")
    assert not verdict.ok and "1 of 3 votes" in verdict.explain()
    assert not is_back(v, "n1", {"pvc-a": True}).ok  # not connected to n2
    assert "not connected to n2 (Connecting)" in is_back(v, "n1", {"pvc-a": True}).explain()


def test_two_replicas_and_a_tiebreaker() -> None:
    tb = ["DISKLESS", "DRBD_DISKLESS", "TIE_BREAKER"]
    ok = view([resource("pvc-a", "n1"), resource("pvc-a", "n2"), resource("pvc-a", "n3", flags=tb)])
    assert may_go_down(ok, "n1").ok and may_go_down(ok, "n3").ok
    assert replicas_frame(ok).set_index("node").loc["n3", "kind"] == "tie-breaker"
    no_tb = view([resource("pvc-a", "n1"), resource("pvc-a", "n2", peers={"n1": "Connected", "n3": "Connecting"}),
                  resource("pvc-a", "n3", flags=tb, peers={"n1": "Connected", "n2": "Connecting"})])
    assert not may_go_down(no_tb, "n1").ok  # n2 alone: 1 of 3 votes


def test_the_only_copy_and_an_exempt_drill_volume() -> None:
    single = view([resource("pvc-local", "n1", peers={})])
    verdict = may_go_down(single, "n1")
    assert not verdict.ok and "its only current data would go" in verdict.explain()
    # the quorum-loss drill takes n2 and n3: its own volume may lose quorum (exempt), data stays on n1
    v = view(healthy("pvc-drill") + healthy("pvc-other"))
    assert may_go_down(v, ["n2", "n3"], exempt=["pvc-drill"]).resources() == ["pvc-other"]
    assert may_go_down(view(healthy("pvc-drill")), ["n2", "n3"], exempt=["pvc-drill"]).ok


def test_suspended_io_taints_and_offline_satellites_block_everything() -> None:
    frozen = view([resource("pvc-a", "n1", in_use=True, peers={"n2": "Connecting", "n3": "Connecting"}),
                   resource("pvc-a", "n2", reported=False), resource("pvc-a", "n3", reported=False)],
                  sats(n2="OFFLINE", n3="OFFLINE"))
    assert [r.node for r in frozen.suspended()] == ["n1"]
    assert "without quorum: I/O suspended" in may_go_down(frozen, "n1").explain()
    kube = {n: NodeState(n, "True", ["drbd.linbit.com/lost-quorum"] if n == "n2" else [], "Talos") for n in NODES}
    tainted = view(healthy(), kube=kube)
    assert may_go_down(tainted, "n1").resources() == ["node"]
    assert satellites_frame(tainted).set_index("node").loc["n2", "ha_taints"] == "drbd.linbit.com/lost-quorum"
    assert not is_back(view(healthy(), kube={**kube, "n1": NodeState("n1", "False", [], "")}), "n1", {"pvc-a": True}).ok


def test_red_flags_name_what_to_do() -> None:
    flags = red_flags_frame(view([resource("pvc-local", "n1", peers={})] + healthy("pvc-b"), sats(n3="OFFLINE")))
    assert set(flags["what"]) == {"satellite", "pvc-local"}
    assert all(flags["what to do"].str.len() > 20)
    assert red_flags_frame(view(healthy())).empty


def test_a_malformed_answer_names_the_field() -> None:
    bad = healthy()
    bad[1]["layer_object"]["drbd"]["connections"]["n1"] = {"message": "Connected"}
    with pytest.raises(ParseError, match=r"resources\[1\]\.layer_object\.drbd\.connections\.n1\.connected"):
        view(bad)
