"""The trained per-atom network as the GA's atom ranker (:class:`gasolve.ga.atom_selection.AtomRanker`).

Inference runs in NumPy from the stored weights (a handful of atoms per call, where a JAX dispatch would cost more
than the arithmetic); ``tests/test_peratom_model.py`` checks it against the Flax module.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gasolve.errors import InputError
from nnselect.peratom.features import N_FEATURES, AtomFeatures

#: Format tag of a per-atom weights file.
TAG = "gasolve-peratom-selection-v1"
#: The weights that ship with gasolve (see docs/selection-network.md for their data and figures).
SHIPPED = Path(__file__).with_name("data") / "peratom.msgpack"


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (as ``jax.nn.gelu``'s default)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


@dataclass(frozen=True)
class AtomRanker:
    """A loaded per-atom network.

    Attributes
    ----------
    layers : tuple of (ndarray, ndarray)
        (kernel (n_in, n_out), bias (n_out,)) of each hidden layer, then the head.
    mean, std : ndarray, shape (N_FEATURES,)
        Feature standardisation of the training set.
    elements : tuple of str
        Elements of the training atoms.
    meta : dict
        The file's metadata (training config, split, provenance).
    path : Path
    """

    layers: tuple
    mean: np.ndarray
    std: np.ndarray
    elements: tuple[str, ...]
    meta: dict
    path: Path

    @classmethod
    def load(cls, path: str | Path = SHIPPED) -> AtomRanker:
        """Read a weights file written by :func:`nnselect.peratom.train.train_and_evaluate`.

        Raises
        ------
        InputError
            Unreadable or foreign file, or features of another layout.
        """
        from gasolve.networks import weights_file

        path = Path(path)
        meta_text, weights = weights_file.read(path, TAG, "a per-atom selection network")
        meta = json.loads(meta_text)
        if len(meta.get("mean", ())) != N_FEATURES:
            found = len(meta.get("mean", ()))
            raise InputError(f"the network reads {found} features, this gasolve computes {N_FEATURES}", str(path))
        n_hidden = len(meta["config"]["hidden"])
        try:
            layers = [(weights[f"layers/{i}/kernel"], weights[f"layers/{i}/bias"]) for i in range(n_hidden)]
            layers.append((weights["head/kernel"], weights["head/bias"]))
        except KeyError as error:
            raise InputError(f"malformed per-atom network: no weights {error.args[0]!r}", str(path)) from None
        layers = tuple((np.asarray(k, np.float64), np.asarray(b, np.float64)) for k, b in layers)
        return cls(layers, np.asarray(meta["mean"]), np.asarray(meta["std"]), tuple(meta["elements"]), meta, path)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """In-place probabilities of atoms with raw features (..., N_FEATURES) -> (...)."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        for kernel, bias in self.layers[:-1]:
            x = _gelu(x @ kernel + bias)
        kernel, bias = self.layers[-1]
        logits = (x @ kernel + bias)[..., 0]
        return 1.0 / (1.0 + np.exp(-logits))

    def untrained_elements(self, elements) -> list[str]:
        """Elements of ``elements`` that no training atom had, sorted."""
        return sorted(set(elements) - set(self.elements))

    def bind(self, problem) -> BoundRanker:
        """The ranker of one scoring problem: frac (n_sites, 3) -> probabilities (n_sites,)."""
        return BoundRanker(self, AtomFeatures(problem))


class BoundRanker:
    """An :class:`AtomRanker` with the feature calculator of one problem (the GA's ``atom_ranker`` callable)."""

    def __init__(self, ranker: AtomRanker, features: AtomFeatures):
        self.ranker = ranker
        self.features = features

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        """In-place probability of each atom of one model, frac (n_sites, 3) -> (n_sites,)."""
        return self.ranker.predict_features(self.features(np.asarray(frac)[None])[0])


def ranker_factory(config, problem) -> BoundRanker:
    """The ``[atom_selection]`` table's ranker for a run (:func:`gasolve.pipeline.prepare`'s ``ranker_factory``).

    Raises
    ------
    InputError
        When the structure has elements the network was not trained on and ``allow_untrained_elements`` is off
        (with it on, a ``UserWarning`` says the same).
    """
    settings = config.selection
    ranker = AtomRanker.load(settings.model)
    missing = ranker.untrained_elements(problem.elements)
    if missing:
        message = (
            f"the per-atom network {settings.model} was not trained on {', '.join(missing)} "
            f"(trained on {', '.join(ranker.elements)}); its probabilities for them are extrapolated"
        )
        if not settings.allow_untrained_elements:
            raise InputError(f"[atom_selection] model: {message}; set allow_untrained_elements = true to run anyway",
                             str(config.source))  # fmt: skip
        warnings.warn(message, UserWarning, stacklevel=2)
    return ranker.bind(problem)
