"""Training of the per-site selection network (Zaloga et al. 2019, part 2) and its per-epoch evaluation.

``train_and_evaluate(config, workdir)`` follows the paper's protocol: difference profiles of harvested GA models
of a known structure (K4PbO4), 80:20 train/validation split, Adam at 5e-4, 100 epochs of 1,200 patterns, MSE of
the per-site sigmoid outputs against 0/1 labels (atom within 0.1 Å of its true position); after every epoch the
network is measured on the validation models and, when ``config.transfer_dataset`` is set, on the next of
``transfer_portions`` slices of a second data set (the paper: K4SnO4 models, 100 slices, one per epoch).
Improvements are options of the config: binary cross-entropy on logits with per-site positive-class weights
(labels are imbalanced), the :class:`~nnselect.models.ResidualCNN`, a split by GA run.

Outputs in ``workdir``: ``metrics.json`` (rewritten after every epoch), ``checkpoint.msgpack`` (the epoch with
the lowest validation loss; choosing on the transfer set would leak it) and ``last.msgpack`` (the last epoch).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gasolve.errors import InputError
from gasolve.io.atomic import atomic_write
from nnselect import checkpoint, metrics
from nnselect.configs import TrainConfig
from nnselect.dataset import HarvestedModels, load_dataset
from nnselect.input_pipeline import (
    EpochSampler,
    ProfileInputs,
    batches,
    build_problem,
    fit_scale,
    split_indices,
)
from nnselect.models import count_parameters, create_model, eval_mode, train_mode

# --- losses and steps ---------------------------------------------------------------------------------------


def loss_value(logits: jax.Array, labels: jax.Array, loss: str, positive_weight: jax.Array) -> jax.Array:
    """Mean loss of a batch.

    Parameters
    ----------
    logits : Array, shape (batch, n_sites)
    labels : Array, shape (batch, n_sites)
        0/1.
    loss : str
        ``"mse"``: the paper's E = Σ_i (Y_i - U_i)² / N with Y = sigmoid(logits), averaged over the batch.
        ``"bce"``: binary cross-entropy from the logits, positives of site i weighted by ``positive_weight[i]``.
    positive_weight : Array, shape (n_sites,)
        Ignored by ``"mse"``.

    Returns
    -------
    Array, shape ()
    """
    if loss == "mse":
        return jnp.mean(jnp.square(jax.nn.sigmoid(logits) - labels))
    if loss == "bce":
        weight = 1.0 + (positive_weight[None, :] - 1.0) * labels
        return jnp.mean(weight * optax.sigmoid_binary_cross_entropy(logits, labels))
    raise ValueError(f'loss must be "mse" or "bce", got {loss!r}')


@nnx.jit(static_argnames="loss")
def train_step(
    model: nnx.Module,
    optimizer: nnx.Optimizer,
    x: jax.Array,
    labels: jax.Array,
    positive_weight: jax.Array,
    loss: str,
) -> jax.Array:
    """One Adam step on a batch; returns the batch loss before the step.

    Parameters
    ----------
    model : nnx.Module
        In training mode (:func:`nnselect.models.train_mode`); its parameters, batch statistics and dropout
        RNG state are updated in place by ``nnx.jit``'s state propagation.
    optimizer : nnx.Optimizer
        Over ``nnx.Param`` of the same variables.
    x : Array, shape (batch, n_points, 1)
    labels : Array, shape (batch, n_sites)
    positive_weight : Array, shape (n_sites,)
    loss : str
        ``"mse"`` or ``"bce"`` (static).

    Returns
    -------
    Array, shape ()
    """

    def objective(model: nnx.Module) -> jax.Array:
        return loss_value(model(x), labels, loss, positive_weight)

    value, grads = nnx.value_and_grad(objective)(model)
    optimizer.update(model, grads)
    return value


@nnx.jit
def eval_step(model: nnx.Module, x: jax.Array) -> jax.Array:
    """Per-site logits of a batch, shape (batch, n_sites); ``model`` in evaluation mode."""
    return model(x)


def predict(model: nnx.Module, inputs: ProfileInputs, frac: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """Per-site probabilities of many models.

    Batches are padded to ``batch_size`` so that one compiled ``eval_step`` serves every call.

    Parameters
    ----------
    model : nnx.Module
        In evaluation mode.
    inputs : ProfileInputs
    frac : ndarray, shape (n_models, n_sites, 3)
    batch_size : int

    Returns
    -------
    ndarray, shape (n_models, n_sites), float32
    """
    logits = _logits(model, inputs, frac, np.arange(len(frac)), batch_size)
    return np.asarray(jax.nn.sigmoid(logits))


def _logits(model, inputs: ProfileInputs, frac: np.ndarray, indices: np.ndarray, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(indices), batch_size):
        pick = indices[start : start + batch_size]
        x = inputs(frac[pick])
        if len(x) < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - len(x), *x.shape[1:]), x.dtype)])
        out.append(np.asarray(eval_step(model, jnp.asarray(x)))[: len(pick)])
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


# --- evaluation ---------------------------------------------------------------------------------------------


def _finite(value) -> float | None:
    """A float for JSON; None for NaN or infinity (a diverged run), which JSON cannot hold."""
    value = float(value)
    return value if np.isfinite(value) else None


def _numpy_loss(logits: np.ndarray, labels: np.ndarray, loss: str, positive_weight: np.ndarray) -> float | None:
    return _finite(loss_value(jnp.asarray(logits), jnp.asarray(labels), loss, jnp.asarray(positive_weight)))


def evaluate(
    model: nnx.Module,
    inputs: ProfileInputs,
    frac: np.ndarray,
    labels: np.ndarray,
    indices: np.ndarray,
    config: TrainConfig,
    positive_weight: np.ndarray,
) -> dict[str, Any]:
    """Loss and per-site metrics (:func:`nnselect.metrics.site_metrics`) on the models at ``indices``.

    Returns
    -------
    dict
        ``n_models``, ``loss`` and the per-site lists of :func:`nnselect.metrics.site_metrics`.
    """
    logits = _logits(model, inputs, frac, indices, config.eval_batch_size)
    result: dict[str, Any] = {
        "n_models": len(indices),
        "loss": _numpy_loss(logits, labels[indices], config.loss, positive_weight),
    }
    probabilities = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    result.update(metrics.to_json(metrics.site_metrics(probabilities, labels[indices], config.threshold)))
    return result


def positive_weights(labels: np.ndarray, config: TrainConfig) -> np.ndarray:
    """BCE weight of each site's positives, shape (n_sites,), float32.

    ``"balanced"``: (1 - p) / p from the base rate p of the training labels, clipped to
    [1, ``max_positive_weight``] (a site never in place gets the cap); ``"none"``: ones.
    """
    n_sites = labels.shape[1]
    if config.positive_weight == "none":
        return np.ones(n_sites, np.float32)
    rate = labels.mean(axis=0)
    with np.errstate(divide="ignore"):
        weight = np.where(rate > 0, (1.0 - rate) / np.maximum(rate, 1e-12), config.max_positive_weight)
    return np.clip(weight, 1.0, config.max_positive_weight).astype(np.float32)


# --- the training run ---------------------------------------------------------------------------------------


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=1) + "\n")


def _subset(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted random subset of range(n) of ``size`` (all of it when size is 0 or >= n)."""
    if size == 0 or size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size, replace=False))


