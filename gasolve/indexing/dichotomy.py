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

import functools
import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from gasolve.indexing.budget import TRICLINIC_BOXES, BudgetSpent, WorkBudget
from gasolve.indexing.systems import (
    PARAMETRISATIONS,
    box_reciprocal_bounds,
    box_volume_range,
    coefficient_matrix,
    direct_cell,
    miller_indices,
)

#: Boxes made and tested at once within one level of :func:`surviving_boxes` (bounds its memory, about 100 MB).
CHUNK_BOXES = 1 << 20
#: Systems whose Q is a sum of non-negative multiples of non-negative parameters (:func:`count_unindexed_axial`).
_AXIAL = ("cubic", "tetragonal", "hexagonal", "orthorhombic")


@dataclass(frozen=True)
class DichotomySettings:
    """Limits of the search.

    Attributes
    ----------
    min_length : float
        Shortest cell edge searched (Å).
    max_length : float or None
        Longest cell edge searched (Å); None: :func:`edge_limit` of the system, the lines and the volume limit.
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
    triclinic_boxes : int
        Boxes the triclinic search may test (:mod:`gasolve.indexing.triclinic`, :mod:`gasolve.indexing.budget`)
        when no shared budget is given to it.
    triclinic_bases : tuple of str
        :attr:`gasolve.indexing.triclinic.TriclinicSettings.bases`.
    triclinic_min_volume : float
        :attr:`gasolve.indexing.triclinic.TriclinicSettings.min_volume` (the other systems search from 0).
    """

    min_length: float = 2.0
    max_length: float | None = None
    max_volume: float = 1500.0
    max_beta: float = 125.0
    length_step: float = 0.5
    angle_step: float = 5.0
    depth: int = 6
    max_unindexed: int = 0
    max_boxes: int = 2_000_000
    triclinic_boxes: int = TRICLINIC_BOXES
    triclinic_bases: tuple[str, ...] = ("reduced", "zones", "any")
    triclinic_min_volume: float = 0.0


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


@numba.njit(cache=True, parallel=True)
def _count_unindexed_axial(q_obs, q_tol, values, r_lo, r_hi, max_unindexed, out):  # pragma: no cover - jitted
    # Q = m0 R0 + m1 R1 + m2 R2 with every m >= 0 and R >= 0 (cubic to orthorhombic, padded to three terms):
    # each row of ``values`` holds the multipliers a parameter can take (0 first, ascending, +inf padding).
    # Only the multipliers the box's smallest R can still bring below the last line are generated (the loops
    # stop at the first term past it), so a small cell costs a few hundred ranges instead of the whole list.
    n_boxes = r_lo.shape[0]
    n_lines = q_obs.shape[0]
    q_reach = 0.0
    for i in range(n_lines):
        q_reach = max(q_reach, q_obs[i] + q_tol[i])
    n_max = values.shape[1]
    for b in numba.prange(n_boxes):
        reach = np.zeros(3, dtype=np.int64)
        for p in range(3):
            while reach[p] < n_max and values[p, reach[p]] * r_lo[b, p] <= q_reach:
                reach[p] += 1
        capacity = max(reach[0] * reach[1] * reach[2], 1)
        q_lo = np.empty(capacity)
        q_hi = np.empty(capacity)
        n_hkl = 0
        for i in range(reach[0]):
            lo0 = values[0, i] * r_lo[b, 0]
            hi0 = values[0, i] * r_hi[b, 0]
            for j in range(reach[1]):
                lo1 = lo0 + values[1, j] * r_lo[b, 1]
                if lo1 > q_reach:
                    break
                hi1 = hi0 + values[1, j] * r_hi[b, 1]
                for k in range(reach[2]):
                    if i == 0 and j == 0 and k == 0:
                        continue  # (000)
                    lo2 = lo1 + values[2, k] * r_lo[b, 2]
                    if lo2 > q_reach:
                        break
                    q_lo[n_hkl] = lo2
                    q_hi[n_hkl] = hi1 + values[2, k] * r_hi[b, 2]
                    n_hkl += 1
        out[b] = _missing_lines(q_obs, q_tol, q_lo, q_hi, n_hkl, max_unindexed)


