"""Flax NNX networks that read a difference profile and say, for each atom site, whether the atom is in place.

Input: a batch of normalised difference profiles, shape (n_models, n_points, 1) (see
:mod:`nnselect.input_pipeline`). Output: one logit per site, shape (n_models, n_sites); the probability that the
site's atom lies within the label radius of its true position is ``sigmoid(logit)``.

:class:`PaperCNN` is the network of Zaloga, Stanovov, Bezrukova, Dubinin & Yakimov (2019), J. Sib. Fed. Univ.
Chem. 12(2) 188-200 (doi 10.17516/1998-2836-0118): three convolution + max-pooling layers, three fully connected
layers with sigmoid hidden units (ReLU there was unstable in their part 1), one sigmoid unit per site.
:class:`ResidualCNN` is gasolve's improvement: batch-normalised residual convolution blocks (He et al. 2016,
"Deep residual learning", CVPR), a head that keeps where along 2θ a misfit sits (a narrow flattened map) next to
global mean and max pooling, and dropout (Srivastava et al. 2014, JMLR 15:1929): the backbone shared with
:mod:`symnet` (:mod:`gasolve.networks.backbone`) with one output unit per site.

Both return logits, so that the binary cross-entropy can be computed stably from them; the paper's sigmoid output
units are ``jax.nn.sigmoid`` of the same numbers (:func:`probabilities`), which is what its MSE loss sees.
Train/eval behaviour (dropout, batch statistics) is switched with :func:`train_mode` / :func:`eval_mode`, thin
wrappers of ``nnx.view``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from gasolve.networks.backbone import ResidualBackbone
from gasolve.networks.layers import count_parameters as count_parameters  # re-exported
from gasolve.networks.layers import eval_mode as eval_mode  # re-exported
from gasolve.networks.layers import train_mode as train_mode  # re-exported


def _pooled_length(n_points: int, pools: Sequence[int]) -> int:
    """Length after max-pooling with window = stride = each of ``pools`` ('VALID' padding)."""
    length = n_points
    for pool in pools:
        length //= pool
    return length


class PaperCNN(nnx.Module):
    """The paper's per-site network: 3 x (Conv1D + ReLU + max-pool), 3 dense layers, sigmoid units.

    The paper gives the layer counts, 120 filters (best in its part 1), sigmoid hidden activations and 9 sigmoid
    outputs; kernel size, pooling and dense widths are not given and are chosen here to keep the network small
    (about 1 M parameters for 5000 points).

    Parameters
    ----------
    n_points : int
        Length of the input profile.
    n_sites : int
        Number of output units (independent atom sites).
    features : sequence of 3 int
        Filters of the three convolution layers.
    kernel_size : int
        Width of every convolution kernel (points).
    pools : sequence of 3 int
        Max-pooling window (= stride) after each convolution.
    hidden : sequence of 2 int
        Widths of the two hidden dense layers (the third dense layer is the output).
    rngs : nnx.Rngs
        Parameter initialisation.
    """

    def __init__(
        self,
        n_points: int,
        n_sites: int,
        *,
        features: Sequence[int] = (120, 120, 120),
        kernel_size: int = 5,
        pools: Sequence[int] = (5, 4, 4),
        hidden: Sequence[int] = (128, 64),
        rngs: nnx.Rngs,
    ):
        if len(features) != 3 or len(pools) != 3 or len(hidden) != 2:
            raise ValueError("PaperCNN needs 3 convolution layers (features, pools) and 2 hidden dense layers")
        length = _pooled_length(n_points, pools)
        if length < 1:
            raise ValueError(f"{n_points} points are too few for pooling by {tuple(pools)}")
        self.pools = tuple(int(p) for p in pools)
        channels = (1, *features)
        self.convs = nnx.List(
            [nnx.Conv(channels[i], channels[i + 1], (kernel_size,), rngs=rngs) for i in range(len(features))]
        )
        widths = (length * features[-1], *hidden, n_sites)
        self.dense = nnx.List([nnx.Linear(widths[i], widths[i + 1], rngs=rngs) for i in range(len(widths) - 1)])

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits of the per-site sigmoid units.

        Parameters
        ----------
        x : Array, shape (batch, n_points, 1)

        Returns
        -------
        Array, shape (batch, n_sites)
        """
        for conv, pool in zip(self.convs, self.pools, strict=True):
            x = nnx.max_pool(nnx.relu(conv(x)), window_shape=(pool,), strides=(pool,), padding="VALID")
        x = x.reshape(x.shape[0], -1)
        for layer in self.dense[:-1]:
            x = nnx.sigmoid(layer(x))
        return self.dense[-1](x)


class ResidualCNN(ResidualBackbone):
    """Residual 1D CNN with a position-keeping head (:class:`~gasolve.networks.backbone.ResidualBackbone`) and one
    output unit per site; logits for binary cross-entropy.

    Parameters
    ----------
    n_points : int
    n_sites : int
    stem_features : int
    stage_features : sequence of int
        Channels of each stage; each stage halves the length.
    kernel_size : int
    head_features : int
        Channels kept per position in the flattened part of the head.
    hidden : int
        Width of the hidden dense layer.
    dropout : float
        Dropout rate in the head.
    rngs : nnx.Rngs
        Needs a ``params`` stream; a ``dropout`` stream (falls back to ``default``) for training.
    """

    def __init__(
        self,
        n_points: int,
        n_sites: int,
        *,
        stem_features: int = 32,
        stage_features: Sequence[int] = (32, 64, 96, 128),
        kernel_size: int = 5,
        head_features: int = 16,
        hidden: int = 128,
        dropout: float = 0.3,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            n_points,
            stem_features=stem_features,
            stage_features=stage_features,
            kernel_size=kernel_size,
            head_features=head_features,
            hidden=hidden,
            dropout=dropout,
            rngs=rngs,
        )
        self.out = nnx.Linear(hidden, n_sites, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Per-site logits.

        Parameters
        ----------
        x : Array, shape (batch, n_points, 1)

        Returns
        -------
        Array, shape (batch, n_sites)
        """
        return self.out(self.features(x))


#: Model classes by name, as configs and checkpoints refer to them.
MODELS: dict[str, type[nnx.Module]] = {"PaperCNN": PaperCNN, "ResidualCNN": ResidualCNN}


def create_model(
    name: str, n_points: int, n_sites: int, options: dict | None = None, *, key: jax.Array | int = 0
) -> nnx.Module:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    n_points, n_sites : int
    options : dict, optional
        Keyword arguments of the class (hyper-parameters).
    key : jax.Array or int
        JAX key (or integer seed) of the ``nnx.Rngs`` that initialises the parameters and drives dropout.

    Returns
    -------
    nnx.Module
        In training mode (see :func:`eval_mode`).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](n_points, n_sites, **(options or {}), rngs=nnx.Rngs(key))


def probabilities(logits: jax.Array) -> jax.Array:
    """Per-site probabilities (the paper's sigmoid outputs) from logits, same shape."""
    return jax.nn.sigmoid(logits)
