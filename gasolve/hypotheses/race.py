"""The race of structure hypotheses: successive halving in cohorts by the prior, a shared budget, a reference-free stop.

Each hypothesis (:mod:`gasolve.hypotheses.hypothesis`) is a plain ``sites`` run of the pipeline
(:mod:`gasolve.pipeline`), advanced in rungs. Rung r of a stage gives every hypothesis still in it a cumulative
budget of ``base x eta^r`` evaluations, where ``base`` grows with the hypothesis's free coordinates
(:attr:`RaceSettings.evaluations_per_free`); runs continue from their records, so no evaluation is spent twice.
After a rung the best ``1/eta`` by Rwp (a Z outside the packing window weighed: :func:`parsimony_factors`) go
on, with any simpler hypothesis that fits as well as one of them (:func:`_simpler_and_as_good`) (successive
halving: Karnin, Koren and Somekh, ICML 2013; Jamieson and Talwalkar, AISTATS 2016). Halving needs no model of how
a GA run's Rwp falls with effort, which differs between hypotheses of different size, only that a right
hypothesis tends to be ahead after a short run; it spends most of the budget on the few that are, and it copes
with not knowing in advance the budget a hypothesis needs.

**Cohorts.** The learned prior ranks the true Wyckoff assignment first for most structures (84.5 % of held-out
ones, top 10 for 97 %), so the hypotheses enter in cohorts in the prior's order: the first
:attr:`RaceSettings.first_cohort`, then eta times as many, and so on. A stage halves its cohort together with the
survivor of the previous stage (which waits until the rung budgets pass the evaluations it already has) down to one
hypothesis. If that one already fits to the noise it runs alone for up to :attr:`RaceSettings.patience` rungs to be
confirmed (the stop rule below); otherwise, or if it is not confirmed, the next cohort enters. After the last
cohort the survivor goes on alone, its budget multiplied by ``eta`` per rung, until it is done or the run's budget
(``[ga] max_evaluations``, shared by all hypotheses) is spent. When the first cohort holds the answer, the race
ends without running the others at all (as Hyperband's brackets trade breadth for depth; here the prior says where
to look first).

**Reserve.** The prior's next hypotheses after the first :data:`~gasolve.hypotheses.hypothesis.MAX_HYPOTHESES`
(:func:`~gasolve.hypotheses.hypothesis.hypotheses_with_reserve`) wait in reserve cohorts of
:attr:`RaceSettings.reserve_cohort`, then twice as many. One enters only when the survivor of the stages before
does not fit to the noise and is *stalled*: its last rung, which gave it ``eta`` times the evaluations, lowered
its Rwp by less than :attr:`RaceSettings.stall_gain` (its search has settled on a model that is not the answer,
and more of the same budget would not change it). Otherwise the survivor goes on alone as before, so a race that
the first hypotheses decide is unchanged. Mg3BN3 (P6₃/mmc, 2 free coordinates): the prior puts its true
assignment 92nd; the survivor of the first 24 stood at χ² 15 with the same model for 1.3·10⁶ evaluations.

**Reference-free stop.** A hypothesis is *done* when its best model (a) was found independently at least
:attr:`RaceSettings.finds` times (by separate epochs of the search, see
:func:`gasolve.pipeline.independent_finds`) and (b) fits to the noise: χ² at most
:attr:`RaceSettings.noise_factor` times the noise level, the χ² of the fit with every reflection's intensity free
(:func:`gasolve.scoring.noise_floor.free_intensity_chi2`: the best any structure model can do with this profile;
about 1 for a simulated pattern, 1.9 for the measured PbSO4 round-robin pattern).
The race stops when a hypothesis is done and no other hypothesis tried with at most as many free coordinates is
within :attr:`RaceSettings.margin` of its Rwp, and none with more free coordinates fits better (an Rwp below
:attr:`RaceSettings.richer_margin` times its own; one that fits only as well contains the simpler one and is no
evidence against it): :func:`is_rival`.

The functions here are the science: :class:`RaceState` is explicit and immutable, :func:`plan_rung` says which
runs to advance and how far, :func:`tell` takes their results back, :func:`decide` applies the stop rule. The
runs themselves are executed by :func:`advance` (a pure function of its arguments, shipped to Dask workers by the
command line, :mod:`gasolve.cli.run_composition`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import numpy as np

from gasolve.config import RunConfig
from gasolve.hypotheses.hypothesis import Hypothesis


@dataclass(frozen=True)
class RaceSettings:
    """How the hypotheses are raced.

    Attributes
    ----------
    eta : int
        Successive-halving factor: a rung keeps the best 1/eta and multiplies the budget by eta.
    evaluations_per_free : float
        First-rung budget per free coordinate.
    min_first_budget : float
        First-rung budget of a hypothesis at least (evaluations).
    finds : int
        Independent finds of the best model for a hypothesis to be done.
    noise_factor : float
        χ² of a done hypothesis at most this times the noise level.
    margin : float
        A done hypothesis stops the race when every rival with at most as many free coordinates has an Rwp above
        its own / margin.
    richer_margin : float
        A rival with more free coordinates stops the race from ending when its Rwp is below ``richer_margin``
        times the done hypothesis's (:func:`is_rival`).
    first_cohort : int
        Hypotheses in the first cohort; cohort k holds ``first_cohort x eta^k``.
    patience : int
        Rungs the survivor of a stage runs alone, when it already fits to the noise, before the next cohort
        enters: a right hypothesis found early often needs only the budget to be found again.
    scan_after : int
        ``[ga] scan_after`` of the hypotheses' runs unless the config sets it: an epoch of the search ends after
        this many generations without progress (a relocation scan that fails, then a restart), so that a right
        model can be found again independently within the race's budgets (the default run's 20 generations cost
        about 130,000 evaluations; 4 cost about 30,000).
    complete_from : int
        After each rung, the best this many runs that do not fit to the noise propose completed hypotheses (their
        heavy atoms kept, the light ones read off the difference Fourier map:
        :mod:`gasolve.hypotheses.completion`), which join the race; 0 turns this off.
    max_completions : int
        Completed hypotheses admitted to the race at most.
    reserve_cohort : int
        Hypotheses in the first reserve cohort (module docstring); each further one holds twice as many.
    stall_gain : float
        A lane whose last rung lowered its Rwp by less than this fraction is stalled.
    """

    eta: int = 3
    evaluations_per_free: float = 2_000.0
    min_first_budget: float = 10_000.0
    finds: int = 2
    noise_factor: float = 2.0
    margin: float = 0.9
    richer_margin: float = 0.97
    scan_after: int = 4
    first_cohort: int = 3
    patience: int = 2
    complete_from: int = 2
    max_completions: int = 8
    reserve_cohort: int = 24
    stall_gain: float = 0.01


@dataclass(frozen=True)
class Lane:
    """One hypothesis in the race.

    Attributes
    ----------
    hypothesis : Hypothesis
    cohort : int
        The stage at which it enters the race.
    target : float
        Cumulative evaluations its run has been given.
    record : RunRecord or None
        The run's last record (None before the first rung).
    status : str
        "waiting", "racing", "dropped" (out after a rung), "done" (met the stop rule), or "failed".
    rwp, chi2 : float
        Of the run's best model so far (χ² = (Rwp / Rexp)², exact for the same weights).
    finds : int
        Independent finds of the best model (counted only when it fits to the noise; 0 otherwise).
    seconds : float
        Wall time of the run, summed over rungs.
    error : str
        Why the run failed.
    completions : tuple of Hypothesis
        Hypotheses completed from the run's best model (:mod:`gasolve.hypotheses.completion`), not yet admitted.
    origin : int or None
        For a completed hypothesis, the lane it was completed from.
    holds_composition : bool
        Whether the best model has the composition (False for a model whose sites settled on positions that hold
        too few or too many atoms, or with two atoms on top of each other: never done; it proposes completions).
    gain : float
        Relative fall of the Rwp in the lane's last rung, (before - after) / before; inf before its second rung.
    reserve : bool
        Whether it was held in reserve (module docstring).
    """

    hypothesis: Hypothesis
    cohort: int = 0
    target: float = 0.0
    record: object | None = None
    status: str = "waiting"
    rwp: float = math.inf
    chi2: float = math.inf
    finds: int = 0
    seconds: float = 0.0
    error: str = ""
    completions: tuple = ()
    origin: int | None = None
    holds_composition: bool = True
    gain: float = math.inf
    reserve: bool = False

    @property
    def evaluations(self) -> float:
        return 0.0 if self.record is None else float(self.record.state.evaluations)


@dataclass(frozen=True)
class RaceState:
    """The whole race (replaced, never edited).

    Attributes
    ----------
    lanes : tuple of Lane
    rung : int
        Rungs finished, all stages.
    stage : int
        Cohorts admitted so far - 1.
    stage_rung : int
        Rungs finished in the current stage.
    alone : int
        Rungs the survivor of the current stage has run alone, waiting to be confirmed.
    noise_chi2 : float
        The noise level of χ² (:func:`gasolve.scoring.noise_floor.free_intensity_chi2`).
    stop : str
        Why the race ended ("" while it runs).
    first_reserve : int or None
        The cohort of the first reserve hypothesis (module docstring); None: no reserve.
    observations : int
        Reflections the profile sees: Hamilton's n for ranking a Z outside the packing window against those inside
        (:func:`parsimony_factors`); 0 ranks by the bare Rwp.
    """

    lanes: tuple[Lane, ...]
    rung: int = 0
    stage: int = 0
    stage_rung: int = 0
    alone: int = 0
    noise_chi2: float = 1.0
    stop: str = ""
    winner: int | None = None
    history: tuple[dict, ...] = field(default=())
    first_reserve: int | None = None
    observations: int = 0

    @property
    def evaluations(self) -> float:
        return float(sum(lane.evaluations for lane in self.lanes))

    def alive(self) -> list[int]:
        """Lanes of the admitted cohorts that are still in the race."""
        return [
            i
            for i, lane in enumerate(self.lanes)
            if lane.status in ("waiting", "racing", "done") and lane.cohort <= self.stage
        ]

    @property
    def last_stage(self) -> int:
        return max((lane.cohort for lane in self.lanes), default=0)


def cohorts(n: int, settings: RaceSettings) -> list[int]:
    """Cohort of each of ``n`` hypotheses in prior order: ``first_cohort``, then eta times more per cohort."""
    out, size, k = [], max(1, settings.first_cohort), 0
    while len(out) < n:
        out += [k] * size
        size *= settings.eta
        k += 1
    return out[:n]


def start(
    hypotheses: list[Hypothesis],
    noise_chi2: float = 1.0,
    settings: RaceSettings | None = None,
    reserve: list[Hypothesis] = (),
    observations: int = 0,
) -> RaceState:
    """The race before its first rung; ``hypotheses`` most probable first, then the ``reserve`` (module
    docstring), also most probable first; ``observations``: :attr:`RaceState.observations`."""
    settings = settings or RaceSettings()
    lanes = [Lane(h, cohort=k) for h, k in zip(hypotheses, cohorts(len(hypotheses), settings), strict=True)]
    first_reserve = None
    if reserve:
        first_reserve = max((lane.cohort for lane in lanes), default=-1) + 1
        size, k, i = max(1, settings.reserve_cohort), first_reserve, 0
        while i < len(reserve):
            lanes += [Lane(h, cohort=k, reserve=True) for h in reserve[i : i + size]]
            i, size, k = i + size, 2 * size, k + 1
    return RaceState(
        tuple(lanes), noise_chi2=float(noise_chi2), first_reserve=first_reserve, observations=int(observations)
    )


def stalled(lane: Lane, settings: RaceSettings) -> bool:
    """Whether the lane's last rung lowered its Rwp by less than :attr:`RaceSettings.stall_gain`."""
    return lane.gain < settings.stall_gain


