"""nnselect: input pipeline, models, training, metrics and checkpoints on a tiny harvested K4SnO4 data set."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import strict_json
from flax import nnx

from gasolve.compare import site_distances_batch
from gasolve.config import load_observed, load_run_config, resolved_toml
from gasolve.crystal import read_cif
from gasolve.errors import InputError
from gasolve.scoring import Scorer
from nnselect import checkpoint, metrics
from nnselect.configs import MODEL_NAMES, TrainConfig, get_preset, load_config
from nnselect.dataset import HarvestDataset, load_dataset
from nnselect.input_pipeline import (
    EpochSampler,
    InputGrid,
    ProfileInputs,
    Resampler,
    build_problem,
    fit_scale,
    split_indices,
)
from nnselect.models import MODELS, count_parameters, create_model, eval_mode, train_mode
from nnselect.train import evaluate, loss_value, predict, train_and_evaluate, train_step

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY_RESIDUAL = {"stem_features": 8, "stage_features": [8, 16], "head_features": 4, "hidden": 16, "dropout": 0.1}


def _write_dataset(folder: Path, n_random: int = 48, n_near: int = 48) -> Path:
    """A tiny data set written by the harvest's writer: random K4SnO4 models and perturbed copies of the truth."""
    config = load_run_config(EXAMPLES / "K4SnO4.toml")
    config = dataclasses.replace(config, pattern=dataclasses.replace(config.pattern, range=(10.0, 40.0)))
    observed = load_observed(config)
    reference = read_cif(config.reference.cif)
    rng = np.random.default_rng(7)
    truth = reference.frac
    near = truth[None] + rng.normal(size=(n_near, *truth.shape)) * rng.uniform(0.002, 0.03, (n_near, 1, 1))
    population = np.concatenate([rng.random((n_random, *truth.shape)), near]) % 1.0
    population = population[rng.permutation(len(population))].astype(np.float32)
    structure = config.structure
    distances = site_distances_batch(
        population.astype(float), reference, structure.space_group, structure.cell, list(structure.sites)
    )
    dataset = HarvestDataset.create(
        folder,
        name="K4SnO4-tiny",
        elements=list(structure.sites),
        config_toml=resolved_toml(config),
        reference_cif=(EXAMPLES / "K4SnO4.cif").read_text(),
        observed=observed,
        wavelength=config.pattern.radiation.lines,
        profile={"fwhm": 0.1, "eta": 0.5},
        background_terms=config.pattern.background_terms,
        settings=dataclasses.asdict(config.ga),
    )
    halves = np.array_split(np.arange(len(population)), 2)
    for pick, seed in zip(halves, (11, 12), strict=True):
        arrays = {
            "frac": population[pick],
            "rwp": np.zeros(len(pick), np.float32),
            "generation": np.arange(len(pick), dtype=np.int32),
            "distances": distances[pick],
        }
        dataset.append_run(seed, arrays)
    return folder


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("nnselect") / "tiny")


@pytest.fixture(scope="module")
def problem(dataset_dir):
    data = load_dataset(dataset_dir)
    return build_problem(data.manifest, data.directory)


def _tiny(dataset_dir: Path, **changes) -> TrainConfig:
    return dataclasses.replace(get_preset("tiny"), dataset=str(dataset_dir), **changes)


# --- data set and inputs --------------------------------------------------------------------------------------


def test_dataset_loads_with_labels_of_both_kinds(dataset_dir):
    data = load_dataset(dataset_dir)
    assert data.frac.shape == (96, 9, 3) and data.frac.dtype == np.float32
    labels = data.labels(0.1)
    assert labels.shape == (96, 9)
    assert 0 < labels.mean() < 1  # some atoms in place, most not
    assert np.array_equal(labels, (data.distances <= 0.1).astype(np.float32))
    assert sorted(np.unique(data.seed)) == [11, 12]


