"""Triclinic indexing from zones: Ito's method as Visser formulated it, completed by a small dichotomy.

A zone is a plane of the reciprocal lattice through the origin: the lines hk0 of some basis, whose Q are

    Q(m, n) = m² A' + n² B' + m n F'    (A' = |a*|², B' = |b*|², F' = 2 a*·b*, Å⁻²).

Ito's method (Ito, Nature 164 (1949) 755; Visser, J. Appl. Cryst. 2 (1969) 89-95) finds zones among the observed
lines first, because a zone has only three parameters, and then joins zones into the lattice. Here:

1. **Zones.** Two of the first ``n_seeds`` lines are taken as Q(10) and Q(01). F' comes from de Wolff's relation
   Q(11) + Q(1-1) = 2 (A' + B') (de Wolff, Acta Cryst. 10 (1957) 590-595): two observed lines whose sum is
   twice A' + B' give F' = (Q(11) - Q(1-1)) / 2; or from one observed line taken as Q(11) or Q(1-1) alone, since
   one of the pair is often weak or hidden. Each zone is refitted by linear least squares to the lines it
   indexes, Gauss-reduced (|F'| <= A' <= B') and de-duplicated.
2. **Which zones are real.** A zone of small A' and B' indexes many lines by chance, so zones are ranked by the
   binomial probability that its lines catch as many of the other observed lines by chance (the fraction of the
   measured Q range that their tolerance windows cover is the probability of one line), most significant first.
3. **The lattice.** A zone and the three planes that contain it with index 2 (:func:`superzones`: its lines
   may come from a sublattice of the plane when the plane's shortest vector gives no line) are completed. A real
   zone is the plane (a*, b*) of a basis whose third vector is any lattice vector with
   l = ±1, so one of the low lines that the zone does not index is Q(001) of such a basis: C is pinned to it,
   A, B and F to the zone, and only D and E are halved (:func:`gasolve.indexing.triclinic.box_dichotomy`), a
   search of two dimensions where the search of bases pins three lines and halves three angles. Unlike the
   search of Niggli-reduced bases, this needs no axial line to be observed: a lattice whose shortest reciprocal
   vector lies below the measured range (its first line a second order), or gives no intensity, is found from
   the zones it has.

The volume shells of :func:`gasolve.indexing.triclinic.volume_shells` are searched smallest first, every
completion in each, as in DICVOL, and the search ends with the first shell that gives a cell of a sound M20 (the
smallest cell that indexes the lines is the answer; larger ones are mostly its supercells). Cells are refined by
least squares on (A ... F) (:func:`gasolve.indexing.dichotomy.refine_reciprocal`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from gasolve.crystal.cell import UnitCell
from gasolve.indexing.budget import WorkBudget
from gasolve.indexing.dichotomy import Refinement
from gasolve.indexing.lattice import lattice_vectors, niggli_cell, same_lattice
from gasolve.indexing.solutions import lattice_solution
from gasolve.indexing.systems import direct_cell
from gasolve.indexing.triclinic import (
    TriclinicSettings,
    basis_indices,
    box_dichotomy,
    refine_final_boxes,
    searched_shells,
)

#: Lines among which the two axes of a zone are sought.
ZONE_SEEDS = 10
#: Zones, most significant first, that are completed to lattices.
ZONES = 30
#: Lines not indexed by a zone that are tried as Q(001) of its completion, lowest first.
ZONE_THIRDS = 6
#: Volume stages of the sweep of zones over the zero shifts (:func:`gasolve.indexing.pattern.triclinic_stages`):
#: each ends at this ratio times the one before (the ratio of the volume shells), 16 of them, the last at the
#: volume limit.
ZONE_STAGE_RATIO = 1.25
ZONE_STAGES = 16


@dataclass(frozen=True)
class Zone:
    """A plane of the reciprocal lattice fitted to observed lines.

    Attributes
    ----------
    parameters : ndarray, shape (3,)
        A', B', F' (Å⁻²), Gauss-reduced: 0 <= F' <= A' <= B'.
    widths : ndarray, shape (3,)
        Half-widths of the intervals searched about them (Å⁻²).
    indexed : ndarray, shape (n_lines,), bool
        Lines the zone indexes.
    chance : float
        Binomial probability that the zone's lines catch as many of the lines that did not define it by chance.
    """

    parameters: np.ndarray
    widths: np.ndarray
    indexed: np.ndarray
    chance: float


def zone_q(parameters: np.ndarray, q_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Q of the zone's lines up to ``q_max`` and their indices (m, n), one of each ± pair.

    Parameters
    ----------
    parameters : ndarray, shape (3,)
        A', B', F' (Å⁻²) of a positive-definite zone.
    q_max : float

    Returns
    -------
    q : ndarray, shape (n,)
    mn : ndarray, shape (n, 2), int
    """
    a, b, f = (float(x) for x in parameters)
    det = a * b - 0.25 * f * f
    if det <= 0:
        return np.zeros(0), np.zeros((0, 2), dtype=int)
    m_max = int(math.sqrt(q_max * b / det)) + 1
    n_max = int(math.sqrt(q_max * a / det)) + 1
    m, n = np.meshgrid(np.arange(0, m_max + 1), np.arange(-n_max, n_max + 1), indexing="ij")
    m, n = m.ravel(), n.ravel()
    keep = (m > 0) | (n > 0)
    m, n = m[keep], n[keep]
    q = m * m * a + n * n * b + m * n * f
    inside = q <= q_max
    return q[inside], np.stack([m[inside], n[inside]], axis=1)


