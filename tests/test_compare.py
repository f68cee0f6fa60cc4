"""Structure comparison: known answers on K4SnO4, allowed origin shifts checked with gemmi, pymatgen oracle, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from fractions import Fraction
from pathlib import Path

import gemmi
import numpy as np
import pytest
from conftest import SHARED, data_path

from gasolve.cli import compare as compare_cli
from gasolve.compare import (
    aligned_model,
    compare_structures,
    labels_within,
    origin_alignments,
    site_distances_batch,
)
from gasolve.crystal import Site, SpaceGroup, Structure, UnitCell, read_cif, write_cif
from gasolve.errors import InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REFERENCE = read_cif(EXAMPLES / "K4SnO4.cif")
METRIC = REFERENCE.cell.metric
P1 = SpaceGroup.from_symbol("P1")
INVERSION_CENTRES = [np.array(s, dtype=float) for s in itertools.product((0.0, 0.5), repeat=3)]


def displace(frac: np.ndarray, sizes: np.ndarray, rng: np.random.Generator, metric: np.ndarray = METRIC) -> np.ndarray:
    """Move each position (n, 3) by ``sizes`` Å in a random direction (lengths measured with the cell metric)."""
    directions = rng.normal(size=frac.shape)
    lengths = np.sqrt(np.einsum("ni,ij,nj->n", directions, metric, directions))
    return frac + directions * (sizes / lengths)[:, None]


def wrap(frac: np.ndarray) -> np.ndarray:
    """Fractional vectors brought into [-1/2, 1/2)."""
    return np.mod(np.asarray(frac) + 0.5, 1.0) - 0.5


def in_p1(structure: Structure, name: str = "p1") -> Structure:
    """The whole cell of ``structure`` as a P1 structure (site order of ``Structure.expand``)."""
    elements, frac, _, _, index = structure.expand()
    sites = tuple(
        Site(f"{structure.sites[i].label}_{k}", element, tuple(x))
        for k, (element, x, i) in enumerate(zip(elements, frac, index, strict=True))
    )
    return Structure(structure.cell, P1, sites, name=name)


def permuted_within_elements(structure: Structure, rng: np.random.Generator) -> tuple[Structure, np.ndarray]:
    """Sites shuffled among equal elements; returns the structure and new index of each old site."""
    order = np.arange(structure.n_sites)
    elements = np.array(structure.elements)
    for element in set(elements):
        where = np.flatnonzero(elements == element)
        order[where] = rng.permutation(where)
    new_index = np.argsort(order)
    return Structure(structure.cell, structure.space_group, tuple(structure.sites[i] for i in order)), new_index


# --- allowed alignments -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "n_plain", "n_inverted", "n_free"),
    [
        ("P1", 1, 1, 3),
        ("P-1", 8, 0, 0),
        ("P21", 4, 4, 1),
        ("P21/c", 8, 0, 0),
        ("P212121", 8, 8, 0),
        ("Pnma", 8, 0, 0),
        ("P31", 3, 0, 1),  # chiral: the inverse is P32, not an alignment
        ("P4mm", 2, 2, 1),
        ("Fm-3m", 2, 0, 0),
        ("F-43m", 4, 4, 0),
    ],
)
def test_origin_shifts_are_those_of_the_euclidean_normaliser(symbol, n_plain, n_inverted, n_free):
    """Counts from ITA Vol. A table 3.5.2.3/4; each shift is checked with gemmi's own operator arithmetic."""
    group = SpaceGroup.from_symbol(symbol)
    alignments = origin_alignments(group)
    assert np.count_nonzero(~alignments.inverted) == n_plain
    assert np.count_nonzero(alignments.inverted) == n_inverted
    assert alignments.n_free == n_free
    ops = group.gemmi.operations()
    expected = sorted(op.triplet() for op in ops)
    for shift, inverted in zip(alignments.shifts, alignments.inverted, strict=True):
        parts = [str(Fraction(round(24 * s), 24)) for s in shift]
        sign = "-" if inverted else ""
        move = gemmi.Op(",".join(f"{sign}{axis}+{part}" for axis, part in zip("xyz", parts, strict=True)))
        conjugated = sorted((move * op * move.inverse()).wrap().triplet() for op in ops)
        assert conjugated == expected, (symbol, shift, inverted)
    if n_free:
        for direction in alignments.free_directions.T:  # polar directions commute with every rotation
            np.testing.assert_allclose(group.rotations @ direction, np.broadcast_to(direction, (group.n_ops, 3)))


# --- compare_structures, known answers --------------------------------------------------------------------------


def test_identical_structures_align_without_moving():
    comparison = compare_structures(REFERENCE, REFERENCE)
    np.testing.assert_allclose(comparison.site_distances, 0.0, atol=1e-12)
    np.testing.assert_array_equal(comparison.assignment, np.arange(REFERENCE.n_sites))
    np.testing.assert_array_equal(comparison.origin_shift, 0.0)
    assert not comparison.inverted
    assert comparison.solved()
    with pytest.raises(ValueError, match="read-only"):
        comparison.site_distances[0] = 1.0


