"""Indexing a measured pattern: peak search, dichotomy over a grid of zero shifts, Pawley check of the best cells.

The zero shift is searched on a grid (0, ±step, ±2 step, ... up to ``max_zero``) with a 2θ tolerance of at least
half the step, so that the true zero lies within the tolerance of one grid point; each cell found is refined with a
zero correction and a specimen displacement (:func:`line_shifts`, as DICVOL04 refines the zero: Boultif & Louër,
J. Appl. Cryst. 37 (2004) 724) before its lines are judged. The higher-symmetry systems (cubic to orthorhombic,
fast) are searched one at a time, each at every zero, a convincing cell at any zero limiting the lower systems to
smaller cells; the monoclinic one runs below the volume of the cells found, at the zero of the best. The leading
distinct lattices are then fitted to the low-angle part of the pattern by the Pawley-type fit of
:mod:`gasolve.profile_fit.lebail` (zero shift, cell, profile, every intensity free) in the lattice's holohedral
symmorphic group (only the centring extinctions); a cell that fits clearly worse than the best drops behind (a
supercell always fits at least as well, so Rwp alone would favour it), and a smaller cell of lower symmetry that
fits as well as a larger one ranked before it goes first. M20 (de Wolff 1968) and F_N (Smith & Snyder 1979) are
reported for each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.diffraction.noise import calibrated_pattern, calibration_note
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.indexing.budget import (
    MONOCLINIC_BOXES,
    TRICLINIC_BOXES,
    TRICLINIC_REDUCED_BOXES,
    TRICLINIC_RETRY_BOXES,
    TRICLINIC_ZONE_BOXES,
    TRICLINIC_ZONE_RETRY_BOXES,
    WorkBudget,
)
from gasolve.indexing.dichotomy import DichotomySettings, LineShifts
from gasolve.indexing.figures_of_merit import q_from_two_theta, smith_snyder_f
from gasolve.indexing.kbeta import KBetaLine, check_kbeta
from gasolve.indexing.lattice import calculated_q
from gasolve.indexing.peaks import PeakSearchSettings, search_peaks
from gasolve.indexing.solutions import (
    FREE_PARAMETERS,
    SMALLER,
    SYMMETRY_RANK,
    IndexingSolution,
    index_lines,
    rank_solutions,
    searched_volume,
)
from gasolve.indexing.superstructure import PawleyReflections
from gasolve.indexing.systems import SYSTEMS
from gasolve.indexing.zero import order_zeros
from gasolve.indexing.zones import ZONE_STAGE_RATIO, ZONE_STAGES
from gasolve.io.patterns import ObservedPattern

#: Holohedral symmorphic group of each Bravais lattice: the Pawley check needs only the lattice's extinctions.
HOLOHEDRY = {
    "aP": "P-1",
    "mP": "P2/m",
    "mC": "C2/m",
    "oP": "Pmmm",
    "oC": "Cmmm",
    "oI": "Immm",
    "oF": "Fmmm",
    "tP": "P4/mmm",
    "tI": "I4/mmm",
    "hR": "R-3m:H",
    "hP": "P6/mmm",
    "cP": "Pm-3m",
    "cI": "Im-3m",
    "cF": "Fm-3m",
}

_FAST_SYSTEMS = ("cubic", "tetragonal", "hexagonal", "orthorhombic")
#: Lines a lattice needs beyond its free parameters (:data:`~gasolve.indexing.solutions.FREE_PARAMETERS`) to be
#: tested by them; with fewer than :data:`FULL_SEARCH_LINES` lines only the systems that leave this many are searched.
TESTING_LINES = 4
#: Fewest lines indexed at all: a cubic cell (one parameter) and :data:`TESTING_LINES` more.
MIN_LINES = 1 + TESTING_LINES
#: Lines a supercell of a triclinic first cell must catch (at a chance below the conventional 5 %) before its
#: Pawley fit is examined (:func:`_weakly_supported`): more than the one or two impurity lines a chance supercell
#: catches. The triclinic search stops at the smallest cell that indexes the lines, so a pseudo-subcell of half
#: the volume hides the true cell, and a supercell of twice the lines seldom reaches the lines-alone level
#: (:data:`gasolve.indexing.subcells.SUPERCELL_LEVEL`). Simulated ReSe2 (P-1, report half): its cell of half the
#: volume indexes 19 of 20 lines (M20 221); the true cell catches 5 of the 7 lines it misses among 58 (p = 4·10⁻⁵).
#: Only the most significant such supercell within ``triclinic_max_volume`` is fitted: a Pawley fit of a triclinic
#: supercell costs 10-40 s (simulated Cs2PbO2's superlattice of 1,851 Å³ took 3 minutes).
SUGGESTED_MIN_CAUGHT = 3
#: From this many lines on, every system is searched (as before there was a rule for fewer).
FULL_SEARCH_LINES = 8
#: Below a convincing cell, lower symmetry is searched up to this fraction of its primitive volume.
_BELOW = 0.98


@dataclass(frozen=True)
class IndexingSettings:
    """How a pattern is indexed.

    Attributes
    ----------
    n_lines : int
        Lines used (the strongest-angle-first: the lowest 2θ), 20 as in DICVOL.
    min_tolerance : float
        Floor of each line's 2θ tolerance (degrees); the esd of its position times ``n_sigma`` otherwise.
    n_sigma : float
    zero_step, max_zero : float
        Grid of zero shifts searched (degrees).
    max_line_shift : float
        Largest 2θ correction (zero shift plus specimen displacement, degrees) refined with each cell before its
        lines are judged (:class:`gasolve.indexing.dichotomy.LineShifts`; not in the triclinic search); 0 judges
        the lines at the grid's zero as observed.
    max_volume : float
        Largest cell volume (Å³).
    max_unindexed : int
        Lines that may stay unindexed (impurities).
    retry_unindexed : int
        Unindexed lines a second pass allows (:func:`_second_pass`, DICVOL04's practice of a second run with more
        impurity lines): it searches the cubic-to-monoclinic systems above every convincing cell of the first
        pass (all when none convinces) and that cell's own system below its volume, and keeps cells whose ranking
        figure (:attr:`gasolve.indexing.solutions.IndexingSolution.ranking`) beats the first pass's. Not above
        ``max_unindexed``: no second pass. The triclinic search keeps ``max_unindexed``.
    min_m20 : float
        M20 below which a cell is not considered sound.
    n_pawley : int
        Leading cells checked by the Pawley fit.
    pawley_margin : float
        A checked cell whose Pawley Rwp exceeds this multiple of the best checked cell's drops behind the others,
        unless its ranking figure is more than ``pawley_ranking_factor`` times the best-fitting cell's.
    pawley_ranking_factor : float
        A better Pawley fit does not overrule a ranking figure this many times higher: a low-symmetry cell that
        also indexes the impurity lines fits them with its many free intensities (Cs2KVF6: an mP cell of ranking
        33 and Rwp 0.049 went before the true cF cell of ranking 374 and Rwp 0.061, whose three impurity lines
        stay unfitted).
    pawley_equal : float
        A checked cell of lower symmetry and smaller primitive volume than one ranked before it (the higher
        symmetry goes first among comparable M20) goes before it when it indexes as many lines with a higher M20
        and its Pawley Rwp is within this factor of the other's: the larger cell is then a pseudo-symmetric
        supercell of it.
    subcells : bool
        Derive from the leading cells the smaller cells their lattices contain with index 2, 3, 4, 6 or 9 that
        index all but ``retry_unindexed`` lines (:mod:`gasolve.indexing.subcells`), and let a supercell whose
        extra lines catch no more of the observed lines than chance would go behind its subcell (its better
        Pawley fit then comes from free intensities at stray lines).
    retry_blends : bool
        When no cell of the first pass convinces, the second pass widens the tolerance of the lines wider than their
        neighbours (unresolved blends) to what their excess width allows
        (:func:`gasolve.indexing.peaks.blend_tolerance`), as the triclinic search does: simulated LiLa2SbO6
        (P2_1/c, Kα1+Kα2) has three blends among its first 20 lines 0.035-0.091° from the nearer reflection, with
        an impurity line that made four, more than the second pass allows; with it, its cell comes first. Off by
        default (``gasolve index --widen-blends``): beside the same code without it, at the same load, it made
        simulated KBi2F7 3.5 times and Ti3TeO8 7 times slower (1004 s against 289 s, 679 s against 98 s of wall
        time), with no gain among 7 report-half patterns that do not convince in the first pass.
    supercells : bool
        Check, after the Pawley check, up to two supercells of index 2 or 3 of the first cell whose metric, refitted
        to the lines without symmetry, catches far more of the observed lines the first cell leaves unindexed
        than chance would (:func:`gasolve.indexing.subcells.supported_supercells`): the first cell is then a
        pseudo-subcell of the true one. And put a checked supercell before its checked subcell when its Pawley fit
        finds intensity beyond chance at its extra reflections away from every observed line (weak superstructure
        reflections, :mod:`gasolve.indexing.superstructure`).
    pawley_q_factor : float
        The Pawley check fits the pattern up to the 2θ where Q = 1/d² is this multiple of the last indexed
        line's (4: d down to half the last line's); the high-angle rest, where the reflections crowd and the fit
        costs most, adds little to telling the cells apart. 0 fits the whole pattern.
    convincing_m20, exhaustive : float, bool
        A cell with at least this M20 limits the systems searched after its own to smaller primitive cells: the
        monoclinic search (seconds to minutes) then runs below its volume (up to it when ``exhaustive``); the
        triclinic search runs only when no cell of higher symmetry (monoclinic included) is convincing, or when
        ``exhaustive``.
    refuting_fit : float
        When cells convinced by their M20 and so cut the search short, but the Pawley check finds a checked cell
        that fits this many times better (Rwp) than every convincing cell it checked, the lines are searched again
        as if nothing had convinced, and that search's result is kept (a note says so). M20 counts lines, not
        intensity: an orthorhombic cell of twice the volume of simulated Sc2FeSi2's C2/m cell indexes 17 of its 20
        lines with M20 34 but fits with Rwp 0.106, where supercells of it fit at 0.030; its true cell, which leaves
        three lines out at the plain tolerance (an impurity and two blends), is then found first (M20 74, Rwp
        0.044). 0 turns this off.
    triclinic_max_volume : float
        Largest triclinic cell volume (Å³).
    triclinic_boxes : int
        Boxes of (A ... F) the triclinic search may test, over all zero shifts (:mod:`gasolve.indexing.budget`;
        the default costs about 120 s on an idle 2-core machine). A count of work, not seconds, so that the same
        pattern gives the same cells under any load; a search cut by it says so in the notes.
    triclinic_time_limit : float or None
        Optional wall-clock guard on the triclinic search (seconds; None, the default: none). A search it stops
        says so, and its result then depends on the machine's speed and load.
    triclinic_zero_order : bool
        When no sound cell gives the triclinic search its zero, try the grid's zeros in the order of the support
        that the lines' order pairs give them (:func:`gasolve.indexing.zero.order_zeros`) instead of 0, +step,
        -step, ...: the triclinic search does not refine the zero, and its box budget is usually spent at the first.
        The monoclinic search, when no sound cell gives it its zero, takes them in the same order (its box budget,
        ``monoclinic_boxes``, may end it before the last).
    triclinic_zero_support : int
        Fewest order-pair solutions that put a zero before the grid's order in the triclinic search
        (:func:`gasolve.indexing.zero.order_zeros`, ``min_support``): one pair among the 20 lines' 190 is chance
        (simulated Na2TbO3, zero -0.01°: one pair put -0.08° first, where the budget was spent; found at 0).
    triclinic_retry_unindexed : int
        Unindexed lines the second triclinic pass allows (:func:`_triclinic`; DICVOL04's second run with more
        impurity lines, Boultif & Louër, J. Appl. Cryst. 37 (2004) 724-731): it runs, on a budget of its own,
        only when the first leaves no sound triclinic cell, and its cells are kept only when their ranking figure
        beats every cell found before. Not above ``max_unindexed``: no second pass.
    triclinic_retry_boxes : int
        Boxes of that second pass (:mod:`gasolve.indexing.budget`), over its zero shifts; never more than
        ``triclinic_boxes`` (0 there: no triclinic search at all).
    monoclinic_boxes : int
        Boxes the monoclinic dichotomy may examine over the zero shifts of one search (at the zero of the best
        sound cell, or at every zero when none is sound; :data:`gasolve.indexing.budget.MONOCLINIC_BOXES`, about
        45 s on an idle 2-core machine). A zero that runs into the box limit in some volume sub-shell does not end
        the search at the other zeros; this budget does, with a note.
    triclinic_bases : tuple of str
        The triclinic searches' bases (:attr:`gasolve.indexing.triclinic.TriclinicSettings.bases`): with
        "reduced", Niggli-reduced bases are searched first, at every zero shift and number of unindexed lines
        (:func:`_basis_sweep`); with "zones", bases completed from zones of the lines next, in the same way, when
        the reduced bases give no sound cell (a reduced axial line unobserved), or only at the levels that leave
        fewer lines out when their sound cell leaves 2 or more out (:func:`_triclinic`); any basis only if those
        find none.
    triclinic_reduced_boxes : int
        Boxes of each level of the sweep of reduced bases, over its zero shifts; never more than
        ``triclinic_boxes``.
    triclinic_zone_boxes, triclinic_zone_retry_boxes : int
        Boxes of the first level of the sweep from zones (``max_unindexed`` lines left out) and of each later
        level, over their zero shifts; never more than ``triclinic_boxes``. A zone's boxes cost about as much at a
        wrong zero shift as at the right one, so the first level needs about seven times what the right zero
        alone would (:data:`gasolve.indexing.budget.TRICLINIC_ZONE_BOXES`).
    triclinic_reduced_unindexed : int
        Unindexed lines of the sweep's last level, after ``max_unindexed`` and ``triclinic_retry_unindexed``
        (when above both; each level runs only when those before found no sound cell, on its own
        ``triclinic_reduced_boxes``): three impurity lines among the first twenty (simulated Co4OF11: its 3rd,
        8th and 16th lines) leave every cell out of reach of two.
    triclinic_blends : bool
        The triclinic searches widen the tolerance of lines wider than their neighbours, unresolved blends of
        reflections, to what their excess width allows (:func:`gasolve.indexing.peaks.blend_tolerance`): a triclinic
        pattern blends many reflections, the peak search fits one line to them, and each such line otherwise
        counts among the unindexed ones (simulated LiV5O10: 4 of its first 20 lines 0.025-0.066° from their
        reflections, with a tolerance of 0.02°, on top of an impurity line).
    triclinic_volume_stages : int
        Each triclinic pass searches its volumes in this many stages, each ending at twice the one before and the
        last at the volume limit, every zero shift in turn within each stage before the next stage (1: every
        volume at one zero shift before the next zero). The search costs far more at large volumes, and without
        stages a zero shift far from the pattern's spent the budget up to the volume limit before the right one
        was tried (simulated LiV5O10, zero +0.07°: 1 million boxes at +0.00° up to 573 Å³; its cell is 190 Å³).
    systems : tuple of str
    """

    n_lines: int = 20
    min_tolerance: float = 0.02
    n_sigma: float = 3.0
    zero_step: float = 0.04
    max_zero: float = 0.12
    max_line_shift: float = 0.04
    max_volume: float = 1500.0
    max_unindexed: int = 1
    retry_unindexed: int = 3
    min_m20: float = 10.0
    n_pawley: int = 3
    pawley_margin: float = 1.2
    pawley_ranking_factor: float = 4.0
    pawley_equal: float = 1.05
    subcells: bool = True
    retry_blends: bool = False
    supercells: bool = True
    pawley_q_factor: float = 4.0
    convincing_m20: float = 20.0
    exhaustive: bool = False
    refuting_fit: float = 2.0
    triclinic_max_volume: float = 1000.0
    triclinic_boxes: int = TRICLINIC_BOXES
    triclinic_time_limit: float | None = None
    triclinic_zero_order: bool = True
    triclinic_zero_support: int = 2
    triclinic_retry_unindexed: int = 2
    triclinic_retry_boxes: int = TRICLINIC_RETRY_BOXES
    monoclinic_boxes: int = MONOCLINIC_BOXES
    triclinic_bases: tuple[str, ...] = ("reduced", "zones", "any")
    triclinic_reduced_boxes: int = TRICLINIC_REDUCED_BOXES
    triclinic_zone_boxes: int = TRICLINIC_ZONE_BOXES
    triclinic_zone_retry_boxes: int = TRICLINIC_ZONE_RETRY_BOXES
    triclinic_reduced_unindexed: int = 3
    triclinic_blends: bool = True
    triclinic_volume_stages: int = 4
    systems: tuple[str, ...] = SYSTEMS
    peak_search: PeakSearchSettings = field(default_factory=PeakSearchSettings)


@dataclass(frozen=True)
class CellCandidate:
    """One indexed cell of a pattern, with its figures of merit.

    Attributes
    ----------
    solution : IndexingSolution
    zero : float
        Zero shift of the search grid that found it, or the Pawley fit's (degrees).
    f_n : float
        Smith-Snyder F_N over the lines used.
    f_n_text : str
        F_N(<|Δ2θ|>, N_poss), as usually quoted.
    pawley_rwp : float or None
        Rwp of the Pawley check; None when it was not run or failed.
    pawley_cell : tuple of float or None
        Cell refined by the Pawley check.
    pawley_reflections : PawleyReflections or None
        Its reflections' positions, intensities and their esds, for the test of weak superstructure reflections
        (:mod:`gasolve.indexing.superstructure`).
    """

    solution: IndexingSolution
    zero: float
    f_n: float
    f_n_text: str
    pawley_rwp: float | None = None
    pawley_cell: tuple[float, ...] | None = None
    pawley_reflections: PawleyReflections | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        """The JSON record of ``gasolve index``."""
        s = self.solution
        cell = self.pawley_cell or s.cell
        return {
            "cell": [round(float(x), 6) for x in cell],
            "bravais": s.bravais,
            "crystal_system": s.crystal_system,
            "volume": round(float(UnitCell(*cell).volume), 4),
            "m20": round(float(s.m20), 3),
            "f_n": round(float(self.f_n), 3),
            "f_n_text": self.f_n_text,
            "m20_penalised": round(float(s.merit), 3),
            "ranking": round(float(s.ranking), 3),
            "n_indexed": s.n_indexed,
            "n_lines": s.n_lines,
            "zero": round(float(self.zero), 5),
            "pawley_rwp": None if self.pawley_rwp is None else round(float(self.pawley_rwp), 6),
        }


@dataclass(frozen=True)
class IndexingResult:
    """Candidates best first, and the lines they were found from.

    Attributes
    ----------
    candidates : tuple of CellCandidate
    two_theta, two_theta_esd : ndarray, shape (n_lines,)
        The lines used (degrees), Kβ satellites left out.
    notes : tuple of str
    kbeta : tuple of KBetaLine
        The lines taken for Kβ satellites (:mod:`gasolve.indexing.kbeta`) and whether the first candidate indexes
        them as Kβ (and as Kα) lines.
    n_peaks : int
        Lines the peak search found (satellites included; the first ``n_lines`` others are used).
    """

    candidates: tuple[CellCandidate, ...]
    two_theta: np.ndarray = field(repr=False)
    two_theta_esd: np.ndarray = field(repr=False)
    notes: tuple[str, ...] = ()
    kbeta: tuple[KBetaLine, ...] = ()
    n_peaks: int = 0


def zero_grid(step: float, max_zero: float) -> np.ndarray:
    """0, +step, -step, +2 step, ... up to ``max_zero`` (degrees)."""
    n = int(np.floor(max_zero / step + 1e-9))
    values = [0.0]
    for i in range(1, n + 1):
        values += [i * step, -i * step]
    return np.array(values)


def line_shifts(two_theta: np.ndarray, zero: float, wavelength: float, max_shift: float) -> LineShifts | None:
    """Zero-shift and specimen-displacement corrections of lines at 2θ (degrees) for λ (Å); None when
    ``max_shift`` is 0.

    A zero shift moves every line alike; a Bragg-Brentano specimen displacement s moves them by
    -(360/π)(s/R) cos θ (Klug & Alexander, X-ray Diffraction Procedures, 1974), hence the basis (1, cos θ).
    """
    if max_shift <= 0:
        return None
    theta = np.radians(np.asarray(two_theta, dtype=float) - zero) / 2.0
    q_slope = 2.0 * np.sin(2.0 * theta) / wavelength**2 * np.pi / 180.0
    return LineShifts(q_slope, np.stack([np.ones_like(theta), np.cos(theta)], axis=1), max_shift)


def _search(
    q_obs,
    q_tol,
    settings: IndexingSettings,
    systems,
    max_volume,
    budget: WorkBudget | None = None,
    earlier=(),
    shifts: LineShifts | None = None,
    searched_before: tuple[str, ...] = (),
    overflowed: list[str] | None = None,
    min_volume: float = 0.0,
) -> tuple[list[IndexingSolution], list[str]]:
    """Search ``systems`` in order; ``earlier``: solutions found before (at this or other zero shifts), of which
    those of ``searched_before`` and of the systems before each in ``systems`` can limit its volume; systems that
    ran into the box limit are added to ``overflowed``; ``budget``: the boxes the triclinic search may test;
    ``min_volume``: the smallest triclinic volume searched (Å³; the other systems search from 0)."""
    notes: list[str] = []
    found: list[IndexingSolution] = []
    for position, system in enumerate(systems):
        # DICVOL's strategy across the systems searched one by one: once a cell of a system searched before this
        # one convinces (here or at another zero shift), this system is searched only for a smaller primitive cell
        # (the same lattice again, or a larger cell, cannot beat it). It also spares the orthorhombic dichotomy of
        # a cubic pattern's few, widely spaced lines, which otherwise runs into its box limit at every zero.
        before = (*searched_before, *systems[:position])
        convincing = [s for s in (*earlier, *found) if s.m20 >= settings.convincing_m20 and s.searched_as in before]
        # The bound is a primitive volume; the system's dichotomy searches conventional cells (a rhombohedral
        # lattice in its triple hexagonal cell), so it goes up to searched_volume and keeps what lies below.
        bound = min([np.inf, *(1.02 * s.primitive_volume for s in convincing)])
        volume = min(max_volume, searched_volume(system, bound))
        dichotomy = DichotomySettings(
            max_volume=volume,
            max_unindexed=settings.max_unindexed,
            triclinic_boxes=settings.triclinic_boxes,
            triclinic_bases=settings.triclinic_bases,
            triclinic_min_volume=min_volume,
        )
        try:
            solutions = index_lines(
                q_obs,
                q_tol,
                dichotomy,
                systems=(system,),
                min_m20=settings.min_m20,
                notes=notes,
                shifts=shifts,
                budget=budget,
            )
            found += [s for s in solutions if s.primitive_volume <= bound]
        except RuntimeError as error:
            notes.append(str(error))
            if overflowed is not None:
                overflowed.append(system)
    return found, notes


def index_pattern(
    pattern: ObservedPattern, radiation: Radiation, settings: IndexingSettings | None = None
) -> IndexingResult:
    """Candidate unit cells of a measured pattern, best first.

    Lines taken for Kβ satellites (:mod:`gasolve.indexing.kbeta`) are left out of the indexing lines; when no cell
    then convinces (M20 >= ``convincing_m20``), the lines are indexed again with them in and the better first cell
    is kept (a note says which), so that a reflection wrongly taken for a satellite cannot cost the cell.

    Parameters
    ----------
    pattern : ObservedPattern
        Restricted to the range to use. Where its points scatter clearly more than σ says, σ is taken from the
        scatter first (:func:`gasolve.diffraction.noise.calibrated_pattern`; a note says so), unless the peak
        search's ``calibrate_noise`` is off.
    radiation : Radiation
        Its primary line is the λ of the indexing; a Kα1+Kα2 doublet is handled by the peak search.
    settings : IndexingSettings, optional

    Returns
    -------
    IndexingResult

    Raises
    ------
    InputError
        When the pattern has too few lines to index.
    """
    settings = settings or IndexingSettings()
    note = None
    if settings.peak_search.calibrate_noise:  # σ from the scatter for the peak search and the Pawley check alike
        stated = pattern.sigma
        pattern, noise = calibrated_pattern(pattern)
        note = calibration_note(noise, stated)
    peaks = search_peaks(pattern, radiation, settings.peak_search)
    result = _index_found_peaks(pattern, radiation, settings, peaks)
    return result if note is None else replace(result, notes=(*result.notes, note))


def _index_found_peaks(pattern: ObservedPattern, radiation: Radiation, settings: IndexingSettings, peaks):
    """:func:`index_pattern` from the lines the peak search found (Kβ satellites left out, then kept in)."""
    if not peaks.kbeta.any():
        return _index_peaks(pattern, radiation, settings, peaks)
    left = int(np.count_nonzero(~peaks.kbeta))
    if left < FULL_SEARCH_LINES <= peaks.n_peaks:
        # A pattern of few lines cannot spare any: with the satellites left out it would be searched in fewer
        # systems (or not at all), so they stay in and count as impurity lines if they are satellites.
        kept = _index_peaks(pattern, radiation, settings, replace(peaks, kbeta_of=np.full(peaks.n_peaks, np.nan)))
        note = (
            f"only {left} lines besides the {peaks.n_peaks - left} taken for Kβ: indexed with them in "
            "(as possible impurity lines)"
        )
        return replace(kept, notes=(*kept.notes, note))
    # A line wrongly taken for a Kβ satellite must not cost the cell: when nothing convinces with the satellites
    # left out (or too few lines are left), the lines are indexed again with them in, and the better first cell
    # (by its ranking figure) wins.
    try:
        result = _index_peaks(pattern, radiation, settings, peaks)
    except InputError:
        result = None
    if result is not None and result.candidates and result.candidates[0].solution.m20 >= settings.convincing_m20:
        return result
    # Satellites beyond the lines used would leave the same lines: nothing to try again.
    usable = np.sort(peaks.two_theta[~peaks.kbeta])
    if len(usable) >= settings.n_lines and not np.any(peaks.two_theta[peaks.kbeta] < usable[settings.n_lines - 1]):
        return result
    again = _index_peaks(pattern, radiation, settings, replace(peaks, kbeta_of=np.full(peaks.n_peaks, np.nan)))
    merit = [r.candidates[0].solution.ranking if r is not None and r.candidates else -np.inf for r in (result, again)]
    kept = again if merit[1] > merit[0] else result
    note = (
        f"no convincing cell with the {int(peaks.kbeta.sum())} lines taken for Kβ left out: indexed again with them "
        f"in, {'which' if kept is again else 'which did not'} gave the better first cell"
    )
    return replace(kept, notes=(*kept.notes, note))


def _index_peaks(pattern: ObservedPattern, radiation: Radiation, settings: IndexingSettings, peaks) -> IndexingResult:
    """:func:`index_pattern` on the lines of ``peaks``, those flagged as Kβ satellites left out, searched again as if
    nothing had convinced when the Pawley check refutes the convincing cells that cut the search short
    (``settings.refuting_fit``)."""
    result, cut_short = _search_and_check(pattern, radiation, settings, peaks)
    refuted = _refuted_by_fit(result, settings, cut_short)
    if refuted is None:
        return result
    again, _ = _search_and_check(pattern, radiation, replace(settings, convincing_m20=math.inf), peaks)
    return replace(again, notes=(*result.notes, refuted, *again.notes))


def _refuted_by_fit(result: IndexingResult, settings: IndexingSettings, cut_short: bool) -> str | None:
    """Why the search is run again as if nothing had convinced (``settings.refuting_fit``), or None: convincing
    cells cut the search short (``cut_short``), but a checked cell fits at least ``refuting_fit`` times better than
    every convincing one that was checked. A search that nothing cut short would only repeat itself (simulated
    RbBiF4: nothing convinced before its triclinic search, which ran; its convincing mC cell, refuted 4.0 times,
    came later, and the search again took 1,271 s for the same cells)."""
    if not cut_short or settings.refuting_fit <= 0 or settings.exhaustive or not math.isfinite(settings.convincing_m20):
        return None
    fitted = [c for c in result.candidates if c.pawley_rwp is not None]
    convincing = [c for c in fitted if c.solution.m20 >= settings.convincing_m20]
    if not convincing:
        return None
    best = min(fitted, key=lambda c: c.pawley_rwp)
    closest = min(convincing, key=lambda c: c.pawley_rwp)
    if closest.pawley_rwp < settings.refuting_fit * best.pawley_rwp:
        return None
    ratio = closest.pawley_rwp / best.pawley_rwp
    return (
        f"the convincing {closest.solution.bravais} cell of {closest.solution.volume:.1f} Å³ (M20 "
        f"{closest.solution.m20:.1f}) fits {ratio:.1f} times worse (Pawley Rwp {closest.pawley_rwp:.4f}) than the "
        f"{best.solution.bravais} cell of {best.solution.volume:.1f} Å³ ({best.pawley_rwp:.4f}), and no checked "
        "cell that convinced fits better: the lines were searched again as if nothing had convinced"
    )


def _search_and_check(
    pattern: ObservedPattern, radiation: Radiation, settings: IndexingSettings, peaks
) -> tuple[IndexingResult, bool]:
    """The searches of every system, the Pawley check and the ordering, on the lines of ``peaks``, and whether
    convincing cells cut the search short (bounded the monoclinic search or the second pass, or skipped the
    triclinic search)."""
    minimum = MIN_LINES
    # Lines taken for Kβ satellites (gasolve.indexing.kbeta) stay out of the indexing lines.
    usable = np.flatnonzero(~peaks.kbeta)
    if len(usable) < minimum:
        satellites = f" (and {peaks.n_peaks - len(usable)} taken for Kβ)" if peaks.n_peaks > len(usable) else ""
        raise InputError(
            f"only {len(usable)} lines found{satellites}; indexing needs at least {minimum} (20 are advisable): "
            "measure a wider 2θ range or with better statistics",
            pattern.source,
        )
    order = usable[np.argsort(peaks.two_theta[usable], kind="stable")][: settings.n_lines]
    notes_before: list[str] = []
    if len(order) < FULL_SEARCH_LINES:
        # Few lines (a cubic metal has 5-8 below 80° with Cu Kα): only lattices they can still test.
        few = tuple(s for s in settings.systems if FREE_PARAMETERS[s] <= len(order) - TESTING_LINES)
        notes_before.append(
            f"only {len(order)} lines: searched {', '.join(few)} (lattices with at most {len(order)} - "
            f"{TESTING_LINES} free parameters), not {', '.join(s for s in settings.systems if s not in few)}"
        )
        settings = replace(settings, systems=few)
    wavelength = radiation.primary
    tolerance = max(settings.min_tolerance, 0.5 * settings.zero_step)
    lowest = tuple(s for s in settings.systems if s == "triclinic")
    overflowing: list[str] = []
    by_zero, notes = _higher_symmetry(peaks, order, wavelength, tolerance, settings, overflowing)
    notes = notes_before + notes
    first_pass = list(by_zero)
    again, more = _second_pass(peaks, order, wavelength, tolerance, settings, first_pass, overflowing)
    by_zero += again
    notes += more
    # Convincing cells cut the search short: a first-pass one bounds the monoclinic search and the second pass,
    # and any before the triclinic stage skips it.
    cut_short = any(s.m20 >= settings.convincing_m20 for _, s in first_pass) or bool(
        lowest and _convincing_before_triclinic(by_zero, settings)
    )
    if lowest:
        by_zero, more = _triclinic(peaks, order, wavelength, tolerance, settings, by_zero, first_pass)
        notes += more
    by_zero, untested = _tested_by_lines(by_zero)
    if untested:
        notes.append(
            f"{untested} cell(s) dropped: they index fewer than {TESTING_LINES - 1} lines beyond their free "
            "parameters, too few to test them (more lines were left unindexed than the pattern can spare)"
        )
    candidates = _distinct(by_zero, peaks.two_theta[order], wavelength)
    if settings.subcells:
        derived = _subcells_of_leading(candidates[: settings.n_pawley], peaks, order, wavelength, tolerance, settings)
        derived, _ = _tested_by_lines(derived)
        if derived:
            candidates = _distinct(by_zero + derived, peaks.two_theta[order], wavelength)
    check_range = _pawley_range(pattern, peaks.two_theta[order], settings.pawley_q_factor)
    checked = [_pawley(c, check_range, radiation) for c in candidates[: settings.n_pawley]]
    leading = [c for c in checked if c.pawley_rwp is not None and c.solution.m20 >= settings.min_m20]
    # Lines of the whole checked range, for the tests of a supercell's extra lines against chance, at the plain
    # tolerance, not a blend's wider one: with blends widened, the lines a pseudo-subcell misses fall within the
    # wide windows of its own lines, and Li4VFe(TeO6)2's true cell was no longer found (its superlattices caught
    # too few).
    in_range = np.sort(peaks.two_theta[~peaks.kbeta & (peaks.two_theta <= float(check_range.two_theta[-1]))])
    leading, more = _order_checked(leading, in_range, wavelength, tolerance, settings)
    if leading and settings.supercells:
        from gasolve.indexing.subcells import CHANCE_LEVEL, SUPERCELL_LEVEL, SUPERCELL_MIN_CAUGHT

        # The first cell may be a pseudo-subcell of the true one: a supercell whose extra lines catch far more of
        # the lines it misses than chance would is checked too (two at most), and the order is made again.
        lines = (peaks, order, in_range, wavelength, tolerance)
        found = _supercells_of_first(leading, leading, *lines, settings, (SUPERCELL_LEVEL, SUPERCELL_MIN_CAUGHT), 2)
        found = [_pawley(c, check_range, radiation) for c in found]
        found = [c for c in found if c.pawley_rwp is not None]
        suggested: list[CellCandidate] = []
        if leading[0].solution.crystal_system == "triclinic":
            # A triclinic first cell's supercells are held to a looser line test, and to their weak reflections
            # (SUGGESTED_MIN_CAUGHT): the most significant one within the triclinic volume limit.
            test = (CHANCE_LEVEL, SUGGESTED_MIN_CAUGHT)
            limit = settings.triclinic_max_volume
            suggested = _supercells_of_first(leading, leading + found, *lines, settings, test, 1, limit)
            suggested = _weakly_supported(suggested, leading[0], check_range, radiation, in_range)
        if found or suggested:
            checked = checked + found + suggested
            leading, more = _order_checked(leading + found + suggested, in_range, wavelength, tolerance, settings)
            if found:
                more.append(
                    f"{len(found)} supercell(s) of the first cell checked: their extra lines catch far more of the "
                    f"lines it leaves unindexed than chance would"
                )
            if suggested:
                more.append(
                    f"{len(suggested)} supercell(s) of the triclinic first cell checked: their extra lines catch "
                    "more of the lines it leaves unindexed than chance would, and their weak reflections carry "
                    "intensity (the triclinic search stops at the smallest cell)"
                )
    notes += more
    ranked = leading + [c for c in checked if c not in leading] + candidates[settings.n_pawley :]
    satellites: tuple[KBetaLine, ...] = ()
    if ranked and settings.peak_search.kbeta is not None:
        first = ranked[0]
        satellites = check_kbeta(
            peaks,
            radiation,
            first.pawley_cell or first.solution.cell,
            first.solution.bravais,
            first.zero,
            settings.peak_search.kbeta,
        )
    result = IndexingResult(
        tuple(ranked),
        peaks.two_theta[order],
        peaks.two_theta_esd[order],
        tuple(dict.fromkeys(notes)),
        satellites,
        peaks.n_peaks,
    )
    return result, cut_short


def _second_pass(
    peaks,
    order: np.ndarray,
    wavelength: float,
    tolerance: float,
    settings: IndexingSettings,
    first_pass: list,
    overflowing: list[str] = (),
) -> tuple[list[tuple[float, IndexingSolution]], list[str]]:
    """DICVOL04's second run with more impurity lines allowed (``retry_unindexed``), where the first leaves room.

    It searches the cubic-to-monoclinic systems of higher symmetry than every convincing cell of the first pass
    (all of them when none convinces) up to the volume limit, and the convincing cell's own system (cubic to
    monoclinic) below the smallest primitive volume of its convincing cells (:func:`_level_search`): a few
    foreign lines can keep the true lattice out of the first pass and let a cell of lower symmetry index them
    instead (an fcc pattern of 5 lines with 3 impurity lines gave mC and mP cells of 36 and 18 Å³ that index 7 of
    its 8 lines, M ~ 1000). The higher
    systems are not bounded by that cell's volume, since a cell with fewer parameters can beat a smaller one
    (:func:`~gasolve.indexing.solutions.ranking_figure`); the cubic cell of 27 Å³ primitive volume was never tried
    while they were. Its cells are kept only when their ranking figure (M20 with the unindexed lines counted
    against it, weighed by the lines that test the lattice: ``IndexingSolution.ranking``) beats every cell of the
    first pass, so that leaving more lines out never wins on its own. A cubic-to-orthorhombic system whose
    dichotomy ran into the box limit in the first pass is not searched again: more unindexed lines allowed only
    let more boxes survive. The monoclinic one is: its volume sub-shells reach the small cells before the box
    limit (simulated LuHO2, 83 Å³, three impurity lines: found in 7 s allowing 3 lines, the overflow at 300 Å³;
    a triclinic pattern, KBi2F7: an overflow after 7 s at the one zero tried).
    """
    retry = settings.retry_unindexed
    if retry <= settings.max_unindexed:
        return [], []
    convincing = [s for _, s in first_pass if s.m20 >= settings.convincing_m20]
    ceiling = max((SYMMETRY_RANK[s.crystal_system] for s in convincing), default=0)
    searchable = (*_FAST_SYSTEMS, "monoclinic")
    # The monoclinic search reaches the small cells in sub-shells of volume before it overflows
    # (gasolve.indexing.solutions._volume_shells), so an overflow in the first pass does not keep it out.
    blocked = {s for s in overflowing if s != "monoclinic"}
    above = tuple(s for s in settings.systems if s in searchable and SYMMETRY_RANK[s] > ceiling and s not in blocked)
    # The convincing cell's own system again, below its volume: with the same number of parameters, a cell that
    # leaves more lines out beats it only by a smaller volume (fewer calculated lines) or a better fit.
    level = tuple(
        s
        for s in settings.systems
        if convincing and s in searchable and SYMMETRY_RANK[s] == ceiling and s not in blocked
    )
    if not above and not level:
        return [], []
    found: list[tuple[float, IndexingSolution]] = []
    notes: list[str] = []
    searched = []
    if settings.retry_blends and not convincing:
        # Nothing convinced: lines wider than their neighbours (unresolved blends, whose fitted position lies
        # between their reflections) get the tolerance their excess width allows, as in the triclinic search.
        widened = np.maximum(tolerance, peaks.blend_tolerance())
        blends = int(np.count_nonzero(widened[order] > tolerance))
        if blends:
            tolerance = widened
            searched.append(f"the tolerance of {blends} blended lines widened")
    # Systems of higher symmetry up to the volume limit: fewer parameters can make a larger cell that leaves more
    # lines out the better one (the ranking figure), so the convincing cell's volume does not bound them.
    if above:
        again = replace(settings, max_unindexed=retry, systems=above, max_volume=settings.max_volume)
        more_found, more_notes = _higher_symmetry(peaks, order, wavelength, tolerance, again)
        found += more_found
        notes += more_notes
        searched.append(f"{', '.join(above)} up to {settings.max_volume:.0f} Å³")
    for system in level:
        own = [s for s in convincing if s.crystal_system == system]
        more_found, more_notes, what = _level_search(
            peaks, order, wavelength, tolerance, replace(settings, max_unindexed=retry), system, own
        )
        found += more_found
        notes += more_notes
        searched.append(what)
    bar = max((s.ranking for _, s in first_pass), default=0.0)
    kept = [(z, s) for z, s in found if s.ranking > bar]
    best = max((s.ranking for _, s in kept), default=None)
    what = "none better" if best is None else f"{len(kept)} better, best {best:.1f}"
    notes.append(
        f"second pass allowing {retry} unindexed lines ({'; '.join(searched)}): "
        f"{len(found)} cells, {what} than the first pass's best ranking figure ({bar:.1f}; M20 with the "
        "unindexed lines counted, weighed by the lines that test each lattice)"
    )
    return kept, notes


def _level_search(
    peaks,
    order: np.ndarray,
    wavelength: float,
    tolerance: float,
    settings: IndexingSettings,
    system: str,
    convincing: list[IndexingSolution],
) -> tuple[list[tuple[float, IndexingSolution]], list[str], str]:
    """The second pass's search of the convincing cells' own ``system`` for lattices of smaller primitive volume.

    The bound is the smallest primitive volume of the system's own convincing cells (1.02 times it): a convincing
    cell of lower symmetry does not bound it, since a cell with fewer parameters can beat a smaller one (simulated
    RbZnO3, Pm-3m, 10 lines, two of them impurity lines: a convincing mP cell of 29 Å³ held the cubic search below
    30 Å³, and the cF cell of 8 times the true volume came first). The system's dichotomy
    searches conventional cells, so it searches up to :func:`~gasolve.indexing.solutions.searched_volume` (a
    rhombohedral lattice is found in its triple hexagonal cell) and keeps the cells below the bound. Simulated
    NdTlSe2 (R-3m, 126 Å³ primitive, 379 Å³ in hexagonal axes, two impurity lines): the bound of 129 Å³ (an mP
    cell of 126.4 Å³) was applied to the hexagonal cell, and the hR lattice was not searched.

    Parameters
    ----------
    peaks, order, wavelength, tolerance
        As for :func:`_higher_symmetry`.
    settings : IndexingSettings
        With the second pass's ``max_unindexed``.
    system : str
    convincing : list of IndexingSolution
        The first pass's convincing cells of ``system``.

    Returns
    -------
    found : list of (zero, IndexingSolution)
    notes : list of str
    searched : str
        What was searched, for the second pass's note.
    """
    bound = min([settings.max_volume, *(1.02 * s.primitive_volume for s in convincing)])
    volume = min(settings.max_volume, searched_volume(system, bound))
    again = replace(settings, systems=(system,), max_volume=volume)
    found, notes = _higher_symmetry(peaks, order, wavelength, tolerance, again)
    found = [(z, s) for z, s in found if s.primitive_volume <= bound]
    return found, notes, f"{system} below {bound:.0f} Å³ primitive ({volume:.0f} Å³ searched)"


def _higher_symmetry(
    peaks,
    order: np.ndarray,
    wavelength: float,
    tolerance: float,
    settings: IndexingSettings,
    overflowing: list[str] | None = None,
) -> tuple[list[tuple[float, IndexingSolution]], list[str]]:
    """Cubic to monoclinic cells of the lines ``order`` of ``peaks`` over the zero grid: (zero, solution) pairs and
    notes; the systems that ran into the box limit are added to ``overflowing``."""
    fast = tuple(s for s in settings.systems if s in _FAST_SYSTEMS)
    slow = tuple(s for s in settings.systems if s == "monoclinic")
    by_zero: list[tuple[float, IndexingSolution]] = []
    notes: list[str] = []
    lines = {}
    for zero in zero_grid(settings.zero_step, settings.max_zero):
        q, q_tol = peaks.q_values(wavelength, zero, n_sigma=settings.n_sigma, min_tolerance=tolerance)
        shifts = line_shifts(peaks.two_theta[order], zero, wavelength, settings.max_line_shift)
        lines[float(zero)] = (q[order], q_tol[order], shifts)
    # System by system, each at every zero shift (DICVOL's order): a convincing cell of higher symmetry found at
    # any zero limits the volume of every lower-symmetry search, so a spurious large cell at a wrong zero does not
    # send the orthorhombic dichotomy up to its volume limit before the right zero is tried.
    for position, system in enumerate(fast):
        for zero, (q, q_tol, shifts) in lines.items():
            earlier = [s for _, s in by_zero]
            overflowed: list[str] = []
            solutions, more = _search(
                q,
                q_tol,
                settings,
                (system,),
                settings.max_volume,
                earlier=earlier,
                shifts=shifts,
                searched_before=fast[:position],
                overflowed=overflowed,
            )
            by_zero += [(zero, s) for s in solutions]
            notes += more
            if overflowing is not None:
                overflowing += overflowed
            if overflowed and not solutions:
                # Too many boxes survive the lines' tolerance; the other zeros would only overflow again.
                notes.append(f"{system}: the other zero shifts were not searched after the box limit")
                break
    sound = [s for _, s in by_zero if s.m20 >= settings.min_m20]
    convincing = settings.convincing_m20
    if slow:
        # As DICVOL: lower symmetry only below the smallest sound primitive cell found so far (strictly below a
        # convincing one: the same lattice again cannot beat it, but a smaller monoclinic cell can be the
        # answer that a larger pseudo-orthorhombic cell hides), and at the zero that gave the best sound cell
        # (a monoclinic search costs seconds to minutes per zero). ``exhaustive`` also searches the convincing
        # cell's own volume.
        below = 1.02 if settings.exhaustive else _BELOW
        limit = min(
            [s.primitive_volume * (below if s.m20 >= settings.convincing_m20 else 1.02) for s in sound],
            default=settings.max_volume,
        )
        zeros = zero_grid(settings.zero_step, settings.max_zero)
        if sound:
            zeros = [max(((z, s) for z, s in by_zero if s.m20 >= settings.min_m20), key=lambda x: x[1].m20)[0]]
        elif settings.triclinic_zero_order:
            # The zeros in the order of their order-pair support, as for the triclinic search: a box-limit overflow
            # at one zero ends the monoclinic search (below), so the likeliest zero goes first (simulated Te(HO2)2,
            # zero +0.09°: the cell at +0.08°, support 3, was never reached after the overflow at 0).
            zeros = list(order_zeros(peaks.two_theta[order], np.asarray(zeros))[0])
        # One box budget over the zeros. A zero whose search runs into the box limit in some sub-shell has still
        # searched the smaller cells, and the next zero may hold the cell there: simulated Dy2TiO5 (C2/c, zero
        # -0.08°) overflows at 400-500 Å³ at every zero, and its cell (431 Å³, M20 90) comes at -0.08° only;
        # the search used to end at the first zero that overflowed.
        budget = WorkBudget(settings.monoclinic_boxes)
        for position, zero in enumerate(zeros):
            if budget.stopped:
                notes.append(
                    f"{', '.join(slow)}: {budget.reason()} before zero {zero:+.2f}° "
                    f"({len(zeros) - position} of {len(zeros)} zero shifts not searched)"
                )
                break
            q, q_tol = peaks.q_values(wavelength, zero, n_sigma=settings.n_sigma, min_tolerance=tolerance)
            shifts = line_shifts(peaks.two_theta[order], zero, wavelength, settings.max_line_shift)
            # A convincing monoclinic cell found at another zero: here only up to its volume (it may come back
            # with a better M20), not the larger cells that would only repeat it.
            again = [s.primitive_volume * 1.02 for _, s in by_zero if s.searched_as in slow and s.m20 >= convincing]
            volume = min([limit, settings.max_volume, *again])
            overflowed: list[str] = []
            solutions, more = _search(
                q[order], q_tol[order], settings, slow, volume, budget=budget, shifts=shifts, overflowed=overflowed
            )
            by_zero += [(float(zero), s) for s in solutions]
            notes += more
            if overflowing is not None:
                overflowing += overflowed
    return by_zero, notes


def _triclinic(
    peaks, order, wavelength: float, tolerance: float, settings: IndexingSettings, by_zero: list, first_pass: list
) -> tuple[list[tuple[float, IndexingSolution]], list[str]]:
    """The triclinic stage: only when no higher-symmetry cell convinces (or exhaustive), under a box budget
    shared by its zero shifts.
    Only the cells of ``first_pass`` (those found leaving at most ``max_unindexed`` lines out) limit its volume
    and set its zero shift: a cell of the second pass that merely reaches M20 >= 10 by leaving more lines out
    would keep the triclinic lattice out of reach.

    When it finds no sound cell, a second triclinic pass allows ``triclinic_retry_unindexed`` lines to stay
    unindexed, on a budget of its own (``triclinic_retry_boxes``), at the same zero shifts: DICVOL04's second run
    with more impurity lines (Boultif & Louër, J. Appl. Cryst. 37 (2004) 724-731). Allowing them from the start
    would let a smaller wrong cell that leaves two lines out end the search below the true volume (simulated
    Na2TbO3: an 18-of-20 cell at 173-216 Å³, the true one at 251 Å³); after a first pass that ran out of boxes
    it finds lattices whose first twenty lines hold two impurity lines (simulated HgTeO3: its first line and a
    line at 23.1°; 37 thousand boxes where the first pass spent its 6 million up to 657 Å³). Its cells are kept
    only when their ranking figure beats every cell found before, as in :func:`_second_pass`."""
    # A second-pass cell convinces by its M20 with the extra unindexed lines counted against it.
    convincing = _convincing_before_triclinic(by_zero, settings)
    sound = [s for _, s in first_pass if s.m20 >= settings.min_m20]
    if convincing and not settings.exhaustive:
        best = max(convincing, key=lambda s: s.m20)
        return by_zero, [
            f"triclinic not searched: {best.crystal_system} {best.bravais} cell with M20 = {best.m20:.1f} "
            f">= {settings.convincing_m20:g} (search it anyway with the exhaustive setting)"
        ]
    limit = min([s.primitive_volume * 1.02 for s in sound], default=settings.max_volume)
    max_volume = min(limit, settings.max_volume, settings.triclinic_max_volume)
    zeros = list(zero_grid(settings.zero_step, settings.max_zero))
    notes: list[str] = []
    if sound:
        zeros = [max(((z, s) for z, s in first_pass if s.m20 >= settings.min_m20), key=lambda x: x[1].m20)[0]]
    elif settings.triclinic_zero_order:
        ordered, support = order_zeros(
            peaks.two_theta[order], np.array(zeros), min_support=settings.triclinic_zero_support
        )
        zeros = list(ordered)
        notes.append(
            "triclinic zero shifts in the order of their order-pair support "
            f"(at least {settings.triclinic_zero_support}): "
            + ", ".join(f"{z:+.2f}° ({n})" for z, n in zip(ordered, support, strict=True))
        )
    if settings.triclinic_blends:
        tolerance = np.maximum(tolerance, peaks.blend_tolerance())
    lines = (peaks, order, wavelength, tolerance, zeros, max_volume)
    retry = settings.triclinic_retry_unindexed
    retry_boxes = min(settings.triclinic_retry_boxes, settings.triclinic_boxes)
    sweeps = (
        ("reduced", settings.triclinic_reduced_boxes, settings.triclinic_reduced_boxes),
        ("zones", settings.triclinic_zone_boxes, settings.triclinic_zone_retry_boxes),
    )
    found_at = None  # lines left out by the sound cells of an earlier sweep
    for bases, sweep_boxes, later_boxes in sweeps:
        if bases not in settings.triclinic_bases:
            continue
        if min(sweep_boxes, settings.triclinic_boxes) > 0:
            by_zero, sweep, level = _basis_sweep(
                lines, settings, by_zero, retry if retry_boxes > 0 else 0, bases, (sweep_boxes, later_boxes), found_at
            )
            notes += sweep
            if level is not None and level <= settings.max_unindexed:
                return by_zero, notes
            if level is not None and found_at is None:
                # A sound cell that leaves more lines out ends the triclinic search only after the next kind of
                # bases has been searched for cells that leave fewer out (the ranking then decides).
                found_at = level
                notes.append(
                    f"triclinic: a sound cell leaving {level} lines out; the next bases are searched for cells "
                    f"leaving fewer out before the search ends"
                )
        settings = replace(settings, triclinic_bases=tuple(b for b in settings.triclinic_bases if b != bases))
    if found_at is not None:
        return by_zero, notes
    if not settings.triclinic_bases:
        return by_zero, notes
    found, more = _triclinic_pass(*lines, settings, settings.triclinic_boxes, "triclinic search")
    notes += more
    if retry <= settings.max_unindexed or retry_boxes <= 0:
        return [*by_zero, *found], notes
    if any(s.m20 >= settings.min_m20 for _, s in found):
        return [*by_zero, *found], notes
    again = replace(settings, max_unindexed=retry)
    what = f"second triclinic pass allowing {retry} unindexed lines"
    more_found, more = _triclinic_pass(*lines, again, retry_boxes, what)
    bar = max((s.ranking for _, s in (*by_zero, *found)), default=0.0)
    kept = [(z, s) for z, s in more_found if s.ranking > bar]
    notes += more
    notes.append(
        f"{what}: {len(more_found)} cells, {len(kept)} with a ranking figure above the best before ({bar:.1f})"
    )
    return [*by_zero, *found, *kept], notes


def _convincing_before_triclinic(by_zero: list, settings: IndexingSettings) -> list[IndexingSolution]:
    """The cells that keep the triclinic search from running (unless ``exhaustive``): M20 >= ``convincing_m20``,
    a second-pass cell by its M20 with the extra unindexed lines counted against it."""
    return [
        s
        for _, s in by_zero
        if (s.m20 if s.n_lines - s.n_indexed <= settings.max_unindexed else s.merit) >= settings.convincing_m20
    ]


def _basis_sweep(
    lines: tuple,
    settings: IndexingSettings,
    by_zero: list,
    retry: int,
    bases: str,
    sweep_boxes: tuple[int, int],
    below: int | None = None,
) -> tuple[list, list[str], int | None]:
    """The triclinic search of one kind of bases only, "zones" (:mod:`gasolve.indexing.zones`) or "reduced"
    (Niggli-reduced reciprocal bases, :mod:`gasolve.indexing.triclinic`), at every zero shift, leaving
    ``max_unindexed`` and then ``retry`` lines out, before any search of any basis: each costs a small part of
    that search (LiV5O10, three impurity lines: found at 99 thousand boxes of reduced bases with two lines left
    out, where the search of any basis spent its 6 million at the first zero; simulated VCrMoO7, whose reduced
    axial line 010 gives no intensity, from zones at 46 thousand). Cells found leaving more lines out are kept, as in
    :func:`_triclinic`, only when their ranking figure beats every cell before. ``sweep_boxes``: the budget of
    the first level (``max_unindexed`` lines left out) and of each later one. ``below``: only the levels that
    leave fewer lines out than this (None: all).

    Returns
    -------
    by_zero : list
        With the cells found.
    notes : list of str
    level : int or None
        The lines left out at the level where a sound cell was found (then the search of any basis is not run);
        None when none was.
    """
    only = replace(settings, triclinic_bases=(bases,))
    notes: list[str] = []
    stages = None
    if bases == "zones":
        lines, note = _zeros_by_zones(lines, settings)
        notes.append(note)
        # The zone search's boxes at a wrong zero shift are as costly as at the right one: stages as narrow as
        # its volume shells, so that every zero is tried in a shell before any goes on to the next (simulated
        # VCrMoO7, zero -0.09°, the fifth tried: four zeros spent 2 million boxes in 250-500 Å³ before it).
        stages = triclinic_stages(lines[5], ZONE_STAGES, ZONE_STAGE_RATIO)
    levels = [settings.max_unindexed]
    if retry > settings.max_unindexed:
        levels += [retry] + ([extra] if (extra := settings.triclinic_reduced_unindexed) > retry else [])
    for level in [level for level in levels if below is None or level < below]:
        what = f"triclinic search of {'zones' if bases == 'zones' else 'reduced bases'}"
        what += f" allowing {level} unindexed line(s)" if level else ""
        boxes = min(sweep_boxes[0] if level == settings.max_unindexed else sweep_boxes[1], settings.triclinic_boxes)
        found, more = _triclinic_pass(*lines, replace(only, max_unindexed=level), boxes, what, stages)
        notes += more
        if level > settings.max_unindexed:
            bar = max((s.ranking for _, s in by_zero), default=0.0)
            found = [(z, s) for z, s in found if s.ranking > bar]
        by_zero = [*by_zero, *found]
        if any(s.m20 >= settings.min_m20 for _, s in found):
            return by_zero, notes, level
    return by_zero, notes, None


def _zeros_by_zones(lines: tuple, settings: IndexingSettings) -> tuple[tuple, str]:
    """``lines`` with its zero shifts in the order of their most significant zone (:func:`gasolve.indexing.zones.
    find_zones`), most significant first, and a note. A zone fitted at a wrong zero catches fewer lines within
    their tolerance; on four triclinic benchmark patterns whose zero the order pairs could not place, the zero of
    the most significant zone was the grid point nearest the true zero for three (simulated VCrMoO7, -0.09°:
    2.4·10⁻³ at -0.08° against 1.4·10⁻² to 8.6·10⁻² elsewhere)."""
    from gasolve.indexing.zones import zones_of

    peaks, order, wavelength, tolerance, zeros, max_volume = lines
    best = []
    for zero in zeros:
        q, q_tol = peaks.q_values(wavelength, zero, n_sigma=settings.n_sigma, min_tolerance=tolerance)
        found = zones_of(q[order], q_tol[order])
        best.append(found[0].chance if found else 1.0)
    ranked = [zeros[i] for i in np.argsort(best, kind="stable")]
    note = "triclinic zero shifts for the zones in the order of their most significant zone: " + ", ".join(
        f"{zeros[i]:+.2f}° ({best[i]:.1e})" for i in np.argsort(best, kind="stable")
    )
    return (peaks, order, wavelength, tolerance, ranked, max_volume), note


def triclinic_stages(max_volume: float, stages: int, ratio: float = 2.0) -> list[tuple[float, float]]:
    """Volume stages of a triclinic pass (Å³), smallest first: ``stages`` of them, each ending at ``ratio`` times
    the one before, the last at ``max_volume`` (:attr:`IndexingSettings.triclinic_volume_stages`).

    Raises
    ------
    ValueError
        For fewer than one stage or a volume limit that is not positive.
    """
    if stages < 1:
        raise ValueError(f"a triclinic pass needs at least one volume stage, got {stages}")
    if not max_volume > 0:
        raise ValueError(f"the triclinic volume limit must be positive, got {max_volume}")
    ends = [max_volume / ratio**k for k in range(stages - 1, -1, -1)]
    return list(zip([0.0, *ends[:-1]], ends, strict=True))


def _triclinic_pass(
    peaks,
    order,
    wavelength: float,
    tolerance: float | np.ndarray,
    zeros: list,
    max_volume: float,
    settings: IndexingSettings,
    boxes: int,
    what: str,
    stages: list[tuple[float, float]] | None = None,
) -> tuple[list[tuple[float, IndexingSolution]], list[str]]:
    """One triclinic search over ``zeros`` up to ``max_volume`` (Å³), leaving at most ``settings.max_unindexed``
    lines out, on one budget of ``boxes`` boxes; (zero, solution) pairs and notes (``what`` names the pass in them).

    The volumes are searched in ``stages`` (default: :func:`triclinic_stages` of the settings), every zero shift
    in turn within a stage: a zero shift at which cells were found is not searched at larger volumes (the search
    there stops at the first shell with a solution), and a convincing cell ends the pass."""
    budget = WorkBudget(boxes, settings.triclinic_time_limit)
    found: list[tuple[float, IndexingSolution]] = []
    notes: list[str] = []
    lines = {}
    for zero in zeros:
        q, q_tol = peaks.q_values(wavelength, zero, n_sigma=settings.n_sigma, min_tolerance=tolerance)
        lines[float(zero)] = (q[order], q_tol[order])
    open_zeros = [float(z) for z in zeros]
    convinced = False
    for low, high in stages or triclinic_stages(max_volume, settings.triclinic_volume_stages):
        for zero in list(open_zeros):
            if budget.stopped:
                notes.append(
                    f"{what} stopped: {budget.reason()} in the {low:.0f}-{high:.0f} Å³ stage, before zero "
                    f"{zero:+.2f}° ({len(open_zeros)} of {len(zeros)} zero shifts still open)"
                )
                break
            solutions, more = _search(*lines[zero], settings, ("triclinic",), high, budget, min_volume=low)
            found += [(zero, s) for s in solutions]
            notes += [note for note in more if note not in notes]
            if solutions:
                open_zeros.remove(zero)
            if any(s.m20 >= settings.convincing_m20 for s in solutions):
                convinced = True  # a convincing cell: the other zero shifts would find it again
                break
        if convinced or budget.stopped or not open_zeros:
            break
    notes.append(f"{what}: {budget.used:,} of {budget.boxes:,} boxes tested")
    return found, notes


def _tested_by_lines(
    by_zero: list[tuple[float, IndexingSolution]],
) -> tuple[list[tuple[float, IndexingSolution]], int]:
    """The (zero, solution) pairs whose cell indexes at least ``TESTING_LINES - 1`` lines beyond its free
    parameters (:data:`~gasolve.indexing.solutions.FREE_PARAMETERS`), and how many were dropped.

    A lattice with k free parameters fits any k lines, so only the indexed lines beyond them test it. The rule for
    few lines (:data:`TESTING_LINES` beyond k, one of them allowed to stay unindexed) is kept when more lines are
    left unindexed: with 5 lines, the second pass's 3 unindexed lines let a cubic cell that indexes 2 of them come
    first (simulated GaFeNi2, Fm-3m, one impurity line: cP and cI cells of 2 of 5 lines, M5 3,200, before the true
    cF cell of 4 of 5).
    """
    kept = [
        (zero, solution)
        for zero, solution in by_zero
        if solution.n_indexed - FREE_PARAMETERS.get(solution.crystal_system, 6) >= TESTING_LINES - 1
    ]
    return kept, len(by_zero) - len(kept)


def _distinct(
    by_zero: list[tuple[float, IndexingSolution]], two_theta: np.ndarray, wavelength: float
) -> list[CellCandidate]:
    """One candidate per lattice (the zero with the best M20), ranked by :func:`rank_solutions`."""
    from gasolve.indexing.lattice import same_lattice

    best: list[tuple[float, IndexingSolution]] = []
    for zero, solution in by_zero:
        match = [i for i, (_, other) in enumerate(best) if same_lattice(solution.niggli, other.niggli)]
        if not match:
            best.append((zero, solution))
        elif solution.merit > best[match[0]][1].merit:
            best[match[0]] = (zero, solution)
    zero_of = {id(s): z for z, s in best}
    ranked = rank_solutions([s for _, s in best])
    out = []
    for solution in ranked:
        zero = zero_of[id(solution)]
        corrected = _corrected(two_theta, solution, zero, wavelength)
        q_last = float(q_from_two_theta(corrected.max(), wavelength, zero))
        q_calc = calculated_q(solution.cell, solution.bravais, 1.05 * q_last)
        figure = smith_snyder_f(corrected, q_calc, wavelength, zero=zero)
        out.append(CellCandidate(solution, zero, float(figure.value), str(figure)))
    return out


def _corrected(two_theta: np.ndarray, solution: IndexingSolution, zero: float, wavelength: float) -> np.ndarray:
    """Lines (2θ, degrees) with the 2θ corrections refined with ``solution`` at ``zero`` removed
    (:func:`line_shifts`); as observed when it has none."""
    if not solution.two_theta_shifts:
        return two_theta
    basis = line_shifts(two_theta, zero, wavelength, np.inf).basis
    return two_theta - basis @ np.asarray(solution.two_theta_shifts)


def _smaller_first(checked: list[CellCandidate], equal: float) -> list[CellCandidate]:
    """Checked cells in order, but a smaller cell that indexes as many lines and fits as well goes first.

    Among comparable M20, :func:`gasolve.indexing.solutions.rank_solutions` puts the higher symmetry first, which
    is right when the smaller, lower-symmetry cell is a pseudo-subcell (a space group that removes many
    reflections lets a smaller cell index the first lines). The whole pattern tells the two apart: a
    pseudo-subcell misses the lines further out and fits worse, while a true smaller cell fits as well as the
    larger cell of higher symmetry that contains it (a supercell only adds intensities that come out empty).
    """
    remaining = list(checked)
    ordered = []
    while remaining:
        # "Smaller and as good" is a strict order (strictly smaller volume), so some cell is undominated.
        first = next(c for c in remaining if not any(_smaller_and_as_good(o, c, equal) for o in remaining))
        ordered.append(first)
        remaining.remove(first)
    return ordered


def _worse_fits_behind(checked: list, margin: float, ranking_factor: float, by_chance: set[int] = frozenset()) -> list:
    """``checked`` (Pawley-fitted cells in ranking order) with the cells that fit clearly worse than the best-fitting
    one (Rwp above ``margin`` times its) behind the others, unless their ranking figure is more than
    ``ranking_factor`` times the best-fitting cell's; a stable reordering. A supercell whose extra lines are no
    more than chance (ids in ``by_chance``, :func:`_supercells_by_chance`) is not the best-fitting cell: its better
    fit comes from free intensities at stray lines."""
    reference = [c for c in checked if id(c) not in by_chance] or checked
    best = min(reference, key=lambda c: c.pawley_rwp)

    def behind(candidate) -> bool:
        worse = candidate.pawley_rwp > margin * best.pawley_rwp
        return worse and candidate.solution.ranking <= ranking_factor * best.solution.ranking

    return sorted(checked, key=behind)


def _order_checked(
    leading: list[CellCandidate], in_range: np.ndarray, wavelength: float, tolerance, settings: IndexingSettings
) -> tuple[list[CellCandidate], list[str]]:
    """The order of the Pawley-checked sound cells, and notes.

    The Pawley fit is a check, not the ranking itself: a supercell or a lower-symmetry cell always fits at least
    as well (it has more free intensities). A cell whose Rwp is clearly worse than the best one's (by
    ``pawley_margin``) drops behind, unless its ranking figure is far higher (``pawley_ranking_factor``); a
    smaller cell of lower symmetry that fits as well goes first; a supercell whose extra lines are chance goes
    behind its subcell (``in_range``: the observed lines of the checked range). The others keep their order.
    """
    if not leading:
        return leading, []
    chance = _supercells_by_chance(leading, in_range, wavelength, tolerance) if settings.subcells else {}
    weak = _supercells_by_weak_lines(leading, in_range, wavelength, tolerance) if settings.supercells else {}
    chance = {key: value for key, value in chance.items() if key not in weak}
    ordered = _worse_fits_behind(leading, settings.pawley_margin, settings.pawley_ranking_factor, set(chance))
    ordered = _smaller_first(ordered, settings.pawley_equal)
    ordered = _supercells_after_subcells(ordered, chance)
    ordered = _supercells_before_subcells(ordered, weak)
    notes = [chance[id(c)][1] for c in ordered if id(c) in chance]
    return ordered, notes + [weak[id(c)][1] for c in ordered if id(c) in weak]


def _supercells_of_first(
    leading: list[CellCandidate],
    known: list[CellCandidate],
    peaks,
    order,
    in_range,
    wavelength: float,
    tolerance: float,
    settings: IndexingSettings,
    test: tuple[float, int],
    at_most: int,
    max_volume: float = math.inf,
) -> list[CellCandidate]:
    """Candidates for the superlattices of the first of ``leading`` whose extra lines catch at least ``test[1]``
    of the lines it misses at a chance below ``test[0]`` (:func:`gasolve.indexing.subcells.supported_supercells`),
    most significant first: at most ``at_most``, of a primitive volume up to ``max_volume`` (Å³), with M20 >=
    ``settings.min_m20``, none the lattice of a cell in ``known``."""
    from gasolve.indexing.lattice import same_lattice
    from gasolve.indexing.subcells import solution_of_basis, supported_supercells

    first = leading[0]
    if len(in_range) == 0:
        return []
    record = (first.pawley_cell or first.solution.cell, first.solution.bravais, first.zero)
    supported = supported_supercells(record, in_range, wavelength, tolerance, *test)
    two_theta = peaks.two_theta[order]
    q = q_from_two_theta(two_theta, wavelength, first.zero)
    _, q_tol = peaks.q_values(wavelength, first.zero, n_sigma=settings.n_sigma, min_tolerance=tolerance)
    label = f"supercell of {first.solution.bravais} {first.solution.volume:.1f} Å³"
    found: list[CellCandidate] = []
    for basis, _ in supported:
        if abs(float(np.linalg.det(basis))) > max_volume:
            continue
        try:
            solution = solution_of_basis(basis, q, q_tol[order], label)
        except (ValueError, RuntimeError):
            continue
        if solution.m20 < settings.min_m20:
            continue
        if any(same_lattice(solution.niggli, c.solution.niggli) for c in [*known, *found]):
            continue
        found += _distinct([(first.zero, solution)], two_theta, wavelength)
        if len(found) == at_most:
            break
    return found


def _weakly_supported(
    candidates: list[CellCandidate], first: CellCandidate, check_range, radiation: Radiation, in_range
) -> list[CellCandidate]:
    """The ``candidates``, Pawley-checked, whose extra reflections away from the observed lines carry intensity
    beyond chance against ``first`` (:func:`gasolve.indexing.superstructure.weak_superstructure_lines`)."""
    from gasolve.indexing.superstructure import weak_superstructure_lines

    kept = []
    for candidate in candidates:
        checked = _pawley(candidate, check_range, radiation)
        if checked.pawley_reflections is None or first.pawley_reflections is None:
            continue
        test = weak_superstructure_lines(checked.pawley_reflections, first.pawley_reflections.two_theta, in_range)
        if test.supported:
            kept.append(checked)
    return kept


def _subcells_of_leading(
    candidates: list[CellCandidate], peaks, order: np.ndarray, wavelength: float, tolerance, settings: IndexingSettings
) -> list[tuple[float, IndexingSolution]]:
    """(zero, solution) of the cells whose lattice contains a leading candidate's with a small index and that index
    all but ``settings.retry_unindexed`` of the lines (:func:`gasolve.indexing.subcells.derived_subcells`), each
    at its parent's zero and line shifts."""
    from gasolve.indexing.subcells import derived_subcells

    derived: list[tuple[float, IndexingSolution]] = []
    two_theta = peaks.two_theta[order]
    for candidate in candidates:
        solution, zero = candidate.solution, candidate.zero
        _, q_tol = peaks.q_values(wavelength, zero, n_sigma=settings.n_sigma, min_tolerance=tolerance)
        q = q_from_two_theta(_corrected(two_theta, solution, zero, wavelength), wavelength, zero)
        found = derived_subcells(solution, q, q_tol[order], settings.retry_unindexed)
        derived += [(zero, s) for s in found if s.m20 >= settings.min_m20]
    return derived


