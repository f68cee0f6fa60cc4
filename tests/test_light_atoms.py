"""The light-atom search (gasolve.light_atoms): light atoms searched again with the heavy ones held.

The case is K4SnO4 (examples/, P-1, 9 sites): Sn carries most of the scattering, K and O are light beside it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gasolve.light_atoms import BUDGET_SHARE, heavy_sites, light_budget

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def test_heavy_sites_split_by_scattering_power_squared():
    # Bi 80, Rb 35, F 8.5 electrons (RbBiF4): Rb is heavy beside Bi (0.19), F is not (0.011)
    assert heavy_sites(np.array([80.0, 35.0, 8.5, 8.5])).tolist() == [True, True, False, False]
    # Sn 47, K 18 (K4SnO4): K is light beside Sn (0.147)
    assert heavy_sites(np.array([47.0, 18.0, 8.0])).tolist() == [True, False, False]
    assert heavy_sites(np.array([30.0, 31.0])).all()  # alike atoms: nothing to hold apart
    with pytest.raises(ValueError):
        heavy_sites(np.array([30.0, 0.0]))


def test_the_budget_is_at_most_a_share_of_the_run():
    from gasolve.ga.settings import GASettings

    assert light_budget(GASettings.from_flat(max_evaluations=2_000_000)) == 300_000
    assert light_budget(GASettings.from_flat(max_evaluations=100_000)) == int(BUDGET_SHARE * 100_000)
    assert light_budget(GASettings.from_flat(light_atom_evaluations=0)) == 0


@pytest.fixture(scope="module")
def k4sno4():
    from gasolve import pipeline
    from gasolve.config import load_run_config
    from gasolve.crystal import read_cif

    config = load_run_config(EXAMPLES / "K4SnO4.toml")
    config = dataclasses.replace(config, ga=config.ga.replace(max_evaluations=200_000, light_atom_evaluations=50_000))
    setup = pipeline.prepare(config)
    truth = np.array([site.frac for site in read_cif(EXAMPLES / "K4SnO4.cif").sites])
    return setup, truth


def test_held_sites_keep_their_coordinates(k4sno4):
    from gasolve.solve import build_evaluator

    setup, truth = k4sno4
    held = np.full_like(truth, np.nan)
    held[0] = truth[0]
    evaluate = build_evaluator(setup.scorer, setup.config.ga, held=held)
    genomes = np.random.default_rng(0).random((6, truth.size))
    done = evaluate(genomes)
    assert np.allclose(done.genomes.reshape(6, -1, 3)[:, 0], truth[0])
    assert not np.allclose(done.genomes.reshape(6, -1, 3)[:, 1], truth[1])  # the others are searched
    assert 0 not in evaluate.movable


def test_light_atoms_put_wrong_are_found_again_with_sn_held(k4sno4):
    """Sn right, every K and O moved by 1-2 Å: the search finds them again, and the model is kept."""
    from gasolve.light_atoms import search_light_atoms
    from gasolve.refine import refine_coordinates

    setup, truth = k4sno4
    rng = np.random.default_rng(3)
    wrong = truth.copy()
    wrong[1:] += rng.uniform(0.15, 0.3, (8, 3)) * rng.choice([-1, 1], (8, 3))
    start = refine_coordinates(setup.scorer, wrong)
    reports = []
    found, note = search_light_atoms(setup, start, lambda *args: reports.append(args))
    spent = [r[0] for r in reports]
    assert spent == sorted(spent) and spent[-1] == note.evaluations
    budgets = sorted({r[1] for r in reports})  # each round adds its 50,000 to what the rounds before it spent
    assert len(budgets) == note.rounds and budgets[0] == 50_000 and np.all(np.diff(budgets) >= 50_000)
    assert note.held_sites == ("Sn1",) and len(note.searched_sites) == 8
    assert note.kept and found.rwp_after < 0.7 * start.rwp_after and note.rwp_after == found.rwp_after
    # rounds go on while they find better: the first finds the truth, the second nothing better, and it stops there
    assert note.rounds == 2
    assert note.evaluations <= note.rounds * (50_000 + 5_000)  # the last generation may pass the budget
    solved, distances = setup.judge(found.frac)
    assert solved, distances


def test_a_run_reports_the_search_in_summary_and_cif(tmp_path, capsys):
    """`gasolve run` with a small budget: the best model found once goes through the search; summary.json and
    best.cif say what it did. The budget is also too small to confirm a model, and the run warns at its start
    (gasolve.ga.budget_check)."""
    from gasolve.cli.main import main

    for name in ("K4SnO4.toml", "K4SnO4.xye", "K4SnO4.cif"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    config = tmp_path / "K4SnO4.toml"
    config.write_text(config.read_text().replace("max_evaluations = 2000000", "max_evaluations = 20000"))
    assert main(["run", str(config), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    check = summary["budget_check"]
    assert check["needed"] > 20_000 and "max_evaluations = 20,000 is below" in check["warning"]
    assert "gasolve run: warning: [ga] max_evaluations = 20,000" in capsys.readouterr().err
    light = summary["light_atom_search"]
    if summary["independent_finds"] >= 2:
        pytest.skip("the run confirmed its model, so no light-atom search ran")
    # a quarter of 20,000; the first generation (every model refined by L-BFGS) may take it past that
    assert light["held_sites"] == ["Sn1"] and 5_000 <= light["evaluations"] <= light["rounds"] * 3 * 5_000
    assert "light-atom search" in (tmp_path / "out" / "best.cif").read_text()


def test_the_progress_bar_starts_at_the_first_generation_and_stops():
    from gasolve.cli.run import LightAtomBar

    bar = LightAtomBar(True)
    assert bar.progress is None  # nothing shown while the search has not started
    bar(1_000.0, 5_000, 0.1)
    bar(6_000.0, 5_000, 0.05)
    assert bar.progress.tasks[0].completed == 5_000
    bar.stop()
    hidden = LightAtomBar(False)
    hidden(1.0, 2, 0.1)
    assert hidden.progress is None


def _hydroxide_setup(folder: Path, relative: str, group: int, sites: list[tuple[str, str]]):
    """A setup of a shipped P1 CIF's structure (sites given as (element, Wyckoff letter), in its order of first
    appearance) on a pymatgen pattern of it, and its asymmetric unit (n_sites, 3) taken from the CIF."""
    import sys

    from conftest import data_path
    from pymatgen.core import Structure

    sys.path.insert(0, str(REPO))
    from benchmarks.broad import simulate_pattern, write_xye
    from gasolve.config import load_run_config
    from gasolve.crystal.hydrogens import _distance_to_position
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.crystal.wyckoff import wyckoff_position
    from gasolve.pipeline import prepare

    reference = Structure.from_file(data_path(relative))
    two_theta, y = simulate_pattern(reference, np.random.default_rng(0), fwhm=0.09)
    write_xye(folder / "pattern.xye", two_theta, y, f"{relative}: pymatgen CuKa1, pV 0.09, Poisson")
    cell = ", ".join(f"{x:.6f}" for x in reference.lattice.parameters)
    elements = ", ".join(f'"{e}"' for e, _ in sites)
    letters = ", ".join(f'"{w}"' for _, w in sites)
    (folder / "run.toml").write_text(
        f"""[structure]
