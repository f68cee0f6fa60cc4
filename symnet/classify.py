"""Classify measured or calculated patterns with a trained symmetry network.

A pattern in any format the engine reads is put onto the network's grid at equal d-spacing (points the
measurement does not reach are zero, as in training), clipped at zero, scaled to a maximum of 1000 and pooled.
The calibrated probabilities (softmax of logits / T) of the crystal systems and the top-k space groups are
returned; ``abstained`` is true when the top space-group probability is below the checkpoint's threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from gasolve.errors import InputError
from symnet.augment import NORMALISATION
from symnet.calibration import softmax
from symnet.grid import PatternGrid, pool_mean, resample_through_d
from symnet.labels import CRYSTAL_SYSTEMS, space_group_symbol

#: The checkpoint shipped with the package.
DEFAULT_CHECKPOINT = "symnet.msgpack"
#: Least share of the network's grid a pattern must cover.
MIN_COVERAGE = 0.2


def default_checkpoint() -> Path:
    """Path of the shipped checkpoint (``symnet/data/symnet.msgpack``)."""
    return Path(str(resources.files("symnet") / "data" / DEFAULT_CHECKPOINT))


def pattern_input(
    two_theta: np.ndarray, y: np.ndarray, wavelength: float, grid: PatternGrid, source: str = "<pattern>"
) -> np.ndarray:
    """Network input of one pattern.

    Parameters
    ----------
    two_theta : ndarray, shape (n,)
        Degrees, increasing.
    y : ndarray, shape (n,)
    wavelength : float
        Primary wavelength of the measurement (Å).
    grid : PatternGrid
    source : str
        Named in errors.

    Returns
    -------
    ndarray, shape (grid.n_inputs,), float32
        Divided by 1000.

    Raises
    ------
    InputError
        When the pattern covers less than :data:`MIN_COVERAGE` of the grid or has no positive intensity.
    """
    values, covered = resample_through_d(two_theta, y, wavelength, grid)
    if covered.mean() < MIN_COVERAGE:
        raise InputError(
            f"the pattern (2θ {two_theta[0]:.2f}-{two_theta[-1]:.2f}° at λ = {wavelength:.5f} Å) covers "
            f"{100 * covered.mean():.0f}% of the network's d range (2θ {grid.start:g}-{grid.stop:g}° at "
            f"λ = {grid.wavelength:.5f} Å); at least {100 * MIN_COVERAGE:.0f}% is needed",
            source,
        )
    values = np.maximum(values, 0.0)
    top = float(values.max())
    if not top > 0:
        raise InputError("the pattern has no positive intensity", source)
    return (pool_mean(values * (NORMALISATION / top), grid.pool) / NORMALISATION).astype(np.float32)


@dataclass(frozen=True)
class Classification:
    """Calibrated answer for one pattern.

    Attributes
    ----------
    system_probabilities : ndarray, shape (7,)
        In :data:`symnet.labels.CRYSTAL_SYSTEMS` order.
    space_group_probabilities : ndarray, shape (230,)
        Index = number - 1.
    abstained : bool
    """

    system_probabilities: np.ndarray
    space_group_probabilities: np.ndarray
    abstained: bool

    def to_dict(self, file: str, top: int = 5) -> dict:
        """The JSON object of ``gasolve classify --json``."""
        system = int(np.argmax(self.system_probabilities))
        order = np.argsort(-self.space_group_probabilities)[:top]
        return {
            "file": file,
            "crystal_system": {
                "name": CRYSTAL_SYSTEMS[system],
                "probability": round(float(self.system_probabilities[system]), 4),
            },
            "space_groups": [
                {
                    "number": int(i + 1),
                    "symbol": space_group_symbol(int(i + 1)),
                    "probability": round(float(self.space_group_probabilities[i]), 4),
                }
                for i in order
            ],
            "abstained": self.abstained,
        }


class Classifier:
    """A loaded network with its grid and calibration.

    Parameters
    ----------
    path : str or Path, optional
        Checkpoint; default the shipped one.
    """

    def __init__(self, path: str | Path | None = None):
        from symnet import checkpoint

        self.path = Path(path) if path is not None else default_checkpoint()
        if not self.path.is_file():
            raise InputError("no trained symmetry network here; run gasolve train-symmetry", str(self.path))
        self.model, self.meta = checkpoint.load(self.path)
        self.grid = self.meta.pattern_grid

    def classify_inputs(self, inputs: np.ndarray) -> list[Classification]:
        """Classifications of network inputs, shape (n, grid.n_inputs)."""
        from symnet.train import predict_logits

        system_logits, group_logits = predict_logits(self.model, np.asarray(inputs, np.float32), batch_size=16)
        p_system = softmax(system_logits, self.meta.temperature_system)
        p_group = softmax(group_logits, self.meta.temperature_space_group)
        return [
            Classification(s, g, bool(g.max() < self.meta.abstain_threshold))
            for s, g in zip(p_system, p_group, strict=True)
        ]
