"""Smoke test of benchmarks/convergence.py (two seeds of each method on K4SnO4, tiny budget) and its statistics."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from conftest import read_image, strict_json

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import convergence  # noqa: E402
from benchmarks.plot_convergence import plot  # noqa: E402


def test_wilson_interval_known_values():
    lo, hi = convergence.wilson_interval(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = convergence.wilson_interval(10, 20)
    assert (lo, hi) == pytest.approx((0.2993, 0.7007), abs=1e-4)


def test_summarise_hand_built_runs():
    def run(seed, solved, evaluations, seconds, stopped_by):
        return {
            "seed": seed,
            "budget": 1000,
            "solved": solved,
            "evaluations_to_solution": evaluations if solved else None,
            "seconds_to_solution": seconds if solved else None,
            "evaluations": evaluations,
            "seconds": seconds,
            "evaluations_per_second": evaluations / seconds,
            "best_rwp": 0.05,
            "stopped_by": stopped_by,
        }

    runs = [run(0, True, 100, 1.0, "solved"), run(1, True, 300, 3.0, "solved"), run(2, False, 600, 6.0, "time")]
    s = convergence.summarise(runs)
    assert s["n_solved"] == 2
    assert s["success_rate"] == pytest.approx(2 / 3)
    assert s["evaluations_to_solution"]["median"] == 200
    assert s["expected_evaluations_to_solution"] == pytest.approx((100 + 300 + 600) / 2)
    assert s["curve_evaluations"]["x"] == [100, 300]
    assert s["curve_evaluations"]["success"] == pytest.approx([1 / 3, 2 / 3])
    assert s["curve_evaluations"]["limit"] == 600  # the capped run stopped before the budget of 1000
    assert s["stopped_by"] == {"solved": 2, "solved after final refinement": 0, "budget": 0, "time": 1}


def test_bad_config_rejected():
    with pytest.raises(ValueError, match="unknown problem"):
        convergence.BenchmarkConfig(problems=("NaCl",))
    with pytest.raises(ValueError, match="unknown method"):
        convergence.BenchmarkConfig(methods=("annealing",))
    with pytest.raises(ValueError, match="need --nn"):
        convergence.BenchmarkConfig(methods=("nn-rerank",))
    with pytest.raises(ValueError, match="--ga"):
        convergence.BenchmarkConfig(ga={"islands": 0})
    with pytest.raises(ValueError, match="--ga"):
        convergence.BenchmarkConfig(ga={"no_such_setting": 1})


def test_ga_settings_from_the_command_line_reach_the_runs():
    args = convergence.parse_args(["--ga", "islands=4", "--ga", "island_size=24", "--ga", "fix_origin=false"])
    assert dict(args.ga) == {"islands": 4, "island_size": 24, "fix_origin": False}
    with pytest.raises(SystemExit):
        convergence.parse_args(["--ga", "islands"])
    # no wall-clock cap in reach: the evaluation budget alone stops both runs, on any machine
    small = convergence.run_one("K4SnO4", "gasolve", 3, 6_000, 1e6, {"ga": {"islands": 2, "island_size": 8}})
    default = convergence.run_one("K4SnO4", "gasolve", 3, 6_000, 1e6)
    for result in (small, default):
        assert result["stopped_by"] in ("budget", "solved", "solved after final refinement")
        assert result["solved"] or result["evaluations"] >= 6_000
    assert small["generations"] > default["generations"]  # 16 models a generation instead of 72


def test_smoke_two_seeds_each_method(tmp_path):
    distributed = pytest.importorskip("distributed")
    config = convergence.BenchmarkConfig(
        problems=("K4SnO4",),
        seeds=2,
        budget=15_000,
        restart_batch=16,
        restart_steps=30,
        max_seconds={"gasolve": 1e6, "plain": 1e6, "restarts": 1e6},  # the budget stops each run, not the clock
    )
    path = tmp_path / "convergence.json"
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = convergence.run_benchmark(config, client=client, json_path=path)
    written = strict_json(path)
    for key in ("config", "seeds", "versions", "machine", "workers", "summary", "runs", "wall_seconds"):
        assert key in written, key
    assert written["seeds"] == {"K4SnO4": [0, 1]}
    assert written["versions"]["distributed"] == distributed.__version__
    assert len(written["runs"]) == 6
    assert {(r["method"], r["seed"]) for r in written["runs"]} == {
        (m, s) for m in convergence.DEFAULT_METHODS for s in (0, 1)
    }
    for r in written["runs"]:
        assert "error" not in r, r
        assert r["evaluations"] > 0 and math.isfinite(r["best_rwp"])
        assert r["solved"] == (r["evaluations_to_solution"] is not None)
        assert r["solved"] or r["evaluations"] >= 15_000
        assert r["stopped_by"] != "time" and r["seed"] in (0, 1) and r["budget"] == 15_000
        assert r["seconds"] > 0 and r["evaluations_per_second"] == pytest.approx(r["evaluations"] / r["seconds"])
    cell = written["summary"]["K4SnO4"]
    assert set(cell) == set(convergence.DEFAULT_METHODS)
    for s in cell.values():
        assert s["n_runs"] == 2 and 0 <= s["success_rate"] <= 1
        for key in ("evaluations_to_solution", "seconds_to_solution", "evaluations_per_second", "curve_evaluations"):
            assert key in s
    assert result["summary"] == written["summary"]
    plot(written, tmp_path / "convergence.png")
    read_image(tmp_path / "convergence.png")


def test_oracle_selector_counts_sites_in_place():
    """The perfect network: 1 for the reference, 8/9 with one atom moved 0.5 Å, also after an origin shift and
    inversion (the comparison's alignment), 0.1 Å being the boundary."""
    import numpy as np

    from benchmarks.oracle_selector import OracleSelector

    problem = convergence.build_problem("K4SnO4")
    truth = problem.judge.reference
    frac = np.array([site.frac for site in truth.sites])
    oracle = OracleSelector(problem.judge, problem.n_sites, 0.1)
    moved = frac.copy()
    moved[5, 0] += 0.5 / truth.cell.a  # O1 0.5 Å along a
    near = frac.copy()
    near[5, 0] += 0.05 / truth.cell.a  # within the radius
    shifted = (0.5 - frac) % 1.0  # inversion through (1/4, 1/4, 1/4): the same structure
    share = oracle(np.stack([frac, moved, near, shifted]).reshape(4, -1))
    assert share == pytest.approx([1.0, 8 / 9, 1.0, 1.0])
    assert oracle.calls == 4 and oracle.seconds > 0
    assert oracle.in_place(moved.reshape(1, -1))[0].tolist() == [True] * 5 + [False] + [True] * 3


def test_oracle_method_and_sites_in_place_are_recorded():
    run = convergence.run_one("K4SnO4", "oracle-refine", 3, 8_000, 60.0, {"nn_weight": 0.2})
    assert run["method"] == "oracle-refine" and run["nn_seconds"] > 0
    assert 0 <= run["ga_sites_in_place"] <= 9
    assert run["sites_in_place"] == 9 if run["solved"] else run["sites_in_place"] < 9
    plain = convergence.run_one("K4SnO4", "plain", 3, 3_000, 60.0)
    assert not plain["solved"] and plain["sites_in_place"] < 9
    summary = convergence.summarise([run, plain])
    assert summary["sites_in_place"]["max"] <= 9


def test_plot_labels_name_the_plain_ga_when_local_search_is_off():
    from benchmarks.plot_convergence import _label

    assert _label("gasolve", {"config": {"ga": {}}}) == "gasolve (memetic GA)"
    assert _label("gasolve", {"config": {"ga": {"local_steps": 0}}}) == "plain GA (no local search)"
    assert _label("nn-rerank", {"config": {"ga": {"local_steps": 0}}}) == "plain GA + NN rerank"
    assert _label("oracle-rerank", {"config": {}}) == "gasolve + perfect network rerank"
