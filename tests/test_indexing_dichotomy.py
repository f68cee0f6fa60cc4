"""Successive-dichotomy indexing (gasolve.indexing): parametrisations, the box kernel, and known cells found."""

from __future__ import annotations

import numpy as np
import pytest
from naive import unindexed_lines

from gasolve.crystal.cell import UnitCell
from gasolve.indexing.dichotomy import (
    DichotomySettings,
    axial_multipliers,
    count_unindexed,
    count_unindexed_axial,
    refine_reciprocal,
    surviving_boxes,
)
from gasolve.indexing.systems import (
    SYSTEMS,
    box_reciprocal_bounds,
    coefficient_matrix,
    direct_cell,
    miller_indices,
    reciprocal_parameters,
)

#: One cell per system, in the conventional order the search returns (orthorhombic a <= b <= c).
CELLS = {
    "cubic": (5.64, 5.64, 5.64, 90, 90, 90),
    "tetragonal": (4.594, 4.594, 2.959, 90, 90, 90),
    "hexagonal": (4.759, 4.759, 12.99, 90, 90, 120),
    "orthorhombic": (5.398, 6.958, 8.48, 90, 90, 90),
    "monoclinic": (7.1, 5.3, 9.2, 90, 104.5, 90),
    "triclinic": (6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325),
}


@pytest.mark.parametrize("system", SYSTEMS)
def test_linear_form_gives_the_cells_d_spacings(system):
    rng = np.random.default_rng(1)
    hkl = rng.integers(-4, 5, size=(40, 3))
    hkl = hkl[np.any(hkl != 0, axis=1)]
    cell = CELLS[system]
    q = coefficient_matrix(system, hkl) @ reciprocal_parameters(system, cell)
    np.testing.assert_allclose(q, 1 / UnitCell(*cell).d_spacing(hkl) ** 2, rtol=1e-12)
    np.testing.assert_allclose(direct_cell(system, reciprocal_parameters(system, cell)), cell, rtol=1e-12)


@pytest.mark.parametrize("system", [s for s in SYSTEMS if s != "triclinic"])  # triclinic boxes are laid out on R
def test_box_bounds_hold_every_cell_inside_the_box(system):
    rng = np.random.default_rng(2)
    n_lengths = {"cubic": 1, "tetragonal": 2, "hexagonal": 2, "orthorhombic": 3, "monoclinic": 3}[system]
    lo = np.concatenate([rng.uniform(3, 10, n_lengths), [rng.uniform(90, 120)] if system == "monoclinic" else []])
    hi = lo + np.concatenate([[0.7] * n_lengths, [4.0] if system == "monoclinic" else []])
    r_lo, r_hi = box_reciprocal_bounds(system, lo[None], hi[None])
    for _ in range(200):
        x = rng.uniform(lo, hi)
        if system == "cubic":
            cell = (x[0],) * 3 + (90, 90, 90)
        elif system in ("tetragonal", "hexagonal"):
            cell = (x[0], x[0], x[1], 90, 90, 120 if system == "hexagonal" else 90)
        elif system == "orthorhombic":
            cell = (*x, 90, 90, 90)
        else:
            cell = (x[0], x[1], x[2], 90, x[3], 90)
        r = reciprocal_parameters(system, cell)
        assert np.all(r >= r_lo[0] - 1e-15) and np.all(r <= r_hi[0] + 1e-15)


@pytest.mark.parametrize("system", ["orthorhombic", "monoclinic"])
def test_box_kernel_matches_the_naive_count(system):
    rng = np.random.default_rng(3)
    hkl = miller_indices(system, np.full(3, 12.0), 0.5)
    coefficients = coefficient_matrix(system, hkl)
    q_obs = np.sort(rng.uniform(0.01, 0.4, 15))
    q_tol = np.full(15, 2e-4)
    n_par = coefficients.shape[1]
    r_lo = rng.uniform(0.005, 0.05, (30, n_par))
    r_hi = r_lo * rng.uniform(1.0, 1.3, (30, n_par))
    counted = count_unindexed(q_obs, q_tol, coefficients, r_lo, r_hi, max_unindexed=99)
    expected = [unindexed_lines(q_obs, q_tol, coefficients, r_lo[i], r_hi[i]) for i in range(30)]
    np.testing.assert_array_equal(counted, expected)
    assert 0 < np.count_nonzero(counted == 0) < 30 or len(set(expected)) > 1  # the cases are not all alike


@pytest.mark.parametrize("system", ["cubic", "tetragonal", "hexagonal", "orthorhombic"])
def test_axial_kernel_equals_the_full_index_list(system):
    # The fast kernel generates only the indices each box can reach; its counts must be those of the whole list.
    rng = np.random.default_rng(5)
    n_par = {"cubic": 1, "tetragonal": 2, "hexagonal": 2, "orthorhombic": 3}[system]
    q_obs = np.sort(rng.uniform(0.01, 0.6, 20))
    q_tol = np.full(20, 3e-4)
    hkl = miller_indices(system, np.full(3, 20.0), float(np.max(q_obs + q_tol)))
    coefficients = coefficient_matrix(system, hkl)
    r_lo = 1 / rng.uniform(3.0, 20.0, (400, n_par)) ** 2
    r_hi = r_lo * rng.uniform(1.0, 1.2, (400, n_par))
    for max_unindexed in (0, 1, 99):
        fast = count_unindexed_axial(q_obs, q_tol, axial_multipliers(coefficients), r_lo, r_hi, max_unindexed)
        np.testing.assert_array_equal(fast, count_unindexed(q_obs, q_tol, coefficients, r_lo, r_hi, max_unindexed))
    expected = [unindexed_lines(q_obs, q_tol, coefficients, r_lo[i], r_hi[i]) for i in range(40)]
    np.testing.assert_array_equal(fast[:40], expected)
    assert len(set(fast.tolist())) > 2  # boxes that pass, fail by a few lines and fail by many


