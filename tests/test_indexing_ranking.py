"""Ranking cells by the evidence of the lines that test them (gasolve.indexing.solutions.ranking_figure), the
second pass's systems and volumes, and patterns with few lines (gasolve.indexing.pattern)."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.diffraction.wavelength import parse_radiation
from gasolve.indexing.pattern import CellCandidate, IndexingSettings, _index_peaks, _smaller_first
from gasolve.indexing.peaks import PeakSet
from gasolve.indexing.solutions import IndexingSolution, rank_solutions, ranking_figure
from gasolve.io.patterns import ObservedPattern

CUKA1 = parse_radiation("CuKa1")
#: Cubic, tetragonal, hexagonal, orthorhombic and monoclinic: no triclinic search (minutes).
NO_TRICLINIC = ("cubic", "tetragonal", "hexagonal", "orthorhombic", "monoclinic")


def _solution(cell, bravais, system, m20, merit, n_indexed, n_lines):
    a, b, c = cell[:3]
    return IndexingSolution(
        cell=cell,
        bravais=bravais,
        crystal_system=system,
        niggli=cell,
        volume=a * b * c * np.sin(np.radians(cell[4])),
        n_indexed=n_indexed,
        n_lines=n_lines,
        m20=m20,
        searched_as=system,
        m20_penalised=merit,
    )


def test_ranking_figure_hand_checked():
    # A cubic cell (one parameter): M_N itself.
    assert ranking_figure(705.5, 8, "cubic") == pytest.approx(705.5)
    # A monoclinic cell (four parameters) on 8 lines: only 4 of them test it; the same evidence from a cubic
    # cell would take M^(4/7): 876^(4/7) = exp(4/7 · 6.7754) = 48.02.
    assert ranking_figure(876.0, 8, "monoclinic") == pytest.approx(48.02, rel=1e-3)
    # 20 lines, orthorhombic: mild (201^(17/19) = 115.0); more than 20 lines count as 20.
    assert ranking_figure(201.0, 20, "orthorhombic") == pytest.approx(115.0, rel=1e-3)
    assert ranking_figure(201.0, 25, "orthorhombic") == ranking_figure(201.0, 20, "orthorhombic")
    # Not above 1, or no lines beyond the parameters: unchanged or no evidence.
    assert ranking_figure(0.5, 8, "monoclinic") == 0.5
    assert ranking_figure(50.0, 5, "triclinic") == 1.0


def test_a_tiny_low_symmetry_cell_of_few_lines_ranks_behind_the_cubic_cell():
    # 8 lines: an mC cell of 36 Å³ indexes 7 (M 1054, 876 with the unindexed line counted), the cubic cell 5.
    tiny = _solution((3.386, 4.759, 2.256, 90, 96.37, 90), "mC", "monoclinic", 1054.3, 875.8, 7, 8)
    cubic = _solution((4.759, 4.759, 4.759, 90, 90, 90), "cF", "cubic", 1828.0, 300.0, 5, 8)
    assert rank_solutions([tiny, cubic]) == [cubic, tiny]
    # Before: ranked by M with the unindexed lines counted, the cubic cell was not within a factor 2 of it.
    assert cubic.merit < 0.5 * tiny.merit


def test_a_smaller_cell_with_more_parameters_does_not_pass_a_cubic_cell_that_fits_as_well():
    # 11 lines, 8 indexed by both: an hP cell of 42.5 Å³ (a = 2 a_c/√3, c = a_c/√2, no sublattice of the cubic
    # one) with a slightly higher M than the cP cell of 52.1 Å³, the Pawley fits alike. Before, the smaller cell
    # went first as if the cubic cell were its pseudo-symmetric supercell; with its second parameter counted it
    # does not (790^(9/10) = 406 < 1000).
    hexagonal = _solution((4.3127, 4.3127, 2.6410, 90, 90, 120), "hP", "hexagonal", 13778.7, 790.1, 8, 11)
    cubic = _solution((3.7349, 3.7349, 3.7349, 90, 90, 90), "cP", "cubic", 12948.3, 1000.5, 8, 11)
    hexagonal_c = CellCandidate(hexagonal, 0.0, 0.0, "", pawley_rwp=0.0460)
    cubic_c = CellCandidate(cubic, 0.0, 0.0, "", pawley_rwp=0.0461)
    assert _smaller_first([cubic_c, hexagonal_c], 1.05) == [cubic_c, hexagonal_c]


def _peaks(two_theta, esd=0.0005):
    two_theta = np.asarray(two_theta, dtype=float)
    n = len(two_theta)
    return PeakSet(two_theta, np.full(n, esd), np.full(n, 1000.0), np.full(n, 0.15))


def _dummy_pattern():
    two_theta = np.arange(5.0, 80.0, 0.02)
    y = np.full(len(two_theta), 100.0)
    return ObservedPattern(two_theta, y, np.sqrt(y), "hand-built lines")


def _bragg(a, m):
    return 2 * np.degrees(np.arcsin(CUKA1.primary * np.sqrt(np.asarray(m, float)) / (2 * a)))


@pytest.mark.slow
def test_an_fcc_pattern_with_three_impurity_lines_is_not_taken_for_a_tiny_monoclinic_cell():
    # The five lines of an F lattice with a = 4.759 Å (111, 200, 220, 311, 222) and three foreign lines, as the
    # peak search found them in a simulated pattern (its zero shift, +0.028°, left in). Before, the first pass
    # found mC and mP cells of 36 and 18 Å³ that index 7 of the 8 lines (M ~ 1000), which limited the second pass
    # to 18 Å³, so the cubic cell (27 Å³ primitive) was never tried. About 2 min of CPU.
    lines = [13.4209, 32.5876, 37.8010, 40.2092, 54.5143, 64.9586, 68.2310, 77.1629]
    settings = IndexingSettings(systems=NO_TRICLINIC, n_pawley=0)
    result = _index_peaks(_dummy_pattern(), CUKA1, settings, _peaks(lines))
    best = result.candidates[0].solution
    assert best.bravais == "cF" and best.cell[0] == pytest.approx(4.759, abs=0.005)
    assert best.n_indexed == 5
    assert any("cubic, hexagonal up to 1500 Å³" in note for note in result.notes)


def test_seven_lines_of_a_body_centred_cubic_metal_are_indexed():
    # A bcc cell with a = 4.7536 Å has 7 lines below 80° with Cu Kα1 (110 ... 321); before, fewer than 8 lines
    # were refused. Only the systems with at most 7 - 4 = 3 free parameters are searched.
    lines = _bragg(4.7536, [2, 4, 6, 8, 10, 12, 14])
    settings = IndexingSettings(n_pawley=0)
    result = _index_peaks(_dummy_pattern(), CUKA1, settings, _peaks(lines))
    best = result.candidates[0].solution
    assert best.bravais == "cI" and best.cell[0] == pytest.approx(4.7536, abs=0.002)
    assert any(
        note.startswith("only 7 lines: searched cubic, tetragonal, hexagonal, orthorhombic") for note in result.notes
    )


def test_four_lines_are_too_few():
    from gasolve.errors import InputError

    with pytest.raises(InputError, match="indexing needs at least 5"):
        _index_peaks(_dummy_pattern(), CUKA1, IndexingSettings(n_pawley=0), _peaks(_bragg(4.7536, [2, 4, 6, 8])))


def test_a_cell_indexing_two_of_five_lines_is_not_a_candidate():
    # Simulated GaFeNi2 (Fm-3m, a = 5.750 Å; indexing benchmark, report half) as the peak search found it: 111,
    # 220, 311 and 400, and an impurity line at 8.23°; its zero shift (-0.03°) left in. The second pass, three
    # lines allowed unindexed, found cP and cI cells of 8 and 24 Å³ that index 2 of the 5 (M5 3,200), which came
    # before the true cF cell (4 of 5, M5 1,300): with one free parameter, 2 indexed lines test a cubic cell once.
    lines = [8.2324, 26.7441, 44.4439, 52.6655, 64.7158]
    esd = [0.0026, 0.0037, 0.0002, 0.0065, 0.0007]
    peaks = PeakSet(np.array(lines), np.array(esd), np.full(5, 1000.0), np.full(5, 0.15))
    result = _index_peaks(_dummy_pattern(), CUKA1, IndexingSettings(n_pawley=0), peaks)
    best = result.candidates[0].solution
    assert best.bravais == "cF" and best.cell[0] == pytest.approx(5.750, abs=0.01)
    assert all(c.solution.n_indexed >= 1 + 3 for c in result.candidates)
    assert any("dropped: they index fewer than 3 lines beyond their free parameters" in n for n in result.notes)
