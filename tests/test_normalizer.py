"""Euclidean normalizers: ITA counts, every operation checked with gemmi, metric dependence, PyXtal's tables as oracle.

Known answers from International Tables for Crystallography Vol. A, ch. 3.5 (tables 3.5.2.3 and 3.5.2.4): the
normalizer modulo the group for the general metric of each family. PyXtal's ``Group.get_alternatives`` lists the
same coset representatives, but for every cell of the family, including axis permutations that keep the metric
only where two edges are equal (its P2_12_12_1 list has z,x,y). The oracle test therefore keeps the PyXtal
operations whose linear part keeps this cell's metric, checked with pymatgen's Lattice, and compares cosets.
"""

from __future__ import annotations

from fractions import Fraction

import gemmi
import numpy as np
import pytest

from gasolve.crystal import SpaceGroup, UnitCell
from gasolve.crystal.normalizer import (
    euclidean_normalizer,
    lattice_automorphisms,
    normalizer_of_operators,
    operation_triplet,
)

GENERIC_CELLS = {
    "triclinic": (5.1, 6.3, 7.7, 81.0, 86.0, 97.0),
    "monoclinic": (5.1, 6.3, 7.7, 90.0, 101.0, 90.0),
    "orthorhombic": (5.1, 6.3, 7.7, 90.0, 90.0, 90.0),
    "tetragonal": (5.1, 5.1, 7.7, 90.0, 90.0, 90.0),
    "trigonal": (5.1, 5.1, 7.7, 90.0, 90.0, 120.0),
    "hexagonal": (5.1, 5.1, 7.7, 90.0, 90.0, 120.0),
    "cubic": (5.1, 5.1, 5.1, 90.0, 90.0, 90.0),
}


def generic_cell(group: SpaceGroup) -> UnitCell:
    return UnitCell(*GENERIC_CELLS[group.crystal_system])


def gemmi_op(linear: np.ndarray, shift: np.ndarray) -> gemmi.Op:
    """The operation in gemmi's exact integer arithmetic (denominator 24)."""
    rows = []
    for row, s in zip(linear, shift, strict=True):
        terms = [
            f"{'+' if c > 0 else '-'}{axis}" for c, axis in zip(np.round(row).astype(int), "xyz", strict=True) if c
        ]
        rows.append("".join(terms) + f"+{Fraction(round(24 * float(s)) % 24, 24)}")
    return gemmi.Op(",".join(rows))


def conjugation_keeps_group(group: SpaceGroup, linear: np.ndarray, shift: np.ndarray) -> bool:
    ops = group.gemmi.operations()
    expected = sorted(op.triplet() for op in ops)
    move = gemmi_op(linear, shift)
    return sorted((move * op * move.inverse()).wrap().triplet() for op in ops) == expected


