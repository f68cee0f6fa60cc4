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