def _supercells_by_chance(
    checked: list[CellCandidate], two_theta: np.ndarray, wavelength: float, tolerance: float
) -> dict:
    """id of each checked cell that is a supercell of another checked cell (every line of the smaller one is one
    of its lines, at least 1.9 times the primitive volume) whose extra lines catch no more of the observed lines
    ``two_theta`` than chance would (:func:`gasolve.indexing.subcells.extra_lines_by_chance`), or whose Pawley
    fit finds nothing at its extra reflections away from the lines
    (:attr:`gasolve.indexing.superstructure.WeakLines.silent`: the lines they catch, if any, are then impurity
    lines, and with none caught nothing speaks for the larger cell) -> (the subcell, a note)."""
    from gasolve.indexing.subcells import extra_lines_by_chance
    from gasolve.indexing.superstructure import weak_superstructure_lines

    found: dict[int, tuple[CellCandidate, str]] = {}
    for large, small, record in _nested_pairs(checked, two_theta, wavelength, tolerance):
        if id(large) in found:
            continue
        test = extra_lines_by_chance(two_theta, wavelength, tolerance, record[id(large)], record[id(small)])
        what = (
            f"the {large.solution.bravais} cell of {large.solution.volume:.1f} Å³ is a supercell of the "
            f"{small.solution.bravais} cell of {small.solution.volume:.1f} Å³ whose extra lines index "
            f"{test.caught} of the {test.unindexed} lines the smaller cell leaves unindexed"
        )
        if test.by_chance:
            found[id(large)] = (small, f"{what}, as chance would (p = {test.p_value:.2f}): the smaller cell goes first")
            continue
        if large.pawley_reflections is None or small.pawley_reflections is None:
            continue
        weak = weak_superstructure_lines(large.pawley_reflections, small.pawley_reflections.two_theta, two_theta)
        if weak.silent:
            # Lines caught beyond chance are then impurity lines; none caught, nothing speaks for the larger cell.
            caught = f" (p = {test.p_value:.2g})" if test.caught else ""
            verdict = "impurity lines" if test.caught else "no sign of the larger cell"
            found[id(large)] = (
                small,
                f"{what}{caught}, and its Pawley fit finds nothing at its {weak.n_reflections} extra reflections "
                f"away from the lines (Σ max(I/σ, 0)² = {weak.statistic:.0f}{_scaled(weak)}, chance "
                f"{weak.p_value:.2f}): "
                f"{verdict}, the smaller cell goes first",
            )
    return found