def _assign(q_obs, q_tol, parameters, slack) -> tuple[np.ndarray, np.ndarray]:
    """Nearest zone line of each observed line: (indexed mask, (m, n) per line)."""
    q_calc, mn = zone_q(parameters, float(np.max(q_obs + q_tol)) + slack)
    if not len(q_calc):
        return np.zeros(len(q_obs), dtype=bool), np.zeros((len(q_obs), 2), dtype=int)
    order = np.argsort(q_calc)
    q_calc, mn = q_calc[order], mn[order]
    right = (
        np.clip(np.searchsorted(q_calc, q_obs), 1, len(q_calc) - 1)
        if len(q_calc) > 1
        else np.zeros(len(q_obs), dtype=int)
    )
    left = np.maximum(right - 1, 0)
    nearest = np.where(np.abs(q_calc[left] - q_obs) <= np.abs(q_calc[right] - q_obs), left, right)
    indexed = np.abs(q_calc[nearest] - q_obs) <= q_tol + slack
    return indexed, mn[nearest]


def _refit(q_obs, q_tol, parameters, slack) -> tuple[np.ndarray, np.ndarray] | None:
    """Zone parameters refitted by weighted least squares to the lines they index; None when too few."""
    for _ in range(3):
        indexed, mn = _assign(q_obs, q_tol, parameters, slack)
        if indexed.sum() < 3:
            return None
        m, n = mn[indexed, 0].astype(float), mn[indexed, 1].astype(float)
        design = np.stack([m * m, n * n, m * n], axis=1) / q_tol[indexed, None]
        if np.linalg.matrix_rank(design) < 3:
            return None
        parameters = np.linalg.lstsq(design, q_obs[indexed] / q_tol[indexed], rcond=None)[0]
        slack = 0.0
    indexed, _ = _assign(q_obs, q_tol, parameters, 0.0)
    return parameters, indexed


def gauss_reduced(parameters: np.ndarray) -> np.ndarray | None:
    """The Gauss-reduced form of a zone (0 <= F' <= A' <= B'); None when it is not positive definite.

    Lagrange-Gauss reduction of the two vectors: subtract the nearest multiple of the shorter from the longer
    until |2 a*·b*| <= |a*|², then choose the sign of b* that makes F' >= 0.
    """
    a, b, f = (float(x) for x in parameters)
    if a <= 0 or b <= 0 or 4 * a * b - f * f <= 0:
        return None
    for _ in range(100):
        if a > b:
            a, b = b, a
        if abs(f) <= a * (1 + 1e-12):
            break
        k = round(f / (2 * a))
        b, f = b - k * f + k * k * a, f - 2 * k * a
    return np.array([a, b, abs(f)])


def _coverage(q_calc: np.ndarray, tolerance_at, low: float, high: float) -> float:
    """Fraction of [low, high] (Å⁻²) within a line's tolerance of some zone line (union of the windows)."""
    q_calc = np.sort(q_calc[(q_calc >= low) & (q_calc <= high)])
    if not len(q_calc) or high <= low:
        return 0.0
    half = tolerance_at(q_calc)
    starts, ends = np.maximum(q_calc - half, low), np.minimum(q_calc + half, high)
    covered, current_start, current_end = 0.0, starts[0], ends[0]
    for start, end in zip(starts[1:], ends[1:], strict=True):
        if start > current_end:
            covered += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    covered += current_end - current_start
    return min(1.0, covered / (high - low))


def _widths(parameters: np.ndarray, q_obs: np.ndarray, q_tol: np.ndarray) -> np.ndarray:
    """Half-widths searched about A', B', F': the line tolerance at Q = A', B' and A' + B' (Å⁻²)."""
    a, b = float(parameters[0]), float(parameters[1])
    return np.interp([a, b, a + b], q_obs, q_tol)


