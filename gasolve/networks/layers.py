"""Building blocks and mode switches of the 1D convolutional networks."""

from __future__ import annotations

import jax
from flax import nnx


class ResidualBlock(nnx.Module):
    """Two batch-normalised convolutions with a strided, 1x1-projected shortcut (He et al. 2016).

    Parameters
    ----------
    in_features, out_features : int
    kernel_size : int
    stride : int
        Stride of the first convolution and of the shortcut (downsampling).
    rngs : nnx.Rngs
    """

    def __init__(self, in_features: int, out_features: int, kernel_size: int, stride: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(in_features, out_features, (kernel_size,), strides=(stride,), use_bias=False, rngs=rngs)
        self.norm1 = nnx.BatchNorm(out_features, momentum=0.9, rngs=rngs)
        self.conv2 = nnx.Conv(out_features, out_features, (kernel_size,), use_bias=False, rngs=rngs)
        self.norm2 = nnx.BatchNorm(out_features, momentum=0.9, scale_init=nnx.initializers.zeros, rngs=rngs)
        if stride != 1 or in_features != out_features:
            self.shortcut = nnx.Conv(in_features, out_features, (1,), strides=(stride,), use_bias=False, rngs=rngs)
            self.shortcut_norm = nnx.BatchNorm(out_features, momentum=0.9, rngs=rngs)
        else:
            self.shortcut = None
            self.shortcut_norm = None

    def __call__(self, x: jax.Array) -> jax.Array:
        """Shape (batch, length, in_features) -> (batch, ceil(length / stride), out_features)."""
        y = nnx.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        if self.shortcut is not None:
            x = self.shortcut_norm(self.shortcut(x))
        return nnx.relu(x + y)


def train_mode(model: nnx.Module) -> nnx.Module:
    """A view of ``model`` with dropout on and batch statistics from the batch (shares its variables)."""
    return nnx.view(model, deterministic=False, use_running_average=False, raise_if_not_found=False)


def eval_mode(model: nnx.Module) -> nnx.Module:
    """A view of ``model`` with dropout off and running batch statistics (shares its variables)."""
    return nnx.view(model, deterministic=True, use_running_average=True, raise_if_not_found=False)


def count_parameters(model: nnx.Module) -> int:
    """Number of trainable parameters (``nnx.Param`` entries)."""
    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