def _nested_pairs(checked: list[CellCandidate], two_theta: np.ndarray, wavelength: float, tolerance: float):
    """(large, small, records) for each pair of checked cells where ``large`` is a supercell of ``small`` (every
    line of the smaller one up to the last of ``two_theta`` is one of its lines, at least 1.9 times the primitive
    volume), in the order of ``checked``; records: id -> (cell, bravais, zero). None without observed lines."""
    from gasolve.indexing.subcells import is_supercell

    if len(two_theta) == 0:
        return
    record = {id(c): (c.pawley_cell or c.solution.cell, c.solution.bravais, c.zero) for c in checked}
    top = float(np.max(two_theta))
    for large in checked:
        for small in checked:
            if small is large or small.solution.primitive_volume * 1.9 > large.solution.primitive_volume:
                continue
            if is_supercell(record[id(large)], record[id(small)], wavelength, top, tolerance):
                yield large, small, record


def _supercells_by_weak_lines(
    checked: list[CellCandidate], two_theta: np.ndarray, wavelength: float, tolerance: float
) -> dict:
    """id of each checked cell that is a supercell of another checked cell (as in :func:`_supercells_by_chance`)
    and whose Pawley fit finds intensity beyond chance at its extra reflections away from every observed line
    (:func:`gasolve.indexing.superstructure.weak_superstructure_lines`) -> (the subcell, a note)."""
    from gasolve.indexing.superstructure import weak_superstructure_lines

    found: dict[int, tuple[CellCandidate, str]] = {}
    for large, small, _ in _nested_pairs(checked, two_theta, wavelength, tolerance):
        if id(large) in found or large.pawley_reflections is None or small.pawley_reflections is None:
            continue
        test = weak_superstructure_lines(large.pawley_reflections, small.pawley_reflections.two_theta, two_theta)
        if test.supported:
            found[id(large)] = (
                small,
                f"the {large.solution.bravais} cell of {large.solution.volume:.1f} Å³ is a supercell of the "
                f"{small.solution.bravais} cell of {small.solution.volume:.1f} Å³ whose Pawley fit finds "
                f"intensity at its {test.n_reflections} extra reflections away from the observed lines "
                f"(Σ max(I/σ, 0)² = {test.statistic:.0f}{_scaled(test)}, chance {test.p_value:.1g}): weak "
                "superstructure reflections, the supercell goes first",
            )
    return found


