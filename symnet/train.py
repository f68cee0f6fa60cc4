"""Training of the symmetry network: ``train_and_evaluate(config)``.

The loss is the paper's sum of the two softmax cross-entropies (7 crystal systems, 230 space groups), here with
label smoothing and a weight on the crystal-system term. AdamW with linear warm-up and cosine decay. Patterns
are rendered on the fly from peak lists with a fresh random instrument (:mod:`symnet.augment`). After every
epoch the network is measured on the validation split (calculated patterns as in the paper, and augmented ones);
the epoch with the lowest validation loss is kept. Temperatures of both heads are then fitted on the
validation logits. The test splits are evaluated once, at the end, and never steer anything.

Outputs in ``config.train.workdir``: ``config.toml`` (resolved), ``splits.json``, ``metrics.json`` (rewritten
every epoch), ``checkpoint.msgpack`` (best epoch, calibrated), ``summary.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gasolve.errors import InputError
from symnet import calibration, checkpoint
from symnet.configs import SymmetryConfig, write_config
from symnet.dataset import PeakSet, load_peaks, read_catalogue
from symnet.grid import PatternGrid
from symnet.labels import N_SPACE_GROUPS, N_SYSTEMS
from symnet.models import count_parameters, create_model, eval_mode, train_mode
from symnet.pipeline import labels_of, render_inputs, training_batches
from symnet.splits import Splits, make_splits


def loss_value(
    logits: dict[str, jax.Array],
    system: jax.Array,
    space_group: jax.Array,
    label_smoothing: float,
    system_weight: float,
) -> jax.Array:
    """w · CE(system) + CE(space group), each with label smoothing, averaged over the batch.

    Parameters
    ----------
    logits : dict
        ``"system"`` (batch, 7) and ``"space_group"`` (batch, 230).
    system, space_group : Array, shape (batch,), int
        0-based classes.
    label_smoothing : float
    system_weight : float

    Returns
    -------
    Array, shape ()
    """

    def cross_entropy(z: jax.Array, labels: jax.Array, n: int) -> jax.Array:
        target = optax.smooth_labels(jax.nn.one_hot(labels, n), label_smoothing)
        return jnp.mean(optax.softmax_cross_entropy(z, target))

    return system_weight * cross_entropy(logits["system"], system, N_SYSTEMS) + cross_entropy(
        logits["space_group"], space_group, N_SPACE_GROUPS
    )


@nnx.jit(static_argnames=("label_smoothing", "system_weight"))
def train_step(model, optimizer, x, system, space_group, label_smoothing: float, system_weight: float) -> jax.Array:
    """One optimiser step on a batch ``x`` (batch, n_inputs, 1); returns the batch loss before the step."""

    def objective(model):
        return loss_value(model(x), system, space_group, label_smoothing, system_weight)

    value, grads = nnx.value_and_grad(objective)(model)
    optimizer.update(model, grads)
    return value


@nnx.jit
def _logits(model, x):
    out = model(x)
    return out["system"], out["space_group"]


def predict_logits(model: nnx.Module, inputs: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Logits of many inputs (n, n_inputs); model in evaluation mode. Returns (n, 7) and (n, 230) float32.

    Batches are padded to ``batch_size`` so that one compiled function serves every call.
    """
    systems, groups = [], []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start : start + batch_size]
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - n, inputs.shape[1]), inputs.dtype)])
        s, g = _logits(model, jnp.asarray(chunk)[..., None])
        systems.append(np.asarray(s)[:n])
        groups.append(np.asarray(g)[:n])
    if not systems:
        return np.zeros((0, N_SYSTEMS), np.float32), np.zeros((0, N_SPACE_GROUPS), np.float32)
    return np.concatenate(systems), np.concatenate(groups)


def summarise(system_logits, group_logits, system, group, t_system: float = 1.0, t_group: float = 1.0) -> dict:
    """Top-1/top-5 accuracies, NLL and ECE of both heads."""
    if len(system) == 0:
        return {"n": 0}
    p_system = calibration.softmax(system_logits, t_system)
    p_group = calibration.softmax(group_logits, t_group)
    return {
        "n": len(system),
        "system_top1": calibration.top_k_accuracy(p_system, system, 1),
        "system_top2": calibration.top_k_accuracy(p_system, system, 2),
        "space_group_top1": calibration.top_k_accuracy(p_group, group, 1),
        "space_group_top5": calibration.top_k_accuracy(p_group, group, 5),
        "system_nll": calibration.nll(system_logits, system, t_system),
        "space_group_nll": calibration.nll(group_logits, group, t_group),
        "system_ece": calibration.expected_calibration_error(p_system, system),
        "space_group_ece": calibration.expected_calibration_error(p_group, group),
    }