def first_budget(hypothesis: Hypothesis, settings: RaceSettings) -> float:
    """First-rung budget of a hypothesis: grows with its free coordinates."""
    return max(settings.min_first_budget, settings.evaluations_per_free * hypothesis.n_free)


def plan_rung(state: RaceState, settings: RaceSettings, max_evaluations: float) -> dict[int, float]:
    """Lane index -> new cumulative target of every run the next rung advances (empty when the budget is spent).

    The rung's increments are scaled down together when they would overshoot ``max_evaluations`` (the run's budget,
    shared by all hypotheses).
    """
    alive = [i for i in state.alive() if state.lanes[i].status != "done"]
    left = max_evaluations - state.evaluations
    if not alive or left <= 0:
        return {}
    wanted = {i: first_budget(state.lanes[i].hypothesis, settings) * settings.eta**state.stage_rung for i in alive}
    wanted = {i: max(target, state.lanes[i].evaluations) for i, target in wanted.items()}
    increments = {i: target - state.lanes[i].evaluations for i, target in wanted.items()}
    total = sum(increments.values())
    if total > left:
        factor = left / total
        wanted = {i: state.lanes[i].evaluations + factor * inc for i, inc in increments.items()}
    return {i: float(t) for i, t in wanted.items() if t > state.lanes[i].evaluations}


