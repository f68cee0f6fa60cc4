"""Rhombohedral lattices among impurity lines (gasolve.indexing.pattern, solutions): volume bounds compare
primitive volumes, and a rhombohedral lattice is offered when only impurity lines index as reflections that R
forbids.

The lines are those of simulated NdTlSe2 (R-3m, a = 4.3313, c = 23.3309 Å in hexagonal axes: 379 Å³, 126 Å³
primitive), Cu Kα1, exact; the benchmark's pattern (`benchmarks/indexing.py`, report half) had two impurity lines
and came out hP first with the hR cell not among the candidates.
"""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.indexing.dichotomy import DichotomySettings
from gasolve.indexing.lattice import calculated_q, niggli_cell, primitive_basis
from gasolve.indexing.pattern import IndexingSettings, _search, _second_pass
from gasolve.indexing.peaks import PeakSet
from gasolve.indexing.solutions import IndexingSolution, index_lines, searched_volume

WAVELENGTH = 1.540593
CELL = (4.3313, 4.3313, 23.3309, 90.0, 90.0, 120.0)
#: 2θ tolerance of the indexing (degrees).
TOLERANCE = 0.02


def _two_theta(q: np.ndarray) -> np.ndarray:
    return 2.0 * np.degrees(np.arcsin(0.5 * WAVELENGTH * np.sqrt(q)))


def _lines(extra_q=()) -> np.ndarray:
    """2θ of the first 20 lines of the hR lattice (lines closer than twice the tolerance merged) and ``extra_q``,
    each with a Gaussian error of 0.005° (seeded)."""
    q = calculated_q(CELL, "hR", 0.45)
    two_theta = _two_theta(q)
    two_theta = two_theta[np.concatenate([[True], np.diff(two_theta) > 2 * TOLERANCE])]
    two_theta = np.sort(np.concatenate([two_theta, _two_theta(np.asarray(extra_q, dtype=float))]))[:20]
    return two_theta + np.random.default_rng(7).normal(0.0, 0.005, len(two_theta))


def _q_and_tolerance(two_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = (2.0 * np.sin(np.radians(two_theta) / 2.0) / WAVELENGTH) ** 2
    upper = (2.0 * np.sin(np.radians(two_theta + TOLERANCE) / 2.0) / WAVELENGTH) ** 2
    return q, upper - q


def _solution(cell, bravais, system, m20, n_indexed=19) -> IndexingSolution:
    """A first-pass cell as the indexing reports it (only what the bounds and the ranking read)."""
    from gasolve.crystal.cell import UnitCell

    niggli = niggli_cell(primitive_basis(cell, bravais[1]))
    return IndexingSolution(
        cell=cell,
        bravais=bravais,
        crystal_system=system,
        niggli=niggli,
        volume=float(UnitCell(*cell).volume),
        n_indexed=n_indexed,
        n_lines=20,
        m20=m20,
        searched_as=system,
        m20_penalised=m20,
    )


def _is_reference(solution: IndexingSolution) -> bool:
    return (
        solution.bravais == "hR"
        and solution.cell[0] == pytest.approx(CELL[0], rel=2e-3)
        and solution.cell[2] == pytest.approx(CELL[2], rel=2e-3)
    )


def test_searched_volume_counts_the_lattice_points_of_the_conventional_cell():
    assert searched_volume("hexagonal", 126.0) == pytest.approx(378.0)
    assert searched_volume("cubic", 100.0) == pytest.approx(400.0)
    assert searched_volume("tetragonal", 100.0) == pytest.approx(200.0)
    assert searched_volume("orthorhombic", 100.0) == pytest.approx(100.0)  # kept conventional: the cost
    assert searched_volume("triclinic", 100.0) == pytest.approx(100.0)


def test_a_convincing_cell_bounds_the_primitive_volume_not_the_hexagonal_cell():
    # A convincing tetragonal cell of 200 Å³ (from a second pass that left 3 lines out, as simulated YbBr3 gave
    # one): the hR lattice (126 Å³ primitive) is smaller and must still be searched; its hexagonal cell is 379 Å³.
    q, q_tol = _q_and_tolerance(_lines())
    assert len(q) == 20
    tetragonal = _solution((5.0, 5.0, 8.0, 90.0, 90.0, 90.0), "tP", "tetragonal", 40.0)
    found, _ = _search(
        q, q_tol, IndexingSettings(), ("hexagonal",), 1500.0, earlier=[tetragonal], searched_before=("tetragonal",)
    )
    assert any(_is_reference(s) for s in found)
    assert all(s.primitive_volume <= 1.02 * tetragonal.primitive_volume for s in found)


def test_second_pass_bounds_the_primitive_volume_of_the_convincing_cells_own_system():
    # NdTlSe2's first pass: an hP cell of the hexagonal axes (379 Å³, one impurity line indexed) and a smaller mP
    # cell (126.4 Å³) convinced; the second pass searched the hexagonal system only up to 1.02 x 126.4 Å³ of
    # hexagonal cell, which the hR lattice (126.4 Å³ primitive, 379 Å³ in hexagonal axes) is not.
    two_theta = _lines(extra_q=[1.0 / 13.83**2, 0.1741])  # two impurity lines, at 6.39° and 37.5°
    n = len(two_theta)
    peaks = PeakSet(two_theta, np.full(n, 0.002), np.ones(n), np.full(n, 0.1))
    order = np.arange(n)
    first_pass = [
        (0.0, _solution(CELL, "hP", "hexagonal", 81.0)),
        (0.0, _solution((3.7509, 4.3328, 7.8792, 90.0, 99.1265, 90.0), "mP", "monoclinic", 114.9)),
    ]
    settings = IndexingSettings(systems=("cubic", "tetragonal", "hexagonal", "orthorhombic", "monoclinic"))
    kept, notes = _second_pass(peaks, order, WAVELENGTH, TOLERANCE, settings, first_pass, [])
    assert any(_is_reference(s) for _, s in kept), notes


def test_rhombohedral_lattice_offered_when_impurity_lines_fall_on_forbidden_reflections():
    # Two impurity lines exactly on hP reflections that R forbids (100 and 103: -h+k+l not 3n in any of their
    # hexagonal equivalents): the hexagonal dichotomy's cell indexes all 20 lines as hP, and the R centring is read
    # as absent.
    hexagonal_100 = 4.0 / (3.0 * CELL[0] ** 2)
    q, q_tol = _q_and_tolerance(_lines(extra_q=[hexagonal_100, hexagonal_100 + 9.0 / CELL[2] ** 2]))
    assert len(q) == 20
    solutions = index_lines(q, q_tol, DichotomySettings(max_volume=500.0, max_unindexed=3), systems=("hexagonal",))
    reference = [s for s in solutions if _is_reference(s)]
    assert reference and reference[0].n_indexed == 18
    assert any(s.bravais == "hP" and s.n_indexed == 20 for s in solutions)
    assert _is_reference(solutions[0])  # a third of the calculated lines outweighs the two lines left out