@pytest.mark.parametrize("shift", INVERSION_CENTRES, ids=lambda s: "".join(f"{x:g}" for x in s))
def test_shifted_inverted_permuted_and_displaced_model_gives_the_displacements(shift):
    rng = np.random.default_rng(int(shift @ [4, 2, 1]))
    sizes = rng.uniform(0.0, 0.25, REFERENCE.n_sites)
    model = REFERENCE.with_frac(np.mod(-displace(REFERENCE.frac, sizes, rng) + shift, 1.0))
    model, new_index = permuted_within_elements(model, rng)
    assert not np.array_equal(new_index, np.arange(REFERENCE.n_sites))
    comparison = compare_structures(model, REFERENCE)
    np.testing.assert_allclose(comparison.site_distances, sizes, atol=1e-10)
    np.testing.assert_array_equal(comparison.assignment, new_index)
    # -x is an operator of P-1, so the inversion shows up as the shift alone.
    np.testing.assert_allclose(comparison.origin_shift, shift, atol=1e-12)
    assert not comparison.inverted
    assert comparison.max_distance == pytest.approx(sizes.max(), abs=1e-10)
    assert comparison.rms_distance == pytest.approx(np.sqrt(np.mean(sizes**2)), abs=1e-10)
    assert comparison.solved(0.3)
    assert not comparison.solved(0.9 * sizes.max())


def test_one_atom_half_an_angstrom_off_is_not_a_solution():
    rng = np.random.default_rng(3)
    moved = np.zeros(REFERENCE.n_sites)
    moved[6] = 0.5  # O2
    model = REFERENCE.with_frac(np.mod(displace(REFERENCE.frac, moved, rng) + np.array([0.5, 0.0, 0.5]), 1.0))
    comparison = compare_structures(model, REFERENCE)
    np.testing.assert_allclose(comparison.site_distances, moved, atol=1e-10)
    assert comparison.max_distance == pytest.approx(0.5, abs=1e-10)
    assert not comparison.solved(0.3)
    assert comparison.solved(0.6)
    assert comparison.n_within(0.3) == REFERENCE.n_sites - 1


def test_other_composition_and_other_cell_are_refused():
    lead = read_cif(EXAMPLES / "K4PbO4.cif")
    with pytest.raises(InputError, match="cell"):
        compare_structures(lead, REFERENCE)
    lead_in_tin_cell = Structure(REFERENCE.cell, REFERENCE.space_group, lead.sites, name="K4PbO4")
    with pytest.raises(InputError, match=r"K8 O8 Pb2 per cell .* K8 O8 Sn2"):
        compare_structures(lead_in_tin_cell, REFERENCE)
    fewer = Structure(REFERENCE.cell, REFERENCE.space_group, REFERENCE.sites[:-1])
    with pytest.raises(InputError, match="same atoms per cell"):
        compare_structures(fewer, REFERENCE)
    slightly_bigger = UnitCell(*(x * 1.005 if i < 3 else x + 0.5 for i, x in enumerate(REFERENCE.cell.parameters)))
    assert compare_structures(
        Structure(slightly_bigger, REFERENCE.space_group, REFERENCE.sites), REFERENCE
    ).max_distance == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("inverted", [False, True])
def test_p1_model_with_a_continuous_origin_shift(inverted):
    rng = np.random.default_rng(11 + inverted)
    sign = -1.0 if inverted else 1.0
    shift = rng.random(3)
    full = in_p1(REFERENCE)
    model = full.with_frac(np.mod(sign * full.frac + shift, 1.0))
    model, _ = permuted_within_elements(model, rng)
    for comparison in (compare_structures(model, REFERENCE), compare_structures(REFERENCE, model)):
        np.testing.assert_allclose(comparison.site_distances, 0.0, atol=1e-9)
        assert comparison.solved()
    comparison = compare_structures(model, REFERENCE)
    # K4SnO4 is centrosymmetric, so an inverted model also matches uninverted, which is preferred on a tie.
    assert not comparison.inverted
    np.testing.assert_allclose(wrap(comparison.origin_shift + shift), 0.0, atol=1e-9)
    # Displacements of the P-1 sites keep the cell's mean displacement at zero, so the fitted shift is exact.
    sizes = rng.uniform(0.0, 0.3, REFERENCE.n_sites)
    displaced = in_p1(REFERENCE.with_frac(displace(REFERENCE.frac, sizes, rng)))
    model = displaced.with_frac(np.mod(sign * displaced.frac + shift, 1.0))
    comparison = compare_structures(model, REFERENCE)
    np.testing.assert_allclose(comparison.site_distances, sizes, atol=1e-9)
    np.testing.assert_allclose(comparison.atom_distances, np.repeat(sizes, 2), atol=1e-9)