def test_the_writer_and_the_reader_see_the_same_models(dataset_dir):
    """One class reads and writes the format: the in-memory models equal what the writer's load returns."""
    dataset = HarvestDataset.open(dataset_dir)
    data = dataset.models()
    arrays = dataset.load()
    for key in ("frac", "rwp", "generation", "seed", "distances"):
        np.testing.assert_array_equal(getattr(data, key), arrays[key])
        assert not getattr(data, key).flags.writeable
    assert data.manifest == dataset.info and data.manifest.shards[1][1:] == (12, 48)
    assert np.array_equal(data.labels(0.3).astype(bool), dataset.labels(0.3))
    assert dataset.models(max_models=5).n_models == 5


def test_the_reader_refuses_a_shard_that_disagrees_with_the_manifest(dataset_dir, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset_dir, copy)
    with np.load(copy / "shard-00001.npz") as shard:
        arrays = dict(shard)
    np.savez(copy / "shard-00001.npz", **{**arrays, "rwp": arrays["rwp"][:-1]})
    with pytest.raises(InputError, match=r"rwp is float32 \(47,\), expected float32 \(48,\)"):
        load_dataset(copy)
    np.savez(copy / "shard-00001.npz", **{k: v for k, v in arrays.items() if k != "seed"})
    with pytest.raises(InputError, match="lacks the array seed"):
        load_dataset(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["n_models"] = 95
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="sum over the shards"):
        load_dataset(copy)


def test_inputs_are_engine_difference_over_sigma_over_scale(dataset_dir, problem):
    data = load_dataset(dataset_dir)
    frac = data.frac[:20]
    raw = ProfileInputs(problem)
    scale = fit_scale(raw, data.frac)
    x = raw.with_scale(scale)(frac)
    expected = Scorer(problem).profiles(frac.astype(float)).difference / problem.pattern.sigma / scale
    assert x.shape == (20, problem.pattern.n_points, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], expected, rtol=1e-5, atol=1e-5)
    # the scale makes the training inputs unit root mean square
    assert np.sqrt(np.mean(np.square(raw.with_scale(scale)(data.frac), dtype=float))) == pytest.approx(1, rel=1e-5)


def test_resampling_through_d_spacing_moves_a_peak_to_its_angle_at_the_other_wavelength():
    d_peak = 2.5  # Å
    source = InputGrid(np.arange(5.0, 60.0, 0.01), wavelength=0.7093, zero=0.05)  # Mo Kα1, shifted zero
    target = InputGrid(np.arange(20.0, 50.0, 0.015), wavelength=1.5406)  # Cu Kα1
    peak_at = 2 * np.degrees(np.arcsin(source.wavelength / (2 * d_peak))) + source.zero
    values = np.exp(-0.5 * ((source.two_theta - peak_at) / 0.02) ** 2)
    moved = Resampler(source, target)(values[None])[0]
    expected = 2 * np.degrees(np.arcsin(target.wavelength / (2 * d_peak)))
    assert abs(target.two_theta[np.argmax(moved)] - expected) <= 0.015
    assert moved.max() > 0.9
    # the same grid is left alone
    same = Resampler(target, InputGrid(target.two_theta.copy(), 1.5406))
    assert same.identity


def test_a_grid_that_does_not_cover_the_network_range_is_refused(problem):
    narrow = InputGrid(np.arange(10.0, 30.0, 0.015), 1.5406)
    wide = InputGrid(np.arange(10.0, 40.0, 0.015), 1.5406)
    with pytest.raises(InputError, match="does not cover"):
        Resampler(narrow, wide)
    with pytest.raises(InputError, match="does not cover"):  # a longer wavelength cannot reach the small d
        Resampler(wide, InputGrid(wide.two_theta, 1.2))
    network = InputGrid(np.arange(5.0, 80.0, 0.015), problem.radiation.primary)
    with pytest.raises(InputError, match="does not cover"):
        ProfileInputs(problem, 1.0, network)