def test_axial_kernel_refuses_bounds_that_do_not_fit():
    values = axial_multipliers(np.array([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError):
        count_unindexed_axial(np.ones(3), np.ones(3), values, np.ones((2, 4)), np.ones((2, 4)), 0)
    with pytest.raises(ValueError):
        count_unindexed_axial(np.ones(3), np.ones(3), values, np.ones((2, 2)), np.zeros((2, 2)), 0)
    with pytest.raises(ValueError):
        axial_multipliers(np.array([[1.0, -1.0]]))


def _lines(system: str, n_lines: int = 20, wavelength: float = 1.5406, tolerance_deg: float = 0.02):
    """The first n distinct Q of a cell's P lattice, and their tolerance for a 2θ error of ``tolerance_deg``."""
    cell = UnitCell(*CELLS[system])
    hkl = np.stack(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    q = np.unique(np.round(1 / cell.d_spacing(hkl) ** 2, 7))[:n_lines]
    two_theta = np.radians(2 * np.degrees(np.arcsin(wavelength * np.sqrt(q) / 2)))
    q_tol = 2 * np.sin(two_theta) / wavelength**2 * np.radians(tolerance_deg)
    return q, q_tol


@pytest.mark.parametrize("system", ["cubic", "tetragonal", "hexagonal", "orthorhombic"])
def test_dichotomy_finds_the_cell_and_its_smallest_volume_first(system):
    q, q_tol = _lines(system)
    lo, hi = surviving_boxes(system, q, q_tol, DichotomySettings(max_volume=800))
    hkl = miller_indices(system, np.full(3, 25.0), 1.01 * q.max())
    found = []
    for box_lo, box_hi in zip(lo, hi, strict=True):
        centre = 0.5 * (box_lo + box_hi)
        lengths = {"cubic": [0, 0, 0], "tetragonal": [0, 0, 1], "hexagonal": [0, 0, 1]}.get(system, [0, 1, 2])
        cell = (*centre[lengths], 90, 90, 120 if system == "hexagonal" else 90)
        result = refine_reciprocal(system, q, q_tol, reciprocal_parameters(system, cell), hkl)
        if result is not None:
            found.append(direct_cell(system, result[0]))
    assert found, "the true cell was not found"
    smallest = min(found, key=lambda c: UnitCell(*c).volume)
    np.testing.assert_allclose(smallest, CELLS[system], atol=2e-3)


def test_refinement_rejects_a_cell_that_does_not_index():
    q, q_tol = _lines("orthorhombic")
    hkl = miller_indices("orthorhombic", np.full(3, 25.0), 1.01 * q.max())
    wrong = reciprocal_parameters("orthorhombic", (5.1, 7.3, 8.0, 90, 90, 90))
    assert refine_reciprocal("orthorhombic", q, q_tol, wrong, hkl) is None


def test_monoclinic_box_never_rejects_the_cell_inside_it():
    from gasolve.indexing.dichotomy import _count_unindexed_monoclinic

    rng = np.random.default_rng(4)
    hkl = miller_indices("monoclinic", np.full(3, 16.0), 0.6).astype(float)
    for _ in range(40):
        cell = (rng.uniform(3, 12), rng.uniform(3, 12), rng.uniform(3, 12), 90, rng.uniform(90, 125), 90)
        true_q = 1 / UnitCell(*cell).d_spacing(hkl.astype(int)) ** 2
        q_obs = np.sort(rng.choice(true_q[true_q < 0.6], 12, replace=False))
        width = rng.uniform(0.01, 0.6, 4) * np.array([1, 1, 1, 8])
        x = np.array([cell[0], cell[1], cell[2], cell[4]])
        lo = x - rng.uniform(0, 1, 4) * width
        hi = lo + width
        lo[3], hi[3] = max(lo[3], 90.0), min(hi[3], 179.0)
        out = np.zeros(1, dtype=np.int64)
        _count_unindexed_monoclinic(q_obs, np.full(12, 1e-12), lo[None], hi[None], 99, out)
        assert out[0] == 0
    # and a box far from the cell is rejected
    out = np.zeros(1, dtype=np.int64)
    lo, hi = np.array([[3.0, 3.0, 3.0, 90.0]]), np.array([[3.01, 3.01, 3.01, 90.1]])
    _count_unindexed_monoclinic(q_obs, np.full(12, 1e-6), lo, hi, 99, out)
    assert out[0] > 6


def test_dichotomy_finds_a_monoclinic_cell_in_its_volume_shell():
    q, q_tol = _lines("monoclinic")
    lo, hi = surviving_boxes("monoclinic", q, q_tol, DichotomySettings(max_length=10.0), volume_shell=(320, 350))
    hkl = miller_indices("monoclinic", np.full(3, 25.0), 1.01 * q.max())
    found = []
    for box_lo, box_hi in zip(lo, hi, strict=True):
        a, b, c, beta = 0.5 * (box_lo + box_hi)
        result = refine_reciprocal(
            "monoclinic", q, q_tol, reciprocal_parameters("monoclinic", (a, b, c, 90, beta, 90)), hkl
        )
        if result is not None:
            found.append(direct_cell("monoclinic", result[0]))
    assert any(np.allclose(cell, CELLS["monoclinic"], atol=2e-3) for cell in found)
