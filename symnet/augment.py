"""Training patterns: a peak list rendered with a random instrument, background, noise and 2θ range.

Two kinds of pattern (:class:`symnet.configs.AugmentConfig`):

* the paper's (Zaloga et al. 2019, part 1): Cu Kα1, pseudo-Voigt of constant FWHM 0.1° and η = 0.5, a linear
  background, no noise;
* an augmented one, so that measured patterns look familiar: Caglioti width growing with angle, any η, zero
  shift, overall B, Kα2, log-normal jitter of peak intensities (texture, imperfect models), a background of
  random shape (linear, a smooth positive polynomial, or an amorphous hump over a decaying curve), Poisson
  counting noise, and a 2θ range cut short (zero outside, as :func:`symnet.grid.resample_through_d` leaves
  points a measurement does not reach).

Every pattern is normalised to a maximum of 1000 (the paper's scale) and the network reads it divided by 1000.
"""

from __future__ import annotations

import numpy as np

from symnet.configs import AugmentConfig
from symnet.grid import CU_KALPHA1, PatternGrid
from symnet.peaks import PeakList
from symnet.render import Instrument, render

#: Cu Kα2 wavelength (Å, ASE's table) and its weight relative to Kα1.
CU_KALPHA2 = 1.54443
KALPHA2_WEIGHT = 0.5
#: Intensity of the strongest point of a pattern.
NORMALISATION = 1000.0


def paper_instrument(fwhm: float = 0.1) -> Instrument:
    """The paper's instrument: Cu Kα1, constant FWHM (degrees), η = 0.5."""
    return Instrument(lines=((CU_KALPHA1, 1.0),), caglioti=(0.0, 0.0, fwhm * fwhm), eta=0.5)


def random_instrument(rng: np.random.Generator, config: AugmentConfig) -> Instrument:
    """An instrument drawn from the ranges of ``config``."""
    fwhm = rng.uniform(*config.fwhm)
    lines = ((CU_KALPHA1, 1.0), (CU_KALPHA2, KALPHA2_WEIGHT)) if rng.random() < config.kalpha2_probability else None
    return Instrument(
        lines=lines or ((CU_KALPHA1, 1.0),),
        caglioti=(rng.uniform(*config.caglioti_u), 0.0, fwhm * fwhm),
        eta=rng.uniform(*config.eta),
        zero=rng.uniform(*config.zero),
        b_overall=rng.uniform(*config.b_overall),
    )


def random_background(rng: np.random.Generator, x: np.ndarray, shape: str) -> np.ndarray:
    """A non-negative background of maximum 1 on ``x`` in [0, 1], shape (n_points,).

    ``shape`` is ``"linear"``, ``"polynomial"`` (random positive cubic) or ``"amorphous"`` (decay + hump).
    """
    if shape == "linear":
        y = rng.uniform(0.0, 1.0) * (1.0 - x) + rng.uniform(0.0, 1.0) * x
    elif shape == "polynomial":
        y = np.polynomial.chebyshev.chebval(2.0 * x - 1.0, rng.normal(0.0, 1.0, 4))
        y -= y.min()
        y += rng.uniform(0.1, 1.0) * (y.max() + 1e-12)
    else:
        decay = np.exp(-x / rng.uniform(0.05, 0.5))
        hump = np.exp(-0.5 * ((x - rng.uniform(0.05, 0.4)) / rng.uniform(0.03, 0.15)) ** 2)
        y = rng.uniform(0.2, 1.0) * decay + rng.uniform(0.0, 1.0) * hump + rng.uniform(0.0, 0.3)
    return y / max(float(y.max()), 1e-12)


def make_pattern(
    peaks: PeakList, grid: PatternGrid, rng: np.random.Generator, config: AugmentConfig, paper: bool | None = None
) -> np.ndarray:
    """One training pattern on ``grid`` (full resolution), normalised to a maximum of 1000.

    Parameters
    ----------
    peaks : PeakList
    grid : PatternGrid
    rng : numpy.random.Generator
    config : AugmentConfig
    paper : bool, optional
        Force the paper's kind (True) or the augmented kind (False); by default drawn with
        ``config.paper_fraction``.

    Returns
    -------
    ndarray, shape (grid.n_points,), float64
    """
    if paper is None:
        paper = rng.random() < config.paper_fraction
    x = np.linspace(0.0, 1.0, grid.n_points)
    if paper:
        y = render(peaks.d_spacing, peaks.intensity, grid, paper_instrument(config.paper_fwhm))
        y /= max(float(y.max()), 1e-30)
        return NORMALISATION * _normalise(y + rng.uniform(*config.background) * random_background(rng, x, "linear"))
    intensity = peaks.intensity
    if config.intensity_jitter > 0:
        intensity = intensity * rng.lognormal(0.0, config.intensity_jitter, len(intensity))
    y = render(peaks.d_spacing, intensity, grid, random_instrument(rng, config))
    y /= max(float(y.max()), 1e-30)
    shape = ("linear", "polynomial", "amorphous")[int(rng.integers(3))]
    y += rng.uniform(*config.background) * random_background(rng, x, shape)
    if rng.random() < config.noise_probability:
        counts = float(np.exp(rng.uniform(*np.log(config.counts))))
        y = rng.poisson(_normalise(y) * counts) / counts
    if rng.random() < config.range_probability:
        two_theta = grid.two_theta
        y = np.where(
            (two_theta >= rng.uniform(*config.two_theta_min)) & (two_theta <= rng.uniform(*config.two_theta_max)),
            y,
            0.0,
        )
    return NORMALISATION * _normalise(y)


def _normalise(y: np.ndarray) -> np.ndarray:
    top = float(np.max(y))
    return y / top if top > 0 else y