def tell(state: RaceState, index: int, outcome: dict) -> RaceState:
    """Take one run's outcome back (:func:`advance`'s dict, or ``{"error": text}`` from a failed run)."""
    lanes = list(state.lanes)
    lane = lanes[index]
    if "error" in outcome:
        lanes[index] = replace(lane, status="failed", error=str(outcome["error"]))
    else:
        lanes[index] = replace(
            lane,
            target=outcome["target"],
            record=outcome["record"],
            status="racing",
            rwp=float(outcome["rwp"]),
            gain=_gain(lane.rwp, float(outcome["rwp"])),
            chi2=float(outcome["chi2"]),
            finds=int(outcome["finds"]),
            seconds=lane.seconds + float(outcome["seconds"]),
            completions=tuple(outcome.get("completions", ())),
            holds_composition=bool(outcome.get("holds_composition", True)),
        )
    return replace(state, lanes=tuple(lanes))


def _gain(before: float, after: float) -> float:
    """Relative fall of the Rwp, (before - after) / before; inf for a first rung (``before`` inf)."""
    if not math.isfinite(before) or before <= 0:
        return math.inf
    return (before - after) / before


def admit_completions(state: RaceState, settings: RaceSettings, key) -> RaceState:
    """Let the completed hypotheses of the best runs that do not fit to the noise join the race (after
    :func:`decide`, while the race goes on).

    The best :attr:`RaceSettings.complete_from` runs by Rwp (of every run so far, dropped ones included: a run
    dropped for its light atoms may have the heavy atoms right) offer their completions; one that is the same
    structure as a hypothesis already in the race (``key``: :func:`gasolve.hypotheses.completion.hypothesis_key`)
    is left out, unless that one was dropped: its run goes on (the race drops runs after short rungs, and a
    completion is evidence for it that the prior's rank was not), or waits in the reserve: it enters now, as a
    completion not in the list would. Admitted hypotheses enter the current stage, so
    the next rung runs them, up to :attr:`RaceSettings.max_completions` in all.
    """
    if state.stop or settings.complete_from <= 0:
        return state
    lanes = list(state.lanes)
    admitted = sum(lane.origin is not None for lane in lanes)
    ran = [i for i, lane in enumerate(lanes) if lane.record is not None and lane.status != "failed"]
    offering = [i for i in _ranked(state, ran) if not _fits(lanes[i], state.noise_chi2, settings)]
    offering = offering[: settings.complete_from]
    if not any(lanes[i].completions for i in offering):
        return state
    known = {key(lane.hypothesis): j for j, lane in enumerate(lanes)}
    for i in offering:
        for hypothesis in lanes[i].completions:
            if admitted >= settings.max_completions:
                break
            k = key(hypothesis)
            j = known.get(k)
            if j is not None:
                dropped = lanes[j].status == "dropped"  # dropped after a short run: the map says try it again
                held = lanes[j].reserve and lanes[j].status == "waiting" and lanes[j].cohort > state.stage
                if dropped or held:
                    lanes[j] = replace(lanes[j], status="waiting", cohort=state.stage, origin=i)
                    admitted += 1
                continue
            known[k] = len(lanes)
            lanes.append(Lane(hypothesis, cohort=state.stage, origin=i))
            admitted += 1
        lanes[i] = replace(lanes[i], completions=())
    return replace(state, lanes=tuple(lanes))