def test_split_by_model_and_by_run_are_disjoint_and_deterministic():
    seeds = np.repeat(np.arange(10), 10)
    train, validation = split_indices(seeds, np.random.default_rng(3), 0.2, "model")
    assert len(validation) == 20 and len(np.intersect1d(train, validation)) == 0
    assert len(train) + len(validation) == 100
    again = split_indices(seeds, np.random.default_rng(3), 0.2, "model")
    assert np.array_equal(train, again[0]) and np.array_equal(validation, again[1])
    train, validation = split_indices(seeds, np.random.default_rng(3), 0.2, "run")
    assert not set(seeds[train]) & set(seeds[validation])
    assert len(validation) == 20
    with pytest.raises(InputError, match="at least 2 GA runs"):
        split_indices(np.zeros(10, int), np.random.default_rng(0), 0.2, "run")


def test_epoch_sampler_visits_every_model_once_per_pass():
    sampler = EpochSampler(np.arange(10, 20), np.random.default_rng(0))
    drawn = np.concatenate([sampler.draw(4) for _ in range(5)])
    assert sorted(drawn[:10]) == list(range(10, 20)) and sorted(drawn[10:20]) == list(range(10, 20))
    other = EpochSampler(np.arange(10, 20), np.random.default_rng(0))
    assert np.array_equal(np.concatenate([other.draw(4) for _ in range(5)]), drawn)


# --- metrics --------------------------------------------------------------------------------------------------


def test_metrics_against_hand_counts():
    labels = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    probabilities = np.array([[0.9, 0.2], [0.4, 0.6], [0.7, 0.1], [0.1, 0.5]])
    # site 0: predicted [1, 0, 1, 0] -> TP 1, FP 1, FN 1, TN 1; site 1: predicted [0, 1, 0, 1] -> TP 1, FP 1, TN 2
    m = metrics.site_metrics(probabilities, labels)
    np.testing.assert_array_equal(m["accuracy"], [0.5, 0.75])
    np.testing.assert_array_equal(m["precision"], [0.5, 0.5])
    np.testing.assert_array_equal(m["recall"], [0.5, 1.0])
    np.testing.assert_array_equal(m["base_rate"], [0.5, 0.25])
    np.testing.assert_array_equal(m["lift"], [1.0, 2.0])
    np.testing.assert_array_equal(metrics.site_accuracy(probabilities, labels), [0.5, 0.75])
    np.testing.assert_array_equal(metrics.recognition_rate(probabilities, labels), [0.5, 1.0])
    np.testing.assert_allclose(m["f1"], [0.5, 2 / 3])
    # site 0: positives 0.9, 0.4 against negatives 0.7, 0.1 -> 3 of 4 pairs in order; site 1: 0.5 beats 0.2, 0.1
    np.testing.assert_allclose(m["roc_auc"], [3 / 4, 2 / 3])
    # site 0 ranked 0.9+ 0.7- 0.4+ 0.1-: recall 0.5 at precision 1, then 1.0 at 2/3; site 1: 0.6- 0.5+
    np.testing.assert_allclose(m["average_precision"], [0.5 * 1 + 0.5 * 2 / 3, 0.5])
    # ties: a positive tied with a negative counts one half; tied scores form one threshold
    tied = metrics.site_metrics(np.array([[0.5], [0.5], [0.2]]), np.array([[1], [0], [0]]))
    assert tied["roc_auc"][0] == 0.75 and tied["average_precision"][0] == 0.5
    # nothing predicted / nothing present: NaN, null in JSON
    never = metrics.site_metrics(np.zeros((3, 1)), np.zeros((3, 1)))
    assert np.isnan(never["precision"][0]) and np.isnan(never["recall"][0]) and never["accuracy"][0] == 1.0
    assert np.isnan(never["roc_auc"][0]) and np.isnan(never["average_precision"][0])
    assert metrics.to_json(never)["precision"] == [None]
    with pytest.raises(ValueError, match="0 or 1"):
        metrics.site_metrics(probabilities, labels * 2)