def _scaled(test) -> str:
    """How the z of a weak-reflection test were scaled by their negative values, for a note ('' when not)."""
    return f", σ scaled ×{test.noise_scale:.2f} by the negative intensities" if test.noise_scale > 1 else ""


def _supercells_before_subcells(checked: list[CellCandidate], weak: dict) -> list[CellCandidate]:
    """``checked`` with each supercell of :func:`_supercells_by_weak_lines` moved just before its subcell, when it
    was behind it."""
    ordered = list(checked)
    for candidate in list(ordered):
        if id(candidate) not in weak:
            continue
        small = weak[id(candidate)][0]
        if small in ordered and ordered.index(small) < ordered.index(candidate):
            ordered.remove(candidate)
            ordered.insert(ordered.index(small), candidate)
    return ordered


def _supercells_after_subcells(checked: list[CellCandidate], chance: dict) -> list[CellCandidate]:
    """``checked`` with each supercell of :func:`_supercells_by_chance` moved just behind its subcell, when it was
    before it."""
    ordered = list(checked)
    for candidate in list(ordered):
        if id(candidate) not in chance:
            continue
        small = chance[id(candidate)][0]
        if small in ordered and ordered.index(small) > ordered.index(candidate):
            ordered.remove(candidate)
            ordered.insert(ordered.index(small) + 1, candidate)
    return ordered


