"""benchmarks/pbso4.py: the summary of hand-built runs (known answers) and the plot from it."""

from __future__ import annotations

import pytest
from conftest import read_image

from benchmarks import pbso4


def _run(seed, solved, to_solution, evaluations, seconds):
    return {
        "seed": seed,
        "solved": solved,
        "evaluations_to_solution": to_solution,
        "evaluations": evaluations,
        "search_seconds": seconds,
        "rwp": 0.09,
        "max_site_distance": 0.07 if solved else 1.2,
    }


def test_summary_counts_only_solved_runs_and_charges_all_evaluations_to_ert(tmp_path):
    runs = [_run(0, True, 1000.0, 1000.0, 1.0), _run(1, True, 3000.0, 3000.0, 3.0), _run(2, False, None, 8000.0, 9.0)]
    summary = pbso4.summarise(runs)
    assert (summary["runs"], summary["solved"]) == (3, 2)
    assert summary["success_rate"] == pytest.approx(2 / 3)
    assert summary["evaluations_to_solution"]["median"] == pytest.approx(2000.0)
    assert summary["seconds_to_solution"]["max"] == pytest.approx(3.0)
    assert summary["expected_evaluations_to_solution"] == pytest.approx(12000.0 / 2)
    pbso4.plot({"runs": runs, "fox_trials": pbso4.FOX_TRIALS}, tmp_path / "curve.png")
    read_image(tmp_path / "curve.png")
