"""The network's 2θ grid, pooling onto the input length, and resampling of any pattern through d-spacing.

The pattern grid follows the paper (Zaloga et al. 2019, part 1): Cu Kα1, 10,000 points from 5° in steps of
0.01° 2θ. A network may read it mean-pooled by an integer factor (e.g. 4 -> 2,500 points) to save compute.
A measured pattern at another wavelength is put onto the grid at equal d-spacing, d = λ / (2 sin θ); points of
the grid that the measurement does not reach are set to zero, as in training, where the 2θ range is cut at random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Cu Kα1 wavelength (Å) of the training grid (ASE's table, as :mod:`gasolve.diffraction.wavelength`).
CU_KALPHA1 = 1.5405981


@dataclass(frozen=True)
class PatternGrid:
    """A uniform 2θ grid at one wavelength.

    Attributes
    ----------
    start : float
        First 2θ (degrees).
    step : float
        Step (degrees).
    n_points : int
    wavelength : float
        Å.
    pool : int
        Mean-pooling factor from the pattern grid to the network input; must divide ``n_points``.
    """

    start: float = 5.0
    step: float = 0.01
    n_points: int = 10_000
    wavelength: float = CU_KALPHA1
    pool: int = 1

    def __post_init__(self) -> None:
        if not (0 < self.start < 180 and self.step > 0 and self.n_points >= 2):
            raise ValueError(f"bad grid: start {self.start}, step {self.step}, n_points {self.n_points}")
        if self.start + self.step * (self.n_points - 1) >= 180:
            raise ValueError("the grid must end below 180° 2θ")
        if not (math.isfinite(self.wavelength) and self.wavelength > 0):
            raise ValueError(f"wavelength must be positive (Å), got {self.wavelength}")
        if self.pool < 1 or self.n_points % self.pool:
            raise ValueError(f"pool {self.pool} must be a positive divisor of n_points {self.n_points}")

    @property
    def two_theta(self) -> np.ndarray:
        """Grid angles (degrees), shape (n_points,)."""
        return self.start + self.step * np.arange(self.n_points)

    @property
    def stop(self) -> float:
        """Last 2θ (degrees)."""
        return self.start + self.step * (self.n_points - 1)

    @property
    def n_inputs(self) -> int:
        """Length of the network input, ``n_points // pool``."""
        return self.n_points // self.pool

    def d_min(self, margin: float = 0.0) -> float:
        """Smallest d (Å) seen at the top of the grid plus ``margin`` degrees."""
        top = min(self.stop + margin, 179.0)
        return self.wavelength / (2.0 * math.sin(math.radians(top) / 2.0))

    def to_dict(self) -> dict:
        return {
            "start": self.start,
            "step": self.step,
            "n_points": self.n_points,
            "wavelength": self.wavelength,
            "pool": self.pool,
        }


def pool_mean(y: np.ndarray, factor: int) -> np.ndarray:
    """Mean over consecutive blocks of ``factor`` points along the last axis, shape (..., n // factor)."""
    if factor == 1:
        return y
    n = y.shape[-1] // factor * factor
    return y[..., :n].reshape(*y.shape[:-1], -1, factor).mean(axis=-1)


def resample_through_d(
    two_theta: np.ndarray, y: np.ndarray, wavelength: float, grid: PatternGrid, zero: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Put a pattern measured at ``wavelength`` onto ``grid`` at equal d-spacing (linear interpolation).

    Parameters
    ----------
    two_theta : ndarray, shape (n,)
        Measured angles (degrees), increasing.
    y : ndarray, shape (n,)
        Intensities.
    wavelength : float
        Primary wavelength of the measurement (Å).
    grid : PatternGrid
    zero : float
        Zero shift of the measurement (degrees): a reflection at Bragg angle 2θ_B is seen at 2θ_B + zero.

    Returns
    -------
    values : ndarray, shape (grid.n_points,)
        Zero where the measurement does not reach.
    covered : ndarray, shape (grid.n_points,), bool
        True where the grid point's d-spacing lies inside the measured range.
    """
    two_theta = np.asarray(two_theta, dtype=float)
    y = np.asarray(y, dtype=float)
    target = grid.two_theta
    d_spacing = grid.wavelength / (2.0 * np.sin(np.radians(target) / 2.0))
    sine = wavelength / (2.0 * d_spacing)
    reachable = sine < 1.0
    angle = np.full(grid.n_points, np.inf)
    angle[reachable] = 2.0 * np.degrees(np.arcsin(sine[reachable])) + zero
    half_step = 0.5 * float(np.median(np.diff(two_theta))) if len(two_theta) > 1 else 0.0
    covered = reachable & (angle >= two_theta[0] - half_step) & (angle <= two_theta[-1] + half_step)
    values = np.zeros(grid.n_points)
    values[covered] = np.interp(angle[covered], two_theta, y)
    return values, covered
