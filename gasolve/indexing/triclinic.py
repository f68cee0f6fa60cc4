"""Triclinic indexing by successive dichotomy on reciprocal parameters (DICVOL91/04: Boultif & Louër, J. Appl.
Cryst. 24 (1991) 987-993 and 37 (2004) 724-731).

For triclinic cells Q(hkl) written with the direct parameters is too involved for a box test, and DICVOL sets its
intervals on the reciprocal parameters of

    Q(hkl) = A h² + B k² + C l² + D kl + E hl + F hk,
    A = a*², B = b*², C = c*², D = 2 b*c* cos α*, E = 2 a*c* cos β*, F = 2 a*b* cos γ*  (Å⁻²),

searching volume shells from the smallest volume up. Q is linear in (A ... F), so its range over a box is exact
(each term at one end of its interval). The box test (:func:`count_unindexed_triclinic`) takes that range over the
indices a lattice of the box can reach (|h| <= a √Q_max, with a² = (BC - D²/4) / det G* bounded over the box), so a
box is rejected only when no lattice inside it indexes the lines (up to ``max_unindexed``). Boxes that hold no
positive-definite metric with a volume in the shell are dropped by interval arithmetic on det G* = 1/V² (which can
only widen the range).

The six-dimensional box space is too large to halve blindly on two cores, so the starting boxes follow the
basis-line idea of TREOR (Werner, Eriksson & Westdahl, J. Appl. Cryst. 18 (1985) 367-370): three of the first
``n_basis`` lines are taken as Q(100), Q(010) and Q(001) of some basis of the lattice (not necessarily the reduced
one), which pins A, B and C to those lines' tolerance intervals; D, E and F are then found by dichotomy over every
angle (F, E >= 0: b* -> -b* and c* -> -c* leave the lattice unchanged). A lattice none of whose bases has its three
axial lines among the first ``n_basis`` observed lines is not found. Solutions are refined by least squares on
(A ... F), Niggli-reduced and de-duplicated by :mod:`gasolve.indexing.solutions`.

Every shell and basis is searched twice at most: first for the Niggli-reduced reciprocal basis only, whose
angles are bounded far more tightly (:func:`initial_box`: |D| <= B, E <= A, F <= A), with two or three axial
lines allowed under one observed line (cheap in these small boxes), then, when that finds nothing (a reduced
axial line unobserved), for any basis of distinct lines as above. On the lines of a 4.1 x 5.2 x 6.3 Å cell the
first pass tests 1,268 boxes where the second alone tests 78,023.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from gasolve.indexing.budget import TRICLINIC_BOXES, WorkBudget
from gasolve.indexing.dichotomy import Refinement, _missing_lines, _q_range, refine_reciprocal
from gasolve.indexing.systems import coefficient_matrix, miller_indices


@dataclass(frozen=True)
class TriclinicSettings:
    """Limits of the triclinic search.

    Attributes
    ----------
    max_volume : float
        Largest cell volume (Å³).
    min_volume : float
        Smallest cell volume searched (Å³): the shells of :func:`volume_shells` are cut below it, so that a caller
        can search the volumes of several zero shifts stage by stage (:func:`gasolve.indexing.pattern._triclinic_pass`).
    shell_ratio : float
        Each volume shell ends this many times higher than it starts (:func:`volume_shells`).
    n_basis : int
        Lines among which the three axial lines are sought.
    resolution : float
        The halving of D, E, F stops at widths below ``resolution`` times √(BC), √(AC), √(AB).
    max_unindexed : int
        Lines that may stay unindexed (impurities).
    box_budget : int
        Boxes that :func:`count_unindexed_triclinic` may test in the whole search (over every shell and basis);
        the search stops (and says so) when they are spent. A count, not seconds, so that the same lines give
        the same cells on any machine under any load (:mod:`gasolve.indexing.budget`).
    max_boxes : int
        Safety limit on the boxes of one level of one basis.
    time_limit : float or None
        Optional wall-clock guard (seconds; None, the default: none). A search it stops is not reproducible.
    bases : tuple of str
        The passes over every shell and basis, in order, until one finds a cell: "zones" (bases completed from
        zones of the lines, :mod:`gasolve.indexing.zones`), "reduced" (a Niggli-reduced reciprocal basis,
        :func:`initial_box`), "any" (any basis).
    """

    max_volume: float = 1000.0
    min_volume: float = 0.0
    shell_ratio: float = 1.25
    n_basis: int = 6
    resolution: float = 1e-2
    max_unindexed: int = 0
    box_budget: int = TRICLINIC_BOXES
    max_boxes: int = 400_000
    time_limit: float | None = None
    bases: tuple[str, ...] = ("reduced", "any")


def determinant_upper(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bound of det G* over boxes of (A, B, C, D, E, F) (interval arithmetic, Å⁻⁶).

    det G* = ABC + DEF/4 - (A D² + B E² + C F²)/4 for A, B, C > 0.

    Parameters
    ----------
    lo, hi : ndarray, shape (n_boxes, 6)

    Returns
    -------
    ndarray, shape (n_boxes,)
    """
    corners = [
        np.where(c & 1, lo[:, 3], hi[:, 3]) * np.where(c & 2, lo[:, 4], hi[:, 4]) * np.where(c & 4, lo[:, 5], hi[:, 5])
        for c in range(8)
    ]
    product_hi = np.max(corners, axis=0)

    def square_lo(a, b):
        return np.where((a <= 0) & (b >= 0), 0.0, np.minimum(a * a, b * b))

    subtracted = lo[:, 0] * square_lo(lo[:, 3], hi[:, 3]) + lo[:, 1] * square_lo(lo[:, 4], hi[:, 4])
    subtracted += lo[:, 2] * square_lo(lo[:, 5], hi[:, 5])
    return hi[:, 0] * hi[:, 1] * hi[:, 2] + 0.25 * product_hi - 0.25 * subtracted


