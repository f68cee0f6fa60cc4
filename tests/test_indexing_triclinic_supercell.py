"""Supercells of a triclinic first cell (gasolve.indexing.pattern._supercells_of_first, _weakly_supported): the
triclinic search stops at the smallest cell that indexes the lines, so a pseudo-subcell hides the true cell. A
superlattice whose extra lines catch some of the lines the first cell misses (at least 3, chance below 5 %) is
Pawley-checked, and kept only when its weak reflections carry intensity beyond chance."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.indexing.subcells import CHANCE_LEVEL, SUPERCELL_LEVEL, supported_supercells
from tests.simulated import benchmark_pattern


def _lines(cell, two_theta_max=60.0):
    """2θ (degrees, Cu Kα1) of the distinct lines of a triclinic cell (a, b, c, α, β, γ)."""
    from gasolve.crystal.cell import UnitCell

    g_star = np.linalg.inv(UnitCell(*cell).metric)
    r = np.arange(-6, 7)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    q = np.unique(np.round(np.einsum("ni,ij,nj->n", hkl, g_star, hkl), 7))
    q = q[q > 0]
    two_theta = 2 * np.degrees(np.arcsin(np.clip(1.540598 * np.sqrt(q) / 2, 0, 1)))
    return two_theta[two_theta < two_theta_max]


def test_the_levels_of_the_line_test_are_parameters():
    # The lines of a cell doubled along a, seen from the half cell: its superlattices catch what it misses.
    true = (8.2, 5.1, 6.3, 82.0, 86.0, 97.0)
    half = (4.1, 5.1, 6.3, 82.0, 86.0, 97.0)
    lines = _lines(true)
    record = (half, "aP", 0.0)
    strict = supported_supercells(record, lines, 1.540598, 0.02)
    loose = supported_supercells(record, lines, 1.540598, 0.02, CHANCE_LEVEL, 3)
    assert len(loose) >= len(strict) >= 1
    assert all(test.p_value < SUPERCELL_LEVEL for _, test in strict)
    assert all(test.p_value < CHANCE_LEVEL and test.caught >= 3 for _, test in loose)


@pytest.mark.slow
def test_simulated_rese2_gets_its_true_cell_not_the_half_cell():
    # Report-half ReSe2 (P-1, 273 Å³): the triclinic search's first cell is half of it (136 Å³, 19 of 20 lines,
    # M20 221). The superlattice of the true volume catches 5 of the 7 lines the half cell misses among 58
    # (p = 4·10⁻⁵) and its 71 extra reflections away from the lines carry intensity (chance 10⁻⁵⁶).
    from pymatgen.core import Lattice

    from gasolve.diffraction.noise import calibrated_pattern
    from gasolve.indexing.pattern import IndexingSettings, index_pattern

    pattern, radiation, structure = benchmark_pattern("ReSe2", "mp-541582")
    pattern, _ = calibrated_pattern(pattern)
    result = index_pattern(pattern, radiation, IndexingSettings())
    first = result.candidates[0]
    found = Lattice.from_parameters(*(first.pawley_cell or first.solution.cell))
    assert first.solution.bravais == "aP"
    assert found.volume == pytest.approx(structure.lattice.volume, rel=0.01)
    assert structure.lattice.find_mapping(found, 0.01, 1.0) is not None
    assert any("supercell(s) of the triclinic first cell checked" in note for note in result.notes)
