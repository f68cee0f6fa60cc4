"""Final least-squares refinement of coordinates against the full profile.

Scale and background are eliminated exactly (variable projection: they are the linear least-squares optimum
for every set of coordinates, Golub & Pereyra, SIAM J. Numer. Anal. 10 (1973) 413), so minimising Rwp over the
coordinates is the weighted least-squares refinement of all of them. L-BFGS-B with the engine's analytic
gradient, to convergence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize

from gasolve.scoring import Scorer


@dataclass(frozen=True)
class Refinement:
    """Result of refining one model.

    Attributes
    ----------
    frac : ndarray, shape (n_sites, 3)
        Refined fractional coordinates, wrapped into [0, 1).
    rwp_before, rwp_after : float
    iterations, evaluations : int
    """

    frac: np.ndarray
    rwp_before: float
    rwp_after: float
    iterations: int
    evaluations: int


def refine_coordinates(scorer: Scorer, frac: np.ndarray, max_iterations: int = 500) -> Refinement:
    """Refine the fractional coordinates (n_sites, 3) of one model by least squares on the full profile."""
    frac = np.asarray(frac, dtype=float)
    shape = frac.shape

    def objective(x):
        rwp, gradient = scorer.rwp_and_gradient(x.reshape(1, *shape))
        return float(rwp[0]), gradient[0].ravel()

    before = float(scorer.rwp(frac[None])[0])
    result = scipy.optimize.minimize(
        objective,
        frac.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iterations, "ftol": 1e-12, "gtol": 1e-9},
    )
    refined = result.x.reshape(shape)
    after = float(scorer.rwp(refined[None])[0])
    if after > before:  # never hand back something worse than the input
        refined, after = frac, before
    return Refinement(refined - np.floor(refined), before, after, int(result.nit), int(result.nfev))


def distinct_best(genomes: np.ndarray, rwp: np.ndarray, n: int, tolerance: float = 1e-4) -> np.ndarray:
    """Indices of the ``n`` lowest-Rwp genomes whose Rwp differ pairwise by more than ``tolerance``."""
    chosen: list[int] = []
    for i in np.argsort(rwp, kind="stable"):
        if all(abs(rwp[i] - rwp[j]) > tolerance for j in chosen):
            chosen.append(int(i))
        if len(chosen) == n:
            break
    return np.array(chosen, dtype=int)


def coordinate_esds(scorer, frac: np.ndarray, step: float = 1e-5) -> np.ndarray:
    """Standard uncertainties of refined fractional coordinates from the least-squares normal matrix.

    The Jacobian of the weighted residual √w (y_obs - y_calc), with scale and background at their optimum for
    every model (variable projection), is taken by central differences over the free coordinates; then
    cov = (JᵀJ)⁻¹ Σ w Δ² / (N - P), P counting the free coordinates, the scale and the background terms
    (Prince, Mathematical Techniques in Crystallography, ch. 8). For sites on special positions the free
    parameters come from the scorer's site map and the covariance is carried to x, y, z through it.

    Parameters
    ----------
    scorer : Scorer or MappedScorer
    frac : ndarray, shape (n_sites, 3)
        Refined coordinates (a projected genome for a MappedScorer).
    step : float
        Central-difference step (fractional units).

    Returns
    -------
    ndarray, shape (n_sites, 3)
        esd of each coordinate (fractional units); 0 where the position fixes it, NaN if the normal matrix is
        singular.
    """
    frac = np.asarray(frac, dtype=float)
    site_map = getattr(scorer, "site_map", None)
    free = np.ones(frac.size, dtype=bool) if site_map is None else ~site_map.fixed
    indices = np.flatnonzero(free)
    trials = np.repeat(frac.reshape(1, -1), 2 * len(indices), axis=0)
    trials[np.arange(len(indices)), indices] += step
    trials[len(indices) + np.arange(len(indices)), indices] -= step
    problem = scorer.problem
    root_w = np.sqrt(problem.pattern.weights)
    difference = scorer.profiles(trials.reshape(len(trials), *frac.shape)).difference
    jacobian = -(difference[: len(indices)] - difference[len(indices) :]).T * root_w[:, None] / (2.0 * step)
    residual = scorer.profiles(frac[None]).difference[0] * root_w
    dof = max(len(residual) - len(indices) - 1 - problem.n_background, 1)
    try:
        covariance = np.linalg.inv(jacobian.T @ jacobian) * float(residual @ residual) / dof
    except np.linalg.LinAlgError:
        return np.full(frac.shape, np.nan)
    full = np.zeros((frac.size, frac.size))
    full[np.ix_(indices, indices)] = covariance
    if site_map is not None:  # x = M g + t per site: cov_x = M cov_g Mᵀ
        blocks = site_map.matrix
        n_sites = len(blocks)
        transform = np.zeros((frac.size, frac.size))
        for i in range(n_sites):
            transform[3 * i : 3 * i + 3, 3 * i : 3 * i + 3] = blocks[i]
        full = transform @ full @ transform.T
    return np.sqrt(np.maximum(np.diag(full), 0.0)).reshape(frac.shape)
