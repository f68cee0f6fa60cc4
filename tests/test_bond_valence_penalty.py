"""The bond-valence penalty of the GA (gasolve.ga.bond_valence_penalty): the kernel's global instability index
against the same index from pymatgen's neighbour list over the expanded cell (gasolve.crystal.bond_valence), on
real structures with sites on special positions, centred and oblique cells."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path
from naive import symmetrise_position

from gasolve.crystal.bond_valence import (
    bond_valence_sums,
    formal_valences,
    global_instability,
    neighbours,
)
from gasolve.crystal.xray_visibility import UNDETERMINED_ELEMENTS
from gasolve.ga.bond_valence_penalty import CUTOFF, BondValencePenalty

STRUCTURES = [
    "examples/PbSO4.cif",  # Pnma, sites on the mirror (4c)
    "examples/K4SnO4.cif",  # P-1, oblique
    "cif/mp/BaCaI4_mp-753809.cif",
    "cif/mp/VOF3_mp-850876.cif",  # P1
    "cif/mp/VCrMoO7_mp-19015.cif",
    "cif/mp/LiLa2SbO6_mp-6674.cif",  # monoclinic
    "cif/pyxtal-database/lt_quartz.cif",  # trigonal, 60° between a and b
    "cif/pyxtal-database/NaSb3F10.cif",
    "cif/aflow-prototypes/028_A2BC4_cF56_227_d_a_e.cif",  # spinel MgAl2O4: F-centred, special positions only
]


def _read(relative):
    """The structure with every site exactly on its special position (CIFs round 1/3 to 0.333333; the GA's
    genomes are projected exactly)."""
    from gasolve.crystal.cif_io import read_cif

    path = relative if relative.startswith("examples/") else data_path(relative)
    structure = read_cif(path)
    hall = structure.space_group.hall
    return structure.with_frac(np.array([symmetrise_position(hall, x) for x in structure.frac]))


def _naive_gii(structure) -> float:
    """GII from pymatgen's neighbour list of every site's first image (bond valence of the crystal module)."""
    elements = structure.elements
    multiplicity = structure.site_multiplicities()
    bonds = neighbours(structure.cell, structure.space_group, structure.frac, cutoff=CUTOFF)
    placed = np.array([e not in UNDETERMINED_ELEMENTS for e in elements])
    keep = placed[bonds.centre] & placed[bonds.other]
    bonds = type(bonds)(bonds.centre[keep], bonds.other[keep], bonds.distance[keep])
    bvs = bond_valence_sums(elements, bonds)
    valences = formal_valences(elements, list(multiplicity))
    active = np.abs(bvs) > 0  # every site with a counted neighbour
    return global_instability(bvs[active], valences[active], np.asarray(multiplicity)[active])


@pytest.mark.parametrize("relative", STRUCTURES)
def test_the_kernel_equals_pymatgens_neighbour_list(relative):
    structure = _read(relative)
    multiplicity = structure.site_multiplicities()
    penalty = BondValencePenalty(structure.cell, structure.space_group, structure.elements, multiplicity)
    genomes = np.repeat(structure.frac.reshape(1, -1), 3, axis=0)
    genomes[1] += 1.0  # a lattice translation changes nothing
    genomes[2] -= np.floor(genomes[2])
    ours = penalty(genomes)
    expected = _naive_gii(structure)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)
    assert 0.0 < ours[0] < 1.5  # a real structure is chemically sound (pymatgen's generic R0 add a few tenths)


def test_a_displaced_anion_raises_the_index():
    structure = _read("examples/PbSO4.cif")
    penalty = BondValencePenalty(
        structure.cell, structure.space_group, structure.elements, structure.site_multiplicities()
    )
    truth = structure.frac.reshape(1, -1)
    moved = structure.frac.copy()
    oxygen = structure.elements.index("O")
    moved[oxygen] += np.array([0.1, 0.0, 0.08])  # about 1 Å away from its S
    values = penalty(np.vstack([truth, moved.reshape(1, -1)]))
    assert values[1] > values[0] + 0.3


def test_non_finite_models_get_nan_and_others_are_unaffected():
    structure = _read("examples/K4SnO4.cif")
    penalty = BondValencePenalty(
        structure.cell, structure.space_group, structure.elements, structure.site_multiplicities()
    )
    genomes = np.repeat(structure.frac.reshape(1, -1), 2, axis=0)
    genomes[1, 4] = np.nan
    values = penalty(genomes)
    assert np.isnan(values[1]) and np.isfinite(values[0])


def test_where_it_does_not_apply():
    # no anion among the elements with parameters; no charge-balanced oxidation states
    assert not BondValencePenalty.applies(["Mg", "Ir"], [44, 7])
    assert not BondValencePenalty.applies(["Bi", "Rh", "Br"], [7, 1, 8])
    assert BondValencePenalty.applies(["Pb", "S", "O"], [4, 4, 16])
    # H is never in the sums: its position is not searched for
    assert not BondValencePenalty.applies(["H", "F"], [1, 1])
    structure = _read("examples/PbSO4.cif")
    with pytest.raises(ValueError, match="no bond valence penalty"):
        BondValencePenalty(structure.cell, structure.space_group, ["Mg"] * structure.n_sites, [4] * structure.n_sites)
    with pytest.raises(ValueError, match="multiplicities"):
        BondValencePenalty(structure.cell, structure.space_group, structure.elements, [4])


def test_shape_errors():
    structure = _read("examples/PbSO4.cif")
    penalty = BondValencePenalty(
        structure.cell, structure.space_group, structure.elements, structure.site_multiplicities()
    )
    with pytest.raises(ValueError, match="shape"):
        penalty(np.zeros((2, 5)))


def test_the_weight_is_validated_and_off_by_default():
    from gasolve.ga.settings import GARates

    assert GARates().bond_valence_weight == 0.0
    with pytest.raises(ValueError, match="bond_valence_weight"):
        GARates(bond_valence_weight=-0.1)
