"""The noise of a powder profile, measured from its point-to-point scatter where σ understates it.

A peak search sets its thresholds in esds, so it trusts σ. Counting data with σ = √y (or a file's esd column)
deserve that trust; a normalised pattern does not: its scale is arbitrary (the RRUFF patterns are stored with a
maximum of 1000, and a user may rescale them), so σ = √y of the stored numbers says nothing about the real
counting statistics, and the same pattern gave 27 lines at one scale and 80 at another. Such patterns often have
their background subtracted as well, which leaves the background's noise on points near zero.

The scatter tells the noise. For a profile sampled at several points per FWHM, the second difference
d[i] = y[i-1] - 2 y[i] + y[i+1] of the smooth signal is small against that of the noise, and d/√6 has the
variance of one point's noise where it changes slowly. The noise is modelled as Poissonian-Gaussian (Foi,
Trimeche, Katkovnik & Egiazarian, IEEE Trans. Image Process. 17 (2008) 1737-1754: the variance of raw sensor data
is a + b·signal), with σ² standing for the signal:

    var(y[i]) = a + b σ[i]²,   a ≥ 0 (noise independent of the level, e.g. a subtracted background's), b ≥ 0 (a gain),

fitted by non-negative least squares to robust variances (3σ-clipped) of d/√6 in ``N_BINS`` bins of equal counts
over the points ordered by the local mean of σ² (over ``LEVEL_WINDOW`` points: ordering by a point's own σ², which
counting statistics take from its own y, would select its noise as well), leaving out the top ``PEAK_SHARE`` of the
points, where the peaks' curvature adds to the second differences. σ is then replaced by √max(σ², a + b σ²): never
made smaller, because a scatter below σ comes from correlated points (binned or merged synchrotron data, about 0.65
of σ on the 11-BM patterns here; smoothed or interpolated profiles), not from noise smaller than its esd. Nor is σ
replaced when the model raises it by less than ``MIN_INFLATION`` (median over the points): σ is trusted unless the
scatter clearly contradicts it (:func:`noise_model`).

Measured on the shared patterns (median factor σ_new/σ of the fitted model): counting data 1.00-1.07 (NIST LaB6,
corundum, PbSO4, silver behenate, SRM 1976b, gypsum, cement; σ kept), the two Si3N4 patterns of the GSAS-II
tutorial 1.27 and 1.36 (replaced), the 11-BM patterns 1.00 (their esds exceed the scatter); RRUFF patterns
written at 10⁴ counts at the maximum with σ = √y: 3.2-6.3, a gain of 9.5 (the factor 10 by which they were
rescaled) on three of them, and an additive term on those whose background was subtracted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import scipy.optimize
import scipy.stats

if TYPE_CHECKING:
    from gasolve.io.patterns import ObservedPattern

#: σ is replaced only when the model raises it by at least this factor (median over the points): the shared
#: measured counting patterns come out at 1.00-1.07 (fitted gains up to 1.14: curvature left in the second
#: differences, slightly correlated points), and a model that matches them within that is not evidence against σ.
#: The two Si3N4 patterns of the GSAS-II tutorial (1.27, 1.36) lie just above it.
MIN_INFLATION = 1.25
#: Points a reliable estimate needs (robust variances of fewer are too coarse to act on).
MIN_POINTS = 200
#: Bins of equal counts over σ² in which the scatter is measured.
N_BINS = 8
#: Points over which σ² is averaged to order the points by level.
LEVEL_WINDOW = 21
#: Share of the points (highest σ², i.e. the peaks) left out of the fit.
PEAK_SHARE = 0.2
#: Deviates beyond this many standard deviations are clipped (peaks' curvature, spikes) ...
CLIP = 3.0
#: ... and the variance of a normal distribution clipped at ±CLIP is this share of the whole:
#: 1 - 2 c φ(c) / (2 Φ(c) - 1) (truncated normal), 0.973337 at c = 3.
_CLIPPED_SHARE = 1.0 - 2.0 * CLIP * scipy.stats.norm.pdf(CLIP) / (2.0 * scipy.stats.norm.cdf(CLIP) - 1.0)
#: Clipping rounds.
_ROUNDS = 10


@dataclass(frozen=True)
class NoiseModel:
    """Variance of one point's noise, ``additive + gain * σ²`` (σ the stated esd), never below σ².

    Attributes
    ----------
    additive : float
        a (squared pattern units), ≥ 0.
    gain : float
        b (dimensionless), ≥ 0; 1 with ``additive`` 0 for counting data whose σ is right.
    """

    additive: float = 0.0
    gain: float = 1.0

    def sigma(self, sigma: np.ndarray) -> np.ndarray:
        """σ scaled to the noise, never smaller: √max(σ², a + b σ²), shape of ``sigma``."""
        sigma = np.asarray(sigma, dtype=float)
        return np.sqrt(np.maximum(sigma**2, self.additive + self.gain * sigma**2))

    def inflation(self, sigma: np.ndarray) -> float:
        """Median of the factor σ_new/σ over the points (≥ 1)."""
        sigma = np.asarray(sigma, dtype=float)
        return float(np.median(self.sigma(sigma) / sigma))


def clipped_variance(z: np.ndarray) -> float:
    """Variance of normal deviates among outliers, by iterated 3σ clipping, corrected for the clipping.

    Unlike the median absolute deviation it stays fine-grained on quantised profiles (integers near zero).

    Parameters
    ----------
    z : ndarray, shape (n,)

    Returns
    -------
    float
    """
    z = np.asarray(z, dtype=float)
    centre, variance = float(np.median(z)), float(np.var(z))
    for _ in range(_ROUNDS):
        inside = np.abs(z - centre) <= CLIP * np.sqrt(variance)
        if np.count_nonzero(inside) < 2:
            break
        centre = float(np.mean(z[inside]))
        updated = float(np.mean((z[inside] - centre) ** 2)) / _CLIPPED_SHARE
        if updated == variance:
            break
        variance = updated
    return variance


def fit_noise_model(y: np.ndarray, sigma: np.ndarray) -> NoiseModel:
    """Poissonian-Gaussian noise of a profile from its second differences (module docstring).

    Parameters
    ----------
    y : ndarray, shape (n_points,)
        Profile on an even 2θ grid (counts or arbitrary units).
    sigma : ndarray, shape (n_points,)
        Its stated standard uncertainties (same units), positive.

    Returns
    -------
    NoiseModel
        The fitted model; σ as stated (a = 0, b = 1) for fewer than ``MIN_POINTS`` points or a profile without
        scatter.
    """
    y = np.asarray(y, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    if len(y) < MIN_POINTS:
        return NoiseModel()
    deviate = (y[:-2] - 2.0 * y[1:-1] + y[2:]) / np.sqrt(6.0)
    stated = (sigma[:-2] ** 2 + 4.0 * sigma[1:-1] ** 2 + sigma[2:] ** 2) / 6.0
    # Binned by a local mean of σ², not by a point's own σ² (from its own noisy y under counting statistics):
    # selecting points by their own value would select their noise too, and bias the variance low.
    window = np.ones(LEVEL_WINDOW) / LEVEL_WINDOW
    local = np.convolve(sigma**2, window, mode="same")[1:-1]
    order = np.argsort(local, kind="stable")[: round((1.0 - PEAK_SHARE) * len(stated))]
    levels, variances = [], []
    for part in np.array_split(order, N_BINS):
        levels.append(float(np.mean(stated[part])))
        variances.append(clipped_variance(deviate[part]))
    levels_array, variances_array = np.array(levels), np.array(variances)
    if not np.any(variances_array > 0):
        return NoiseModel()
    # Each bin's robust variance has a relative error of about the same size: weight by 1/variance.
    weight = 1.0 / np.maximum(variances_array, 1e-12 * variances_array.max())
    design = np.column_stack([np.ones_like(levels_array), levels_array]) * weight[:, None]
    (additive, gain), _ = scipy.optimize.nnls(design, variances_array * weight)
    return NoiseModel(float(additive), float(gain))


def noise_model(y: np.ndarray, sigma: np.ndarray) -> NoiseModel:
    """The fitted noise model when it raises σ by at least ``MIN_INFLATION``, else σ as stated.

    Parameters
    ----------
    y : ndarray, shape (n_points,)
        Profile on an even 2θ grid.
    sigma : ndarray, shape (n_points,)
        Its stated standard uncertainties, positive.

    Returns
    -------
    NoiseModel
    """
    fitted = fit_noise_model(y, sigma)
    return fitted if fitted.inflation(sigma) >= MIN_INFLATION else NoiseModel()


def calibrated_pattern(pattern: ObservedPattern) -> tuple[ObservedPattern, NoiseModel]:
    """The pattern with σ from :func:`noise_model` (unchanged when σ describes the scatter), and the model.

    Parameters
    ----------
    pattern : gasolve.io.patterns.ObservedPattern

    Returns
    -------
    pattern : ObservedPattern
        The same points with σ scaled to the noise where the scatter clearly exceeds it; the same object when not.
    model : NoiseModel
        :func:`noise_model`'s; ``model.inflation(pattern.sigma)`` is the median factor applied (1 when none).
    """
    model = noise_model(pattern.y_obs, pattern.sigma)
    if model == NoiseModel():
        return pattern, model
    return replace(pattern, sigma=model.sigma(pattern.sigma)), model


def calibration_note(model: NoiseModel, sigma: np.ndarray) -> str | None:
    """What a command says when σ was scaled.

    Parameters
    ----------
    model : NoiseModel
        :func:`calibrated_pattern`'s model.
    sigma : ndarray, shape (n_points,)
        The stated σ it scaled (pattern units).

    Returns
    -------
    str or None
        The note, with the median factor; None when σ was kept.
    """
    if model == NoiseModel():
        return None
    return (
        f"the points scatter {model.inflation(sigma):.1f} times more than their esds say (a normalised or rescaled "
        "pattern, or a subtracted background?): σ is taken from the scatter"
    )
