"""Save and load a trained symmetry network with everything needed to feed it and read its outputs.

One msgpack file (``flax.serialization``) holds the weights (``nnx.Param`` and batch-norm statistics) and a JSON
metadata block: model class and hyper-parameters, the pattern grid (start, step, points, wavelength, pooling),
the calibration temperatures of both heads, the abstain threshold, the training config and provenance. Anything
that does not fit is refused with :class:`~gasolve.errors.InputError`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from flax import nnx

from gasolve.errors import InputError
from gasolve.networks import weights_file
from symnet.grid import PatternGrid
from symnet.models import MODELS, create_model, eval_mode

FORMAT = "symnet-checkpoint-1"


@dataclass(frozen=True)
class CheckpointMeta:
    """What travels with the weights.

    Attributes
    ----------
    model : str
        A key of :data:`symnet.models.MODELS`.
    model_options : dict
    grid : dict
        :class:`~symnet.grid.PatternGrid` fields.
    temperature_system, temperature_space_group : float
        Softmax temperatures fitted on the validation split.
    abstain_threshold : float
    config : dict
        The training config (:meth:`symnet.configs.SymmetryConfig.to_dict`).
    info : dict
        Provenance and the figures measured at the end of training.
    """

    model: str
    model_options: dict
    grid: dict
    temperature_system: float = 1.0
    temperature_space_group: float = 1.0
    abstain_threshold: float = 0.3
    config: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise InputError(f"unknown model class {self.model!r}; known: {', '.join(MODELS)}")
        for name in ("temperature_system", "temperature_space_group"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive")

    @property
    def pattern_grid(self) -> PatternGrid:
        return PatternGrid(**self.grid)


def save(path: str | Path, model: nnx.Module, meta: CheckpointMeta) -> None:
    """Write weights (float32) and metadata to ``path`` atomically."""
    if type(model).__name__ != meta.model:
        raise ValueError(f"model is a {type(model).__name__}, the metadata says {meta.model}")
    weights_file.write(path, model, FORMAT, json.dumps(asdict(meta)), dtype=np.float32)


def read_meta(path: str | Path) -> tuple[CheckpointMeta, dict[str, np.ndarray]]:
    """Metadata and flat weights, without building the model."""
    text, weights = weights_file.read(path, FORMAT, "a symnet checkpoint")
    try:
        meta = CheckpointMeta(**json.loads(text))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"malformed checkpoint metadata: {error}", str(path)) from None
    return meta, weights


def load(path: str | Path) -> tuple[nnx.Module, CheckpointMeta]:
    """Rebuild a saved network, in evaluation mode."""
    meta, weights = read_meta(path)
    grid = meta.pattern_grid
    try:
        model = create_model(meta.model, grid.n_inputs, meta.model_options)
    except (TypeError, ValueError) as error:
        raise InputError(f"cannot build {meta.model} from the stored hyper-parameters: {error}", str(path)) from None
    weights_file.restore(model, weights, path, meta.model)
    return eval_mode(model), meta
