"""Triclinic indexing (gasolve.indexing.triclinic): exact box bounds against brute force, and known cells found."""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from naive import unindexed_lines

from gasolve.crystal.cell import UnitCell
from gasolve.indexing.budget import boxes_for_seconds
from gasolve.indexing.dichotomy import DichotomySettings, count_unindexed
from gasolve.indexing.lattice import niggli_cell, same_lattice
from gasolve.indexing.solutions import index_lines
from gasolve.indexing.systems import coefficient_matrix, direct_cell, miller_indices, reciprocal_parameters
from gasolve.indexing.triclinic import (
    TriclinicSettings,
    count_unindexed_triclinic,
    determinant_lower,
    determinant_upper,
    initial_box,
    search_triclinic,
    surviving_boxes_triclinic,
    volume_shells,
)

WAVELENGTH = 1.5406
ROOT = Path(__file__).resolve().parents[1]


def _tolerance(q: np.ndarray, tolerance_deg: float) -> np.ndarray:
    two_theta = 2 * np.arcsin(WAVELENGTH * np.sqrt(q) / 2)
    return 2 * np.sin(two_theta) / WAVELENGTH**2 * np.radians(tolerance_deg)


def _noisy(q: np.ndarray, error_deg: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    two_theta = 2 * np.arcsin(WAVELENGTH * np.sqrt(q) / 2) + np.radians(error_deg) * rng.standard_normal(len(q))
    return np.sort((2 * np.sin(two_theta / 2) / WAVELENGTH) ** 2)


def _all_lines(cell, n_lines: int) -> np.ndarray:
    """The first distinct Q of a P lattice (every hkl), from gasolve's UnitCell."""
    hkl = np.stack(np.meshgrid(*[np.arange(-7, 8)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    return np.unique(np.round(1 / UnitCell(*cell).d_spacing(hkl) ** 2, 7))[:n_lines]


def test_linear_form_agrees_with_pymatgen_d_spacings():
    from pymatgen.core import Lattice

    cell = (6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325)
    hkl = np.random.default_rng(0).integers(-5, 6, size=(60, 3))
    hkl = hkl[np.any(hkl != 0, axis=1)]
    q = coefficient_matrix("triclinic", hkl) @ reciprocal_parameters("triclinic", cell)
    lattice = Lattice.from_parameters(*cell)
    np.testing.assert_allclose(q, [1 / lattice.d_hkl(x) ** 2 for x in hkl], rtol=1e-10)
    np.testing.assert_allclose(direct_cell("triclinic", reciprocal_parameters("triclinic", cell)), cell, rtol=1e-10)
    # A metric that is not positive definite is no lattice.
    assert direct_cell("triclinic", np.array([0.02, 0.03, 0.04, 0.0, 0.0, 0.1])) is None


def test_box_kernel_matches_the_naive_count_on_triclinic_boxes():
    rng = np.random.default_rng(5)
    hkl = miller_indices("triclinic", np.full(3, 8.0), 0.3)
    coefficients = coefficient_matrix("triclinic", hkl)
    counts = []
    for _ in range(25):
        q_obs = np.sort(rng.uniform(0.01, 0.3, 10))
        q_tol = np.full(10, 3e-4)
        centre = reciprocal_parameters("triclinic", (*rng.uniform(4, 8, 3), *rng.uniform(70, 110, 3)))
        width = rng.uniform(0.0, 0.05, 6) * np.abs(centre).max()
        r_lo, r_hi = centre - width / 2, centre + width / 2
        counted = count_unindexed(q_obs, q_tol, coefficients, r_lo[None], r_hi[None], max_unindexed=99)[0]
        assert counted == unindexed_lines(q_obs, q_tol, coefficients, r_lo, r_hi)
        counts.append(counted)
    assert len(set(counts)) > 2  # boxes that index all, some and none of the lines


def test_limited_kernel_keeps_every_box_that_holds_the_lattice_of_the_lines():
    # The search's kernel also drops indices beyond each box's largest direct lengths: it may reject more boxes
    # than the plain linear-form count, but never one that holds the metric that made the lines.
    rng = np.random.default_rng(7)
    hkl = miller_indices("triclinic", np.full(3, 12.0), 0.25)
    coefficients = coefficient_matrix("triclinic", hkl)
    for _ in range(25):
        truth = reciprocal_parameters("triclinic", (*rng.uniform(4, 8, 3), *rng.uniform(75, 105, 3)))
        q_all = np.sort(coefficients @ truth)
        q_obs = rng.choice(q_all[q_all < 0.25], 10, replace=False)
        q_tol = np.full(10, 1e-4)
        width = rng.uniform(0.0, 0.02, 6) * np.abs(truth).max()
        r_lo = truth - rng.uniform(0, 1, 6) * width
        r_hi = r_lo + width
        assert count_unindexed_triclinic(q_obs, q_tol, hkl, r_lo[None], r_hi[None], 99)[0] == 0
        other = q_obs * rng.uniform(0.9, 1.1, 10)  # lines of no metric in the box
        limited = count_unindexed_triclinic(other, q_tol, hkl, r_lo[None], r_hi[None], 99)[0]
        plain = unindexed_lines(other, q_tol, coefficients, r_lo, r_hi)
        assert limited >= plain


def test_determinant_bounds_hold_every_metric_in_the_box():
    rng = np.random.default_rng(6)
    for _ in range(30):
        centre = reciprocal_parameters("triclinic", (*rng.uniform(3, 9, 3), *rng.uniform(65, 115, 3)))
        width = rng.uniform(0.0, 0.3, 6) * np.abs(centre[:3]).min()
        lo, hi = centre - width / 2, centre + width / 2
        points = rng.uniform(lo, hi, size=(400, 6))
        a, b, c, d, e, f = points.T
        det = a * b * c + d * e * f / 4 - (a * d**2 + b * e**2 + c * f**2) / 4
        assert np.all(det <= determinant_upper(lo[None], hi[None])[0] * (1 + 1e-12))
        assert np.all(det >= determinant_lower(lo[None], hi[None])[0] - 1e-18)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dichotomy_never_rejects_the_box_of_the_true_metric(seed):
    rng = np.random.default_rng(seed)
    # A reduced-looking cell whose reciprocal angles are acute (E, F >= 0, the search's sign convention).
    while True:
        cell = (*np.sort(rng.uniform(3.5, 6.5, 3)), *rng.uniform(92, 104, 3))
        truth = reciprocal_parameters("triclinic", cell)
        if truth[4] >= 0 and truth[5] >= 0:
            break
    q = _all_lines(cell, 14)
    q_tol = _tolerance(q, 0.01)
    basis = tuple(int(np.argmin(np.abs(q - truth[i]))) for i in range(3))
    assert np.allclose(q[list(basis)], truth[:3], rtol=1e-5)  # 100, 010 and 001 are among the lines
    volume = UnitCell(*cell).volume
    settings = TriclinicSettings(max_volume=2 * volume)
    lo, hi, _, complete = surviving_boxes_triclinic(q, q_tol, basis, settings, (0.8 * volume, 1.2 * volume))
    assert complete and len(lo)
    inside = np.all((lo <= truth + 1e-12) & (truth <= hi + 1e-12), axis=1)
    assert inside.any()
    # and a shell that cannot hold the cell leaves nothing
    lo, hi, _, complete = surviving_boxes_triclinic(q, q_tol, basis, settings, (0.2 * volume, 0.5 * volume))
    assert complete and not len(lo)


def _reduced_reciprocal(cell) -> np.ndarray:
    """(A ... F) of the Niggli-reduced reciprocal basis of ``cell`` (spglib), signs chosen so that E, F >= 0."""
    import spglib

    reciprocal = np.linalg.inv(UnitCell(*cell).matrix).T
    basis = spglib.niggli_reduce(reciprocal)
    g = basis @ basis.T
    if g[0, 1] < 0:  # b* -> -b*
        basis[1] *= -1
    g = basis @ basis.T
    if g[0, 2] < 0:  # c* -> -c*
        basis[2] *= -1
    g = basis @ basis.T
    return np.array([g[0, 0], g[1, 1], g[2, 2], 2 * g[1, 2], 2 * g[0, 2], 2 * g[0, 1]])


@pytest.mark.parametrize("seed", range(6))
def test_reduced_box_holds_the_reduced_reciprocal_basis_and_is_smaller(seed):
    rng = np.random.default_rng(seed)
    cell = (*rng.uniform(3.5, 9.0, 3), *rng.uniform(70, 115, 3))
    truth = _reduced_reciprocal(cell)
    assert truth[0] <= truth[1] <= truth[2]
    lo, hi = initial_box(truth[:3] * 0.999, truth[:3] * 1.001, reduced=True)
    assert np.all((lo[0] <= truth) & (truth <= hi[0]))
    full_lo, full_hi = initial_box(truth[:3] * 0.999, truth[:3] * 1.001, reduced=False)
    assert np.all(full_lo <= lo) and np.all(hi <= full_hi)
    assert np.prod((hi - lo)[0, 3:]) < 0.2 * np.prod((full_hi - full_lo)[0, 3:])


@pytest.mark.parametrize("seed", [0, 1])
def test_reduced_dichotomy_never_rejects_the_reduced_basis(seed):
    rng = np.random.default_rng(10 + seed)
    cell = (*rng.uniform(3.8, 6.5, 3), *rng.uniform(75, 110, 3))
    truth = _reduced_reciprocal(cell)
    q = _all_lines(cell, 16)
    q_tol = _tolerance(q, 0.01)
    basis = tuple(int(np.argmin(np.abs(q - truth[i]))) for i in range(3))
    assert np.allclose(q[list(basis)], truth[:3], rtol=1e-5)
    volume = UnitCell(*cell).volume
    settings = TriclinicSettings(max_volume=2 * volume)
    shell = (0.8 * volume, 1.2 * volume)
    lo, hi, _, complete = surviving_boxes_triclinic(q, q_tol, basis, settings, shell, reduced=True)
    assert complete and np.all((lo <= truth + 1e-12) & (truth <= hi + 1e-12), axis=1).any()


def test_a_cell_whose_reduced_axial_line_is_missing_is_found_by_the_second_pass():
    cell = (4.1, 5.2, 6.3, 82.0, 86.0, 97.0)
    truth = _reduced_reciprocal(cell)
    q = _all_lines(cell, 21)
    q = np.delete(q, int(np.argmin(np.abs(q - truth[1]))))  # Q(010) of the reduced basis unobserved
    q_tol = _tolerance(q, 0.01)
    settings = TriclinicSettings(max_volume=400)
    solutions, cut = search_triclinic(q, q_tol, replace(settings, bases=("reduced", "any")))
    assert not search_triclinic(q, q_tol, replace(settings, bases=("reduced",)))[0]
    assert solutions and cut is None
    found = direct_cell("triclinic", solutions[0][0])
    assert same_lattice(niggli_cell(UnitCell(*found).matrix), niggli_cell(UnitCell(*cell).matrix), 0.005, 0.3)


def test_volume_shells_cover_the_range_in_order():
    q = _all_lines((4.1, 5.2, 6.3, 82, 86, 97), 20)
    shells = volume_shells(q, 1000.0, 1.25)
    assert shells[0][0] == 0 and shells[-1][1] == 1000.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(shells))
    assert shells[0][1] < UnitCell(4.1, 5.2, 6.3, 82, 86, 97).volume < 1000.0


def test_index_lines_finds_a_triclinic_cell_from_noisy_lines():
    cell = (4.1, 5.2, 6.3, 82.0, 86.0, 97.0)
    q_obs = _noisy(_all_lines(cell, 20), 0.005, seed=3)
    q_tol = _tolerance(q_obs, 0.02)
    start = time.perf_counter()
    solutions = index_lines(q_obs, q_tol, DichotomySettings(max_volume=400), systems=("triclinic",))
    assert time.perf_counter() - start < 20
    best = solutions[0]
    assert best.bravais == "aP" and best.crystal_system == "triclinic" and best.searched_as == "triclinic"
    assert same_lattice(best.niggli, niggli_cell(UnitCell(*cell).matrix), length_tol=0.005, angle_tol=0.3)
    assert best.m20 > 10 and best.n_indexed == 20


def test_a_metric_of_higher_symmetry_is_reported_in_it():
    # Lines of a monoclinic cell searched as triclinic only: spglib sees the lattice's 2-fold axis.
    cell = (4.3, 5.1, 6.2, 90.0, 101.0, 90.0)
    q_obs = _noisy(_all_lines(cell, 20), 0.003, seed=4)
    solutions = index_lines(q_obs, _tolerance(q_obs, 0.02), DichotomySettings(max_volume=300), systems=("triclinic",))
    assert solutions[0].crystal_system == "monoclinic" and solutions[0].searched_as == "triclinic"


def _pymatgen_lines(path: Path, n_lines: int = 20, error_deg: float = 0.005, seed: int = 0):
    """The first lines (relative intensity > 1 %) of pymatgen's simulated pattern, with a 2θ error."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_file(path)
    pattern = XRDCalculator(wavelength=WAVELENGTH).get_pattern(structure, two_theta_range=(5, 80))
    two_theta = np.asarray(pattern.x)[np.asarray(pattern.y) > 1.0][:n_lines]
    two_theta = two_theta + error_deg * np.random.default_rng(seed).standard_normal(len(two_theta))
    q_obs = (2 * np.sin(np.radians(two_theta) / 2) / WAVELENGTH) ** 2
    return q_obs, _tolerance(q_obs, 0.02), structure


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [
        ROOT / "examples" / "K4SnO4.cif",  # P-1, 378 Å³ (Materials Project mp-7258)
        ROOT / "tests" / "data" / "cif" / "aflow-prototypes" / "214_A2B_aP6_2_2i_i.cif",  # P-1, 223 Å³
        ROOT / "tests" / "data" / "cif" / "aflow-prototypes" / "027_A_aP4_2_aci.cif",  # P-1, 68 Å³
    ],
)
def test_pymatgen_lines_of_triclinic_structures_index_to_their_reduced_cell(path):
    q_obs, q_tol, structure = _pymatgen_lines(path)
    settings = DichotomySettings(max_volume=800, triclinic_boxes=boxes_for_seconds(300))
    solutions = index_lines(q_obs, q_tol, settings, systems=("triclinic",))
    assert solutions, "no triclinic cell found"
    best = solutions[0]
    reference = niggli_cell(structure.lattice.matrix)
    assert same_lattice(best.niggli, reference, length_tol=0.005, angle_tol=0.5), (best.niggli, reference)
    assert best.m20 > 10 and best.bravais == "aP"


@pytest.mark.slow
def test_gasolve_index_finds_k4sno4_from_its_simulated_pattern(tmp_path, capsys):
    import json

    from gasolve.cli.main import main

    out = tmp_path / "index.json"
    code = main(["index", str(ROOT / "examples" / "K4SnO4.xye"), "--wavelength", "CuKa1", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    best = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))[
        "candidates"
    ][0]
    assert best["bravais"] == "aP" and best["crystal_system"] == "triclinic"
    reference = niggli_cell(UnitCell(6.600678, 6.608855, 9.914304, 80.24692, 71.67501, 67.32549).matrix)
    assert same_lattice(niggli_cell(UnitCell(*best["cell"]).matrix), reference, length_tol=0.005, angle_tol=0.5)
    assert best["m20"] > 10 and best["pawley_rwp"] < 0.1
