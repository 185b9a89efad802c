"""The clock benchmark's split of suite time into lab-clock waits and the rest (benchmarks/clock.py)."""

import pytest

from benchmarks.clock import fit


def test_a_suite_that_only_waits_for_the_clock_has_no_fixed_cost_and_its_lab_seconds_are_recovered():
    runs = [(scale, 1300 / scale) for scale in (100, 200, 400)]
    f = fit(runs)
    assert f.fixed_s == pytest.approx(0, abs=1e-9)
    assert f.lab_s == pytest.approx(1300)
    assert f.at(100) == pytest.approx(13)


def test_noisy_runs_give_the_least_squares_line_and_say_how_far_the_worst_run_is_from_it():
    # 21 s of own work and 1200 lab seconds, the middle run 0.5 s slow: the fit moves, the residual shows it
    f = fit([(100, 33.0), (200, 27.5), (400, 24.0)])
    assert 20 < f.fixed_s < 22 and 1100 < f.lab_s < 1300
    assert f.residual_s == pytest.approx(max(abs(t - f.at(s)) for s, t in [(100, 33.0), (200, 27.5), (400, 24.0)]))
    assert 0.1 < f.residual_s < 0.6


def test_runs_at_one_time_scale_cannot_split_the_time_and_say_so():
    with pytest.raises(ValueError, match="two different time scales"):
        fit([(100, 33.0), (100, 34.0)])