def _fits(lane: Lane, noise_chi2: float, settings: RaceSettings) -> bool:
    """The lane's best model fits to the noise and has the composition."""
    return lane.holds_composition and lane.chi2 <= settings.noise_factor * noise_chi2


def is_done(lane: Lane, noise_chi2: float, settings: RaceSettings) -> bool:
    """The lane's best model was found often enough, fits to the noise and has the composition."""
    return lane.finds >= settings.finds and _fits(lane, noise_chi2, settings)


def is_rival(other: Lane, lane: Lane, margin: float, richer_margin: float = 0.97) -> bool:
    """Whether ``other`` keeps the done ``lane`` from stopping the race: with at most as many free coordinates, an
    Rwp within 1 / ``margin`` of the lane's (or lower); with more, an Rwp below ``richer_margin`` times the lane's.

    A hypothesis with more free coordinates that fits only as well contains the simpler one and is no evidence
    against it, but one that fits better is: Hamilton's R-factor ratio test (Acta Cryst. 18 (1965) 502) puts the
    significant ratio for tens of extra parameters against thousands of profile points at 1-2 %, and a few per
    cent even if the profile points were ten times fewer independent observations. Blocking a stop costs only
    evaluations, never a wrong answer. Measured in the broad benchmark, both with every coordinate of the stopping
    hypothesis fixed by symmetry (its one model "found" at every try): ReC2 stopped at χ² 1.81 while a rival with
    one free coordinate stood at χ² 1.11 (Rwp 22 % lower), Ba2SmNbO6 at χ² 1.21 against 1.02 (Rwp 8 % lower).
    """
    if other.hypothesis.n_free <= lane.hypothesis.n_free:
        return other.rwp * margin <= lane.rwp
    return other.rwp <= richer_margin * lane.rwp


