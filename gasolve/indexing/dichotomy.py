"""Powder indexing by successive dichotomy (Louër & Louër, J. Appl. Cryst. 5 (1972) 271-275; DICVOL91:
Boultif & Louër, J. Appl. Cryst. 24 (1991) 987-993; DICVOL04: Boultif & Louër, J. Appl. Cryst. 37 (2004)
724-731).

The space of direct cell parameters (lengths in Å, and β for monoclinic) is covered by boxes 0.5 Å (and 5°)
wide. A box survives when every observed line, widened by its tolerance, falls inside the range that Q(hkl) takes
over the box for some hkl (at most ``max_unindexed`` lines may fail: impurity lines). Surviving boxes are halved
along every parameter, and the test is repeated, down to a width of a few thousandths of an Å. The centre of each
final box starts a linear least-squares refinement of the reciprocal parameters (Q is linear in them, see
:mod:`gasolve.indexing.systems`) on the indices assigned to the lines, iterated until the assignment holds.

The test of one box (:func:`_count_unindexed`) is a Numba kernel, batched over boxes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numba
import numpy as np

from gasolve.indexing.systems import (
    PARAMETRISATIONS,
    box_reciprocal_bounds,
    box_volume_range,
    coefficient_matrix,
    direct_cell,
    miller_indices,
)


@dataclass(frozen=True)
class DichotomySettings:
    """Limits of the search.

    Attributes
    ----------
    min_length, max_length : float
        Cell edges searched (Å).
    max_volume : float
        Largest cell volume (Å³).
    max_beta : float
        Largest monoclinic β (degrees); β >= 90 by convention.
    length_step, angle_step : float
        Width of the starting boxes (Å, degrees).
    depth : int
        Halvings of each starting box (the final width is ``length_step / 2**depth``).
    max_unindexed : int
        Lines that may stay unindexed (impurities).
    max_boxes : int
        Safety limit on the boxes examined at one level.
    time_budget : float
        Seconds the triclinic search may take (:mod:`gasolve.indexing.triclinic`).
    """

    min_length: float = 2.0
    max_length: float = 20.0
    max_volume: float = 1500.0
    max_beta: float = 125.0
    length_step: float = 0.5
    angle_step: float = 5.0
    depth: int = 6
    max_unindexed: int = 0
    max_boxes: int = 2_000_000
    time_budget: float = 120.0


@numba.njit(cache=True, inline="always")
def _missing_lines(q_obs, q_tol, q_lo, q_hi, n_hkl, max_unindexed):  # pragma: no cover - jitted
    """Lines whose Q (± tolerance) meets none of the first ``n_hkl`` index ranges; stops past ``max_unindexed``."""
    missing = 0
    for i in range(q_obs.shape[0]):
        q = q_obs[i]
        t = q_tol[i]
        found = False
        for j in range(n_hkl):
            if q_lo[j] - t <= q <= q_hi[j] + t:
                found = True
                break
        if not found:
            missing += 1
            if missing > max_unindexed:
                break
    return missing


@numba.njit(cache=True, inline="always")
def _q_range(coefficients, j, r_lo, r_hi, b):  # pragma: no cover - jitted
    """Exact range of Q = coefficients[j] · r over the box ``b`` (r_lo[b] <= r <= r_hi[b]): a linear form."""
    lo = 0.0
    hi = 0.0
    for p in range(coefficients.shape[1]):
        c = coefficients[j, p]
        x = c * r_lo[b, p]
        y = c * r_hi[b, p]
        if x < y:
            lo += x
            hi += y
        else:
            lo += y
            hi += x
    return lo, hi


@numba.njit(cache=True, parallel=True)
def _count_unindexed(q_obs, q_tol, coefficients, r_lo, r_hi, max_unindexed, out):  # pragma: no cover - jitted
    n_boxes = r_lo.shape[0]
    n_hkl = coefficients.shape[0]
    for b in numba.prange(n_boxes):
        q_lo = np.empty(n_hkl)
        q_hi = np.empty(n_hkl)
        for j in range(n_hkl):
            q_lo[j], q_hi[j] = _q_range(coefficients, j, r_lo, r_hi, b)
        out[b] = _missing_lines(q_obs, q_tol, q_lo, q_hi, n_hkl, max_unindexed)


@numba.njit(cache=True, parallel=True)
def _count_unindexed_monoclinic(q_obs, q_tol, lo, hi, max_unindexed, out):  # pragma: no cover - jitted
    # Q = (h u csc(beta) - l w cot(beta))**2 + (l w)**2 + (k v)**2 with u = 1/a, v = 1/b, w = 1/c: the two
    # terms inside the square keep their correlation through u, w and beta (a bound much tighter than the
    # independent intervals of the linear form's A, C and E). Indices are generated per box, only as far as
    # the box's largest cell can reach the last line (h <= a csc(beta) sqrt(Q_max), and so on), so a small
    # cell costs few indices.
    n_boxes = lo.shape[0]
    n_lines = q_obs.shape[0]
    q_reach = 0.0
    for i in range(n_lines):
        q_reach = max(q_reach, q_obs[i] + q_tol[i])
    root = np.sqrt(q_reach)
    for b in numba.prange(n_boxes):
        u_lo = 1.0 / hi[b, 0]
        u_hi = 1.0 / lo[b, 0]
        v_lo = 1.0 / hi[b, 1]
        v_hi = 1.0 / lo[b, 1]
        w_lo = 1.0 / hi[b, 2]
        w_hi = 1.0 / lo[b, 2]
        beta_lo = np.radians(lo[b, 3])
        beta_hi = np.radians(hi[b, 3])
        # For 90 <= beta < 180 both csc(beta) and -cot(beta) rise with beta and are >= 0.
        csc_lo = 1.0 / np.sin(beta_lo)
        csc_hi = 1.0 / np.sin(beta_hi)
        cot_lo = -np.cos(beta_lo) / np.sin(beta_lo)
        cot_hi = -np.cos(beta_hi) / np.sin(beta_hi)
        h_max = int(hi[b, 0] * csc_hi * root) + 1
        k_max = int(hi[b, 1] * root) + 1
        l_max = int(hi[b, 2] * csc_hi * root) + 1
        capacity = (h_max + 1) * (k_max + 1) * (2 * l_max + 1)
        q_lo = np.empty(capacity)
        q_hi = np.empty(capacity)
        n_hkl = 0
        for h in range(h_max + 1):
            for el in range(-l_max, l_max + 1):
                if h == 0 and el < 0:
                    continue  # (0 k -l) gives the same Q as (0 k l)
                t1_lo = h * u_lo * csc_lo
                t1_hi = h * u_hi * csc_hi
                if el >= 0:
                    t2_lo = el * w_lo * cot_lo
                    t2_hi = el * w_hi * cot_hi
                else:
                    t2_lo = el * w_hi * cot_hi
                    t2_hi = el * w_lo * cot_lo
                g_lo = t1_lo + t2_lo
                g_hi = t1_hi + t2_hi
                if g_lo <= 0.0 <= g_hi:
                    sq_lo = 0.0
                else:
                    sq_lo = min(g_lo * g_lo, g_hi * g_hi)
                sq_hi = max(g_lo * g_lo, g_hi * g_hi)
                base_lo = sq_lo + el * el * w_lo * w_lo
                base_hi = sq_hi + el * el * w_hi * w_hi
                if base_lo > q_reach:
                    continue
                for k in range(k_max + 1):
                    if h == 0 and k == 0 and el == 0:
                        continue
                    lo_q = base_lo + k * k * v_lo * v_lo
                    if lo_q > q_reach:
                        break
                    q_lo[n_hkl] = lo_q
                    q_hi[n_hkl] = base_hi + k * k * v_hi * v_hi
                    n_hkl += 1
        out[b] = _missing_lines(q_obs, q_tol, q_lo, q_hi, n_hkl, max_unindexed)


def count_unindexed(
    q_obs: np.ndarray, q_tol: np.ndarray, coefficients: np.ndarray, r_lo: np.ndarray, r_hi: np.ndarray, max_unindexed
) -> np.ndarray:
    """Lines that no index can reach in each box (counting stops past ``max_unindexed``).

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Observed Q = 1/d² and its tolerance (Å⁻²).
    coefficients : ndarray, shape (n_hkl, n_par)
        From :func:`gasolve.indexing.systems.coefficient_matrix`.
    r_lo, r_hi : ndarray, shape (n_boxes, n_par)
        Bounds of the reciprocal parameters over each box.
    max_unindexed : int

    Returns
    -------
    ndarray, shape (n_boxes,), int64
    """
    r_lo = np.ascontiguousarray(r_lo, dtype=np.float64)
    r_hi = np.ascontiguousarray(r_hi, dtype=np.float64)
    if r_lo.shape != r_hi.shape or r_lo.ndim != 2 or r_lo.shape[1] != coefficients.shape[1]:
        raise ValueError(
            f"box bounds of shape {r_lo.shape} and {r_hi.shape} do not fit {coefficients.shape[1]} parameters"
        )
    out = np.zeros(len(r_lo), dtype=np.int64)
    if len(r_lo):
        _count_unindexed(
            np.ascontiguousarray(q_obs, dtype=np.float64),
            np.ascontiguousarray(q_tol, dtype=np.float64),
            np.ascontiguousarray(coefficients, dtype=np.float64),
            r_lo,
            r_hi,
            int(max_unindexed),
            out,
        )
    return out


def _starting_boxes(system: str, settings: DichotomySettings) -> tuple[np.ndarray, np.ndarray]:
    parametrisation = PARAMETRISATIONS[system]
    edges = np.arange(settings.min_length, settings.max_length, settings.length_step)
    axes = [edges] * parametrisation.n_lengths
    if parametrisation.has_angle:
        axes.append(np.arange(90.0, settings.max_beta, settings.angle_step))
    lo = np.array(list(itertools.product(*axes)), dtype=float)
    steps = np.array(
        [settings.length_step] * parametrisation.n_lengths + [settings.angle_step] * parametrisation.has_angle
    )
    hi = lo + steps
    hi[:, : parametrisation.n_lengths] = np.minimum(hi[:, : parametrisation.n_lengths], settings.max_length)
    if parametrisation.has_angle:
        hi[:, -1] = np.minimum(hi[:, -1], settings.max_beta)
    keep = _symmetry_order(system, lo, hi)
    return lo[keep], hi[keep]


def _symmetry_order(system: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Boxes that may hold a reduced cell (orthorhombic a <= b <= c; monoclinic a <= c, |c cos β| <= a/2)."""
    if system == "orthorhombic":
        return (lo[:, 0] <= hi[:, 1]) & (lo[:, 1] <= hi[:, 2])
    if system == "monoclinic":
        # Reduced in the ac plane (Gauss): a <= c and |c cos β| <= a / 2, so β <= 120° with β >= 90°.
        return (lo[:, 0] <= hi[:, 2]) & (-2.0 * lo[:, 2] * np.cos(np.radians(lo[:, 3])) <= hi[:, 0])
    return np.ones(len(lo), dtype=bool)