def test_p1_model_misplaced_in_half_the_cell_is_not_a_solution():
    """A P1 model matching only one image of a P-1 site is not solved: site distances are the worst image's."""
    full = in_p1(REFERENCE)
    frac = full.frac.copy()
    _, _, _, _, index = REFERENCE.expand()
    first_image = np.flatnonzero(index == 2)[0]
    frac[first_image] = displace(frac[first_image : first_image + 1], np.array([0.8]), np.random.default_rng(5))[0]
    comparison = compare_structures(full.with_frac(frac), REFERENCE)
    assert comparison.site_distances[2] > 0.5
    assert not comparison.solved()


def test_polar_group_needs_a_continuous_shift_along_its_axis():
    cell = UnitCell(7.1, 5.3, 8.4, 90.0, 104.0, 90.0)
    group = SpaceGroup.from_symbol("P21")
    rng = np.random.default_rng(2)
    frac = np.array([[0.1, 0.2, 0.3], [0.4, 0.0, 0.8], [0.7, 0.6, 0.1], [0.3, 0.5, 0.55]])
    elements = ["Cu", "S", "O", "O"]
    reference = Structure(
        cell, group, tuple(Site(f"{e}{i}", e, tuple(x)) for i, (e, x) in enumerate(zip(elements, frac, strict=True)))
    )
    sizes = np.array([0.05, 0.0, 0.2, 0.1])
    model = reference.with_frac(np.mod(-displace(frac, sizes, rng, cell.metric) + [0.5, 0.3141, 0.0], 1.0))
    comparison = compare_structures(model, reference)
    assert comparison.inverted
    assert comparison.solved(0.25)
    # The shift along b is fitted by least squares, so it can only lower the RMS of the true alignment.
    assert comparison.rms_distance <= np.sqrt(np.mean(sizes**2)) + 1e-12
    assert comparison.origin_shift[0] == pytest.approx(0.5) and comparison.origin_shift[2] == pytest.approx(0.0)
    without = compare_structures(model, reference, allow_inversion=False)
    assert not without.inverted and not without.solved(0.25)


# --- independent oracle: pymatgen StructureMatcher --------------------------------------------------------------


def to_pymatgen(structure: Structure):
    from pymatgen.core import Lattice
    from pymatgen.core import Structure as PymatgenStructure

    elements, frac, _, _, _ = structure.expand()
    return PymatgenStructure(Lattice.from_parameters(*structure.cell.parameters), elements, frac)


def test_pymatgen_structure_matcher_agrees():
    from pymatgen.analysis.structure_matcher import StructureMatcher

    rng = np.random.default_rng(7)
    sizes = rng.uniform(0.0, 0.25, REFERENCE.n_sites)
    displaced = in_p1(REFERENCE.with_frac(displace(REFERENCE.frac, sizes, rng)))
    model = displaced.with_frac(np.mod(displaced.frac + rng.random(3), 1.0))
    comparison = compare_structures(model, REFERENCE)
    matcher = StructureMatcher(primitive_cell=False, scale=False, attempt_supercell=False, stol=0.3)
    aligned = aligned_model(model, comparison)
    assert aligned.space_group.number == 1
    assert matcher.fit(to_pymatgen(aligned), to_pymatgen(REFERENCE))
    rms, largest = matcher.get_rms_dist(to_pymatgen(model), to_pymatgen(REFERENCE))
    scale = (REFERENCE.cell.volume / len(comparison.atom_distances)) ** (1 / 3)
    np.testing.assert_allclose(rms * scale, np.sqrt(np.mean(comparison.atom_distances**2)), rtol=1e-6)
    np.testing.assert_allclose(largest * scale, comparison.atom_distances.max(), rtol=1e-6)
    # The aligned model sits on the reference: every reference atom has its partner at the reported distance.
    pairs = compare_structures(aligned, REFERENCE)
    np.testing.assert_allclose(wrap(pairs.origin_shift), 0.0, atol=1e-9)
    np.testing.assert_allclose(pairs.atom_distances, comparison.atom_distances, atol=1e-9)


# --- batched per-site distances and labels ----------------------------------------------------------------------


def naive_site_distances(population, reference, group, elements):
    """Slow reference for P-1-type groups (discrete shifts only): every alignment, every image, in double."""
    ref_elements, ref_frac, _, _, _ = reference.expand()
    ref_elements = np.array(ref_elements)
    offsets = np.array(list(itertools.product((-2, -1, 0, 1, 2), repeat=3)), dtype=float)
    alignments = origin_alignments(group)
    out = np.empty(population.shape[:2])
    for m, model in enumerate(population):
        best = None
        for shift, inverted in zip(alignments.shifts, alignments.inverted, strict=True):
            aligned = (-model if inverted else model) + shift
            d2 = np.empty(len(model))
            for k, (x, element) in enumerate(zip(aligned, elements, strict=True)):
                delta = ref_frac[ref_elements == element][:, None, :] + offsets - x
                d2[k] = np.einsum("aoi,ij,aoj->ao", delta, reference.cell.metric, delta).min()
            if best is None or d2.sum() < best.sum():
                best = d2
        out[m] = np.sqrt(best)
    return out


