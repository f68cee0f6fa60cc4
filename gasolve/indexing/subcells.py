"""Smaller cells hidden behind a supercell, and whether a supercell's extra lines are more than chance.

A cell of n times the volume of the true one has n times as many calculated lines, so it indexes a stray
(impurity) line by chance far more often; with one or two such lines among the first twenty it can index more
lines than the true cell, be the only one the first indexing pass finds (it allows one unindexed line), and fit
the pattern better in the Pawley check (it has a free intensity at the stray line). Two tools undo that:

- :func:`derived_subcells` lists the cells whose lattice contains a found cell's lattice with index 2 or 3 (and,
  applied twice, 4, 6 or 9), i.e. the lattices L + Z t with t a fraction 1/n of a lattice vector, and keeps those
  that still index all but a few of the lines. This is the derivative-lattice check of indexing programs
  (Santoro & Mighell, Acta Cryst. A 28 (1972) 284; DICVOL04 and CHEKCELL's "best subcell") done by enumeration: a
  lattice of prime index n over L holds one of the (n³ - 1)/(n - 1) classes of t (7 for n = 2, 13 for n = 3).
- :func:`extra_lines_by_chance` asks whether the lines a supercell indexes beyond its subcell are what its extra
  calculated lines would catch at random: of the m observed lines the subcell leaves unindexed, the supercell
  indexes k; a line placed at random in the 2θ range falls within the tolerance of one of the supercell's extra
  lines with probability p (their windows' share of the range), so k follows a binomial(m, p) under chance, and
  the supercell is only supported when P(X ≥ k) is small. A true superstructure explains most of the lines its
  subcell misses, well beyond chance; one or two impurity lines caught by a doubled cell are not evidence.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from gasolve.crystal.cell import UnitCell
from gasolve.indexing.figures_of_merit import q_from_two_theta, two_theta_from_q, within
from gasolve.indexing.lattice import (
    bravais_lattice,
    calculated_q,
    cell_parameters,
    niggli_basis,
    niggli_cell,
    primitive_basis,
    same_lattice,
)
from gasolve.indexing.solutions import IndexingSolution, lattice_solution

#: Prime indices of the sublattices tried in one step (two steps also reach 4, 6 and 9).
SUBLATTICE_INDICES = (2, 3)
#: A supercell is supported by its extra lines when chance alone would give at least as many with a probability
#: below this (the conventional 5 %). At 1 % the true mP cell of simulated Te(HO2)2 (report half), whose
#: C-centring-violating reflections are weak, went behind a C-centred subcell of 17 of 20 lines: it catches 2 of
#: the 6 lines the subcell misses, p = 0.010, and fits the pattern 1.47 times better (Rwp 0.040 against 0.059).
CHANCE_LEVEL = 0.05


def sublattice_translations(n: int) -> np.ndarray:
    """One translation t (fractional, in [0, 1)) of each lattice L + Z t that contains L with prime index ``n``.

    Parameters
    ----------
    n : int
        A prime.

    Returns
    -------
    ndarray, shape ((n³ - 1)/(n - 1), 3)
        Each t with its first non-zero component 1/n (t and its multiples k·t give the same lattice).
    """
    if n < 2 or any(n % d == 0 for d in range(2, math.isqrt(n) + 1)):
        raise ValueError(f"sublattice index {n}: expected a prime")
    found = []
    for triple in itertools.product(range(n), repeat=3):
        first = next((x for x in triple if x), 0)
        if first == 1:
            found.append(np.array(triple, dtype=float) / n)
    return np.array(found)


def _finer_basis(basis: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rows of a basis of L + Z t (L: rows of ``basis``; t fractional with its first non-zero component 1/n):
    t·basis replaces the axis of that component (n·t minus integer multiples of the other axes gives it back)."""
    axis = int(np.flatnonzero(t)[0])
    finer = np.array(basis, dtype=float)
    finer[axis] = t @ basis
    return finer