def _undetermined_note(hypothesis: Hypothesis) -> str:
    """What the stop's evidence leaves out: '' without H, else the share of the scattering it covers."""
    from gasolve.crystal.xray_visibility import determined_share, undetermined

    hidden = undetermined(hypothesis.elements)
    if not hidden.any():
        return ""
    multiplicities = [int(re.match(r"\d+", label).group()) for label in hypothesis.labels]
    share = determined_share(hypothesis.elements, multiplicities)
    return (
        f", for its atoms other than H ({100 * share:.4g} % of the scattering; an X-ray pattern does not locate H, "
        "so its H atoms are placed anywhere)"
    )


def _ranked(state: RaceState, indices: list[int]) -> list[int]:
    """By Rwp, a Z outside the packing window weighed (:func:`parsimony_factors`), then fewer free coordinates."""
    factors = parsimony_factors(state, indices)
    return sorted(indices, key=lambda i: (state.lanes[i].rwp * factors[i], state.lanes[i].hypothesis.n_free))


def parsimony_factors(state: RaceState, indices: list[int]) -> dict[int, float]:
    """Lane index -> the factor its Rwp is ranked by: for a hypothesis of a Z outside the packing window
    (:attr:`~gasolve.hypotheses.hypothesis.Hypothesis.in_window` False), Hamilton's critical ratio for the free
    coordinates it has beyond the simplest of ``indices`` inside the window; 1 for the others, and for all when
    none of ``indices`` is inside the window or the race does not know its observations.

    A Z outside the window holds more atoms than the cell usually packs (about 1 % of real structures do), and
    more atoms fit any pattern a little better for their coordinates alone, the scale absorbing the density: Z = 8
    with 60 free coordinates against the Z = 4 with 30 it can mimic. Ranked by the bare Rwp it can push the
    hypotheses inside the window out at a short rung. Hamilton's R-factor ratio test (Acta Cryst. 18 (1965) 502;
    n = the reflections the profile sees, :attr:`RaceState.observations`) says by how much it must fit better to be
    preferred. LiCo(CO3)2 (Cc, Z = 4, 10 sites): after the first rung Z = 8 stood at Rwp 0.0517 against 0.0544 for
    the true Z = 4, within the ratio (1.06 for 30 extra coordinates against about 400 reflections), and took the
    whole budget to end at χ² 1.56 with a wrong model of twice the atoms. Hypotheses of one Z inside the window are
    ranked by their bare Rwp: there a richer assignment fitting better is what the race is for (Ba2SmNbO6, Fm-3m:
    O on 24e with one free coordinate at Rwp 0.040 against 0.044 on 24d with none, 20-odd reflections, which
    Hamilton's test alone would not call significant).
    """
    inside = [state.lanes[i].hypothesis.n_free for i in indices if state.lanes[i].hypothesis.in_window]
    if state.observations <= 0 or not inside:
        return dict.fromkeys(indices, 1.0)
    from gasolve.missed_symmetry import hamilton_ratio

    simplest = min(inside)
    factors = {}
    for i in indices:
        hypothesis = state.lanes[i].hypothesis
        extra = hypothesis.n_free - simplest
        outside = not hypothesis.in_window and extra > 0
        factors[i] = hamilton_ratio(extra, state.observations, hypothesis.n_free) if outside else 1.0
    return factors


