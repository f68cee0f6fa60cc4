"""The per-atom selection network: a small Flax NNX perceptron from one atom's features to one logit.

The same weights serve every atom of every structure: the input is the atom's feature vector
(:mod:`nnselect.peratom.features`, standardised with the training set's mean and spread), the output the logit of
the probability that the atom lies within the label radius of its true position. So the network does not depend
on the number of sites, unlike :mod:`nnselect.models` (one output per site of one training structure).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


class AtomMLP(nnx.Module):
    """Dense layers with GELU and dropout, one logit per atom.

    Parameters
    ----------
    n_features : int
    hidden : sequence of int
        Widths of the hidden layers.
    dropout : float
        Dropout rate after each hidden layer (training only).
    rngs : nnx.Rngs
    """

    def __init__(self, n_features: int, hidden: Sequence[int], dropout: float, *, rngs: nnx.Rngs):
        widths = (n_features, *hidden)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)])
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.head = nnx.Linear(widths[-1], 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits of atoms ``x`` (..., n_features) -> (...)."""
        for layer in self.layers:
            x = self.dropout(jax.nn.gelu(layer(x)))
        return self.head(x)[..., 0]


def probabilities(logits: jax.Array) -> jax.Array:
    """In-place probabilities from logits."""
    return jnp.asarray(jax.nn.sigmoid(logits))
