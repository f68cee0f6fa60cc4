"""`nnselect.harvest` and its data set: a tiny deterministic harvest on a 3-atom structure, exact resume after an
interruption, labels and base rates against hand-computed cases, and the `gasolve harvest` command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import strict_json

from gasolve.cli.main import main
from gasolve.compare import site_distances_batch
from gasolve.config import load_run_config
from gasolve.crystal import Site, SpaceGroup, Structure, UnitCell, read_cif, write_cif
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from nnselect.dataset import FIELDS, HarvestDataset, new_manifest, wrap_frac
from nnselect.harvest import HarvestProblem, harvest, harvest_run

CELL = [5.2, 5.9, 6.4, 94.0, 101.0, 97.0]
CONFIG = """\
[structure]
name = "BaSO"
cell = [5.2, 5.9, 6.4, 94.0, 101.0, 97.0]
space_group = "P-1"
sites = ["Ba", "S", "O"]

[pattern]
file = "tiny.xye"
wavelength = "CuKa1"

[pattern.profile]
fwhm = 0.15
eta = 0.5

[pattern.background]
terms = 2

[ga]
seed = 3
islands = 2
island_size = 4
min_island_size = 4
local_steps = 5

[reference]
cif = "tiny.cif"

[output]
dir = "out"
"""
#: Small enough that a run takes a fraction of a second; seed 5 solves at generation 3 (used below).
TINY = {"max_generations_per_run": 6, "generations_after_solution": 2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3-atom P-1 structure (Ba, S, O; 6 atoms in the cell), its simulated pattern and a harvest config."""
    folder = tmp_path_factory.mktemp("tiny")
    sites = (
        Site("Ba1", "Ba", (0.21, 0.33, 0.17), 1.0, 1.0),
        Site("S1", "S", (0.62, 0.18, 0.71), 1.0, 1.0),
        Site("O1", "O", (0.35, 0.79, 0.58), 1.0, 1.0),
    )
    structure = Structure(UnitCell.from_parameters(CELL), SpaceGroup.from_symbol("P-1"), sites, name="BaSO")
    write_cif(structure, folder / "tiny.cif")
    argv = ["simulate", folder / "tiny.cif", "--out", folder / "tiny.xye", "--range", 10, 60, "--step", 0.03]
    argv += ["--fwhm", 0.15, "--counts", 20000, "--seed", 1, "--background", 300, -50]
    assert main([str(a) for a in argv]) == 0
    (folder / "tiny.toml").write_text(CONFIG)
    return folder / "tiny.toml"


@pytest.fixture(scope="module")
def uninterrupted(tiny, tmp_path_factory):
    """Two runs (seeds 3 and 4) harvested in one call."""
    return harvest(load_run_config(tiny), tmp_path_factory.mktemp("a") / "data", n_runs=2, **TINY)


