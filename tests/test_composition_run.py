"""`gasolve run` with `[structure] composition`: config checks, the race's rules, and runs judged from best.cif.

The end-to-end cases simulate their pattern with pymatgen (an independent library, as benchmarks/broad.py does)
from AFLOW prototypes shipped in tests/data, give gasolve only the cell, the space group and the formula, and
judge the best.cif the user receives with pymatgen's StructureMatcher and gemmi.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path

from gasolve.cli.main import main
from gasolve.config import load_run_config
from gasolve.errors import InputError
from gasolve.hypotheses import race
from gasolve.hypotheses.hypothesis import Hypothesis, list_hypotheses

REPO = Path(__file__).resolve().parents[1]


def _write_case(folder: Path, prototype: str, budget: int = 300_000, extra: str = "") -> tuple[Path, Path]:
    """Pattern (pymatgen), reference CIF and composition config of an AFLOW prototype; (config, reference)."""
    sys.path.insert(0, str(REPO))
    from pymatgen.core import Structure

    from benchmarks.broad import simulate_pattern, standardise, write_xye

    entry = standardise(Structure.from_file(data_path(f"cif/aflow-prototypes/{prototype}.cif")))
    reference = entry["structure"]
    two_theta, y = simulate_pattern(reference, np.random.default_rng(0), fwhm=0.09)
    folder.mkdir(parents=True, exist_ok=True)
    write_xye(folder / "pattern.xye", two_theta, y, f"{prototype}: pymatgen XRDCalculator CuKa1, pV 0.09, Poisson")
    reference.to(filename=str(folder / "reference.cif"))
    config = folder / "run.toml"
    config.write_text(
        f"""[structure]
name = "{prototype}"
cell = {entry["cell"]}
space_group = {entry["space_group"]}
composition = "{reference.composition.reduced_formula}"
{extra}
[pattern]
file = "pattern.xye"
wavelength = "CuKa1"
range = [5.0, 80.0]

[pattern.profile]
fwhm = 0.09
eta = 0.5

[ga]
max_evaluations = {budget}
""",
        encoding="utf-8",
    )
    return config, folder / "reference.cif"


def _matches(best_cif: Path, reference_cif: Path) -> float:
    """Largest distance (Å) between matched atoms of best.cif and the reference, read by pymatgen; inf if none."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    model, reference = Structure.from_file(str(best_cif)), Structure.from_file(str(reference_cif))
    matcher = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, scale=False, primitive_cell=False)
    rms = matcher.get_rms_dist(reference, model)
    if rms is None:
        return math.inf
    return float(rms[1] * (reference.volume / len(reference)) ** (1 / 3))


# ----------------------------------------------------------------------------------------------------------
# Config


def _config(tmp_path: Path, structure: str) -> Path:
    (tmp_path / "p.xye").write_text("10 1 1\n11 2 1\n12 1 1\n", encoding="utf-8")
    path = tmp_path / "run.toml"
    path.write_text(f'[structure]\nname = "x"\n{structure}\n[pattern]\nfile = "p.xye"\nwavelength = 1.54\n')
    return path


PBSO4 = 'cell = [8.48, 5.398, 6.958, 90, 90, 90]\nspace_group = "Pnma"\n'


def test_composition_config_loads_and_writes_back(tmp_path):
    from gasolve.config import write_resolved

    config = load_run_config(_config(tmp_path, PBSO4 + 'composition = "Pb S O4"\nb_iso = 0.8'))
    assert config.structure.composition == (("Pb", 1), ("S", 1), ("O", 4))
    assert config.structure.sites == () and config.structure.z is None and config.structure.formula == "PbSO4"
    write_resolved(config, tmp_path / "again.toml")
    (tmp_path / "again.toml").rename(tmp_path / "run2.toml")
    assert load_run_config(tmp_path / "run2.toml").structure == config.structure


