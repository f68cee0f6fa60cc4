"""A structure-solution run: the GA loop with its bookkeeping (history, solution detection), no file I/O.

``iterate`` yields a :class:`RunRecord` after every generation; the caller (the CLI) shows progress, writes
checkpoints and decides when to stop. A record holds everything needed to resume exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from gasolve.crystal import Site, Structure
from gasolve.ga import memetic
from gasolve.ga.nn_settings import NNSettings
from gasolve.ga.settings import GASettings
from gasolve.ga.state import GAState
from gasolve.scoring.protocol import ModelScorer


def site_labels(elements: list[str] | tuple[str, ...]) -> list[str]:
    """Labels Sn1, K1, K2, ... numbering each element's sites in order."""
    counts: dict[str, int] = {}
    labels = []
    for element in elements:
        counts[element] = counts.get(element, 0) + 1
        labels.append(f"{element}{counts[element]}")
    return labels


def model_structure(template: Structure, frac: np.ndarray) -> Structure:
    """``template`` (cell, group, sites with elements and B) with new coordinates (n_sites, 3)."""
    return template.with_frac(np.asarray(frac) - np.floor(frac))


def template_structure(name, cell, space_group, elements, b_iso, charges=None) -> Structure:
    """The structure of a run's sites at the origin; ``charges`` (n_sites,) of ions, None for neutral atoms."""
    charges = charges or (0,) * len(elements)
    sites = tuple(
        Site(label=label, element=element, frac=(0.0, 0.0, 0.0), b_iso=float(b), charge=int(q))
        for label, element, b, q in zip(site_labels(elements), elements, b_iso, charges, strict=True)
    )
    return Structure(cell=cell, space_group=space_group, sites=sites, name=name)


@dataclass(frozen=True)
class RunRecord:
    """State of a run after a generation.

    Attributes
    ----------
    state : GAState
    history : tuple of dict
        One row per generation (``history_columns``).
    seconds : float
        Wall time spent by the search so far, summed over resumed sessions.
    evaluations_to_solution : float or None
        Evaluations spent when the best model first matched the reference (None: not yet, or no reference).
    best_distances : ndarray or None
        Per reference site distances (Å) of the current best model.
    epoch_bests : tuple of (ndarray, float)
        Best genome (n_genes,) and its Rwp of every finished epoch of the search: an epoch ends when the whole
        search restarts from random models (:func:`gasolve.ga.multipop.restart_search`), so these are independent
        attempts (:func:`gasolve.pipeline.independent_finds`).
    """

    state: GAState
    history: tuple[dict, ...]
    seconds: float
    evaluations_to_solution: float | None
    best_distances: np.ndarray | None
    epoch_bests: tuple[tuple[np.ndarray, float], ...] = ()

    @property
    def solved(self) -> bool:
        return self.evaluations_to_solution is not None


def history_row(state: GAState, seconds: float, nn_seconds: float | None = None) -> dict:
    """One row of ``history.csv``; ``nn_seconds`` (the generation's network time, s) only in runs with [nn]."""
    row = {
        "generation": state.generation,
        "evaluations": round(state.evaluations, 1),
        "seconds": round(seconds, 4),
        "best_rwp": state.best_rwp,
        "restarts": state.restarts,
        "scans": state.scans,
        "search_restarts": state.search_restarts,
    }
    if nn_seconds is not None:
        row["nn_seconds"] = round(nn_seconds, 4)
    for i, island in enumerate(state.islands):
        row[f"island{i}_best_rwp"] = float(np.min(island.rwp))
        row[f"island{i}_median_rwp"] = float(np.median(island.rwp))
        row[f"island{i}_size"] = island.target_size
    return row


class Judge:
    """Decides whether a model is a solution: every reference site within ``tolerance`` Å."""

    def __init__(self, template: Structure, reference: Structure, tolerance: float):
        from gasolve.compare import compare_structures

        self._compare = compare_structures
        self.template = template
        self.reference = reference
        self.tolerance = tolerance

    def distances(self, frac: np.ndarray) -> np.ndarray:
        """Per reference site distances (Å); +inf where the model cannot be matched atom for atom (two of its
        images merged on a special position)."""
        from gasolve.errors import InputError

        try:
            return self._compare(model_structure(self.template, frac), self.reference).site_distances
        except InputError:
            return np.full(self.reference.n_sites, np.inf)

    def __call__(self, frac: np.ndarray) -> tuple[bool, np.ndarray]:
        distances = self.distances(frac)
        return bool(np.all(distances <= self.tolerance)), distances


