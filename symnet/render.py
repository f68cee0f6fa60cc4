"""Peak list -> powder profile on a uniform 2θ grid (Numba), with the engine's peak shape and LP factor.

y(2θ) = Σ_lines w_line Σ_k I_k exp(-2 B s_k²) LP(2θ_k) pV(2θ - 2θ_k - zero; H_k, η_k), with the pseudo-Voigt,
Caglioti width and Lorentz-polarisation of :mod:`gasolve.diffraction.profile` and
:mod:`gasolve.diffraction.intensity`, s_k = 1 / (2 d_k) (Å⁻¹) and an overall displacement parameter B (Å²).
Peaks are cut at ``cutoff`` FWHM from their centre, as in the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from gasolve.diffraction.intensity import lorentz_polarisation
from symnet.grid import PatternGrid

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class Instrument:
    """Everything that turns a peak list into a profile.

    Attributes
    ----------
    lines : tuple of (wavelength Å, weight)
        Emission lines; Kα1 alone or with Kα2 at weight ~0.5.
    caglioti : (U, V, W)
        FWHM² = U tan²θ + V tanθ + W, degrees².
    eta : float
        Lorentzian fraction of the pseudo-Voigt, at 2θ = 0.
    eta_slope : float
        Change of η per degree 2θ.
    zero : float
        Zero shift (degrees).
    b_overall : float
        Extra isotropic displacement parameter B (Å²) applied to every peak.
    monochromator_two_theta : float
        2θ_M (degrees) of the LP factor; 0 for none.
    cutoff : float
        Peak tails cut at this many FWHM.
    """

    lines: tuple[tuple[float, float], ...] = ((1.5405981, 1.0),)
    caglioti: tuple[float, float, float] = (0.0, 0.0, 0.01)
    eta: float = 0.5
    eta_slope: float = 0.0
    zero: float = 0.0
    b_overall: float = 0.0
    monochromator_two_theta: float = 0.0
    cutoff: float = 15.0


def render(
    d_spacing: np.ndarray,
    intensity: np.ndarray,
    grid: PatternGrid,
    instrument: Instrument,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Profile of one peak list on ``grid``.

    Parameters
    ----------
    d_spacing : ndarray, shape (n_peaks,)
        Å.
    intensity : ndarray, shape (n_peaks,)
        m |F|² (any scale).
    grid : PatternGrid
    instrument : Instrument
    out : ndarray, shape (grid.n_points,), float64, optional
        Buffer to overwrite.

    Returns
    -------
    ndarray, shape (grid.n_points,)
        Peak part of the pattern (no background), same scale as ``intensity`` times LP.
    """
    d_spacing = np.asarray(d_spacing, dtype=np.float64)
    intensity = np.asarray(intensity, dtype=np.float64)
    if d_spacing.shape != intensity.shape or d_spacing.ndim != 1:
        raise ValueError("d_spacing and intensity must be 1-D arrays of the same length")
    if out is None:
        out = np.zeros(grid.n_points)
    else:
        out[:] = 0.0
    u, v, w = instrument.caglioti
    debye_waller = intensity * np.exp(-2.0 * instrument.b_overall * 0.25 / d_spacing**2)
    for wavelength, weight in instrument.lines:
        sine = wavelength / (2.0 * d_spacing)
        valid = sine < 1.0
        bragg = 2.0 * np.degrees(np.arcsin(sine[valid]))
        tan_theta = np.tan(np.radians(bragg) / 2.0)
        fwhm = np.sqrt(np.maximum(u * tan_theta**2 + v * tan_theta + w, 1e-8))
        centre = bragg + instrument.zero
        eta = np.clip(instrument.eta + instrument.eta_slope * centre, 0.0, 1.0)
        height = weight * debye_waller[valid] * lorentz_polarisation(bragg, instrument.monochromator_two_theta)
        _accumulate(grid.start, grid.step, centre, fwhm, eta, height, float(instrument.cutoff), out)
    return out


@numba.njit(cache=True, fastmath=True, nogil=True)
def _accumulate(start, step, centre, fwhm, eta, height, cutoff, out):  # pragma: no cover - compiled
    n_points = out.shape[0]
    gauss_norm = 2.0 * math.sqrt(_LN2 / math.pi)
    for k in range(centre.shape[0]):
        reach = cutoff * fwhm[k]
        first = max(math.ceil((centre[k] - reach - start) / step - 1e-9), 0)
        last = min(math.floor((centre[k] + reach - start) / step + 1e-9), n_points - 1)
        if last < first:
            continue
        inv = 1.0 / fwhm[k]
        g_amp = (1.0 - eta[k]) * gauss_norm * inv * height[k]
        l_amp = eta[k] * 2.0 / math.pi * inv * height[k]
        for i in range(first, last + 1):
            x = start + step * i - centre[k]
            if abs(x) > reach:
                continue
            z = 4.0 * x * x * inv * inv
            out[i] += g_amp * math.exp(-_LN2 * z) + l_amp / (1.0 + z)