@pytest.mark.parametrize(
    ("structure", "key", "expected"),
    [
        (PBSO4 + 'composition = "PbSO4"\nsites = ["Pb"]', "sites", "not both"),
        (PBSO4 + 'composition = "PbSO4"\nwyckoff = ["4c"]', "wyckoff", "not both"),
        (PBSO4 + 'composition = "Pb(SO4"', "composition", "not a chemical formula"),
        (PBSO4 + 'composition = "PbXqO4"', "composition", "unknown element"),
        (PBSO4 + "composition = 7", "composition", "expected a chemical formula"),
        (PBSO4 + 'composition = "PbSO4"\nz = 40', "z", "too small"),
        (PBSO4 + 'composition = "PbSO4"\nz = 3', "z", "cannot be put on the Wyckoff positions"),
        (PBSO4 + 'composition = "PbSO4"\nz = 2.5', "z", "positive integer"),
        (PBSO4 + "z = 4", "z", "goes with composition"),
        (PBSO4 + 'composition = "PbSO4"\nb_iso = [1.0, 2.0]', "b_iso", "one number"),
        (PBSO4 + 'composition = "PbSO4"\noccupancy_correction = true', "occupancy_correction", "remove it"),
        ('cell = [3, 3, 3, 90, 90, 90]\nspace_group = "Pm-3m"\ncomposition = "Ca5(PO4)3F"', "composition", "small"),
        (
            'cell = [9.37, 9.37, 6.88, 90, 90, 120]\nspace_group = "P6_3/m"\ncomposition = "Ca5(PO4)3F"\nz = 3',
            "z",
            "cannot be put",
        ),
    ],
)
def test_bad_composition_input_names_file_and_key(tmp_path, capsys, structure, key, expected):
    path = _config(tmp_path, structure)
    with pytest.raises(InputError) as error:
        load_run_config(path)
    message = str(error.value)
    assert "run.toml" in message and f"[structure] {key}" in message and expected in message, message
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "run.toml" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written


# ----------------------------------------------------------------------------------------------------------
# Hypotheses and the race's rules


def test_pbso4_hypotheses_put_the_published_assignment_first(tmp_path):
    config = load_run_config(_config(tmp_path, PBSO4 + 'composition = "PbSO4"'))
    hypotheses, routes = list_hypotheses(config.structure)
    assert routes[0]["z"] == 4 and routes[0]["route"] == "wyckoff"
    assert hypotheses[0].sites == (("Pb", "4c"), ("S", "4c"), ("O", "8d"), ("O", "4c"), ("O", "4c"))
    assert hypotheses[0].n_free == 11
    keys = [tuple(sorted(h.sites)) for h in hypotheses]
    assert len(keys) == len(set(keys))  # listed once


def test_too_many_assignments_add_the_general_route(tmp_path):
    cell = "cell = [6.6, 6.61, 9.91, 80.2, 71.7, 67.3]\nspace_group = 2\n"
    config = load_run_config(_config(tmp_path, cell + 'composition = "K4SnO4"\nz = 2'))
    hypotheses, routes = list_hypotheses(config.structure, max_assignments=100)
    assert routes[0]["route"] == "general" and routes[0]["n_assignments"] > 100
    general = [h for h in hypotheses if h.route == "general"]
    assert len(general) == 1 and general[0].elements == ("K",) * 4 + ("Sn",) + ("O",) * 4
    spec = general[0].structure(config.structure)
    assert spec.occupancy_correction and spec.wyckoff is None and spec.composition is None


def _hypothesis(n_free: int, tag: str = "a") -> Hypothesis:
    return Hypothesis(1, "wyckoff", (("X", tag),), n_free, 0.0)


def _outcome(target, rwp, chi2, finds):
    class _Record:
        class state:
            evaluations = target

    return {"target": target, "record": _Record(), "rwp": rwp, "chi2": chi2, "finds": finds, "seconds": 1.0}


def test_rungs_grow_by_eta_scale_with_free_coordinates_and_respect_the_budget():
    settings = race.RaceSettings(eta=3, evaluations_per_free=1000, min_first_budget=5000)
    state = race.start([_hypothesis(2), _hypothesis(12)])
    plan = race.plan_rung(state, settings, 10**9)
    assert plan == {0: 5000.0, 1: 12000.0}
    state = race.replace(state, stage_rung=2)
    assert race.plan_rung(state, settings, 10**9) == {0: 45000.0, 1: 108000.0}
    capped = race.plan_rung(state, settings, 76500)  # increments scaled together to the budget left
    assert sum(capped.values()) == pytest.approx(76500)
    assert capped[1] / capped[0] == pytest.approx(108 / 45)


def test_a_rival_with_more_free_coordinates_that_fits_clearly_better_blocks_the_stop():
    """ReC2 (P-6m2) in the broad benchmark: every coordinate of one hypothesis fixed by symmetry, its one model
    'found' at every try at χ² 1.81, while a hypothesis with one free coordinate stood at χ² 1.11."""
    settings = race.RaceSettings(eta=3, finds=2, noise_factor=2.0, margin=0.9, first_cohort=2)
    state = race.start([_hypothesis(0, "fixed"), _hypothesis(1, "free")], noise_chi2=1.0, settings=settings)
    state = race.tell(state, 0, _outcome(10000.0, 0.0506, 1.81, 7))
    state = race.tell(state, 1, _outcome(19000.0, 0.0396, 1.11, 1))
    blocked = race.decide(state, settings, 10**9)
    assert not blocked.stop
    assert race.is_rival(state.lanes[1], state.lanes[0], 0.9)
    # Ba2SmNbO6 (Fm-3m): every coordinate fixed at χ² 1.21, a rival with one free coordinate 8 % lower in Rwp
    perovskite = race.tell(race.tell(state, 0, _outcome(10000.0, 0.0439, 1.21, 7)), 1, _outcome(14000, 0.0403, 1.02, 1))
    assert not race.decide(perovskite, settings, 10**9).stop
    # one that fits only as well (within 3 %) contains the simpler hypothesis: no evidence against it
    as_well = race.tell(state, 1, _outcome(19000.0, 0.0495, 1.75, 1))
    assert not race.is_rival(as_well.lanes[1], as_well.lanes[0], 0.9)
    assert race.decide(as_well, settings, 10**9).winner == 0