def _best(state: RaceState, indices: list[int]) -> int | None:
    """The winner among ``indices`` when the race ends without a done hypothesis: the best by Rwp of the runs whose
    model holds the composition (one that does not is not the compound searched for), else the best by Rwp."""
    ranked = _ranked(state, indices)
    holding = [i for i in ranked if state.lanes[i].holds_composition]
    return (holding or ranked or [None])[0]


def _simpler_and_as_good(state: RaceState, index: int, kept: list[int], settings: RaceSettings) -> bool:
    """Whether lane ``index``, below the halving's cut, has fewer free coordinates than a kept lane that does not
    fit :attr:`RaceSettings.richer_margin` better: it then stays. Dropping it would leave the richer hypothesis
    free to stop without its simpler rival (:func:`is_rival`), which a tie in Rwp does not justify. Measured:
    ReC2 (P-6m2, blind benchmark), whose true P-6m2 hypothesis (1 free coordinate, Rwp 0.0359) was dropped
    behind a P3m1 one (3 free coordinates, Rwp 0.0357, C misplaced) that then won and was written in P6mm."""
    lane = state.lanes[index]
    return any(
        state.lanes[k].hypothesis.n_free > lane.hypothesis.n_free
        and not is_rival(state.lanes[k], lane, settings.margin, settings.richer_margin)
        for k in kept
    )


def decide(state: RaceState, settings: RaceSettings, max_evaluations: float) -> RaceState:
    """After a rung: mark done lanes, stop the race if the rule says so, else keep the best 1/eta.

    The race also ends when the budget is spent or every run failed; the winner is then the best by Rwp.
    """
    lanes = list(state.lanes)
    racing = [i for i, lane in enumerate(lanes) if lane.status in ("racing", "done") and lane.cohort <= state.stage]
    for i in racing:
        if is_done(lanes[i], state.noise_chi2, settings):
            lanes[i] = replace(lanes[i], status="done")
    state = replace(state, lanes=tuple(lanes), rung=state.rung + 1, stage_rung=state.stage_rung + 1)
    ranked = _ranked(state, racing)
    row = {
        "rung": state.rung,
        "stage": state.stage,
        "evaluations": state.evaluations,
        "alive": len(racing),
        "best_rwp": state.lanes[ranked[0]].rwp if ranked else math.inf,
    }
    state = replace(state, history=(*state.history, row))
    for i in ranked:
        lane = state.lanes[i]
        if lane.status != "done":
            continue
        rivals = [
            j for j in racing if j != i and is_rival(state.lanes[j], lane, settings.margin, settings.richer_margin)
        ]
        if not rivals:
            reason = (
                f"hypothesis {i + 1} is done: best model found {lane.finds} times independently, χ² {lane.chi2:.3g} "
                f"(noise level {state.noise_chi2:.3g}), no rival with as few free coordinates within "
                f"{(1 / settings.margin - 1) * 100:.0f} % of its Rwp, and none with more that fits "
                f"{(1 - settings.richer_margin) * 100:.0f} % better{_undetermined_note(lane.hypothesis)}"
            )
            return replace(state, stop=reason, winner=i)
    if not ranked:
        return replace(state, stop="every hypothesis failed", winner=None)
    if state.evaluations >= max_evaluations * (1 - 1e-9):
        return replace(state, stop="the evaluation budget is spent", winner=_best(state, ranked))
    keep = max(1, math.ceil(len(ranked) / settings.eta))
    kept = ranked[:keep] + [i for i in ranked[keep:] if _simpler_and_as_good(state, i, ranked[:keep], settings)]
    lanes = list(state.lanes)
    for i in ranked:
        if i not in kept and lanes[i].status == "racing":
            lanes[i] = replace(lanes[i], status="dropped")
    state = replace(state, lanes=tuple(lanes))
    if len(kept) == 1 and state.stage < state.last_stage:  # the stage is decided
        survivor = state.lanes[ranked[0]]
        fits = _fits(survivor, state.noise_chi2, settings)
        reserve_next = state.first_reserve is not None and state.stage + 1 >= state.first_reserve
        if reserve_next and (fits or not stalled(survivor, settings)):  # the survivor goes on alone
            pass
        elif fits and state.alone < settings.patience:  # it fits to the noise: give it the rungs to be confirmed
            state = replace(state, alone=state.alone + 1)
        else:  # the next cohort enters
            state = replace(state, stage=state.stage + 1, stage_rung=0, alone=0)
    return state