def solution_of_basis(
    primitive: np.ndarray, q_obs: np.ndarray, q_tol: np.ndarray, searched_as: str, shifts: tuple[float, ...] = ()
) -> IndexingSolution:
    """The indexing solution of a lattice given by a primitive basis: its Bravais type, conventional and Niggli
    cells, the lines it indexes and its M20 (with and without the unindexed lines counted).

    Parameters
    ----------
    primitive : ndarray, shape (3, 3)
        Rows of a primitive basis (Å).
    q_obs, q_tol : ndarray, shape (n_lines,)
        Observed Q = 1/d² of the lines (zero shift and line shifts removed) and their tolerances (Å⁻²).
    searched_as : str
        Recorded as the solution's :attr:`IndexingSolution.searched_as`.
    shifts : tuple of float
        The 2θ corrections the lines were corrected with (kept with the solution).
    """
    bravais, system, conventional = bravais_lattice(primitive)
    return lattice_solution(
        bravais, system, conventional, niggli_cell(primitive), q_obs, q_tol, None, searched_as, shifts
    )


def derived_subcells(
    solution: IndexingSolution, q_obs: np.ndarray, q_tol: np.ndarray, max_unindexed: int, depth: int = 2
) -> list[IndexingSolution]:
    """Cells whose lattice contains ``solution``'s with index 2 or 3 (per step, ``depth`` steps) and that leave at
    most ``max_unindexed`` of the lines unindexed.

    Parameters
    ----------
    solution : IndexingSolution
        A found cell.
    q_obs, q_tol : ndarray, shape (n_lines,)
        The lines it was found from, corrected as for it (zero shift and its line shifts removed), and their
        tolerances (Å⁻²).
    max_unindexed : int
    depth : int
        Steps of index 2 or 3 (2: indices 2, 3, 4, 6, 9).

    Returns
    -------
    list of IndexingSolution
        Distinct by lattice, ``searched_as`` "subcell of <bravais> V=<volume>".
    """
    q_obs = np.asarray(q_obs, dtype=float)
    q_tol = np.asarray(q_tol, dtype=float)
    q_max = 1.05 * float(np.max(q_obs + q_tol))
    start = niggli_basis(primitive_basis(solution.cell, solution.bravais[1]))
    label = f"subcell of {solution.bravais} {solution.volume:.1f} Å³"
    found: list[IndexingSolution] = []
    frontier = [start]
    for _ in range(depth):
        following = []
        for basis in frontier:
            for n in SUBLATTICE_INDICES:
                for t in sublattice_translations(n):
                    finer = niggli_basis(_finer_basis(basis, t))
                    q_calc = np.sort(calculated_q(cell_parameters(finer), "aP", q_max))
                    if np.count_nonzero(~within(q_obs, q_calc, q_tol)) > max_unindexed:
                        continue
                    try:
                        candidate = solution_of_basis(finer, q_obs, q_tol, label, solution.two_theta_shifts)
                    except (ValueError, RuntimeError):
                        continue
                    if any(same_lattice(candidate.niggli, other.niggli) for other in found):
                        continue
                    found.append(candidate)
                    following.append(finer)
        frontier = following
    return found


@dataclass(frozen=True)
class ExtraLines:
    """What a supercell's extra calculated lines catch of the lines its subcell leaves unindexed.

    Attributes
    ----------
    unindexed : int
        m, observed lines the subcell leaves unindexed.
    caught : int
        k, of those, lines the supercell indexes.
    coverage : float
        p, the share of the 2θ range within the tolerance of one of the supercell's lines that the subcell lacks.
    p_value : float
        P(X ≥ k) for X ~ binomial(m, p): the chance of catching that many at random (1 when k = 0).
    """

    unindexed: int
    caught: int
    coverage: float
    p_value: float

    @property
    def by_chance(self) -> bool:
        """Whether the supercell catches some of the lines and chance explains them (p-value at least
        :data:`CHANCE_LEVEL`). With none caught the supercell has no advantage in lines to explain away; the
        figures of merit and the Pawley check decide between the two as between any cells."""
        return self.caught > 0 and self.p_value >= CHANCE_LEVEL


