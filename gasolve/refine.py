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

from gasolve.crystal.origin import origin_fixing_slots
from gasolve.scoring.protocol import ModelScorer
from gasolve.threads import blas_single_thread


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


def refine_coordinates(
    scorer: ModelScorer, frac: np.ndarray, max_iterations: int = 500, fixed: np.ndarray | None = None
) -> Refinement:
    """Refine the fractional coordinates (n_sites, 3) of one model by least squares on the full profile.

    ``fixed`` (3 n_sites,), bool, optional: coordinates held at their given value, such as the ones that pin the
    origin of a polar group (:func:`gasolve.crystal.origin.origin_fixing_slots`), as refinement programs do.
    """
    frac = np.asarray(frac, dtype=float)
    shape = frac.shape
    start = frac.ravel()
    bounds = None
    if fixed is not None and np.any(fixed):
        bounds = [(x, x) if hold else (None, None) for x, hold in zip(start, np.asarray(fixed, bool), strict=True)]

    def objective(x):
        rwp, gradient = scorer.rwp_and_gradient(x.reshape(1, *shape))
        return float(rwp[0]), gradient[0].ravel()

    before = float(scorer.rwp(frac[None])[0])
    with blas_single_thread():  # L-BFGS-B's vector operations must not contend with the kernels' threads
        result = scipy.optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
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


UNDETERMINED_ESD = 0.1
"""An esd above this (fractional units, about 1 Å in a 10 Å cell) says the data do not determine the coordinate;
it is reported as absent rather than rounded to."""


def coordinate_esds(scorer, frac: np.ndarray, step: float = 1e-5, origin_fixed: np.ndarray | None = None) -> np.ndarray:
    """Standard uncertainties of refined fractional coordinates from the least-squares normal matrix.

    The Jacobian of the weighted residual √w (y_obs - y_calc), with scale and background at their optimum for
    every model (variable projection), is taken by central differences over the free coordinates; then
    cov = (JᵀJ)⁺ Σ w Δ² / (N - P), P counting the free coordinates, the scale and the background terms
    (Prince, Mathematical Techniques in Crystallography, ch. 8). For sites on special positions the free
    parameters come from the scorer's site map and the covariance is carried to x, y, z through it.

    In a polar group the origin floats and JᵀJ is singular along the shift of every atom; the origin is held as
    refinement programs do, by the heaviest atom's coordinates along the polar directions
    (:func:`gasolve.crystal.origin.origin_fixing_slots`), and the esds of the rest are relative to it. Any
    parameter the data still leave undetermined (in the null space of J, by singular value decomposition, or
    with an esd above :data:`UNDETERMINED_ESD`) gets no esd: a pseudo-inverse gives the others, never a number
    for it.

    Parameters
    ----------
    scorer : Scorer or MappedScorer
    frac : ndarray, shape (n_sites, 3)
        Refined coordinates (a projected genome for a MappedScorer).
    step : float
        Central-difference step (fractional units).
    origin_fixed : ndarray, shape (3 n_sites,), bool, optional
        Genome slots that hold the origin; by default those of
        :func:`~gasolve.crystal.origin.origin_fixing_slots` for the scorer's group, elements and site map.

    Returns
    -------
    ndarray, shape (n_sites, 3)
        esd of each coordinate (fractional units): 0 where the Wyckoff position fixes it, NaN where it is not
        determined (the coordinates that hold the origin, and those the data leave free).
    """
    frac = np.asarray(frac, dtype=float)
    site_map = scorer.site_map
    problem = scorer.problem
    if origin_fixed is None:
        origin_fixed = origin_fixing_slots(
            problem.space_group, problem.elements, None if site_map is None else site_map.matrix
        )
    symmetry_fixed = np.zeros(frac.size, dtype=bool) if site_map is None else site_map.fixed
    indices = np.flatnonzero(~symmetry_fixed & ~np.asarray(origin_fixed, dtype=bool))
    covariance = np.zeros((frac.size, frac.size))
    determined = symmetry_fixed.copy()
    if len(indices):
        trials = np.repeat(frac.reshape(1, -1), 2 * len(indices), axis=0)
        trials[np.arange(len(indices)), indices] += step
        trials[len(indices) + np.arange(len(indices)), indices] -= step
        root_w = np.sqrt(problem.pattern.weights)
        difference = scorer.profiles(trials.reshape(len(trials), *frac.shape)).difference
        jacobian = -(difference[: len(indices)] - difference[len(indices) :]).T * root_w[:, None] / (2.0 * step)
        residual = scorer.profiles(frac[None]).difference[0] * root_w
        dof = max(len(residual) - len(indices) - 1 - problem.background_terms, 1)
        inverse, estimable = _normal_pseudo_inverse(jacobian)
        covariance[np.ix_(indices, indices)] = inverse * float(residual @ residual) / dof
        determined[indices] = estimable
    transform = np.eye(frac.size)
    if site_map is not None:  # x = M g + t per site: cov_x = M cov_g Mᵀ
        for i, block in enumerate(site_map.matrix):
            transform[3 * i : 3 * i + 3, 3 * i : 3 * i + 3] = block
    esd = np.sqrt(np.maximum(np.diag(transform @ covariance @ transform.T), 0.0))
    # A coordinate fed by an undetermined slot (origin-fixing or free of the data) is undetermined itself.
    esd[(np.abs(transform) @ (~determined).astype(float)) > 0] = np.nan
    esd[esd > UNDETERMINED_ESD] = np.nan
    return esd.reshape(frac.shape)


def _normal_pseudo_inverse(jacobian: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """(JᵀJ)⁺ and which parameters the data determine.

    Columns are scaled to unit norm first (the covariance of determined parameters is invariant to that, the
    conditioning is not); a parameter is determined when its unit vector has no component in the null space of J
    (then its variance from any generalised inverse is the same). Rows and columns of the others are zeroed.

    Parameters
    ----------
    jacobian : ndarray, shape (n_points, n_parameters)

    Returns
    -------
    inverse : ndarray, shape (n_parameters, n_parameters)
    determined : ndarray, shape (n_parameters,), bool
    """
    n_parameters = jacobian.shape[1]
    norms = np.linalg.norm(jacobian, axis=0)
    active = norms > 0
    inverse = np.zeros((n_parameters, n_parameters))
    determined = np.zeros(n_parameters, dtype=bool)
    if not np.any(active):
        return inverse, determined
    scaled = jacobian[:, active] / norms[active]
    # Only V is needed: the thin decomposition gives all of it when there are at least as many points as
    # parameters (a full one would also build U, n_points x n_points: 450 MB and seconds for 7,500 points).
    _, singular, vt = np.linalg.svd(scaled, full_matrices=scaled.shape[0] < scaled.shape[1])
    singular = np.concatenate([singular, np.zeros(vt.shape[0] - len(singular))])
    kept = singular > rcond * singular[0]
    null = vt[~kept]
    estimable = np.linalg.norm(null, axis=0) < 1e-6 if len(null) else np.ones(vt.shape[1], dtype=bool)
    block = (vt[kept].T / singular[kept] ** 2) @ vt[kept] / np.outer(norms[active], norms[active])
    block[~estimable, :] = 0.0
    block[:, ~estimable] = 0.0
    inverse[np.ix_(active, active)] = block
    determined[active] = estimable
    return inverse, determined