def test_harvest_records_every_model_with_its_distances(tiny, uninterrupted):
    dataset = HarvestDataset.open(uninterrupted.path)
    manifest = dataset.manifest
    assert manifest["format"] == "gasolve-harvest-1"
    assert manifest["seeds_done"] == [3, 4]
    assert [s["file"] for s in manifest["shards"]] == ["shard-00000.npz", "shard-00001.npz"]
    assert manifest["site_labels"] == ["Ba1", "S1", "O1"]
    assert manifest["n_models"] == sum(s["n_models"] for s in manifest["shards"]) == dataset.n_models
    assert manifest["two_theta"]["n_points"] == dataset.observed().n_points == 1668
    assert manifest["settings"]["island_size"] == 4 and manifest["harvest"]["generations_after_solution"] == 2
    assert set(manifest["versions"]) == {"python", "numpy", "numba", "gasolve"}
    assert load_run_config_text(manifest["config_toml"], tiny.parent).structure.sites == ("Ba", "S", "O")
    data = dataset.load()
    n = dataset.n_models
    assert {key: (value.dtype, value.shape[0]) for key, value in data.items()} == {
        key: (np.dtype(dtype), n) for key, dtype in FIELDS.items()
    }
    assert data["frac"].shape == (n, 3, 3) and data["distances"].shape == (n, 3)
    assert np.all((data["frac"] >= 0) & (data["frac"] < 1))
    for seed, shard in zip((3, 4), manifest["shards"], strict=True):
        mine = data["seed"] == seed
        generation = data["generation"][mine]
        assert np.count_nonzero(mine) == shard["n_models"]
        # the initial population (8 models) first, then 8 offspring per generation in order, up to the cap
        assert np.array_equal(generation, np.repeat(np.arange(-1, shard["generations"]), 8))
        assert shard["generations"] <= TINY["max_generations_per_run"]
    # the stored distances are those of the stored coordinates
    reference = read_cif(tiny.parent / "tiny.cif")
    again = site_distances_batch(
        data["frac"].astype(float), reference, reference.space_group, reference.cell, ["Ba", "S", "O"]
    )
    np.testing.assert_allclose(data["distances"], again, atol=1e-5)
    # and the stored Rwp that of the models (up to rounding the coordinates to float32)
    problem = HarvestProblem.from_config(load_run_config(tiny))
    np.testing.assert_allclose(data["rwp"], problem.scorer.rwp(data["frac"].astype(float)), rtol=2e-3)
    report = json.loads((dataset.path / "report.json").read_text())
    assert report["n_models"] == n and report["radii"] == [0.1, 0.3, 0.5]
    for radius in ("0.1", "0.3", "0.5"):
        expected = (data["distances"] <= float(radius)).mean(axis=0)
        np.testing.assert_allclose(list(report[radius]["base_rates"].values()), expected)


def load_run_config_text(text, folder):
    path = folder / "resolved.toml"
    path.write_text(text)
    return load_run_config(path)


def test_same_seed_same_models_and_interrupted_harvest_resumes_exactly(tiny, uninterrupted, tmp_path):
    config = load_run_config(tiny)
    out = tmp_path / "data"
    first = harvest(config, out, n_runs=1, **TINY)
    assert first.seeds_done == [3]
    # A run killed after writing its shard but before the manifest, with a stray temporary file: both ignored.
    (out / "shard-00001.npz").write_bytes(b"half-written")
    (out / ".shard-00001.npz.x.tmp").write_bytes(b"")
    resumed = harvest(config, out, n_runs=2, **TINY)
    assert resumed.seeds_done == [3, 4]
    expected, got = uninterrupted.load(), resumed.load()
    for key in FIELDS:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert resumed.manifest["shards"][1]["n_models"] == uninterrupted.manifest["shards"][1]["n_models"]
    # asking again for 2 runs adds nothing
    before = (out / "manifest.json").read_text()
    assert harvest(config, out, n_runs=2, **TINY).n_models == resumed.n_models
    assert json.loads((out / "manifest.json").read_text())["shards"] == json.loads(before)["shards"]


def test_target_models_stops_after_whole_runs(tiny, uninterrupted, tmp_path):
    first_run = uninterrupted.manifest["shards"][0]["n_models"]
    dataset = harvest(load_run_config(tiny), tmp_path / "data", target_models=first_run - 1, **TINY)
    assert dataset.n_runs == 1 and dataset.n_models == first_run


def test_a_run_stops_generations_after_its_solution(tiny):
    problem = HarvestProblem.from_config(load_run_config(tiny))
    settings = load_run_config(tiny).ga.replace(seed=5)
    run = harvest_run(problem, settings, generations_after_solution=2, max_generations=20)
    assert run.solved_generation == 3  # this seed's best first lies within 0.3 Å at generation 3 ...
    assert run.generation.max() == 3 + 2  # ... and the run goes on for 2 more generations
    assert run.evaluations_to_solution < run.evaluations
    assert np.any(np.all(run.distances[run.generation == run.solved_generation] <= 0.3, axis=1))
    capped = harvest_run(problem, settings, generations_after_solution=2, max_generations=1)
    assert capped.generation.max() == 0 and capped.generations == 1 and capped.solved_generation is None
    np.testing.assert_array_equal(capped.frac, run.frac[: capped.n_models])