# --- known answers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "cell", "n_ops", "n_improper", "n_free"),
    [
        ("P1", GENERIC_CELLS["triclinic"], 2, 1, 3),  # continuous in 3D, and the enantiomorph
        ("P-1", GENERIC_CELLS["triclinic"], 8, 0, 0),  # 8 inversion centres
        ("P21/c", GENERIC_CELLS["monoclinic"], 8, 0, 0),
        ("C2/c", GENERIC_CELLS["monoclinic"], 4, 0, 0),  # P2/m with a/2, b/2, c/2, modulo the C centring
        ("P21", GENERIC_CELLS["monoclinic"], 8, 4, 1),
        ("Pm", GENERIC_CELLS["monoclinic"], 4, 2, 2),  # free in the mirror plane
        ("P212121", GENERIC_CELLS["orthorhombic"], 16, 8, 0),
        ("Pmc21", GENERIC_CELLS["orthorhombic"], 8, 4, 1),  # continuous along c
        ("Pnma", GENERIC_CELLS["orthorhombic"], 8, 0, 0),
        ("P4mm", GENERIC_CELLS["tetragonal"], 4, 2, 1),
        ("I41/amd", GENERIC_CELLS["tetragonal"], 2, 0, 0),
        ("P31", GENERIC_CELLS["trigonal"], 12, 0, 1),  # P6_422 with 1/3 shifts: chiral, so no inversion
        ("R-3m", GENERIC_CELLS["trigonal"], 2, 0, 0),  # shift (0, 0, 1/2)
        ("R3m", GENERIC_CELLS["trigonal"], 2, 1, 1),
        ("P63/m", GENERIC_CELLS["hexagonal"], 4, 0, 0),  # P6/mmm with c/2: the mirror x <-> y
        ("P63mc", GENERIC_CELLS["hexagonal"], 2, 1, 1),  # continuous along c
        ("Fm-3m", GENERIC_CELLS["cubic"], 2, 0, 0),  # the shift (1/2, 1/2, 1/2)
        ("F-43m", GENERIC_CELLS["cubic"], 8, 4, 0),
        ("Ia-3d", GENERIC_CELLS["cubic"], 1, 0, 0),  # its own normalizer
        ("P213", GENERIC_CELLS["cubic"], 8, 4, 0),  # Ia-3d: x+1/4,z+3/4,-y+3/4 and its kin
    ],
)
def test_counts_of_international_tables_and_every_operation_keeps_the_group(symbol, cell, n_ops, n_improper, n_free):
    group = SpaceGroup.from_symbol(symbol)
    normalizer = euclidean_normalizer(group, UnitCell(*cell))
    assert len(normalizer) == n_ops
    assert int(normalizer.improper.sum()) == n_improper
    assert normalizer.n_free == n_free
    np.testing.assert_array_equal(normalizer.linear[0], np.eye(3))
    np.testing.assert_array_equal(normalizer.shifts[0], 0.0)
    for linear, shift in zip(normalizer.linear, normalizer.shifts, strict=True):
        assert conjugation_keeps_group(group, linear, shift), (symbol, operation_triplet(linear, shift))
        np.testing.assert_allclose(linear.T @ UnitCell(*cell).metric @ linear, UnitCell(*cell).metric, atol=1e-9)
    for direction in normalizer.free_directions.T:  # polar directions commute with every rotation
        np.testing.assert_allclose(group.rotations @ direction, np.broadcast_to(direction, (group.n_ops, 3)))
    # Distinct cosets: no two operations differ by an operator of the group.
    keys = {
        _coset_key(group, linear, shift, _free_axes(group))
        for linear, shift in zip(normalizer.linear, normalizer.shifts, strict=True)
    }
    assert len(keys) == n_ops


def test_p63m_offers_the_mirror_that_relates_the_two_apatite_descriptions():
    normalizer = euclidean_normalizer(SpaceGroup.from_symbol("P63/m"), UnitCell(9.37, 9.37, 6.88, 90, 90, 120))
    assert normalizer.triplets == ["x,y,z", "x,y,z+1/2", "y,x,-z", "y,x,-z+1/2"]


def test_axis_changes_only_where_the_cell_allows_them():
    """a <-> b only for a = b (the pitfall of PyXtal's tables); a cubic P1 cell has all 48 orientations."""
    group = SpaceGroup.from_symbol("P212121")
    general = euclidean_normalizer(group, UnitCell(5.1, 6.3, 7.7, 90, 90, 90))
    square = euclidean_normalizer(group, UnitCell(5.1, 5.1, 7.7, 90, 90, 90))
    nearly = euclidean_normalizer(group, UnitCell(5.1, 5.13, 7.7, 90, 90, 90))  # 0.6 % apart: different axes
    assert len(general) == 16 and len(nearly) == 16 and len(square) == 32
    swapped = [p for p in square.linear if abs(p[0, 1]) == 1]
    assert len(swapped) == 16
    for linear, shift in zip(square.linear, square.shifts, strict=True):
        assert conjugation_keeps_group(group, linear, shift)
    p1 = SpaceGroup.from_symbol("P1")
    assert len(euclidean_normalizer(p1, UnitCell(5.1, 5.1, 5.1, 90, 90, 90))) == 48
    assert len(euclidean_normalizer(p1, UnitCell(5.1, 5.1, 7.7, 90, 90, 120))) == 24
    assert len(euclidean_normalizer(p1, UnitCell(*GENERIC_CELLS["triclinic"]))) == 2
    # Proper only: the enantiomorph is left out.
    chiral = euclidean_normalizer(group, UnitCell(5.1, 6.3, 7.7, 90, 90, 90), allow_improper=False)
    assert len(chiral) == 8 and not chiral.improper.any()


