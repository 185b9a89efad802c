"""One table of lab defaults: the parameter file's LabOptions and the lab read the same values."""

from runbook_lib import lab_options
from runbook_lib.params import DEFAULT_NODES, LabOptions


def test_the_parameter_model_and_the_lab_share_their_defaults() -> None:
    params = LabOptions()
    lab = lab_options.defaults()
    assert {k: v for k, v in lab.items() if k not in ("nodes", "disk_size")} == {
        k: getattr(params, k) for k in lab if k not in ("nodes", "disk_size")}
    assert lab["disk_size"] == params.disk_size_bytes
    assert lab["nodes"] == [dict(n) for n in DEFAULT_NODES]


def test_options_left_out_or_null_take_their_default() -> None:
    assert lab_options.with_defaults({"seed": 7, "faults": None})["seed"] == 7
    assert lab_options.with_defaults({"seed": 7, "faults": None})["faults"] == []
    assert lab_options.with_defaults({})["time_scale"] == lab_options.TIME_SCALE
