"""Batched L-BFGS for the Lamarckian local refinement of many models at once.

Each model keeps its own limited-memory curvature pairs and its own Armijo backtracking; every iteration
makes one batched objective + gradient call (plus one per backtracking round, for the models still
backtracking). Nocedal & Wright, Numerical Optimization (2006), algorithms 7.4 and 3.1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ObjectiveWithGradient = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class LocalResult:
    """Refined models.

    Attributes
    ----------
    x : ndarray, shape (n_models, n_genes)
    f : ndarray, shape (n_models,)
    gradient_calls : int
        Objective + gradient evaluations summed over models.
    """

    x: np.ndarray
    f: np.ndarray
    gradient_calls: int


def lbfgs(
    objective: ObjectiveWithGradient,
    x0: np.ndarray,
    steps: int,
    memory: int = 6,
    max_step: float = 0.05,
    armijo: float = 1e-4,
    backtracks: int = 4,
    f0: np.ndarray | None = None,
    g0: np.ndarray | None = None,
) -> LocalResult:
    """Minimise ``objective`` from each row of ``x0`` for ``steps`` iterations.

    Parameters
    ----------
    objective : callable
        (n, n_genes) -> (f (n,), gradient (n, n_genes)).
    x0 : ndarray, shape (n_models, n_genes)
    steps : int
        L-BFGS iterations.
    memory : int
        Curvature pairs kept per model.
    max_step : float
        Largest move of any gene in one step (fractional units); also the size of the first step.
    f0, g0 : optional values at x0, if already known.
    """
    x = np.array(x0, dtype=float)
    n, n_genes = x.shape
    calls = 0
    if f0 is None or g0 is None:
        f, g = objective(x)
        calls += n
    else:
        f, g = np.array(f0, float), np.array(g0, float)
    s_hist = np.zeros((memory, n, n_genes))
    y_hist = np.zeros((memory, n, n_genes))
    rho = np.zeros((memory, n))
    n_pairs = np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    for _ in range(steps):
        if not active.any():
            break
        # Two-loop recursion, batched; history index memory-1 is the newest pair, empty slots have rho = 0.
        q = g.copy()
        alpha = np.zeros((memory, n))
        for i in range(memory - 1, -1, -1):
            alpha[i] = rho[i] * np.einsum("ng,ng->n", s_hist[i], q)
            q -= alpha[i][:, None] * y_hist[i]
        yy = np.einsum("ng,ng->n", y_hist[-1], y_hist[-1])
        sy_last = np.einsum("ng,ng->n", s_hist[-1], y_hist[-1])
        first = (n_pairs == 0) | (yy <= 0)
        gamma = np.where(first, 1.0, sy_last / np.where(yy > 0, yy, 1.0))
        r = gamma[:, None] * q
        for i in range(memory):
            beta = rho[i] * np.einsum("ng,ng->n", y_hist[i], r)
            r += (alpha[i] - beta)[:, None] * s_hist[i]
        direction = -r
        slope = np.einsum("ng,ng->n", g, direction)
        uphill = slope >= 0
        direction[uphill] = -g[uphill]
        slope[uphill] = -np.einsum("ng,ng->n", g[uphill], g[uphill])
        biggest = np.max(np.abs(direction), axis=1)
        step = np.where(first | uphill, max_step, 1.0) * np.ones(n)
        step = np.minimum(step, max_step / np.maximum(biggest, 1e-300))
        x_new = x.copy()
        f_new = f.copy()
        g_new = g.copy()
        pending = active & (biggest > 0)
        for _attempt in range(backtracks + 1):
            idx = np.flatnonzero(pending)
            if idx.size == 0:
                break
            trial = x[idx] + step[idx, None] * direction[idx]
            f_trial, g_trial = objective(trial)
            calls += idx.size
            ok = f_trial <= f[idx] + armijo * step[idx] * slope[idx]
            accepted = idx[ok]
            x_new[accepted], f_new[accepted], g_new[accepted] = trial[ok], f_trial[ok], g_trial[ok]
            pending[accepted] = False
            step[idx[~ok]] *= 0.3
        moved = active & ~pending & (biggest > 0)
        active &= moved  # a model that could not decrease along its direction has converged (for our purpose)
        s = x_new - x
        y = g_new - g
        sy = np.einsum("ng,ng->n", s, y)
        good = moved & (sy > 1e-12 * np.einsum("ng,ng->n", y, y))
        rows = np.flatnonzero(good)
        for history, newest in ((s_hist, s), (y_hist, y), (rho, None)):
            history[:-1, rows] = history[1:, rows]
            history[-1, rows] = 1.0 / sy[rows] if newest is None else newest[rows]
        n_pairs[rows] += 1
        x, f, g = x_new, f_new, g_new
    return LocalResult(x=x, f=f, gradient_calls=calls)