@pytest.mark.parametrize(
    ("centring", "metric", "count"),
    [
        ([[0, 0, 0]], UnitCell(5, 5, 5, 90, 90, 90).metric, 48),
        ([[0, 0, 0], [0.5, 0.5, 0.5]], UnitCell(5, 5, 5, 90, 90, 90).metric, 48),
        ([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], UnitCell(5, 5, 5, 90, 90, 90).metric, 48),
        ([[0, 0, 0], [2 / 3, 1 / 3, 1 / 3], [1 / 3, 2 / 3, 2 / 3]], UnitCell(5, 5, 17, 90, 90, 120).metric, 12),
        ([[0, 0, 0]], UnitCell(5, 5, 17, 90, 90, 120).metric, 24),
        ([[0, 0, 0], [0.5, 0.5, 0]], UnitCell(5, 6, 7, 90, 104, 90).metric, 4),
        ([[0, 0, 0]], UnitCell(5, 6, 7, 90, 90, 90).metric, 8),
    ],
)
def test_lattice_point_groups(centring, metric, count):
    """Holohedries: m-3m 48, -3m 12 (R lattice), 6/mmm 24, 2/m 4, mmm 8; every matrix keeps lattice and metric."""
    found = lattice_automorphisms(np.array(centring, dtype=float), metric)
    assert len(found) == count
    np.testing.assert_array_equal(found[0], np.eye(3))
    np.testing.assert_allclose(
        np.einsum("kji,jl,klm->kim", found, metric, found), np.broadcast_to(metric, found.shape), atol=1e-9
    )
    lattice = np.array(centring, dtype=float)
    for matrix in found:
        images = lattice @ matrix.T
        for image in images:  # centring vectors go to lattice vectors
            diff = image - lattice
            assert np.any(np.all(np.abs(diff - np.round(diff)) < 1e-9, axis=1))


def test_special_metric_of_a_centred_cell_gives_a_larger_normalizer():
    """C2/m with b = a / sqrt(3) and beta = 90 is a hexagonal lattice: axis changes appear with the extra symmetry."""
    group = SpaceGroup.from_symbol("C2/m")
    hexagonal = euclidean_normalizer(group, UnitCell(10.0, 10.0 / np.sqrt(3.0), 7.0, 90, 90, 90))
    general = euclidean_normalizer(group, UnitCell(10.0, 6.3, 7.0, 90, 101, 90))
    assert len(general) == 4
    assert len(hexagonal) > len(general)


def test_rhombohedral_axes_have_a_free_direction_along_the_threefold_axis():
    normalizer = euclidean_normalizer(SpaceGroup.from_symbol("R3:R"), UnitCell(5, 5, 5, 70, 70, 70))
    assert normalizer.n_free == 1
    np.testing.assert_allclose(np.abs(normalizer.free_directions[:, 0]), np.full(3, 1 / np.sqrt(3)), atol=1e-9)
    for linear, shift in zip(normalizer.linear, normalizer.shifts, strict=True):
        assert conjugation_keeps_group(SpaceGroup.from_symbol("R3:R"), linear, shift)


def test_triplets_and_bad_input():
    assert (
        operation_triplet(np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]]), np.array([0.5, 0.0, 0.75])) == "y+1/2,-x,z+3/4"
    )
    assert operation_triplet(-np.eye(3), np.zeros(3)) == "-x,-y,-z"
    with pytest.raises(ValueError, match="shapes"):
        normalizer_of_operators(np.eye(3)[None], np.zeros((2, 3)), np.eye(3))


# --- oracle: PyXtal's normalizer tables, filtered by the cell's metric ---------------------------------------------


def _free_axes(group: SpaceGroup) -> list[int]:
    """Axes left fixed by every rotation (the polar axes of a standard setting)."""
    return [k for k in range(3) if np.all(group.rotations[:, :, k] == np.eye(3, dtype=int)[:, k])]


