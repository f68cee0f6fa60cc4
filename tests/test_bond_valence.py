"""O and F told apart by bond valence (gasolve.crystal.bond_valence), checked against pymatgen's calculate_bv_sum.

VOF3 (Materials Project mp-850876, P1, 4 V, 4 O, 12 F): in the broad benchmark the search placed every atom within
0.03 Å but exchanged one O and one F (χ² 0.99: X-rays do not see the one electron between them).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path

from gasolve.crystal.bond_valence import (
    alike_pairs,
    best_assignment,
    bond_valence_sums,
    formal_valences,
    neighbours,
)


@pytest.fixture(scope="module")
def vof3():
    from gasolve.crystal.cif_io import read_cif

    structure = read_cif(data_path("cif/mp/VOF3_mp-850876.cif"))
    frac = np.array([site.frac for site in structure.sites])
    elements = [site.element for site in structure.sites]
    return structure, frac, elements


def test_alike_pairs():
    assert alike_pairs(["V", "O", "F", "F"]) == [("O", "F")]
    assert alike_pairs(["Na", "Mg", "Al", "Si", "O", "H"]) == [("Na", "Mg"), ("Mg", "Al"), ("Al", "Si")]
    assert alike_pairs(["Pb", "S", "O"]) == []
    assert alike_pairs(["N", "O", "H"]) == [("N", "O")]  # never H


def test_bond_valence_sums_equal_pymatgens(vof3):
    """The vectorised sums equal pymatgen's calculate_bv_sum site by site over the same neighbours."""
    from pymatgen.analysis.bond_valence import calculate_bv_sum
    from pymatgen.core import Lattice, Structure

    structure, frac, elements = vof3
    bonds = neighbours(structure.cell, structure.space_group, frac, cutoff=3.2)
    ours = bond_valence_sums(elements, bonds)
    crystal = Structure(Lattice(structure.cell.matrix), elements, frac)
    theirs = [calculate_bv_sum(crystal[i], crystal.get_neighbors(crystal[i], 3.2)) for i in range(len(crystal))]
    np.testing.assert_allclose(ours, theirs, atol=1e-10)
    # V(5+), O(2-), F(1-) within a few tenths of a valence unit, as bond valence promises
    valences = formal_valences(elements, [1] * len(elements))
    assert np.median(np.abs(np.abs(ours) - valences)) < 0.3


@pytest.mark.parametrize(("o_site", "f_site"), [(4, 15), (5, 8), (7, 19)])
def test_an_exchanged_o_and_f_are_put_back(vof3, o_site, f_site):
    structure, frac, elements = vof3
    o, f = elements.index("O") + o_site - 4, elements.index("F") + f_site - 8
    swapped = list(elements)
    swapped[o], swapped[f] = swapped[f], swapped[o]  # the model the search found: O and F exchanged
    labels = ["1a"] * len(elements)
    found = best_assignment(structure.cell, structure.space_group, frac, swapped, labels, [1] * len(elements))
    assert found is not None and found.gii_after < found.gii_before
    # site k of the swapped model takes the coordinates of position permutation[k]: the truth's element there
    assert [elements[p] for p in found.permutation] == swapped


def test_the_truth_stays(vof3):
    structure, frac, elements = vof3
    found = best_assignment(structure.cell, structure.space_group, frac, elements, ["1a"] * 20, [1] * 20)
    assert found.swaps == () and np.array_equal(found.permutation, np.arange(20))


def test_nothing_to_decide():
    from gasolve.crystal.cell import UnitCell
    from gasolve.crystal.spacegroup import SpaceGroup

    cell, group = UnitCell(5.64, 5.64, 5.64, 90, 90, 90), SpaceGroup.from_symbol(225)
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    assert best_assignment(cell, group, frac, ["Na", "Cl"], ["4a", "4b"], [4, 4]) is None  # no alike pair


def test_the_advice_names_the_alike_elements_and_what_bond_valence_did():
    from gasolve.pipeline import _alike_advice

    assert _alike_advice(None) == []
    (decided,) = _alike_advice({"elements": "O/F", "decided": True, "exchanges": 1})
    assert decided.startswith("O/F differ by one electron") and "bond valence placed them" in decided
    (undecided,) = _alike_advice({"elements": "Ga/Ge", "decided": False, "why": "no charge-balanced oxidation states"})
    assert "could not decide (no charge-balanced oxidation states)" in undecided and "neutron" in undecided


@pytest.fixture(scope="module")
def fe3o2f4():
    """Fe3(OF2)2 (mp-773751, Pm): the asymmetric unit with spglib's Wyckoff letters, in the file's cell."""
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from gasolve.crystal.cell import UnitCell
    from gasolve.crystal.spacegroup import SpaceGroup

    structure = Structure.from_file(data_path("cif/mp/Fe3O2F4_mp-773751.cif"))
    analyzer = SpacegroupAnalyzer(structure, symprec=0.01)
    assert analyzer.get_space_group_symbol() == "Pm"
    symmetrized = analyzer.get_symmetrized_structure()
    frac = np.array([group[0].frac_coords for group in symmetrized.equivalent_sites])
    elements = [group[0].specie.symbol for group in symmetrized.equivalent_sites]
    labels = list(symmetrized.wyckoff_symbols)
    multiplicity = [int(label[:-1]) for label in labels]
    cell = UnitCell.from_parameters(structure.lattice.parameters)
    return cell, SpaceGroup.from_symbol("Pm"), frac, elements, labels, multiplicity


def test_o_and_f_exchanged_across_wyckoff_positions_are_put_back(fe3o2f4):
    """The search's model of the broad benchmark: one O on 2c where F belongs, and F on two 1a sites where O
    belongs. No exchange of one site for one on the same position repairs it; a group exchange does."""
    cell, group, frac, elements, labels, multiplicity = fe3o2f4
    o_general = next(k for k, (e, m) in enumerate(zip(elements, multiplicity, strict=True)) if e == "O" and m == 2)
    f_mirror = [k for k, (e, m) in enumerate(zip(elements, multiplicity, strict=True)) if e == "F" and m == 1][:2]
    wrong = list(elements)
    wrong[o_general] = "F"
    for k in f_mirror:
        wrong[k] = "O"
    single = best_assignment(cell, group, frac, wrong, labels, multiplicity)
    assert not single.regrouped and list(single.assigned) != elements
    found = best_assignment(cell, group, frac, wrong, labels, multiplicity, groups=True)
    assert found.regrouped and found.gii_after < found.gii_before
    assert list(found.assigned) == elements
    np.testing.assert_array_equal(found.permutation, np.arange(len(elements)))


def test_group_exchanges_leave_the_truth(fe3o2f4):
    cell, group, frac, elements, labels, multiplicity = fe3o2f4
    found = best_assignment(cell, group, frac, elements, labels, multiplicity, groups=True)
    assert not found.regrouped and found.swaps == () and list(found.assigned) == elements