name = "case"
cell = [{cell}]
space_group = {group}
sites = [{elements}]
wyckoff = [{letters}]

[pattern]
file = "pattern.xye"
wavelength = "CuKa1"
range = [5.0, 80.0]

[pattern.profile]
fwhm = 0.09
eta = 0.5
""",
        encoding="utf-8",
    )
    setup = prepare(load_run_config(folder / "run.toml"))
    space_group = SpaceGroup.from_symbol(group)
    frac, used = [], set()
    for element, letter in sites:  # the first atom of the element not in an orbit already taken
        for k, site in enumerate(reference):
            if site.specie.symbol != element or k in used:
                continue
            orbit = space_group.orbit(site.frac_coords, tol=1e-3)
            for j, other in enumerate(reference):
                delta = orbit - other.frac_coords
                if (np.abs(delta - np.round(delta)) < 1e-3).all(axis=1).any():
                    used.add(j)
            position = wyckoff_position(space_group, letter)
            distance, point = _distance_to_position(
                setup.config.structure.cell, space_group, site.frac_coords, position
            )
            assert distance < 1e-3
            frac.append(point)  # the image of the atom on the position's representative
            break
    return setup, np.array(frac), reference


def _largest_h_distance(setup, frac, reference) -> float:
    """Largest distance (Å) from an H of the reference to the nearest H of the model ``frac``."""
    spec = setup.config.structure
    is_h = [e == "H" for e in spec.sites]
    ours = np.concatenate([spec.space_group.orbit(x, tol=1e-3) for x in frac[is_h]])
    theirs = np.array([s.frac_coords for s in reference if s.specie.symbol == "H"])
    delta = theirs[:, None, :] - ours[None, :, :]
    delta -= np.round(delta)
    return float(np.sqrt(np.einsum("tpi,ij,tpj->tp", delta, spec.cell.metric, delta)).min(axis=1).max())


def test_h_directions_the_pattern_sees_are_refined(tmp_path):
    # Nd(OH)3 (P6_3/m, Materials Project mp-625397, PBE; tests/data/cif/mp): the geometric rules point its H
    # 0.46 Å from the DFT H (it bends toward two O on edges of its own polyhedra); with 3 H per Nd the pattern sees
    # the direction, and the refined one, at 0.97 Å from O, is the DFT structure's.
    from gasolve.crystal.hydrogens import place_hydrogens
    from gasolve.crystal.wyckoff import wyckoff_position
    from gasolve.light_atoms import refine_hydrogen_directions

    setup, frac, reference = _hydroxide_setup(
        tmp_path, "cif/mp/NdH3O3_mp-625397.cif", 176, [("Nd", "2c"), ("H", "6h"), ("O", "6h")]
    )
    spec = setup.config.structure
    (placed,) = place_hydrogens(
        spec.cell, spec.space_group, frac[[0, 2]], ["Nd", "O"], [wyckoff_position(spec.space_group, "6h")]
    )
    frac[1] = placed
    assert _largest_h_distance(setup, frac, reference) > 0.3
    turned = refine_hydrogen_directions(setup.scorer, spec.cell, spec.space_group, frac)
    assert turned.kept and turned.degrees_of_freedom == 2 and turned.statistic > turned.threshold
    assert turned.rwp_after < turned.rwp_before
    assert _largest_h_distance(setup, turned.frac, reference) < 0.2
    np.testing.assert_allclose(turned.frac[[0, 2]], setup.scorer.project(frac[None])[0][[0, 2]])  # others held
    o_h = spec.cell.distance(turned.frac[1], turned.frac[2])  # the H of this O: at the bond length
    assert abs(o_h - 0.97) < 1e-6, o_h


def test_h_directions_the_pattern_does_not_see_are_kept_as_placed(tmp_path):
    # HoO(OH) (Pnma, mp-754283): one H beside Ho (67 electrons); its direction barely changes the fit, and the
    # likelihood ratio test keeps the geometric placement.
    from gasolve.crystal.hydrogens import place_hydrogens
    from gasolve.crystal.wyckoff import wyckoff_position
    from gasolve.light_atoms import refine_hydrogen_directions

    setup, frac, _ = _hydroxide_setup(
        tmp_path, "cif/mp/HoHO2_mp-754283.cif", 62, [("Ho", "4c"), ("H", "4c"), ("O", "4c"), ("O", "4c")]
    )
    spec = setup.config.structure
    others = frac[[0, 2, 3]]
    (placed,) = place_hydrogens(
        spec.cell, spec.space_group, others, ["Ho", "O", "O"], [wyckoff_position(spec.space_group, "4c")]
    )
    frac[1] = placed
    turned = refine_hydrogen_directions(setup.scorer, spec.cell, spec.space_group, frac)
    assert not turned.kept and turned.statistic < turned.threshold and turned.degrees_of_freedom == 2
    np.testing.assert_array_equal(turned.frac, setup.scorer.project(frac[None])[0])
