"""Triclinic indexing from zones (gasolve.indexing.zones): reduction, zone lines against pymatgen, the planes that
contain a zone, zones of a real lattice found first, and lattices the search of reduced bases cannot reach."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from gasolve.crystal.cell import UnitCell
from gasolve.indexing.lattice import lattice_vectors, niggli_cell, same_lattice
from gasolve.indexing.systems import direct_cell
from gasolve.indexing.triclinic import TriclinicSettings, search_triclinic
from gasolve.indexing.zones import find_zones, gauss_reduced, search_zones, superzones, zone_q

WAVELENGTH = 1.5406
#: Kyanite (Al2SiO5, P-1), a real triclinic cell (Å, degrees).
KYANITE = (7.1262, 7.852, 5.5724, 89.99, 101.11, 106.03)
#: Simulated VCrMoO7 (mp-19015, P-1) of the indexing benchmark, Niggli-reduced: its reduced axial line 010 is
#: absent (no intensity), so no Niggli-reduced basis has its three axial lines observed.
VCRMOO7 = (5.640091, 6.754852, 8.021044, 96.017766, 90.037816, 101.406022)


def _tolerance(q: np.ndarray, tolerance_deg: float) -> np.ndarray:
    two_theta = 2 * np.arcsin(WAVELENGTH * np.sqrt(q) / 2)
    return 2 * np.sin(two_theta) / WAVELENGTH**2 * np.radians(tolerance_deg)


def _lines(cell, n_lines: int, leave_out=()) -> tuple[np.ndarray, np.ndarray]:
    """The first distinct Q (Å⁻²) of a P lattice, every hkl but those of ``leave_out`` (and their ± mates)."""
    hkl = np.stack(np.meshgrid(*[np.arange(-7, 8)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    for index in leave_out:
        hkl = hkl[~np.all(hkl == index, axis=1) & ~np.all(hkl == -np.asarray(index), axis=1)]
    q = np.unique(np.round(1 / UnitCell(*cell).d_spacing(hkl) ** 2, 7))[:n_lines]
    return q, _tolerance(q, 0.01)


def _is_plane_of(zone_parameters, cell, q_max: float) -> bool:
    """Whether every line of the zone is a line of the lattice (the zone is a lattice plane or a sublattice of one)."""
    q_zone, _ = zone_q(zone_parameters, q_max)
    q_cell, _ = _lines(cell, 400)
    return bool(np.all(np.min(np.abs(q_zone[:, None] - q_cell[None, :]), axis=1) <= _tolerance(q_zone, 0.02)))


def test_gauss_reduction_keeps_the_plane_and_finds_its_shortest_vector():
    rng = np.random.default_rng(3)
    for _ in range(50):
        u, v = rng.normal(size=(2, 3))
        v = v + rng.integers(-4, 5) * u  # a skew basis of the same plane
        parameters = np.array([u @ u, v @ v, 2 * u @ v])
        reduced = gauss_reduced(parameters)
        assert 0 <= reduced[2] <= reduced[0] * (1 + 1e-9) and reduced[0] <= reduced[1] * (1 + 1e-9)
        # Same plane lattice: the same area (4AB - F² = 4 |u x v|²) and the same shortest vector.
        assert 4 * reduced[0] * reduced[1] - reduced[2] ** 2 == pytest.approx(4 * np.sum(np.cross(u, v) ** 2))
        shortest = min(
            float(np.sum((m * u + n * v) ** 2))
            for m, n in itertools.product(range(-9, 10), repeat=2)
            if (m, n) != (0, 0)
        )
        assert reduced[0] == pytest.approx(shortest)
    assert gauss_reduced(np.array([1.0, 1.0, 2.0])) is None  # collinear


def test_zone_lines_are_pymatgens_hk0_lines():
    from pymatgen.core import Lattice

    lattice = Lattice.from_parameters(*KYANITE)
    a_star, b_star, _ = lattice.reciprocal_lattice_crystallographic.matrix
    parameters = np.array([a_star @ a_star, b_star @ b_star, 2 * a_star @ b_star])
    q, mn = zone_q(parameters, 0.3)
    expected = [1 / lattice.d_hkl((m, n, 0)) ** 2 for m, n in mn]
    np.testing.assert_allclose(q, expected, rtol=1e-10)
    # Every (m, n) up to 0.3 Å⁻² is there, one of each ± pair.
    every = {
        (m, n)
        for m, n in itertools.product(range(-12, 13), repeat=2)
        if (m, n) != (0, 0) and 1 / lattice.d_hkl((m, n, 0)) ** 2 <= 0.3
    }
    assert len(every) == 2 * len(mn)
    assert all((m, n) in every and (-m, -n) in every for m, n in mn)


def test_superzones_contain_the_zone():
    q, tol = _lines(KYANITE, 20)
    zone = find_zones(q, tol)[0]
    zone_lines, _ = zone_q(zone.parameters, 0.3)
    planes = superzones(zone, q, tol)
    assert len(planes) == 3
    for plane in planes:
        plane_lines, _ = zone_q(plane.parameters, 0.3)
        assert np.all(np.min(np.abs(zone_lines[:, None] - plane_lines[None, :]), axis=1) < 1e-9)
        # Index 2: half the plane's area.
        area = 4 * plane.parameters[0] * plane.parameters[1] - plane.parameters[2] ** 2
        assert area == pytest.approx(0.25 * (4 * zone.parameters[0] * zone.parameters[1] - zone.parameters[2] ** 2))
        assert np.all(plane.indexed[zone.indexed])


def test_the_most_significant_zones_are_planes_of_the_lattice():
    q, tol = _lines(KYANITE, 20)
    zones = find_zones(q, tol)
    assert zones[0].chance < 1e-3
    for zone in zones[:3]:
        assert _is_plane_of(zone.parameters, KYANITE, float(q[-1]))
    assert [z.chance for z in zones] == sorted(z.chance for z in zones)


def _found(refinements, cell) -> bool:
    truth = niggli_cell(lattice_vectors(cell))
    for result in refinements:
        found = direct_cell("triclinic", result.parameters)
        if found is not None and same_lattice(niggli_cell(lattice_vectors(found)), truth):
            return True
    return False


def test_a_lattice_whose_reduced_axial_line_is_absent_is_found_from_its_zones():
    q, tol = _lines(VCRMOO7, 20, leave_out=[(0, 1, 0)])
    settings = TriclinicSettings(max_volume=400.0, box_budget=300_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reduced, _ = search_triclinic(q, tol, TriclinicSettings(**{**settings.__dict__, "bases": ("reduced",)}))
    assert not _found(reduced, VCRMOO7)
    found, cut = search_zones(q, tol, settings)
    assert cut is None and _found(found, VCRMOO7)


def test_a_lattice_whose_first_line_is_a_second_order_is_found_from_a_superzone():
    # KBi2F7-like: the shortest reciprocal vector's line 001 lies below the measured range, so its first line is
    # 002 and the zones through it span sublattices of index 2 of their planes.
    cell = (4.32, 4.33, 20.9, 85.0, 85.1, 67.4)
    q, tol = _lines(cell, 21, leave_out=[(0, 0, 1)])
    settings = TriclinicSettings(max_volume=450.0, box_budget=1_000_000)
    found, _ = search_zones(q, tol, settings)
    assert _found(found, cell)
    # Without the superzones the true lattice is out of reach of every zone.
    import gasolve.indexing.zones as zones_module

    original = zones_module.superzones
    zones_module.superzones = lambda zone, q_obs, q_tol: []
    try:
        without, _ = search_zones(q, tol, settings)
    finally:
        zones_module.superzones = original
    assert not _found(without, cell)


#: The conditions benchmarks/indexing.py drew for VCrMoO7 (mp-19015) in its report half (n = 350, seed 0): Cu Kα1,
#: zero -0.094°, two impurity lines.
VCRMOO7_CONDITIONS = {
    "fwhm0": 0.13272915142739763,
    "fwhm_growth": 0.5994233910125422,
    "eta": 0.6814528954167216,
    "doublet": False,
    "zero": -0.09351479829232645,
    "impurities": [[76.35417171419503, 0.021627038053778663], [19.877335151220507, 0.028918424268297625]],
    "peak_counts": 7762.388656167199,
}


@pytest.mark.slow  # about 70 s: the sweep of reduced bases spends its 3 million boxes first
def test_the_benchmark_pattern_of_vcrmoo7_indexes_from_zones():
    from pathlib import Path

    from pymatgen.core import Structure

    from benchmarks.indexing import draw_conditions, pattern_rng, simulate
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.indexing.pattern import IndexingSettings, index_pattern
    from gasolve.io.patterns import ObservedPattern, counting_sigma

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_file(Path(__file__).parent / "data" / "cif" / "mp" / "VCrMoO7_mp-19015.cif")
    rng = pattern_rng({"material_id": "mp-19015"}, 0)
    assert draw_conditions(rng) == VCRMOO7_CONDITIONS
    two_theta, y = simulate(structure, VCRMOO7_CONDITIONS, rng)
    pattern = ObservedPattern(two_theta, y, counting_sigma(y), "VCrMoO7")
    result = index_pattern(pattern, parse_radiation("CuKa1"), IndexingSettings(systems=("triclinic",), n_pawley=0))
    first = result.candidates[0].solution
    assert same_lattice(first.niggli, niggli_cell(lattice_vectors(VCRMOO7)))
    assert any(note.startswith("triclinic search of zones allowing 1") for note in result.notes)
    assert any(note.startswith("triclinic zero shifts for the zones") for note in result.notes)
    # Without the zones nothing sound is found within the budgets.
    reduced_only = IndexingSettings(
        systems=("triclinic",), n_pawley=0, triclinic_bases=("reduced",), triclinic_reduced_unindexed=2
    )
    plain = index_pattern(pattern, parse_radiation("CuKa1"), reduced_only)
    assert not plain.candidates or not same_lattice(plain.candidates[0].solution.niggli, first.niggli)
