"""Work budgets of the indexing search: counted in boxes tested, not in seconds.

A search limited by wall-clock seconds finds a different set of cells on a loaded machine than on an idle one
(on a shared 2-core machine the triclinic Ti3TeO8 was found under one load and missed under another), which
breaks the project's rule that the same input gives the same result. The triclinic search is therefore limited by
the number of boxes of (A ... F) it tests (:func:`gasolve.indexing.triclinic.count_unindexed_triclinic`), a count
that depends only on the lines and the settings. :data:`TRICLINIC_BOXES_PER_SECOND` converts the former seconds
into boxes (``gasolve index --triclinic-budget``).

An optional wall-clock guard (``time_limit``) can stop a search that would run too long; it is off by default,
and a search it stops says so, since its result then depends on the machine's speed and load.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

#: Boxes of (A ... F) the triclinic search tests per second on an idle 2-core machine (this project's machine,
#: Li2Ta2O3 and Ti3TeO8 of the indexing benchmark; docs/indexing.md, "Budget"). Converts the former budget in
#: seconds into boxes.
TRICLINIC_BOXES_PER_SECOND = 50_000
#: Default budget of the triclinic search (boxes): the former 120 s on an idle machine.
TRICLINIC_BOXES = 120 * TRICLINIC_BOXES_PER_SECOND
#: Budget of the second triclinic pass, which allows more unindexed lines when the first finds no sound cell
#: (:func:`gasolve.indexing.pattern._triclinic`; boxes): a third of the first's, about 40 s on an idle machine.
TRICLINIC_RETRY_BOXES = TRICLINIC_BOXES // 3
#: Budget of each level of the triclinic sweep for reduced bases (:func:`gasolve.indexing.pattern._basis_sweep`;
#: boxes), which comes before the search of any basis: a sixth of the first pass's.
TRICLINIC_REDUCED_BOXES = TRICLINIC_BOXES // 6
#: Budget of the first level of the triclinic sweep from zones (:func:`gasolve.indexing.pattern._basis_sweep`,
#: :mod:`gasolve.indexing.zones`; boxes), which comes after the sweep of reduced bases: as much as the first
#: pass's. Its boxes are cheaper (two halved parameters), about 100,000 a second on an idle machine. At the right
#: zero shift the zones of simulated VCrMoO7, PbAuO2 and Ba3WO6 (P-1, report half) find their cells at 618,000,
#: 670,000 and 734,000 boxes, and a wrong zero costs about as much, so that seven zeros need 4-5 million; with
#: 2 million, PbAuO2 and Ba3WO6 were not found (2026-12-05).
TRICLINIC_ZONE_BOXES = TRICLINIC_BOXES
#: Budget of each later level of the sweep from zones (more unindexed lines allowed): a third of the first pass's.
TRICLINIC_ZONE_RETRY_BOXES = TRICLINIC_BOXES // 3

#: Boxes the monoclinic dichotomy (:mod:`gasolve.indexing.dichotomy`) may examine over the zero shifts of one
#: search (every zero when no sound cell fixes it; :func:`gasolve.indexing.pattern._higher_symmetry`): about 45 s on an
#: idle 2-core machine (1.35 million boxes a second on the simulated Dy2TiO5 of the indexing benchmark, 13 million
#: boxes at each zero up to 500 Å³).
MONOCLINIC_BOXES = 60_000_000


class BudgetSpent(RuntimeError):
    """A search's box budget (:class:`WorkBudget`) ran out before it ended."""


def boxes_for_seconds(seconds: float) -> int:
    """The box budget that costs about ``seconds`` on an idle 2-core machine (:data:`TRICLINIC_BOXES_PER_SECOND`).

    Parameters
    ----------
    seconds : float
        Finite and >= 0.

    Returns
    -------
    int
        Boxes (rounded to the nearest box).
    """
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"a budget in seconds must be finite and >= 0, got {seconds}")
    return round(seconds * TRICLINIC_BOXES_PER_SECOND)


class WorkBudget:
    """Boxes a search may test, shared by every call that draws on it, and an optional wall-clock guard.

    Mutable by design: the triclinic search at several zero shifts (:mod:`gasolve.indexing.pattern`) draws on one
    budget, each call charging the boxes it tests.

    Parameters
    ----------
    boxes : int
        Boxes that may be tested (>= 0).
    time_limit : float or None
        Seconds of wall-clock time after which the search stops as well (a safety guard; None: none). A search
        stopped by it is not reproducible, and :attr:`timed_out` says so.
    clock : callable
        Seconds from an arbitrary origin (:func:`time.monotonic`); tests replace it.

    Attributes
    ----------
    used : int
        Boxes tested so far.
    """

    def __init__(self, boxes: int, time_limit: float | None = None, clock: Callable[[], float] = time.monotonic):
        if isinstance(boxes, bool) or not isinstance(boxes, int) or boxes < 0:
            raise ValueError(f"a box budget must be an integer >= 0, got {boxes!r}")
        if time_limit is not None and not (math.isfinite(time_limit) and time_limit > 0):
            raise ValueError(f"a time limit must be finite and > 0 seconds, got {time_limit}")
        self.boxes = boxes
        self.time_limit = time_limit
        self.used = 0
        self._clock = clock
        self._deadline = math.inf if time_limit is None else clock() + time_limit

    def charge(self, n_boxes: int) -> None:
        """Count ``n_boxes`` boxes as tested."""
        self.used += int(n_boxes)

    @property
    def left(self) -> int:
        """Boxes that may still be tested (>= 0)."""
        return max(self.boxes - self.used, 0)

    @property
    def spent(self) -> bool:
        """The boxes are used up."""
        return self.used >= self.boxes

    @property
    def timed_out(self) -> bool:
        """The wall-clock guard has passed (never without a ``time_limit``)."""
        return self.time_limit is not None and self._clock() > self._deadline

    @property
    def stopped(self) -> bool:
        """The search must stop: boxes spent or the guard passed."""
        return self.spent or self.timed_out

    def reason(self) -> str:
        """Why the search stopped, for a note."""
        if self.spent:
            return f"box budget ({self.boxes:,} boxes) spent"
        return (
            f"wall-clock guard ({self.time_limit:g} s) passed after {self.used:,} of {self.boxes:,} boxes "
            "(this result depends on the machine's speed and load)"
        )