def test_batched_distances_match_a_slow_reference_on_random_models():
    rng = np.random.default_rng(0)
    population = rng.random((40, REFERENCE.n_sites, 3))
    population[:10] = np.mod(displace(REFERENCE.frac, np.full(9, 0.2), rng) + rng.normal(0, 0.05, (10, 9, 3)), 1.0)
    fast = site_distances_batch(population, REFERENCE, REFERENCE.space_group, REFERENCE.cell, REFERENCE.elements)
    slow = naive_site_distances(population, REFERENCE, REFERENCE.space_group, REFERENCE.elements)
    np.testing.assert_allclose(fast, slow, atol=2e-5)
    small = site_distances_batch(
        population, REFERENCE, REFERENCE.space_group, REFERENCE.cell, REFERENCE.elements, chunk_size=7
    )
    np.testing.assert_array_equal(small, fast)


def test_batched_labels_in_p_minus_1_give_the_known_displacements():
    rng = np.random.default_rng(1)
    n_models = 300
    sizes = rng.uniform(0.0, 0.6, (n_models, REFERENCE.n_sites))
    sizes[np.abs(sizes - 0.3) < 1e-3] = 0.1  # keep clear of the radius: labels are computed in single precision
    population = np.empty((n_models, REFERENCE.n_sites, 3))
    for m in range(n_models):
        frac = displace(REFERENCE.frac, sizes[m], rng)
        sign = rng.choice([-1.0, 1.0])
        population[m] = np.mod(sign * frac + INVERSION_CENTRES[rng.integers(8)], 1.0)
    distances = site_distances_batch(population, REFERENCE, REFERENCE.space_group, REFERENCE.cell, REFERENCE.elements)
    np.testing.assert_allclose(distances, sizes, atol=2e-5)
    labels = labels_within(population, REFERENCE, REFERENCE.space_group, REFERENCE.cell, REFERENCE.elements, 0.3)
    np.testing.assert_array_equal(labels, sizes <= 0.3)
    for m in range(3):  # one-to-one comparison of the same models agrees
        comparison = compare_structures(REFERENCE.with_frac(population[m]), REFERENCE)
        np.testing.assert_allclose(comparison.site_distances, sizes[m], atol=1e-9)


def test_batched_labels_in_p1_find_the_continuous_shift():
    rng = np.random.default_rng(2)
    n_models = 100
    sizes = rng.uniform(0.0, 0.5, (n_models, REFERENCE.n_sites))
    full_sizes = np.repeat(sizes, 2, axis=1)  # expand() lists each site's two images together
    population = np.empty((n_models, 2 * REFERENCE.n_sites, 3))
    for m in range(n_models):
        displaced = in_p1(REFERENCE.with_frac(displace(REFERENCE.frac, sizes[m], rng)))
        sign = rng.choice([-1.0, 1.0])
        population[m] = np.mod(sign * displaced.frac + rng.random(3), 1.0)
    elements = in_p1(REFERENCE).elements
    distances = site_distances_batch(population, REFERENCE, P1, REFERENCE.cell, elements)
    np.testing.assert_allclose(distances, full_sizes, atol=2e-5)


def test_batched_bad_input_is_refused():
    good = np.tile(REFERENCE.frac, (2, 1, 1))
    args = (REFERENCE, REFERENCE.space_group, REFERENCE.cell)
    with pytest.raises(ValueError, match="shape"):
        site_distances_batch(good[:, :5], *args, REFERENCE.elements)
    with pytest.raises(ValueError, match="NaN"):
        site_distances_batch(np.full_like(good, np.nan), *args, REFERENCE.elements)
    with pytest.raises(ValueError, match="radius"):
        labels_within(good, *args, REFERENCE.elements, radius=0.0)
    with pytest.raises(InputError, match="no Pb atoms"):
        site_distances_batch(good, *args, ["Pb", *REFERENCE.elements[1:]])
    with pytest.raises(InputError, match="cell"):
        site_distances_batch(good, REFERENCE, REFERENCE.space_group, UnitCell(7, 7, 10, 80, 71, 67), REFERENCE.elements)


# --- command line -----------------------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    compare_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", *map(str, argv)])
    code = args.handler(args)
    return code, capsys.readouterr().out


def test_cli_prints_the_table_and_json(tmp_path, capsys):
    rng = np.random.default_rng(4)
    sizes = np.zeros(REFERENCE.n_sites)
    sizes[3] = 0.4
    model = REFERENCE.with_frac(np.mod(displace(REFERENCE.frac, sizes, rng) + np.array([0.0, 0.5, 0.5]), 1.0))
    write_cif(model, tmp_path / "model.cif")
    code, out = run_cli([tmp_path / "model.cif", EXAMPLES / "K4SnO4.cif"], capsys)
    assert code == 0
    assert "solved: no (8 of 9 sites within 0.3 Å)" in out
    assert "K3 " in out and "> tolerance" in out and "(0.0000, 0.5000, 0.5000)" in out
    code, out = run_cli([tmp_path / "model.cif", EXAMPLES / "K4SnO4.cif", "--tolerance", "0.5", "--json"], capsys)
    result = json.loads(out)
    assert code == 0 and result["solved"] and not result["inverted"]
    assert [site["label"] for site in result["sites"]] == [site.label for site in REFERENCE.sites]
    assert result["sites"][3]["distance"] == pytest.approx(0.4, abs=1e-5)  # the CIF keeps 6 decimals
    assert result["max_distance"] == pytest.approx(0.4, abs=1e-5)
    assert result["origin_shift"] == pytest.approx([0.0, 0.5, 0.5], abs=1e-6)


