"""Training configurations of the selection network: a frozen :class:`TrainConfig`, Python presets, TOML files.

Presets (modules with ``get_config()``): :mod:`~nnselect.configs.default` (the paper's network and schedule),
:mod:`~nnselect.configs.residual` (gasolve's improved network) and :mod:`~nnselect.configs.tiny` (tests).
A TOML file holds one ``[train]`` table with any of the fields below; unknown keys are refused, naming the file
and key, and a ``preset`` key picks the preset the others override.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gasolve.errors import InputError
from gasolve.io.toml_file import read_toml

#: Names accepted by :func:`get_preset`.
PRESETS = ("default", "residual", "tiny")
_LOSSES = ("mse", "bce")
_SPLITS = ("model", "run")
_WEIGHTING = ("none", "balanced")
#: Model classes of :data:`nnselect.models.MODELS`, named here so that configs load without importing JAX.
MODEL_NAMES = ("PaperCNN", "ResidualCNN")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that fixes one training run.

    Attributes
    ----------
    dataset : str
        Harvested data set (folder with ``manifest.json``) of the known structure, e.g. K4PbO4.
    transfer_dataset : str or None
        Optional second data set evaluated every epoch (the paper: K4SnO4 models, net trained on K4PbO4), one
        of ``transfer_portions`` equal slices per epoch.
    transfer_portions : int
        Number of slices the transfer set is cut into (the paper: 100, one per epoch).
    model : str
        ``"PaperCNN"`` or ``"ResidualCNN"``.
    model_options : dict
        Hyper-parameters passed to the model class.
    loss : str
        ``"mse"`` (the paper: mean squared error of the sigmoid outputs) or ``"bce"`` (binary cross-entropy
        with logits).
    positive_weight : str
        ``"none"`` or ``"balanced"``: BCE weight of a site's positive labels = (1 - p) / p from the site's base
        rate p in the training split, capped at ``max_positive_weight`` (only with ``loss = "bce"``).
    max_positive_weight : float
    learning_rate : float
        Adam step size (the paper: 5e-4).
    epochs, patterns_per_epoch : int
        The paper: 100 epochs of 1,200 patterns.
    batch_size : int
        Must divide ``patterns_per_epoch``.
    eval_batch_size : int
    label_radius : float
        A site is labelled 1 when its distance to the true position is at most this (Å; the paper: 0.1).
    split : str
        ``"model"`` (random 80:20 split of models) or ``"run"`` (whole GA runs go to one side, no leakage
        between near-identical models of one run).
    validation_fraction : float
    validation_size : int
        Validation models evaluated each epoch (a fixed random subset; 0: all).
    max_models : int
        Use at most this many models of the data set (a fixed random subset; 0: all).
    scale_sample : int
        Training models used to fix the global normalisation scale.
    threshold : float
        Probability above which a site counts as predicted in place (the paper rounds: 0.5).
    seed : int
        Seeds everything: the JAX key ``jax.random.key(seed)`` (initialisation, dropout) and the NumPy
        generator (split, sampling). 0 is a valid seed.
    """

    dataset: str = ""
    transfer_dataset: str | None = None
    transfer_portions: int = 100
    model: str = "PaperCNN"
    model_options: dict[str, Any] = field(default_factory=dict)
    loss: str = "mse"
    positive_weight: str = "none"
    max_positive_weight: float = 50.0
    learning_rate: float = 5e-4
    epochs: int = 100
    patterns_per_epoch: int = 1200
    batch_size: int = 50
    eval_batch_size: int = 200
    label_radius: float = 0.1
    split: str = "model"
    validation_fraction: float = 0.2
    validation_size: int = 2400
    max_models: int = 0
    scale_sample: int = 2000
    threshold: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> InputError:
            return InputError(f"{name}: expected {expected}, got {getattr(self, name)!r}", "training config")

        if self.model not in MODEL_NAMES:
            raise bad("model", f"one of {', '.join(MODEL_NAMES)}")
        if self.loss not in _LOSSES:
            raise bad("loss", f"one of {', '.join(_LOSSES)}")
        if self.split not in _SPLITS:
            raise bad("split", f"one of {', '.join(_SPLITS)}")
        if self.positive_weight not in _WEIGHTING:
            raise bad("positive_weight", f"one of {', '.join(_WEIGHTING)}")
        if self.positive_weight != "none" and self.loss != "bce":
            raise bad("positive_weight", '"none" unless loss = "bce"')
        for name in ("epochs", "patterns_per_epoch", "batch_size", "eval_batch_size", "transfer_portions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, "a positive integer")
        for name in ("validation_size", "max_models", "scale_sample", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(name, "an integer >= 0")
        if self.patterns_per_epoch % self.batch_size:
            raise bad("batch_size", f"a divisor of patterns_per_epoch = {self.patterns_per_epoch}")
        for name in ("learning_rate", "label_radius", "max_positive_weight"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise bad(name, "a positive number")
        if not 0 < self.validation_fraction < 1:
            raise bad("validation_fraction", "a number in (0, 1)")
        if not 0 < self.threshold < 1:
            raise bad("threshold", "a number in (0, 1)")
        if not isinstance(self.model_options, dict):
            raise bad("model_options", "a table of hyper-parameters")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (lists for tuples)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "training config") -> TrainConfig:
        """Build from a dict, refusing unknown keys (``source`` names where they came from)."""
        names = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"unknown key {key!r}{hint}; allowed: {', '.join(names)}", source)
        try:
            return cls(**values)
        except InputError as error:
            raise InputError(error.message, source) from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def get_preset(name: str) -> TrainConfig:
    """The ``get_config()`` of the preset module ``name`` (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return importlib.import_module(f"nnselect.configs.{name}").get_config()


def load_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """Read a TOML training config (one ``[train]`` table), on top of its ``preset`` (default ``"default"``).

    Parameters
    ----------
    path : str or Path
    **overrides
        Fields replaced after reading (e.g. ``dataset`` from the command line); None values are ignored.

    Returns
    -------
    TrainConfig

    Raises
    ------
    InputError
        Unreadable file, invalid TOML, unknown table or key, bad value; the message names the file.
    """
    path = Path(path)
    raw = read_toml(path, "training config")
    unknown = sorted(set(raw) - {"train"})
    if unknown:
        raise InputError(f"unknown table [{unknown[0]}]; a training config has one [train] table", str(path))
    table = dict(raw.get("train", {}))
    preset = table.pop("preset", "default")
    base = get_preset(preset).to_dict()
    base.update(table)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(base, f"{path}: [train]")
