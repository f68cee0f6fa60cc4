"""One msgpack file per trained network: a format tag, a JSON metadata block and the flat weights.

Saved variables are the ``nnx.Param`` and the batch-norm running statistics (``nnx.BatchStat``), not the dropout
RNG state; weight names are the variables' paths joined by ``/``. Writes are atomic
(:func:`gasolve.io.atomic.atomic_write`). Reading checks the tag, and restoring checks every name and shape against
the architecture the metadata describes; anything that does not fit raises :class:`~gasolve.errors.InputError`
naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx, serialization

from gasolve.errors import InputError
from gasolve.io.atomic import atomic_write

#: Variables a weights file holds.
SAVED = nnx.Any(nnx.Param, nnx.BatchStat)


def _flat(tree: Any) -> dict[str, Any]:
    return {
        jax.tree_util.keystr(path, simple=True, separator="/"): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


def write(path: str | Path, model: nnx.Module, tag: str, meta_json: str, dtype: Any = None) -> None:
    """Write ``model``'s saved variables with ``tag`` and ``meta_json`` to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
    model : nnx.Module
    tag : str
        Format tag checked by :func:`read`.
    meta_json : str
        The metadata, already serialised.
    dtype : numpy dtype, optional
        Store the weights in this type (default: as they are).
    """
    state = nnx.to_pure_dict(nnx.state(model, SAVED))
    weights = {key: np.asarray(value, dtype=dtype) for key, value in _flat(state).items()}
    payload = serialization.msgpack_serialize({"format": tag, "meta": meta_json, "weights": weights})
    atomic_write(path, payload)


def read(path: str | Path, tag: str, kind: str) -> tuple[str, dict[str, np.ndarray]]:
    """The metadata text and flat weights of a file written by :func:`write` with ``tag``.

    Parameters
    ----------
    path : str or Path
    tag : str
        Expected format tag.
    kind : str
        What the file should be, for messages ("an nnselect checkpoint").

    Raises
    ------
    InputError
        Unreadable file, not msgpack, another tag, no metadata.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read checkpoint: {error.strerror}", str(path)) from None
    try:
        payload = serialization.msgpack_restore(data)
    except Exception:  # msgpack raises several unrelated types on garbage
        raise InputError(f"not {kind} (not msgpack)", str(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != tag:
        found = payload.get("format") if isinstance(payload, dict) else None
        raise InputError(f"not {kind}: expected format {tag!r}, got {found!r}", str(path))
    if "meta" not in payload:
        raise InputError("malformed checkpoint metadata: no meta block", str(path))
    return payload["meta"], dict(payload.get("weights", {}))


def restore(model: nnx.Module, weights: dict[str, np.ndarray], path: str | Path, name: str) -> None:
    """Put stored ``weights`` into ``model`` in place (cast to the model's dtypes).

    Parameters
    ----------
    model : nnx.Module
        Freshly built with the stored hyper-parameters.
    weights : dict
        From :func:`read`.
    path : str or Path
        For messages.
    name : str
        The model's class name, for messages.

    Raises
    ------
    InputError
        Missing or unexpected weights, or a shape that does not fit.
    """
    state = nnx.state(model, SAVED)
    pure = nnx.to_pure_dict(state)
    expected = _flat(pure)
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise InputError(f"weights do not fit {name}: missing {missing[:3]}, unexpected {extra[:3]}", str(path))
    for key, value in expected.items():
        if tuple(weights[key].shape) != tuple(value.shape):
            raise InputError(
                f"weight {key} has shape {tuple(weights[key].shape)}, {name} expects {tuple(value.shape)}", str(path)
            )
    paths, treedef = jax.tree_util.tree_flatten_with_path(pure)
    leaves = [
        np.asarray(weights[jax.tree_util.keystr(p, simple=True, separator="/")], dtype=np.asarray(v).dtype)
        for p, v in paths
    ]
    nnx.replace_by_pure_dict(state, jax.tree_util.tree_unflatten(treedef, leaves))
    nnx.update(model, state)
