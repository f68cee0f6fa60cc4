"""Smaller cells behind supercells (gasolve.indexing.subcells) and their place in the ranking of gasolve index: a
supercell whose extra lines catch one or two impurity lines goes behind the true cell."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from benchmarks.indexing import draw_conditions, pattern_rng, simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.indexing.figures_of_merit import q_from_two_theta, two_theta_from_q
from gasolve.indexing.lattice import calculated_q, same_lattice
from gasolve.indexing.pattern import IndexingSettings, index_pattern
from gasolve.indexing.subcells import (
    derived_subcells,
    extra_lines_by_chance,
    is_supercell,
    solution_of_basis,
    sublattice_translations,
)
from gasolve.io.patterns import ObservedPattern, counting_sigma

WAVELENGTH = 1.5406


def _lines(cell, bravais, top=90.0):
    """Calculated 2θ of a cell up to ``top`` (degrees, Cu Kα1)."""
    q_max = float(q_from_two_theta(np.array([top]), WAVELENGTH)[0])
    return np.sort(two_theta_from_q(calculated_q(cell, bravais, q_max), WAVELENGTH))


def test_sublattice_translations_count_the_lattices_of_prime_index():
    # A lattice contains (n³ - 1)/(n - 1) lattices of prime index n: 7 of index 2 and 13 of index 3.
    assert len(sublattice_translations(2)) == 7
    assert len(sublattice_translations(3)) == 13
    two = {tuple(t) for t in sublattice_translations(2)}
    assert (0.5, 0.5, 0.5) in two and (0.0, 0.0, 0.5) in two and (0.5, 0.0, 0.0) in two
    with pytest.raises(ValueError, match="prime"):
        sublattice_translations(4)


def _q_lines(cell, bravais, n=20):
    q = np.sort(np.unique(np.round(calculated_q(cell, bravais, 2.0), 10)))[:n]
    return q, np.full(len(q), 2e-5)


def test_doubled_cubic_cell_gives_back_the_true_cell():
    # Lines of a cP cell of 4 Å; a cP cell of 8 Å indexes them all. Its lattice contains the 4 Å lattice with
    # index 8 (2 · 2 · 2): three steps of index 2, so depth 3 finds it and depth 2 finds the index-4 cells only.
    q, tol = _q_lines((4.0,) * 3 + (90.0,) * 3, "cP")
    doubled = solution_of_basis(np.diag([8.0, 8.0, 8.0]), q, tol, "test")
    assert doubled.n_indexed == len(q)
    found = derived_subcells(doubled, q, tol, max_unindexed=0, depth=3)
    assert any(s.bravais == "cP" and s.cell[0] == pytest.approx(4.0, abs=1e-6) for s in found)
    assert all(s.n_indexed == len(q) for s in found)
    shallow = derived_subcells(doubled, q, tol, max_unindexed=0, depth=2)
    assert not any(s.volume == pytest.approx(64.0) for s in shallow)
    # The cF (index 2 of the 8 Å cell: t = (½, ½, 0) and its partners) and cI cells of 8 Å index every line too.
    assert {s.bravais for s in shallow} >= {"cF", "cI"}


def test_doubled_rhombohedral_c_axis_gives_back_the_true_cell():
    # CsPrS2's cells: hR a = 4.288, c = 24.307 Å and the same with c doubled (the index-2 lattice L + (½, ½, ½)
    # of the doubled cell's primitive basis).
    true = (4.288, 4.288, 24.307, 90.0, 90.0, 120.0)
    q, tol = _q_lines(true, "hR")
    from gasolve.indexing.lattice import primitive_basis

    doubled = solution_of_basis(primitive_basis((4.288, 4.288, 48.614, 90.0, 90.0, 120.0), "R"), q, tol, "test")
    found = derived_subcells(doubled, q, tol, max_unindexed=0)
    truth = solution_of_basis(primitive_basis(true, "R"), q, tol, "test")
    match = [s for s in found if same_lattice(s.niggli, truth.niggli)]
    assert match and match[0].bravais == "hR" and match[0].n_indexed == len(q)


def test_cells_that_miss_more_lines_than_allowed_are_not_kept():
    # An oP cell 3 × 4 × 5 Å; the cell with a doubled is a supercell; a subcell of the true cell misses lines.
    q, tol = _q_lines((3.0, 4.0, 5.0, 90.0, 90.0, 90.0), "oP")
    true = solution_of_basis(np.diag([3.0, 4.0, 5.0]), q, tol, "test")
    found = derived_subcells(true, q, tol, max_unindexed=3)
    assert found == []  # every smaller lattice loses many of the 20 lines
    doubled = solution_of_basis(np.diag([6.0, 4.0, 5.0]), q, tol, "test")
    back = derived_subcells(doubled, q, tol, max_unindexed=0)
    assert any(same_lattice(s.niggli, true.niggli) for s in back)


def test_one_impurity_line_caught_by_a_doubled_cell_is_chance():
    # A tP cell of 7 × 7 × 11 Å and the cell with c doubled, whose extra lines cover about 7 % of the range.
    true = ((7.0, 7.0, 11.0, 90.0, 90.0, 90.0), "tP", 0.0)
    doubled = ((7.0, 7.0, 22.0, 90.0, 90.0, 90.0), "tP", 0.0)
    lines = _lines(*true[:2])
    extra = _lines(*doubled[:2])
    extra = extra[np.min(np.abs(extra[:, None] - lines[None, :]), axis=1) > 0.1]
    impurities = np.array([extra[3] + 0.005, 52.37, 77.11])  # one on a supercell line, two elsewhere
    observed = np.sort(np.concatenate([lines, impurities]))
    assert is_supercell(doubled, true, WAVELENGTH, 90.0, 0.02)
    assert not is_supercell(true, doubled, WAVELENGTH, 90.0, 0.02)
    test = extra_lines_by_chance(observed, WAVELENGTH, 0.02, doubled, true)
    assert (test.unindexed, test.caught) == (3, 1)
    assert 0.03 < test.coverage < 0.3
    # P(X >= 1) for X ~ binomial(3, p) = 1 - (1 - p)^3.
    assert test.p_value == pytest.approx(1.0 - (1.0 - test.coverage) ** 3)
    assert test.by_chance


def test_a_true_superstructure_is_not_chance():
    # Every superstructure line of the doubled cell observed: 8 of 8 unindexed lines caught.
    true = ((4.0, 4.0, 6.0, 90.0, 90.0, 90.0), "tP", 0.0)
    doubled = ((4.0, 4.0, 12.0, 90.0, 90.0, 90.0), "tP", 0.0)
    lines = _lines(*true[:2])
    extra = _lines(*doubled[:2])
    extra = extra[np.min(np.abs(extra[:, None] - lines[None, :]), axis=1) > 0.1][:8]
    test = extra_lines_by_chance(np.sort(np.concatenate([lines, extra])), WAVELENGTH, 0.02, doubled, true)
    assert (test.unindexed, test.caught) == (8, 8)
    assert test.p_value < 1e-4 and not test.by_chance
    # Nothing caught: no advantage in lines, so nothing for chance to explain.
    none = extra_lines_by_chance(lines, WAVELENGTH, 0.02, doubled, true)
    assert none.caught == 0 and not none.by_chance


def _benchmark_pattern(cif_name: str, conditions: dict) -> ObservedPattern:
    """The benchmark's own pattern of the structure (report half, seed 0): the same generator, conditions drawn
    from it (checked against the recorded ones), then the profile and its counts."""
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_file(f"tests/data/cif/mp/{cif_name}")
    rng = pattern_rng({"material_id": cif_name.rsplit("_", 1)[1].removesuffix(".cif")}, 0)
    assert draw_conditions(rng) == conditions
    two_theta, y = simulate(structure, conditions, rng)
    return ObservedPattern(two_theta, y, counting_sigma(y), cif_name)


#: The conditions benchmarks/indexing.py drew for UBN (mp-5311) in its report half (n = 350, seed 0): Kα1+Kα2,
#: two impurity lines, one of which a cell with a and b doubled indexes.
UBN = {
    "fwhm0": 0.13295500126757417,
    "fwhm_growth": 0.11646589954455544,
    "eta": 0.5392158244604819,
    "doublet": True,
    "zero": -0.01970870057466452,
    "impurities": [[74.34526524751355, 0.020496548342759064], [68.04215705631941, 0.0436140318002831]],
    "peak_counts": 48276.82044183709,
}
#: The same for CsPrS2 (mp-9080): Kα1, one impurity line, which the cell with c doubled indexes.
CSPRS2 = {
    "fwhm0": 0.13898380996438242,
    "fwhm_growth": 1.9196547989791422,
    "eta": 0.2622944746257856,
    "doublet": False,
    "zero": 0.08110976723739372,
    "impurities": [[70.95253794781584, 0.019039220096433836]],
    "peak_counts": 40314.4243712713,
}


@pytest.mark.parametrize(
    ("cif_name", "conditions", "radiation", "systems", "truth"),
    [
        pytest.param(  # 50 s: the orthorhombic search of 20 lines twice
            "UBN_mp-5311.cif",
            UBN,
            "CuKa12",
            ("orthorhombic",),
            ("oC", (3.579, 11.816, 3.254)),
            marks=pytest.mark.slow,
        ),
        ("CsPrS2_mp-9080.cif", CSPRS2, "CuKa1", ("hexagonal",), ("hR", (4.288, 4.288, 24.307))),
    ],
)
def test_a_supercell_that_indexes_an_impurity_line_goes_behind_the_true_cell(
    cif_name, conditions, radiation, systems, truth
):
    pattern = _benchmark_pattern(cif_name, conditions)
    lines = parse_radiation(radiation)
    settings = IndexingSettings(systems=systems)
    first = index_pattern(pattern, lines, settings).candidates[0]
    assert first.solution.bravais == truth[0]
    assert sorted(first.pawley_cell[:3]) == pytest.approx(sorted(truth[1]), rel=0.003)
    # Without the subcell check the supercell wins (UBN: found but behind on the Pawley fit; CsPrS2: the true
    # cell is not found at all, the first pass allows one unindexed line).
    before = index_pattern(pattern, lines, IndexingSettings(systems=systems, subcells=False)).candidates[0]
    assert before.solution.primitive_volume > 1.9 * first.solution.primitive_volume


#: Li4VFe(TeO6)2 (mp-761819, P1): the true cell and the mC pseudo-subcell of half its volume that the indexing of
#: the benchmark's report-half pattern put first (19 of 20 lines, M20 56).
LI4VFE_TRUE = (5.125761, 5.380593, 7.468096, 93.737645, 90.073491, 90.291879)
LI4VFE_SUBCELL = (8.871483, 5.150295, 5.395033, 90.0, 123.522512, 90.0)


def test_a_pseudo_subcell_gives_back_the_true_triclinic_cell():
    from gasolve.indexing.lattice import niggli_cell, primitive_basis
    from gasolve.indexing.subcells import supported_supercells

    observed = _lines(LI4VFE_TRUE, "aP", 70.0)
    observed = observed[np.concatenate([[True], np.diff(observed) > 0.03])]  # lines closer than 0.03° blend
    found = supported_supercells((LI4VFE_SUBCELL, "mC", 0.0), observed, WAVELENGTH, 0.02)
    truth = niggli_cell(primitive_basis(LI4VFE_TRUE, "P"))
    assert found and all(test.p_value < 1e-6 and test.caught >= 5 for _, test in found)
    assert any(same_lattice(niggli_cell(basis), truth) for basis, _ in found[:3])


def test_impurity_lines_give_no_supercell():
    from gasolve.indexing.subcells import supported_supercells

    observed = _lines(LI4VFE_SUBCELL, "mC", 70.0)
    impurities = np.array([23.11, 29.87, 37.93, 44.36, 55.42, 63.05])  # six foreign lines: more than the minimum
    assert (
        supported_supercells(
            (LI4VFE_SUBCELL, "mC", 0.0), np.sort(np.concatenate([observed, impurities])), WAVELENGTH, 0.02
        )
        == []
    )
