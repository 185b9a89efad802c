"""Status and capacity views cost a constant number of API calls, whatever the number of nodes.

Counts are what the lab server saw (GET /lab/v1/stats), not what the client meant to do.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import scale


def _calls_per_view(n: int, tmp: Path) -> dict[str, tuple[int, int]]:
    from runbook_lib.lab import control

    d = tmp / f"lab-{n}"
    options = scale.build_state(n, d)
    try:
        conn = control.start(options, d, timeout=120)
        out = {}
        for name, fn in scale.views(conn).items():
            before = scale._stats(conn["url"])
            rows = len(fn())
            out[name] = (scale._calls(before, scale._stats(conn["url"])), rows)
        return out
    finally:
        control.stop(d)


def test_views_make_the_same_calls_at_3_and_12_nodes(tmp_path: Path) -> None:
    small, large = _calls_per_view(3, tmp_path), _calls_per_view(12, tmp_path)
    assert {k: c for k, (c, _) in small.items()} == {k: c for k, (c, _) in large.items()}
    assert all(c == 1 for c, _ in large.values())
    assert large["node states (kube.node_states)"][1] == 12  # every node seen, in that one call
