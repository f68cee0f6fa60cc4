"""From observed line positions to ranked, reduced and de-duplicated cells.

Each crystal system is searched by successive dichotomy (:mod:`gasolve.indexing.dichotomy`) in volume shells of
400 Å³, smallest first, as DICVOL does; a system's search stops one shell after its first solution (larger cells
that also index every line are then mostly supercells). Every solution's lattice is settled by
:mod:`gasolve.indexing.lattice` (centring from the indices, Bravais type and conventional cell from spglib), and
solutions with the same Niggli cell are kept once, in their highest-symmetry description. Candidates are ranked by
de Wolff's M20 (J. Appl. Cryst. 1 (1968) 108-113), computed with the lattice's own extinctions, preferring
the higher symmetry among comparable figures (:func:`rank_solutions`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.indexing.budget import BudgetSpent, WorkBudget
from gasolve.indexing.dichotomy import DichotomySettings, LineShifts, Refinement, refine_reciprocal, surviving_boxes
from gasolve.indexing.figures_of_merit import de_wolff_m, within
from gasolve.indexing.lattice import (
    allowed_hkl,
    bravais_lattice,
    calculated_q,
    centring_violations,
    consistent_centrings,
    niggli_cell,
    primitive_basis,
    same_lattice,
)
from gasolve.indexing.systems import (
    PARAMETRISATIONS,
    SYSTEMS,
    box_cell,
    coefficient_matrix,
    direct_cell,
    miller_indices,
    reciprocal_parameters,
)

#: Width of DICVOL's volume shells (Å³).
SHELL_WIDTH = 400.0
#: A primitive cell below this fraction of another's volume is a smaller lattice, not the same one again.
SMALLER = 0.98


class SearchCut(Exception):
    """A search stopped early (box budget); ``solutions`` holds what it found before."""

    def __init__(self, solutions: list, message: str):
        super().__init__(message)
        self.solutions = solutions


#: Order of the crystal systems, highest symmetry first (trigonal lattices count as hexagonal).
SYMMETRY_RANK = {
    "cubic": 6,
    "hexagonal": 5,
    "trigonal": 5,
    "tetragonal": 4,
    "orthorhombic": 3,
    "monoclinic": 2,
    "triclinic": 1,
}

#: Free metric parameters of a lattice of each crystal system (cell lengths and angles its symmetry leaves free;
#: a rhombohedral lattice has two, a and c of its hexagonal axes).
FREE_PARAMETERS = {
    "cubic": 1,
    "hexagonal": 2,
    "trigonal": 2,
    "tetragonal": 2,
    "orthorhombic": 3,
    "monoclinic": 4,
    "triclinic": 6,
}


def ranking_figure(merit: float, n_lines: int, crystal_system: str) -> float:
    """M_N weighed by the lines that test the lattice: ``merit ** ((N - k) / (N - 1))``.

    de Wolff's M_N (J. Appl. Cryst. 1 (1968) 108) is the ratio of the mean discrepancy that calculated lines
    placed at random would leave to the one found, so about 1/M_N is the chance that a line falls that close to a
    calculated one by accident, and ln M_N is the evidence each line gives. A lattice with k free parameters can be
    fitted to any k lines, so only N - k of the N lines test it: the evidence is (N - k) ln M_N (the Occam factor
    of a Bayesian comparison of models with different numbers of parameters, MacKay, *Information Theory,
    Inference, and Learning Algorithms*, CUP 2003, ch. 28, with each fitted parameter costing one line's
    evidence). It is given back as the M that a cubic cell (k = 1) would need for the same evidence: M_N itself
    for a cubic cell, less for a cell with more parameters, and much less when few lines are used (8 lines, a
    monoclinic cell: M_8^(4/7)). With 20 lines the weighing is mild (orthorhombic: M20^(17/19)).

    Parameters
    ----------
    merit : float
        M_N with the unindexed lines counted (:attr:`IndexingSolution.merit`).
    n_lines : int
        N, the lines used (at most 20 count).
    crystal_system : str
        Of the lattice (its metric symmetry), for k (:data:`FREE_PARAMETERS`).

    Returns
    -------
    float
        ``merit`` itself when it is at most 1 or not finite.
    """
    n = min(int(n_lines), 20)
    k = FREE_PARAMETERS.get(crystal_system, 6)
    if not np.isfinite(merit) or merit <= 1.0 or n <= 1:
        return float(merit)
    return float(merit ** (max(n - k, 0) / (n - 1)))


@dataclass(frozen=True)
class IndexingSolution:
    """One lattice that indexes the lines.

    Attributes
    ----------
    cell : tuple of float
        Conventional cell (a, b, c in Å, alpha, beta, gamma in degrees), spglib's standard setting.
    bravais : str
        Bravais symbol (aP ... cF).
    crystal_system : str
        Crystal system of the lattice.
    niggli : tuple of float
        Niggli-reduced primitive cell.
    volume : float
        Volume of the conventional cell (Å³).
    n_indexed, n_lines : int
        Lines indexed within their tolerance, and lines used.
    m20 : float
        de Wolff's figure of merit over the first min(20, n_lines) lines (M_N when fewer than 20).
    searched_as : str
        Crystal system in which the dichotomy found it.
    two_theta_shifts : tuple of float
        2θ corrections refined with the cell (:class:`gasolve.indexing.dichotomy.LineShifts`: zero shift and
        specimen displacement, degrees, on top of the zero the lines were computed with); empty when none.
    m20_penalised : float or None
        M20 with every unindexed line counted in ⟨ε⟩ at its tolerance (:func:`gasolve.indexing.figures_of_merit.
        de_wolff_m`), the figure :func:`rank_solutions` ranks by; equal to ``m20`` when every line is indexed, and
        ``m20`` is used when None.
    """

    cell: tuple[float, float, float, float, float, float]
    bravais: str
    crystal_system: str
    niggli: tuple[float, float, float, float, float, float]
    volume: float
    n_indexed: int
    n_lines: int
    m20: float
    searched_as: str
    two_theta_shifts: tuple[float, ...] = ()
    m20_penalised: float | None = None

    @property
    def merit(self) -> float:
        """The ranking figure: :attr:`m20_penalised`, or M20 when it is not set."""
        return self.m20 if self.m20_penalised is None else self.m20_penalised

    @property
    def ranking(self) -> float:
        """The figure cells are ranked by: :attr:`merit` weighed by the lines that test the lattice
        (:func:`ranking_figure`)."""
        return ranking_figure(self.merit, self.n_lines, self.crystal_system)

    @property
    def primitive_volume(self) -> float:
        """Volume of the primitive cell (Å³)."""
        return self.volume / LATTICE_POINTS[self.bravais[1]]


#: Lattice points in the conventional cell of each centring (the rhombohedral lattice in its hexagonal axes).
LATTICE_POINTS = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}
#: Lattice points of the most centred conventional cell of the systems whose volume bounds :func:`searched_volume`
#: widens (the cheap searches of one or two parameters).
CENTRED_SEARCH = {"cubic": 4, "tetragonal": 2, "hexagonal": 3}


def searched_volume(system: str, primitive_volume: float) -> float:
    """The cell volume a system's dichotomy must search (Å³) to reach the lattices of that system up to a primitive
    volume (Å³).

    The dichotomy of a system searches its conventional cell, whose lines it indexes with every index, and the
    centring is read from the lines afterwards (:func:`gasolve.indexing.lattice.consistent_centrings`): a
    rhombohedral lattice is found as its triple hexagonal cell (obverse setting), a cF lattice as its fourfold
    cube. A bound set by a primitive volume (a convincing cell's, which a smaller lattice must undercut) is
    therefore multiplied by the most lattice points a conventional cell of the system holds (:data:`CENTRED_SEARCH`:
    cubic F 4, hexagonal R 3, tetragonal I 2). Simulated YbBr3 (R-3, 277 Å³ primitive, 833 Å³ in hexagonal axes,
    three impurity lines) was missed when a tetragonal cell of 721 Å³ bounded its hexagonal search at 736 Å³.

    The orthorhombic and monoclinic searches keep the bound as a conventional volume: their dichotomy costs grow
    steeply with the volume (simulated BiPd2Pb: the second pass's orthorhombic search up to 4 x 356 Å³ took its
    indexing from 15 to 42 s of CPU), and no benchmark pattern needed their centred cells beyond it.
    """
    return float(primitive_volume) * CENTRED_SEARCH.get(system, 1)


def _start(system: str, centre: np.ndarray) -> np.ndarray:
    return reciprocal_parameters(system, box_cell(system, centre))


def _indices_for_box(
    system: str, box_hi: np.ndarray, q_reach: float, cache: dict[tuple[int, ...], np.ndarray]
) -> np.ndarray:
    """Indices a cell of the box can need (its largest lengths, with a margin for the refinement to move)."""
    cell = box_cell(system, box_hi)
    lengths = np.array(cell[:3]) / np.sin(np.radians(cell[4]))  # sin β = 1 but for monoclinic
    limits = tuple(int(np.ceil(x * 1.05 * np.sqrt(q_reach))) for x in lengths)
    if limits not in cache:
        cache[limits] = miller_indices(system, np.array(limits) / np.sqrt(q_reach), q_reach)
    return cache[limits]


#: Width of the monoclinic search's sub-shells (Å³): :func:`_volume_shells`.
MONOCLINIC_SHELL_WIDTH = 100.0
#: Narrowest monoclinic sub-shell (Å³): the first sub-shell whose dichotomy runs into the box limit before any
#: solution is searched again in halves, down to this width, before the search ends there (:func:`search_system`).
MONOCLINIC_MIN_SHELL_WIDTH = 25.0


def _volume_shells(system: str, max_volume: float) -> list[tuple[float, float]]:
    """Volume shells searched in turn, smallest first: DICVOL's shells of :data:`SHELL_WIDTH`, each cut into
    sub-shells of :data:`MONOCLINIC_SHELL_WIDTH` for the monoclinic search.

    The boxes that survive the coarse levels of the monoclinic dichotomy grow steeply with the cell volume (large
    cells have many reflections, so wide boxes index any line): on the simulated Te(HO2)2 pattern (V = 144 Å³) the
    shell 0-400 Å³ tests 19 million boxes (2.3 million at level 2, past the box limit), the sub-shell 100-200 Å³
    that holds the cell 1.2 million (0.6 million at most at one level). Searching the small cells first finds them
    before the large ones run into the box limit; the volume searched after the first solution is the same.
    """
    width = MONOCLINIC_SHELL_WIDTH if system == "monoclinic" else SHELL_WIDTH
    edges = np.arange(0.0, max_volume, width)
    return [(float(v), float(min(v + width, max_volume))) for v in edges]


def search_system(
    system: str,
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    settings: DichotomySettings,
    shifts: LineShifts | None = None,
    budget: WorkBudget | None = None,
) -> list[Refinement]:
    """Refined solutions of one crystal system.

    Parameters
    ----------
    system : str
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻².
    settings : DichotomySettings
    shifts : LineShifts, optional
        2θ corrections refined with each cell (not in the triclinic search).
    budget : WorkBudget, optional
        The boxes the search may test (charged by it); for the triclinic search default
        ``settings.triclinic_boxes``, for the others none (``settings.max_boxes`` per level only). A spent budget
        ends the search: with the solutions found before (:class:`SearchCut`) or, without any,
        :class:`gasolve.indexing.budget.BudgetSpent`.
    """
    if system == "triclinic":
        from gasolve.indexing.triclinic import TriclinicSettings, search_triclinic

        triclinic = TriclinicSettings(
            max_volume=settings.max_volume,
            min_volume=settings.triclinic_min_volume,
            max_unindexed=settings.max_unindexed,
            box_budget=settings.triclinic_boxes,
            bases=settings.triclinic_bases,
        )
        solutions, cut = search_triclinic(q_obs, q_tol, triclinic, budget)
        if cut is not None:
            raise SearchCut(solutions, f"triclinic search incomplete: {cut}")
        return solutions
    q_reach = 1.01 * float(np.max(q_obs + q_tol))
    index_lists: dict[tuple[int, ...], np.ndarray] = {}
    solutions: list[Refinement] = []
    # The search ends with the shell of SHELL_WIDTH after the one of the first solution (larger cells that also
    # index every line are then mostly supercells); None until a solution is found.
    end = None
    # The first monoclinic sub-shell that runs into the box limit before any solution: (its upper volume, the
    # overflow). It is searched again in halves, but the search still ends with it unless they give a solution.
    overflow = None
    shells = _volume_shells(system, settings.max_volume)
    while shells:
        start, stop = shells.pop(0)
        if end is not None and start >= end:
            break
        if overflow is not None and not solutions and start >= overflow[0] - 1e-9:
            raise RuntimeError(overflow[1])
        try:
            lo, hi = surviving_boxes(system, q_obs, q_tol, settings, volume_shell=(start, stop), budget=budget)
        except BudgetSpent as spent:
            if solutions:
                raise SearchCut(solutions, f"{spent} (in the shell {start:.0f}-{stop:.0f} Å³)") from None
            raise
        except RuntimeError as error:
            if system != "monoclinic":
                raise
            if solutions:
                # The larger monoclinic cells past the first solution are only a check for supercells: keep what
                # was found (the sub-shells of :func:`_volume_shells` have reached it before the box limit).
                raise SearchCut(
                    solutions, f"{error} (in the shell {start:.0f}-{stop:.0f} Å³, after a solution)"
                ) from None
            if overflow is None:
                overflow = (stop, f"{error} (in the shell {start:.0f}-{stop:.0f} Å³)")
            if stop - start < 2 * MONOCLINIC_MIN_SHELL_WIDTH - 1e-9:
                raise RuntimeError(f"{error} (in the shell {start:.0f}-{stop:.0f} Å³)") from None
            # The boxes that survive a level grow with the width of the volume range as well as with the volume (a
            # wide box of a large cell indexes any line), so the halves of a sub-shell just past the box limit
            # can each stay under it: simulated Cs2Sr2O3 (363 Å³), 2,031,206 boxes at level 3 in 300-400 Å³ at
            # the grid's zero 0, the cell in 350-400 Å³. The larger sub-shells, which would overflow further,
            # are left as before.
            middle = 0.5 * (start + stop)
            shells[:0] = [(start, middle), (middle, stop)]
            continue
        tried = np.zeros((0, PARAMETRISATIONS[system].n_parameters))
        for box_lo, box_hi in zip(lo, hi, strict=True):
            centre = 0.5 * (box_lo + box_hi)
            # Neighbouring final boxes refine to the same cell: start once per 1 % neighbourhood.
            if len(tried) and np.any(np.all(np.abs(tried - centre) <= 0.01 * np.abs(centre), axis=1)):
                continue
            tried = np.vstack([tried, centre])
            guess = _start(system, centre)
            hkl = _indices_for_box(system, box_hi, q_reach, index_lists)
            result = refine_reciprocal(system, q_obs, q_tol, guess, hkl, settings.max_unindexed, shifts=shifts)
            if result is None:
                continue
            if any(np.allclose(result[0], known[0], rtol=1e-4) for known in solutions):
                continue
            solutions.append(result)
        if solutions and end is None:
            end = SHELL_WIDTH * (np.floor(start / SHELL_WIDTH + 1e-9) + 2)
    return solutions


#: Relative tolerance (of the longest conventional edge) within which a cell's metric is taken for a higher
#: symmetry when every indexed line still indexes (:func:`metric_upgrade`).
UPGRADE_TOLERANCE = 0.0025
#: An indexed line keeps a calculated line of the higher lattice within this multiple of its tolerance: a peak
#: that blends two reflections split by the pseudo-symmetry sits between them, which the lower-symmetry cell's
#: extra parameter absorbs (Ce2USe4: three blended lines at 1.15-1.38 tolerances after the tI refit).
UPGRADE_LINE_FACTOR = 1.5


def metric_upgrade(
    primitive: np.ndarray, crystal_system: str, q_obs: np.ndarray, q_tol: np.ndarray, indexed: np.ndarray
) -> tuple[str, str, tuple[float, ...]] | None:
    """The lattice of higher symmetry that a solution's cell is within ``UPGRADE_TOLERANCE`` of, when the lines it
    indexed all index in that lattice too; None otherwise.

    A lower-symmetry search lets equal edges drift apart by the lines' errors: pseudo-cubic Ce2USe4 (tI,
    a = 8.873, c = 8.832 Å) came out of the orthorhombic search as oI 8.835, 8.866, 8.875 Å, 0.1 % from tI, and
    the tetragonal search, with one parameter fewer, did not find it. The symmetrised cell (spglib's idealised
    standard lattice), refitted to the lines in its own lattice, is kept only if every indexed line has a
    calculated line of the higher lattice within ``UPGRADE_LINE_FACTOR`` times its tolerance.

    Parameters
    ----------
    primitive : ndarray, shape (3, 3)
        Rows of the solution's primitive basis (Å).
    crystal_system : str
        Of the lattice at the default tolerance.
    q_obs, q_tol : ndarray, shape (n_lines,)
        Observed Q = 1/d² and tolerances (Å⁻²).
    indexed : ndarray of bool, shape (n_lines,)

    Returns
    -------
    (bravais, crystal_system, conventional) or None
    """
    edge = max(bravais_lattice(primitive)[2][:3])
    bravais, system, conventional = bravais_lattice(primitive, symprec=max(0.01, UPGRADE_TOLERANCE * edge))
    if SYMMETRY_RANK[system] <= SYMMETRY_RANK[crystal_system] or not np.any(indexed):
        return None
    q_used, tol_used = q_obs[indexed], q_tol[indexed]
    conventional = _refit_metric(conventional, bravais, system, q_used, tol_used)
    if conventional is None:
        return None
    q_calc = calculated_q(conventional, bravais, 1.05 * float(np.max(q_used + tol_used)))
    if len(q_calc) == 0:
        return None
    nearest = np.min(np.abs(q_used[:, None] - q_calc[None, :]), axis=1)
    return (bravais, system, conventional) if bool(np.all(nearest <= UPGRADE_LINE_FACTOR * tol_used)) else None


def _refit_metric(
    conventional: tuple[float, ...], bravais: str, system: str, q_used: np.ndarray, tol_used: np.ndarray
) -> tuple[float, ...] | None:
    """The symmetrised cell refitted to the lines in its own lattice: each line takes the hkl of the nearest
    allowed reflection, then the system's reciprocal parameters (:mod:`gasolve.indexing.systems`) by weighted
    linear least squares; None for a system this does not handle (monoclinic, triclinic) or a fit that describes
    no lattice."""
    form = "hexagonal" if system == "trigonal" else system  # rhombohedral lattices in their hexagonal axes
    if form not in ("cubic", "tetragonal", "hexagonal", "orthorhombic"):
        return None
    hkl = allowed_hkl(conventional, bravais, 1.05 * float(np.max(q_used + tol_used)))
    q_hkl = np.einsum("ni,ij,nj->n", hkl, UnitCell(*conventional).reciprocal_metric, hkl)
    assigned = hkl[np.argmin(np.abs(q_used[:, None] - q_hkl[None, :]), axis=1)]
    design = coefficient_matrix(form, assigned) / tol_used[:, None]
    terms, *_ = np.linalg.lstsq(design, q_used / tol_used, rcond=None)
    return direct_cell(form, terms)


def settle(
    system: str, parameters: np.ndarray, hkl: np.ndarray, indexed: np.ndarray, q_obs: np.ndarray, q_tol: np.ndarray
) -> IndexingSolution:
    """The lattice of one dichotomy solution: centring, Bravais type, conventional and Niggli cells, M20."""
    cell = direct_cell(system, parameters)
    centrings = consistent_centrings(system, parameters, q_obs, q_tol, indexed) or ["P"]
    primitive = primitive_basis(cell, centrings[0])
    bravais, crystal_system, conventional = bravais_lattice(primitive)
    upgraded = metric_upgrade(primitive, crystal_system, q_obs, q_tol, indexed)
    if upgraded is not None:
        bravais, crystal_system, conventional = upgraded
    return lattice_solution(
        bravais, crystal_system, conventional, niggli_cell(primitive), q_obs, q_tol, indexed, searched_as=system
    )


def lattice_solution(
    bravais: str,
    crystal_system: str,
    conventional: tuple[float, ...],
    niggli: tuple[float, ...],
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    indexed: np.ndarray | None,
    searched_as: str,
    shifts: tuple[float, ...] = (),
) -> IndexingSolution:
    """The solution record of a lattice: its lines' figures of merit (M20 with and without the unindexed lines
    counted) against its calculated lines.

    Parameters
    ----------
    bravais, crystal_system : str
    conventional, niggli : tuple of float
        Conventional and Niggli-reduced cells (Å, degrees).
    q_obs, q_tol : ndarray, shape (n_lines,)
        Observed Q = 1/d² of the lines (corrected) and their tolerances (Å⁻²).
    indexed : ndarray of bool, shape (n_lines,), or None
        Lines the lattice indexes; None: those with a calculated line within their tolerance.
    searched_as : str
    shifts : tuple of float
        2θ corrections refined with the cell.

    Raises
    ------
    ValueError
        When ``indexed`` is None and the lattice indexes none of the lines.
    """
    # Calculated lines a little past the N-th line, so that its own (slightly higher or lower) line is there;
    # de_wolff_m counts only those up to Q_N in N_N.
    last = min(19, len(q_obs) - 1)
    q_calc = calculated_q(conventional, bravais, 1.05 * float(np.sort(q_obs)[last] + q_tol[np.argsort(q_obs)[last]]))
    if indexed is None:
        indexed = within(q_obs, q_calc, q_tol)
        if not indexed.any():
            raise ValueError("the lattice indexes none of the lines")
    return IndexingSolution(
        cell=tuple(float(x) for x in conventional),
        bravais=bravais,
        crystal_system=crystal_system,
        niggli=niggli,
        volume=float(UnitCell(*conventional).volume),
        n_indexed=int(np.count_nonzero(indexed)),
        n_lines=len(q_obs),
        m20=float(de_wolff_m(q_obs, q_calc, indexed=indexed).value),
        searched_as=searched_as,
        two_theta_shifts=tuple(shifts),
        m20_penalised=float(de_wolff_m(q_obs, q_calc, indexed=indexed, unindexed_error=q_tol).value),
    )


def index_lines(
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    settings: DichotomySettings | None = None,
    systems: tuple[str, ...] = SYSTEMS,
    min_m20: float = 10.0,
    notes: list[str] | None = None,
    convincing_m20: float = 20.0,
    shifts: LineShifts | None = None,
    budget: WorkBudget | None = None,
) -> list[IndexingSolution]:
    """Every lattice that indexes the lines, reduced, de-duplicated and ranked by M20 (best first).

    Parameters
    ----------
    q_obs, q_tol : ndarray, shape (n_lines,)
        Observed Q = 1/d² and tolerances (Å⁻²); at least 4 lines per free cell parameter are advisable.
    settings : DichotomySettings, optional
    systems : tuple of str
        Crystal systems to search (subset of :data:`gasolve.indexing.systems.SYSTEMS`), highest symmetry first.
    min_m20 : float
        Once a system gives a solution with at least this M20, the systems after it are searched only for cells
        with a smaller primitive volume (DICVOL's strategy: the same lattice found again in lower symmetry, or
        a supercell, would only repeat it).
    notes : list of str, optional
        Receives a note when a search is cut short (box budget, box limit).
    convincing_m20 : float
        A solution with at least this M20 spares the triclinic search.
    shifts : LineShifts, optional
        2θ corrections refined with each cell (:func:`search_system`).
    budget : WorkBudget, optional
        Boxes the triclinic search may test (:func:`search_system`).

    Returns
    -------
    list of IndexingSolution
    """
    settings = settings or DichotomySettings()
    q_obs = np.asarray(q_obs, dtype=float)
    q_tol = np.asarray(q_tol, dtype=float)
    if q_obs.ndim != 1 or q_obs.shape != q_tol.shape:
        raise ValueError(f"q_obs and q_tol must be 1-D of equal length, got {q_obs.shape} and {q_tol.shape}")
    if not (np.all(np.isfinite(q_obs)) and np.all(q_obs > 0) and np.all(np.isfinite(q_tol)) and np.all(q_tol > 0)):
        raise ValueError("q_obs and q_tol must be finite and positive")
    order = np.argsort(q_obs)
    q_obs = np.asarray(q_obs, dtype=float)[order]
    q_tol = np.asarray(q_tol, dtype=float)[order]
    if shifts is not None:
        if len(shifts.q_slope) != len(q_obs):
            raise ValueError(f"shifts describe {len(shifts.q_slope)} lines, q_obs {len(q_obs)}")
        shifts = shifts.take(order)
    for system in systems:
        if system not in PARAMETRISATIONS:
            raise ValueError(f"unknown crystal system {system!r}; expected one of {SYSTEMS}")
    found: list[IndexingSolution] = []
    for system in systems:
        if system == "triclinic" and any(s.m20 >= convincing_m20 for s in found):
            continue  # the slow triclinic search only when no higher-symmetry cell convinces
        sound = [s for s in found if s.m20 >= min_m20]
        if sound:
            # A lower-symmetry description of a lattice already found, or a larger cell indexing the same lines,
            # cannot beat it; only a smaller primitive cell could still be the answer.
            limit = min(s.primitive_volume for s in sound) * 1.02
            settings = replace(settings, max_volume=min(settings.max_volume, limit))
        try:
            system_solutions = search_system(system, q_obs, q_tol, settings, shifts, budget)
        except SearchCut as cut:
            system_solutions = cut.solutions
            if notes is not None:
                notes.append(str(cut))
        for result in system_solutions:
            corrected = q_obs - result.q_correction
            solution = settle(system, result.parameters, result.hkl, result.indexed, corrected, q_tol)
            settled = [solution, *_rhombohedral_alternative(system, solution, result, corrected, q_tol, settings)]
            for solution in settled:
                if len(result.shifts):
                    solution = replace(solution, two_theta_shifts=tuple(float(x) for x in result.shifts))
                _add_distinct(found, solution)
    return rank_solutions(found)


def _add_distinct(found: list[IndexingSolution], solution: IndexingSolution) -> None:
    """Add ``solution`` to ``found`` unless its lattice is there; a higher-symmetry description replaces it."""
    duplicate = [i for i, other in enumerate(found) if same_lattice(solution.niggli, other.niggli)]
    if not duplicate:
        found.append(solution)
    elif SYMMETRY_RANK.get(solution.crystal_system, 1) > SYMMETRY_RANK.get(found[duplicate[0]].crystal_system, 1):
        found[duplicate[0]] = solution


def _rhombohedral_alternative(
    system: str,
    solution: IndexingSolution,
    result: Refinement,
    q_obs: np.ndarray,
    q_tol: np.ndarray,
    settings: DichotomySettings,
) -> list[IndexingSolution]:
    """The rhombohedral lattice of a primitive hexagonal solution's axes when only impurity lines stand against it.

    The hexagonal dichotomy finds a rhombohedral lattice as its triple hexagonal cell and reads the R centring from
    the lines (:func:`gasolve.indexing.lattice.consistent_centrings`); the hP cell of the same axes has three times
    the calculated lines, so an impurity line often falls on one of the reflections -h+k+l ≠ 3n that R forbids, and
    the lattice then looks primitive. When at most the unindexed lines still allowed (``max_unindexed`` less those
    the solution leaves out) stand against the centring, the hR lattice is offered too, with them unindexed, and
    the ranking figure (de Wolff's M20 with the unindexed lines counted: J. Appl. Cryst. 1 (1968) 108) weighs its
    third of the calculated lines against the lines it leaves out, as DICVOL04 lets impurity lines stay unindexed
    (Boultif & Louër, J. Appl. Cryst. 37 (2004) 724). Simulated Ce2Zn17 (R-3m, three impurity lines) gave only the
    hP cell, which indexes all 20 lines (on the peak list before f2b04ca).

    Parameters
    ----------
    system : str
        The system searched; only ``"hexagonal"`` solutions are examined.
    solution : IndexingSolution
        The settled solution of ``result``.
    result : Refinement
        The dichotomy's refined solution (reciprocal parameters, indices, indexed lines).
    q_obs, q_tol : ndarray, shape (n_lines,)
        The lines as corrected for that solution, and their tolerances (Å⁻²).
    settings : DichotomySettings
        For ``max_unindexed``.

    Returns
    -------
    list of IndexingSolution
        The hR solution, or nothing.
    """
    spare = settings.max_unindexed - (len(q_obs) - solution.n_indexed)
    if system != "hexagonal" or solution.bravais != "hP" or spare <= 0:
        return []
    against = centring_violations(system, result.parameters, q_obs, q_tol, result.indexed, "R")
    if not 0 < np.count_nonzero(against) <= spare:
        return []
    return [settle(system, result.parameters, result.hkl, result.indexed & ~against, q_obs, q_tol)]


def rank_solutions(solutions: list[IndexingSolution], symmetry_margin: float = 0.5) -> list[IndexingSolution]:
    """Best first: among solutions whose ranking figure is within ``symmetry_margin`` of the best, higher symmetry
    first.

    The figure is :attr:`IndexingSolution.ranking`: M20 with the unindexed lines counted against it (each at its
    tolerance), so that a cell leaving more lines unindexed needs a better fit of the others to rank as high, and
    weighed by the lines that test the lattice (:func:`ranking_figure`), so that a cell with more free parameters
    needs a better fit too, the more so the fewer the lines.

    A lattice of lower symmetry and smaller volume can index the first twenty lines of a structure whose
    space group removes many reflections (a pseudo-subcell) and then scores a higher M20 than the true lattice;
    indexing programs prefer the higher symmetry when the figures of merit are comparable (Werner, in
    *Structure Determination from Powder Diffraction Data*, IUCr/OUP 2002, ch. 7), and so does this ranking.
    The Pawley fit of the leading candidates settles the rest.
    """
    if not solutions:
        return []
    best = max(s.ranking for s in solutions)
    comparable = [s for s in solutions if s.ranking >= symmetry_margin * best]
    rest = [s for s in solutions if s.ranking < symmetry_margin * best]
    comparable.sort(key=lambda s: (-SYMMETRY_RANK.get(s.crystal_system, 1), -s.ranking, s.volume))
    rest.sort(key=lambda s: (-s.ranking, s.volume))
    return comparable + rest