def test_halving_keeps_the_best_third_and_a_done_lane_stops_the_race():
    settings = race.RaceSettings(eta=3, finds=2, noise_factor=2.0, margin=0.9, first_cohort=6)
    state = race.start([_hypothesis(3, str(i)) for i in range(6)], noise_chi2=1.0, settings=settings)
    for i, rwp in enumerate([0.30, 0.10, 0.25, 0.12, 0.40, 0.50]):
        state = race.tell(state, i, _outcome(1000.0, rwp, (rwp / 0.04) ** 2, 1))
    state = race.decide(state, settings, 10**9)
    assert not state.stop
    assert [lane.status for lane in state.lanes] == ["dropped", "racing", "dropped", "racing", "dropped", "dropped"]
    state = race.tell(state, 1, _outcome(3000.0, 0.05, 1.5, 2))  # done: found twice at χ² <= 2 x noise
    state = race.tell(state, 3, _outcome(3000.0, 0.054, 1.8, 1))  # a rival within 10 % with as few free coordinates
    blocked = race.decide(state, settings, 10**9)
    assert not blocked.stop and blocked.lanes[1].status == "done"
    state = race.tell(state, 3, _outcome(3000.0, 0.09, 5.0, 0))
    stopped = race.decide(state, settings, 10**9)
    assert stopped.winner == 1 and stopped.stop.startswith("hypothesis 2 is done")
    rows = race.table(stopped)
    assert rows[0]["hypothesis"] == 2 and rows[0]["status"] == "done" and rows[0]["finds"] == 2


def test_cohorts_enter_in_prior_order_after_the_previous_stage_is_decided():
    settings = race.RaceSettings(eta=3, first_cohort=2, evaluations_per_free=1000, min_first_budget=1000)
    assert race.cohorts(11, settings) == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2]
    state = race.start([_hypothesis(1, str(i)) for i in range(8)], noise_chi2=1.0, settings=settings)
    assert set(race.plan_rung(state, settings, 10**9)) == {0, 1}  # only the first cohort runs
    state = race.tell(state, 0, _outcome(1000.0, 0.3, 60.0, 0))
    state = race.tell(state, 1, _outcome(1000.0, 0.2, 25.0, 0))
    state = race.decide(state, settings, 10**9)
    assert state.stage == 1 and state.stage_rung == 0 and state.lanes[0].status == "dropped"
    plan = race.plan_rung(state, settings, 10**9)
    assert set(plan) == {2, 3, 4, 5, 6, 7}  # the newcomers catch up; the survivor waits at 1000 evaluations
    assert all(target == 1000.0 for target in plan.values())


def test_a_richer_rival_does_not_block_and_a_failed_run_is_reported():
    settings = race.RaceSettings()
    state = race.start([_hypothesis(3, "a"), _hypothesis(9, "b"), _hypothesis(1, "c")], noise_chi2=1.0)
    state = race.tell(state, 0, _outcome(1000.0, 0.050, 1.2, 3))
    state = race.tell(state, 1, _outcome(1000.0, 0.049, 1.1, 3))  # more free coordinates: contains the simpler one
    state = race.tell(state, 2, {"error": "ValueError: broken"})
    state = race.decide(state, settings, 10**9)
    assert state.winner == 0
    assert not race.goes_on(state, 10**9)  # a done winner is the answer at any budget: a resume does not reopen
    failed = [row for row in race.table(state) if row["status"] == "failed"]
    assert failed and failed[0]["error"] == "ValueError: broken"


def test_budget_spent_ends_with_the_best_and_every_failure_ends_with_none():
    settings = race.RaceSettings()
    state = race.start([_hypothesis(3, "a"), _hypothesis(3, "b")], noise_chi2=1.0)
    state = race.tell(state, 0, _outcome(600.0, 0.3, 50.0, 0))
    state = race.tell(state, 1, _outcome(600.0, 0.2, 30.0, 0))
    spent = race.decide(state, settings, 1200)
    assert spent.winner == 1 and "budget" in spent.stop
    assert race.reopen(spent).stop == ""
    assert race.goes_on(spent, 2400) and not race.goes_on(spent, 1200)  # a larger budget, the same one
    failed = race.start([_hypothesis(3)])
    failed = race.decide(race.tell(failed, 0, {"error": "x"}), settings, 100)
    assert failed.winner is None and failed.stop == "every hypothesis failed"


