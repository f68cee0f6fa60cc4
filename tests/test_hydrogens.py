"""Geometric H placement (gasolve.crystal.hydrogens) on Materials Project structures with known H.

The structures are MP PBE relaxations (CC BY 4.0) from ../shared/data/mp-structures, in spglib's standard setting
shifted to gasolve's origin (benchmarks.hydrogen_placement.prepare), coordinates rounded to 4 decimals: brucite
Mg(OH)2 mp-30247, CuCl2·2H2O mp-23875, NH4Br mp-23675 and MgH2 mp-23710.
"""

import math

import numpy as np
import pytest

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.hydrogens import HydrogenSettings, allocate_hydrogens, find_donors, place_hydrogens
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.wyckoff import wyckoff_position

BRUCITE = {
    "cell": (3.1859, 3.1859, 4.7816, 90, 90, 120),
    "group": 164,
    "atoms": [("Mg", (0.0, 0.0, 0.0)), ("O", (0.6667, 0.3333, 0.7818))],
    "h_sites": ["2d"],
    "h": [(0.3333, 0.6667, 0.4213)],
}
CUCL2_2H2O = {
    "cell": (8.0612, 3.8968, 7.4591, 90, 90, 90),
    "group": 53,
    "atoms": [("Cu", (0.5, 0.0, 0.5)), ("Cl", (0.5, 0.6488, 0.7465)), ("O", (0.7588, 0.0, 0.0))],
    "h_sites": ["8i"],
    "h": [(0.6882, 0.1275, 0.0858)],
}
NH4BR = {
    "cell": (5.8468, 5.8468, 4.3518, 90, 90, 90),
    "group": 129,
    "atoms": [("Br", (0.75, 0.75, 0.6025)), ("N", (0.25, 0.75, 0.0))],
    "h_sites": ["8i"],
    "h": [(0.25, 0.8967, 0.1371)],
}
MGH2 = {
    "cell": (4.5119, 4.5119, 3.0157, 90, 90, 90),
    "group": 136,
    "atoms": [("Mg", (0.5, 0.5, 0.5))],
    "h_sites": ["4f"],
    "h": [(0.6959, 0.6959, 0.0)],
}


def _inputs(case):
    cell = UnitCell(*case["cell"])
    group = SpaceGroup.from_symbol(case["group"])
    elements = [e for e, _ in case["atoms"]]
    frac = np.array([x for _, x in case["atoms"]])
    sites = [wyckoff_position(group, label) for label in case["h_sites"]]
    return cell, group, frac, elements, sites


def _largest_h_error(cell, group, placed, true):
    """Largest distance (Å) from a true H of the cell to the nearest placed H of the cell."""
    ours = np.concatenate([group.orbit(h, tol=1e-3) for h in placed])
    theirs = np.concatenate([group.orbit(np.array(h), tol=1e-3) for h in true])
    assert len(ours) == len(theirs)
    delta = theirs[:, None, :] - ours[None, :, :]
    delta -= np.round(delta)
    return float(np.sqrt(np.einsum("tpi,ij,tpj->tp", delta, cell.metric, delta)).min(axis=1).max())


@pytest.mark.parametrize("case", [BRUCITE, CUCL2_2H2O, NH4BR], ids=["brucite", "CuCl2.2H2O", "NH4Br"])
def test_placed_h_within_0_3_angstrom_of_dft(case):
    cell, group, frac, elements, sites = _inputs(case)
    placed = place_hydrogens(cell, group, frac, elements, sites)
    assert placed is not None and placed.shape == (len(sites), 3)
    assert _largest_h_error(cell, group, placed, case["h"]) < 0.3
    for site, h in zip(sites, placed, strict=True):  # on its Wyckoff position: its orbit has its multiplicity
        assert len(group.orbit(h, tol=1e-3)) == site.multiplicity


def test_brucite_by_hand():
    # O (2/3, 1/3, z) bonds three Mg below it; nothing above it within 2.5-3.3 Å pulls the H sideways, so the H
    # sits on the threefold axis 0.97 Å above the O (the image at (1/3, 2/3, 1 - z)).
    cell, group, frac, elements, sites = _inputs(BRUCITE)
    donors = find_donors(cell, group, frac, elements)
    assert [d.element for d in donors] == ["O"] and 0.7 < donors[0].deficit < 1.3
    placed = place_hydrogens(cell, group, frac, elements, sites)
    expected = np.array([1 / 3, 2 / 3, 1 - 0.7818 + 0.97 / 4.7816])
    delta = placed[0] - expected
    assert math.sqrt(delta @ cell.metric @ delta) < 2e-3


def test_water_gets_two_h_at_105_degrees():
    cell, group, frac, elements, sites = _inputs(CUCL2_2H2O)
    placed = place_hydrogens(cell, group, frac, elements, sites)
    oxygen = frac[2]
    images = group.orbit(placed[0], tol=1e-3)
    images = images - np.round(images - oxygen)
    bonded = images[cell.distance(images, oxygen) < 1.2]
    assert len(bonded) == 2
    u, v = ((h - oxygen) @ cell.matrix for h in bonded)
    assert np.linalg.norm(u) == pytest.approx(0.97, abs=0.02)
    angle = math.degrees(math.acos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
    assert 95 < angle < 115


def test_water_and_ammonium_allocation():
    settings = HydrogenSettings()
    cell, group, frac, elements, _ = _inputs(NH4BR)
    donors = find_donors(cell, group, frac, elements)
    assert allocate_hydrogens(donors, 8, settings) == {1: 4}
    cell, group, frac, elements, _ = _inputs(CUCL2_2H2O)
    assert allocate_hydrogens(find_donors(cell, group, frac, elements), 8, settings) == {2: 2}


def test_metal_hydride_returns_none():
    cell, group, frac, elements, sites = _inputs(MGH2)
    assert find_donors(cell, group, frac, elements) == []
    assert place_hydrogens(cell, group, frac, elements, sites) is None


def test_more_h_than_the_donors_take_returns_none():
    cell, group, frac, elements, _ = _inputs(BRUCITE)
    sites = [wyckoff_position(group, "6i"), wyckoff_position(group, "6i")]  # 12 H for two OH
    assert place_hydrogens(cell, group, frac, elements, sites) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frac": np.zeros(3)}, "shape"),
        ({"frac": np.array([[0.0, 0.0, np.nan], [0.1, 0.2, 0.3]])}, "NaN"),
        ({"elements": ["Mg"]}, "1 elements for 2 positions"),
        ({"elements": ["Mg", "Xx"]}, "unknown element"),
        ({"elements": ["Mg", "H"]}, "non-H atoms"),
        ({"h_sites": ["2d"]}, "WyckoffPosition or None"),
        ({"cell": (3.2, 3.2, 4.8, 90, 90, 120)}, "UnitCell"),
    ],
)
def test_bad_input_raises(change, message):
    cell, group, frac, elements, sites = _inputs(BRUCITE)
    arguments = {"cell": cell, "space_group": group, "frac": frac, "elements": elements, "h_sites": sites}
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        place_hydrogens(**arguments)
