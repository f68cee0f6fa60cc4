"""The residual 1D CNN shared by the selection network (:mod:`nnselect`) and the symmetry network (:mod:`symnet`).

A stem convolution (kernel 7, stride 2) and batch-normalised residual blocks that each halve the length (He et al.
2016, "Deep residual learning", CVPR), then a head input that keeps *where* along 2θ the features sit (a 1x1
convolution to a few channels, flattened: peak positions fix the lattice, the extinctions and which atoms misfit)
next to the global mean and max of the last stage (how strong they are overall), and one hidden dense layer with
dropout before and after it (Srivastava et al. 2014, JMLR 15:1929). The last residual branch's batch-norm scale
starts at zero, so every block starts as its shortcut (Goyal et al. 2017).

Each network adds its output layers by subclassing :class:`ResidualBackbone`, so that the parameter paths
(``stem/...``, ``blocks/0/...``, ``hidden/...``) are those of every checkpoint written before the backbone was
shared: old weights files load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from gasolve.networks.layers import ResidualBlock


def residual_length(n_inputs: int, n_stages: int) -> int:
    """Length after the stem and ``n_stages`` residual stages, each halving it (rounded up, 'SAME' padding)."""
    length = n_inputs
    for _ in range(1 + n_stages):
        length = math.ceil(length / 2)
    return length


class ResidualBackbone(nnx.Module):
    """Residual 1D CNN from a pattern to a hidden feature vector; subclasses add the output layers.

    Parameters
    ----------
    n_inputs : int
        Input length (points).
    stem_features : int
        Channels of the stem convolution (kernel 7, stride 2).
    stage_features : sequence of int
        Channels of each residual stage; each halves the length.
    kernel_size : int
        Width of the residual blocks' convolutions (points).
    head_features : int
        Channels kept per position in the flattened part of the head input.
    hidden : int
        Width of the hidden dense layer (the length of :meth:`features`).
    dropout : float
        Dropout rate before and after the hidden layer.
    rngs : nnx.Rngs
        Needs a ``params`` stream; a ``dropout`` stream (falls back to ``default``) for training.
    """

    def __init__(
        self,
        n_inputs: int,
        *,
        stem_features: int,
        stage_features: Sequence[int],
        kernel_size: int,
        head_features: int,
        hidden: int,
        dropout: float,
        rngs: nnx.Rngs,
    ):
        if not stage_features:
            raise ValueError("ResidualCNN needs at least one stage")
        self.stem = nnx.Conv(1, stem_features, (7,), strides=(2,), use_bias=False, rngs=rngs)
        self.stem_norm = nnx.BatchNorm(stem_features, momentum=0.9, rngs=rngs)
        widths = (stem_features, *stage_features)
        self.blocks = nnx.List(
            [ResidualBlock(widths[i], widths[i + 1], kernel_size, 2, rngs=rngs) for i in range(len(stage_features))]
        )
        length = residual_length(n_inputs, len(stage_features))
        self.reduce = nnx.Conv(stage_features[-1], head_features, (1,), rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.hidden = nnx.Linear(length * head_features + 2 * stage_features[-1], hidden, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        """Hidden features, after the ReLU and dropout.

        Parameters
        ----------
        x : Array, shape (batch, n_inputs, 1)

        Returns
        -------
        Array, shape (batch, hidden)
        """
        x = nnx.relu(self.stem_norm(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        local = nnx.relu(self.reduce(x)).reshape(x.shape[0], -1)
        pooled = jnp.concatenate([local, jnp.mean(x, axis=1), jnp.max(x, axis=1)], axis=-1)
        return self.dropout(nnx.relu(self.hidden(self.dropout(pooled))))