def test_cli_bad_input_raises_input_error(tmp_path, capsys):
    lead = read_cif(EXAMPLES / "K4PbO4.cif")
    write_cif(Structure(REFERENCE.cell, REFERENCE.space_group, lead.sites, name="lead"), tmp_path / "lead.cif")
    reference = EXAMPLES / "K4SnO4.cif"
    with pytest.raises(InputError, match="No such file"):
        run_cli([tmp_path / "missing.cif", reference], capsys)
    with pytest.raises(InputError, match=r"lead\.cif vs .*K4SnO4\.cif: the model lead has K8 O8 Pb2"):
        run_cli([tmp_path / "lead.cif", reference], capsys)
    with pytest.raises(InputError, match="cell"):
        run_cli([EXAMPLES / "K4PbO4.cif", reference], capsys)
    with pytest.raises(InputError, match="tolerance"):
        run_cli([reference, reference, "--tolerance", "-1"], capsys)


# --- every space group: equivalent and non-equivalent copies against pymatgen's StructureMatcher ----------------

#: Small real structures (tests/data) in many groups: (path under the data folder, polar axes of the setting).
MATCHER_CASES = [
    ("cif/aflow-prototypes/214_A2B_aP6_2_2i_i.cif", ""),  # P-1
    ("cif/aflow-prototypes/117_A2B_mP12_14_2e_e.cif", ""),  # P2_1/c
    ("cif/aflow-prototypes/270_A3BC_mC10_8_ab_a_a.cif", "xz"),  # Cm, a and b 0.2 % apart: no a <-> b
    ("cif/aflow-prototypes/098_A2B_oP12_19_2a_a.cif", ""),  # P2_12_12_1, chiral
    ("cif/aflow-prototypes/086_AB3C4_oP16_31_a_ab_2ab.cif", "z"),  # Pmn2_1
    ("cif/aflow-prototypes/130_A3BC_tP5_99_bc_a_b.cif", "z"),  # P4mm
    ("cif/aflow-prototypes/155_AB_tP16_84_cej_k.cif", ""),  # P4_2/m
    ("cif/aflow-prototypes/091_ABC3_hR10_161_a_a_b.cif", "z"),  # R3c, hexagonal axes
    ("cif/aflow-prototypes/153_A3B_hP24_151_3c_2a.cif", ""),  # P3_112, chiral
    ("cif/aflow-prototypes/206_AB_hP12_186_a2b_a2b.cif", "z"),  # P6_3mc
    ("derived/mp-554236_Ca5P3ClO12.cif", ""),  # P6_3/m, chlorapatite
    ("cif/aflow-prototypes/216_ABC_cP12_198_a_a_a.cif", ""),  # P2_13, chiral
    ("cif/aflow-prototypes/097_A5B8_cI52_217_ce_cg.cif", ""),  # I-43m
    ("cif/aflow-prototypes/028_A2BC4_cF56_227_d_a_e.cif", ""),  # Fd-3m, origin choice 1
]


def normalizer_symmops(structure: Structure) -> list:
    """Operations that relate equivalent descriptions, built without gasolve's normaliser: PyXtal's coset
    representatives of the Euclidean normaliser (ITA tables, standard settings) as pymatgen SymmOps, kept where
    pymatgen finds the cell's metric unchanged and gemmi finds the structure's operators mapped onto themselves
    (this drops the axis permutations that PyXtal lists for every cell of a family)."""
    from pymatgen.core import Lattice
    from pymatgen.core.operations import SymmOp
    from pyxtal.symmetry import Group

    lattice = Lattice.from_parameters(*structure.cell.parameters)
    ops = structure.space_group.gemmi.operations()
    expected = sorted(op.triplet() for op in ops)
    kept = []
    for triplet in Group(structure.space_group.number).get_alternatives()["Coset Representative"]:
        op = SymmOp.from_xyz_str(triplet)
        moved = Lattice(op.rotation_matrix.T @ lattice.matrix)
        if not (
            np.allclose(moved.abc, lattice.abc, rtol=1e-4) and np.allclose(moved.angles, lattice.angles, atol=0.01)
        ):
            continue
        move = gemmi.Op(triplet.replace(" ", ""))
        if sorted((move * op_ * move.inverse()).wrap().triplet() for op_ in ops) == expected:
            kept.append(op)
    return kept


