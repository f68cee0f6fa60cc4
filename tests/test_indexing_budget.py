"""The triclinic search's budget counts boxes tested, not seconds: the same lines give the same cells under any load.

The search is run once as it is and once under an artificial slowdown (every reading of the clock jumps 1000 s
ahead, as if the machine were very busy): a wall-clock budget would stop the second run at once and find nothing.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from gasolve.cli.main import main
from gasolve.crystal.cell import UnitCell
from gasolve.indexing import triclinic
from gasolve.indexing.budget import TRICLINIC_BOXES, TRICLINIC_BOXES_PER_SECOND, WorkBudget, boxes_for_seconds
from gasolve.indexing.dichotomy import DichotomySettings
from gasolve.indexing.solutions import index_lines
from gasolve.indexing.triclinic import TriclinicSettings, search_triclinic

WAVELENGTH = 1.5406
CELL = (4.1, 5.2, 6.3, 82.0, 86.0, 97.0)


def _lines(n_lines: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The first distinct Q of the P lattice of CELL with a 0.005° 2θ error, and a 0.02° tolerance (Å⁻²)."""
    hkl = np.stack(np.meshgrid(*[np.arange(-7, 8)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    q = np.unique(np.round(1 / UnitCell(*CELL).d_spacing(hkl) ** 2, 7))[:n_lines]
    two_theta = 2 * np.arcsin(WAVELENGTH * np.sqrt(q) / 2)
    two_theta += np.radians(0.005) * np.random.default_rng(3).standard_normal(len(q))
    q_obs = np.sort((2 * np.sin(two_theta / 2) / WAVELENGTH) ** 2)
    two_theta = 2 * np.arcsin(WAVELENGTH * np.sqrt(q_obs) / 2)
    return q_obs, 2 * np.sin(two_theta) / WAVELENGTH**2 * np.radians(0.02)


class _Crawl:
    """A clock that jumps ``step`` seconds at every reading: a machine slowed down without limit."""

    def __init__(self, step: float = 1000.0):
        self.now = time.monotonic()
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _counted(monkeypatch) -> list[int]:
    """Boxes each call of the triclinic box test receives."""
    calls: list[int] = []
    test = triclinic.count_unindexed_triclinic

    def counting(q_obs, q_tol, hkl, lo, hi, max_unindexed):
        calls.append(len(lo))
        return test(q_obs, q_tol, hkl, lo, hi, max_unindexed)

    monkeypatch.setattr(triclinic, "count_unindexed_triclinic", counting)
    return calls


def _key(solutions) -> list[tuple]:
    return [(tuple(np.round(s.parameters, 12)), s.hkl.tobytes(), s.indexed.tobytes()) for s in solutions]


def test_budget_counts_the_boxes_tested_and_cuts_at_the_same_box_under_any_load(monkeypatch):
    q_obs, q_tol = _lines()
    settings = TriclinicSettings(max_volume=400)
    calls = _counted(monkeypatch)
    budget = WorkBudget(settings.box_budget)
    solutions, cut = search_triclinic(q_obs, q_tol, settings, budget)
    assert solutions and cut is None
    assert budget.used == sum(calls) > 1000  # the budget charges every box the test receives, nothing else
    full = budget.used

    # Half the boxes: cut in the same place however slow the machine, said so in boxes.
    half = TriclinicSettings(max_volume=400, box_budget=full // 2)
    runs = []
    for clock in (None, _Crawl()):
        if clock is not None:
            monkeypatch.setattr(time, "monotonic", clock)
            monkeypatch.setattr(time, "perf_counter", clock)
        calls.clear()
        budget = WorkBudget(half.box_budget)
        found, cut = search_triclinic(q_obs, q_tol, half, budget)
        runs.append((_key(found), cut, budget.used, list(calls)))
    assert runs[0] == runs[1]
    found, cut, used, calls_made = runs[0]
    assert cut is not None and "box budget (" in cut and f"{full // 2:,} boxes) spent" in cut
    # It stops at the first level past the budget: never before it, and over it by less than that level's boxes.
    assert full // 2 <= used < full // 2 + calls_made[-1]


def test_index_lines_gives_identical_cells_when_the_clock_crawls(monkeypatch):
    q_obs, q_tol = _lines()
    settings = DichotomySettings(max_volume=400)
    first = index_lines(q_obs, q_tol, settings, systems=("triclinic",))
    assert first and first[0].bravais == "aP"
    clock = _Crawl()
    monkeypatch.setattr(time, "monotonic", clock)
    monkeypatch.setattr(time, "perf_counter", clock)
    again = index_lines(q_obs, q_tol, settings, systems=("triclinic",))
    assert again == first
    # What this catches: a wall-clock limit (here the optional guard) stops the slowed-down search at once.
    notes: list[str] = []
    guarded = WorkBudget(TRICLINIC_BOXES, time_limit=120.0, clock=clock)
    assert index_lines(q_obs, q_tol, settings, systems=("triclinic",), notes=notes, budget=guarded) == []
    assert "wall-clock guard" in notes[0]


def test_work_budget_and_its_optional_wall_clock_guard():
    budget = WorkBudget(10)
    budget.charge(4)
    assert (budget.used, budget.left, budget.spent, budget.stopped) == (4, 6, False, False)
    budget.charge(7)
    assert budget.left == 0 and budget.spent and "box budget (10 boxes) spent" in budget.reason()
    # Without a time limit no clock stops it; with one, the guard passes once the clock is past it.
    assert not WorkBudget(10, clock=_Crawl()).stopped
    guarded = WorkBudget(10, time_limit=5.0, clock=_Crawl(step=3.0))
    assert not guarded.timed_out  # 3 s after the start
    assert guarded.timed_out and guarded.stopped and not guarded.spent  # 6 s
    assert "wall-clock guard (5 s)" in guarded.reason() and "depends on the machine" in guarded.reason()
    for boxes in (-1, 2.5, True):
        with pytest.raises(ValueError, match="box budget"):
            WorkBudget(boxes)
    with pytest.raises(ValueError, match="time limit"):
        WorkBudget(10, time_limit=0.0)


def test_seconds_convert_to_boxes_at_the_calibrated_rate():
    assert boxes_for_seconds(120) == TRICLINIC_BOXES == 120 * TRICLINIC_BOXES_PER_SECOND
    assert boxes_for_seconds(0) == 0 and isinstance(boxes_for_seconds(0.5), int)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            boxes_for_seconds(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--triclinic-boxes", "-5"], "--triclinic-boxes must be a whole number >= 0"),
        (["--triclinic-budget", "-1"], "--triclinic-budget must be a finite number of seconds >= 0"),
        (["--triclinic-budget", "nan"], "--triclinic-budget must be a finite number of seconds >= 0"),
        (["--triclinic-time-limit", "0"], "--triclinic-time-limit must be a finite number of seconds > 0"),
    ],
)
def test_bad_budgets_exit_2_naming_the_option(tmp_path, capsys, options, message):
    pattern = tmp_path / "p.xy"
    pattern.write_text("10 1\n11 2\n12 1\n")
    assert main(["index", str(pattern), "--wavelength", "CuKa1", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_boxes_and_seconds_are_not_given_together(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["index", "p.xy", "--triclinic-boxes", "10", "--triclinic-budget", "1"])
    assert stop.value.code == 2
    assert "--triclinic-budget" in capsys.readouterr().err


def test_a_pattern_indexed_twice_gives_identical_candidates_and_notes_when_the_clock_crawls(monkeypatch):
    # examples/K4SnO4.xye (P-1, 378 Å³, simulated Cu Kα1): its triclinic search of reduced bases finds the cell
    # after some 19,000 boxes (any basis: 450,000). The whole of index_pattern (peak search, zero order, triclinic
    # search at the zero shifts, one shared budget) runs twice, the second time under a clock that jumps 1000 s per
    # reading.
    from pathlib import Path

    from gasolve.diffraction.wavelength import choose_radiation
    from gasolve.indexing.pattern import IndexingSettings, index_pattern
    from gasolve.io.patterns import read_pattern

    path = Path(__file__).resolve().parents[1] / "examples" / "K4SnO4.xye"
    pattern = read_pattern(path)
    radiation, _ = choose_radiation(pattern.radiation, "CuKa1", str(path))
    settings = IndexingSettings(systems=("triclinic",), triclinic_boxes=600_000, n_pawley=0)
    results = []
    for slow in (False, True):
        if slow:
            clock = _Crawl()
            monkeypatch.setattr(time, "monotonic", clock)
            monkeypatch.setattr(time, "perf_counter", clock)
        result = index_pattern(pattern, radiation, settings)
        results.append(([c.as_dict() for c in result.candidates], result.notes))
    assert results[0] == results[1]
    candidates, notes = results[0]
    assert candidates[0]["bravais"] == "aP" and abs(candidates[0]["volume"] - 378.0) < 2.0
    used = [n for n in notes if n.startswith("triclinic search of reduced bases")]  # 19,059 boxes (any basis: 446,715)
    assert used and used[0].endswith("of 600,000 boxes tested")