def determinant_lower(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Lower bound of det G* over boxes of (A, B, C, D, E, F) (interval arithmetic, Å⁻⁶)."""
    corners = [
        np.where(c & 1, lo[:, 3], hi[:, 3]) * np.where(c & 2, lo[:, 4], hi[:, 4]) * np.where(c & 4, lo[:, 5], hi[:, 5])
        for c in range(8)
    ]
    product_lo = np.min(corners, axis=0)
    square_hi = [np.maximum(lo[:, i] ** 2, hi[:, i] ** 2) for i in (3, 4, 5)]
    subtracted = hi[:, 0] * square_hi[0] + hi[:, 1] * square_hi[1] + hi[:, 2] * square_hi[2]
    return lo[:, 0] * lo[:, 1] * lo[:, 2] + 0.25 * product_lo - 0.25 * subtracted


def volume_shells(q_obs: np.ndarray, max_volume: float, ratio: float) -> list[tuple[float, float]]:
    """Volume shells (Å³), smallest first, scaled on the volume the line count suggests.

    N lines (Friedel pairs counted once) up to Q_N need about (4π/3) Q_N^{3/2} V / 2 lattice points, so
    V_N = 3 N / (2π Q_N^{3/2}) (the idea of Smith, J. Appl. Cryst. 10 (1977) 252, for triclinic shells in DICVOL91).
    Missing and overlapping lines make the true volume larger, impurity lines smaller: the first shell runs up to
    V_N / 2 and each next one is ``ratio`` times wider, so that a narrow shell (strong pruning) holds the answer.
    """
    q_last = float(np.max(q_obs))
    estimate = 3 * len(q_obs) / (2 * math.pi * q_last**1.5)
    shells = []
    start, end = 0.0, 0.5 * estimate
    while start < max_volume:
        shells.append((start, min(end, max_volume)))
        start, end = end, end * ratio
    return shells


@numba.njit(cache=True, parallel=True)
def _count_unindexed_limited(
    q_obs, q_tol, hkl, coefficients, limits, r_lo, r_hi, max_unindexed, out
):  # pragma: no cover - jitted
    # The generic linear-form test of dichotomy._count_unindexed, with each box's own index limits (its
    # largest direct lengths times √Q_reach) and indices whose Q cannot reach the last line left out.
    n_boxes = r_lo.shape[0]
    n_hkl = coefficients.shape[0]
    q_reach = 0.0
    for i in range(q_obs.shape[0]):
        q_reach = max(q_reach, q_obs[i] + q_tol[i])
    for b in numba.prange(n_boxes):
        q_lo = np.empty(n_hkl)
        q_hi = np.empty(n_hkl)
        n = 0
        for j in range(n_hkl):
            if abs(hkl[j, 0]) > limits[b, 0] or abs(hkl[j, 1]) > limits[b, 1] or abs(hkl[j, 2]) > limits[b, 2]:
                continue
            lo, hi = _q_range(coefficients, j, r_lo, r_hi, b)
            if lo > q_reach:
                continue
            q_lo[n] = lo
            q_hi[n] = hi
            n += 1
        out[b] = _missing_lines(q_obs, q_tol, q_lo, q_hi, n, max_unindexed)


def index_limits(lo: np.ndarray, hi: np.ndarray, q_reach: float) -> np.ndarray:
    """Largest |h|, |k|, |l| that can give Q <= ``q_reach`` for any lattice in each box of (A ... F).

    |h| <= a √Q_reach with a² = (BC - D²/4) / det G* (likewise b, c); unbounded where det G* may reach 0.

    Returns
    -------
    ndarray, shape (n_boxes, 3), float64
    """
    det_lo = determinant_lower(lo, hi)
    square_lo = [
        np.where((lo[:, i] <= 0) & (hi[:, i] >= 0), 0.0, np.minimum(lo[:, i] ** 2, hi[:, i] ** 2)) for i in (3, 4, 5)
    ]
    cofactors = np.stack(
        [
            hi[:, 1] * hi[:, 2] - square_lo[0] / 4,
            hi[:, 0] * hi[:, 2] - square_lo[1] / 4,
            hi[:, 0] * hi[:, 1] - square_lo[2] / 4,
        ],
        axis=1,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        limits = np.sqrt(q_reach * cofactors / det_lo[:, None]) + 1e-9
    return np.where(det_lo[:, None] > 0, limits, np.inf)


def count_unindexed_triclinic(
    q_obs: np.ndarray, q_tol: np.ndarray, hkl: np.ndarray, lo: np.ndarray, hi: np.ndarray, max_unindexed: int
) -> np.ndarray:
    """Lines that no lattice of each box of (A ... F) can index (counting stops past ``max_unindexed``).

    The linear form's exact Q ranges, over the indices each box's lattices can reach (:func:`index_limits`).

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻².
    hkl : ndarray, shape (n_hkl, 3)
    lo, hi : ndarray, shape (n_boxes, 6)
    max_unindexed : int

    Returns
    -------
    ndarray, shape (n_boxes,), int64
    """
    lo = np.ascontiguousarray(lo, dtype=np.float64)
    hi = np.ascontiguousarray(hi, dtype=np.float64)
    if lo.shape != hi.shape or lo.ndim != 2 or lo.shape[1] != 6:
        raise ValueError(f"triclinic boxes must be (n, 6) arrays, got {lo.shape} and {hi.shape}")
    q_obs = np.ascontiguousarray(q_obs, dtype=np.float64)
    q_tol = np.ascontiguousarray(q_tol, dtype=np.float64)
    out = np.zeros(len(lo), dtype=np.int64)
    if len(lo):
        limits = np.minimum(index_limits(lo, hi, float(np.max(q_obs + q_tol))), 1e9)
        _count_unindexed_limited(
            q_obs,
            q_tol,
            np.ascontiguousarray(hkl, dtype=np.int64),
            np.ascontiguousarray(coefficient_matrix("triclinic", hkl), dtype=np.float64),
            np.ascontiguousarray(limits),
            lo,
            hi,
            int(max_unindexed),
            out,
        )
    return out


def basis_triples(n_lines: int, n_basis: int, overlaps: bool = False) -> list[tuple[int, int, int]]:
    """Lines i < j < k among the first ``n_basis`` taken as Q(100), Q(010), Q(001), lowest lines first.

    With ``overlaps`` also i <= j <= k: two or three axial lines in one observed line (LiV5O10's Q(010) and Q(100)
    lie 0.07° apart, under one peak of 0.08° FWHM).
    """
    n = min(n_basis, n_lines)
    step = 0 if overlaps else 1
    triples = [(i, j, k) for i in range(n) for j in range(i + step, n) for k in range(j + step, n)]
    return sorted(triples, key=lambda t: (t[2], t[1], t[0]))


def _halve(lo: np.ndarray, hi: np.ndarray, axes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    for axis in axes:
        mid = 0.5 * (lo[:, axis] + hi[:, axis])
        lo_a, hi_a = lo.copy(), hi.copy()
        hi_a[:, axis] = mid
        lo_b = lo.copy()
        lo_b[:, axis] = mid
        lo, hi = np.concatenate([lo_a, lo_b]), np.concatenate([hi_a, hi.copy()])
    return lo, hi


def basis_indices(q_reach: float, a_hi: float, b_hi: float, c_hi: float, max_volume: float) -> np.ndarray:
    """Indices that can give a line up to ``q_reach`` in a cell of volume <= ``max_volume`` with these axes.

    |h| <= a √Q_reach, and a = b* c* sin α* V <= √(BC) V (likewise for k and l).

    Returns
    -------
    ndarray, shape (n_hkl, 3), int64
    """
    lengths = np.array([math.sqrt(b_hi * c_hi), math.sqrt(a_hi * c_hi), math.sqrt(a_hi * b_hi)]) * max_volume
    return miller_indices("triclinic", lengths, q_reach)


def _reachable(
    hkl: np.ndarray, coefficients: np.ndarray, lo: np.ndarray, hi: np.ndarray, q_reach: float
) -> tuple[np.ndarray, np.ndarray]:
    """The indices that may still give a line up to ``q_reach`` in one of the boxes (over their bounding box)."""
    box_lo, box_hi = lo.min(axis=0), hi.max(axis=0)
    keep = np.minimum(coefficients * box_lo, coefficients * box_hi).sum(axis=1) <= q_reach
    return hkl[keep], coefficients[keep]


def initial_box(low: np.ndarray, high: np.ndarray, reduced: bool) -> tuple[np.ndarray, np.ndarray]:
    """The starting box of (A, B, C, D, E, F) for axial lines in the intervals [low, high] (Å⁻², ascending).

    |cos| <= 1 bounds D, E and F by 2√(BC), 2√(AC), 2√(AB); E, F >= 0 by the choice of the signs of b* and c*.
    With ``reduced`` the basis is taken to be the Niggli-reduced reciprocal one, whose three vectors are the
    shortest non-coplanar ones (their lines the lowest that are not of one zone), and then |D| <= B, E <= A and
    F <= A (A <= B <= C; Niggli's main conditions |2 b*.c*| <= b*², |2 a*.c*| <= a*², |2 a*.b*| <= a*²: Křivý &
    Gruber, Acta Cryst. A32 (1976) 297): a box several times smaller. A lattice one of whose reduced axial lines
    is not observed is found only without ``reduced``.

    Returns
    -------
    lo, hi : ndarray, shape (1, 6)
    """
    (a_lo, b_lo, c_lo), (a_hi, b_hi, c_hi) = low, high
    d = 2 * math.sqrt(b_hi * c_hi)
    e = 2 * math.sqrt(a_hi * c_hi)
    f = 2 * math.sqrt(a_hi * b_hi)
    if reduced:
        d, e, f = min(d, b_hi), min(e, a_hi), min(f, a_hi)
    return np.array([[a_lo, b_lo, c_lo, -d, 0.0, 0.0]]), np.array([[a_hi, b_hi, c_hi, d, e, f]])


def surviving_boxes_triclinic(
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    basis: tuple[int, int, int],
    settings: TriclinicSettings,
    volume_shell: tuple[float, float],
    budget: WorkBudget | None = None,
    reduced: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Final boxes of (A, B, C, D, E, F) with A, B, C on the lines ``basis`` that index the lines.

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻², sorted by Q.
    basis : (int, int, int)
        Lines taken as Q(100), Q(010), Q(001).
    settings : TriclinicSettings
    volume_shell : (float, float)
        Volumes searched (Å³).
    budget : WorkBudget, optional
        Charged with every box tested; the search stops when it is spent (or its guard passes). None: no limit
        but ``max_boxes``.
    reduced : bool
        Only a Niggli-reduced reciprocal basis (:func:`initial_box`).

    Returns
    -------
    lo, hi : ndarray, shape (n_boxes, 6)
    hkl : ndarray, shape (n_hkl, 3)
        The indices the boxes were tested with.
    complete : bool
        False when the budget or ``max_boxes`` cut the search (no boxes are returned then).
    """
    q_reach = float(np.max(q_obs + q_tol))
    (a_lo, a_hi), (b_lo, b_hi), (c_lo, c_hi) = ((q_obs[i] - q_tol[i], q_obs[i] + q_tol[i]) for i in basis)
    hkl = basis_indices(q_reach, a_hi, b_hi, c_hi, volume_shell[1])
    lo, hi = initial_box(q_obs[list(basis)] - q_tol[list(basis)], q_obs[list(basis)] + q_tol[list(basis)], reduced)
    target = settings.resolution * np.sqrt([b_lo * c_lo, a_lo * c_lo, a_lo * b_lo])
    return box_dichotomy(q_obs, q_tol, lo, hi, hkl, target, settings, volume_shell, budget)


def box_dichotomy(
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    hkl: np.ndarray,
    target: np.ndarray,
    settings: TriclinicSettings,
    volume_shell: tuple[float, float],
    budget: WorkBudget | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Halve D, E and F of starting boxes of (A ... F) until narrower than ``target``, keeping the boxes that hold
    a lattice of the volume shell indexing all lines but ``settings.max_unindexed``.

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻², sorted by Q.
    lo, hi : ndarray, shape (n_boxes, 6)
        Starting boxes, all of the same widths (A, B, C are not halved).
    hkl : ndarray, shape (n_hkl, 3)
        Indices that lattices of the boxes can reach (:func:`basis_indices`).
    target : ndarray, shape (3,)
        Widths of D, E, F (Å⁻²) below which a box is final.
    settings : TriclinicSettings
    volume_shell : (float, float)
        Volumes searched (Å³).
    budget : WorkBudget, optional

    Returns
    -------
    lo, hi, hkl, complete
        As :func:`surviving_boxes_triclinic`.
    """
    v_min, v_max = volume_shell
    q_reach = float(np.max(q_obs + q_tol))
    coefficients = coefficient_matrix("triclinic", hkl)
    det_min = 1.0 / v_max**2
    det_max = math.inf if v_min <= 0 else 1.0 / v_min**2
    while True:
        keep = (determinant_upper(lo, hi) >= det_min) & (determinant_lower(lo, hi) <= det_max)
        lo, hi = lo[keep], hi[keep]
        if len(lo):
            hkl, coefficients = _reachable(hkl, coefficients, lo, hi, q_reach)
            missing = count_unindexed_triclinic(q_obs, q_tol, hkl, lo, hi, settings.max_unindexed)
            if budget is not None:
                budget.charge(len(lo))
            passed = missing <= settings.max_unindexed
            lo, hi = lo[passed], hi[passed]
        if not len(lo):
            return lo, hi, hkl, True
        width = (hi - lo)[0, 3:]
        axes = tuple(3 + i for i in range(3) if width[i] > target[i])
        if not axes:
            return lo, hi, hkl, True
        if (budget is not None and budget.stopped) or len(lo) << len(axes) > settings.max_boxes:
            return lo[:0], hi[:0], hkl, False
        lo, hi = _halve(lo, hi, axes)


def searched_shells(q_obs: np.ndarray, settings: TriclinicSettings) -> list[tuple[float, float]]:
    """The volume shells (Å³) of :func:`volume_shells` cut to ``settings.min_volume`` .. ``settings.max_volume``."""
    return [
        (max(start, settings.min_volume), end)
        for start, end in volume_shells(q_obs, settings.max_volume, settings.shell_ratio)
        if end > settings.min_volume
    ]


def refine_final_boxes(
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    q_reach: float,
    max_volume: float,
    max_unindexed: int,
) -> list[Refinement]:
    """Least-squares cells from the centres of final boxes of (A ... F), one start per small neighbourhood
    (neighbouring final boxes refine to the same cell); the starts that do not hold within the tolerances are
    dropped.

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻², sorted by Q.
    lo, hi : ndarray, shape (n_boxes, 6)
        Final boxes of one dichotomy (all of the same widths).
    q_reach : float
        Largest Q indexed (Å⁻²).
    max_volume : float
        Largest volume of the boxes' lattices (Å³), which bounds the indices tried.
    max_unindexed : int

    Returns
    -------
    list of Refinement
    """
    hkl = basis_indices(q_reach, hi[0, 0], hi[0, 1], hi[0, 2], 1.05 * max_volume)
    centres = 0.5 * (lo + hi)
    near = 10 * (hi[0] - lo[0]) + 1e-12
    tried, n_tried = np.empty_like(centres), 0
    results = []
    for centre in centres:
        if np.any(np.all(np.abs(tried[:n_tried] - centre) <= near, axis=1)):
            continue
        tried[n_tried] = centre
        n_tried += 1
        result = refine_reciprocal("triclinic", q_obs, q_tol, centre, hkl, max_unindexed)
        if result is not None:
            results.append(result)
    return results


def search_triclinic(
    q_obs: np.ndarray, q_tol: np.ndarray, settings: TriclinicSettings, budget: WorkBudget | None = None
) -> tuple[list[Refinement], str | None]:
    """Refined triclinic solutions (reciprocal parameters A ... F, hkl per line, indexed mask), and what cut it.

    Volume shells are searched smallest first, and bases lowest lines first; the search stops at the first basis
    that gives a solution (the smallest cell; triclinic lattices have no extinctions to make a supercell look
    better), or when its box budget is spent; the passes of ``settings.bases`` in turn (module docstring).

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻², sorted by Q.
    settings : TriclinicSettings
    budget : WorkBudget, optional
        The boxes this search may test, charged as it goes (shared with other searches by the caller). Default: a
        new one of ``settings.box_budget`` boxes and ``settings.time_limit``.

    Returns
    -------
    solutions : list of (ndarray (6,), ndarray (n_lines, 3), ndarray (n_lines,) bool)
    cut : str or None
        None when the search covered every basis it examined; otherwise why it did not (box budget, the optional
        wall-clock guard, or bases skipped at the box limit).
    """
    if budget is None:
        budget = WorkBudget(settings.box_budget, settings.time_limit)
    unknown = set(settings.bases) - {"zones", "reduced", "any"}
    if unknown:
        raise ValueError(f"triclinic bases must be 'zones', 'reduced' or 'any', got {sorted(unknown)}")
    n_skipped = 0
    solutions: list[Refinement] = []
    for bases in settings.bases:
        if bases == "zones":
            from gasolve.indexing.zones import search_zones

            solutions, stopped = search_zones(q_obs, q_tol, settings, budget)
            skipped = 0
        else:
            solutions, skipped, stopped = _search_pass(q_obs, q_tol, settings, budget, bases == "reduced")
        n_skipped += skipped
        if stopped is not None:
            return solutions, stopped
        if solutions:
            break
    cut = None
    if n_skipped:
        cut = f"{n_skipped} bases skipped at the limit of {settings.max_boxes} boxes"
    return solutions, cut


def _search_pass(
    q_obs: np.ndarray, q_tol: np.ndarray, settings: TriclinicSettings, budget: WorkBudget, reduced: bool
) -> tuple[list[Refinement], int, str | None]:
    """One pass of :func:`search_triclinic` over the shells and bases: (solutions, bases skipped, why the budget
    stopped it or None)."""
    q_reach = 1.01 * float(np.max(q_obs + q_tol))
    solutions: list[Refinement] = []
    n_skipped = 0
    what = "reduced bases" if reduced else "any basis"
    for volume_shell in searched_shells(q_obs, settings):
        where = f"in the {volume_shell[0]:.0f}-{volume_shell[1]:.0f} Å³ shell ({what})"
        for basis in basis_triples(len(q_obs), settings.n_basis, overlaps=reduced):
            if budget.stopped:
                return solutions, n_skipped, f"{budget.reason()} {where}"
            lo, hi, _, done = surviving_boxes_triclinic(q_obs, q_tol, basis, settings, volume_shell, budget, reduced)
            if not done:
                if budget.stopped:
                    return solutions, n_skipped, f"{budget.reason()} {where}"
                # Too many boxes: a basis the lines hardly constrain; skipped, and said so.
                n_skipped += 1
            if not len(lo):
                continue
            for result in refine_final_boxes(q_obs, q_tol, lo, hi, q_reach, volume_shell[1], settings.max_unindexed):
                if not any(np.allclose(result[0], known[0], rtol=1e-4) for known in solutions):
                    solutions.append(result)
            if solutions:
                break
        if solutions:
            break
    return solutions, n_skipped, None
