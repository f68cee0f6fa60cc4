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
