"""Save and load a trained symmetry network with everything needed to feed it and read its outputs.

One msgpack file (``flax.serialization``) holds the weights (``nnx.Param`` and batch-norm statistics) and a JSON
metadata block: model class and hyper-parameters, the pattern grid (start, step, points, wavelength, pooling),
the calibration temperatures of both heads, the abstain threshold, the training config and provenance. Anything
that does not fit is refused with :class:`~gasolve.errors.InputError`.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import numpy as np
from flax import nnx, serialization

from gasolve.errors import InputError
from symnet.grid import PatternGrid
from symnet.models import MODELS, create_model, eval_mode

FORMAT = "symnet-checkpoint-1"
_SAVED = nnx.Any(nnx.Param, nnx.BatchStat)


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


def _flat(tree) -> dict:
    return {
        jax.tree_util.keystr(path, simple=True, separator="/"): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def save(path: str | Path, model: nnx.Module, meta: CheckpointMeta) -> None:
    """Write weights (float32) and metadata to ``path`` atomically."""
    if type(model).__name__ != meta.model:
        raise ValueError(f"model is a {type(model).__name__}, the metadata says {meta.model}")
    weights = {k: np.asarray(v, dtype=np.float32) for k, v in _flat(nnx.to_pure_dict(nnx.state(model, _SAVED))).items()}
    payload = serialization.msgpack_serialize({"format": FORMAT, "meta": json.dumps(asdict(meta)), "weights": weights})
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_meta(path: str | Path) -> tuple[CheckpointMeta, dict[str, np.ndarray]]:
    """Metadata and flat weights, without building the model."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read checkpoint: {error.strerror}", str(path)) from None
    try:
        payload = serialization.msgpack_restore(data)
    except Exception:  # msgpack raises several unrelated types on garbage
        raise InputError("not a symnet checkpoint (not msgpack)", str(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"not a symnet checkpoint: expected format {FORMAT!r}", str(path))
    try:
        meta = CheckpointMeta(**json.loads(payload["meta"]))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"malformed checkpoint metadata: {error}", str(path)) from None
    return meta, dict(payload.get("weights", {}))


def load(path: str | Path) -> tuple[nnx.Module, CheckpointMeta]:
    """Rebuild a saved network, in evaluation mode."""
    meta, weights = read_meta(path)
    grid = meta.pattern_grid
    try:
        model = create_model(meta.model, grid.n_inputs, meta.model_options)
    except (TypeError, ValueError) as error:
        raise InputError(f"cannot build {meta.model} from the stored hyper-parameters: {error}", str(path)) from None
    state = nnx.state(model, _SAVED)
    pure = nnx.to_pure_dict(state)
    expected = _flat(pure)
    if set(expected) != set(weights):
        raise InputError(f"weights do not fit {meta.model}", str(path))
    for key, value in expected.items():
        if tuple(weights[key].shape) != tuple(value.shape):
            raise InputError(f"weight {key} has shape {tuple(weights[key].shape)}, expected {value.shape}", str(path))
    paths, treedef = jax.tree_util.tree_flatten_with_path(pure)
    leaves = [np.asarray(weights[jax.tree_util.keystr(p, simple=True, separator="/")]) for p, _ in paths]
    nnx.replace_by_pure_dict(state, jax.tree_util.tree_unflatten(treedef, leaves))
    nnx.update(model, state)
    return eval_mode(model), meta