# --- models and training --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "options", "loss"),
    [
        ("PaperCNN", {"features": [8, 8, 8], "pools": [4, 4, 4], "hidden": [16, 16]}, "mse"),
        ("ResidualCNN", TINY_RESIDUAL, "bce"),
    ],
)
def test_one_epoch_on_32_examples_lowers_the_loss(dataset_dir, problem, name, options, loss):
    data = load_dataset(dataset_dir)
    inputs = ProfileInputs(problem)
    inputs = inputs.with_scale(fit_scale(inputs, data.frac))
    x, y = jnp.asarray(inputs(data.frac[:32])), jnp.asarray(data.labels(0.1)[:32])
    model = create_model(name, inputs.n_points, 9, options, key=jax.random.key(0))
    optimizer = nnx.Optimizer(model, optax.adam(5e-4), wrt=nnx.Param)
    weight = jnp.full(9, 3.0)
    # measured with dropout off and batch statistics of the batch, so that only the weights differ
    measure = nnx.view(model, deterministic=True, use_running_average=False, raise_if_not_found=False)
    before = float(loss_value(measure(x), y, loss, weight))
    training = train_mode(model)
    for start in range(0, 32, 8):
        step_loss = train_step(training, optimizer, x[start : start + 8], y[start : start + 8], weight, loss)
        assert np.isfinite(float(step_loss))
    after = float(loss_value(measure(x), y, loss, weight))
    assert after < before


def test_model_sizes_are_modest():
    paper = nnx.eval_shape(lambda: create_model("PaperCNN", 5001, 9))  # shapes only, no initialisation
    residual = nnx.eval_shape(lambda: create_model("ResidualCNN", 5001, 9))
    assert 500_000 < count_parameters(paper) < 2_000_000
    assert 200_000 < count_parameters(residual) < 1_000_000


def test_train_and_evaluate_writes_metrics_and_checkpoints_deterministically(dataset_dir, tmp_path):
    config = _tiny(dataset_dir, epochs=2, split="run", transfer_dataset=str(dataset_dir), transfer_portions=2)
    first = train_and_evaluate(config, tmp_path / "a")
    second = train_and_evaluate(config, tmp_path / "b")

    def strip(summary):
        return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in summary["epochs"]]

    assert strip(first) == strip(second)
    assert len(first["epochs"]) == 2 and "transfer" in first["epochs"][0]
    assert first["epochs"][0]["transfer"]["n_models"] == 48
    assert len(first["epochs"][0]["validation"]["accuracy"]) == 9
    written = strict_json(tmp_path / "a" / "metrics.json")
    assert written["epochs"][1]["train_loss"] == first["epochs"][1]["train_loss"]
    last, meta = checkpoint.load(tmp_path / "a" / "last.msgpack")
    assert meta.scale == first["scale"] and meta.label_radius == 0.1 and meta.n_sites == 9
    assert meta.config["split"] == "run" and meta.info["epoch"] == 2
    # The best-validation checkpoint: the epoch of lowest validation loss, and scored afresh on the held-out
    # run it gives back the loss recorded for that epoch.
    losses = [epoch["validation"]["loss"] for epoch in first["epochs"]]
    best, best_meta = checkpoint.load(tmp_path / "a" / "checkpoint.msgpack")
    assert first["best_epoch"] == best_meta.info["epoch"] == 1 + int(np.argmin(losses))
    data = load_dataset(dataset_dir)
    labels = data.labels(config.label_radius)
    held_out = np.flatnonzero(np.isin(data.seed, first["dataset"]["validation_seeds"]))
    assert len(held_out) == first["dataset"]["n_validation"] == 48
    inputs = best_meta.profile_inputs(build_problem(data.manifest, data.directory))
    weight = np.array(first["positive_weight"], np.float32)
    again = evaluate(best, inputs, data.frac, labels, held_out, config, weight)
    assert again["loss"] == pytest.approx(min(losses), rel=1e-5)
    # both checkpoints predict probabilities, identically from the identical second run
    for name, model in (("checkpoint.msgpack", best), ("last.msgpack", last)):
        p = predict(model, inputs, data.frac[:20], batch_size=8)
        assert p.shape == (20, 9) and np.all((p >= 0) & (p <= 1)) and p.std() > 0
        repeat, _ = checkpoint.load(tmp_path / "b" / name)
        np.testing.assert_array_equal(predict(repeat, inputs, data.frac[:20], batch_size=8), p)
    same = np.array_equal(predict(best, inputs, data.frac, 16), predict(last, inputs, data.frac, 16))
    assert same == (first["best_epoch"] == 2)


