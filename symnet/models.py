"""Flax NNX networks that read a powder pattern and give crystal-system and space-group logits.

Input: a batch of patterns on the model grid divided by 1000, shape (batch, n_inputs, 1). Output: a dict with
``"system"`` logits (batch, 7) and ``"space_group"`` logits (batch, 230) (class = number - 1).

:class:`PaperCNN` is the network of Zaloga, Stanovov, Bezrukova, Dubinin & Yakimov (2019), J. Sib. Fed. Univ.
Chem. 12(2) 188-200, part 1: three convolution + max-pooling layers (120 filters was their best), then for each
task its own three fully connected layers with sigmoid hidden units (ReLU there was unstable for them).
Kernel size, pooling and dense widths are not given in the paper and are chosen here.

:class:`ResidualCNN` is gasolve's improvement: batch-normalised residual blocks that halve the length (He et al.
2016, CVPR), a head that keeps where along 2θ the features are (a narrow flattened map, because peak positions
fix the lattice and the extinctions) next to global mean and max pooling, dropout (Srivastava et al. 2014) and
one shared hidden layer feeding both heads: the backbone shared with :mod:`nnselect`
(:mod:`gasolve.networks.backbone`).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from gasolve.networks.backbone import ResidualBackbone
from gasolve.networks.layers import count_parameters as count_parameters  # re-exported
from gasolve.networks.layers import eval_mode as eval_mode  # re-exported
from gasolve.networks.layers import train_mode as train_mode  # re-exported
from symnet.labels import N_SPACE_GROUPS, N_SYSTEMS


class PaperCNN(nnx.Module):
    """The paper's two-headed CNN: 3 x (Conv1D + ReLU + max-pool), then 3 dense layers per task.

    Parameters
    ----------
    n_inputs : int
        Input length.
    features : sequence of 3 int
    kernel_size : int
    pools : sequence of 3 int
        Max-pooling window (= stride) after each convolution.
    hidden : sequence of 2 int
        Hidden dense widths of each head (sigmoid); the third dense layer is the output.
    rngs : nnx.Rngs
    """

    def __init__(
        self,
        n_inputs: int,
        *,
        features: Sequence[int] = (120, 120, 120),
        kernel_size: int = 5,
        pools: Sequence[int] = (5, 4, 4),
        hidden: Sequence[int] = (256, 128),
        rngs: nnx.Rngs,
    ):
        if len(features) != 3 or len(pools) != 3 or len(hidden) != 2:
            raise ValueError("PaperCNN needs 3 convolution layers (features, pools) and 2 hidden dense layers")
        length = n_inputs
        for pool in pools:
            length //= pool
        if length < 1:
            raise ValueError(f"{n_inputs} points are too few for pooling by {tuple(pools)}")
        self.pools = tuple(int(p) for p in pools)
        channels = (1, *features)
        self.convs = nnx.List([nnx.Conv(channels[i], channels[i + 1], (kernel_size,), rngs=rngs) for i in range(3)])
        flat = length * features[-1]
        self.heads = nnx.List(
            [
                nnx.List(
                    [
                        nnx.Linear(flat, hidden[0], rngs=rngs),
                        nnx.Linear(hidden[0], hidden[1], rngs=rngs),
                        nnx.Linear(hidden[1], n_out, rngs=rngs),
                    ]
                )
                for n_out in (N_SYSTEMS, N_SPACE_GROUPS)
            ]
        )

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        """Logits; ``x`` has shape (batch, n_inputs, 1)."""
        for conv, pool in zip(self.convs, self.pools, strict=True):
            x = nnx.max_pool(nnx.relu(conv(x)), window_shape=(pool,), strides=(pool,), padding="VALID")
        x = x.reshape(x.shape[0], -1)
        out = []
        for head in self.heads:
            h = nnx.sigmoid(head[0](x))
            h = nnx.sigmoid(head[1](h))
            out.append(head[2](h))
        return {"system": out[0], "space_group": out[1]}


class ResidualCNN(ResidualBackbone):
    """Residual 1D CNN with a position-keeping head (:class:`~gasolve.networks.backbone.ResidualBackbone`) and two
    outputs fed by its shared hidden layer.

    Parameters
    ----------
    n_inputs : int
    stem_features : int
        Channels of the stem convolution (kernel 7, stride 2).
    stage_features : sequence of int
        Channels of each residual stage; each halves the length.
    kernel_size : int
    head_features : int
        Channels kept per position in the flattened part of the head.
    hidden : int
        Width of the shared hidden dense layer.
    dropout : float
    rngs : nnx.Rngs
    """

    def __init__(
        self,
        n_inputs: int,
        *,
        stem_features: int = 16,
        stage_features: Sequence[int] = (32, 48, 64, 96, 128),
        kernel_size: int = 5,
        head_features: int = 24,
        hidden: int = 384,
        dropout: float = 0.3,
        rngs: nnx.Rngs,
    ):
        super().__init__(
            n_inputs,
            stem_features=stem_features,
            stage_features=stage_features,
            kernel_size=kernel_size,
            head_features=head_features,
            hidden=hidden,
            dropout=dropout,
            rngs=rngs,
        )
        self.system = nnx.Linear(hidden, N_SYSTEMS, rngs=rngs)
        self.space_group = nnx.Linear(hidden, N_SPACE_GROUPS, rngs=rngs)

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        """Logits; ``x`` has shape (batch, n_inputs, 1)."""
        h = self.features(x)
        return {"system": self.system(h), "space_group": self.space_group(h)}


#: Model classes by name, as configs and checkpoints refer to them.
MODELS: dict[str, type[nnx.Module]] = {"PaperCNN": PaperCNN, "ResidualCNN": ResidualCNN}


def create_model(name: str, n_inputs: int, options: dict | None = None, *, key: jax.Array | int = 0) -> nnx.Module:
    """Build a registered model (in training mode) from its name, input length and hyper-parameters."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](n_inputs, **(options or {}), rngs=nnx.Rngs(key))
