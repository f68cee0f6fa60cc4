"""Anti-bump penalty (gasolve.ga.antibump and its Numba kernels) against the naive pair sum of tests/naive.py and a
brute-force distance count with ASE's neighbour list, on real structures of several crystal systems."""

from __future__ import annotations

import tracemalloc

import ase.io
import naive
import numpy as np
import pytest
from ase.neighborlist import neighbor_list
from conftest import data_path

from gasolve.crystal import SpaceGroup, UnitCell, read_cif
from gasolve.ga.antibump import AntiBump, composition_table, distance_is_invariant

#: AFLOW prototypes (tests/data/cif/aflow-prototypes): cubic with special positions, cubic, hexagonal,
#: rhombohedral (hexagonal axes), triclinic, monoclinic, orthorhombic.
PROTOTYPES = {
    "Fm-3m": "029_AB18C8_cF108_225_a_eh_f.cif",
    "Pa-3": "129_A_cP8_205_c.cif",
    "P6_3/mmc": "127_AB2_hP24_194_ef_fgh.cif",
    "R-3m": "085_A7B6_hR13_166_ah_3c.cif",
    "P-1": "027_A_aP4_2_aci.cif",
    "C2/c": "118_A2B_mC48_15_ae3f_2f.cif",
    "Pnma": "133_A3B7_oP40_62_cd_3c2d.cif",
    "P6_3/mmc SiO2": "146_A2B_hP12_194_cg_f.cif",
}


def prototype(name: str):
    return read_cif(data_path(f"cif/aflow-prototypes/{PROTOTYPES[name]}"))


def models(structure, rng: np.random.Generator) -> np.ndarray:
    """The structure itself, its coordinates jittered by up to 0.02 (special positions left), and random ones;
    genomes (6, 3 n_sites)."""
    frac = np.array([site.frac for site in structure.sites])
    jitter = frac + rng.uniform(-0.02, 0.02, frac.shape)
    random = rng.random((4, *frac.shape))
    return np.concatenate([frac[None], jitter[None], random]).reshape(6, -1)


@pytest.mark.parametrize("name", list(PROTOTYPES))
@pytest.mark.parametrize("distance", [1.6, 2.6])
def test_penalty_equals_the_naive_pair_sum(name, distance):
    structure = prototype(name)
    genomes = models(structure, np.random.default_rng(len(name)))
    bump = AntiBump(structure.cell, structure.space_group, structure.n_sites, distance)
    got = bump(genomes)
    parameters = structure.cell.parameters
    want = [naive.antibump_penalty(structure.space_group.hall, parameters, g.reshape(-1, 3), distance) for g in genomes]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert np.all(np.asarray(want)[1:] > 0)  # the jittered and random models clash: the test can fail


@pytest.mark.parametrize("name", ["Fm-3m", "P6_3/mmc SiO2", "Pnma", "C2/c"])
def test_penalty_of_the_real_structure_equals_an_ase_neighbour_count(name):
    """ASE expands the CIF itself (its own space-group tables) and lists every pair within d0 by brute force;
    each of its atoms stands for N / multiplicity coinciding images of the sum over sites x operators."""
    path = data_path(f"cif/aflow-prototypes/{PROTOTYPES[name]}")
    atoms = ase.io.read(path)
    structure = read_cif(path)
    n_ops = len(naive.symmetry_operators(structure.space_group.hall))
    kinds = atoms.arrays["spacegroup_kinds"]
    weight = n_ops / np.bincount(kinds)[kinds]
    shifts = np.array([n for n in np.ndindex(3, 3, 3) if n != (1, 1, 1)]) - 1
    shortest = np.min(np.linalg.norm(shifts @ atoms.cell.array, axis=1))
    distance = 0.45 * shortest  # every contact up to near half the shortest lattice vector, one image per pair
    first, second, d = neighbor_list("ijd", atoms, distance)
    once = first < second
    assert np.count_nonzero(once) > 10
    want = np.sum(weight[first[once]] * weight[second[once]] * (1.0 - d[once] / distance) ** 2)
    frac = np.array([site.frac for site in structure.sites])
    bump = AntiBump(structure.cell, structure.space_group, structure.n_sites, distance)
    np.testing.assert_allclose(bump(frac.reshape(1, -1)), [want], rtol=1e-10)


