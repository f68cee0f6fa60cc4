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


#: H directions refined against the pattern are kept when the fit improves at this significance (a likelihood
#: ratio test, :func:`refine_hydrogen_directions`).
H_DIRECTION_SIGNIFICANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class HydrogenDirections:
    """The H of a model turned to the directions the pattern prefers (:func:`refine_hydrogen_directions`).

    Attributes
    ----------
    frac : ndarray, shape (n_sites, 3)
        The model with its H turned (every other site as given), projected onto the scorer's positions.
    rwp_before, rwp_after : float
    statistic : float
        (N - P) (Rwp_before² / Rwp_after² - 1): the drop of the weighted sum of squares in units of the refined
        model's residual variance (N points, P free coordinates).
    threshold : float
        The χ² quantile it must exceed (``degrees_of_freedom``, :data:`H_DIRECTION_SIGNIFICANCE`).
    degrees_of_freedom : int
        Free coordinates of the H sites.
    kept : bool
        ``statistic > threshold``.
    """

    frac: np.ndarray
    rwp_before: float
    rwp_after: float
    statistic: float
    threshold: float
    degrees_of_freedom: int
    kept: bool


def refine_hydrogen_directions(
    scorer, cell, space_group, frac: np.ndarray, significance: float = H_DIRECTION_SIGNIFICANCE
) -> HydrogenDirections:
    """Refine the H of a model placed by geometry against the pattern, every other atom held, and put each back at
    its donor's bond length (:func:`gasolve.crystal.hydrogens.at_bond_length`): SHELXL's rotating groups (AFIX
    147, 137), whose torsion the data refine. Kept only when the fit improves significantly.

    The test: with S the weighted sum of squares, (S_before - S_after) / (S_after / (N - P)) is χ² with as many
    degrees of freedom as the H have free coordinates when the H directions do not matter to the pattern (a
    likelihood ratio test, as Hamilton's R-factor ratio test, Acta Cryst. 18 (1965) 502); it is
    (N - P)(Rwp_before² / Rwp_after² - 1). Profile residuals are correlated, which makes the test lenient; the
    0.1 % level leaves it strict enough on the composition benchmark's tune half: Nd(OH)3 (statistic 75 for 2
    coordinates, H 0.46 -> 0.09 Å from the DFT H), CuSO4·H2O (140 for 6, 0.48 -> 0.19 Å) and KHSeO3 (55 for 3,
    0.26 -> 0.09 Å) kept, NH4AgWS4 (13 for 3, it would go 0.26 -> 0.37 Å) and NbO2(OH) in P1 (15 for 12, 0.84 ->
    0.83 Å with two others 0.07-0.12 -> 0.38-0.64 Å) not.

    Parameters
    ----------
    scorer : ModelScorer
        Of the model (its site map gives the H's free coordinates).
    cell : UnitCell
    space_group : SpaceGroup
    frac : ndarray, shape (n_sites, 3)
        The model, H on their donors.
    significance : float
        Level of the test.

    Returns
    -------
    HydrogenDirections
    """
    from scipy.stats import chi2

    from gasolve.crystal.hydrogens import at_bond_length
    from gasolve.refine import refine_coordinates

    elements = [str(e) for e in scorer.problem.elements]
    is_h = np.array([e == "H" for e in elements])
    if not is_h.any() or is_h.all():
        raise ValueError("the model needs H and other atoms")
    frac = scorer.project(np.asarray(frac, dtype=float)[None])[0]
    before = float(scorer.rwp(frac[None])[0])
    refined = refine_coordinates(scorer, frac, fixed=np.repeat(~is_h, 3))
    turned = scorer.project(refined.frac[None])[0]
    others = [e for e in elements if e != "H"]
    turned[is_h] = at_bond_length(cell, space_group, turned[~is_h], others, turned[is_h])
    turned = scorer.project(turned[None])[0]
    after = float(scorer.rwp(turned[None])[0])
    matrices = np.repeat(np.eye(3)[None], len(elements), axis=0) if scorer.site_map is None else scorer.site_map.matrix
    free = [int(np.linalg.matrix_rank(m)) for m in matrices]
    degrees = sum(f for f, h in zip(free, is_h, strict=True) if h)
    n_points = len(scorer.problem.pattern.y_obs)
    statistic = (n_points - sum(free)) * ((before / after) ** 2 - 1) if after > 0 else 0.0
    threshold = float(chi2.isf(significance, max(degrees, 1)))
    kept = bool(degrees > 0 and statistic > threshold)
    return HydrogenDirections(turned if kept else frac, before, after, float(statistic), threshold, degrees, kept)