def origin_genes(scorer: ModelScorer, settings: GASettings) -> np.ndarray | None:
    """The genes held to fix the origin of a polar group (:func:`gasolve.ga.memetic.origin_fixing_genes`), None
    when ``fix_origin`` is off."""
    if not settings.layout.fix_origin:
        return None
    return memetic.origin_fixing_genes(scorer.problem.space_group, scorer.problem.elements, scorer.site_map)


def selection_penalty(
    scorer: ModelScorer, settings: GASettings, bond_valence=None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The penalty added to Rwp in selection: the anti-bump penalty where its weight is positive and the
    bond-valence penalty ``bond_valence`` (:func:`bond_valence_term`) if given; None when neither is."""
    rates, problem = settings.rates, scorer.problem
    terms = []
    if rates.antibump_weight > 0:
        from gasolve.ga.antibump import AntiBump

        bump = AntiBump(problem.cell, problem.space_group, problem.n_sites, rates.antibump_distance)
        terms.append((rates.antibump_weight, bump))
    if bond_valence is not None:
        terms.append((rates.bond_valence_weight, bond_valence))
    if not terms:
        return None

    def penalty(genomes):
        return sum(weight * term(genomes) for weight, term in terms)

    return penalty


def bond_valence_term(scorer: ModelScorer, settings: GASettings):
    """The bond-valence penalty of the searched structure (:class:`BondValencePenalty`) where its weight is
    positive, the search has at least ``bond_valence_min_sites`` sites and the penalty applies, else None."""
    rates = settings.rates
    if rates.bond_valence_weight <= 0 or scorer.problem.n_sites < rates.bond_valence_min_sites:
        return None
    from gasolve.ga.bond_valence_penalty import BondValencePenalty

    problem = scorer.problem
    return BondValencePenalty.if_applies(
        problem.cell, problem.space_group, problem.elements, site_multiplicities(scorer)
    )


def local_restraint(scorer: ModelScorer, settings: GASettings, bond_valence):
    """With ``bond_valence_local``, the bond-valence penalty ``bond_valence`` (weighted) and its gradient for the
    local search: genomes (n, n_sites, 3) -> (n,), (n, n_sites, 3); None otherwise or without the penalty."""
    if bond_valence is None or not settings.rates.bond_valence_local:
        return None
    weight = settings.rates.bond_valence_weight

    def restraint(genomes):
        values, gradient = scorer.coordinate_gradient(genomes, bond_valence.value_and_gradient)
        return weight * values, weight * gradient

    return restraint


def site_multiplicities(scorer: ModelScorer) -> list[int]:
    """Atoms of each searched site in the cell: of its Wyckoff position where a site map holds the site there,
    else of the general position."""
    problem = scorer.problem
    genome = np.random.default_rng(0).random((1, 3 * problem.n_sites))  # any point of each site's locus
    frac = np.asarray(scorer.project(genome) if scorer.site_map is not None else genome).reshape(problem.n_sites, 3)
    return [len(problem.space_group.orbit(x, tol=1e-6)) for x in frac]


def build_evaluator(
    scorer: ModelScorer,
    settings: GASettings,
    selector: Callable[[np.ndarray], np.ndarray] | None = None,
    nn: NNSettings | None = None,
    atom_ranker: Callable[[np.ndarray], np.ndarray] | None = None,
    scan_share: float = 1.0,
    held: np.ndarray | None = None,
) -> memetic.Evaluator:
    """The evaluator of a run: anti-bump penalty, origin fixing in polar groups, the Wyckoff projection of a
    :class:`~gasolve.scoring.mapped.MappedScorer`, the selection network and the per-atom ranker of the relocation
    scan (:mod:`gasolve.ga.atom_selection`) if given.

    ``held`` (n_sites, 3) holds sites where an earlier search put them: NaN rows are searched, the others keep
    their coordinates (the light-atom search, :mod:`gasolve.light_atoms`)."""
    bond_valence = bond_valence_term(scorer, settings)
    penalty = selection_penalty(scorer, settings, bond_valence)

    fixed = origin_genes(scorer, settings)
    project = scorer.project if scorer.site_map is not None else None  # sites on special positions
    values = None
    if held is not None:
        held = np.asarray(held, dtype=float).reshape(-1)
        kept = np.isfinite(held)
        fixed = kept if fixed is None else fixed | kept
        values = np.where(kept, held, 0.0)
    return memetic.Evaluator(
        scorer,
        settings,
        penalty,
        fixed,
        selector,
        nn,
        project=project,
        atom_ranker=atom_ranker,
        scan_share=scan_share,
        held_values=values,
        local_penalty=local_restraint(scorer, settings, bond_valence),
    )


def iterate(
    scorer: ModelScorer,
    settings: GASettings,
    record: RunRecord | None = None,
    judge: Judge | None = None,
    selector: Callable[[np.ndarray], np.ndarray] | None = None,
    nn: NNSettings | None = None,
    atom_ranker: Callable[[np.ndarray], np.ndarray] | None = None,
    scan_share: float = 1.0,
    held: np.ndarray | None = None,
) -> Iterator[RunRecord]:
    """Run generations until the evaluation budget is spent, yielding a record after each.

    Parameters
    ----------
    record : RunRecord, optional
        Resume from this record (a checkpoint); otherwise start with a fresh random population.
    judge : Judge, optional
        Checks the best model against a known reference each time the best improves.
    selector : callable, optional
        The selection network (:class:`nnselect.selector.SiteSelector`), used as ``nn`` says.
    nn : NNSettings, optional
        Required with ``selector``.
    atom_ranker : callable, optional
        Per-atom in-place probabilities (:class:`gasolve.ga.atom_selection.AtomRanker`): the relocation scan moves
        only the ``scan_share`` of the movable atoms it rates lowest.
    held : ndarray, shape (n_sites, 3), optional
        Coordinates of sites held fixed (:func:`build_evaluator`); NaN rows are searched.
    """
    evaluate = build_evaluator(scorer, settings, selector, nn, atom_ranker, scan_share, held)
    with_nn = selector is not None
    n_genes = 3 * scorer.problem.n_sites
    started = time.perf_counter()
    if record is None:
        state = memetic.initialise(evaluate, settings, n_genes)
        record = RunRecord(state, (), 0.0, None, None)
        nn_seconds = evaluate.last_nn_seconds if with_nn else None
        record = _judge(record, judge, None, time.perf_counter() - started, nn_seconds)
        yield record
    base_seconds = record.seconds
    started = time.perf_counter()
    while record.state.evaluations < settings.budget.max_evaluations:
        previous_best = record.state.best_fitness
        before = record.state
        state, _, done = memetic.step(evaluate, before, settings)
        seconds = base_seconds + time.perf_counter() - started
        record = replace(record, state=state, seconds=seconds)
        if state.search_restarts > before.search_restarts:  # the epoch that ended: its best, as it stood
            island = min(before.islands, key=lambda isl: isl.fitness[0])
            ended = (np.array(island.population[0]), float(island.rwp[0]))
            record = replace(record, epoch_bests=(*record.epoch_bests, ended))
        record = _judge(record, judge, previous_best, seconds, done.nn_seconds if with_nn else None)
        yield record


def _judge(
    record: RunRecord, judge: Judge | None, previous_best: float | None, seconds: float, nn_seconds: float | None
) -> RunRecord:
    state = record.state
    history = (*record.history, history_row(state, seconds, nn_seconds))
    record = replace(record, history=history, seconds=seconds)
    if judge is None or (previous_best is not None and state.best_fitness >= previous_best):
        return record
    frac = np.asarray(state.best_genome).reshape(-1, 3)
    solved, distances = judge(frac)
    first = record.evaluations_to_solution
    return replace(
        record,
        best_distances=distances,
        evaluations_to_solution=first if first is not None else (state.evaluations if solved else None),
    )


def genome_frac(state: GAState) -> np.ndarray:
    """Best genome as fractional coordinates (n_sites, 3)."""
    return np.asarray(state.best_genome).reshape(-1, 3)


def final_candidates(state: GAState, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The best genomes over all islands and their Rwp (for the final refinement)."""
    from gasolve.refine import distinct_best

    genomes = np.concatenate([state.best_genome[None], *[isl.population for isl in state.islands]])
    rwp = np.concatenate([[state.best_rwp], *[isl.rwp for isl in state.islands]])
    chosen = distinct_best(genomes, rwp, n)
    return genomes[chosen], rwp[chosen]