def test_resume_with_other_settings_or_structure_is_refused(tiny, uninterrupted, tmp_path):
    config = load_run_config(tiny)
    other = dataclasses.replace(config, ga=config.ga.replace(local_steps=3))
    with pytest.raises(InputError, match="different settings"):
        harvest(other, uninterrupted.path, n_runs=3, **TINY)
    with pytest.raises(InputError, match="different harvest"):
        harvest(config, uninterrupted.path, n_runs=3, max_generations_per_run=5, generations_after_solution=2)
    with pytest.raises(InputError, match="not BaSO2"):
        HarvestDataset.open(uninterrupted.path, name="BaSO2")
    with pytest.raises(InputError, match="sites"):
        HarvestDataset.open(uninterrupted.path, elements=["Ba", "O", "S"])
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"no manifest\.json"):
        HarvestDataset.open(tmp_path / "junk")
    with pytest.raises(InputError, match="not an empty folder"):
        harvest(config, tmp_path / "junk", n_runs=1, **TINY)
    (tmp_path / "junk" / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="format 'other'"):
        HarvestDataset.open(tmp_path / "junk")
    with pytest.raises(InputError, match="no such"):
        HarvestDataset.open(tmp_path / "missing")


# --- the data set on hand-built arrays ------------------------------------------------------------------------


def small_dataset(path) -> HarvestDataset:
    observed = ObservedPattern(np.array([10.0, 10.5, 11.0]), np.array([5.0, 7.0, 6.0]), np.ones(3), "hand")
    provenance = {
        "name": "BaSO",
        "elements": ["Ba", "S", "O"],
        "config_toml": "",
        "reference_cif": "",
        "observed": observed,
        "wavelength": [(1.5406, 1.0)],
        "profile": {"caglioti": [0.0, 0.0, 0.01]},
        "background_terms": 2,
        "settings": {"seed": 0},
    }
    assert new_manifest(**provenance)["site_labels"] == ["Ba1", "S1", "O1"]
    return HarvestDataset.create(path, **provenance)


#: Distances (Å) of 4 hand-made models; 0.1 itself counts as within 0.1 Å.
DISTANCES = np.array([[0.05, 0.2, 0.6], [0.1, 0.35, 0.05], [0.5, 0.09, 0.3], [0.7, 0.6, 0.2]])


def arrays(n: int, distances: np.ndarray) -> dict[str, np.ndarray]:
    frac = np.linspace(-0.5, 1.5, n * 9).reshape(n, 3, 3)
    return {"frac": frac, "rwp": np.linspace(0.1, 0.5, n), "generation": np.arange(n) - 1, "distances": distances}