def test_known_distances_on_a_special_position():
    """Fm-3m, a = 4 Å: Na on 4a (0,0,0), Cl on 4b (½,0,0). The distance is that of the rounded fractional difference,
    one image per pair: each of the 4 Na has 3 of the 4 Cl at 2 Å (the fourth at 2√3 Å), so with d0 = 2.5 Å there
    are 12 contacts of (1 - 2/2.5)² = 0.04 (Na-Na and Cl-Cl at 2.83 Å are beyond d0), and each atom stands for the
    48 images of its site that coincide on it: penalty = 48² · 12 · 0.04."""
    bump = AntiBump(UnitCell(4.0, 4.0, 4.0, 90.0, 90.0, 90.0), SpaceGroup.from_symbol("Fm-3m"), 2, 2.5)
    got = bump(np.array([[0.0, 0.0, 0.0, 0.5, 0.0, 0.0]]))
    np.testing.assert_allclose(got, [48**2 * 12 * 0.04], rtol=1e-12)


def test_sites_fixed_in_the_batch_give_the_same_values_as_one_model_at_a_time():
    structure = prototype("Fm-3m")
    frac = np.array([site.frac for site in structure.sites])
    rng = np.random.default_rng(3)
    genomes = np.tile(frac.reshape(1, -1), (8, 1))
    genomes[:, 9:] = rng.random((8, 3))  # the last site moves, the three others are fixed
    bump = AntiBump(structure.cell, structure.space_group, structure.n_sites, 2.0)
    batch = bump(genomes)
    one_by_one = np.concatenate([bump(g[None]) for g in genomes])
    np.testing.assert_allclose(batch, one_by_one, rtol=1e-12)
    assert len(np.unique(np.round(batch, 9))) == 8
    genomes[:, 0] += 0.01  # other fixed coordinates: the kept sum of fixed pairs must not be reused
    np.testing.assert_allclose(bump(genomes), np.concatenate([bump(g[None]) for g in genomes]), rtol=1e-12)
    assert not np.allclose(bump(genomes), batch)


def test_orbit_sum_equals_the_pair_sum_where_the_distance_is_invariant():
    structure = prototype("Pa-3")
    bump = AntiBump(structure.cell, structure.space_group, structure.n_sites, 2.0)
    assert bump.orbit
    genomes = np.random.default_rng(4).random((20, 3))
    orbit = bump(genomes)
    bump.orbit = False
    np.testing.assert_allclose(bump(genomes), orbit, rtol=1e-12)


def test_invariance_needs_orthogonal_axes_and_a_cell_that_fits_the_group():
    cubic = SpaceGroup.from_symbol("Pm-3m")
    assert distance_is_invariant(UnitCell(4.0, 4.0, 4.0, 90.0, 90.0, 90.0).metric, cubic.rotations.astype(float))
    assert not distance_is_invariant(UnitCell(4.0, 4.1, 4.0, 90.0, 90.0, 90.0).metric, cubic.rotations.astype(float))
    hexagonal = SpaceGroup.from_symbol("P6/mmm")
    assert not distance_is_invariant(UnitCell(3.0, 3.0, 5.0, 90.0, 90.0, 120.0).metric, hexagonal.rotations)


def test_composition_table_of_p21c():
    group = SpaceGroup.from_symbol("P21/c")
    table = composition_table(group.rotations.astype(float), group.translations)
    assert sorted(np.unique(table[0])) == [0, 1, 2, 3]
    assert all(sorted(row) == [0, 1, 2, 3] for row in table)  # a Latin square: every product is an operator
    with pytest.raises(ValueError, match="not closed"):
        composition_table(group.rotations[:3].astype(float), group.translations[:3])


def test_batch_memory_stays_small():
    """The NumPy penalty held arrays of shape (n_models, n_pairs, 3): 1.7 GB in a Fm-3m run."""
    structure = prototype("Fm-3m")
    bump = AntiBump(structure.cell, structure.space_group, structure.n_sites, 1.6)
    genomes = np.random.default_rng(5).random((512, 3 * structure.n_sites))
    bump(genomes[:2])
    tracemalloc.start()
    bump(genomes)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2_000_000


def test_bad_input():
    bump = AntiBump(UnitCell(5.0, 5.0, 5.0, 90.0, 90.0, 90.0), SpaceGroup.from_symbol("P1"), 2, 1.6)
    with pytest.raises(ValueError, match=r"shape \(n_models, 6\)"):
        bump(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="distance"):
        AntiBump(UnitCell(5.0, 5.0, 5.0, 90.0, 90.0, 90.0), SpaceGroup.from_symbol("P1"), 2, 0.0)
    genomes = np.array([[0.1, 0.1, 0.1, np.nan, 0.2, 0.2], [0.1, 0.1, 0.1, 0.15, 0.1, 0.1]])
    got = bump(genomes)
    assert np.isnan(got[0]) and got[1] > 0
    assert bump(np.empty((0, 6))).shape == (0,)
