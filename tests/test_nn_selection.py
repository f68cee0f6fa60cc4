"""Network-guided selection: the [nn] table, the Evaluator's rerank and refine modes, and `gasolve run` with a
trained network (a tiny one trained here on a tiny data set, so that the test needs nothing shipped)."""

from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import strict_json
from test_nnselect import _write_dataset

from gasolve.cli.main import main
from gasolve.config import load_run_config, resolved_toml
from gasolve.errors import InputError
from gasolve.ga import memetic
from gasolve.ga.nn_settings import NNSettings
from gasolve.ga.settings import GASettings
from gasolve.scoring import Scorer, ScoringProblem

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    """A tiny network trained for one epoch on a tiny K4SnO4 data set (10-40° grid)."""
    from nnselect.configs import get_preset
    from nnselect.train import train_and_evaluate

    folder = tmp_path_factory.mktemp("nn")
    dataset = _write_dataset(folder / "data")
    config = dataclasses.replace(get_preset("tiny"), dataset=str(dataset))
    train_and_evaluate(config, folder / "train")
    return folder / "train" / "last.msgpack"


@pytest.fixture
def example(tmp_path, network) -> Path:
    for name in ("K4SnO4.toml", "K4SnO4.xye", "K4SnO4.cif"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    shutil.copy(network, tmp_path / "net.msgpack")
    return tmp_path / "K4SnO4.toml"


def _with_nn(example: Path, table: str) -> Path:
    path = example.with_name("nn.toml")
    path.write_text(example.read_text() + "\n[nn]\n" + table)
    return path


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    config = load_run_config(EXAMPLES / "K4SnO4.toml")
    from gasolve.config import load_observed

    s, p = config.structure, config.pattern
    problem = ScoringProblem.build(
        s.cell, s.space_group, list(s.sites), load_observed(config), p.radiation, p.profile, p.background_terms
    )
    return Scorer(problem)


# --- config -------------------------------------------------------------------------------------------------


def test_nn_table_is_read_with_defaults_and_round_trips(example):
    config = load_run_config(_with_nn(example, 'model = "net.msgpack"\n'))
    assert config.nn == NNSettings(example.parent / "net.msgpack")
    assert config.nn.mode == "rerank" and config.nn.rerank and not config.nn.refine
    again = example.with_name("again.toml")
    again.write_text(resolved_toml(config))
    assert load_run_config(again).nn == config.nn


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ('model = "net.msgpack"\nmode = "vote"\n', "[nn]"),
        ('model = "net.msgpack"\nmode = "vote"\n', "rerank, refine, both"),
        ('model = "missing.msgpack"\n', "[nn] model"),
        ('model = "net.msgpack"\nweight = -1\n', "weight"),
        ('model = "net.msgpack"\nrefine_fraction = 0\n', "refine_fraction"),
        ('model = "net.msgpack"\ntemperature = 1\n', "unknown key"),
        ('mode = "refine"\n', "model"),
    ],
)
def test_bad_nn_table_exits_2_naming_the_key(example, tmp_path, capsys, table, fragment):
    code, _, err = run(["run", _with_nn(example, table), "--out", tmp_path / "out", "--quiet"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], err
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_checkpoint_exits_2(example, tmp_path, capsys):
    (tmp_path / "net.msgpack").write_bytes(b"not a network")
    code, _, err = run(["run", _with_nn(example, 'model = "net.msgpack"\n'), "--quiet"], capsys)
    assert code == 2 and "not an nnselect checkpoint" in err


# --- the Evaluator ------------------------------------------------------------------------------------------


class FakeSelector:
    """A deterministic stand-in for the network: the score is the first coordinate of the first site."""

    def __call__(self, genomes):
        return np.asarray(genomes)[:, 0].copy()


def _genomes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 27))


def test_rerank_subtracts_weight_times_score_from_the_fitness_only(scorer):
    settings = GASettings.from_flat(local_steps=3, antibump_weight=0.0)
    plain = memetic.Evaluator(scorer, settings)(_genomes(12))
    nn = NNSettings(Path("unused"), mode="rerank", weight=0.3)
    guided = memetic.Evaluator(scorer, settings, selector=FakeSelector(), nn=nn)(_genomes(12))
    np.testing.assert_array_equal(guided.genomes, plain.genomes)
    np.testing.assert_array_equal(guided.rwp, plain.rwp)
    np.testing.assert_allclose(guided.fitness, plain.fitness - 0.3 * guided.genomes[:, 0], rtol=0, atol=1e-15)
    assert guided.evaluations == plain.evaluations
    assert guided.nn_seconds > 0 and plain.nn_seconds == 0


