"""One structure-solution run from a config, as a library: profile fit, scorer, search, final refinement, files.

``gasolve run`` (a config with ``sites``), every hypothesis of the composition search
(:mod:`gasolve.hypotheses.race`), ``harvest`` and the benchmarks go through these functions::

    setup = prepare(config)                 # profile fit if [pattern.profile] is absent, scorer, reference
    for record in search(setup):            # one RunRecord per generation (checkpoint it to resume)
        ...
    result = finish(setup, record)          # refinement, special positions, esds, figures of merit, verdict
    write_run(result, out)                  # best.cif, summary.json, history.csv, fit.png, convergence.png

:func:`solve` does the three steps in one call. Nothing here prints or shows progress: the caller does.

Whether a solution is convincing is judged without a reference (:func:`verdict`): the fit must reach the noise
level of the data within a factor (the χ² with every reflection's intensity free), the reflections' intensities
must agree (Bragg R), and the search must have found the model more than once independently; a run that ends
short of that says so, with what to try, on the terminal and in summary.json.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gasolve.config import RunConfig, load_observed
from gasolve.crystal import Structure, read_cif
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.refine import Refinement
from gasolve.scoring.protocol import ModelScorer
from gasolve.solve import Judge, RunRecord, final_candidates, iterate, model_structure, template_structure

#: Largest χ² of a convincing solution. A right model of a simulated pattern gives χ² near 1; on measured data
#: the profile model's own misfit (asymmetry, preferred orientation, impurity lines) adds a few units, so a
#: right model of the PbSO4 round-robin pattern ends near 2-4. A wrong model stays far above (the issue's example:
#: χ² 245).
CONVINCING_CHI2 = 10.0
#: Largest Bragg R of a convincing solution: a right model's reflection intensities agree within ~10 %, a wrong
#: one's do not (0.36 and 0.96 in the issue's examples).
CONVINCING_R_BRAGG = 0.20
#: A convincing model's χ² is at most this times the χ² with free intensities (the noise level with this profile).
NOISE_FACTOR = 2.0
#: Independent finds that confirm a model (separate epochs of the search ending at the same structure).
CONFIRMING_FINDS = 2
#: Distance (Å) within which two models count as the same structure when counting independent finds.
SAME_MODEL_TOLERANCE = 0.3
#: Best distinct models of the search refined at the end (:func:`refine_candidates`).
FINAL_CANDIDATES = 5


@dataclass(frozen=True)
class Setup:
    """Everything a run builds once from its config.

    Attributes
    ----------
    config : RunConfig
        With the fitted profile and cell when the profile was fitted here.
    observed : ObservedPattern
    profile_fit : LeBailResult or None
        The whole-pattern profile fit, when the config had no ``[pattern.profile]``.
    scorer : ModelScorer
    template : Structure
        Cell, space group, sites with elements and B; coordinates come from the search.
    judge : Judge or None
        From ``[reference]``.
    selector : object or None
        The selection network (:class:`nnselect.selector.SiteSelector`) from ``[nn]``.
    ranker : callable or None
        The per-atom network of ``[atom_selection]`` (:class:`gasolve.ga.atom_selection.AtomRanker`).
    """

    config: RunConfig
    observed: ObservedPattern
    profile_fit: object | None
    scorer: ModelScorer
    template: Structure
    judge: Judge | None = None
    selector: object | None = None
    ranker: Callable[[np.ndarray], np.ndarray] | None = None


def fit_profile(config: RunConfig, observed: ObservedPattern) -> tuple[RunConfig, object | None]:
    """Fit profile, zero shift and cell first (Le Bail/Pawley, as FOX and DASH do) when the config has no profile.

    Returns
    -------
    config : RunConfig
        With the fitted cell and ``[pattern.profile]``; the config itself when it had a profile.
    result : LeBailResult or None
    """
    if config.pattern.profile is not None:
        return config, None
    from gasolve.profile_fit import LeBailSettings, fit_lebail

    structure, pattern = config.structure, config.pattern
    result = fit_lebail(
        observed,
        structure.cell,
        structure.space_group,
        pattern.radiation,
        LeBailSettings(
            background_terms=pattern.background_terms, polarisation=pattern.polarisation, shape=pattern.peak_shape
        ),
    )
    fitted = dataclasses.replace(
        config,
        structure=dataclasses.replace(structure, cell=result.cell),
        pattern=dataclasses.replace(pattern, profile=result.profile),
    )
    return fitted, result


def prepare(
    config: RunConfig,
    observed: ObservedPattern | None = None,
    selector_factory: Callable[[RunConfig, object], object] | None = None,
    ranker_factory: Callable[[RunConfig, object], Callable[[np.ndarray], np.ndarray]] | None = None,
) -> Setup:
    """Build the scorer, the template and the reference judge of a config with ``sites``.

    Parameters
    ----------
    config : RunConfig
    observed : ObservedPattern, optional
        The pattern already read (the composition search reads it once for all hypotheses).
    selector_factory : callable, optional
        (config, ScoringProblem) -> selection network, called when the config has ``[nn]`` (the command line
        passes :class:`nnselect.selector.SiteSelector`'s; the core never imports nnselect).
    ranker_factory : callable, optional
        (config, ScoringProblem) -> per-atom ranker, called when the config has ``[atom_selection]`` (the command line
        passes :func:`nnselect.peratom.ranker.ranker_factory`).

    Raises
    ------
    InputError
        When the reference does not match the cell or the composition.
    """
    from gasolve.scoring.build import build_scorer

    if not config.structure.sites:
        raise ValueError("prepare needs a config with sites; a composition goes to gasolve.hypotheses.race")
    observed = load_observed(config) if observed is None else observed
    config, lebail = fit_profile(config, observed)
    spec, pattern = config.structure, config.pattern
    scorer = build_scorer(spec, observed, pattern.radiation, pattern.profile, pattern.background_terms)
    selector = None
    if config.nn is not None:
        if selector_factory is None:
            raise ValueError("the config has [nn]: pass selector_factory")
        selector = selector_factory(config, scorer.problem)
    ranker = None
    if config.selection is not None:
        if ranker_factory is None:
            raise ValueError("the config has [atom_selection]: pass ranker_factory")
        ranker = ranker_factory(config, scorer.problem)
    template = template_structure(spec.name, spec.cell, spec.space_group, spec.sites, spec.b_iso, spec.charges)
    judge = None
    if config.reference is not None:
        judge = _reference_judge(config, template, spec.site_map())
    return Setup(config, observed, lebail, scorer, template, judge, selector, ranker)


def _reference_judge(config: RunConfig, template: Structure, site_map) -> Judge:
    from gasolve.compare import check_reference_elements, compare_structures

    reference = read_cif(config.reference.cif)
    judge = Judge(template, reference, config.reference.tolerance)
    probe = model_structure(template, site_map.project(np.random.default_rng(0).random((1, template.n_sites, 3)))[0])
    try:  # a cell or composition that does not match the reference fails here, before anything is written
        if config.structure.occupancy_correction:  # atoms per cell depend on where the search puts the sites
            check_reference_elements(probe, reference)
        else:
            compare_structures(probe, reference)
    except InputError as error:
        raise InputError(f"[reference] cif {config.reference.cif}: {error.message}", str(config.source)) from None
    return judge


def search(setup: Setup, record: RunRecord | None = None) -> Iterator[RunRecord]:
    """The GA's generations until the budget of ``setup.config`` is spent (:func:`gasolve.solve.iterate`)."""
    nn = setup.config.nn if setup.selector is not None else None
    share = setup.config.selection.scan_share if setup.ranker is not None else 1.0
    return iterate(setup.scorer, setup.config.ga, record, setup.judge, setup.selector, nn, setup.ranker, share)


def epoch_cost(setup: Setup, generation: float | None = None):
    """The estimated cost of one search epoch of this run (:func:`gasolve.ga.budget_check.epoch_cost`); ``generation``:
    the evaluations of its initial population, when measured."""
    from gasolve.ga.budget_check import epoch_cost as estimate
    from gasolve.ga.fourier_rebuild import CYCLES, map_cost
    from gasolve.ga.memetic import scanned_sites
    from gasolve.solve import origin_genes

    scorer, settings = setup.scorer, setup.config.ga
    problem = scorer.problem
    origin = origin_genes(scorer, settings)
    scanned = len(scanned_sites(np.zeros(3 * problem.n_sites, bool) if origin is None else origin, scorer.site_map))
    splits = len(set(problem.elements)) - 1 if settings.layout.scan_fourier and scanned else 0
    maps = map_cost(problem) * CYCLES * splits
    return estimate(settings, problem.cell, scanned, generation, maps, problem.space_group)


def same_model(template: Structure, frac_a: np.ndarray, frac_b: np.ndarray, tolerance: float) -> bool:
    """Whether two models of one template are the same structure: every atom within ``tolerance`` Å after the
    best superposition under the group's normalizer (:func:`gasolve.compare.compare_structures`), H atoms left
    out (:mod:`gasolve.crystal.xray_visibility`)."""
    from gasolve.compare import compare_structures
    from gasolve.crystal.xray_visibility import without_undetermined

    # H atoms are left out: the pattern does not locate them, so the same heavy atoms are the same find.
    model_a = without_undetermined(model_structure(template, frac_a))
    model_b = without_undetermined(model_structure(template, frac_b))
    try:
        comparison = compare_structures(model_a, model_b)
    except InputError:  # images merged on a special position in one model and not in the other
        return False
    return bool(np.max(comparison.site_distances) <= tolerance)


def independent_finds(
    setup: Setup, record: RunRecord, frac: np.ndarray, tolerance: float = SAME_MODEL_TOLERANCE
) -> int:
    """How many independent attempts of the search ended at the model ``frac`` (n_sites, 3).

    The attempts are the search's epochs: every restart of the whole search starts all islands from random models
    (:func:`gasolve.ga.multipop.restart_search`), so the best model of each epoch was found independently of the
    others. Islands within an epoch are not independent (they exchange models by migration) and count once.

    Returns
    -------
    int
        Epochs, the current one included, whose best model is ``frac`` within ``tolerance`` Å (at least 1 when
        ``frac`` is the current best; 0 if no epoch's best matches it).
    """
    scorer = setup.scorer
    epochs = [genome for genome, _ in record.epoch_bests]
    epochs.append(np.asarray(record.state.epoch_best_genome()))
    count = 0
    for genome in epochs:
        other = scorer.project(np.asarray(genome)[None].reshape(1, -1, 3))[0]
        if same_model(setup.template, other, frac, tolerance):
            count += 1
    return count


@dataclass(frozen=True)
class Verdict:
    """Whether the solution is convincing without a reference, and what to try when it is not.

    Attributes
    ----------
    convincing : bool
        The fit reaches the noise level and the intensities agree.
    confirmed : bool
        The search found the model at least :data:`CONFIRMING_FINDS` times independently.
    reasons : tuple of str
        What falls short (empty when convincing).
    advice : tuple of str
        What to try.
    undetermined : tuple of str
        Labels of the sites whose positions the pattern does not determine (H); the model is then not convincing
        as a whole even when it fits, and ``reasons`` says for which atoms it is.
    """

    convincing: bool
    confirmed: bool = False
    reasons: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()
    undetermined: tuple[str, ...] = ()


def verdict(
    chi2: float,
    r_bragg: float,
    noise_chi2: float,
    finds: int,
    coincident: tuple[tuple[str, ...], ...] = (),
    undetermined: tuple[str, ...] = (),
    determined_share: float = 1.0,
    hydrogens_placed: bool = False,
    composition_gap: str = "",
    contact: str = "",
    short_contact: str = "",
) -> Verdict:
    """Judge a refined solution without a reference.

    Parameters
    ----------
    chi2, r_bragg : float
        Of the refined model.
    noise_chi2 : float
        χ² with every reflection's intensity free (:func:`gasolve.scoring.noise_floor.free_intensity_chi2`): the
        best a structure model can do with this profile.
    finds : int
        Independent finds of the model (:func:`independent_finds`).
    coincident : tuple of tuple of str
        Labels of independent sites that lie on one orbit and that the model counts as separate full atoms
        (:func:`gasolve.crystal.coincident.share_occupancy`): two atoms at one place make no crystal structure,
        however well the model fits.
    undetermined : tuple of str
        Labels of the sites an X-ray pattern does not locate (H; :mod:`gasolve.crystal.xray_visibility`).
    determined_share : float
        Share of the scattering power carried by the other sites.
    hydrogens_placed : bool
        The H atoms were placed by geometry (:func:`place_riding_hydrogens`): the advice says so.
    composition_gap : str
        How the atoms of the model differ from the composition searched for (:func:`composition_gap`); empty when
        they do not.
    contact : str
        Two atoms of different sites closer than :data:`gasolve.hypotheses.completion.COINCIDENT` (:func:`contact`),
        e.g. "Li3 and F19 are 0.05 Å apart"; empty when none are.
    short_contact : str
        Two atoms closer than real structures have their elements (:func:`short_contact`); empty when none are.

    Returns
    -------
    Verdict
        Convincing when χ² is at most :data:`NOISE_FACTOR` x ``noise_chi2`` (and :data:`CONVINCING_CHI2`) and
        Bragg R at most :data:`CONVINCING_R_BRAGG`; confirmed when the model was also found at least
        :data:`CONFIRMING_FINDS` times: a model at the noise level found once may be a look-alike (a wrong P1 model
        of a simulated pattern reached χ² 1.21 against 1.05 for the truth).
    """
    reasons = []
    limit = min(NOISE_FACTOR * noise_chi2, CONVINCING_CHI2)
    if not np.isfinite(chi2) or chi2 > limit:
        reasons.append(
            f"χ² {chi2:.3g} is above {limit:.3g} ({NOISE_FACTOR:g} x {noise_chi2:.3g}, the χ² with every reflection's "
            "intensity free): the model does not fit the pattern to its noise"
        )

    if not np.isfinite(r_bragg) or r_bragg > CONVINCING_R_BRAGG:
        reasons.append(f"Bragg R {r_bragg:.3g} is above {CONVINCING_R_BRAGG:g}: the reflection intensities disagree")
    if composition_gap:
        reasons.append(
            f"best.cif holds {composition_gap}: sites settled on special positions (or on top of one another) and "
            "lost atoms or gained them, so the model is not the compound searched for, however well it fits"
        )
    for labels in coincident:
        reasons.append(
            f"the sites {', '.join(labels)} lie on one orbit (atoms at the same place): no crystal structure has "
            "that, and best.cif writes them as one point with their occupancies shared"
        )
    if contact:
        reasons.append(
            f"{contact}: two atoms at one place make no crystal structure (a light atom drawn onto another adds its "
            "electrons to that atom's peak), however well the model fits"
        )
    if short_contact and not contact:
        reasons.append(
            f"{short_contact}: closer than real structures put these elements; an atom (often a light one that the "
            "pattern barely sees) sits where none can, however well the model fits"
        )
    confirmed = finds >= CONFIRMING_FINDS
    if undetermined:
        hidden = f"{100 * (1 - determined_share):.2g} %"
        if not reasons:
            reasons.append(
                f"the positions of {', '.join(undetermined)} are not determined by an X-ray pattern (they carry "
                f"{hidden} of the scattering power): the fit and the independent finds speak for the other atoms "
                f"only ({100 * determined_share:.4g} % of the scattering), which fit to the noise"
            )
            advice = (
                (
                    "the H atoms of best.cif were placed by geometry on their donors (a riding model), not found in "
                    "the pattern: confirm them with neutron data if they matter"
                    if hydrogens_placed
                    else "place the H atoms geometrically on their neighbours (a riding model) or take them from "
                    "neutron data"
                )
                + "; the other atoms of best.cif are solved as far as the pattern can tell",
            )
            return Verdict(False, confirmed, tuple(reasons), advice, tuple(undetermined))
        reasons.append(f"the positions of {', '.join(undetermined)} are not determined by an X-ray pattern")
    if not reasons:
        return Verdict(True, confirmed)
    advice = (
        "more independent attempts: a larger budget ([ga] max_evaluations, --max-evaluations), other seeds (--seed)",
        "check the profile fit (gasolve lebail CONFIG): a wrong cell, zero shift or peak shape spoils every model",
        "check the space group (gasolve classify / gasolve index) and the composition or the list of sites",
        "on measured data: impurity lines or preferred orientation raise χ² (gasolve refine can refine the latter)",
    )
    return Verdict(False, confirmed, tuple(reasons), advice, tuple(undetermined))


@dataclass(frozen=True)
class RunResult:
    """A finished run: the refined model, its fit and figures of merit, and the search's record.

    Attributes
    ----------
    setup : Setup
    record : RunRecord
    structure : Structure
        The model as best.cif carries it (sites on special positions settled, occupancies set).
    frac : ndarray, shape (n_sites, 3)
        Refined fractional coordinates.
    esd : ndarray, shape (n_sites, 3)
        Coordinate esds (fractional); NaN where undetermined.
    wyckoff : tuple of str or None
    y_calc : ndarray, shape (n_points,)
        Calculated profile of the refined model, background included.
    ticks : list of (str, ndarray)
        Reflection positions (degrees 2θ) per wavelength, for the fit plot.
    finds : int
        Independent finds of the best model (:func:`independent_finds`).
    verdict : Verdict
    summary : dict
        What summary.json carries.
    """

    setup: Setup
    record: RunRecord
    structure: Structure
    frac: np.ndarray
    esd: np.ndarray
    wyckoff: tuple[str, ...] | None
    y_calc: np.ndarray
    ticks: list
    finds: int
    verdict: Verdict
    summary: dict = field(repr=False)

    @property
    def rwp(self) -> float:
        return float(self.summary["rwp"])

    @property
    def chi2(self) -> float:
        return float(self.summary["chi2"])


def refine_candidates(
    setup: Setup, record: RunRecord, *, hold_origin: bool = True, n: int = FINAL_CANDIDATES
) -> tuple[Refinement, list[Refinement]]:
    """Least-squares refinement of the search's ``n`` (:data:`FINAL_CANDIDATES`) best distinct models.

    Parameters
    ----------
    setup : Setup
    record : RunRecord
    hold_origin : bool
        Hold the origin of a polar group where the search put it (the heaviest atom along the polar directions),
        as :func:`finish` does; False lets every coordinate move (the convergence benchmark's setting).

    Returns
    -------
    best : Refinement
        The lowest Rwp after refinement, its coordinates projected onto the scorer's Wyckoff positions.
    refinements : list of Refinement
        Every candidate's, in the order of :func:`gasolve.solve.final_candidates`.
    """
    from gasolve.crystal.origin import origin_fixing_slots
    from gasolve.refine import refine_coordinates

    scorer, problem = setup.scorer, setup.scorer.problem
    candidates, _ = final_candidates(record.state, n)
    held = None
    if hold_origin:
        held = origin_fixing_slots(
            problem.space_group, problem.elements, None if scorer.site_map is None else scorer.site_map.matrix
        )
    refinements = [refine_coordinates(scorer, genome.reshape(-1, 3), fixed=held) for genome in candidates]
    best = min(refinements, key=lambda r: r.rwp_after)
    return dataclasses.replace(best, frac=scorer.project(best.frac[None])[0]), refinements


#: Placed H are kept when Rwp rises by at most this factor. The search fits its H to the noise: on LuHO2 (P2_1,
#: simulated) its H gave Rwp 0.0373, the reference's 0.0380, H placed on their donors 0.0386, so a few per cent
#: is no evidence against a placement; a larger rise would be.
HYDROGEN_RWP_TOLERANCE = 1.05
#: Refinements of the other atoms beside the placed H (held), each followed by placing the H again.
HYDROGEN_ROUNDS = 2


#: Elements exchanged by bond valence are kept when Rwp after refinement is at most this factor of the model's as
#: found: the exchange moves one electron per atom, which the pattern barely sees (VOF3: χ² 0.99 both ways).
ALIKE_RWP_TOLERANCE = 1.01


def exchange_sites(setup: Setup, best):
    """The refined model with elements exchanged between sites of equal multiplicity where the fit improves
    (:func:`gasolve.site_exchange.exchange_elements`), and the setup of the Wyckoff positions it then has.

    Returns
    -------
    setup : Setup
        ``setup``, or one whose scorer and ``[structure] wyckoff`` follow the exchanged positions.
    best : Refinement
    note : dict or None
        The exchanges for summary.json; None when no pair of sites could be exchanged.
    """
    from gasolve.crystal.origin import origin_fixing_slots
    from gasolve.crystal.wyckoff import SiteMap
    from gasolve.hypotheses.assignments import wyckoff_slots
    from gasolve.refine import refine_coordinates
    from gasolve.scoring.mapped import MappedScorer
    from gasolve.site_exchange import candidate_pairs, exchange_elements

    spec, scorer = setup.config.structure, setup.scorer
    elements = [str(e) for e in scorer.problem.elements]
    multiplicity = spec.site_map().multiplicity
    positional = spec.wyckoff is not None and not spec.occupancy_correction
    labels = tuple(spec.wyckoff) if positional else ("general",) * len(elements)
    fixed: dict[int, list[str]] = {}
    if positional:
        for slot in wyckoff_slots(spec.space_group):
            if slot.fixed:
                fixed.setdefault(slot.multiplicity, []).append(slot.label)
    movable = any(label in fixed.get(m, ()) for label, m in zip(labels, multiplicity, strict=True))
    if not candidate_pairs(elements, multiplicity) and not movable:
        return setup, best, None

    def scorer_for(new_labels):
        if not positional or new_labels == labels:
            return scorer
        return MappedScorer(scorer.base, SiteMap.from_labels(spec.space_group, list(new_labels)))

    def refine(model_scorer, frac):
        matrix = None if model_scorer.site_map is None else model_scorer.site_map.matrix
        held = origin_fixing_slots(spec.space_group, elements, matrix)
        refined = refine_coordinates(model_scorer, frac, fixed=held)
        return model_scorer.project(refined.frac[None])[0], refined.rwp_after

    found = exchange_elements(scorer_for, refine, best.frac, labels, elements, multiplicity, best.rwp_after, fixed)
    note = {
        "tried": found.tried,
        "exchanges": len(found.exchanges),
        "moves": len(found.moves),
        "rwp_before": best.rwp_after,
    }
    if not found.exchanges and not found.moves:
        return setup, best, note
    note["exchanged_sites"] = [f"{elements[i]}{i + 1}<->{elements[j]}{j + 1}" for i, j in found.exchanges]
    note["moved_sites"] = [f"{elements[i]}{i + 1} {a}->{b}" for i, a, b in found.moves]
    note["rwp_after"] = found.rwp
    best = dataclasses.replace(best, frac=found.frac, rwp_after=found.rwp)
    if positional and found.labels != labels:
        structure = dataclasses.replace(spec, wyckoff=found.labels)
        setup = dataclasses.replace(
            setup, scorer=scorer_for(found.labels), config=dataclasses.replace(setup.config, structure=structure)
        )
    return setup, best, note


def assign_alike_elements(setup: Setup, best):
    """The refined model with alike elements (O/F, N/O, Mg/Al, ...) on the sites bond valence gives them
    (:func:`gasolve.crystal.bond_valence.best_assignment`, group exchanges included when the sites carry no
    charges), refined again.

    Returns
    -------
    setup : Setup
        ``setup``, or one whose sites, scorer and template follow a group exchange (sites that changed element).
    best : Refinement
        With the sites' coordinates exchanged (or their elements changed) and refined, or unchanged.
    note : dict or None
        What was decided, for summary.json; None when the composition has no alike elements.
    """
    from gasolve.crystal.bond_valence import alike_pairs, best_assignment
    from gasolve.crystal.origin import origin_fixing_slots
    from gasolve.refine import refine_coordinates

    spec, scorer = setup.config.structure, setup.scorer
    elements = list(scorer.problem.elements)
    pairs = alike_pairs(elements)
    if not pairs:
        return setup, best, None
    labels = list(spec.wyckoff) if spec.wyckoff is not None else ["general"] * len(elements)
    multiplicity = spec.site_map().multiplicity
    groups = spec.charges is None and not spec.occupancy_correction
    found = best_assignment(spec.cell, spec.space_group, best.frac, elements, labels, multiplicity, groups=groups)
    names = ", ".join("/".join(p) for p in pairs)
    if found is None:
        return setup, best, {"elements": names, "decided": False, "why": "no charge-balanced oxidation states"}
    note = {"elements": names, "gii_before": found.gii_before, "gii_after": found.gii_after, "exchanges": 0}
    if not found.swaps and not found.regroups:
        return setup, best, {**note, "decided": True, "why": "the search's assignment has the lowest GII"}
    model_setup, frac = setup, best.frac[found.permutation]
    if found.regrouped:
        model_setup = with_elements(setup, found.assigned)
    model_scorer = model_setup.scorer
    held = origin_fixing_slots(
        model_scorer.problem.space_group,
        list(model_scorer.problem.elements),
        None if model_scorer.site_map is None else model_scorer.site_map.matrix,
    )
    refined = refine_coordinates(model_scorer, frac, fixed=held)
    n_exchanges = len(found.swaps) + len(found.regroups)
    if refined.rwp_after > ALIKE_RWP_TOLERANCE * best.rwp_after:
        why = f"bond valence prefers {n_exchanges} exchange(s), but Rwp rose to {refined.rwp_after:.4f}"
        return setup, best, {**note, "decided": False, "why": why}
    before = [site.label for site in setup.template.sites]
    exchanged = [f"{before[i]}<->{before[j]}" for i, j in found.swaps]
    if found.regrouped:  # best.cif's labels after the exchange: each site that changed element, old -> new
        after = [site.label for site in model_setup.template.sites]
        exchanged = [f"{before[k]}->{after[k]}" for k in range(len(before)) if elements[k] != found.assigned[k]]
    note = {**note, "exchanges": n_exchanges, "decided": True, "exchanged_sites": exchanged}
    frac = model_scorer.project(refined.frac[None])[0]
    return model_setup, dataclasses.replace(best, frac=frac, rwp_after=refined.rwp_after), note


def with_elements(setup: Setup, elements) -> Setup:
    """``setup`` with each site holding the element given (same Wyckoff positions, B and order): its spec, scorer,
    template and reference judge built anew.

    Parameters
    ----------
    setup : Setup
    elements : sequence of str, length n_sites
        The new element of every site.
    """
    from gasolve.scoring.build import build_scorer

    config = setup.config
    spec = dataclasses.replace(config.structure, sites=tuple(str(e) for e in elements))
    config = dataclasses.replace(config, structure=spec)
    pattern = config.pattern
    scorer = build_scorer(spec, setup.observed, pattern.radiation, pattern.profile, pattern.background_terms)
    template = template_structure(spec.name, spec.cell, spec.space_group, spec.sites, spec.b_iso, spec.charges)
    judge = None  # the judge a composition run attached (its config has no [reference]), or the config's
    if setup.judge is not None:
        judge = Judge(template, setup.judge.reference, setup.judge.tolerance)
    elif config.reference is not None:
        judge = _reference_judge(config, template, spec.site_map())
    return dataclasses.replace(setup, config=config, scorer=scorer, template=template, judge=judge)


def _alike_advice(alike: dict | None) -> list[str]:
    """The caution a model with alike elements needs (:func:`assign_alike_elements`'s note), or nothing."""
    if alike is None:
        return []
    how = (
        "bond valence placed them (summary.json alike_elements)"
        if alike.get("decided")
        else f"bond valence could not decide ({alike.get('why')})"
    )
    return [
        f"{alike['elements']} differ by one electron, so the pattern barely tells their sites apart; {how}, and "
        "only among sites of the same Wyckoff position: check the assignment against chemistry (bond lengths, "
        "coordination), or with neutron or resonant (anomalous) X-ray data"
    ]


def place_riding_hydrogens(setup: Setup, best):
    """The refined model with its H atoms placed by geometry (:func:`gasolve.crystal.hydrogens.place_hydrogens`).

    The search puts H anywhere (an X-ray pattern does not locate it); refinement programs place H on their donors
    (riding model), and so does this. When the H cannot sit on the Wyckoff positions the search gave them (a
    composition run chose those by noise), they go where the donors put them
    (:func:`gasolve.crystal.hydrogens.place_hydrogen_sites`) and the model gets the setup of those sites. The other
    atoms are refined again beside the placed H (:data:`HYDROGEN_ROUNDS`), and the H directions refined against the
    pattern where it sees them (:func:`gasolve.light_atoms.refine_hydrogen_directions`). Kept when Rwp rises by at
    most :data:`HYDROGEN_RWP_TOLERANCE`.

    Returns
    -------
    setup : Setup
        ``setup``, or one whose H sites, scorer and template follow the H placed on other Wyckoff positions.
    best : Refinement
        With the placed H (Rwp recomputed), or unchanged.
    note : str or None
        What happened, for summary.json; None when the model has no H.
    """
    from gasolve.crystal.hydrogens import place_hydrogen_sites, place_hydrogens
    from gasolve.crystal.origin import origin_fixing_slots
    from gasolve.crystal.wyckoff import wyckoff_position
    from gasolve.light_atoms import refine_hydrogen_directions
    from gasolve.refine import refine_coordinates

    spec, scorer = setup.config.structure, setup.scorer
    elements = list(scorer.problem.elements)
    is_h = np.array([e == "H" for e in elements])
    if not is_h.any():
        return setup, best, None
    if is_h.all():
        return setup, best, "left where the search put them (no other atoms to bond to)"
    labels = spec.wyckoff
    h_sites = [None if labels is None else wyckoff_position(spec.space_group, labels[i]) for i in np.flatnonzero(is_h)]
    others = [e for e in elements if e != "H"]
    placed = place_hydrogens(spec.cell, spec.space_group, best.frac[~is_h], others, h_sites)
    model_setup, frac, moved = setup, best.frac.copy(), ""
    if placed is None and labels is not None and not spec.occupancy_correction:
        n_h = int(spec.site_map().multiplicity[is_h].sum())
        found = place_hydrogen_sites(spec.cell, spec.space_group, best.frac[~is_h], others, n_h)
        if found is not None:
            placed, h_labels = found
            h_sites = [wyckoff_position(spec.space_group, label) for label in h_labels]
            searched = " + ".join(labels[i] for i in np.flatnonzero(is_h))
            model_setup = with_hydrogen_sites(setup, h_labels)
            is_h = np.array([e == "H" for e in model_setup.config.structure.sites])
            frac = np.zeros((len(is_h), 3))
            frac[~is_h] = best.frac[[e != "H" for e in elements]]
            moved = f"; on {' + '.join(h_labels)} (the search's Wyckoff positions {searched} fit no donor)"
    if placed is None:
        return setup, best, "left where the search put them: no O or N short of bonding to carry them (a hydride?)"
    model_scorer = model_setup.scorer
    matrix = None if model_scorer.site_map is None else model_scorer.site_map.matrix
    held = origin_fixing_slots(spec.space_group, list(model_scorer.problem.elements), matrix) | np.repeat(is_h, 3)
    frac[is_h] = placed
    frac = model_scorer.project(frac[None])[0]
    rwp = float(model_scorer.rwp(frac[None])[0])
    # The other atoms were refined beside H where the search put them: refined again beside the placed H (held),
    # and the H placed again on the donors' new positions.
    for _ in range(HYDROGEN_ROUNDS):
        refined = model_scorer.project(refine_coordinates(model_scorer, frac, fixed=held).frac[None])[0]
        placed = place_hydrogens(spec.cell, spec.space_group, refined[~is_h], others, h_sites)
        if placed is None:
            break
        refined[is_h] = placed
        refined = model_scorer.project(refined[None])[0]
        refined_rwp = float(model_scorer.rwp(refined[None])[0])
        if not refined_rwp < rwp:
            break
        frac, rwp = refined, refined_rwp
    turned = refine_hydrogen_directions(model_scorer, spec.cell, spec.space_group, frac)
    if turned.kept:  # the pattern sees the H directions (a likelihood ratio test): theirs, at the bond lengths
        frac, rwp = turned.frac, turned.rwp_after
        how = (
            f"their directions refined, lengths kept (likelihood ratio {turned.statistic:.0f} > "
            f"{turned.threshold:.1f}, {turned.degrees_of_freedom} coordinates)"
        )
    else:
        how = "not refined"
    if rwp > HYDROGEN_RWP_TOLERANCE * best.rwp_after:
        return setup, best, f"left where the search put them: placed on their donors Rwp rose to {rwp:.4f}"
    note = f"placed by geometry on their O/N donors (riding model; O-H 0.97 Å, N-H 1.01 Å), {how}{moved}"
    return model_setup, dataclasses.replace(best, frac=frac, rwp_after=rwp), note


def with_hydrogen_sites(setup: Setup, h_labels) -> Setup:
    """``setup`` with its H sites replaced by one H site on each Wyckoff position of ``h_labels``, where its first
    H site was (their B and charge those of its first H site): spec, scorer, template and judge built anew.

    Parameters
    ----------
    setup : Setup
        With ``[structure] wyckoff`` and at least one H site.
    h_labels : sequence of str
        Wyckoff labels of the new H sites ("4c", ...).
    """
    spec = setup.config.structure
    first = spec.sites.index("H")
    index = [i for i, e in enumerate(spec.sites) if e != "H" or i == first]
    expand = [k for i in index for k in ([i] * len(h_labels) if i == first else [i])]
    wyckoff = [spec.wyckoff[i] for i in index]
    wyckoff[first : first + 1] = list(h_labels)
    spec = dataclasses.replace(
        spec,
        sites=tuple(spec.sites[k] for k in expand),
        b_iso=tuple(spec.b_iso[k] for k in expand),
        wyckoff=tuple(wyckoff),
        charges=None if spec.charges is None else tuple(spec.charges[k] for k in expand),
    )
    return with_elements(
        dataclasses.replace(setup, config=dataclasses.replace(setup.config, structure=spec)), spec.sites
    )


def contact(scorer, frac: np.ndarray, labels, leave_out: np.ndarray | None = None) -> str:
    """ "Li3 and F1 are 0.05 Å apart" when two atoms of different sites of the model are closer than
    :data:`gasolve.hypotheses.completion.COINCIDENT`, else "".

    Parameters
    ----------
    scorer : ModelScorer
    frac : ndarray, shape (n_sites, 3)
    labels : sequence of str
        Site labels, as best.cif writes them.
    leave_out : ndarray, shape (n_sites,), bool, optional
        Sites not checked: H, which the pattern does not locate, and sites that share one place by design.
    """
    from gasolve.hypotheses.completion import COINCIDENT, closest_pair

    frac = np.asarray(frac, dtype=float).ravel()
    i, j, distance = closest_pair(scorer, frac, settle=False, other_sites=True, leave_out=leave_out)
    if not distance < COINCIDENT:
        return ""
    return f"{labels[i]} and {labels[j]} are {distance:.2f} Å apart"


def short_contact(scorer, frac: np.ndarray, labels, leave_out: np.ndarray | None = None) -> str:
    """ "F8 and F17 are 1.59 Å apart (F-F: ...)" when two atoms of different sites are closer than real structures
    put their elements (:mod:`gasolve.hypotheses.short_contacts`), else "".

    Parameters
    ----------
    scorer : ModelScorer
    frac : ndarray, shape (n_sites, 3)
    labels : sequence of str
        Site labels, as best.cif writes them.
    leave_out : ndarray, shape (n_sites,), bool, optional
        Sites not checked (as :func:`contact`'s).
    """
    from gasolve.hypotheses.short_contacts import model_contact

    found = model_contact(scorer, frac, leave_out)
    return "" if found is None else found.describe(labels, scorer.problem.elements)


def composition_gap(elements, atoms_in_cell, counts: dict[str, int] | None) -> str:
    """ "Li6 V10 O18 F2 per cell, the composition Li8 V10 O18 F2" when the model's atoms per cell differ from
    ``counts``; "" when they agree or there is nothing to compare with.

    Parameters
    ----------
    elements : sequence of str
        Element of each site.
    atoms_in_cell : ndarray, shape (n_sites,)
        Multiplicity x occupancy of each site.
    counts : dict of str to int, or None
        Atoms per cell of each element of the composition searched for.
    """
    if counts is None:
        return ""
    held: dict[str, float] = {}
    for element, n in zip(elements, atoms_in_cell, strict=True):
        held[str(element)] = held.get(str(element), 0.0) + float(n)
    if set(held) == set(counts) and all(abs(held[e] - counts[e]) < 1e-6 for e in counts):
        return ""
    written = " ".join(f"{e}{held.get(e, 0.0):.4g}" for e in dict.fromkeys([*counts, *held]))
    expected = " ".join(f"{e}{n}" for e, n in counts.items())
    return f"{written} per cell, the composition {expected}"


def finish(
    setup: Setup,
    record: RunRecord,
    candidates: int = FINAL_CANDIDATES,
    noise_chi2: float | None = None,
    counts: dict[str, int] | None = None,
    light_atoms: bool = True,
    light_report: Callable[[float, int, float], None] | None = None,
) -> RunResult:
    """Refine the best models, settle special positions, and measure the fit (everything summary.json says).

    Parameters
    ----------
    setup : Setup
    record : RunRecord
        The search's last record.
    candidates : int
        How many of the run's best distinct models are refined (the best after refinement is kept).
    noise_chi2 : float, optional
        The noise level of χ² when the caller already has it (the composition race measured it once for all its
        hypotheses); by default :func:`gasolve.scoring.noise_floor.free_intensity_chi2` of this run's problem.
    counts : dict of str to int, optional
        Atoms per cell of each element of the composition searched for (a composition run): a model that holds
        others is not convincing (:func:`composition_gap`).
    light_atoms : bool
        Search the light atoms again with the heavy ones held (:func:`gasolve.light_atoms.search_light_atoms`) when
        the best model was found fewer than :data:`CONFIRMING_FINDS` times; False for the runners-up of a race.
    light_report : callable, optional
        Progress of the light-atom search: (evaluations, budget, best Rwp) after each of its generations.
    """
    from gasolve import __version__
    from gasolve.crystal.coincident import coincident_groups, share_occupancy
    from gasolve.crystal.origin import held_coordinates, origin_fixing_slots
    from gasolve.crystal.xray_visibility import determined_share, undetermined
    from gasolve.diffraction.fit_metrics import bragg_r, fit_metrics
    from gasolve.diffraction.profile import peak_positions
    from gasolve.io.run_outputs import site_records
    from gasolve.refine import coordinate_esds

    config, observed = setup.config, setup.observed
    spec, settings = config.structure, config.ga
    scorer, problem = setup.scorer, setup.scorer.problem
    state = record.state
    best, refinements = refine_candidates(setup, record, n=candidates)
    finds = max(independent_finds(setup, record, best.frac), 1)  # the best model was found at least once
    light = None
    if light_atoms and finds < CONFIRMING_FINDS:
        from gasolve.light_atoms import search_light_atoms

        best, light = search_light_atoms(setup, best, light_report)
    setup, best, exchanged = exchange_sites(setup, best)
    if exchanged is not None and (exchanged["exchanges"] or exchanged["moves"]):
        finds = 1  # the search found the model before the exchange, not this one
        config, spec, scorer = setup.config, setup.config.structure, setup.scorer
    before_alike = setup
    setup, best, alike = assign_alike_elements(setup, best)
    if setup is not before_alike:  # sites changed element: the model has a scorer of its own
        config, spec, scorer = setup.config, setup.config.structure, setup.scorer
        problem = scorer.problem
    before_hydrogens = setup
    setup, best, hydrogens = place_riding_hydrogens(setup, best)
    if setup is not before_hydrogens:  # H moved to other Wyckoff positions: the model has a scorer of its own
        config, spec, scorer = setup.config, setup.config.structure, setup.scorer
        problem = scorer.problem
    wyckoff = None
    special_positions = None
    structure = model_structure(setup.template, best.frac)
    if spec.wyckoff is not None or spec.occupancy_correction:
        from gasolve.crystal.special_positions import settle
        from gasolve.scoring.mapped import MappedScorer

        correction = None if problem.overlap is None else problem.overlap.factors(best.frac[None])[0][0]
        settled = settle(spec.space_group, best.frac, spec.site_map().multiplicity, correction)
        best = dataclasses.replace(best, frac=settled.frac)
        structure = settled.apply(model_structure(setup.template, best.frac))
        wyckoff = settled.labels
        if wyckoff is not None:  # only the free coordinates of the positions found, for the esds and the fit
            scorer = MappedScorer(scorer.base, settled.site_map(spec.space_group))
        special_positions = settled.report([site.label for site in structure.sites])
    structure, coincident = share_occupancy(structure)  # two full atoms at one place: no CIF reader takes them
    matrix = None if scorer.site_map is None else scorer.site_map.matrix
    origin_slots = origin_fixing_slots(problem.space_group, problem.elements, matrix)
    esd = coordinate_esds(scorer, best.frac, origin_fixed=origin_slots)
    placed = hydrogens is not None and hydrogens.startswith("placed")
    if placed:  # placed by geometry, not refined: no esd
        esd[undetermined(problem.elements)] = np.nan
    labels = wyckoff or (None if scorer.site_map is None else scorer.site_map.labels)
    sites_summary = site_records(structure, esd, labels, held_coordinates(origin_slots, matrix))
    fit = scorer.profiles(best.frac[None])
    metrics = fit_metrics(observed.y_obs, fit.y_calc[0], observed.weights, 1 + problem.background_terms)
    r_bragg = bragg_r(
        problem.peak_matrix.to_sparse(),
        fit.scale[0] * scorer.intensities(best.frac[None])[0],
        observed.y_obs,
        problem.background_basis @ fit.background[0],
    )
    if noise_chi2 is None:
        from gasolve.scoring.noise_floor import free_intensity_chi2

        noise_chi2 = free_intensity_chi2(problem, observed.y_obs, observed.weights)
    coincident_labels = tuple(tuple(structure.sites[k].label for k in group.sites) for group in coincident)
    hidden = undetermined(structure.elements)
    hidden_labels = tuple(site.label for site, h in zip(structure.sites, hidden, strict=True) if h)
    in_cell = structure.site_multiplicities() * np.array([site.occupancy for site in structure.sites])
    share = determined_share(structure.elements, in_cell)
    gap = composition_gap(structure.elements, in_cell, counts)
    unchecked = undetermined(problem.elements)  # H, which the pattern does not locate, and shared places
    for group in coincident_groups(structure):
        unchecked[list(group.sites)] = True
    site_labels = [site.label for site in setup.template.sites]
    touching = contact(setup.scorer, best.frac, site_labels, unchecked)
    tight = short_contact(setup.scorer, best.frac, site_labels, unchecked)
    judged = verdict(
        metrics.chi2, r_bragg, noise_chi2, finds, coincident_labels, hidden_labels, share, placed, gap, touching, tight
    )
    summary = {
        "name": spec.name,
        "rwp": best.rwp_after,
        "rwp_before_refinement": float(state.best_rwp),
        "rp": metrics.rp,
        "rexp": metrics.rexp,
        "chi2": metrics.chi2,
        "r_bragg": r_bragg,
        "noise_chi2": noise_chi2,
        "convincing": judged.convincing,
        "confirmed": judged.confirmed,
        "not_convincing_because": list(judged.reasons),
        "undetermined_sites": list(hidden_labels),
        "hydrogen_placement": hydrogens,
        "alike_elements": alike,
        "site_exchange": exchanged,
        "light_atom_search": None if light is None else light.as_dict(),
        "determined_scattering": share,
        "what_to_try": list(judged.advice) + _alike_advice(alike),
        "independent_finds": finds,
        "search_epochs": len(record.epoch_bests) + 1,
        "coordinate_esd": esd.tolist(),
        "sites": sites_summary,
        "origin_fixed_by": [f"{s['label']} {axis}" for s in sites_summary for axis in s["origin_fixed"]],
        "coincident_sites": [
            {
                "sites": list(labels),
                "distance": group.distance,
                "occupancy_written": [structure.sites[k].occupancy for k in group.sites],
            }
            for labels, group in zip(coincident_labels, coincident, strict=True)
        ],
        "evaluations": state.evaluations,
        "generations": state.generation,
        "wall_seconds": record.seconds,
        "evaluations_per_second": state.evaluations / max(record.seconds, 1e-9),
        "seed": settings.budget.seed,
        "restarts": state.restarts,
        "refined_candidates": [{"rwp_before": r.rwp_before, "rwp_after": r.rwp_after} for r in refinements],
        "gradient_cost": settings.rates.gradient_cost,
        "gasolve_version": __version__,
    }
    if special_positions is not None:
        summary["special_positions"] = special_positions
    if config.nn is not None:
        nn_seconds = sum(row.get("nn_seconds", 0.0) for row in record.history)
        summary["nn"] = {
            "model": str(config.nn.model),
            "mode": config.nn.mode,
            "weight": config.nn.weight,
            "refine_fraction": config.nn.refine_fraction if config.nn.refine else None,
            "seconds": nn_seconds,
            "share_of_wall_time": nn_seconds / max(record.seconds, 1e-9),
        }
    if setup.judge is not None:
        solved, distances = setup.judge(best.frac)
        summary.update(
            {
                "solved": solved,
                "site_distances": {
                    label: float(d)
                    for label, d in zip([s.label for s in setup.judge.reference.sites], distances, strict=True)
                },
                "max_site_distance": float(np.max(distances)),
                "evaluations_to_solution": record.evaluations_to_solution,
                "tolerance": setup.judge.tolerance,
            }
        )
    ticks = [
        (f"λ={w:.5f}", peak_positions(problem.reflections, w, config.pattern.profile))
        for w, _ in config.pattern.radiation.lines
    ]
    return RunResult(setup, record, structure, best.frac, esd, wyckoff, fit.y_calc[0], ticks, finds, judged, summary)


def rietveld_refinement(config: RunConfig, structure: Structure, observed: ObservedPattern, profile, settings=None):
    """Rietveld refinement of ``structure`` against the config's pattern (:func:`gasolve.rietveld.refine`): cell,
    zero, profile, coordinates, B, preferred orientation and background as ``settings`` say.

    Parameters
    ----------
    config : RunConfig
        Its pattern, radiation and ``[refinement]`` table; named in error messages.
    structure : Structure
    observed : ObservedPattern
    profile : PeakProfile
    settings : RefinementSettings, optional
        Default: the config's ``[refinement]`` with its number of background terms.

    Returns
    -------
    gasolve.rietveld.staged.RefinementResult
    """
    import dataclasses as dc

    from gasolve.rietveld import refine

    if settings is None:
        settings = dc.replace(config.refinement, background_terms=config.pattern.background_terms)
    try:
        return refine(structure, observed, config.pattern.radiation, profile, settings)
    except InputError as error:  # e.g. a restraint on a site the model lacks: name the config
        if error.source is None and "[refinement]" in error.message:
            raise InputError(error.message, str(config.source)) from error
        raise


def rietveld(result: RunResult):
    """The final Rietveld refinement of a finished run's model (:func:`rietveld_refinement`)."""
    config = result.setup.config
    return rietveld_refinement(config, result.structure, result.setup.observed, config.pattern.profile)


def solve(config: RunConfig) -> RunResult:
    """Run a config with ``sites`` to the end of its budget and finish it (no files written)."""
    setup = prepare(config)
    records = search(setup)
    record = next(records)
    for record in records:  # noqa: B007 (the last one is kept)
        pass
    return finish(setup, record)


def summary_line(result: RunResult) -> str:
    """One line for the terminal: fit, figures of merit, effort, and the reference's verdict if any."""
    s = result.summary
    line = (
        f"{s['name']}: Rwp {s['rwp']:.4f} (before refinement {s['rwp_before_refinement']:.4f}), Rp {s['rp']:.4f}, "
        f"χ² {s['chi2']:.3f}, R_Bragg {s['r_bragg']:.4f}, {s['evaluations']:,.0f} evaluations, "
        f"{s['generations']} generations, {s['wall_seconds']:.1f} s; best model found {s['independent_finds']} "
        f"time(s) independently"
    )
    if "solved" in s:
        verdict_word = "yes" if s["solved"] else "no"
        line += f"; solved: {verdict_word} (max site distance {s['max_site_distance']:.3f} Å)"
    return line


def light_atom_comments(result: RunResult) -> list[str]:
    """What the light-atom search (:mod:`gasolve.light_atoms`) did, one line, for best.cif and the terminal (else
    empty)."""
    light = result.summary.get("light_atom_search")
    if not light:
        return []
    outcome = "kept its model" if light["kept"] else "kept the run's model"
    return [
        f"light-atom search ({', '.join(light['searched_sites'])} searched, the other sites held, "
        f"{light['rounds']} round(s), {light['evaluations']:,.0f} evaluations, {light['seconds']:.1f} s): "
        f"Rwp {light['rwp_before']:.4f} -> "
        f"{light['rwp_after']:.4f}, {outcome}"
    ]


def verdict_lines(result: RunResult) -> list[str]:
    """The plain statement of a run without a convincing solution, or of one not yet confirmed (else empty)."""
    judged = result.verdict
    if judged.convincing:
        if judged.confirmed:
            return []
        return [
            f"the best model was found {result.finds} time(s) independently: not yet confirmed (at least "
            f"{CONFIRMING_FINDS} confirm it); a larger budget or another seed would show whether the search ends there "
            "again"
        ]
    if judged.undetermined and len(judged.reasons) == 1 and "which fit to the noise" in judged.reasons[0]:
        lines = ["solved for the atoms other than " + ", ".join(judged.undetermined) + ": " + judged.reasons[0] + "."]
        return lines + [f"  - {item}" for item in judged.advice]
    lines = ["no convincing solution: " + "; ".join(judged.reasons) + ". Try:"]
    lines += [f"  - {item}" for item in judged.advice]
    return lines


def write_run(result: RunResult, out: str | Path, *, extra: dict | None = None, cif_comments: tuple = ()) -> None:
    """Write best.cif, summary.json, history.csv, fit.png and convergence.png of a finished run into ``out``.

    Parameters
    ----------
    result : RunResult
    out : str or Path
        An existing folder.
    extra : dict, optional
        More entries for summary.json (the composition search's hypothesis table).
    cif_comments : tuple of str
        More comment lines at the top of best.cif.
    """
    from gasolve import __version__
    from gasolve.crystal import write_cif
    from gasolve.crystal.xray_visibility import undetermined
    from gasolve.io.run_outputs import write_history, write_json
    from gasolve.plotting import plot_convergence, plot_fit

    out = Path(out)
    s = result.summary
    config = result.setup.config
    riding = (s.get("hydrogen_placement") or "").startswith("placed")
    calculated = undetermined([site.element for site in result.structure.sites]) if riding else None
    write_cif(
        result.structure,
        out / "best.cif",
        comments=[
            f"gasolve {__version__}: Rwp {s['rwp']:.5f} after refinement, seed {s['seed']}",
            "coordinate esds from the least-squares normal matrix (profile, B and cell fixed); none where the "
            "coordinate holds the origin of a polar group or the data leave it undetermined",
            *(
                ["H placed by geometry on their donors (riding model, _atom_site_calc_flag calc), not refined"]
                if riding
                else []
            ),
            *cif_comments,
        ],
        esd=result.esd,
        wyckoff=result.wyckoff,
        calculated=calculated,
    )
    summary = dict(s, best_cif=str((out / "best.cif").resolve()))
    if extra:
        summary.update(extra)
    write_json(out / "summary.json", summary)
    write_history(out / "history.csv", result.record.history)
    observed = result.setup.observed
    plot_fit(
        out / "fit.png",
        observed.two_theta,
        observed.y_obs,
        result.y_calc,
        result.ticks,
        title=f"{config.structure.name}: best model after refinement",
        annotation=f"Rwp {s['rwp']:.4f}\nRp  {s['rp']:.4f}\nχ²  {s['chi2']:.3f}\nR_B {s['r_bragg']:.4f}",
    )
    plot_convergence(
        out / "convergence.png",
        result.record.history,
        title=f"{config.structure.name}, seed {s['seed']}",
        evaluations_to_solution=result.record.evaluations_to_solution,
    )
