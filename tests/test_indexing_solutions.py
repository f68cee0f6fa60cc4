"""Indexing solutions: centring and Bravais type of a lattice, and the whole line-list indexing on known cells."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.diffraction.reflections import generate_reflections
from gasolve.indexing.dichotomy import DichotomySettings
from gasolve.indexing.lattice import bravais_lattice, calculated_q, niggli_cell, primitive_basis, same_lattice
from gasolve.indexing.solutions import index_lines

WAVELENGTH = 1.5406


@pytest.mark.parametrize(
    ("cell", "centring", "bravais"),
    [
        ((5.64, 5.64, 5.64, 90, 90, 90), "F", "cF"),
        ((4.759, 4.759, 12.99, 90, 90, 120), "R", "hR"),
        ((5.0, 5.0, 7.071, 90, 90, 90), "I", "cF"),  # a tI cell with c = a sqrt(2) is the cF lattice
        ((5.4, 7.0, 8.5, 90, 90, 90), "C", "oC"),
        ((7.1, 5.3, 9.2, 90, 104.5, 90), "C", "mC"),
        ((7.1, 5.3, 9.2, 90, 104.5, 90), "P", "mP"),
    ],
)
def test_bravais_type_of_centred_cells(cell, centring, bravais):
    primitive = primitive_basis(cell, centring)
    found, _, conventional = bravais_lattice(primitive)
    assert found == bravais
    factor = {"P": 1, "C": 2, "I": 2, "F": 4, "R": 3}[centring]
    assert abs(abs(np.linalg.det(primitive)) * factor - UnitCell(*cell).volume) < 1e-6 * UnitCell(*cell).volume
    assert same_lattice(niggli_cell(primitive_basis(conventional, bravais[1])), niggli_cell(primitive))


def test_calculated_lines_of_a_face_centred_cubic_lattice():
    q = calculated_q((5.64, 5.64, 5.64, 90, 90, 90), "cF", 20 / 5.64**2)
    np.testing.assert_allclose(q * 5.64**2, [3, 4, 8, 11, 12, 16, 19, 20])


def _observed(cell, space_group, n_lines=20, error_deg=0.01, seed=0):
    """First lines of a structure's pattern with a random 2θ error, and a 0.03° tolerance."""
    rng = np.random.default_rng(seed)
    reflections = generate_reflections(UnitCell(*cell), SpaceGroup.from_symbol(space_group), 0.8)
    q = np.unique(np.round(1 / reflections.d_spacing**2, 6))[:n_lines]
    two_theta = 2 * np.arcsin(WAVELENGTH * np.sqrt(q) / 2) + np.radians(error_deg) * rng.standard_normal(len(q))
    q_obs = (2 * np.sin(two_theta / 2) / WAVELENGTH) ** 2
    q_tol = 2 * np.sin(two_theta) / WAVELENGTH**2 * np.radians(0.03)
    return q_obs, q_tol


@pytest.mark.parametrize(
    ("cell", "space_group", "bravais"),
    [
        ((5.64, 5.64, 5.64, 90, 90, 90), "Fm-3m", "cF"),
        ((4.594, 4.594, 2.959, 90, 90, 90), "P4_2/mnm", "tP"),
        ((4.759, 4.759, 12.99, 90, 90, 120), "R-3c", "hR"),
        ((8.48, 5.398, 6.958, 90, 90, 90), "Pnma", "oP"),
        ((10.2, 6.1, 7.3, 90, 90, 90), "Cmcm", "oC"),
        ((7.1, 5.3, 9.2, 90, 104.5, 90), "P21/c", "mP"),
    ],
)
def test_index_lines_ranks_the_true_lattice_first(cell, space_group, bravais):
    q_obs, q_tol = _observed(cell, space_group)
    solutions = index_lines(q_obs, q_tol, DichotomySettings(max_volume=800))
    best = solutions[0]
    assert best.bravais == bravais
    reference = niggli_cell(primitive_basis(cell, bravais[1] if bravais != "hR" else "R"))
    assert same_lattice(best.niggli, reference, length_tol=0.002, angle_tol=0.1)
    assert best.n_indexed == best.n_lines == len(q_obs) and best.m20 > 20
    assert all(other.m20 <= best.m20 or other.crystal_system != best.crystal_system for other in solutions[1:])


def test_index_lines_refuses_bad_input():
    with pytest.raises(ValueError, match="finite and positive"):
        index_lines(np.array([0.1, np.nan]), np.array([1e-4, 1e-4]))