def test_refine_mode_refines_the_share_with_the_best_priority(scorer):
    genomes = _genomes(20, seed=1)
    settings = GASettings.from_flat(local_steps=3, antibump_weight=0.0)
    raw = scorer.rwp(genomes.reshape(20, 9, 3))
    weight = 1.0
    nn = NNSettings(Path("unused"), mode="refine", weight=weight, refine_fraction=0.25)
    done = memetic.Evaluator(scorer, settings, selector=FakeSelector(), nn=nn)(genomes)
    refined = np.flatnonzero(np.any(done.genomes != genomes, axis=1))
    expected = np.sort(np.argsort(raw - weight * genomes[:, 0], kind="stable")[:5])
    np.testing.assert_array_equal(refined, expected)
    assert not np.array_equal(expected, np.sort(np.argsort(raw)[:5]))  # the network changed the choice
    np.testing.assert_array_equal(
        done.rwp[np.setdiff1d(np.arange(20), refined)], raw[np.setdiff1d(np.arange(20), refined)]
    )
    # with weight 0 the choice is Rwp's, as the GA without a network refining the same share
    zero = dataclasses.replace(nn, weight=0.0)
    by_rwp = memetic.Evaluator(scorer, settings, selector=FakeSelector(), nn=zero)(genomes)
    baseline = memetic.Evaluator(scorer, settings.replace(local_fraction=0.25))(genomes)
    np.testing.assert_array_equal(by_rwp.genomes, baseline.genomes)
    np.testing.assert_array_equal(by_rwp.fitness, baseline.fitness)


def test_selector_and_settings_go_together(scorer):
    with pytest.raises(ValueError, match="together"):
        memetic.Evaluator(scorer, GASettings(), selector=FakeSelector())
    with pytest.raises(InputError, match="mode"):
        NNSettings(Path("x"), mode="vote")


# --- the real network in a run ------------------------------------------------------------------------------


def test_site_selector_gives_probabilities_per_site_on_the_run_pattern(network, scorer):
    from nnselect.selector import SiteSelector

    selector = SiteSelector(network, scorer.problem, batch_size=8)
    genomes = _genomes(11, seed=2)
    p = selector.probabilities(genomes.reshape(11, 9, 3))
    assert p.shape == (11, 9) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(selector(genomes), p.mean(axis=1), rtol=1e-6)
    assert selector.calls == 22 and selector.seconds > 0
    # the run's pattern (5-80°) was resampled onto the network's 10-40° grid
    assert selector.inputs.grid.n_points < scorer.problem.pattern.n_points


def test_run_with_a_network_reports_its_time_and_is_reproducible(example, tmp_path, capsys):
    mode = "both"  # both places the network acts in (the Evaluator tests check each alone)
    config = _with_nn(example, f'model = "net.msgpack"\nmode = "{mode}"\nweight = 0.05\n')
    summaries = []
    for name in ("a", "b"):
        out = tmp_path / name
        code, _, err = run(["run", config, "--out", out, "--max-evaluations", 6000, "--quiet"], capsys)
        assert code == 0, err
        summaries.append(strict_json(out / "summary.json"))
        rows = list(csv.DictReader((out / "history.csv").open()))
        assert all(float(row["nn_seconds"]) > 0 for row in rows)
    first, second = summaries
    assert first["nn"]["mode"] == mode and 0 < first["nn"]["share_of_wall_time"] < 1
    for key in ("rwp", "rwp_before_refinement", "evaluations", "generations", "site_distances"):
        assert first[key] == second[key], key


# --- gasolve train-nn -----------------------------------------------------------------------------------------


