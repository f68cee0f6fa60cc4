"""Self-configuring multipopulation GA with ask/tell and explicit state.

Islands differ in parent selection and each self-configures the probabilities of its crossover and mutation
operators from their recent success (Semenkin & Semenkina, LNCS 7331 (2012) 414). Islands compete for
population: every ``reallocation_interval`` generations the island that progressed most takes individuals
from the one that progressed least, and they cooperate by ring migration of their best (the
cooperative-competitive scheme of Zaloga, Burakov, Semenkin & Yakimov, Cryst. Res. Technol. 50 (2015) 724).
An island whose best stops improving restarts from random models. Survivor selection is (μ+λ) truncation with
removal of duplicates (same fitness within a tolerance), so that a population of local minima stays diverse; with a
:class:`Niche` it is also clearing (Pétrowski, Proc. ICEC 1996, 798): a model within the niche radius of a fitter
survivor does not survive, so an island cannot fill with copies of one local minimum.

The GA never calls the objective: ``ask`` proposes genomes, the caller evaluates (and may locally refine)
them, ``tell`` returns the next state. Randomness comes only from the Generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from gasolve.ga.operators import CROSSOVERS, MUTATIONS, SELECTIONS
from gasolve.ga.settings import GASettings
from gasolve.ga.state import GAState, IslandState, frozen_array

_EMA = 0.3
#: A best fitness counts as improved only when it drops by more than this (Rwp units): rounding noise of a
#: re-evaluated model must not reset the stagnation counts.
_IMPROVEMENT = 1e-9


@dataclass(frozen=True)
class Batch:
    """Genomes proposed by ``ask`` with what ``tell`` needs to credit operators.

    Attributes
    ----------
    genomes : ndarray, shape (n, n_genes)
    island : ndarray, shape (n,), int
    crossover, mutation : ndarray, shape (n,), int
        Operator indices into ``GALayout.crossovers`` / ``.mutations``; -1 for random (restart) genomes.
    parent_fitness : ndarray, shape (n,)
        Mean fitness of the two parents (+inf for random genomes).
    """

    genomes: np.ndarray
    island: np.ndarray
    crossover: np.ndarray
    mutation: np.ndarray
    parent_fitness: np.ndarray


def initial_batch(rng: np.random.Generator, settings: GASettings, n_genes: int) -> Batch:
    """Uniform random genomes for every island, shape (islands · island_size, n_genes)."""
    n = settings.layout.islands * settings.layout.island_size
    return Batch(
        genomes=rng.random((n, n_genes)),
        island=np.repeat(np.arange(settings.layout.islands), settings.layout.island_size),
        crossover=np.full(n, -1),
        mutation=np.full(n, -1),
        parent_fitness=np.full(n, np.inf),
    )


@dataclass(frozen=True)
class Niche:
    """Clearing in survivor selection: of two models closer than ``radius`` (:func:`niche_distance`), only the
    fitter survives.

    Attributes
    ----------
    radius : float
        Weighted root mean square over sites of each atom's distance to the nearest atom of the same element in the
        other model (Å).
    metric : ndarray, shape (3, 3)
        Metric tensor of the cell (Å²).
    rotations : ndarray, shape (n_ops, 3, 3)
    translations : ndarray, shape (n_ops, 3)
        The space group's operators (centring included), so that a site placed on another atom of its orbit is
        the same model.
    elements : ndarray, shape (n_sites,), int
        Element of each site as a code: sites of one element may exchange places.
    weights : ndarray, shape (n_sites,), optional
        Weight of each site in the mean of the squared distances, >= 0 and not all 0 (default: all 1). A site of
        weight 0 (an H atom, which X-rays barely see) does not make two models distinct.
    """

    radius: float
    metric: np.ndarray
    rotations: np.ndarray
    translations: np.ndarray
    elements: np.ndarray
    weights: np.ndarray | None = None
    #: Cartesian factor of the metric (lower triangular, metric = basis @ basis.T).
    basis: np.ndarray = field(init=False, repr=False, compare=False)
    #: Whether each site (rows) has the element of each image (columns, operator-major), (n_sites, n_ops * n_sites).
    same_element: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.radius > 0:
            raise ValueError(f"niche radius {self.radius!r}: expected > 0 Å")
        for name, shape in (("metric", (3, 3)), ("rotations", (-1, 3, 3)), ("translations", (-1, 3))):
            array = frozen_array(getattr(self, name))
            if array.ndim != len(shape) or any(n != m for n, m in zip(array.shape, shape, strict=True) if m > 0):
                raise ValueError(f"{name} has shape {array.shape}, expected {shape} (-1: any)")
            object.__setattr__(self, name, array)
        if len(self.rotations) != len(self.translations):
            raise ValueError(f"{len(self.rotations)} rotations but {len(self.translations)} translations")
        object.__setattr__(self, "elements", frozen_array(self.elements, dtype=int))
        if self.elements.ndim != 1:
            raise ValueError(f"elements has shape {self.elements.shape}, expected (n_sites,)")
        weights = frozen_array(np.ones(len(self.elements)) if self.weights is None else self.weights)
        if weights.shape != self.elements.shape:
            raise ValueError(f"weights has shape {weights.shape}, expected {self.elements.shape} (one per site)")
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.sum() > 0):
            raise ValueError(f"weights {weights.tolist()}: expected finite values >= 0, not all 0")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "basis", frozen_array(np.linalg.cholesky(self.metric)))
        images = np.tile(self.elements, len(self.rotations))
        object.__setattr__(self, "same_element", frozen_array(self.elements[:, None] == images[None, :], dtype=bool))


def niche_distance(genome: np.ndarray, others: np.ndarray, niche: Niche) -> np.ndarray:
    """How far ``genome`` is from each of ``others`` as models: the RMS over its sites, weighted by
    ``niche.weights``, of the distance (Å) from each atom to the nearest symmetry image of any site of the same
    element in the other model.

    Two models that differ only by which site of an element sits where, or by which atom of a site's orbit the
    genome holds, are at distance 0. Origin shifts of the normaliser are not tried: models of one island descend
    from the same setting. Fractional differences go to the nearest lattice image component by component (exact
    for orthogonal axes, an upper bound otherwise).

    Parameters
    ----------
    genome : ndarray, shape (n_genes,)
    others : ndarray, shape (k, n_genes)
    niche : Niche

    Returns
    -------
    ndarray, shape (k,)
    """
    mine = np.asarray(genome, dtype=float).reshape(-1, 3)
    theirs = np.asarray(others, dtype=float).reshape(len(others), -1, 3)
    images = np.einsum("oij,ksj->kosi", niche.rotations, theirs) + niche.translations[None, :, None, :]
    images = images.reshape(len(others), -1, 3)  # (k, n_ops * n_sites, 3), sites in the inner order
    delta = images[:, None, :, :] - mine[None, :, None, :]
    delta -= np.round(delta)
    cartesian = delta @ niche.basis
    squared = np.where(niche.same_element, np.einsum("kamj,kamj->kam", cartesian, cartesian), np.inf)
    # (x * w).mean() / w.mean() rather than a dot product: with all weights 1 the same bits as the plain mean.
    return np.sqrt((squared.min(axis=2) * niche.weights).mean(axis=1) / niche.weights.mean())


def _survivors(genomes, fitness, rwp, size, tolerance, niche: Niche | None = None, cleared: int = 0):
    """The best ``size`` of the genomes, sorted, without fitness duplicates and, with a niche, cleared.

    ``cleared``: the first so many genomes are survivors of an earlier clearing with the same niche (an island's
    members), so they are not compared with each other again (the comparison, in the same fitness order, would
    find them apart again)."""
    order = np.argsort(fitness, kind="stable")
    keep: list[int] = []
    last = -np.inf
    for i in order:
        if not np.isfinite(fitness[i]):
            continue
        if keep and fitness[i] - last <= tolerance:
            continue
        if niche is not None and _crowded(genomes, i, keep, niche, cleared):
            continue
        keep.append(i)
        last = fitness[i]
        if len(keep) == size:
            break
    if not keep:
        keep = [int(order[0])]
    keep = np.array(keep)
    return genomes[keep], fitness[keep], rwp[keep]


def _crowded(genomes: np.ndarray, i: int, keep: list[int], niche: Niche, cleared: int) -> bool:
    """Whether genome ``i`` lies within the niche radius of a kept genome it must be compared with."""
    others = keep if i >= cleared else [j for j in keep if j >= cleared]
    return bool(others) and bool(niche_distance(genomes[i], genomes[others], niche).min() < niche.radius)


def _fresh_island(settings, index, genomes, fitness, rwp, target_size, niche=None) -> IslandState:
    n_c, n_m = len(settings.layout.crossovers), len(settings.layout.mutations)
    population, fit, r = _survivors(genomes, fitness, rwp, target_size, settings.rates.duplicate_tolerance, niche)
    return IslandState(
        population=frozen_array(population),
        fitness=frozen_array(fit),
        rwp=frozen_array(r),
        target_size=int(target_size),
        selection=settings.layout.selection[index % len(settings.layout.selection)],
        crossover_probability=frozen_array(np.full(n_c, 1.0 / n_c)),
        mutation_probability=frozen_array(np.full(n_m, 1.0 / n_m)),
        crossover_success=frozen_array(np.full(n_c, 0.2)),
        mutation_success=frozen_array(np.full(n_m, 0.2)),
        sigma=float(settings.rates.mutation_sigma),
        best_fitness=float(fit[0]),
        stagnant=0,
        progress=0.0,
        restart_pending=False,
    )


def _clean(fitness):
    fitness = np.asarray(fitness, dtype=float)
    return np.where(np.isfinite(fitness), fitness, np.inf)


def init(
    batch: Batch,
    genomes: np.ndarray,
    fitness: np.ndarray,
    rwp: np.ndarray,
    evaluations: float,
    settings: GASettings,
    niche: Niche | None = None,
) -> GAState:
    """First state from the evaluated (and possibly refined) initial batch; ``niche``: clearing in survivor
    selection (None: only fitness duplicates are removed)."""
    fitness, rwp = _clean(fitness), _clean(rwp)
    islands = tuple(
        _fresh_island(
            settings,
            i,
            genomes[batch.island == i],
            fitness[batch.island == i],
            rwp[batch.island == i],
            settings.layout.island_size,
            niche,
        )
        for i in range(settings.layout.islands)
    )
    best = int(np.argmin(fitness))
    return GAState(
        islands=islands,
        generation=0,
        evaluations=float(evaluations),
        best_genome=frozen_array(genomes[best]),
        best_fitness=float(fitness[best]),
        best_rwp=float(rwp[best]),
        restarts=0,
        epoch_best=float(fitness[best]),
    )


def _choose(rng, probabilities, n):
    return rng.choice(len(probabilities), size=n, p=probabilities / probabilities.sum())


def ask(rng: np.random.Generator, state: GAState, settings: GASettings) -> Batch:
    """Offspring of every island (or random genomes for an island that restarts)."""
    parts = []
    n_genes = state.best_genome.shape[0]
    for index, island in enumerate(state.islands):
        if island.restart_pending:
            n = island.target_size
            parts.append(
                (rng.random((n, n_genes)), np.full(n, index), np.full(n, -1), np.full(n, -1), np.full(n, np.inf))
            )
            continue
        n = max(2, round(settings.layout.offspring_fraction * island.target_size))
        select = SELECTIONS[island.selection]
        first = select(rng, island.fitness, n, size=settings.layout.tournament_size)
        second = select(rng, island.fitness, n, size=settings.layout.tournament_size)
        a, b = island.population[first], island.population[second]
        crossover = _choose(rng, island.crossover_probability, n)
        mutation = _choose(rng, island.mutation_probability, n)
        children = np.empty((n, n_genes))
        for k, name in enumerate(settings.layout.crossovers):
            rows = np.flatnonzero(crossover == k)
            if rows.size:
                children[rows] = CROSSOVERS[name](
                    rng, a[rows], b[rows], eta=settings.rates.sbx_eta, alpha=settings.rates.blx_alpha
                )
        for k, name in enumerate(settings.layout.mutations):
            rows = np.flatnonzero(mutation == k)
            if rows.size:
                children[rows] = MUTATIONS[name](
                    rng,
                    children[rows],
                    rate=settings.rates.mutation_rate,
                    sigma=island.sigma,
                    eta=settings.rates.polynomial_eta,
                )
        parent_fitness = 0.5 * (island.fitness[first] + island.fitness[second])
        parts.append((children, np.full(n, index), crossover, mutation, parent_fitness))
    return Batch(*(np.concatenate([p[i] for p in parts]) for i in range(5)))


def _self_configure(success_ema, ops, success, min_probability):
    ema = np.array(success_ema, dtype=float)
    for k in range(len(ema)):
        used = ops == k
        if used.any():
            ema[k] = (1.0 - _EMA) * ema[k] + _EMA * float(np.mean(success[used]))
    total = ema.sum()
    share = ema / total if total > 0 else np.full(len(ema), 1.0 / len(ema))
    return ema, min_probability + (1.0 - len(ema) * min_probability) * share


def _update_island(island, settings, genomes, fitness, rwp, batch_rows, batch, niche=None) -> IslandState:
    if island.restart_pending:
        fresh = _fresh_island(settings, 0, genomes, fitness, rwp, island.target_size, niche)
        return replace(fresh, selection=island.selection, sigma=float(settings.rates.mutation_sigma))
    success = (fitness < batch.parent_fitness[batch_rows]).astype(float)
    cross_ema, cross_p = _self_configure(
        island.crossover_success, batch.crossover[batch_rows], success, settings.rates.min_probability
    )
    mut_ema, mut_p = _self_configure(
        island.mutation_success, batch.mutation[batch_rows], success, settings.rates.min_probability
    )
    sigma = island.sigma
    gaussian = settings.layout.mutations.index("gaussian") if "gaussian" in settings.layout.mutations else -1
    used = batch.mutation[batch_rows] == gaussian
    if used.any():  # 1/5 success rule (Rechenberg)
        sigma = float(np.clip(sigma * (1.22 if success[used].mean() > 0.2 else 0.82), 0.002, 0.25))
    population, fit, r = _survivors(
        np.concatenate([island.population, genomes]),
        np.concatenate([island.fitness, fitness]),
        np.concatenate([island.rwp, rwp]),
        island.target_size,
        settings.rates.duplicate_tolerance,
        niche,
        cleared=len(island.population),
    )
    improved = _improves(fit[0], island.best_fitness)
    return replace(
        island,
        population=frozen_array(population),
        fitness=frozen_array(fit),
        rwp=frozen_array(r),
        crossover_probability=frozen_array(cross_p),
        mutation_probability=frozen_array(mut_p),
        crossover_success=frozen_array(cross_ema),
        mutation_success=frozen_array(mut_ema),
        sigma=sigma,
        best_fitness=float(min(fit[0], island.best_fitness)),
        stagnant=0 if improved else island.stagnant + 1,
        progress=island.progress + (island.best_fitness - float(fit[0]) if improved else 0.0),
    )


def _insert(island, genomes, fitness, rwp, settings, niche=None) -> IslandState:
    """Put migrants into an island in place of its worst members (duplicates are dropped)."""
    keep = max(island.target_size - len(genomes), 1)
    population, fit, r = _survivors(
        np.concatenate([island.population[:keep], genomes]),
        np.concatenate([island.fitness[:keep], fitness]),
        np.concatenate([island.rwp[:keep], rwp]),
        island.target_size,
        settings.rates.duplicate_tolerance,
        niche,
        cleared=len(island.population[:keep]),
    )
    return replace(island, population=frozen_array(population), fitness=frozen_array(fit), rwp=frozen_array(r))


def tell(
    batch: Batch,
    genomes: np.ndarray,
    fitness: np.ndarray,
    rwp: np.ndarray,
    evaluations: float,
    state: GAState,
    settings: GASettings,
    niche: Niche | None = None,
) -> GAState:
    """Next state after the batch was evaluated.

    Parameters
    ----------
    batch : Batch
        What ``ask`` proposed.
    genomes : ndarray, shape (n, n_genes)
        The evaluated genomes (after local refinement, written back: Lamarckian).
    fitness, rwp : ndarray, shape (n,)
        Selection fitness and Rwp; NaN is treated as +inf.
    evaluations : float
        Evaluations spent on this batch.
    niche : Niche, optional
        Clearing in survivor selection (also of migrants).
    """
    fitness, rwp = _clean(fitness), _clean(rwp)
    islands = [
        _update_island(
            island,
            settings,
            genomes[batch.island == i],
            fitness[batch.island == i],
            rwp[batch.island == i],
            np.flatnonzero(batch.island == i),
            batch,
            niche,
        )
        for i, island in enumerate(state.islands)
    ]
    generation = state.generation + 1
    n_islands = len(islands)
    restarts = state.restarts
    if n_islands > 1 and settings.layout.migration_size and generation % settings.layout.migration_interval == 0:
        migrants = [
            (
                isl.population[: settings.layout.migration_size],
                isl.fitness[: settings.layout.migration_size],
                isl.rwp[: settings.layout.migration_size],
            )
            for isl in islands
        ]
        islands = [_insert(islands[i], *migrants[i - 1], settings, niche) for i in range(n_islands)]
    if n_islands > 1 and settings.layout.reallocation_share and generation % settings.layout.reallocation_interval == 0:
        progress = np.array([isl.progress for isl in islands])
        winner, loser = int(np.argmax(progress)), int(np.argmin(progress))
        moved = min(settings.layout.reallocation_share, islands[loser].target_size - settings.layout.min_island_size)
        if winner != loser and moved > 0 and progress[winner] > progress[loser]:
            islands[winner] = replace(islands[winner], target_size=islands[winner].target_size + moved)
            loser_state = islands[loser]
            size = loser_state.target_size - moved
            islands[loser] = replace(
                loser_state,
                target_size=size,
                population=loser_state.population[:size],
                fitness=loser_state.fitness[:size],
                rwp=loser_state.rwp[:size],
            )
        islands = [replace(isl, progress=0.0) for isl in islands]
    for i, island in enumerate(islands):
        if island.stagnant >= settings.layout.stagnation_generations:
            if n_islands > 1:  # hand the island's best to its neighbour before forgetting it
                j = (i + 1) % n_islands
                islands[j] = _insert(
                    islands[j], *(x[:1] for x in (island.population, island.fitness, island.rwp)), settings, niche
                )
            islands[i] = replace(island, restart_pending=True, stagnant=0)
            restarts += 1
    return GAState(
        islands=tuple(islands),
        generation=generation,
        evaluations=state.evaluations + float(evaluations),
        **_overall_best(state, genomes, fitness, rwp),
        restarts=restarts,
        **_epoch_progress(state, min(isl.fitness[0] for isl in islands)),
        scans=state.scans,
        search_restarts=state.search_restarts,
    )


def _overall_best(state: GAState, genomes: np.ndarray, fitness: np.ndarray, rwp: np.ndarray) -> dict:
    """The run's best-model fields after ``genomes`` were evaluated (unchanged unless one of them is better)."""
    best = int(np.argmin(fitness)) if len(fitness) else 0
    if not len(fitness) or not fitness[best] < state.best_fitness:
        return {"best_genome": state.best_genome, "best_fitness": state.best_fitness, "best_rwp": state.best_rwp}
    return {
        "best_genome": frozen_array(genomes[best]),
        "best_fitness": float(fitness[best]),
        "best_rwp": float(rwp[best]),
    }


