"""The light-atom search: the lighter atoms searched again with the heavier ones held where the run put them.

A run that ends with its heavy atoms right and some light ones wrong (O, F, Li next to Bi, Ba, Cs, W) has most
often spent its budget on all coordinates at once: the heavy atoms dominate Rwp, and the light atoms' share of the
fit is a small signal over a landscape that every move of a heavy atom reshapes. Held fixed, the heavy atoms phase
the pattern (as in the heavy-atom method of single-crystal work), and a search over the light atoms' coordinates
alone is a smaller problem with a fixed landscape. Measured on four P1 and P-1 structures of the broad benchmark
whose runs of 2·10⁶ evaluations ended with their heavy atoms within 0.02 Å and light atoms wrong
(benchmarks/results, docs/composition.md): RbBiF4 and Ba3WO6 were solved by a light-atom search of 3·10⁵
evaluations, their Rwp falling from 0.0360 to 0.0309 and from 0.0386 to 0.0356; KBi2F7 and Cs2PbO2 were not.

:func:`heavy_sites` splits the sites by scattering power; :func:`search_light_atoms` runs the search of
:mod:`gasolve.solve` with the heavy sites held, refines its best models by least squares, and returns the result
when it fits better than the model it started from.
"""

from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np

#: A site is heavy when its atom's scattering power squared is at least this share of the heaviest atom's: Rb
#: next to Bi (0.20), P next to Cu (0.26) and Ba next to W (0.57) are heavy; O, F and Li next to any of them light.
HEAVY_POWER_SQUARED = 0.15
#: The light-atom search spends at most this share of the run's budget.
BUDGET_SHARE = 0.25
#: Its model is kept when Rwp after refinement is below this factor of the model it started from.
RWP_GAIN = 0.99
#: Its seed is derived from the run's seed, this constant and the round, so that it differs from the run's streams.
SEED_STREAM = 0x11A7
#: Rounds at most: another round follows while the last one kept a better model. On RbBiF4 (P1) a first round
#: from the run's model went from Rwp 0.0360 to 0.0337, a second to 0.0326 and a third to 0.0299, the truth.
ROUNDS = 3


def heavy_sites(power: np.ndarray) -> np.ndarray:
    """Which sites are heavy, by their atoms' scattering power.

    Parameters
    ----------
    power : ndarray, shape (n_sites,)
        Scattering power of one atom of each site (electrons, f0 at the lowest angle of the pattern).

    Returns
    -------
    ndarray, shape (n_sites,), bool
        True where power² ≥ :data:`HEAVY_POWER_SQUARED` x the largest power².
    """
    power = np.asarray(power, dtype=float)
    if power.ndim != 1 or not len(power) or np.any(power <= 0):
        raise ValueError(f"power must be a non-empty positive vector, got shape {power.shape}")
    return power**2 >= HEAVY_POWER_SQUARED * power.max() ** 2


def light_budget(settings) -> int:
    """Evaluations of the light-atom search under ``settings`` (a :class:`~gasolve.ga.settings.GASettings`)."""
    budget = settings.budget
    return int(min(budget.light_atom_evaluations, BUDGET_SHARE * budget.max_evaluations))


@dataclasses.dataclass(frozen=True)
class LightAtomSearch:
    """What the light-atom search did, for summary.json.

    Attributes
    ----------
    held_sites, searched_sites : tuple of str
        Labels of the sites held and of those searched.
    evaluations : float
        Over all rounds.
    seconds : float
        Wall time of the search and of the refinement of its models.
    rwp_before, rwp_after : float
        Rwp after refinement of the model it started from and, when kept, of the model kept (the run's new
        model); when not kept, the lowest Rwp a round reached.
    kept : bool
        Whether its model replaced the run's (a round's Rwp below :data:`RWP_GAIN` x the model it started from).
    rounds : int
        Rounds run (:data:`ROUNDS`).
    """

    held_sites: tuple[str, ...]
    searched_sites: tuple[str, ...]
    evaluations: float
    seconds: float
    rwp_before: float
    rwp_after: float
    kept: bool
    rounds: int = 1

    def as_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "held_sites": list(self.held_sites),
            "searched_sites": list(self.searched_sites),
        }


