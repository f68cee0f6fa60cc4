"""Damped Gauss-Newton (Levenberg-Marquardt) on the non-linear parameters, scale and background eliminated.

For every vector x the scale s and the background c are the weighted linear least-squares optimum (variable
projection, Golub & Pereyra, SIAM J. Numer. Anal. 10 (1973) 413). The step uses Kaufman's Jacobian
(BIT 15 (1975) 49): J = Π √w s ∂(P I)/∂x, with Π the projector orthogonal to the weighted linear columns
[P I, B], so that the step of x is the Gauss-Newton step of the full problem with s and c re-optimised.
Marquardt's damping (J.N. Marquardt, SIAM J. Appl. Math. 11 (1963) 431) scales λ by diag(JᵀJ), which makes the
step independent of the parameters' units. Restraints add rows (target - value)/σ to the residual and their
derivatives to J; they do not involve the scale or background, so the projection leaves them as they are.

Bounds: a step is cut back to the box bounds (B >= 0, ...), and a step that would break a linear constraint of the
model (:meth:`RietveldModel.linear_constraints`: η + slope·2θ in [0, 1] at the data's ends) is held to it, at the
minimum of the damped quadratic model on the constraint, so that the refinement slides along it instead of
stopping there.

Convergence, as in GSAS: every shift below ``shift_tolerance`` times its esd on an accepted step that was not
heavily damped (λ <= 1: a damped step is short because of λ), or a relative change of χ² below
``chi2_tolerance``, or no step along the damped directions lowers χ² any more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gasolve.errors import InputError
from gasolve.rietveld.model import RietveldModel

#: A step held to a linear constraint stops this far inside it (in the constraint's units: η).
CONSTRAINT_MARGIN = 1e-9
#: Columns whose normalised singular value falls below this are taken as undetermined (singular normal matrix).
SINGULAR_RCOND = 1e-9


class SingularMatrixError(InputError):
    """The normal matrix is singular: the data cannot determine the named parameters together.

    Attributes
    ----------
    parameters : list of str
        Parameters in the null space of the normal matrix.
    last_sound : ndarray
        The last vector for which the refinement was sound (kept as the result).
    """

    def __init__(self, parameters: list[str], last_sound: np.ndarray):
        self.parameters = parameters
        self.last_sound = last_sound
        super().__init__(
            "the normal matrix is singular: the data cannot determine "
            + ", ".join(parameters)
            + " together (too many parameters for the data, or parameters that do the same thing); "
            "fix one of them or constrain them. The last sound model is kept"
        )


@dataclass(frozen=True)
class LMResult:
    """Outcome of one least-squares run.

    Attributes
    ----------
    x : ndarray, shape (n_parameters,)
    chi2_history : tuple of float
        Σ w Δ² (restraints included) after each accepted step (first entry: the start).
    pattern_chi2_history : tuple of float
        The pattern's part of it.
    converged : bool
    iterations : int
    max_shift_over_esd : float
        Of the last accepted step.
    """

    x: np.ndarray
    chi2_history: tuple[float, ...]
    pattern_chi2_history: tuple[float, ...]
    converged: bool
    iterations: int
    max_shift_over_esd: float


def projected_jacobian(model: RietveldModel, x: np.ndarray, free: np.ndarray):
    """Kaufman's Jacobian J (n_points + n_restraints, n_free), the weighted residual r (pattern, then restraints)
    and the linear fit at ``x``."""
    fit = model.linear_fit(x)
    root_w = model.root_w
    residual = root_w * (model.pattern.y_obs - fit.y_calc)
    derivative = model.scaled_derivatives(x, free, fit) * root_w[:, None]
    linear = model.linear_columns(fit) * root_w[:, None]
    q, _ = np.linalg.qr(linear)
    jacobian = derivative - q @ (q.T @ derivative)
    if len(model.restraints):
        jacobian = np.vstack([jacobian, model.restraint_jacobian(x, free)])
        residual = np.concatenate([residual, model.restraint_residuals(x)])
    return jacobian, residual, fit


def null_parameters(jacobian: np.ndarray, names: list[str], rcond: float = SINGULAR_RCOND) -> list[str]:
    """Names of the parameters in the numerical null space of ``jacobian`` (columns scaled to unit norm)."""
    norms = np.linalg.norm(jacobian, axis=0)
    dead = [names[i] for i in np.flatnonzero(norms == 0)]
    live = np.flatnonzero(norms > 0)
    if len(live):
        _, singular, vt = np.linalg.svd(jacobian[:, live] / norms[live], full_matrices=False)
        null = vt[singular < rcond * singular[0]]
        involved = np.flatnonzero(np.any(np.abs(null) > 0.1, axis=0)) if len(null) else []
        dead += [names[live[i]] for i in involved]
    return dead


def _onto_constraints(
    damped_normal: np.ndarray, step: np.ndarray, x: np.ndarray, free: np.ndarray, constraints
) -> np.ndarray:
    """The damped step, held to the linear constraints A x <= b it would break: the minimum of the damped
    quadratic model on their boundary, s - M⁻¹Aᵀ (A M⁻¹ Aᵀ)⁻¹ (A s - (b - A x)), so that the refinement slides
    along a bound (η of the profile reaching 1 at the end of the data) rather than stopping at it. A constraint
    that involves no free parameter is left out."""
    matrix, bound = constraints
    if not len(bound):
        return step
    rows = matrix[:, free]
    room = bound - matrix @ x - CONSTRAINT_MARGIN
    involved = np.any(rows != 0, axis=1)
    active = np.zeros(len(bound), dtype=bool)
    for _ in range(len(bound)):
        broken = involved & ~active & (rows @ step > room)
        if not np.any(broken):
            break
        active |= broken
        a = rows[active]
        inverse_at = np.linalg.solve(damped_normal, a.T)  # M⁻¹Aᵀ
        multiplier = np.linalg.lstsq(a @ inverse_at, a @ step - room[active], rcond=None)[0]
        step = step - inverse_at @ multiplier
    return step


def levenberg_marquardt(
    model: RietveldModel,
    x: np.ndarray,
    free: np.ndarray,
    max_iterations: int = 30,
    shift_tolerance: float = 0.01,
    chi2_tolerance: float = 1e-7,
    damping: float = 1e-3,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> LMResult:
    """Refine the entries ``free`` of ``x`` by damped Gauss-Newton (module docstring).

    Parameters
    ----------
    model : RietveldModel
    x : ndarray, shape (n_parameters,)
        Start; the other entries stay fixed.
    free : ndarray of int
    lower, upper : ndarray, shape (n_parameters,), optional
        Bounds (e.g. B >= 0, Suortti's p <= 1): a step is cut back to them. A specimen-correction parameter that
        has no effect where its partner stands (:meth:`RietveldModel.dormant`, e.g. Suortti's p at q = 0) is held
        for that cycle.

    Raises
    ------
    SingularMatrixError
        Naming the parameters the data cannot determine; ``last_sound`` is ``x`` as it stood.
    """
    x = np.asarray(x, dtype=float).copy()
    free = np.asarray(free, dtype=int)
    chi2 = model.chi2(x)
    if not np.isfinite(chi2):
        raise InputError("the starting model gives no valid pattern (check the profile: FWHM² > 0, η in [0, 1])")
    history = [chi2]
    pattern_history = [model.pattern_chi2(x)]
    if len(free) == 0:
        return LMResult(x, tuple(history), tuple(pattern_history), True, 0, 0.0)
    all_free = free
    dof = max(
        model.pattern.n_points + len(model.restraints) - len(free) - 1 - len(model.phases) - model.background_terms, 1
    )
    lam = damping
    constraints = model.linear_constraints()
    converged = False
    ratio = np.inf
    iteration = 0
    while iteration < max_iterations:
        iteration += 1
        free = all_free[~np.isin(all_free, model.dormant(x))]
        if len(free) == 0:  # every parameter dormant
            converged = True
            break
        names = [model.layout.names[i] for i in free]
        jacobian, residual, _ = projected_jacobian(model, x, free)
        singular = null_parameters(jacobian, names)
        if singular:
            raise SingularMatrixError(singular, x)
        normal = jacobian.T @ jacobian
        gradient = jacobian.T @ residual
        diagonal = np.diag(normal).copy()
        # rounding can leave a tiny negative diagonal when parameters are almost degenerate (roughness with B)
        esd = np.sqrt(np.maximum(np.diag(np.linalg.pinv(normal)), 0.0) * chi2 / dof)
        accepted = False
        while lam < 1e10:
            damped_normal = normal + lam * np.diag(diagonal)
            step = _onto_constraints(damped_normal, np.linalg.solve(damped_normal, gradient), x, free, constraints)
            trial = x.copy()
            trial[free] += step
            if lower is not None:
                trial[free] = np.maximum(trial[free], lower[free])
            if upper is not None:
                trial[free] = np.minimum(trial[free], upper[free])
            trial_chi2 = model.chi2(trial)
            if trial_chi2 < chi2:
                accepted = True
                break
            lam *= 10.0
        if not accepted:  # no descent left along the damped steps: at the minimum to machine precision
            converged = True
            break
        ratio = float(np.max(np.abs(trial[free] - x[free]) / np.maximum(esd, 1e-300)))
        change = (chi2 - trial_chi2) / trial_chi2
        x, chi2 = trial, trial_chi2
        history.append(chi2)
        pattern_history.append(model.pattern_chi2(x))
        damped = (
            lam > 1.0
        )  # a heavily damped step (λ ≥ diag(JᵀJ)) is short because of λ, not because x is at the minimum
        lam = max(lam / 10.0, 1e-7)
        if (ratio < shift_tolerance and not damped) or change < chi2_tolerance:
            converged = True
            break
    return LMResult(x, tuple(history), tuple(pattern_history), converged, iteration, ratio)