def extra_lines_by_chance(
    two_theta: np.ndarray,
    wavelength: float,
    tolerance: float,
    supercell: tuple[tuple[float, ...], str, float],
    subcell: tuple[tuple[float, ...], str, float],
) -> ExtraLines:
    """The binomial test of a supercell's extra lines (module docstring).

    Parameters
    ----------
    two_theta : ndarray, shape (n_lines,)
        Observed lines (degrees), all those in the range compared.
    wavelength : float
        λ (Å).
    tolerance : float
        2θ tolerance of a line (degrees).
    supercell, subcell : (cell, bravais, zero)
        Each cell (a, b, c, α, β, γ), its Bravais symbol and its zero shift (degrees); the lines are compared after
        each cell's own zero.

    Returns
    -------
    ExtraLines
    """
    two_theta = np.sort(np.asarray(two_theta, dtype=float))
    low, high = float(two_theta[0]) - tolerance, float(two_theta[-1]) + tolerance
    sub_tt = _line_positions(subcell, wavelength, high)
    super_tt = _line_positions(supercell, wavelength, high)
    missed = ~within(two_theta, sub_tt, tolerance)
    caught = missed & within(two_theta, super_tt, tolerance)
    # The supercell's lines that its subcell does not have (the superstructure lines), in the subcell's frame.
    extra = super_tt[~within(super_tt, sub_tt, tolerance)]
    extra = extra[(extra >= low) & (extra <= high)]
    covered = _union_length(extra - tolerance, extra + tolerance, low, high)
    coverage = min(1.0, covered / max(high - low, 1e-12))
    m, k = int(missed.sum()), int(caught.sum())
    p_value = 1.0 if k == 0 else float(binom.sf(k - 1, m, coverage))
    return ExtraLines(m, k, coverage, p_value)


def _line_positions(cell_record: tuple[tuple[float, ...], str, float], wavelength: float, top: float) -> np.ndarray:
    """Calculated 2θ (degrees, with the cell's zero added) up to ``top``."""
    cell, bravais, zero = cell_record
    q_max = float(q_from_two_theta(np.array([min(top + 1.0, 179.0)]), wavelength)[0])
    q = calculated_q(tuple(cell), bravais, q_max)
    q = q[q * wavelength**2 / 4.0 < 1.0]
    return np.sort(two_theta_from_q(q, wavelength) + zero)


def _union_length(starts: np.ndarray, ends: np.ndarray, low: float, high: float) -> float:
    """Length of the union of the intervals, clipped to [low, high]."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts)
    total, current_start, current_end = 0.0, None, None
    for s, e in zip(np.clip(starts[order], low, high), np.clip(ends[order], low, high), strict=True):
        if current_end is None or s > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = s, e
        else:
            current_end = max(current_end, e)
    return total + (current_end - current_start)


def is_supercell(
    large: tuple[tuple[float, ...], str, float],
    small: tuple[tuple[float, ...], str, float],
    wavelength: float,
    top: float,
    tolerance: float,
) -> bool:
    """Whether, as far as the pattern can tell, ``large`` is a supercell of ``small``: every calculated line of
    ``small`` up to 2θ = ``top`` lies within ``tolerance`` of one of ``large``'s (each (cell, bravais, zero), 2θ
    in degrees)."""
    small_tt = _line_positions(small, wavelength, top)
    small_tt = small_tt[small_tt <= top]
    large_tt = _line_positions(large, wavelength, top + tolerance)
    return len(small_tt) > 0 and bool(np.all(within(small_tt, large_tt, tolerance)))


#: A derived supercell is supported when chance would catch as many of the lines its subcell misses with a
#: probability below this, far below :data:`CHANCE_LEVEL`: its metric was refitted to the lines with six free
#: parameters, which lets it reach lines a fixed lattice would not (on the simulated Li4VFe(TeO6)2 pattern every
#: one of the 20 superlattices of the true cell's pseudo-subcell caught 10-12 of its 13 lines, p ~ 1e-10 to 1e-8;
#: those of two wrong orthorhombic cells, p ~ 1e-5 to 1e-4, with their lines covering 40-56 % of the range).
SUPERCELL_LEVEL = 1e-6
#: ... and at least this many lines caught (impurity lines are a few).
SUPERCELL_MIN_CAUGHT = 5
#: Refinement rounds of a derived supercell's metric: lines within this many tolerances of a calculated line are
#: assigned to it, then the six reciprocal parameters are fitted (wide first, so that lines a small distortion
#: of the pseudo-symmetric metric moves are caught, then at the tolerance itself).
SUPERCELL_ROUNDS = (4.0, 2.0, 1.0)


def superlattice_bases(primitive: np.ndarray) -> list[np.ndarray]:
    """Rows of a basis of each lattice contained in the lattice of ``primitive`` (rows, Å) with index 2 or 3: the
    duals of the reciprocal lattices L* + Z s (:func:`sublattice_translations`)."""
    reciprocal = np.linalg.inv(np.asarray(primitive, dtype=float)).T
    bases = []
    for n in SUBLATTICE_INDICES:
        for s in sublattice_translations(n):
            bases.append(np.linalg.inv(_finer_basis(reciprocal, s)).T)
    return bases


def refine_triclinic_metric(
    basis: np.ndarray, q_obs: np.ndarray, q_tol: np.ndarray, rounds: tuple[float, ...] = SUPERCELL_ROUNDS
) -> np.ndarray | None:
    """The basis (rows, Å) whose metric, free of any symmetry, best fits the lines: each round assigns every line
    to the nearest calculated line within that many tolerances and fits the six reciprocal parameters by weighted
    linear least squares (Q = A h² + B k² + C l² + D kl + E hl + F hk); None when too few lines are assigned (at
    least 8) or the fit describes no lattice. The basis keeps its orientation-free meaning: only the metric is
    returned, as the cell's lattice vectors (:func:`gasolve.indexing.lattice.lattice_vectors`)."""
    from gasolve.indexing.lattice import allowed_hkl, lattice_vectors
    from gasolve.indexing.systems import coefficient_matrix, direct_cell

    cell = cell_parameters(np.asarray(basis, dtype=float))
    q_max = 1.05 * float(np.max(q_obs + q_tol))
    for width in rounds:
        hkl = allowed_hkl(cell, "aP", q_max)
        q_calc = np.einsum("ni,ij,nj->n", hkl, UnitCell(*cell).reciprocal_metric, hkl)
        nearest = np.argmin(np.abs(q_obs[:, None] - q_calc[None, :]), axis=1)
        assigned = np.abs(q_obs - q_calc[nearest]) <= width * q_tol
        if np.count_nonzero(assigned) < 8:
            return None
        design = coefficient_matrix("triclinic", hkl[nearest[assigned]]) / q_tol[assigned, None]
        terms, *_ = np.linalg.lstsq(design, q_obs[assigned] / q_tol[assigned], rcond=None)
        refined = direct_cell("triclinic", terms)
        if refined is None:
            return None
        cell = refined
    return lattice_vectors(cell)