def axial_multipliers(coefficients: np.ndarray) -> np.ndarray:
    """The values each column of a cubic-to-orthorhombic coefficient matrix takes, for the axial box kernel.

    Parameters
    ----------
    coefficients : ndarray, shape (n_hkl, n_par), n_par <= 3, all >= 0
        From :func:`gasolve.indexing.systems.coefficient_matrix` (cubic, tetragonal, hexagonal, orthorhombic).

    Returns
    -------
    ndarray, shape (3, n_max)
        Row p: 0 and the distinct values of column p, ascending, padded with +inf; rows past n_par hold 0 only.
        Every combination of one value per row is a possible coefficient vector (the columns depend on
        disjoint indices: h and k, or l), so the kernel's ranges are those of the index list and a few more that
        no box can bring below the last line.
    """
    coefficients = np.asarray(coefficients, dtype=float)
    if coefficients.ndim != 2 or not 1 <= coefficients.shape[1] <= 3 or np.any(coefficients < 0):
        raise ValueError(f"expected non-negative coefficients of 1 to 3 parameters, got shape {coefficients.shape}")
    rows = [np.union1d([0.0], coefficients[:, p]) for p in range(coefficients.shape[1])]
    rows += [np.zeros(1)] * (3 - len(rows))
    values = np.full((3, max(len(r) for r in rows)), np.inf)
    for p, row in enumerate(rows):
        values[p, : len(row)] = row
    return values


def count_unindexed_axial(
    q_obs: np.ndarray, q_tol: np.ndarray, values: np.ndarray, r_lo: np.ndarray, r_hi: np.ndarray, max_unindexed
) -> np.ndarray:
    """:func:`count_unindexed` for cubic to orthorhombic boxes, over the indices each box can reach.

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Observed Q = 1/d² and its tolerance (Å⁻²).
    values : ndarray, shape (3, n_max)
        From :func:`axial_multipliers`.
    r_lo, r_hi : ndarray, shape (n_boxes, n_par), n_par <= 3
        Bounds of the reciprocal parameters over each box (>= 0).
    max_unindexed : int

    Returns
    -------
    ndarray, shape (n_boxes,), int64
        The same counts as :func:`count_unindexed` over the full index list.
    """
    r_lo = np.asarray(r_lo, dtype=np.float64)
    r_hi = np.asarray(r_hi, dtype=np.float64)
    if r_lo.shape != r_hi.shape or r_lo.ndim != 2 or not 1 <= r_lo.shape[1] <= 3 or values.shape[0] != 3:
        raise ValueError(f"box bounds of shape {r_lo.shape} and {r_hi.shape} do not fit multipliers {values.shape}")
    if np.any(r_lo < 0) or np.any(r_hi < r_lo):
        raise ValueError("reciprocal parameter bounds must satisfy 0 <= r_lo <= r_hi")
    padded_lo = np.zeros((len(r_lo), 3))
    padded_hi = np.zeros((len(r_lo), 3))
    padded_lo[:, : r_lo.shape[1]] = r_lo
    padded_hi[:, : r_lo.shape[1]] = r_hi
    out = np.zeros(len(r_lo), dtype=np.int64)
    if len(r_lo):
        _count_unindexed_axial(
            np.ascontiguousarray(q_obs, dtype=np.float64),
            np.ascontiguousarray(q_tol, dtype=np.float64),
            np.ascontiguousarray(values, dtype=np.float64),
            padded_lo,
            padded_hi,
            int(max_unindexed),
            out,
        )
    return out


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


