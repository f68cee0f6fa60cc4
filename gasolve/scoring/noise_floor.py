"""The χ² a model can reach at best with the given profile: every reflection's intensity free (Pawley-type).

With the cell, the peak shapes and the background basis fixed, the calculated profile is linear in the reflection
intensities and the background coefficients, so its best weighted least-squares fit is one bounded linear problem
(intensities >= 0). Its χ² is the level a right structure model approaches (a model only constrains the
intensities further) and the measure of "fits to the noise" on measured data, where the profile model's own misfit
keeps χ² above 1 (:mod:`gasolve.hypotheses.race`).
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import scipy.sparse

from gasolve.scoring.problem import ScoringProblem


def reflections_seen(problem: ScoringProblem) -> int:
    """Reflections with at least one profile point (the observations of Hamilton's test).

    Parameters
    ----------
    problem : ScoringProblem

    Returns
    -------
    int
    """
    return len(_seen(_peaks(problem)))


def _peaks(problem: ScoringProblem) -> scipy.sparse.csc_matrix:
    """The peak matrix (n_points, n_reflections) as a sparse column matrix."""
    return scipy.sparse.csc_matrix(problem.peak_matrix.to_sparse())


def _seen(peaks: scipy.sparse.csc_matrix) -> np.ndarray:
    """Indices of the reflections (columns) with at least one profile point."""
    return np.flatnonzero(np.asarray(abs(peaks).sum(axis=0)).ravel() > 0)


def free_intensity_chi2(problem: ScoringProblem, y_obs: np.ndarray, weights: np.ndarray) -> float:
    """χ² = Σ w (y_obs - y_fit)² / (N - P) of the free-intensity fit, P = reflections + background terms.

    Parameters
    ----------
    problem : ScoringProblem
        Its peak matrix (n_points, n_reflections) and background basis (n_points, n_terms).
    y_obs, weights : ndarray, shape (n_points,)

    Returns
    -------
    float
        At least a tiny positive number; reflections without any profile point are left out of P.
    """
    y_obs = np.asarray(y_obs, dtype=float)
    root = np.sqrt(np.asarray(weights, dtype=float))
    peaks = _peaks(problem)
    seen = _seen(peaks)
    design = peaks[:, seen].multiply(root[:, None]).toarray()
    target = root * y_obs
    basis = root[:, None] * np.asarray(problem.background_basis, dtype=float)
    if basis.shape[1]:  # the background is free in sign: project it out exactly, then fit intensities >= 0
        q, _ = np.linalg.qr(basis)
        design -= q @ (q.T @ design)
        target = target - q @ (q.T @ target)
    _, norm = scipy.optimize.nnls(design, target, maxiter=50 * design.shape[1])
    dof = max(len(y_obs) - design.shape[1] - basis.shape[1], 1)
    return max(norm**2 / dof, 1e-12)
