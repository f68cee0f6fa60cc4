"""Agreement indices of a fitted profile (Young, The Rietveld Method, IUCr/OUP 1993, ch. 1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
