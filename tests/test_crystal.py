"""Crystal model: cell metric, space groups, systematic absences, reflection merging, CIF errors."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest
from ase.geometry import cellpar_to_cell

from gasolve.crystal import SpaceGroup, UnitCell, parse_cif
from gasolve.diffraction.reflections import generate_reflections
from gasolve.errors import InputError

TRICLINIC = (6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325)


def test_metric_matches_ase_cell_and_gemmi_d_spacing():
    cell = UnitCell(*TRICLINIC)
    vectors = cellpar_to_cell(TRICLINIC)
    np.testing.assert_allclose(cell.metric, vectors @ vectors.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cell.volume, abs(np.linalg.det(vectors)), rtol=1e-12)
    g = gemmi.UnitCell(*TRICLINIC)
    hkl = np.array([[1, 0, 0], [1, -2, 3], [0, 4, -1], [-3, 2, 5]])
    np.testing.assert_allclose(cell.d_spacing(hkl), [g.calculate_d(list(map(int, h))) for h in hkl], rtol=1e-10)
    np.testing.assert_allclose(cell.matrix @ cell.matrix.T, cell.metric, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize(
    ("parameters", "fragment"),
    [
        ((-1, 5, 5, 90, 90, 90), "positive"),
        ((5, 5, 5, 0, 90, 90), "between 0 and 180"),
        ((5, 5, 5, 150, 150, 150), "cannot close"),
        ((5, 5, 5, 10, 10, 90), "cannot close"),
        ((5, 5, math.nan, 90, 90, 90), "finite"),
    ],
)
def test_impossible_cells_are_refused(parameters, fragment):
    with pytest.raises(InputError, match=fragment):
        UnitCell(*parameters)


def test_all_230_space_groups_load_with_the_right_order():
    for number in range(1, 231):
        group = SpaceGroup.from_symbol(number)
        assert group.number == number
        assert group.n_ops == len(gemmi.find_spacegroup_by_number(number).operations())


@pytest.mark.parametrize(
    "symbol",
    [
        "P-1",
        "P 1 21/c 1",
        "Pnma",
        "Fd-3m",
        "Fd-3m:1",
        "Ia-3d",
        "R-3c",
        "P63/mmc",
        "P4_332",
        "I41/amd",
        "C2/c",
        "P3_121",
    ],
)
def test_systematic_absences_match_gemmi(symbol):
    group = SpaceGroup.from_symbol(symbol)
    hkl = np.stack(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij"), -1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    expected = group.gemmi.operations().systematic_absences(hkl.astype(np.int32))
    np.testing.assert_array_equal(group.is_absent(hkl), expected)


def test_symbols_and_origin_choice():
    assert SpaceGroup.from_symbol("P21/c").symbol == "P 1 21/c 1"
    assert SpaceGroup.from_symbol("Fd-3m").symbol.endswith(":2")
    assert SpaceGroup.from_symbol("Fd-3m:1").symbol.endswith(":1")
    assert SpaceGroup.from_symbol("Fd-3m").inversion_at_origin
    assert not SpaceGroup.from_symbol("Fd-3m:1").inversion_at_origin
    assert SpaceGroup.from_symbol("Fd-3m:1").is_centrosymmetric
    for bad in ["Xyz", "P 7", 0, 231]:
        with pytest.raises(InputError, match="space group"):
            SpaceGroup.from_symbol(bad)


@pytest.mark.parametrize(
    ("symbol", "cell"),
    [
        ("P-1", TRICLINIC),
        ("P21/c", (7.1, 5.3, 9.2, 90, 104.3, 90)),
        ("Pnma", (8.48, 5.40, 6.96, 90, 90, 90)),
        ("R-3c", (4.76, 4.76, 12.99, 90, 90, 120)),
        ("Fd-3m", (8.08, 8.08, 8.08, 90, 90, 90)),
        ("P4_332", (6.5, 6.5, 6.5, 90, 90, 90)),
    ],
)
def test_merged_reflections_account_for_every_allowed_hkl(symbol, cell):
    """Σ multiplicities = number of allowed hkl in the sphere; each set shares d; no set is split."""
    unit_cell, group = UnitCell(*cell), SpaceGroup.from_symbol(symbol)
    d_min = 1.1
    merged = generate_reflections(unit_cell, group, d_min)
    limits = [int(length / d_min) for length in cell[:3]]
    hkl = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in limits], indexing="ij"), -1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    hkl = hkl[unit_cell.d_spacing(hkl) >= d_min]
    allowed = hkl[~group.gemmi.operations().systematic_absences(hkl.astype(np.int32))]
    assert merged.multiplicity.sum() == len(allowed)
    assert np.all(np.diff(merged.d_spacing) <= 1e-12)
    for h, d, m in zip(merged.hkl[:40], merged.d_spacing[:40], merged.multiplicity[:40], strict=True):
        orbit = {tuple(s * (h @ r)) for r in group.rotations for s in (1, -1)}
        assert len(orbit) == m
        np.testing.assert_allclose(unit_cell.d_spacing(np.array(sorted(orbit))), d, rtol=1e-10)


def test_cif_errors_name_the_problem():
    with pytest.raises(InputError, match="cannot parse CIF"):
        parse_cif("data_x\n_cell_length_a 'unterminated\n", "bad.cif")
    with pytest.raises(InputError, match="no atom sites"):
        parse_cif(
            "data_x\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n"
            "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n",
            "empty.cif",
        )
    text = (
        "data_x\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nQ1 Qq 0 0 0\n"
    )
    with pytest.raises(InputError, match="element"):
        parse_cif(text, "q.cif")


def test_full_p1_cell_without_symmetry_is_p1():
    text = (
        "data_x\n_cell_length_a 5.64\n_cell_length_b 5.64\n_cell_length_c 5.64\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 Na 0 0 0\nCl1 Cl 0.5 0.5 0.5\n"
    )
    structure = parse_cif(text)
    assert structure.space_group.number == 1
    assert structure.formula() == "Na1 Cl1"