# ----------------------------------------------------------------------------------------------------------
# End to end, judged from the files


def test_polar_p4mm_from_composition_is_solved_in_best_cif(tmp_path, capsys):
    import gemmi

    config, reference = _write_case(tmp_path / "case", "130_A3BC_tP5_99_bc_a_b")
    with open(config, "a", encoding="utf-8") as stream:  # the winner is judged against it at the end
        stream.write('\n[reference]\ncif = "reference.cif"\n')
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--scheduler", "synchronous", "--quiet", "--rietveld"]) == 0
    printed = capsys.readouterr().out
    assert "hypotheses (best first)" in printed and "winner: Z=1" in printed and "solved: yes" in printed
    assert "Rietveld refinement: Rwp" in printed
    assert _matches(out / "best.cif", reference) <= 0.3
    assert _matches(out / "refined.cif", reference) <= 0.3  # the winner, Rietveld-refined (polar: origin held)
    small = gemmi.read_small_structure(str(out / "best.cif"))
    assert small.spacegroup.number == 99 and len(small.get_all_unit_cell_sites()) == 5
    summary = json.loads((out / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert summary["composition"] == "ZrPbO3" and summary["z"] == 1
    assert summary["solved"] is True and summary["max_site_distance"] <= 0.3
    assert summary["hypotheses"][0]["status"] in ("done", "racing")
    assert summary["independent_finds"] >= 1 and summary["convincing"] is True
    assert summary["evaluations"] == pytest.approx(sum(row["evaluations"] for row in summary["hypotheses"]))
    assert summary["stop"]["early"] == summary["stop"]["reason"].startswith("hypothesis")
    assert summary["chi2"] <= 2 * summary["noise_chi2"]
    assert summary["rietveld"]["rwp"] <= summary["rwp"] + 1e-3
    solution = load_run_config(out / "solution.toml")
    assert solution.structure.sites and solution.structure.wyckoff is not None
    again = tmp_path / "again"
    assert main(["run", str(out / "solution.toml"), "--out", str(again), "--quiet"]) == 0
    repeated = json.loads((again / "summary.json").read_text())
    assert repeated["rwp"] == pytest.approx(summary["rwp"], rel=1e-9)  # solution.toml reproduces the winner


def test_dask_local_cluster_resume_and_a_failing_hypothesis(tmp_path, capsys, monkeypatch):
    config, reference = _write_case(tmp_path / "case", "216_ABC_cP12_198_a_a_a", budget=40_000)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["evaluations"] <= 40_000 * 1.5
    assert (out / "checkpoint.pkl").is_file()
    # resume with a larger budget: the race goes on from its checkpoint, on the synchronous runner
    code = main(["run", str(config), "--out", str(out), "--resume", "--max-evaluations", "150000", "--quiet",
                 "--scheduler", "synchronous"])  # fmt: skip
    assert code == 0
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["evaluations"] >= first["evaluations"]
    assert _matches(out / "best.cif", reference) <= 0.3
    # one hypothesis that crashes is reported and does not stop the others
    calls = {"n": 0}
    advance = race.advance

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected failure")
        return advance(*args)

    monkeypatch.setattr(race, "advance", flaky)
    config, _ = _write_case(tmp_path / "polar", "130_A3BC_tP5_99_bc_a_b", budget=60_000)
    out2 = tmp_path / "out2"
    assert main(["run", str(config), "--out", str(out2), "--scheduler", "synchronous", "--quiet"]) == 0
    summary = json.loads((out2 / "summary.json").read_text())
    assert any(row["status"] == "failed" and "injected failure" in row["error"] for row in summary["hypotheses"])
    assert "injected failure" in capsys.readouterr().err


def test_run_with_rietveld_stage_writes_refined_cif(tmp_path):
    """`gasolve run --rietveld`: the best model is Rietveld-refined at the end; refined.cif is read back."""
    from pymatgen.core import Structure

    config, reference = _write_case(tmp_path / "case", "130_A3BC_tP5_99_bc_a_b", budget=60_000)
    text = config.read_text().replace(
        'composition = "ZrPbO3"', 'sites = ["Zr", "Pb", "O", "O"]\nwyckoff = ["1b", "1a", "2c", "1b"]'
    )
    config.write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet", "--rietveld"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    refined = summary["rietveld"]
    assert refined["rwp"] <= summary["rwp"] + 1e-3  # more parameters free: no worse than the coordinates alone
    assert _matches(out / "refined.cif", reference) <= 0.3
    assert len(Structure.from_file(str(out / "refined.cif"))) == 5
    for name in ("refinement.json", "refinement.txt", "rietveld.png", "refinement_progress.png"):
        assert (out / name).stat().st_size > 0
