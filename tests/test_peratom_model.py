"""The per-atom network of nnselect.peratom: training lowers the loss, the weights file, NumPy inference, the shipped
weights, and elements the network was not trained on."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gasolve.errors import InputError
from gasolve.ga.atom_selection import AtomSelectionSettings
from nnselect.peratom.features import N_FEATURES
from nnselect.peratom.ranker import SHIPPED, AtomRanker, ranker_factory
from nnselect.peratom.train import TrainConfig, average_precision, roc_auc, split_structures

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _fake_harvest(folder: Path, n_structures: int = 8, seed: int = 0) -> None:
    """Structures of 2-5 sites whose atoms are in place when feature 1 is high (plus noise)."""
    rng = np.random.default_rng(seed)
    for s in range(n_structures):
        n_models, n_sites = 40, 2 + s % 4
        features = rng.normal(size=(n_models, n_sites, N_FEATURES)).astype(np.float32)
        distances = np.where(features[..., 1] + 0.3 * rng.normal(size=(n_models, n_sites)) > 0, 0.05, 2.0)
        elements = np.array(["O", "K", "Sn", "O", "K"][:n_sites])
        np.savez(folder / f"s{s}.npz", features=features, distances=distances, elements=elements)


def _write_network(path: Path, elements: list[str], seed: int = 0):
    from flax import nnx

    from gasolve.networks import weights_file
    from nnselect.peratom.models import AtomMLP
    from nnselect.peratom.ranker import TAG

    config = TrainConfig(hidden=(8, 8))
    model = AtomMLP(N_FEATURES, config.hidden, 0.0, rngs=nnx.Rngs(seed))
    meta = {"config": dataclasses.asdict(config), "mean": [0.5] * N_FEATURES, "std": [2.0] * N_FEATURES,
            "elements": elements}  # fmt: skip
    weights_file.write(path, model, TAG, json.dumps(meta))
    return model


def test_a_training_step_lowers_the_loss():
    import optax
    from flax import nnx

    from nnselect.peratom.models import AtomMLP
    from nnselect.peratom.train import loss_fn, train_step

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    model = AtomMLP(N_FEATURES, (16,), 0.0, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    before = float(loss_fn(model, x, y, 1.0))
    for _ in range(5):
        train_step(model, optimizer, x, y, 1.0)
    assert float(loss_fn(model, x, y, 1.0)) < before - 0.01


@pytest.mark.slow
def test_training_lowers_the_loss_and_writes_a_network_that_separates_the_classes(tmp_path):
    _fake_harvest(tmp_path)
    config = TrainConfig(epochs=8, batch_size=32, hidden=(16,), seed=0)
    from nnselect.peratom.train import train_and_evaluate

    metrics = train_and_evaluate(config, tmp_path, tmp_path / "out")
    history = metrics["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert metrics["test"]["network"]["auc"] > 0.7  # the label follows feature 1
    assert metrics["test"]["feature:omit"]["auc"] > 0.8  # feature 1 is "omit"
    ranker = AtomRanker.load(tmp_path / "out" / "peratom.msgpack")
    assert set(ranker.elements) <= {"O", "K", "Sn"}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["best_epoch"] >= 1


def test_split_is_by_structure_and_seeded():
    a, b = split_structures(20, 3, (0.7, 0.15, 0.15)), split_structures(20, 3, (0.7, 0.15, 0.15))
    np.testing.assert_array_equal(a, b)
    assert (a == 1).sum() == 3 and (a == 2).sum() == 3
    assert not np.array_equal(a, split_structures(20, 4, (0.7, 0.15, 0.15)))


def test_auc_and_average_precision_known_answers():
    labels = np.array([1, 0, 1, 0], bool)
    assert roc_auc(labels, np.array([0.9, 0.1, 0.8, 0.2])) == 1.0
    assert roc_auc(labels, np.array([0.1, 0.9, 0.2, 0.8])) == 0.0
    assert roc_auc(labels, np.zeros(4)) == 0.5
    assert average_precision(labels, np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx((1 + 2 / 3) / 2)


def test_numpy_inference_matches_the_flax_module(tmp_path):
    from gasolve.networks.layers import eval_mode

    model = _write_network(tmp_path / "n.msgpack", ["O"])
    ranker = AtomRanker.load(tmp_path / "n.msgpack")
    x = np.random.default_rng(0).normal(size=(7, N_FEATURES))
    expected = 1.0 / (1.0 + np.exp(-np.asarray(eval_mode(model)((x - 0.5) / 2.0))))
    np.testing.assert_allclose(ranker.predict_features(x), expected, rtol=1e-5, atol=1e-6)


def _k4sno4_problem():
    from gasolve import pipeline
    from gasolve.config import load_run_config

    return pipeline.prepare(load_run_config(EXAMPLES / "K4SnO4.toml")).scorer.problem


def test_the_shipped_network_loads_and_gives_probabilities_for_k4sno4():
    ranker = AtomRanker.load(SHIPPED)
    assert {"K", "Sn", "O"} <= set(ranker.elements)
    assert SHIPPED.stat().st_size < 1_000_000
    bound = ranker.bind(_k4sno4_problem())
    p = bound(np.random.default_rng(0).random((9, 3)))
    assert p.shape == (9,) and np.all((p >= 0) & (p <= 1))


def test_elements_the_network_was_not_trained_on_are_refused_or_warned(tmp_path):
    _write_network(tmp_path / "n.msgpack", ["K", "O"])
    problem = _k4sno4_problem()  # Sn, K, O
    config = SimpleNamespace(selection=AtomSelectionSettings(tmp_path / "n.msgpack"), source="run.toml")
    with pytest.raises(InputError, match="not trained on Sn") as error:
        ranker_factory(config, problem)
    assert "allow_untrained_elements" in str(error.value) and "run.toml" in str(error.value)
    allowed = SimpleNamespace(
        selection=AtomSelectionSettings(tmp_path / "n.msgpack", allow_untrained_elements=True), source="run.toml"
    )
    with pytest.warns(UserWarning, match="not trained on Sn"):
        bound = ranker_factory(allowed, problem)
    assert bound(np.random.default_rng(1).random((9, 3))).shape == (9,)


def test_a_file_that_is_not_a_per_atom_network_is_refused(tmp_path):
    bad = tmp_path / "bad.msgpack"
    bad.write_bytes(b"not msgpack at all")
    with pytest.raises(InputError, match=r"bad\.msgpack"):
        AtomRanker.load(bad)


def test_gasolve_run_refuses_a_network_not_trained_on_the_structures_elements(tmp_path, capsys):
    """Bad input at the command line: one line naming the config and the elements, exit code 2, nothing run."""
    from gasolve.cli.main import main

    _write_network(tmp_path / "n.msgpack", ["K", "O"])
    base = EXAMPLES.as_posix()
    text = (EXAMPLES / "K4SnO4.toml").read_text()
    text = text.replace('file = "', f'file = "{base}/').replace('cif = "', f'cif = "{base}/')
    config = tmp_path / "run.toml"
    config.write_text(text + '\n[atom_selection]\nmodel = "n.msgpack"\n')
    code = main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet", "--max-evaluations", "1000"])
    err = capsys.readouterr().err
    assert code == 2
    assert "not trained on Sn" in err and "run.toml" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "best.cif").exists()
