"""Train the per-atom selection network on harvested structures (:mod:`benchmarks.peratom_harvest`).

Usage::

    python -m nnselect.peratom.train DATA_DIR --out WORKDIR [--epochs 60] [--seed 0] [--label-radius 0.3]

The split is by structure (seeded): no structure has models on both sides, so the held-out figures say how the
network does on a structure it has never seen. Features are standardised with the training atoms' mean and
spread (stored in the weights file). Loss: binary cross-entropy with the positive class weighted by the training
set's negative/positive ratio; Adam (optax); the epoch of lowest validation loss is kept. ``metrics.json`` holds
the held-out ROC-AUC, average precision and accuracy of the network and of single-feature baselines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nnselect.peratom.features import N_FEATURES, SCALARS
from nnselect.peratom.ranker import TAG

#: Names of the three parts of the split.
PARTS = ("train", "validation", "test")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes
    ----------
    label_radius : float
        Å: an atom is "in place" when within this distance of its reference position.
    hidden : tuple of int
    dropout : float
    learning_rate : float
    batch_size : int
        Atoms per step.
    epochs : int
    seed : int
        Split, initialisation, dropout and batch order.
    split : tuple of float
        Shares of structures for training, validation and test.
    exclude : tuple of str
        Features (names of :data:`~nnselect.peratom.features.SCALARS`) the network does not see: their spread is
        stored as infinite, so that they enter as 0.
    """

    label_radius: float = 0.3
    hidden: tuple[int, ...] = (64, 64)
    dropout: float = 0.1
    learning_rate: float = 1e-3
    batch_size: int = 512
    epochs: int = 60
    seed: int = 0
    split: tuple[float, float, float] = field(default=(0.7, 0.15, 0.15))
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class AtomData:
    """Atoms of harvested models, flattened.

    Attributes
    ----------
    features : ndarray, shape (n_atoms, N_FEATURES), float32
    distances : ndarray, shape (n_atoms,), Å
    structure : ndarray, shape (n_atoms,), int
        Index into ``names``.
    model : ndarray, shape (n_atoms,), int
        Global model index (atoms of one model share it).
    elements : ndarray, shape (n_atoms,), str
    names : list of str
        Structure (file) names.
    """

    features: np.ndarray
    distances: np.ndarray
    structure: np.ndarray
    model: np.ndarray
    elements: np.ndarray
    names: list[str]

    def subset(self, keep: np.ndarray) -> AtomData:
        return AtomData(
            self.features[keep], self.distances[keep], self.structure[keep], self.model[keep], self.elements[keep],
            self.names,
        )  # fmt: skip


def load_atoms(folder: str | Path) -> AtomData:
    """Every ``*.npz`` of a harvest folder as one :class:`AtomData`."""
    features, distances, structure, model, elements, names = [], [], [], [], [], []
    offset = 0
    for i, path in enumerate(sorted(Path(folder).glob("*.npz"))):
        with np.load(path) as data:
            f, d, el = data["features"], data["distances"], data["elements"]
        n_models, n_sites = d.shape
        if f.shape != (n_models, n_sites, N_FEATURES):
            raise ValueError(f"{path}: features of shape {f.shape}, expected ({n_models}, {n_sites}, {N_FEATURES})")
        names.append(path.stem)
        features.append(f.reshape(-1, N_FEATURES))
        distances.append(d.reshape(-1))
        structure.append(np.full(n_models * n_sites, i))
        model.append(offset + np.repeat(np.arange(n_models), n_sites))
        elements.append(np.tile(el, n_models))
        offset += n_models
    if not names:
        raise ValueError(f"no harvested structures (*.npz) in {folder}")
    return AtomData(
        np.concatenate(features).astype(np.float32), np.concatenate(distances), np.concatenate(structure),
        np.concatenate(model), np.concatenate(elements), names,
    )  # fmt: skip