#: Highest order at which the systematic absences of a space group of each system can first allow a reflection
#: along a cell edge: 6 for hexagonal and trigonal cells (a 6₁ axis, or R-3c in hexagonal axes: 00l with l = 6n),
#: 4 for tetragonal (4₁: 00l with l = 4n) and orthorhombic ones (a d glide: h00 with h = 4n), 2 for monoclinic ones
#: (a 2₁ axis, a glide or C-centring), 4 for cubic (d glide). Used by :func:`edge_limit`.
AXIAL_ORDER = {"cubic": 4, "tetragonal": 4, "hexagonal": 6, "orthorhombic": 4, "monoclinic": 2, "triclinic": 1}
#: The longest edge searched before the limit followed the lines (Å); kept as a floor so that no cell found then is
#: lost now.
FORMER_MAX_LENGTH = 20.0


def edge_limit(system: str, q_obs: np.ndarray, max_volume: float, min_length: float, max_beta: float = 90.0) -> float:
    """Longest cell edge worth searching in a crystal system (Å), from the lines and the volume limit.

    Along an edge of length L the first reflection that a space group of the system can allow is of order
    n = :data:`AXIAL_ORDER` [system] at most, at d = L / n (L sin β / n for a monoclinic a or c). Unless it is too
    weak to see, it lies at or below the largest observed d-spacing d_max, so L ≤ n d_max / sin β_max. An edge
    longer than ``max_volume / min_length²`` leaves no room for the other two within the volume limit. The former
    fixed limit of 20 Å stays as a floor. Corundum (R-3c, c = 12.99 Å, first line 012 at d = 3.48 Å) needs
    3.7 d_max, the R-3m Cs4KLiGa2F12 of the benchmark (c = 31.2 Å, first line 003) 3 d_max, both within 6 d_max.

    Parameters
    ----------
    system : str
    q_obs : ndarray, shape (n_lines,)
        Observed Q = 1/d² (Å⁻²).
    max_volume, min_length : float
        Å³ and Å.
    max_beta : float
        Largest monoclinic β searched (degrees).

    Returns
    -------
    float
        min(max_volume / min_length², max(20 Å, n d_max / sin β_max)) (Å).
    """
    d_max = 1.0 / math.sqrt(float(np.min(q_obs)))
    sine = math.sin(math.radians(max_beta)) if system == "monoclinic" else 1.0
    reach = AXIAL_ORDER[system] * d_max / sine
    return min(max_volume / min_length**2, max(FORMER_MAX_LENGTH, reach))


def _resolved_max_length(system: str, settings: DichotomySettings, q_obs: np.ndarray) -> float:
    if settings.max_length is not None:
        return float(settings.max_length)
    return edge_limit(system, q_obs, settings.max_volume, settings.min_length, settings.max_beta)


def _starting_boxes(system: str, settings: DichotomySettings, max_length: float) -> tuple[np.ndarray, np.ndarray]:
    """Starting boxes of ``length_step`` (and ``angle_step``) up to ``max_length`` that may hold a cell within the
    volume limit in its reduced order. The last edge is laid out only as far as the volume limit lets it go over
    the others' box (long edges make the full grid large); cached, read-only."""
    step = settings.length_step
    rounded = settings.min_length + step * math.ceil((max_length - settings.min_length) / step - 1e-9)
    return _starting_boxes_cached(system, settings, rounded)