def test_train_nn_cli_trains_from_a_toml_config_and_refuses_bad_input(tmp_path, capsys):
    dataset = _write_dataset(tmp_path / "data", n_random=16, n_near=16)
    config = tmp_path / "train.toml"
    config.write_text('[train]\npreset = "tiny"\npatterns_per_epoch = 16\n')
    code, stdout, err = run(["train-nn", dataset, "--config", config, "--epochs", 1, "--out", tmp_path / "nn"], capsys)
    assert code == 0, err
    assert "epoch   1" in err and "trained PaperCNN for 1 epochs" in stdout
    metrics = strict_json(tmp_path / "nn" / "metrics.json")
    assert len(metrics["epochs"]) == 1 and metrics["config"]["patterns_per_epoch"] == 16
    assert metrics["best_epoch"] == 1 and metrics["config"]["model"] == "PaperCNN"
    # the written network loads and predicts one probability per site, the same as the last epoch's
    from nnselect import checkpoint
    from nnselect.dataset import load_dataset
    from nnselect.input_pipeline import build_problem
    from nnselect.train import predict

    data = load_dataset(dataset)
    best, meta = checkpoint.load(tmp_path / "nn" / "checkpoint.msgpack")
    last, _ = checkpoint.load(tmp_path / "nn" / "last.msgpack")
    assert meta.model == "PaperCNN" and meta.info["epoch"] == 1 and meta.scale == metrics["scale"]
    inputs = meta.profile_inputs(build_problem(data.manifest, data.directory))
    p = predict(best, inputs, data.frac, batch_size=16)
    assert p.shape == (32, 9) and np.all((p >= 0) & (p <= 1)) and p.std() > 0
    np.testing.assert_array_equal(predict(last, inputs, data.frac, batch_size=16), p)

    config.write_text('[train]\npreset = "tiny"\nlearning_rat = 0.1\n')
    code, _, err = run(["train-nn", dataset, "--config", config, "--out", tmp_path / "bad"], capsys)
    assert code == 2 and "learning_rat" in err and "learning_rate" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["train-nn", tmp_path, "--config", "tiny"], capsys)
    assert code == 2 and "not a harvested data set" in err
    code, _, err = run(["train-nn", dataset, "--config", "tiny", "--epochs", 0], capsys)
    assert code == 2 and "--epochs" in err


# --- the shipped network --------------------------------------------------------------------------------------


def test_shipped_network_tells_the_true_k4sno4_from_random_models(scorer):
    """The committed K4PbO4 checkpoint, applied to K4SnO4 (the paper's transfer): the true structure and
    slightly perturbed copies of it score far above random models."""
    from gasolve.crystal import read_cif
    from nnselect.selector import SiteSelector

    selector = SiteSelector(EXAMPLES / "K4PbO4_nn.msgpack", scorer.problem)
    assert selector.meta.elements[0] == "Pb" and selector.meta.n_sites == 9 and selector.meta.label_radius == 0.1
    truth = read_cif(EXAMPLES / "K4SnO4.cif").frac
    rng = np.random.default_rng(5)
    near = (truth[None] + rng.normal(0, 0.002, (8, 9, 3))) % 1.0
    far = rng.random((64, 9, 3))
    p_near = selector.probabilities(near)
    p_far = selector.probabilities(far)
    assert p_near.mean() > 0.6 and p_far.mean() < 0.3, (p_near.mean(), p_far.mean())
    assert np.all(p_near.mean(axis=0) > p_far.mean(axis=0))


def test_the_nn_example_runs(tmp_path, capsys):
    for name in ("K4SnO4_nn.toml", "K4SnO4.xye", "K4SnO4.cif", "K4PbO4_nn.msgpack"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    out = tmp_path / "out"
    code, _, err = run(["run", tmp_path / "K4SnO4_nn.toml", "--out", out, "--max-evaluations", 3000, "--quiet"], capsys)
    assert code == 0, err
    summary = strict_json(out / "summary.json")
    assert summary["nn"]["model"].endswith("K4PbO4_nn.msgpack") and summary["nn"]["seconds"] > 0


def test_network_for_another_number_of_sites_exits_2(example, tmp_path, capsys):
    """A 9-output network cannot rank models of another structure (here K4SnO4 in P1, 18 atoms)."""
    from gasolve.crystal import read_cif

    elements, *_ = read_cif(example.with_name("K4SnO4.cif")).expand()
    text = example.read_text().replace('space_group = "P-1"', 'space_group = "P1"')
    sites_line = next(line for line in text.splitlines() if line.startswith("sites ="))
    text = text.replace(sites_line, "sites = [" + ", ".join(f'"{e}"' for e in elements) + "]")
    config = example.with_name("p1.toml")
    config.write_text(text + '\n[nn]\nmodel = "net.msgpack"\n')
    code, _, err = run(["run", config, "--out", tmp_path / "out", "--quiet"], capsys)
    assert len(elements) == 18
    assert code == 2 and "9 outputs" in err and "18 sites" in err, err
