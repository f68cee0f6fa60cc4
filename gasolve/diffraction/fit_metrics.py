"""Agreement indices of a fitted profile (Young, The Rietveld Method, IUCr/OUP 1993, ch. 1).

The Bragg R factor compares calculated integrated intensities with "observed" ones obtained, as in Rietveld's
program, by sharing the observed counts above background among the reflections in proportion to their
calculated contributions at each point: I_k^obs = Σ_i P_ik I_k (y_i - b_i) / Σ_j P_ij I_j.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse


@dataclass(frozen=True)
class FitMetrics:
    """Rwp, Rp, Rexp and reduced χ² of one fit."""

    rwp: float
    rp: float
    rexp: float
    chi2: float
    n_points: int
    n_parameters: int


def fit_metrics(y_obs: np.ndarray, y_calc: np.ndarray, weights: np.ndarray, n_parameters: int) -> FitMetrics:
    """Rwp = sqrt(Σw(yo-yc)²/Σw yo²), Rp = Σ|yo-yc|/Σ|yo|, Rexp = sqrt((N-P)/Σw yo²), χ² = Σw(yo-yc)²/(N-P)."""
    residual = y_obs - y_calc
    chi = float(np.sum(weights * residual**2))
    norm = float(np.sum(weights * y_obs**2))
    dof = max(len(y_obs) - n_parameters, 1)
    return FitMetrics(
        rwp=float(np.sqrt(chi / norm)),
        rp=float(np.sum(np.abs(residual)) / np.sum(np.abs(y_obs))),
        rexp=float(np.sqrt(dof / norm)),
        chi2=chi / dof,
        n_points=len(y_obs),
        n_parameters=n_parameters,
    )


def bragg_r(
    peak_matrix: scipy.sparse.spmatrix, intensities: np.ndarray, y_obs: np.ndarray, background: np.ndarray
) -> float:
    """R_B = Σ_k |I_k^obs - I_k^calc| / Σ_k I_k^obs over reflections (module docstring).

    Parameters
    ----------
    peak_matrix : sparse matrix, shape (n_points, n_refl)
        Unit-intensity peak of each reflection.
    intensities : ndarray, shape (n_refl,)
        Calculated intensities, scale included, so that the peak part of y_calc is ``peak_matrix @ intensities``.
    y_obs, background : ndarray, shape (n_points,)
    """
    p = scipy.sparse.csc_matrix(peak_matrix)
    peaks = p @ intensities
    ratio = np.divide(y_obs - background, peaks, out=np.zeros_like(peaks), where=peaks > 1e-12 * np.max(peaks))
    area = np.asarray(p.sum(axis=0)).ravel()
    observed = intensities * (p.T @ ratio)
    calculated = intensities * area
    return float(np.sum(np.abs(observed - calculated)) / np.sum(np.abs(observed)))