def find_zones(q_obs: np.ndarray, q_tol: np.ndarray, n_seeds: int = ZONE_SEEDS) -> list[Zone]:
    """Zones of the observed lines, most significant first (module docstring, steps 1 and 2).

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻², sorted by Q.
    n_seeds : int
        Lines among which the zone axes Q(10) and Q(01) are sought.

    Returns
    -------
    list of Zone
    """
    q_obs = np.asarray(q_obs, dtype=float)
    q_tol = np.asarray(q_tol, dtype=float)
    n_lines = len(q_obs)
    low, high = float(q_obs[0] - q_tol[0]), float(np.max(q_obs + q_tol))

    def tolerance_at(q):
        return np.interp(q, q_obs, q_tol)

    starts: list[tuple[np.ndarray, frozenset, float]] = []
    n = min(n_seeds, n_lines)
    for i in range(n):
        for j in range(i, n):
            a, b = q_obs[i], q_obs[j]
            slack_ab = q_tol[i] + q_tol[j]
            pair_sum = q_obs[:, None] + q_obs[None, :]
            close = np.abs(pair_sum - 2 * (a + b)) <= q_tol[:, None] + q_tol[None, :] + 2 * slack_ab
            for k, m in zip(*np.nonzero(np.triu(close, 1)), strict=True):
                starts.append((np.array([a, b, 0.5 * (q_obs[m] - q_obs[k])]), frozenset({i, j, k, m}), slack_ab))
            for k in range(n_lines):
                if k in (i, j):
                    continue
                f = abs(q_obs[k] - a - b)
                if f <= a + q_tol[k] + slack_ab:
                    starts.append((np.array([a, b, f]), frozenset({i, j, k}), q_tol[k] + slack_ab))
    zones: list[Zone] = []
    seen: list[np.ndarray] = []
    for start, used, slack in starts:
        if gauss_reduced(start) is None:
            continue
        refitted = _refit(q_obs, q_tol, start, slack)
        if refitted is None:
            continue
        reduced = gauss_reduced(refitted[0])
        if reduced is None:
            continue
        widths = _widths(reduced, q_obs, q_tol)
        if any(np.all(np.abs(reduced - other) <= widths) for other in seen):
            continue
        seen.append(reduced)
        indexed = refitted[1]
        others = [line for line in range(n_lines) if line not in used]
        caught = int(indexed[others].sum())
        coverage = _coverage(zone_q(reduced, high)[0], tolerance_at, low, high)
        chance = 1.0 if caught == 0 else float(binom.sf(caught - 1, len(others), coverage))
        zones.append(Zone(reduced, widths, indexed, chance))
    zones.sort(key=lambda z: (z.chance, -int(z.indexed.sum())))
    return zones


_ZONE_CACHE: dict[bytes, list[Zone]] = {}


def zones_of(q_obs: np.ndarray, q_tol: np.ndarray) -> list[Zone]:
    """:func:`find_zones`, computed once per set of lines: the zone search runs at every volume stage, zero
    shift and number of unindexed lines of one pattern (the zones depend on the lines and the zero only)."""
    key = np.concatenate([q_obs, q_tol]).tobytes()
    if key not in _ZONE_CACHE:
        if len(_ZONE_CACHE) >= 64:
            _ZONE_CACHE.clear()
        _ZONE_CACHE[key] = find_zones(q_obs, q_tol)
    return _ZONE_CACHE[key]


def superzones(zone: Zone, q_obs: np.ndarray, q_tol: np.ndarray) -> list[Zone]:
    """The three planes that contain the zone's plane lattice with index 2, Gauss-reduced, with the lines they index.

    A zone found from the lines Q(u) and Q(v) is the lattice plane itself only when u and v are a basis of it;
    when its shortest vector gives no line (below the measured range, or of no intensity: a second order such as
    002 is then the first line, or a pseudo-centring leaves 100 and 010 out), u and v span a sublattice of index 2,
    to which no third vector adds a basis of the lattice. The planes L + Z t, t = u/2, v/2 or (u + v)/2, are
    (A'/4, B', F'/2), (A', B'/4, F'/2) and ((A' + B' + F')/4, B', B' + F'/2).

    Parameters
    ----------
    zone : Zone
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻², sorted by Q.

    Returns
    -------
    list of Zone
        Their ``chance`` is the zone's (they are searched with it, not ranked).
    """
    a, b, f = zone.parameters
    planes = []
    for parameters in ((a / 4, b, f / 2), (a, b / 4, f / 2), ((a + b + f) / 4, b, b + f / 2)):
        reduced = gauss_reduced(np.array(parameters))
        if reduced is None:
            continue
        indexed, _ = _assign(q_obs, q_tol, reduced, 0.0)
        widths = _widths(reduced, q_obs, q_tol)
        planes.append(Zone(reduced, widths, indexed, zone.chance))
    return planes


