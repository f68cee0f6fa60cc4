"""The bond-valence penalty of the GA (gasolve.ga.bond_valence_penalty): the kernel's global instability index
against the same index from pymatgen's neighbour list over the expanded cell (gasolve.crystal.bond_valence), on
real structures with sites on special positions, centred and oblique cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import data_path
from naive import special_position_projector, symmetrise_position

from gasolve.crystal.xray_visibility import UNDETERMINED_ELEMENTS
from gasolve.ga.bond_valence_penalty import CUTOFF, DISTANCE_FLOOR, BondValencePenalty

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"

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
    "cif/mp/Si2H2O5_mp-626037.cif",  # H+: the cations' sums alone
    "cif/mp/NdH3O3_mp-625397.cif",
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
    """GII from pymatgen's neighbour list over the expanded cell, bond by bond, with the IUCr table's R0 and b
    looked up per bond (Brese and O'Keeffe's generic R0, b = 0.37 Å, for a pair the table lacks)."""
    from ions.data import bv_data
    from pymatgen.analysis.bond_valence import BV_PARAMS
    from pymatgen.core import Composition, Element, Lattice, Structure

    elements = structure.elements
    multiplicity = structure.site_multiplicities()
    counts = {}
    for element, m in zip(elements, multiplicity, strict=True):
        counts[element] = counts.get(element, 0) + int(m)
    states = Composition(counts).oxi_state_guesses(max_sites=-1)[0]
    orbits = [structure.space_group.orbit(x, tol=1e-6) for x in structure.frac]
    crystal = Structure(
        Lattice(structure.cell.matrix),
        [e for e, orbit in zip(elements, orbits, strict=True) for _ in orbit],
        np.concatenate(orbits),
    )
    # The sums of the ions whose bonds to H (which is not placed) are missing are not counted.
    left_out_signs = {np.sign(states[e]) for e in elements if e in UNDETERMINED_ELEMENTS and states[e] != 0}
    total, atoms = 0.0, 0
    for site, (element, orbit) in enumerate(zip(elements, orbits, strict=True)):
        if element in UNDETERMINED_ELEMENTS or any(np.sign(states[element]) == -s for s in left_out_signs):
            continue
        centre = crystal[int(sum(len(o) for o in orbits[:site]))]
        bvs, bonded = 0.0, False
        for neighbour in crystal.get_neighbors(centre, CUTOFF):
            other = neighbour.specie.symbol
            if other in UNDETERMINED_ELEMENTS or states[element] * states[other] >= 0:
                continue
            cation, anion = (element, other) if states[element] > 0 else (other, element)
            qc, qa = round(states[cation]), round(states[anion])
            entry = bv_data.get(cation, {}).get(qc, {}).get(anion, {}).get(qa)
            if entry is not None:
                r0, b = entry["r0"], entry["b"]
            else:
                pc, pa = BV_PARAMS[Element(cation)], BV_PARAMS[Element(anion)]
                rc, cc, ra, ca = pc["r"], pc["c"], pa["r"], pa["c"]
                r0, b = rc + ra - rc * ra * (np.sqrt(cc) - np.sqrt(ca)) ** 2 / (cc * rc + ca * ra), 0.37
            bvs += np.exp((r0 - max(neighbour.nn_distance, DISTANCE_FLOOR)) / b)
            bonded = True
        if bonded:
            total += len(orbit) * (bvs - abs(states[element])) ** 2
            atoms += len(orbit)
    return float(np.sqrt(total / atoms))


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
    assert 0.0 < ours[0] < 0.5  # a real structure is chemically sound


def test_with_h_in_the_formula_only_the_cations_sums_count():
    """Si2H2O5 (H+): H is not placed, so the O donors' sums lack their O-H bonds; only Si is counted, and the true
    structure is sound (with its O counted its index would be 0.56 v.u.)."""
    from gasolve.ga.bond_valence_penalty import site_tables

    structure = _read("cif/mp/Si2H2O5_mp-626037.cif")
    multiplicity = structure.site_multiplicities()
    active = site_tables(structure.elements, multiplicity)[0]
    assert {e for e, a in zip(structure.elements, active, strict=True) if a} == {"Si"}
    penalty = BondValencePenalty(structure.cell, structure.space_group, structure.elements, multiplicity)
    assert penalty(structure.frac.reshape(1, -1))[0] < 0.1


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
    # mixed valence: only mean oxidation states balance the charge
    assert not BondValencePenalty.applies(["Fe", "Fe", "O"], [8, 16, 32])
    assert not BondValencePenalty.applies(["Yb", "Co", "P"], [6, 30, 19])
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


def test_the_settings_are_validated_and_on_by_default_from_nine_sites():
    from gasolve.ga.settings import GARates

    rates = GARates()
    assert (rates.bond_valence_weight, rates.bond_valence_min_sites, rates.bond_valence_local) == (0.02, 9, True)
    with pytest.raises(ValueError, match="bond_valence_weight"):
        GARates(bond_valence_weight=-0.1)
    with pytest.raises(ValueError, match="bond_valence_min_sites"):
        GARates(bond_valence_min_sites=-1)


def test_a_search_of_fewer_sites_than_the_threshold_has_no_restraint(pbso4_on_wyckoff):
    """PbSO4 (5 sites) under the defaults: no penalty, no restraint; from 0 sites on, both."""
    from dataclasses import replace

    from gasolve.ga.settings import GARates
    from gasolve.solve import bond_valence_term, build_evaluator

    setup, _ = pbso4_on_wyckoff
    settings = setup.config.ga
    assert setup.scorer.problem.n_sites == 5
    default = replace(settings, rates=GARates())
    assert bond_valence_term(setup.scorer, default) is None
    assert build_evaluator(setup.scorer, default).local_penalty is None
    every = replace(settings, rates=GARates(bond_valence_min_sites=5))
    assert isinstance(bond_valence_term(setup.scorer, every), BondValencePenalty)
    assert build_evaluator(setup.scorer, every).local_penalty is not None


def test_a_config_with_a_bad_bond_valence_setting_is_a_clear_input_error(tmp_path):
    from gasolve.config import load_run_config
    from gasolve.errors import InputError

    config = tmp_path / "run.toml"
    config.write_text((EXAMPLES_DIR / "PbSO4.toml").read_text().replace("[ga]", "[ga]\nbond_valence_local = 1", 1))
    for name in ("PbSO4.xra", "PbSO4.cif"):
        (tmp_path / name).write_bytes((EXAMPLES_DIR / name).read_bytes())
    with pytest.raises(InputError, match="bond_valence_local"):
        load_run_config(config)


@pytest.mark.parametrize("relative", ["examples/PbSO4.cif", "examples/K4SnO4.cif", "cif/pyxtal-database/lt_quartz.cif"])
def test_the_gradient_equals_central_differences(relative):
    """Displaced models (so that every site has a gradient), general and special positions alike: the derivative
    along each direction a site can move without leaving its Wyckoff position (the columns of its projector;
    the GA's genomes never leave it) against central differences of the index."""
    structure = _read(relative)
    penalty = BondValencePenalty(
        structure.cell, structure.space_group, structure.elements, structure.site_multiplicities()
    )
    hall = structure.space_group.hall
    rng = np.random.default_rng(3)
    frac = structure.frac[None] + rng.normal(0.0, 0.01, (2, structure.n_sites, 3))
    for model in frac:
        for s, x in enumerate(structure.frac):  # back onto the reference's Wyckoff position
            projector = special_position_projector(hall, x)
            model[s] = x + projector @ (model[s] - x)
    values, gradient = penalty.value_and_gradient(frac)
    np.testing.assert_allclose(values, penalty(frac.reshape(2, -1)), rtol=1e-12)
    step, compared = 1e-6, 0
    for m in range(2):
        for s, x in enumerate(structure.frac):
            projector = special_position_projector(hall, x)
            for direction in projector.T:
                if np.linalg.norm(direction) < 1e-9:
                    continue
                up, down = frac[m : m + 1].copy(), frac[m : m + 1].copy()
                up[0, s] += step * direction
                down[0, s] -= step * direction
                numeric = (penalty(up.reshape(1, -1))[0] - penalty(down.reshape(1, -1))[0]) / (2 * step)
                np.testing.assert_allclose(gradient[m, s] @ direction, numeric, rtol=1e-5, atol=1e-6)
                compared += 1
    assert compared >= 2 * structure.n_sites and np.abs(gradient).max() > 0.1


def test_the_local_search_objective_adds_the_restraint_through_the_site_map(pbso4_on_wyckoff):
    from dataclasses import replace

    from gasolve.ga.settings import GARates
    from gasolve.solve import build_evaluator

    setup, truth = pbso4_on_wyckoff
    settings = setup.config.ga
    plain = build_evaluator(setup.scorer, replace(settings, rates=GARates(bond_valence_weight=0.0)))
    assert plain.local_penalty is None  # weight 0 switches the restraint off too
    rates = GARates(bond_valence_weight=0.05, bond_valence_min_sites=0, bond_valence_local=True)
    evaluator = build_evaluator(setup.scorer, replace(settings, rates=rates))
    assert evaluator.local_penalty is not None
    genomes = truth.frac.reshape(1, -1) + np.random.default_rng(5).normal(0.0, 0.02, (2, 3 * truth.n_sites))
    objective, gradient = evaluator.rwp_and_gradient(genomes)
    rwp, rwp_gradient = plain.rwp_and_gradient(genomes)
    penalty = BondValencePenalty(truth.cell, truth.space_group, truth.elements, truth.site_multiplicities())(
        setup.scorer.project(genomes)
    )
    np.testing.assert_allclose(objective, rwp + 0.05 * penalty, rtol=1e-12)
    step = 1e-6
    for gene in range(genomes.shape[1]):  # dependent slots of the 4c sites included: their gradient is 0
        up, down = genomes.copy(), genomes.copy()
        up[:, gene] += step
        down[:, gene] -= step
        numeric = (evaluator.rwp_and_gradient(up)[0] - evaluator.rwp_and_gradient(down)[0]) / (2 * step)
        np.testing.assert_allclose(gradient[:, gene], numeric, rtol=1e-4, atol=1e-6)
    assert np.abs(gradient - rwp_gradient).max() > 1e-3  # the restraint moved it


def test_refined_models_report_rwp_alone(pbso4_on_wyckoff):
    from dataclasses import replace

    from gasolve.ga.settings import GARates
    from gasolve.solve import build_evaluator

    setup, truth = pbso4_on_wyckoff
    rates = GARates(bond_valence_weight=0.05, bond_valence_min_sites=0, bond_valence_local=True)
    evaluator = build_evaluator(setup.scorer, replace(setup.config.ga, rates=rates))
    genomes = truth.frac.reshape(1, -1) + np.random.default_rng(6).normal(0.0, 0.03, (4, 3 * truth.n_sites))
    done = evaluator(genomes)
    np.testing.assert_allclose(done.rwp, setup.scorer.rwp(done.genomes.reshape(4, -1, 3)), rtol=1e-10)