def _improves(new: float, old: float) -> bool:
    """Whether best fitness ``new`` improves on ``old`` by more than :data:`_IMPROVEMENT`."""
    return new < old - _IMPROVEMENT


def _epoch_progress(state: GAState, best_now: float) -> dict:
    """Stagnation fields after a generation whose islands' best is ``best_now``."""
    if _improves(best_now, state.epoch_best):
        return {"epoch_best": float(best_now), "stagnant": 0, "failed_scans": 0}
    return {"epoch_best": state.epoch_best, "stagnant": state.stagnant + 1, "failed_scans": state.failed_scans}


def inject(
    genomes: np.ndarray,
    fitness: np.ndarray,
    rwp: np.ndarray,
    evaluations: float,
    state: GAState,
    settings: GASettings,
    niche: Niche | None = None,
) -> GAState:
    """State after evaluated models from outside the islands' own breeding (a relocation scan) join the search.

    They replace the population of the island whose best is worst (the one contributing least), which restarts
    from them with fresh operator statistics; the overall best is updated, the evaluations are counted and the
    overall stagnation count starts again.

    Parameters
    ----------
    genomes : ndarray, shape (n, n_genes)
    fitness, rwp : ndarray, shape (n,)
    evaluations : float
        Evaluations spent to make them.
    niche : Niche, optional
        Clearing in survivor selection.
    """
    fitness, rwp = _clean(fitness), _clean(rwp)
    if not len(fitness):
        return replace(
            state,
            evaluations=state.evaluations + float(evaluations),
            stagnant=0,
            failed_scans=state.failed_scans + 1,
            scans=state.scans + 1,
        )
    worst = int(np.argmax([isl.best_fitness for isl in state.islands]))
    island = state.islands[worst]
    fresh = _fresh_island(settings, 0, genomes, fitness, rwp, island.target_size, niche)
    islands = list(state.islands)
    islands[worst] = replace(fresh, selection=island.selection)
    lowest = float(np.min(fitness))
    return replace(
        state,
        islands=tuple(islands),
        evaluations=state.evaluations + float(evaluations),
        **_overall_best(state, genomes, fitness, rwp),
        stagnant=0,
        epoch_best=min(state.epoch_best, lowest),
        failed_scans=0 if _improves(lowest, state.epoch_best) else state.failed_scans + 1,
        scans=state.scans + 1,
    )


def restart_search(state: GAState, settings: GASettings) -> GAState:
    """State in which every island restarts from random models at its initial size: a new, independent attempt.

    The run's best model stays in ``best_genome`` (and is what the run reports unless the new attempt does
    better); the islands do not see it, so the new attempt is not drawn back into the trap the last one ended in.
    """
    islands = tuple(
        replace(isl, target_size=settings.layout.island_size, restart_pending=True, stagnant=0, progress=0.0)
        for isl in state.islands
    )
    return replace(
        state,
        islands=islands,
        stagnant=0,
        epoch_best=np.inf,
        failed_scans=0,
        restarts=state.restarts + len(islands),
        search_restarts=state.search_restarts + 1,
    )