def search_zones(
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    settings: TriclinicSettings,
    budget: WorkBudget | None = None,
    n_zones: int = ZONES,
    n_thirds: int = ZONE_THIRDS,
    min_m20: float = 10.0,
) -> tuple[list[Refinement], str | None]:
    """Triclinic lattices completed from the most significant zones (module docstring, step 3).

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻², sorted by Q.
    settings : TriclinicSettings
        Its volume limits, ``max_unindexed``, ``resolution``, ``max_boxes`` and ``shell_ratio`` apply.
    budget : WorkBudget, optional
        Charged with every box tested.
    n_zones, n_thirds : int
        Zones completed; lines tried as Q(001) of each.
    min_m20 : float
        The search ends with the first volume shell that gives a cell of at least this de Wolff M20; cells of a
        lower M20 in smaller shells are kept but do not end it (a long axis from a superzone lets a wrong cell
        index all but one line below the true volume: simulated KBi2F7, 19 of 20 lines at 300 Å³, M20 < 10,
        true cell 359 Å³).

    Returns
    -------
    solutions : list of Refinement
        The cells found up to the first volume shell (:func:`gasolve.indexing.triclinic.volume_shells`) in which
        a zone completes to a lattice of M20 >= ``min_m20``, smallest first.
    cut : str or None
        Why the search stopped early (the budget), else None.
    """
    budget = budget or WorkBudget(settings.box_budget, settings.time_limit)
    q_obs = np.asarray(q_obs, dtype=float)
    q_tol = np.asarray(q_tol, dtype=float)
    q_reach = 1.01 * float(np.max(q_obs + q_tol))
    zones = [plane for zone in zones_of(q_obs, q_tol)[:n_zones] for plane in (zone, *superzones(zone, q_obs, q_tol))]
    pairs = [(zone, third) for zone in zones for third in _thirds(zone, n_thirds)]
    found: list[tuple[float, tuple, Refinement]] = []
    sound = False
    for volume_shell in searched_shells(q_obs, settings):
        for zone, third in pairs:
            if budget.stopped:
                where = f"in the {volume_shell[0]:.0f}-{volume_shell[1]:.0f} Å³ shell (zones)"
                return _smallest(found), f"{budget.reason()} {where}"
            for result in _complete(q_obs, q_tol, q_reach, zone, third, settings, volume_shell, budget):
                cell = direct_cell("triclinic", result.parameters)
                if cell is None:
                    continue
                reduced = niggli_cell(lattice_vectors(cell))
                if not any(same_lattice(reduced, other) for _, other, _ in found):
                    found.append((UnitCell(*cell).volume, reduced, result))
                    merit = lattice_solution("aP", "triclinic", reduced, reduced, q_obs, q_tol, result.indexed, "")
                    sound = sound or merit.m20 >= min_m20
        if sound:
            break
    return _smallest(found), None


def _thirds(zone: Zone, n_thirds: int) -> np.ndarray:
    """Lines tried as Q(001) of the zone's completion: the lowest that it does not index."""
    return np.flatnonzero(~zone.indexed)[:n_thirds]


def _complete(q_obs, q_tol, q_reach, zone: Zone, third: int, settings, volume_shell, budget) -> list[Refinement]:
    """Lattices of the zone with Q(001) on line ``third``: D and E halved, the final boxes refined."""
    (a, b, f), (wa, wb, wf) = zone.parameters, zone.widths
    c, wc = q_obs[third], q_tol[third]
    d_max = 2 * math.sqrt((b + wb) * (c + wc))
    e_max = 2 * math.sqrt((a + wa) * (c + wc))
    lo = np.array([[a - wa, b - wb, c - wc, -d_max, 0.0, f - wf]])
    hi = np.array([[a + wa, b + wb, c + wc, d_max, e_max, f + wf]])
    hkl = basis_indices(q_reach, a + wa, b + wb, c + wc, volume_shell[1])
    target = settings.resolution * np.sqrt([(b - wb) * (c - wc), (a - wa) * (c - wc), (a - wa) * (b - wb)])
    target[2] = max(target[2], 2 * wf)  # F is pinned by the zone
    lo, hi, _, _ = box_dichotomy(q_obs, q_tol, lo, hi, hkl, target, settings, volume_shell, budget)
    if not len(lo):
        return []
    return refine_final_boxes(q_obs, q_tol, lo, hi, q_reach, volume_shell[1], settings.max_unindexed)


def _smallest(found: list) -> list[Refinement]:
    """The refined cells, smallest volume first."""
    return [r for _, _, r in sorted(found, key=lambda x: x[0])]
