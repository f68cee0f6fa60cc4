"""Contacts shorter than real structures have: the table, the rule, and the verdict on a wrong KBi2F7 model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from gasolve.crystal.cell import UnitCell
from gasolve.hypotheses import short_contacts
from gasolve.pipeline import verdict

DATA = Path(__file__).parent / "data"


def _read(path: Path):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(path)


def _tightest(structure):
    """The rule on a P1 structure: one site per atom."""
    cell = UnitCell.from_parameters(structure.lattice.parameters)
    orbits = [np.array([site.frac_coords]) for site in structure]
    elements = [site.specie.symbol for site in structure]
    return short_contacts.tightest_contact(cell, orbits, elements), elements


def test_the_table_knows_which_elements_bond_to_themselves():
    assert short_contacts.floor("F", "F") > 2.0  # fluorides: no F-F bond
    assert short_contacts.floor("O", "O") < 1.5  # peroxides and superoxides
    assert short_contacts.floor("S", "S") < 2.1  # disulfides
    assert short_contacts.floor("O", "Si") == short_contacts.floor("Si", "O")
    assert 1.4 < short_contacts.floor("O", "Si") < 1.62  # the Si-O bond, 1.61 Å typically
    assert short_contacts.floor("Xe", "Pu") is None  # too rare a pair: no floor


def test_a_wrong_kbi2f7_model_that_fits_to_the_noise_has_an_f_f_contact_no_fluoride_has():
    truth, _ = _tightest(_read(DATA / "cif" / "mp" / "KBi2F7_mp-675250.cif"))
    assert truth is None
    found, elements = _tightest(_read(DATA / "derived" / "KBi2F7_mp-675250_wrong_best.cif"))
    assert found is not None and elements[found.site_i] == elements[found.site_j] == "F"
    assert found.distance == pytest.approx(1.586, abs=0.01)
    text = found.describe([f"X{k}" for k in range(len(elements))], elements)
    assert "1.59 Å apart" in text and "F-F" in text


def test_the_rule_measures_through_the_cell_edges_and_leaves_out_what_it_is_told():
    cell = UnitCell.from_parameters((5.0, 5.0, 5.0, 90, 90, 90))
    orbits = [np.array([[0.01, 0.5, 0.5]]), np.array([[0.69, 0.5, 0.5]])]  # 1.6 Å apart across x = 0
    found = short_contacts.tightest_contact(cell, orbits, ["F", "F"])
    assert found is not None and found.distance == pytest.approx(1.6)
    assert short_contacts.tightest_contact(cell, orbits, ["F", "F"], leave_out=np.array([True, False])) is None
    assert short_contacts.tightest_contact(cell, orbits, ["O", "O"]) is None  # 1.6 Å: a peroxide could


def test_a_model_with_a_short_contact_is_not_convincing():
    clean = verdict(1.03, 0.02, 1.04, 2)
    assert clean.convincing
    judged = verdict(1.03, 0.02, 1.04, 2, short_contact="F8 and F17 are 1.59 Å apart (F-F: ...)")
    assert not judged.convincing
    assert any("F8 and F17" in reason for reason in judged.reasons)