def _smaller_and_as_good(small: CellCandidate, large: CellCandidate, equal: float) -> bool:
    """``small`` is a smaller cell of lower symmetry, with as many lines indexed, a higher ranking figure (M20 weighed
    by the lines that test each lattice: :func:`gasolve.indexing.solutions.ranking_figure`) and as good a fit."""
    return (
        small.solution.primitive_volume < SMALLER * large.solution.primitive_volume
        and SYMMETRY_RANK[small.solution.crystal_system] < SYMMETRY_RANK[large.solution.crystal_system]
        and small.solution.n_indexed >= large.solution.n_indexed
        and small.solution.ranking > large.solution.ranking
        and small.pawley_rwp is not None
        and large.pawley_rwp is not None
        and small.pawley_rwp <= equal * large.pawley_rwp
    )


def _pawley_range(pattern: ObservedPattern, two_theta: np.ndarray, q_factor: float) -> ObservedPattern:
    """The part of ``pattern`` the Pawley check fits: up to Q = ``q_factor`` times the Q of the last line (2θ in
    degrees; Q is proportional to sin²θ)."""
    if q_factor <= 0:
        return pattern
    sine = math.sqrt(q_factor) * math.sin(math.radians(float(np.max(two_theta))) / 2.0)
    if sine >= 1.0:
        return pattern
    top = 2.0 * math.degrees(math.asin(sine))
    if top >= float(pattern.two_theta[-1]):
        return pattern
    return pattern.restrict(float(pattern.two_theta[0]), top)


def _pawley(candidate: CellCandidate, pattern: ObservedPattern, radiation: Radiation) -> CellCandidate:
    """The Pawley check of one candidate. Its least squares stop at a relative change of 1e-6 rather than the
    default 1e-8: on the simulated KLi2Mn2O4 pattern the three checked cells' Rwp, cells (to 1e-4 Å) and zeros
    came out the same, a third faster."""
    from gasolve.profile_fit.lebail import LeBailSettings, fit_lebail

    group = SpaceGroup.from_symbol(HOLOHEDRY[candidate.solution.bravais])
    try:
        settings = LeBailSettings(tolerance=1e-6, intensity_covariance=True)
        result = fit_lebail(pattern, UnitCell(*candidate.solution.cell), group, radiation, settings)
    except InputError:
        return candidate
    reflections = PawleyReflections.from_fit(result, radiation.primary)
    return replace(
        candidate,
        pawley_rwp=float(result.metrics.rwp),
        pawley_cell=tuple(float(x) for x in result.cell.parameters),
        zero=float(result.profile.zero),
        pawley_reflections=reflections,
    )
