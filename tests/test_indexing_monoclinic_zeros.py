"""The monoclinic search at several zero shifts: a zero whose dichotomy runs into the box limit in some volume
sub-shell no longer ends the search at the other zeros; one box budget over the zeros does
(:func:`gasolve.indexing.pattern._higher_symmetry`, ``IndexingSettings.monoclinic_boxes``)."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.indexing import pattern as indexing_pattern
from gasolve.indexing.budget import BudgetSpent, WorkBudget
from gasolve.indexing.dichotomy import DichotomySettings, surviving_boxes
from gasolve.indexing.pattern import IndexingSettings, _higher_symmetry, zero_grid
from gasolve.indexing.peaks import PeakSet
from gasolve.indexing.solutions import SearchCut, search_system

WAVELENGTH = 1.5405981


def _peaks(n_lines: int = 20) -> PeakSet:
    two_theta = np.linspace(15.0, 60.0, n_lines)
    return PeakSet(two_theta, np.full(n_lines, 0.002), np.ones(n_lines), np.full(n_lines, 0.1))


def _searches(monkeypatch, boxes_per_zero: int) -> list[float]:
    """Replace the search of one zero by one that charges ``boxes_per_zero`` boxes to the budget and overflows the
    box limit with nothing found, as simulated Dy2TiO5 does at every zero; return the zeros searched (by the
    first line's Q, which the zero shifts)."""
    searched: list[float] = []

    def overflowing(q_obs, q_tol, settings, systems, max_volume, budget=None, overflowed=None, **_):
        searched.append(float(q_obs[0]))
        budget.charge(boxes_per_zero)
        overflowed.append("monoclinic")
        return [], ["monoclinic: more than 2000000 boxes survive at level 3 (in the shell 400-500 Å³)"]

    monkeypatch.setattr(indexing_pattern, "_search", overflowing)
    return searched


def test_an_overflow_at_one_zero_leaves_the_other_zeros_searched(monkeypatch):
    searched = _searches(monkeypatch, boxes_per_zero=1_000)
    peaks = _peaks()
    settings = IndexingSettings(systems=("monoclinic",), triclinic_zero_order=False)
    found, notes = _higher_symmetry(peaks, np.arange(20), WAVELENGTH, 0.02, settings)
    assert found == []
    assert len(searched) == len(zero_grid(settings.zero_step, settings.max_zero)) == 7
    assert len(set(searched)) == 7
    assert not any("not searched" in note for note in notes)


def test_the_box_budget_ends_the_search_over_the_zeros_with_a_note(monkeypatch):
    searched = _searches(monkeypatch, boxes_per_zero=25_000_000)
    settings = IndexingSettings(systems=("monoclinic",), triclinic_zero_order=False, monoclinic_boxes=60_000_000)
    _, notes = _higher_symmetry(_peaks(), np.arange(20), WAVELENGTH, 0.02, settings)
    assert len(searched) == 3  # 25, 50, then 75 million boxes: spent after the third zero
    assert any("box budget (60,000,000 boxes) spent before zero" in n and "4 of 7 zero shifts" in n for n in notes)


def test_a_spent_budget_stops_the_dichotomy_and_keeps_what_was_found():
    # Lines of a real monoclinic cell (Cs2Sr2O3 of the blind benchmark, tests/test_indexing_monoclinic_split.py).
    from tests.test_indexing_monoclinic_split import _lines

    q, q_tol = _lines()
    settings = DichotomySettings(max_unindexed=1, max_volume=400.0)
    tiny = WorkBudget(1_000)
    with pytest.raises(BudgetSpent, match="box budget"):
        surviving_boxes("monoclinic", q, q_tol, settings, volume_shell=(0.0, 100.0), budget=tiny)
    assert tiny.used >= 1_000
    # The cell (363 Å³) is found in the 350-400 Å³ sub-shell; a budget that runs out in the sub-shells after it
    # keeps it (SearchCut), one that runs out before it finds nothing (BudgetSpent).
    to_the_cell = WorkBudget(10**9)
    assert search_system("monoclinic", q, q_tol, settings, budget=to_the_cell)
    wider = DichotomySettings(max_unindexed=1, max_volume=500.0)
    with pytest.raises(SearchCut, match="box budget") as cut:
        search_system("monoclinic", q, q_tol, wider, budget=WorkBudget(to_the_cell.used + 1_000))
    assert len(cut.value.solutions) == 1
    with pytest.raises(BudgetSpent):
        search_system("monoclinic", q, q_tol, wider, budget=WorkBudget(to_the_cell.used - 1_000))