def load_data(config: SymmetryConfig) -> tuple[PeakSet, list[dict], Splits]:
    """Peak lists, catalogue rows (aligned with the peak set) and the splits of ``config``."""
    directory = Path(config.data.directory)
    peaks = load_peaks(directory)
    by_record = {row["record"]: row for row in read_catalogue(directory)}
    rows = [by_record[int(r)] for r in peaks.record]
    rng = np.random.default_rng(np.random.SeedSequence([config.train.seed, 1]))
    splits = make_splits(
        peaks.space_group,
        np.array([row["chemical_system"] for row in rows]),
        np.array([row["source"] == "mp" for row in rows]),
        rng,
        config.train.test_fraction,
        config.train.composition_test_fraction,
        config.train.validation_fraction,
    )
    return peaks, rows, splits


def fixed_inputs(
    peaks: PeakSet, index: np.ndarray, grid: PatternGrid, config: SymmetryConfig, seed: int, paper: bool
) -> np.ndarray:
    """Inputs of an evaluation set, the same every time (rendered from ``seed``)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.train.seed, seed]))
    return render_inputs(peaks, index, grid, rng, config.augment, paper)


def subsample(index: np.ndarray, size: int, seed: int) -> np.ndarray:
    if size == 0 or size >= len(index):
        return index
    return np.sort(np.random.default_rng(seed).choice(index, size=size, replace=False))


def train_and_evaluate(config: SymmetryConfig, progress: bool = True, log=print) -> dict[str, Any]:
    """Train, select the best epoch on validation, calibrate, evaluate the test splits once.

    Parameters
    ----------
    config : SymmetryConfig
        The data folder must exist (:func:`symnet.build.build_dataset`).
    progress : bool
        Show a progress bar per epoch.
    log : callable
        Receives one line per epoch.

    Returns
    -------
    dict
        The summary also written to ``summary.json``.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    tc = config.train
    workdir = Path(tc.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_config(config, workdir / "config.toml")
    grid = PatternGrid(**config.data.grid)
    peaks, rows, splits = load_data(config)
    (workdir / "splits.json").write_text(
        json.dumps({k: [rows[i]["identifier"] for i in v] for k, v in splits.to_dict().items()})
    )
    train = splits.train if tc.max_train == 0 else subsample(splits.train, tc.max_train, tc.seed)
    validation = subsample(splits.validation, tc.eval_size, tc.seed + 1)
    val_sets = {
        kind: fixed_inputs(peaks, validation, grid, config, 10 + k, paper)
        for k, (kind, paper) in enumerate((("calculated", True), ("augmented", False)))
    }
    val_labels = labels_of(peaks, validation)

    key = jax.random.key(tc.seed)
    model = create_model(config.model.name, grid.n_inputs, config.model.options, key=key)
    if tc.init_checkpoint:
        start, start_meta = checkpoint.load(tc.init_checkpoint)
        same_options = json.loads(json.dumps(start_meta.model_options)) == json.loads(json.dumps(config.model.options))
        if start_meta.model != config.model.name or not same_options or start_meta.grid != grid.to_dict():
            raise InputError("init_checkpoint has another model or grid than the config", tc.init_checkpoint)
        nnx.update(model, nnx.state(start, nnx.Any(nnx.Param, nnx.BatchStat)))
    eval_batch = min(256, 4 * tc.batch_size)
    steps_per_epoch = tc.steps_per_epoch or max(1, len(train) // tc.batch_size)
    total = steps_per_epoch * tc.epochs
    warmup = min(tc.warmup_steps, total // 2)
    schedule = (
        optax.warmup_cosine_decay_schedule(0.0, tc.learning_rate, warmup, total)
        if warmup > 0
        else optax.cosine_decay_schedule(tc.learning_rate, total)
    )
    optimizer = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=tc.weight_decay), wrt=nnx.Param)
    rng = np.random.default_rng(np.random.SeedSequence([tc.seed, 2]))
    history: list[dict] = []
    best = (np.inf, -1)
    started = time.time()
    meta_base = {
        "model": config.model.name,
        "model_options": config.model.options,
        "grid": grid.to_dict(),
        "abstain_threshold": tc.abstain_threshold,
        "config": config.to_dict(),
    }
    batches = training_batches(peaks, train, grid, config.augment, rng, tc.batch_size, total)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
    )
    with Progress(*columns, disable=not progress) as bar:
        for epoch in range(1, tc.epochs + 1):
            task = bar.add_task(f"epoch {epoch}/{tc.epochs}", total=steps_per_epoch, loss=float("nan"))
            losses = []
            trainable = train_mode(model)
            for _ in range(steps_per_epoch):
                x, system, group = next(batches)
                value = train_step(
                    trainable,
                    optimizer,
                    jnp.asarray(x)[..., None],
                    jnp.asarray(system),
                    jnp.asarray(group),
                    tc.label_smoothing,
                    tc.system_weight,
                )
                losses.append(float(value))
                bar.update(task, advance=1, loss=float(np.mean(losses[-50:])))
            evaluation = eval_mode(model)
            record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": time.time() - started}
            val_loss = 0.0
            for kind, inputs in val_sets.items():
                s, g = predict_logits(evaluation, inputs, eval_batch)
                record[f"validation_{kind}"] = summarise(s, g, *val_labels)
                val_loss += record[f"validation_{kind}"]["system_nll"] + record[f"validation_{kind}"]["space_group_nll"]
            record["validation_loss"] = val_loss
            history.append(record)
            (workdir / "metrics.json").write_text(json.dumps(history, indent=1))
            log(_epoch_line(record))
            if val_loss < best[0]:
                best = (val_loss, epoch)
                checkpoint.save(workdir / "best.msgpack", model, checkpoint.CheckpointMeta(**meta_base))
    model, _ = checkpoint.load(workdir / "best.msgpack")
    # Temperatures from validation logits of both pattern kinds together.
    logits = [predict_logits(model, inputs, eval_batch) for inputs in val_sets.values()]
    s_all = np.concatenate([s for s, _ in logits])
    g_all = np.concatenate([g for _, g in logits])
    t_system = calibration.fit_temperature(s_all, np.concatenate([val_labels[0]] * len(logits)))
    t_group = calibration.fit_temperature(g_all, np.concatenate([val_labels[1]] * len(logits)))
    summary: dict[str, Any] = {
        "best_epoch": best[1],
        "train_structures": len(train),
        "train_patterns_seen": total * tc.batch_size,
        "parameters": count_parameters(model),
        "seconds": time.time() - started,
        "temperature_system": t_system,
        "temperature_space_group": t_group,
        "splits": {k: len(v) for k, v in splits.to_dict().items()},
    }
    for name, index in (("test", splits.test), ("composition_test", splits.composition_test)):
        index = subsample(index, tc.eval_size, tc.seed + 3)
        labels = labels_of(peaks, index)
        for k, (kind, paper) in enumerate((("calculated", True), ("augmented", False))):
            s, g = predict_logits(model, fixed_inputs(peaks, index, grid, config, 20 + k, paper), eval_batch)
            summary[f"{name}_{kind}"] = summarise(s, g, *labels, t_system, t_group)
    meta = checkpoint.CheckpointMeta(
        **meta_base,
        temperature_system=t_system,
        temperature_space_group=t_group,
        info={k: v for k, v in summary.items() if k != "splits"},
    )
    checkpoint.save(workdir / "checkpoint.msgpack", eval_mode(model), meta)
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _epoch_line(record: dict) -> str:
    calc, aug = record["validation_calculated"], record["validation_augmented"]
    return (
        f"epoch {record['epoch']}: loss {record['train_loss']:.3f}  validation calculated "
        f"{calc['system_top1']:.3f}/{calc['space_group_top1']:.3f}  augmented "
        f"{aug['system_top1']:.3f}/{aug['space_group_top1']:.3f}  ({record['seconds']:.0f} s)"
    )