def conclude(state: RaceState, reason: str) -> RaceState:
    """End the race now: the winner is the best run by Rwp (then fewer free coordinates) among those whose model
    holds the composition, if any (:func:`_best`); None if none ran."""
    ran = [i for i, lane in enumerate(state.lanes) if lane.record is not None and lane.status != "failed"]
    return replace(state, stop=reason, winner=_best(state, ran))


def goes_on(state: RaceState, max_evaluations: float) -> bool:
    """Whether a stopped race goes on when resumed with ``max_evaluations``: it stopped short of that budget for
    want of evaluations, not because a hypothesis met the stop rule (a done winner is the answer at any budget)."""
    if not state.stop or state.evaluations >= max_evaluations:
        return False
    return state.winner is None or state.lanes[state.winner].status != "done"


def reopen(state: RaceState) -> RaceState:
    """A stopped race that goes on (resumed with a larger budget): the lanes keep their status."""
    return replace(state, stop="", winner=None)


def race_config(config: RunConfig, settings: RaceSettings) -> RunConfig:
    """The composition config the hypotheses run with: the race's GA settings (:attr:`RaceSettings.scan_after`)
    unless the config sets them, and no ``[reference]`` (hypotheses of another Z cannot be compared with it; the
    winner is judged against it at the end)."""
    config = replace(config, reference=None)
    if "scan_after" in config.raw.get("ga", {}):
        return config
    return replace(config, ga=config.ga.replace({"scan_after": settings.scan_after}))


def hypothesis_config(config: RunConfig, hypothesis: Hypothesis, target: float) -> RunConfig:
    """The plain ``sites`` config of one hypothesis with a cumulative budget of ``target`` evaluations."""
    structure = hypothesis.structure(config.structure)
    return replace(config, structure=structure, ga=config.ga.replace({"max_evaluations": math.ceil(target)}))