def _coset_key(group: SpaceGroup, linear: np.ndarray, shift: np.ndarray, free_axes: list[int]) -> tuple:
    """Canonical label of the coset (P, p) G: the smallest key of (P R, P t + p) over the group's operators,
    shifts modulo 1 and with free coordinates dropped."""
    products = np.einsum("ij,kjl->kil", linear, group.rotations)
    moved = np.mod(group.translations @ np.asarray(linear).T + shift, 1.0)
    moved[:, free_axes] = 0.0
    keys = [
        (*np.round(p).astype(int).ravel().tolist(), *(np.round(t * 24).astype(int) % 24).tolist())
        for p, t in zip(products, moved, strict=True)
    ]
    return min(keys)


def _keeps_metric_pymatgen(rotation: np.ndarray, cell: UnitCell) -> bool:
    """Whether x -> R x is an isometry of the cell, judged by pymatgen: the lattice R^T M has the same parameters."""
    from pymatgen.core import Lattice

    lattice = Lattice.from_parameters(*cell.parameters)
    moved = Lattice(rotation.T @ lattice.matrix)
    return bool(np.allclose(moved.abc, lattice.abc, rtol=1e-4) and np.allclose(moved.angles, lattice.angles, atol=0.01))


def _check_against_pyxtal(number: int) -> None:
    from pymatgen.core.operations import SymmOp
    from pyxtal.symmetry import Group

    group = SpaceGroup.from_symbol(number)
    cell = generic_cell(group)
    free_axes = _free_axes(group)
    expected = set()
    for triplet in Group(number).get_alternatives()["Coset Representative"]:
        op = SymmOp.from_xyz_str(triplet)
        if _keeps_metric_pymatgen(op.rotation_matrix, cell):
            expected.add(_coset_key(group, op.rotation_matrix, op.translation_vector, free_axes))
    normalizer = euclidean_normalizer(group, cell)
    ours = {_coset_key(group, p, s, free_axes) for p, s in zip(normalizer.linear, normalizer.shifts, strict=True)}
    assert len(ours) == len(normalizer)
    assert ours == expected, (number, group.symbol)
    assert normalizer.n_free == len(free_axes)


#: Every crystal family, the centrings, polar and chiral classes; all 230 in the slow test.
SAMPLE = [1, 2, 3, 4, 5, 6, 8, 9, 11, 14, 15, 18, 19, 26, 31, 36, 43, 62, 70, 75, 76, 88, 99, 122, 141, 143, 144]
SAMPLE += [146, 148, 160, 161, 167, 168, 173, 176, 182, 186, 191, 194, 195, 198, 205, 214, 216, 225, 227, 230]


@pytest.mark.parametrize("number", SAMPLE)
def test_same_cosets_as_pyxtal_tables_filtered_by_the_metric(number):
    _check_against_pyxtal(number)


@pytest.mark.slow
@pytest.mark.parametrize("number", [n for n in range(1, 231) if n not in SAMPLE])
def test_same_cosets_as_pyxtal_tables_in_all_230_groups(number):
    _check_against_pyxtal(number)


def test_pyxtal_tables_list_permutations_that_an_orthorhombic_cell_does_not_allow():
    """The pitfall, shown: PyXtal lists 96 operations for P2_12_12_1, of which 16 keep a cell with a != b != c."""
    from pymatgen.core.operations import SymmOp
    from pyxtal.symmetry import Group

    triplets = Group(19).get_alternatives()["Coset Representative"]
    cell = UnitCell(*GENERIC_CELLS["orthorhombic"])
    keep = [t for t in triplets if _keeps_metric_pymatgen(SymmOp.from_xyz_str(t).rotation_matrix, cell)]
    assert len(triplets) == 96 and len(keep) == 16
    assert "z,x,y" in triplets and "z,x,y" not in keep
    assert len(euclidean_normalizer(SpaceGroup.from_symbol(19), cell)) == 16


def test_shifts_hold_only_multiples_of_the_grid():
    for symbol in ("P-1", "Fd-3m", "P31", "I41/amd"):
        group = SpaceGroup.from_symbol(symbol)
        normalizer = euclidean_normalizer(group, generic_cell(group))
        np.testing.assert_allclose(normalizer.shifts * 24, np.round(normalizer.shifts * 24), atol=1e-9)
        assert np.all((normalizer.shifts >= 0) & (normalizer.shifts < 1))