def supported_supercells(
    record: tuple[tuple[float, ...], str, float],
    two_theta: np.ndarray,
    wavelength: float,
    tolerance: float,
    level: float = SUPERCELL_LEVEL,
    min_caught: int = SUPERCELL_MIN_CAUGHT,
) -> list[tuple[np.ndarray, ExtraLines]]:
    """Supercells of index 2 or 3 of a cell whose extra lines catch far more of the lines it leaves unindexed than
    chance would (the converse of :func:`extra_lines_by_chance`): a pseudo-subcell found instead of the true cell.

    Each superlattice's metric is refitted to the lines without symmetry (:func:`refine_triclinic_metric`: the
    true cell's distortion from the pseudo-symmetric metric moves its lines), then tested.

    Parameters
    ----------
    record : (cell, bravais, zero)
        The found cell (a, b, c, α, β, γ), its Bravais symbol and zero shift (degrees).
    two_theta : ndarray, shape (n_lines,)
        Every observed line of the range compared (degrees).
    wavelength : float
        λ (Å).
    tolerance : float
        2θ tolerance of a line (degrees).
    level, min_caught : float, int
        A supercell is returned when its extra lines catch at least ``min_caught`` lines with a chance below
        ``level`` (defaults :data:`SUPERCELL_LEVEL`, :data:`SUPERCELL_MIN_CAUGHT`: supported by the lines alone;
        :data:`gasolve.indexing.pattern.SUGGESTED_MIN_CAUGHT` asks for less and tests the Pawley fit).

    Returns
    -------
    list of (basis, ExtraLines)
        The supported supercells (rows of a Niggli-reduced basis, Å), the most significant first.
    """
    cell, bravais, zero = record
    two_theta = np.sort(np.asarray(two_theta, dtype=float))
    q_obs = q_from_two_theta(two_theta, wavelength, zero)
    q_tol = q_from_two_theta(two_theta + tolerance, wavelength, zero) - q_obs
    missed = ~within(two_theta, _line_positions(record, wavelength, float(two_theta[-1]) + tolerance), tolerance)
    if np.count_nonzero(missed) < 3:
        return []
    found = []
    for basis in superlattice_bases(niggli_basis(primitive_basis(tuple(cell), bravais[1]))):
        refined = refine_triclinic_metric(basis, q_obs, q_tol)
        if refined is None:
            continue
        refined = niggli_basis(refined)
        test = extra_lines_by_chance(two_theta, wavelength, tolerance, (cell_parameters(refined), "aP", zero), record)
        if test.caught >= min_caught and test.p_value < level:
            found.append((refined, test))
    return sorted(found, key=lambda item: item[1].p_value)