def advance(
    config: RunConfig,
    observed,
    record,
    target: float,
    noise_chi2: float,
    finds_tolerance: float,
    hypothesis: Hypothesis | None = None,
    complete_above: float = math.inf,
    counts: dict[str, int] | None = None,
) -> dict:
    """Advance one hypothesis's run to ``target`` evaluations (runs on a Dask worker; pure).

    Parameters
    ----------
    config : RunConfig
        :func:`hypothesis_config`'s, with the profile (fitted once for all hypotheses).
    observed : ObservedPattern
    record : RunRecord or None
        Where the run stands (None: start).
    target : float
    noise_chi2 : float
        The noise level of χ²: independent finds are counted (comparisons cost time) only for a best model with
        χ² at most 4 times it, which could be the answer.
    finds_tolerance : float
        Å, :func:`gasolve.pipeline.independent_finds`.
    hypothesis : Hypothesis, optional
        The hypothesis the run belongs to: with it, a best model whose χ² is above ``complete_above`` proposes
        completed hypotheses (:func:`gasolve.hypotheses.completion.completion_hypotheses`).
    complete_above : float
        χ² above which completions are proposed; inf: none are.
    counts : dict of str to int, optional
        Atoms per cell of each element (:meth:`Hypothesis.atoms_per_cell`): whether the best model holds them
        (:func:`gasolve.hypotheses.completion.holds_composition`) is checked, and one that does not proposes
        completions whatever its χ².

    Returns
    -------
    dict
        ``target``, ``record``, ``rwp``, ``chi2``, ``finds``, ``seconds``, ``completions`` (tuple of Hypothesis),
        ``holds_composition``.
    """
    import time

    from gasolve import pipeline
    from gasolve.diffraction.fit_metrics import fit_metrics

    started = time.perf_counter()
    setup = pipeline.prepare(config, observed)
    last = record
    for last in pipeline.search(setup, record):  # noqa: B007 (the last one is kept)
        pass
    record = last
    state = record.state
    rexp = fit_metrics(observed.y_obs, observed.y_obs, observed.weights, 1 + setup.scorer.problem.background_terms).rexp
    chi2 = (float(state.best_rwp) / rexp) ** 2
    finds = 0
    if chi2 <= 4 * noise_chi2:  # counting needs comparisons: only for a model that could be the answer
        best = setup.scorer.project(np.asarray(state.best_genome)[None].reshape(1, -1, 3))[0]
        finds = pipeline.independent_finds(setup, record, best, finds_tolerance)
    from gasolve.hypotheses import completion

    genome = np.asarray(state.best_genome)
    holds = counts is None or completion.holds_composition(setup.scorer, genome, counts)
    completions = ()
    if hypothesis is not None and math.isfinite(complete_above) and (chi2 > complete_above or not holds):
        completions = completion.completion_hypotheses(setup.scorer, genome, hypothesis, counts)
    return {
        "holds_composition": holds,
        "completions": completions,
        "target": target,
        "record": record,
        "rwp": float(state.best_rwp),
        "chi2": chi2,
        "finds": finds,
        "seconds": time.perf_counter() - started,
    }


def _unused_reserve(state: RaceState, index: int) -> bool:
    lane = state.lanes[index]
    return lane.reserve and lane.record is None and lane.status == "waiting" and lane.cohort > state.stage


def reserve_counts(state: RaceState) -> dict:
    """``held``: reserve hypotheses listed (module docstring); ``entered``: those that ran."""
    reserve = [i for i, lane in enumerate(state.lanes) if lane.reserve]
    return {"held": len(reserve), "entered": sum(not _unused_reserve(state, i) for i in reserve)}


def table(state: RaceState) -> list[dict]:
    """The hypotheses as summary.json lists them, ranked (winner first, then by Rwp; untried last; reserve
    hypotheses that never entered are left out: :func:`reserve_counts`)."""
    order = [i for i in _ranked(state, list(range(len(state.lanes)))) if not _unused_reserve(state, i)]
    if state.winner is not None:
        order = [state.winner] + [i for i in order if i != state.winner]
    rows = []
    for rank, i in enumerate(order, start=1):
        lane = state.lanes[i]
        h = lane.hypothesis
        rows.append(
            {
                "rank": rank,
                "hypothesis": i + 1,
                "z": h.z,
                "route": h.route,
                "assignment": h.describe(),
                "sites": [list(site) for site in h.sites],
                "n_free": h.n_free,
                "log_prior": h.log_prior,
                "rwp": lane.rwp,
                "chi2": lane.chi2,
                "finds": lane.finds,
                "evaluations": lane.evaluations,
                "seconds": lane.seconds,
                "status": lane.status if lane.status != "waiting" else "not tried",
                **({"completed_from": lane.origin + 1} if lane.origin is not None else {}),
                **({"error": lane.error} if lane.error else {}),
            }
        )
    return rows