def search_light_atoms(setup, best, report=None):
    """Search the light atoms of the refined model ``best`` again with its heavy atoms held.

    Rounds of the search follow one another while each finds a better model (at most :data:`ROUNDS`), each from
    the model the last one kept, with its heavy atoms as that refinement left them and a seed of its own.

    Parameters
    ----------
    setup : gasolve.pipeline.Setup
    best : gasolve.refine.Refinement
        The run's best model after refinement.
    report : callable, optional
        Called after every generation with (evaluations spent, the budget of the rounds so far, the search's best
        Rwp so far): a progress bar.

    Returns
    -------
    best : Refinement
        The light-atom search's best model when it fits better (see :class:`LightAtomSearch`), else ``best``.
    note : LightAtomSearch or None
        None when the search does not apply: its budget is 0, or the sites are not split into heavy and light.
    """
    from gasolve.ga.fourier_rebuild import atomic_power

    settings = setup.config.ga
    evaluations = light_budget(settings)
    heavy = heavy_sites(atomic_power(setup.scorer.problem))
    if evaluations < 1 or heavy.all() or not heavy.any():
        return best, None
    started = time.perf_counter()
    start_rwp, spent, rounds, reached = best.rwp_after, 0.0, 0, np.inf
    for rounds in range(1, ROUNDS + 1):
        found, used = _one_round(setup, best, heavy, evaluations, rounds, spent, report)
        spent += used
        if _collapses(setup, best, found):  # refused: its Rwp is no model's
            break
        reached = min(reached, found.rwp_after)
        if not found.rwp_after < RWP_GAIN * best.rwp_after:
            break
        best = found
    labels = [site.label for site in setup.template.sites]
    kept = bool(best.rwp_after < start_rwp)
    note = LightAtomSearch(
        held_sites=tuple(label for label, h in zip(labels, heavy, strict=True) if h),
        searched_sites=tuple(label for label, h in zip(labels, heavy, strict=True) if not h),
        evaluations=spent,
        seconds=time.perf_counter() - started,
        rwp_before=float(start_rwp),
        rwp_after=float(best.rwp_after if kept else min(reached, start_rwp)),
        kept=kept,
        rounds=rounds,
    )
    return best, note


def _collapses(setup, before, after) -> bool:
    """Whether ``after`` puts two atoms on top of one another (closer than
    :data:`gasolve.hypotheses.completion.COINCIDENT`) where ``before`` had none: a light atom drawn onto another
    atom adds its electrons to that atom's peak and can fit better than anywhere else (Li4V5O9F: an Li 0.05 Å from
    an F, χ² 1.08), but no crystal has it."""
    from gasolve.crystal.xray_visibility import undetermined
    from gasolve.hypotheses.completion import COINCIDENT, closest_pair

    hidden = undetermined(setup.scorer.problem.elements)  # H: the pattern does not locate it

    def shortest(model) -> float:
        return closest_pair(setup.scorer, model.frac.ravel(), settle=False, other_sites=True, leave_out=hidden)[2]

    return shortest(after) < COINCIDENT <= shortest(before)


def _one_round(setup, best, heavy, evaluations: int, round_number: int, spent: float, report):
    """One light-atom search from ``best``: its refined best model and the evaluations it spent."""
    from gasolve.pipeline import refine_candidates
    from gasolve.solve import iterate

    settings = setup.config.ga
    seed = int(np.random.SeedSequence([settings.budget.seed, SEED_STREAM, round_number]).generate_state(1)[0])
    light_settings = settings.replace(max_evaluations=evaluations, seed=seed)
    held = np.where(heavy[:, None], best.frac, np.nan)
    generations = iterate(setup.scorer, light_settings, held=held)
    if report is not None:
        generations = _reporting(generations, report, spent, spent + evaluations)
    record = collections.deque(generations, maxlen=1)[0]  # the last generation's
    found, _ = refine_candidates(setup, record)
    return found, float(record.state.evaluations)


def _reporting(records, report, spent: float, budget: float):
    for record in records:
        report(spent + record.state.evaluations, budget, record.state.best_rwp)
        yield record