@functools.lru_cache(maxsize=64)
def _starting_boxes_cached(
    system: str, settings: DichotomySettings, max_length: float
) -> tuple[np.ndarray, np.ndarray]:
    parametrisation = PARAMETRISATIONS[system]
    n_lengths = parametrisation.n_lengths
    edges = np.arange(settings.min_length, max_length - 1e-9, settings.length_step)
    prefix_axes = [edges] * (n_lengths - 1)
    if parametrisation.has_angle:
        prefix_axes.append(np.arange(90.0, settings.max_beta, settings.angle_step))
    if prefix_axes:
        prefix = np.stack(np.meshgrid(*prefix_axes, indexing="ij"), axis=-1).reshape(-1, len(prefix_axes))
    else:
        prefix = np.zeros((1, 0))
    steps = np.array([settings.length_step] * n_lengths + [settings.angle_step] * parametrisation.has_angle)
    width = len(steps)

    def bounds(rows: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo = np.empty((len(rows), width))
        lo[:, : n_lengths - 1] = rows[:, : n_lengths - 1]
        lo[:, n_lengths - 1] = last
        lo[:, n_lengths:] = rows[:, n_lengths - 1 :]
        hi = lo + steps
        hi[:, :n_lengths] = np.minimum(hi[:, :n_lengths], max_length)
        if parametrisation.has_angle:
            hi[:, -1] = np.minimum(hi[:, -1], settings.max_beta)
        return lo, hi

    # Smallest volume over each prefix box per unit of the last edge: the volume range of the box with that edge 1.
    unit_lo, unit_hi = bounds(prefix, np.ones(len(prefix)))
    unit_hi[:, n_lengths - 1] = 1.0
    area = box_volume_range(system, unit_lo, unit_hi)[0]
    if system == "cubic":
        count = np.full(len(prefix), len(edges))
    else:
        count = np.searchsorted(edges, settings.max_volume / np.maximum(area, 1e-300), side="right")
    rows = np.repeat(prefix, count, axis=0)
    last = edges[np.concatenate([np.arange(n) for n in count])] if len(rows) else np.zeros(0)
    lo, hi = bounds(rows, last)
    keep = _symmetry_order(system, lo, hi) & (box_volume_range(system, lo, hi)[0] <= settings.max_volume)
    lo, hi = lo[keep], hi[keep]
    lo.setflags(write=False)
    hi.setflags(write=False)
    return lo, hi


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
    budget: WorkBudget | None = None,
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
    budget : WorkBudget, optional
        Charged with every box examined; :class:`gasolve.indexing.budget.BudgetSpent` is raised once it is spent.

    Returns
    -------
    lo, hi : ndarray, shape (n_boxes, n_parameters)

    Raises
    ------
    RuntimeError
        More than ``settings.max_boxes`` boxes to examine at one level.
    BudgetSpent
        ``budget`` spent.
    """
    q_max = float(np.max(q_obs + q_tol))
    max_length = _resolved_max_length(system, settings, np.asarray(q_obs, dtype=float))
    max_lengths = np.full(3, max_length)
    if system == "monoclinic":
        max_lengths /= math.sin(math.radians(settings.max_beta))
    hkl = miller_indices(system, max_lengths, q_max)
    coefficients = coefficient_matrix(system, hkl)
    multipliers = axial_multipliers(coefficients) if system in _AXIAL else None
    lo, hi = _starting_boxes(system, settings, max_length)
    v_min, v_max = volume_shell if volume_shell is not None else (0.0, settings.max_volume)
    v_max = min(v_max, settings.max_volume)
    n_parameters = lo.shape[1]
    for level in range(settings.depth + 1):
        # A level's boxes are made and tested a chunk of parents at a time (the memory of a level's unpruned
        # children, 2**n_parameters per survivor, would otherwise grow with the box limit); the survivors come out
        # in the same order as from the whole level at once.
        parents = max(1, CHUNK_BOXES >> n_parameters) if level else max(1, CHUNK_BOXES)
        kept_lo, kept_hi = [], []
        examined = 0
        for start in range(0, len(lo), parents):
            box_lo, box_hi = lo[start : start + parents], hi[start : start + parents]
            if level:
                box_lo, box_hi = _halve(box_lo, box_hi)
            v_lo, v_hi = box_volume_range(system, box_lo, box_hi)
            keep = (v_lo <= v_max) & (v_hi >= v_min) & _symmetry_order(system, box_lo, box_hi)
            box_lo, box_hi = box_lo[keep], box_hi[keep]
            examined += len(box_lo)
            if examined > settings.max_boxes:
                raise RuntimeError(
                    f"{system}: more than {settings.max_boxes} boxes survive at level {level}; the lines are too "
                    "few or too imprecise to index in this system (give more lines, a smaller tolerance or a "
                    "smaller volume)"
                )
            passed = _missing(system, q_obs, q_tol, box_lo, box_hi, settings.max_unindexed, coefficients, multipliers)
            if budget is not None:
                budget.charge(len(box_lo))
                if budget.stopped:
                    raise BudgetSpent(f"{system}: {budget.reason()}")
            kept_lo.append(box_lo[passed])
            kept_hi.append(box_hi[passed])
        lo = np.concatenate(kept_lo) if kept_lo else np.zeros((0, n_parameters))
        hi = np.concatenate(kept_hi) if kept_hi else np.zeros((0, n_parameters))
        if not len(lo):
            break
    return lo, hi


def _missing(
    system: str,
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_unindexed: int,
    coefficients: np.ndarray,
    multipliers: np.ndarray | None,
) -> np.ndarray:
    """Whether each box (rows of ``lo``, ``hi``) indexes all but at most ``max_unindexed`` of the lines; bool, shape
    (n_boxes,)."""
    if not len(lo):
        return np.zeros(0, dtype=bool)
    if system == "monoclinic":
        missing = np.zeros(len(lo), dtype=np.int64)
        _count_unindexed_monoclinic(
            np.ascontiguousarray(q_obs, dtype=np.float64),
            np.ascontiguousarray(q_tol, dtype=np.float64),
            np.ascontiguousarray(lo),
            np.ascontiguousarray(hi),
            int(max_unindexed),
            missing,
        )
    else:
        r_lo, r_hi = box_reciprocal_bounds(system, lo, hi)
        if multipliers is None:
            missing = count_unindexed(q_obs, q_tol, coefficients, r_lo, r_hi, max_unindexed)
        else:
            missing = count_unindexed_axial(q_obs, q_tol, multipliers, r_lo, r_hi, max_unindexed)
    return missing <= max_unindexed


@dataclass(frozen=True)
class LineShifts:
    """2θ corrections refined with the cell, as DICVOL04 refines the zero point with the cell.

    Each observed line is taken as 2θ_obs = 2θ_Bragg + Σ_s δ_s basis[i, s]: a zero shift (basis 1) and a
    specimen displacement (basis cos θ, Bragg-Brentano). Q is linear in the small δ_s (Q_obs ≈ Q_Bragg +
    q_slope Σ δ_s basis), so they join the linear least squares of the reciprocal parameters.

    Attributes
    ----------
    q_slope : ndarray, shape (n_lines,)
        dQ/d(2θ) at each line (Å⁻² per degree).
    basis : ndarray, shape (n_lines, n_shift)
        2θ shift of each line per unit of each correction (degrees per degree).
    max_shift : float
        Largest total correction allowed at any line (degrees); a fit that needs more keeps the lines as
        observed.
    """

    q_slope: np.ndarray
    basis: np.ndarray
    max_shift: float

    def __post_init__(self) -> None:
        q_slope = np.asarray(self.q_slope, dtype=float)
        basis = np.asarray(self.basis, dtype=float)
        if q_slope.ndim != 1 or basis.ndim != 2 or basis.shape[0] != len(q_slope):
            raise ValueError(f"q_slope {q_slope.shape} and basis {basis.shape} do not describe the same lines")
        if not (np.all(np.isfinite(q_slope)) and np.all(np.isfinite(basis)) and self.max_shift >= 0):
            raise ValueError("line shifts must be finite, with max_shift >= 0")
        q_slope.setflags(write=False)
        basis.setflags(write=False)
        object.__setattr__(self, "q_slope", q_slope)
        object.__setattr__(self, "basis", basis)

    @property
    def q_columns(self) -> np.ndarray:
        """dQ of each line per unit of each correction, shape (n_lines, n_shift) (Å⁻² per degree)."""
        return self.q_slope[:, None] * self.basis

    def take(self, order: np.ndarray) -> LineShifts:
        """The same corrections for the lines reordered by ``order``."""
        return LineShifts(self.q_slope[order], self.basis[order], self.max_shift)


#: The 2θ corrections are refined only with this many fitted lines per parameter: with fewer, the two extra
#: parameters lift the M20 of cells that fit few lines (simulated ReC2, 8 lines: a spurious oP cell indexing 7
#: went from M20 1166 to 5979, past the true hP cell at 1298).
_LINES_PER_PARAMETER = 3


class Refinement(NamedTuple):
    """A refined dichotomy solution.

    Attributes
    ----------
    parameters : ndarray, shape (n_par,)
        Reciprocal parameters (Å⁻²).
    hkl : ndarray, shape (n_lines, 3)
        Index assigned to each line.
    indexed : ndarray, shape (n_lines,), bool
        Lines within their tolerance.
    q_correction : ndarray, shape (n_lines,)
        Q taken off each observed line by the refined 2θ corrections (Å⁻²; zeros without them).
    shifts : ndarray, shape (n_shift,)
        The refined corrections δ_s of :class:`LineShifts` (degrees; empty without them).
    """

    parameters: np.ndarray
    hkl: np.ndarray
    indexed: np.ndarray
    q_correction: np.ndarray
    shifts: np.ndarray


def refine_reciprocal(
    system: str,
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    start: np.ndarray,
    hkl: np.ndarray,
    max_unindexed: int = 0,
    n_iterations: int = 8,
    shifts: LineShifts | None = None,
) -> Refinement | None:
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
    shifts : LineShifts, optional
        2θ corrections (zero shift, specimen displacement) refined with the parameters when there are at least
        :data:`_LINES_PER_PARAMETER` lines per parameter; the lines are judged after them. Without it the lines
        are judged as observed.

    Returns
    -------
    Refinement or None
        None when the assignment does not hold within the tolerances.
    """
    coefficients = coefficient_matrix(system, hkl)
    parameters = np.asarray(start, dtype=float)
    n_par = len(parameters)
    n_shift = 0 if shifts is None else shifts.basis.shape[1]
    shift = np.zeros(n_shift)
    correction = np.zeros(len(q_obs))
    for _ in range(n_iterations):
        q_calc = coefficients @ parameters
        q_line = q_obs - correction
        nearest = np.argmin(np.abs(q_line[:, None] - q_calc[None, :]), axis=1)
        # The start is only as good as the box it came from: fit every line but the worst ``max_unindexed``,
        # and judge the tolerances once the parameters have settled.
        error = np.abs(q_line - q_calc[nearest]) / q_tol
        indexed = np.zeros(len(q_obs), dtype=bool)
        indexed[np.argsort(error, kind="stable")[: len(q_obs) - max_unindexed]] = True
        design = coefficients[nearest[indexed]] / q_tol[indexed, None]
        target = q_obs[indexed] / q_tol[indexed]
        if np.linalg.matrix_rank(design) < design.shape[1]:
            return None
        new, *_ = np.linalg.lstsq(design, target, rcond=None)
        new_shift = np.zeros(n_shift)
        if n_shift and np.count_nonzero(indexed) >= _LINES_PER_PARAMETER * (n_par + n_shift):
            extended = np.hstack([design, shifts.q_columns[indexed] / q_tol[indexed, None]])
            if np.linalg.matrix_rank(extended) == extended.shape[1]:
                solution, *_ = np.linalg.lstsq(extended, target, rcond=None)
                if np.all(np.abs(shifts.basis @ solution[n_par:]) <= shifts.max_shift):
                    new, new_shift = solution[:n_par], solution[n_par:]
        settled = np.allclose(new, parameters, rtol=1e-10, atol=0) and np.allclose(new_shift, shift, atol=1e-9)
        parameters, shift = new, new_shift
        if n_shift:
            correction = shifts.q_columns @ shift
        if settled:
            break
    q_calc = coefficients @ parameters
    q_line = q_obs - correction
    nearest = np.argmin(np.abs(q_line[:, None] - q_calc[None, :]), axis=1)
    indexed = np.abs(q_line - q_calc[nearest]) <= q_tol
    if np.count_nonzero(~indexed) > max_unindexed or direct_cell(system, parameters) is None:
        return None
    return Refinement(parameters, hkl[nearest], indexed, correction, shift)