def symmetric_displacements(structure: Structure, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random displacements (fractional, one per site) that keep every site on its Wyckoff position: a random
    vector averaged over the site's stabiliser, scaled to ``sizes`` Å (0 for a site without free coordinates)."""
    group, metric = structure.space_group, structure.cell.metric
    out = np.zeros((structure.n_sites, 3))
    for i, x in enumerate(structure.frac):
        images = np.einsum("kij,j->ki", group.rotations, x) + group.translations
        fixed = np.all(np.abs(wrap(images - x)) < 1e-4, axis=1)
        direction = group.rotations[fixed].mean(axis=0) @ rng.normal(size=3)
        length = np.sqrt(direction @ metric @ direction)
        if length > 1e-6:
            out[i] = direction * sizes[i] / length
    return out


def matcher_verdicts(
    model: Structure, reference: Structure, isometric: bool = False
) -> tuple[bool, bool, float, float]:
    """StructureMatcher (ltol 0.2, angle_tol 5, primitive_cell and scale off) at stol 0.3 and at the stol that is
    0.3 Å; with the normalisation length (V/n)^(1/3) and the largest distance (Å) of the best-RMS mapping.

    ``isometric`` narrows ltol and angle_tol to 0.002 and 0.1°, so that only lattice mappings that keep the metric
    (those gasolve searches) are tried: with ltol 0.2 StructureMatcher also maps a cell onto a distorted copy of
    itself and measures in the average lattice, which shortens distances in pseudo-symmetric cells.
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    ours, theirs = to_pymatgen(model), to_pymatgen(reference)
    scale = (reference.cell.volume / len(theirs)) ** (1 / 3)
    settings = {"ltol": 0.2, "angle_tol": 5, "primitive_cell": False, "scale": False}
    if isometric:
        settings.update(ltol=0.002, angle_tol=0.1)
    relative = StructureMatcher(stol=0.3, **settings).fit(ours, theirs)
    absolute = StructureMatcher(stol=0.3 / scale, **settings).fit(ours, theirs)
    loose = StructureMatcher(stol=2.0, **settings).get_rms_dist(ours, theirs)
    return relative, absolute, scale, (np.inf if loose is None else loose[1] * scale)


def assert_agrees_with_matcher(
    model: Structure, reference: Structure, comparison, name: str, fallback: bool, verdicts: bool = True
) -> bool:
    """Same verdicts (at stol 0.3, unless the distance sits within 0.05 Å of it, and at 0.3 Å) and the same
    largest distance (0.01 Å) as StructureMatcher. With ``fallback``, a disagreement is accepted where the
    isometric StructureMatcher agrees (see :func:`matcher_verdicts`); returns whether that was needed.
    ``verdicts=False`` compares distances only: StructureMatcher's verdict takes the smallest largest distance
    over its mappings, gasolve's the largest distance of the best-RMS alignment, which differ in tiny cells."""
    for isometric in (False, True):
        relative_fit, absolute_fit, scale, largest = matcher_verdicts(model, reference, isometric)
        agree = comparison.max_distance == pytest.approx(largest, abs=0.01)
        if verdicts:
            agree = agree and comparison.solved(0.3) == absolute_fit
        if verdicts and abs(0.3 * scale - comparison.max_distance) > 0.05:
            agree = agree and comparison.solved(0.3 * scale) == relative_fit
        if agree or not fallback:
            break
    assert agree, (name, comparison.max_distance, largest, absolute_fit, relative_fit, scale)
    return isometric


#: StructureMatcher takes 8-10 s on the two larger cubic cells (48 lattice mappings): slow tests.
SLOW_MATCHER_CASES = {
    "cif/aflow-prototypes/097_A5B8_cI52_217_ce_cg.cif",
    "cif/aflow-prototypes/028_A2BC4_cF56_227_d_a_e.cif",
}


@pytest.mark.parametrize(
    "relative",
    [
        pytest.param(
            path, id=Path(path).stem.split("_")[0], marks=[pytest.mark.slow] if path in SLOW_MATCHER_CASES else []
        )
        for path, _ in MATCHER_CASES
    ],
)
def test_equivalent_and_perturbed_copies_get_the_verdict_and_distances_of_structure_matcher(relative):
    polar = dict(MATCHER_CASES)[relative]
    reference = read_cif(data_path(relative))
    assert polar_axes(reference.space_group) == polar
    assert len(normalizer_symmops(reference)) >= 2  # at least one operation besides the identity
    check_against_matcher(reference, np.random.default_rng(sum(map(ord, relative))))


def polar_axes(group: SpaceGroup) -> str:
    """Axes that every rotation leaves fixed: the polar axes of a standard setting ('' when the origin is fixed)."""
    return "".join(
        axis for k, axis in enumerate("xyz") if np.all(group.rotations[:, :, k] == np.eye(3, dtype=int)[:, k])
    )


def check_against_matcher(reference: Structure, rng: np.random.Generator, n_copies: int = 3, fallback: bool = False):
    """Equivalent copies (normaliser operation from PyXtal's tables, random origin along the polar axes, sites
    permuted, symmetric noise below 0.08 Å), the last one with a site moved 0.5 Å, and a P1 copy with one atom
    moved 0.5 Å: gasolve's verdicts and largest distance against StructureMatcher's (see
    :func:`assert_agrees_with_matcher`). Returns how many comparisons needed the isometric fallback."""
    polar = polar_axes(reference.space_group)
    symmops = normalizer_symmops(reference)
    chosen = [symmops[0], *(symmops[i] for i in rng.choice(np.arange(len(symmops)), n_copies - 1))]
    movable = np.flatnonzero(
        np.linalg.norm(symmetric_displacements(reference, np.ones(reference.n_sites), rng), axis=1)
    )
    n_fallback = 0
    for k, op in enumerate(chosen):
        sizes = rng.uniform(0.0, 0.08, reference.n_sites)
        noise = symmetric_displacements(reference, sizes, rng)
        sizes = np.sqrt(np.einsum("ni,ij,nj->n", noise, reference.cell.metric, noise))
        moved = k == len(chosen) - 1 and len(movable) > 0
        if moved:  # a non-equivalent copy: one site 0.5 Å away
            site = rng.choice(movable)
            noise[site] = symmetric_displacements(reference, np.full(reference.n_sites, 0.5), rng)[site]
            sizes[site] = 0.5
        frac = op.operate_multi(reference.frac + noise)
        frac[:, ["xyz".index(axis) for axis in polar]] += rng.random(len(polar))  # the origin floats
        model, _ = permuted_within_elements(reference.with_frac(np.mod(frac, 1.0)), rng)
        comparison = compare_structures(model, reference)
        name = f"{reference.name} {reference.space_group.symbol} {op.as_xyz_str()}"
        n_fallback += assert_agrees_with_matcher(model, reference, comparison, name, fallback)
        if not moved and not polar:  # no floating origin, so the distances are the displacements themselves
            np.testing.assert_allclose(comparison.site_distances, sizes, atol=1e-6, err_msg=name)
            assert comparison.solved(0.3)
    # One atom of the whole cell moved 0.5 Å (a P1 model). The origin of a P1 model floats in 3D, so both remove
    # the mean displacement: the atom is left at most (1 - 1/n) 0.5 Å away, so not solved for n >= 5.
    full = in_p1(reference)
    frac = full.frac.copy()
    frac[0] = displace(frac[:1], np.array([0.5]), rng, reference.cell.metric)[0]
    model = full.with_frac(np.mod(symmops[-1].operate_multi(frac), 1.0))
    comparison = compare_structures(model, reference)
    name = f"{reference.name} P1"
    n_fallback += assert_agrees_with_matcher(model, reference, comparison, name, fallback, verdicts=len(frac) >= 5)
    assert comparison.max_distance <= 0.5 * (1.0 - 1.0 / len(frac)) + 1e-6
    if len(frac) >= 5:
        assert not comparison.solved(0.3)
    return n_fallback


# --- the shared structure sets (slow) ----------------------------------------------------------------------------

AFLOW = sorted((SHARED / "cif" / "aflow-prototypes").glob("*.cif")) if SHARED.is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("path", AFLOW, ids=lambda p: p.stem.split("_")[0])
def test_aflow_prototypes_against_structure_matcher(path):
    """Every AFLOW prototype of ../shared/data with at most 60 atoms in the cell."""
    reference = read_cif(path)
    if len(reference.expand()[0]) > 60:
        pytest.skip("more than 60 atoms in the cell")
    check_against_matcher(reference, np.random.default_rng(int(path.stem[:3])), n_copies=2, fallback=True)


def mp_sample(n_structures: int = 40, max_sites: int = 20, seed: int = 12) -> list[str]:
    """Material ids of a fixed random sample of ../shared/data/mp-structures, at most one per space group."""
    import csv

    with open(SHARED / "mp-structures" / "index.csv", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["n_sites"]) <= max_sites]
    order = np.random.default_rng(seed).permutation(len(rows))
    chosen, groups = [], set()
    for i in order:
        group = rows[i]["space_group_number_spglib_0.1"]
        if group not in groups:
            groups.add(group)
            chosen.append(rows[i]["material_id"])
        if len(chosen) == n_structures:
            break
    return chosen


