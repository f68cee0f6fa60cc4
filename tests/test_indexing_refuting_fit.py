"""A convincing first cell whose Pawley fit is refuted: the lines are searched again as if nothing had convinced
(gasolve.indexing.pattern, ``IndexingSettings.refuting_fit``)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

import gasolve.indexing.pattern as pattern_module
from gasolve.indexing.pattern import CellCandidate, IndexingResult, IndexingSettings, _refuted_by_fit
from gasolve.indexing.solutions import IndexingSolution


def _candidate(cell, bravais, system, m20, rwp):
    a, b, c = cell[:3]
    solution = IndexingSolution(
        cell=cell,
        bravais=bravais,
        crystal_system=system,
        niggli=cell,
        volume=a * b * c * np.sin(np.radians(cell[4])),
        n_indexed=17,
        n_lines=20,
        m20=m20,
        searched_as=system,
        m20_penalised=m20,
    )
    return CellCandidate(solution, 0.0, 0.0, "", pawley_rwp=rwp)


def _result(*candidates):
    return IndexingResult(tuple(candidates), np.zeros(20), np.zeros(20), ("first search",))


# Sc2FeSi2 of the indexing benchmark's tune half: the oP cell convinced (M20 34.2) with Rwp 0.106; its supercells
# fitted at 0.029 and 0.033.
ORTHORHOMBIC = ((3.984, 9.405, 17.356, 90, 90, 90), "oP", "orthorhombic")
TRICLINIC = ((7.967, 10.211, 17.808, 84.9, 77.1, 67.1), "aP", "triclinic")


def test_a_convincing_cell_that_fits_far_worse_than_another_is_refuted():
    result = _result(_candidate(*ORTHORHOMBIC, 34.2, 0.1056), _candidate(*TRICLINIC, 10.7, 0.0286))
    note = _refuted_by_fit(result, IndexingSettings(), cut_short=True)
    assert note is not None and "3.7 times worse" in note and "searched again" in note


def test_the_convincing_cell_need_not_be_first():
    # The same pattern at the current ordering: a non-convincing supercell of the oP cell fits best and goes first.
    supercell = ((18.813, 7.967, 17.357, 90, 90.13, 90), "mC", "monoclinic")
    result = _result(_candidate(*supercell, 13.4, 0.0296), _candidate(*ORTHORHOMBIC, 34.2, 0.1056))
    assert "3.6 times worse" in _refuted_by_fit(result, IndexingSettings(), cut_short=True)
    # A convincing cell that fits within twice the best is not refuted, however badly another convincing one fits.
    good = _candidate(*TRICLINIC, 25.0, 0.040)
    assert _refuted_by_fit(_result(*result.candidates, good), IndexingSettings(), cut_short=True) is None


@pytest.mark.parametrize(
    ("m20", "rwp", "settings"),
    [
        # 1.75 times: a larger cell's free intensities (CsPS3 of the benchmark: 1.87)
        (34.2, 0.050, IndexingSettings()),
        (12.0, 0.1056, IndexingSettings()),  # not convincing: nothing was cut short
        (34.2, 0.1056, IndexingSettings(refuting_fit=0.0)),  # off
        (34.2, 0.1056, IndexingSettings(exhaustive=True)),  # nothing was cut short
        (34.2, 0.1056, IndexingSettings(convincing_m20=math.inf)),  # the search again
    ],
)
def test_no_new_search(m20, rwp, settings):
    result = _result(_candidate(*ORTHORHOMBIC, m20, rwp), _candidate(*TRICLINIC, 10.7, 0.0286))
    assert _refuted_by_fit(result, settings, cut_short=True) is None


def test_the_search_again_runs_as_if_nothing_had_convinced_and_its_result_is_kept(monkeypatch):
    refuted = _result(_candidate(*ORTHORHOMBIC, 34.2, 0.1056), _candidate(*TRICLINIC, 10.7, 0.0286))
    better = replace(_result(_candidate(*TRICLINIC, 10.7, 0.0286)), notes=("second search",))
    seen = []

    def search(pattern, radiation, settings, peaks):
        seen.append(settings.convincing_m20)
        return (refuted, True) if len(seen) == 1 else (better, False)

    monkeypatch.setattr(pattern_module, "_search_and_check", search)
    out = pattern_module._index_peaks(None, None, IndexingSettings(), None)
    assert seen == [20.0, math.inf]
    assert out.candidates == better.candidates
    assert out.notes[0] == "first search" and "searched again" in out.notes[1] and out.notes[2] == "second search"


def test_a_search_that_nothing_cut_short_is_not_repeated(monkeypatch):
    # Report-half RbBiF4: its convincing mC cell (refuted 4.0 times) came after a search that had run in full.
    refuted = _result(_candidate(*TRICLINIC, 10.7, 0.0286), _candidate(*ORTHORHOMBIC, 34.2, 0.1056))
    seen = []

    def search(pattern, radiation, settings, peaks):
        seen.append(settings.convincing_m20)
        return refuted, False

    monkeypatch.setattr(pattern_module, "_search_and_check", search)
    assert pattern_module._index_peaks(None, None, IndexingSettings(), None) is refuted
    assert seen == [20.0]
    assert _refuted_by_fit(refuted, IndexingSettings(), cut_short=False) is None


@pytest.mark.slow
def test_sc2fesi2_of_the_benchmark_is_indexed_in_its_true_cell():
    # The benchmark's own tune-half pattern (zero -0.066°, three impurity lines, one among the first 20, and two
    # blends): its C2/m cell leaves three lines out at the plain tolerance; an oP cell of twice its volume
    # convinced (M20 34.2) and kept the monoclinic second pass and the triclinic search from running.
    from benchmarks.indexing import same_lattice
    from gasolve.indexing.pattern import index_pattern
    from tests.simulated import benchmark_pattern

    pattern, radiation, structure = benchmark_pattern("Sc2FeSi2", "mp-3618")
    result = index_pattern(pattern, radiation)
    first = result.candidates[0]
    assert any("searched again" in note for note in result.notes)
    assert first.solution.bravais == "mC"
    # The MP CIF holds the primitive cell.
    assert same_lattice(first.pawley_cell or first.solution.cell, "mC", structure.lattice.parameters, "P")