def _halve(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n_par = lo.shape[1]
    mid = 0.5 * (lo + hi)
    corners = np.array(list(itertools.product((0, 1), repeat=n_par)), dtype=bool)  # (2**n_par, n_par)
    new_lo = np.where(corners[None], mid[:, None], lo[:, None]).reshape(-1, n_par)
    new_hi = np.where(corners[None], hi[:, None], mid[:, None]).reshape(-1, n_par)
    return new_lo, new_hi


def surviving_boxes(
    system: str,
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    settings: DichotomySettings,
    volume_shell: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Final boxes of direct parameters that index every line (up to ``max_unindexed``).

    Parameters
    ----------
    system : str
        One of :data:`gasolve.indexing.systems.SYSTEMS`.
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻².
    settings : DichotomySettings
    volume_shell : (float, float), optional
        Only cells with a volume in this range (Å³) are searched (DICVOL's shells of 400 Å³, which keep the
        number of boxes small and find the smallest cell first). Default: up to ``settings.max_volume``.

    Returns
    -------
    lo, hi : ndarray, shape (n_boxes, n_parameters)
    """
    q_max = float(np.max(q_obs + q_tol))
    max_lengths = np.full(3, settings.max_length)
    if system == "monoclinic":
        max_lengths /= math.sin(math.radians(settings.max_beta))
    hkl = miller_indices(system, max_lengths, q_max)
    coefficients = coefficient_matrix(system, hkl)
    lo, hi = _starting_boxes(system, settings)
    v_min, v_max = volume_shell if volume_shell is not None else (0.0, settings.max_volume)
    v_max = min(v_max, settings.max_volume)
    for level in range(settings.depth + 1):
        v_lo, v_hi = box_volume_range(system, lo, hi)
        keep = (v_lo <= v_max) & (v_hi >= v_min) & _symmetry_order(system, lo, hi)
        lo, hi = lo[keep], hi[keep]
        if len(lo) > settings.max_boxes:
            raise RuntimeError(
                f"{system}: {len(lo)} boxes survive at level {level}; the lines are too few or too imprecise to "
                "index in this system (give more lines, a smaller tolerance or a smaller volume)"
            )
        if system == "monoclinic":
            missing = np.zeros(len(lo), dtype=np.int64)
            if len(lo):
                _count_unindexed_monoclinic(
                    np.ascontiguousarray(q_obs, dtype=np.float64),
                    np.ascontiguousarray(q_tol, dtype=np.float64),
                    np.ascontiguousarray(lo),
                    np.ascontiguousarray(hi),
                    int(settings.max_unindexed),
                    missing,
                )
        else:
            r_lo, r_hi = box_reciprocal_bounds(system, lo, hi)
            missing = count_unindexed(q_obs, q_tol, coefficients, r_lo, r_hi, settings.max_unindexed)
        passed = missing <= settings.max_unindexed
        lo, hi = lo[passed], hi[passed]
        if level < settings.depth and len(lo):
            lo, hi = _halve(lo, hi)
    return lo, hi


def refine_reciprocal(
    system: str,
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    start: np.ndarray,
    hkl: np.ndarray,
    max_unindexed: int = 0,
    n_iterations: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Least-squares reciprocal parameters from a starting guess, by alternating assignment and linear fit.

    Parameters
    ----------
    system : str
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻².
    start : ndarray, shape (n_par,)
        Reciprocal parameters to start from.
    hkl : ndarray, shape (n_hkl, 3)
        Candidate indices.
    max_unindexed : int
        Lines allowed outside their tolerance (left out of the fit).
    n_iterations : int

    Returns
    -------
    (parameters, assigned hkl of shape (n_lines, 3), indexed mask of shape (n_lines,)) or None when the
    assignment does not hold within the tolerances.
    """
    coefficients = coefficient_matrix(system, hkl)
    parameters = np.asarray(start, dtype=float)
    for _ in range(n_iterations):
        q_calc = coefficients @ parameters
        nearest = np.argmin(np.abs(q_obs[:, None] - q_calc[None, :]), axis=1)
        # The start is only as good as the box it came from: fit every line but the worst ``max_unindexed``,
        # and judge the tolerances once the parameters have settled.
        error = np.abs(q_obs - q_calc[nearest]) / q_tol
        indexed = np.zeros(len(q_obs), dtype=bool)
        indexed[np.argsort(error, kind="stable")[: len(q_obs) - max_unindexed]] = True
        design = coefficients[nearest[indexed]] / q_tol[indexed, None]
        target = q_obs[indexed] / q_tol[indexed]
        if np.linalg.matrix_rank(design) < design.shape[1]:
            return None
        new, *_ = np.linalg.lstsq(design, target, rcond=None)
        if np.allclose(new, parameters, rtol=1e-10, atol=0):
            parameters = new
            break
        parameters = new
    q_calc = coefficients @ parameters
    nearest = np.argmin(np.abs(q_obs[:, None] - q_calc[None, :]), axis=1)
    indexed = np.abs(q_obs - q_calc[nearest]) <= q_tol
    if np.count_nonzero(~indexed) > max_unindexed or direct_cell(system, parameters) is None:
        return None
    return parameters, hkl[nearest], indexed
