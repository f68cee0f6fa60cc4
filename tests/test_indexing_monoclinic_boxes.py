"""The monoclinic dichotomy searches small cells first (sub-shells of 100 Å³), so that a small cell is found before
the boxes of larger cells run into the box limit, and keeps what it found when a later shell overflows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.diffraction.reflections import generate_reflections
from gasolve.indexing.dichotomy import DichotomySettings, surviving_boxes
from gasolve.indexing.lattice import niggli_cell, primitive_basis, same_lattice
from gasolve.indexing.solutions import SHELL_WIDTH, _volume_shells, index_lines

WAVELENGTH = 1.5406
#: Te(HO2)2 (mp-625526) of the indexing benchmark, in P2_1/c: V = 144 Å³, first line at 16.1° 2θ.
CELL = (5.949, 4.970, 5.266, 90.0, 112.28, 90.0)


def _lines(cell, space_group, n_lines=20, tolerance_deg=0.02):
    """First ``n_lines`` distinct lines (exact positions) and a 2θ tolerance of ``tolerance_deg`` (Å⁻²)."""
    reflections = generate_reflections(UnitCell(*cell), SpaceGroup.from_symbol(space_group), 1.2)
    q = np.unique(np.round(1 / reflections.d_spacing**2, 5))[:n_lines]
    two_theta = 2 * np.arcsin(WAVELENGTH * np.sqrt(q) / 2)
    q_tol = 2 * np.sin(two_theta) / WAVELENGTH**2 * np.radians(tolerance_deg)
    return q, q_tol


@pytest.mark.parametrize("system", ["monoclinic", "orthorhombic"])
def test_volume_shells_cover_the_range_once_in_order(system):
    shells = _volume_shells(system, 1500.0)
    assert shells[0][0] == 0.0 and shells[-1][1] == 1500.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(shells))
    widths = {round(b - a, 6) for a, b in shells[:-1]}
    assert widths == ({100.0} if system == "monoclinic" else {SHELL_WIDTH})


def test_the_whole_first_shell_overflows_where_the_sub_shell_of_the_cell_does_not():
    # The condition the sub-shells are for: the 0-400 Å³ shell of these 20 lines overflows the box limit at
    # level 3 (4.2 million boxes), the 100-200 Å³ one, which holds the cell, stays far below it.
    q, q_tol = _lines(CELL, "P2_1/c")
    settings = DichotomySettings(max_unindexed=1, max_boxes=2_000_000)
    with pytest.raises(RuntimeError, match="boxes survive at level"):
        surviving_boxes("monoclinic", q, q_tol, settings, volume_shell=(0.0, 400.0))
    tighter = DichotomySettings(max_unindexed=1, max_boxes=1_000_000)
    lo, hi = surviving_boxes("monoclinic", q, q_tol, tighter, volume_shell=(100.0, 200.0))
    centre = 0.5 * (lo + hi)
    # The reduced setting of the cell (a <= c): a = 5.266, b = 4.970, c = 5.949 Å, beta = 112.28°.
    near = np.all(np.abs(centre - [5.266, 4.970, 5.949, 112.28]) <= [0.05, 0.05, 0.05, 0.5], axis=1)
    assert near.any()


def test_a_small_monoclinic_cell_indexes_first_despite_larger_shells_overflowing():
    q, q_tol = _lines(CELL, "P2_1/c")
    notes: list[str] = []
    solutions = index_lines(q, q_tol, DichotomySettings(max_unindexed=1), systems=("monoclinic",), notes=notes)
    assert solutions, notes
    best = solutions[0]
    reference = niggli_cell(primitive_basis(CELL, "P"))
    assert best.bravais == "mP"
    assert same_lattice(best.niggli, reference, length_tol=0.002, angle_tol=0.1)
    assert best.n_indexed == best.n_lines == 20 and best.m20 > 20
    # The shell after the first solution's overflowed; the search says so instead of losing the cell.
    assert any("after a solution" in note for note in notes)
