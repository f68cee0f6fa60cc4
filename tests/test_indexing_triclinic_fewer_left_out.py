"""The triclinic sweeps (gasolve.indexing.pattern._triclinic, _basis_sweep): a sound cell that the sweep of reduced
bases finds only by leaving two or more lines out does not end the triclinic search before the sweep from zones
has looked for cells that leave fewer out.

Simulated Cs2PbO2 (P-1, indexing benchmark, report half) is the case: one of its reduced reciprocal axial lines
has no intensity, so the reduced bases found a wrong cell of 514 Å³ indexing 18 of 20 lines (M20 36), which ended
the search; the zones find the true cell (617 Å³) indexing all 20 at 1.5 million boxes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import gasolve.indexing.pattern as pattern
from gasolve.indexing.pattern import IndexingSettings, _basis_sweep, _triclinic
from gasolve.indexing.peaks import PeakSet
from gasolve.indexing.solutions import IndexingSolution

WAVELENGTH = 1.540598
SETTINGS = IndexingSettings(triclinic_max_volume=200.0)


def _peaks(n: int = 20) -> PeakSet:
    two_theta = np.linspace(10.0, 50.0, n)
    return PeakSet(two_theta, np.full(n, 0.002), np.ones(n), np.full(n, 0.1))


def _solution(n_indexed: int, m20: float) -> IndexingSolution:
    cell = (4.0, 5.0, 6.0, 80.0, 85.0, 95.0)
    return IndexingSolution(cell, "aP", "triclinic", cell, 115.0, n_indexed, 20, m20, "triclinic")


def _sweeps(monkeypatch, levels: dict[str, int | None]) -> list[tuple[str, int | None]]:
    """Replace the sweeps by ones that find a cell at ``levels[bases]`` lines left out (None: nothing), and the
    search of any basis by one that fails the test when it runs; the sweeps' (bases, below) calls, in order."""
    calls: list[tuple[str, int | None]] = []

    def sweep(lines, settings, by_zero, retry, bases, boxes, below=None):
        calls.append((bases, below))
        level = levels[bases]
        if level is None or (below is not None and level >= below):
            return by_zero, [f"{bases} swept"], None
        return [*by_zero, (0.0, _solution(20 - level, 40.0 + level))], [f"{bases} swept"], level

    def any_basis(*args, **kwargs):
        raise AssertionError("the search of any basis ran")

    monkeypatch.setattr(pattern, "_basis_sweep", sweep)
    monkeypatch.setattr(pattern, "_triclinic_pass", any_basis)
    return calls


def test_a_cell_leaving_two_lines_out_lets_the_zones_look_for_one_leaving_fewer(monkeypatch):
    calls = _sweeps(monkeypatch, {"reduced": 2, "zones": 1})
    found, notes = _triclinic(_peaks(), np.arange(20), WAVELENGTH, 0.02, SETTINGS, [], [])
    assert calls == [("reduced", None), ("zones", 2)]
    assert sorted(s.n_indexed for _, s in found) == [18, 19]  # both kept; the ranking decides
    assert any("a sound cell leaving 2 lines out" in note for note in notes)


def test_the_search_ends_after_the_zones_even_when_they_find_nothing(monkeypatch):
    calls = _sweeps(monkeypatch, {"reduced": 3, "zones": None})
    found, _ = _triclinic(_peaks(), np.arange(20), WAVELENGTH, 0.02, SETTINGS, [], [])
    assert calls == [("reduced", None), ("zones", 3)]
    assert [s.n_indexed for _, s in found] == [17]


def test_a_cell_leaving_one_line_out_ends_the_search_at_once(monkeypatch):
    calls = _sweeps(monkeypatch, {"reduced": 1, "zones": 1})
    found, _ = _triclinic(_peaks(), np.arange(20), WAVELENGTH, 0.02, SETTINGS, [], [])
    assert calls == [("reduced", None)]
    assert [s.n_indexed for _, s in found] == [19]


def test_nothing_found_by_the_sweeps_goes_on_to_any_basis(monkeypatch):
    _sweeps(monkeypatch, {"reduced": None, "zones": None})
    with pytest.raises(AssertionError, match="any basis ran"):
        _triclinic(_peaks(), np.arange(20), WAVELENGTH, 0.02, SETTINGS, [], [])


@pytest.mark.parametrize(("below", "levels"), [(None, [1, 2, 3]), (3, [1, 2]), (2, [1])])
def test_a_sweep_searches_only_the_levels_below(monkeypatch, below, levels):
    searched: list[int] = []

    def one_pass(*args, **kwargs):
        searched.append(args[6].max_unindexed)
        return [], []

    monkeypatch.setattr(pattern, "_triclinic_pass", one_pass)
    lines = (_peaks(), np.arange(20), WAVELENGTH, 0.02, [0.0], 200.0)
    settings = replace(SETTINGS, max_unindexed=1, triclinic_reduced_unindexed=3)
    by_zero, _, level = _basis_sweep(lines, settings, [], 2, "reduced", (1000, 1000), below)
    assert searched == levels
    assert by_zero == [] and level is None