@pytest.mark.slow
def test_materials_project_sample_against_structure_matcher(shared_data, tmp_path):
    """40 Materials Project structures in 40 space groups, symmetrised by pymatgen (symprec 0.1) and read back."""
    import csv
    import gzip
    import sys

    from pymatgen.core import Structure as PymatgenStructure
    from pymatgen.io.cif import CifWriter
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    wanted = set(mp_sample())
    csv.field_size_limit(sys.maxsize)
    checked = []
    with gzip.open(shared_data / "mp-structures" / "structures.csv.gz", "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["material_id"] not in wanted:
                continue
            structure = PymatgenStructure.from_str(row["cif"], fmt="cif")
            refined = SpacegroupAnalyzer(structure, symprec=0.1).get_refined_structure()
            path = tmp_path / f"{row['material_id']}.cif"
            CifWriter(refined, symprec=0.1).write_file(path)
            reference = read_cif(path)
            check_against_matcher(reference, np.random.default_rng(len(checked)), n_copies=2, fallback=True)
            checked.append(reference.space_group.number)
    assert len(checked) == len(wanted)


def test_cli_names_an_axis_change(tmp_path, capsys):
    reference_path = data_path("derived/mp-554236_Ca5P3ClO12.cif")
    reference = read_cif(reference_path)
    mirror = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    write_cif(reference.with_frac(np.mod(reference.frac @ mirror.T, 1.0)), tmp_path / "mirror.cif")
    code, out = run_cli([tmp_path / "mirror.cif", reference_path], capsys)
    assert code == 0
    assert "axis change" in out and "solved: yes (7 of 7 sites within 0.3 Å)" in out
    code, out = run_cli([tmp_path / "mirror.cif", reference_path, "--json"], capsys)
    result = json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert result["solved"] and result["max_distance"] < 1e-5
    # The alignment read back maps the model onto the reference: x <-> y (with z -> -z, same coset in P6_3/m).
    linear = np.array(result["transformation"])
    assert result["alignment"].startswith("y,x,")
    assert np.allclose(np.abs(linear[:2, :2]), [[0, 1], [1, 0]]) and not result["inverted"]


def test_a_shift_along_the_oblique_polar_axis_of_r3_rhombohedral_is_found():
    """In R3:R the origin floats along [111], which is oblique to every cell edge: a model shifted by 0.4693
    along it (a solved run's best.cif) reaches the reference only from another image of its site."""
    from gasolve.compare import site_distances_batch
    from gasolve.crystal.cell import UnitCell
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.crystal.structure import Site, Structure

    cell, group = UnitCell(5.5, 5.5, 5.5, 58, 58, 58), SpaceGroup.from_symbol("R3:R")
    truth = (("Pb", (0.0, 0.6041, 0.4694)), ("O", (0.6777, 0.7787, 0.2199)))
    reference = Structure(cell, group, tuple(Site(f"{e}{i}", e, f) for i, (e, f) in enumerate(truth)))
    shift = 0.4693
    moved = tuple(
        Site(f"{e}{i}", e, tuple((np.array(f)[[2, 0, 1]] - shift) % 1.0)) for i, (e, f) in enumerate(truth)
    )  # an image of each site (the 3-fold is the cyclic permutation), shifted back along [111]
    model = Structure(cell, group, moved)
    comparison = compare_structures(model, reference)
    assert comparison.max_distance < 1e-6
    population = np.array([[site.frac for site in moved]])
    batch = site_distances_batch(population, reference, group, cell, ["Pb", "O"])
    np.testing.assert_allclose(batch, 0.0, atol=1e-5)


def test_an_axis_permutation_of_a_pseudo_cubic_p1_cell_is_found_as_structure_matcher_finds_it():
    """Sc6N2O5 (mp-773588, P1, a, b, c within 0.007 Å, angles within 0.15°): a search may find the structure in
    any axis order. The cyclic permutation (x, y, z) -> (y, z, x) keeps the metric only within 0.3 % (beyond the
    isometry tolerance of the normaliser, so the old comparison scored such a model '2 of 13 sites', max 1.28 Å),
    but within the 1 %/1° that the comparison accepts as the same cell; StructureMatcher matches it."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    reference = read_cif(data_path("derived/mp-773588_Sc6N2O5.cif"))
    rng = np.random.default_rng(773588)
    noise = rng.uniform(0.0, 0.05, reference.n_sites)
    cyclic = np.eye(3)[[1, 2, 0]]
    frac = displace(reference.frac, noise, rng, reference.cell.metric) @ cyclic.T + rng.random(3)
    model, _ = permuted_within_elements(reference.with_frac(np.mod(frac, 1.0)), rng)
    comparison = compare_structures(model, reference)
    assert comparison.solved(0.3) and comparison.n_within(0.3) == 13
    assert not np.allclose(comparison.transformation, np.eye(3)) and not comparison.inverted
    # The origin of P1 floats, so the distances are the displacements less their mean (0.05 Å at most).
    assert comparison.max_distance < 0.1
    machine = StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10, primitive_cell=False, scale=False)
    assert machine.fit(to_pymatgen(model), to_pymatgen(reference))
    assert_agrees_with_matcher(model, reference, comparison, "Sc6N2O5 (y,z,x)", fallback=False)
    # The per-site labels of the selection network use the same alignments.
    batch = site_distances_batch(model.frac[None], reference, P1, reference.cell, list(model.elements))
    assert batch.max() < 0.1
    # A cell that is not pseudo-cubic (b 3 % longer) offers no such permutation: the same model is not solved.
    a, b, c, alpha, beta, gamma = reference.cell.parameters
    stretched = UnitCell(a, 1.03 * b, c, alpha, beta, gamma)
    far = compare_structures(
        dataclasses.replace(model, cell=stretched, _cache={}), dataclasses.replace(reference, cell=stretched, _cache={})
    )
    assert not far.solved(0.3)