def _open(path: str, label: str) -> tuple[HarvestedModels, ProfileInputs]:
    if not path:
        raise InputError(f"no {label} given in the training config")
    data = load_dataset(path)
    return data, ProfileInputs(build_problem(data.manifest, data.directory))


def train_and_evaluate(
    config: TrainConfig, workdir: str | Path, on_epoch: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train the selection network and evaluate it after every epoch.

    Parameters
    ----------
    config : TrainConfig
    workdir : str or Path
        Output folder (created); receives ``metrics.json``, ``checkpoint.msgpack`` and ``last.msgpack``.
    on_epoch : callable, optional
        Called with each epoch's record (progress display).

    Returns
    -------
    dict
        The content of ``metrics.json``: config, data set summary, normalisation scale, positive weights,
        parameter count and one record per epoch (training loss, seconds, validation and transfer metrics).

    Raises
    ------
    InputError
        Unreadable data sets, a transfer set with another number of sites or a pattern that does not cover the
        training grid.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    key = jax.random.key(config.seed)

    data, inputs = _open(config.dataset, "dataset")
    manifest = data.manifest
    if config.max_models:
        data = data.subset(_subset(data.n_models, config.max_models, rng))
    labels = data.labels(config.label_radius)
    train, validation = split_indices(data.seed, rng, config.validation_fraction, config.split)
    scale_pick = rng.choice(train, min(config.scale_sample, len(train)), replace=False)
    scale = fit_scale(inputs, data.frac[np.sort(scale_pick)])
    inputs = inputs.with_scale(scale)
    n_validation = len(validation)
    # the held-out GA runs, so that a network can be evaluated later on the whole validation set
    validation_seeds = np.unique(data.seed[validation]).tolist() if config.split == "run" else None
    validation = validation[_subset(n_validation, config.validation_size, rng)]
    weight = positive_weights(labels[train], config)

    transfer = None
    if config.transfer_dataset:
        transfer_data, transfer_inputs = _open(config.transfer_dataset, "transfer_dataset")
        if transfer_data.n_sites != data.n_sites:
            raise InputError(
                f"the transfer set has {transfer_data.n_sites} sites, the training set {data.n_sites}",
                config.transfer_dataset,
            )
        transfer_inputs = ProfileInputs(transfer_inputs.problem, scale, inputs.grid)
        transfer_labels = transfer_data.labels(config.label_radius)
        n_portions = min(config.transfer_portions, transfer_data.n_models)
        portions = np.array_split(rng.permutation(transfer_data.n_models), n_portions)
        transfer = (transfer_data, transfer_inputs, transfer_labels, portions)

    model = create_model(config.model, inputs.n_points, data.n_sites, config.model_options, key=key)
    optimizer = nnx.Optimizer(model, optax.adam(config.learning_rate), wrt=nnx.Param)
    training, evaluating = train_mode(model), eval_mode(model)
    grid = inputs.grid
    meta_common = {
        "model": config.model,
        "model_options": dict(config.model_options),
        "n_points": inputs.n_points,
        "n_sites": data.n_sites,
        "site_labels": manifest.site_labels,
        "elements": manifest.elements,
        "two_theta": tuple(float(t) for t in grid.two_theta),
        "wavelength": grid.wavelength,
        "radiation": manifest.wavelength,
        "zero": grid.zero,
        "scale": scale,
        "label_radius": config.label_radius,
        "config": config.to_dict(),
    }

    summary: dict[str, Any] = {
        "config": config.to_dict(),
        "dataset": {
            "name": manifest.name,
            "n_models": data.n_models,
            "n_train": len(train),
            "n_validation": n_validation,
            "n_validation_evaluated": len(validation),
            "split": config.split,
            "validation_seeds": validation_seeds,
            "train_base_rate": labels[train].mean(axis=0).tolist(),
        },
        "site_labels": list(manifest.site_labels),
        "elements": list(manifest.elements),
        "scale": scale,
        "positive_weight": weight.tolist(),
        "n_parameters": count_parameters(model),
        "epochs": [],
    }
    if transfer is not None:
        summary["transfer_dataset"] = {
            "name": transfer[0].manifest.name,
            "n_models": transfer[0].n_models,
            "elements": list(transfer[0].manifest.elements),
            "base_rate": transfer[2].mean(axis=0).tolist(),
            "portion_size": len(transfer[3][0]),
        }

    sampler = EpochSampler(train, rng)
    weight_device = jnp.asarray(weight)
    best_loss = np.inf
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        indices = sampler.draw(config.patterns_per_epoch)
        losses = [
            train_step(training, optimizer, x, y, weight_device, config.loss)
            for x, y in batches(inputs, data.frac, labels, indices, config.batch_size)
        ]
        train_loss = _finite(np.mean(jax.device_get(losses)))  # waits for the last step
        seconds_train = time.perf_counter() - started
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "validation": evaluate(evaluating, inputs, data.frac, labels, validation, config, weight),
        }
        if transfer is not None:
            t_data, t_inputs, t_labels, portions = transfer
            portion = portions[(epoch - 1) % len(portions)]
            record["transfer"] = evaluate(evaluating, t_inputs, t_data.frac, t_labels, portion, config, weight)
        # profiles are made while the previous step runs (asynchronous dispatch), so they are not timed apart
        record["seconds"] = {
            "train": seconds_train,
            "evaluation": time.perf_counter() - started - seconds_train,
        }
        summary["epochs"].append(record)
        _write_json(workdir / "metrics.json", summary)
        meta = checkpoint.CheckpointMeta(**meta_common, info={"dataset": manifest.name, "epoch": epoch})
        checkpoint.save(workdir / "last.msgpack", model, meta)
        if record["validation"]["loss"] is not None and record["validation"]["loss"] < best_loss:
            best_loss = record["validation"]["loss"]
            checkpoint.save(workdir / "checkpoint.msgpack", model, meta)
            summary["best_epoch"] = epoch
        if on_epoch is not None:
            on_epoch(record)
    _write_json(workdir / "metrics.json", summary)
    return summary
