"""A supercell whose extra lines catch impurity lines beyond chance but whose Pawley fit finds nothing at its other
extra reflections goes behind its subcell (gasolve.indexing.pattern._supercells_by_chance,
gasolve.indexing.superstructure.WeakLines.silent)."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.indexing.figures_of_merit import q_from_two_theta, two_theta_from_q
from gasolve.indexing.lattice import calculated_q
from gasolve.indexing.pattern import CellCandidate, _supercells_by_chance
from gasolve.indexing.solutions import IndexingSolution
from gasolve.indexing.superstructure import PawleyReflections, WeakLines

WAVELENGTH = 1.5406
#: The C2/m cell of simulated CdBi3O7's neighbour Sc2FeSi2 (any mC cell serves): its mP cell of the same axes is
#: a supercell of index 2.
CELL = (9.881, 3.983, 9.407, 90.0, 118.56, 90.0)
FWHM = 0.08


def _lines(bravais: str, top: float = 62.0) -> np.ndarray:
    q_max = float(q_from_two_theta(np.array([top]), WAVELENGTH, 0.0)[0])
    return two_theta_from_q(calculated_q(CELL, bravais, q_max), WAVELENGTH)


def _candidate(bravais: str, positions: np.ndarray, z: np.ndarray) -> CellCandidate:
    volume = CELL[0] * CELL[1] * CELL[2] * np.sin(np.radians(CELL[4]))
    solution = IndexingSolution(
        cell=CELL,
        bravais=bravais,
        crystal_system="monoclinic",
        niggli=CELL,
        volume=volume,
        n_indexed=17,
        n_lines=20,
        m20=50.0,
        searched_as="monoclinic",
        m20_penalised=50.0,
    )
    reflections = PawleyReflections(positions, z, np.ones(len(z)), np.full(len(z), FWHM), (5.0, 70.0))
    return CellCandidate(solution, 0.0, 0.0, "", pawley_rwp=0.03, pawley_reflections=reflections)


def _pattern(z_extra: np.ndarray):
    """The mP supercell and mC subcell, and observed lines: the subcell's and three of the extra ones (impurity
    lines that happen to fall on the supercell's extra lines)."""
    sub = _lines("mC")
    full = _lines("mP")
    is_extra = np.min(np.abs(full[:, None] - sub[None, :]), axis=1) > 0.1
    observed = np.sort(np.concatenate([sub, full[is_extra][[2, 9, 17]]]))
    intensities = np.full(len(full), 100.0)
    intensities[is_extra] = z_extra[: int(is_extra.sum())]
    large = _candidate("mP", full, intensities)
    small = _candidate("mC", sub, np.full(len(sub), 100.0))
    return large, small, observed, int(is_extra.sum())


def test_silent_needs_enough_reflections_and_no_more_than_chance():
    assert WeakLines(44, 16.5, 0.76, 0.9).silent  # CdBi3O7's mP cell
    assert not WeakLines(12, 1.7, 0.91, 0.94).silent  # too few to judge
    assert not WeakLines(39, 101.7, 6.7e-12, 4.3e-7).silent  # Te(HO2)2's true mP cell
    assert not WeakLines(30, 40.0, 0.04, 0.1).silent


def test_a_supercell_silent_between_the_lines_goes_behind_its_subcell():
    rng = np.random.default_rng(3)
    large, small, observed, n_extra = _pattern(rng.standard_normal(400))
    assert n_extra >= 30
    found = _supercells_by_chance([large, small], observed, WAVELENGTH, 0.02)
    assert id(large) in found and found[id(large)][0] is small
    assert "finds nothing" in found[id(large)][1] and "impurity lines" in found[id(large)][1]


def test_a_supercell_whose_weak_reflections_carry_intensity_stays():
    rng = np.random.default_rng(3)
    large, small, observed, _ = _pattern(rng.standard_normal(400) + 3.0)
    assert _supercells_by_chance([large, small], observed, WAVELENGTH, 0.02) == {}


@pytest.mark.parametrize("missing", ["large", "small"])
def test_without_a_pawley_fit_only_the_binomial_test_applies(missing):
    rng = np.random.default_rng(3)
    large, small, observed, _ = _pattern(rng.standard_normal(400))
    if missing == "large":
        large = CellCandidate(large.solution, 0.0, 0.0, "", pawley_rwp=0.03)
    else:
        small = CellCandidate(small.solution, 0.0, 0.0, "", pawley_rwp=0.03)
    assert _supercells_by_chance([large, small], observed, WAVELENGTH, 0.02) == {}


def test_a_supercell_that_catches_no_line_and_is_silent_goes_behind():
    # Simulated Dy2Pd2Pb (P4/mbm) searched with blends widened: its (a, a, 2c) cell catches none of the 8 lines
    # the true cell leaves out, and its 26 extra reflections give chance 0.94.
    rng = np.random.default_rng(5)
    large, small, _, _ = _pattern(rng.standard_normal(400))
    observed = small.pawley_reflections.two_theta
    found = _supercells_by_chance([large, small], observed, WAVELENGTH, 0.02)
    assert "no sign of the larger cell" in found[id(large)][1]
    large, small, _, _ = _pattern(rng.standard_normal(400) + 3.0)
    assert _supercells_by_chance([large, small], observed, WAVELENGTH, 0.02) == {}