def test_labels_base_rates_and_cooccurrence_by_hand(tmp_path):
    dataset = small_dataset(tmp_path / "d")
    dataset.append_run(0, arrays(2, DISTANCES[:2]))
    dataset.append_run(7, arrays(2, DISTANCES[2:]), {"solved_generation": None})
    dataset = HarvestDataset.open(tmp_path / "d")
    assert dataset.seeds_done == [0, 7] and dataset.n_models == 4
    np.testing.assert_array_equal(dataset.labels(0.1), [[1, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(dataset.labels(0.3), [[1, 1, 0], [1, 0, 1], [0, 1, 1], [0, 0, 1]])
    np.testing.assert_allclose(dataset.base_rates(0.1), [2 / 4, 1 / 4, 1 / 4])
    np.testing.assert_allclose(dataset.base_rates(0.5), [3 / 4, 3 / 4, 3 / 4])
    # P(both in place) at 0.3 Å: Ba1&S1 in model 0, Ba1&O1 in model 1, S1&O1 in model 2
    expected = np.array([[2, 1, 1], [1, 2, 1], [1, 1, 3]]) / 4
    np.testing.assert_allclose(dataset.cooccurrence(0.3), expected)
    report = dataset.write_report()
    assert report == json.loads((tmp_path / "d" / "report.json").read_text())
    assert report["0.3"]["base_rates"] == {"Ba1": 0.5, "S1": 0.5, "O1": 0.75}
    assert report["0.5"]["all_sites"] == 0.5 and report["0.1"]["all_sites"] == 0.0
    np.testing.assert_allclose(report["0.3"]["conditional"][2], [1 / 3, 1 / 3, 1.0])
    data = dataset.load(["seed", "frac"], max_models=3)
    np.testing.assert_array_equal(data["seed"], [0, 0, 7])
    assert data["frac"].dtype == np.float32 and np.all((data["frac"] >= 0) & (data["frac"] < 1))
    assert dataset.load(max_models=0)["distances"].shape == (0, 3)
    assert dataset.labels(0.1, max_models=1).shape == (1, 3)


def test_append_run_refuses_bad_arrays(tmp_path):
    dataset = small_dataset(tmp_path / "d")
    dataset.append_run(1, arrays(2, DISTANCES[:2]))
    with pytest.raises(ValueError, match="already"):
        dataset.append_run(1, arrays(2, DISTANCES[:2]))
    with pytest.raises(ValueError, match="distances must have shape"):
        dataset.append_run(2, arrays(2, DISTANCES[:3]))
    with pytest.raises(ValueError, match="lack rwp"):
        dataset.append_run(2, {k: v for k, v in arrays(2, DISTANCES[:2]).items() if k != "rwp"})
    bad = arrays(2, DISTANCES[:2])
    bad["frac"][0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dataset.append_run(2, bad)
    with pytest.raises(ValueError, match="seed array"):
        dataset.append_run(2, {**arrays(2, DISTANCES[:2]), "seed": np.array([2, 3])})
    with pytest.raises(ValueError, match="radius"):
        dataset.labels(0.0)
    assert HarvestDataset.open(tmp_path / "d").seeds_done == [1]
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["manifest.json", "pattern.xye", "shard-00000.npz"]


def test_wrap_frac_stays_below_one_in_float32():
    wrapped = wrap_frac(np.array([1 - 1e-9, -1e-12, 2.25, -0.75]))
    assert wrapped.dtype == np.float32
    np.testing.assert_array_equal(wrapped, np.array([0.0, 0.0, 0.25, 0.25], dtype=np.float32))


# --- the command ----------------------------------------------------------------------------------------------


def cli(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_harvests_and_prints_the_base_rates(tiny, tmp_path, capsys):
    out = tmp_path / "data"
    code, stdout, err = cli(["harvest", tiny, "--runs", 1, "--max-generations", 1, "--out", out, "--quiet"], capsys)
    assert code == 0, err
    dataset = HarvestDataset.open(out)
    assert dataset.seeds_done == [3] and dataset.n_models == 16
    assert "16 models from 1 runs" in stdout
    for label in ("Ba1", "S1", "O1", "≤ 0.1 Å", "≤ 0.5 Å"):
        assert label in stdout
    # report.json, read strictly, holds the base rates of the data set's own labels
    report = strict_json(out / "report.json")
    assert (report["n_models"], report["n_runs"]) == (16, 1)
    models = dataset.models()
    assert report["site_labels"] == list(models.manifest.site_labels)
    previous = np.zeros(len(report["site_labels"]))
    for radius in report["radii"]:
        block = report[f"{radius:g}"]
        rates = np.array([block["base_rates"][label] for label in report["site_labels"]])
        np.testing.assert_allclose(rates, models.labels(radius).mean(axis=0), atol=1e-12)
        assert block["mean_sites"] == pytest.approx(rates.sum()) and np.all(rates >= previous)
        previous = rates


@pytest.mark.parametrize(
    ("edit", "extra", "fragment"),
    [
        (lambda text: text[: text.index("[reference]")] + '[output]\ndir = "out"\n', [], "[reference]"),
        (lambda text: text, ["--runs", 0], "--runs must be at least 1"),
        (lambda text: text.replace('"tiny.cif"', '"none.cif"'), [], "no such file"),
        (lambda text: text.replace('sites = ["Ba", "S", "O"]', 'composition = "BaSO"\nz = 2'), [], "[structure] sites"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(tiny, tmp_path, capsys, edit, extra, fragment):
    config = tmp_path / "bad.toml"
    config.write_text(edit(tiny.read_text()).replace('"tiny.', f'"{tiny.parent}/tiny.'))
    code, _, err = cli(["harvest", config, "--out", tmp_path / "data", "--quiet", *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err
    assert not (tmp_path / "data").exists()


def test_cli_harvest_then_train_nn(tiny, tmp_path, capsys):
    out = tmp_path / "data"
    argv = ["harvest", tiny, "--runs", 1, "--max-generations", 2, "--out", out, "--quiet", "--train-nn"]
    code, stdout, err = cli([*argv, "--nn-config", "tiny"], capsys)
    assert code == 0, err
    metrics = strict_json(out / "nn" / "metrics.json")
    assert metrics["config"]["model"] == "PaperCNN" and len(metrics["epochs"]) == 1
    assert metrics["dataset"]["n_models"] == HarvestDataset.open(out).n_models
    assert "trained PaperCNN" in stdout
    # the trained network loads and predicts a probability per site for the harvested models
    from nnselect import checkpoint
    from nnselect.input_pipeline import build_problem
    from nnselect.train import predict

    models = HarvestDataset.open(out).models()
    network, meta = checkpoint.load(out / "nn" / "checkpoint.msgpack")
    assert meta.model == "PaperCNN" and meta.n_sites == len(models.manifest.site_labels) == 3
    inputs = meta.profile_inputs(build_problem(models.manifest, models.directory))
    p = predict(network, inputs, models.frac, batch_size=16)
    assert p.shape == (models.n_models, 3) and np.all((p >= 0) & (p <= 1)) and p.std() > 0


def test_cli_harvest_refuses_a_bad_training_config_before_harvesting(tiny, tmp_path, capsys):
    code, _, err = cli(["harvest", tiny, "--out", tmp_path / "data", "--train-nn", "--nn-config", "huge"], capsys)
    assert code == 2 and "'huge' is neither a preset" in err
    assert not (tmp_path / "data").exists()


def test_harvest_builds_the_scorer_of_gasolve_run(tmp_path):
    """Wyckoff letters reach the harvest's scorer; a config without a fixed profile is refused with a message."""
    from gasolve.scoring.mapped import MappedScorer

    examples = Path(__file__).resolve().parents[1] / "examples"
    with pytest.raises(InputError, match=r"\[pattern.profile\]"):
        HarvestProblem.from_config(load_run_config(examples / "PbSO4.toml"))
    text = (examples / "PbSO4.toml").read_text()
    text = text.replace('file = "PbSO4.xra"', f'file = "{examples / "PbSO4.xra"}"\nrange = [15.0, 60.0]')
    text = text.replace('cif = "PbSO4.cif"', f'cif = "{examples / "PbSO4.cif"}"')
    text = text.replace("[pattern.background]", "[pattern.profile]\nfwhm = 0.1\neta = 0.5\n\n[pattern.background]")
    (tmp_path / "pbso4.toml").write_text(text)
    problem = HarvestProblem.from_config(load_run_config(tmp_path / "pbso4.toml"))
    assert isinstance(problem.scorer, MappedScorer)
    assert problem.scorer.site_map.labels == ("4c", "4c", "4c", "4c", "8d")