def test_checkpoint_round_trip_gives_identical_predictions(dataset_dir, problem, tmp_path):
    data = load_dataset(dataset_dir)
    inputs = ProfileInputs(problem, 5.0)
    model = create_model("ResidualCNN", inputs.n_points, 9, TINY_RESIDUAL, key=jax.random.key(1))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    x, y = jnp.asarray(inputs(data.frac[:8])), jnp.asarray(data.labels(0.1)[:8])
    fresh = predict(eval_mode(model), inputs, data.frac[:20], batch_size=8)
    train_step(train_mode(model), optimizer, x, y, jnp.ones(9), "bce")  # batch statistics move off their start
    meta = checkpoint.CheckpointMeta(
        model="ResidualCNN",
        model_options=TINY_RESIDUAL,
        n_points=inputs.n_points,
        n_sites=9,
        site_labels=data.manifest.site_labels,
        elements=data.manifest.elements,
        two_theta=tuple(inputs.grid.two_theta.tolist()),
        wavelength=inputs.grid.wavelength,
        radiation=data.manifest.wavelength,
        zero=inputs.grid.zero,
        scale=5.0,
        label_radius=0.1,
        config=get_preset("tiny").to_dict(),
    )
    path = tmp_path / "net.msgpack"
    checkpoint.save(path, model, meta)
    loaded, loaded_meta = checkpoint.load(path)
    assert loaded_meta == meta
    expected = predict(eval_mode(model), inputs, data.frac[:20], batch_size=8)
    restored = predict(loaded, loaded_meta.profile_inputs(problem), data.frac[:20], batch_size=8)
    np.testing.assert_array_equal(restored, expected)
    assert not np.allclose(expected, fresh)  # the step reached the model through the training view
    assert path.stat().st_size < 5_000_000

    # refusals: other sites, another architecture's weights, not a checkpoint
    with pytest.raises(InputError, match="trained for sites"):
        loaded_meta.check_sites(["Pb", "K", "K", "K", "K", "O", "O", "O", "O"])
    loaded_meta.check_sites(["Pb", "K", "K", "K", "K", "O", "O", "O", "O"], allow_other_elements=True)
    with pytest.raises(InputError, match="9 outputs"):
        loaded_meta.check_sites(["Sn", "K"])
    wrong = dataclasses.replace(meta, model_options={**TINY_RESIDUAL, "hidden": 32})
    checkpoint.save(tmp_path / "wrong.msgpack", model, meta)
    _, weights = checkpoint.read_meta(tmp_path / "wrong.msgpack")
    from flax import serialization

    (tmp_path / "wrong.msgpack").write_bytes(
        serialization.msgpack_serialize({"format": checkpoint.FORMAT, "meta": wrong.to_json(), "weights": weights})
    )
    with pytest.raises(InputError, match="expects"):
        checkpoint.load(tmp_path / "wrong.msgpack")
    (tmp_path / "junk.msgpack").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(InputError, match="not an nnselect checkpoint"):
        checkpoint.load(tmp_path / "junk.msgpack")


def test_config_file_rejects_unknown_keys_and_bad_values(tmp_path):
    assert set(MODEL_NAMES) == set(MODELS)
    path = tmp_path / "train.toml"
    path.write_text('[train]\npreset = "residual"\nepochs = 3\n')
    config = load_config(path, dataset="somewhere")
    assert config.model == "ResidualCNN" and config.epochs == 3 and config.dataset == "somewhere"
    path.write_text("[train]\nepoch = 3\n")
    with pytest.raises(InputError, match="did you mean 'epochs'"):
        load_config(path)
    path.write_text("[train]\nbatch_size = 7\n")
    with pytest.raises(InputError, match="divisor"):
        load_config(path)
    with pytest.raises(InputError, match="positive_weight"):
        TrainConfig(loss="mse", positive_weight="balanced")