def split_structures(n: int, seed: int, shares: tuple[float, float, float]) -> np.ndarray:
    """Part of each of ``n`` structures: 0 training, 1 validation, 2 test, drawn from ``seed``; shape (n,)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(shares[1] * n))
    n_test = max(1, round(shares[2] * n))
    part = np.zeros(n, dtype=int)
    part[order[:n_val]] = 1
    part[order[n_val : n_val + n_test]] = 2
    return part


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties); NaN with one class only."""
    from scipy.stats import rankdata

    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve, step interpolation)."""
    labels = np.asarray(labels, bool)
    if not labels.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = labels[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def within_model_auc(labels: np.ndarray, scores: np.ndarray, model: np.ndarray) -> tuple[float, int]:
    """Mean ROC-AUC over the models that have atoms of both classes, each model's atoms ranked among themselves
    (what choosing the atoms of one model to move needs), and the number of such models."""
    values = []
    for m in np.unique(model):
        keep = model == m
        y = labels[keep]
        if y.any() and not y.all():
            values.append(roc_auc(y, scores[keep]))
    return (float(np.mean(values)) if values else float("nan")), len(values)


def evaluate_scores(
    labels: np.ndarray, scores: np.ndarray, threshold: float | None = 0.5, model: np.ndarray | None = None
) -> dict:
    """ROC-AUC over all atoms, average precision, accuracy at ``threshold`` (probabilities only) and, given the
    model of each atom, the within-model AUC (:func:`within_model_auc`)."""
    out = {"auc": roc_auc(labels, scores), "average_precision": average_precision(labels, scores)}
    if model is not None:
        out["within_model_auc"], out["mixed_models"] = within_model_auc(labels, scores, model)
    if threshold is not None:
        out["accuracy"] = float(np.mean((scores >= threshold) == labels))
    out["base_rate"] = float(np.mean(labels))
    return out


def loss_fn(model, x, y, positive_weight):
    """Class-weighted binary cross-entropy of atoms x (n, N_FEATURES) with labels y (n,) in {0, 1}."""
    weight = jnp.where(y > 0.5, positive_weight, 1.0)
    return jnp.sum(weight * optax.sigmoid_binary_cross_entropy(model(x), y)) / jnp.sum(weight)


@nnx.jit
def train_step(model, optimizer, x, y, positive_weight):
    """One Adam step on a batch (compiled once per shape); returns the batch loss before the step."""
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y, positive_weight)
    optimizer.update(model, grads)
    return loss


def train_and_evaluate(config: TrainConfig, data_dir: str | Path, workdir: str | Path) -> dict:
    """Train on a harvest folder, write ``peratom.msgpack`` (best epoch) and ``metrics.json`` into ``workdir``.

    Returns
    -------
    dict
        The metrics written.
    """
    from gasolve.networks import weights_file
    from gasolve.networks.layers import eval_mode, train_mode
    from nnselect.peratom.models import AtomMLP

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = load_atoms(data_dir)
    part_of_structure = split_structures(len(data.names), config.seed, config.split)
    part = part_of_structure[data.structure]
    labels = data.distances <= config.label_radius
    train, val, test = (data.subset(part == p) for p in range(3))
    y_train, y_val = labels[part == 0], labels[part == 1]
    mean = train.features.mean(axis=0)
    std = train.features.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)
    for name in config.exclude:
        std[SCALARS.index(name)] = np.inf

    def standardise(x):
        return ((x - mean) / std).astype(np.float32)

    x_train, x_val, x_test = standardise(train.features), standardise(val.features), standardise(test.features)
    positive_weight = float((~y_train).sum() / max(y_train.sum(), 1))

    model = AtomMLP(N_FEATURES, config.hidden, config.dropout, rngs=nnx.Rngs(config.seed))
    optimizer = nnx.Optimizer(model, optax.adam(config.learning_rate), wrt=nnx.Param)
    weight = jnp.float32(positive_weight)

    def val_loss(m):
        p = np.asarray(jax.nn.sigmoid(m(x_val)))
        p = np.clip(p, 1e-7, 1 - 1e-7)
        w = np.where(y_val, positive_weight, 1.0)
        return float(np.sum(w * -(y_val * np.log(p) + (~y_val) * np.log(1 - p))) / w.sum())

    rng = np.random.default_rng(config.seed)
    history = []
    best = (np.inf, -1)
    started = time.perf_counter()
    for epoch in range(config.epochs):
        order = rng.permutation(len(x_train))
        losses = []
        trainer = train_mode(model)
        for start in range(0, len(order) - config.batch_size + 1, config.batch_size):
            idx = order[start : start + config.batch_size]
            y = y_train[idx].astype(np.float32)
            losses.append(float(train_step(trainer, optimizer, x_train[idx], y, weight)))
        evaluator = eval_mode(model)
        v = val_loss(evaluator)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": v})
        if v < best[0]:
            best = (v, epoch + 1)
            meta = _meta(config, mean, std, train, data, part_of_structure, epoch + 1)
            weights_file.write(workdir / "peratom.msgpack", model, TAG, json.dumps(meta), dtype=np.float32)
    seconds = time.perf_counter() - started

    from nnselect.peratom.ranker import AtomRanker

    ranker = AtomRanker.load(workdir / "peratom.msgpack")
    p_test = ranker.predict_features(test.features)
    y_test = labels[part == 2]
    p_val = ranker.predict_features(val.features)
    metrics = {
        "config": asdict(config),
        "data_dir": str(data_dir),
        "structures": {name: int((part_of_structure == p).sum()) for p, name in enumerate(PARTS)},
        "atoms": {"train": len(x_train), "validation": len(x_val), "test": len(x_test)},
        "best_epoch": best[1],
        "training_seconds": round(seconds, 1),
        "history": history,
        "validation": {"network": evaluate_scores(y_val, p_val, 0.5, val.model)},
        "test": {"network": evaluate_scores(y_test, p_test, 0.5, test.model)},
        "test_radius_0.1": {"network": evaluate_scores(test.distances <= 0.1, p_test, None, test.model)},
        "test_per_structure_auc": _per_structure_auc(test, y_test, p_test),
    }
    for i, name in enumerate(SCALARS):  # single-feature baselines, sign chosen on the training atoms
        sign = 1.0 if roc_auc(y_train, train.features[:, i]) >= 0.5 else -1.0
        metrics["test"][f"feature:{name}"] = evaluate_scores(y_test, sign * test.features[:, i], None, test.model)
    metrics["test"]["logistic_regression"] = evaluate_scores(
        y_test, _logistic_baseline(x_train, y_train, x_test, positive_weight), None, test.model
    )
    (workdir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def _per_structure_auc(test: AtomData, y: np.ndarray, p: np.ndarray) -> dict:
    out = {}
    for s in np.unique(test.structure):
        keep = test.structure == s
        out[test.names[s]] = {"auc": roc_auc(y[keep], p[keep]), "base_rate": float(np.mean(y[keep]))}
    return out


def _logistic_baseline(x_train, y_train, x_test, positive_weight: float, steps: int = 300) -> np.ndarray:
    """Weighted logistic regression on the standardised features (L-BFGS), the linear baseline."""
    from scipy.optimize import minimize

    w = np.where(y_train, positive_weight, 1.0)
    xb = np.hstack([x_train, np.ones((len(x_train), 1), np.float32)]).astype(float)

    def objective(beta):
        z = xb @ beta
        loss = np.sum(w * (np.logaddexp(0.0, z) - y_train * z)) / w.sum() + 1e-4 * beta @ beta
        grad = xb.T @ (w * (1.0 / (1.0 + np.exp(-z)) - y_train)) / w.sum() + 2e-4 * beta
        return loss, grad

    beta = minimize(objective, np.zeros(xb.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": steps}).x
    return np.hstack([x_test, np.ones((len(x_test), 1))]) @ beta


def _meta(config, mean, std, train: AtomData, data: AtomData, part, epoch) -> dict:
    return {
        "model": "AtomMLP",
        "config": asdict(config),
        "features": [*SCALARS, *(f"bin{i}" for i in range(N_FEATURES - len(SCALARS)))],
        "mean": mean.tolist(),
        "std": [float(v) if np.isfinite(v) else 1e30 for v in std],
        "elements": sorted(set(train.elements.tolist())),
        "epoch": epoch,
        "train_structures": [n for n, p in zip(data.names, part, strict=True) if p == 0],
        "validation_structures": [n for n, p in zip(data.names, part, strict=True) if p == 1],
        "test_structures": [n for n, p in zip(data.names, part, strict=True) if p == 2],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="train the per-atom selection network")
    parser.add_argument("data")
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--label-radius", type=float, default=TrainConfig.label_radius)
    parser.add_argument("--exclude", default="", help="features the network does not see, e.g. rwp")
    args = parser.parse_args(argv)
    exclude = tuple(name for name in args.exclude.split(",") if name)
    unknown = sorted(set(exclude) - set(SCALARS))
    if unknown:
        parser.error(f"--exclude: unknown features {', '.join(unknown)} (known: {', '.join(SCALARS)})")
    config = TrainConfig(label_radius=args.label_radius, epochs=args.epochs, seed=args.seed, exclude=exclude)
    metrics = train_and_evaluate(config, args.data, args.out)
    shown = ("structures", "atoms", "best_epoch", "validation", "test")
    json.dump({k: metrics[k] for k in shown}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
