"""The search loop: ask -> evaluate (with Lamarckian L-BFGS refinement) -> tell, one generation at a time.

Each generation's Generator derives from (seed, generation) alone, so a run resumed from a checkpoint of its
state continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gasolve.ga import multipop, relocation
from gasolve.ga.local import lbfgs
from gasolve.ga.nn_settings import NNSettings
from gasolve.ga.settings import GASettings
from gasolve.ga.state import GAState
from gasolve.scoring.protocol import ModelScorer


def generation_rng(seed: int, generation: int) -> np.random.Generator:
    """The Generator of one generation (generation -1 is the initial population)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, generation + 1])))


@dataclass(frozen=True)
class Evaluated:
    """Genomes after evaluation (and refinement), with fitness, Rwp and the evaluations spent.

    ``nn_seconds`` is the wall time spent in the selection network (0 without one); ``nn_score`` its mean
    in-place probability of each model after refinement (None unless the network reranked them).
    """

    genomes: np.ndarray
    fitness: np.ndarray
    rwp: np.ndarray
    evaluations: float
    nn_seconds: float = 0.0
    nn_score: np.ndarray | None = None


class Evaluator:
    """Scores GA genomes (n, 3 n_sites) with the engine, refining the best share locally.

    Parameters
    ----------
    scorer : ModelScorer
    settings : GASettings
    penalty : callable, optional
        genomes (n, n_genes) -> penalty (n,) added to Rwp for selection (anti-bump).
    fixed_genes : ndarray, shape (n_genes,), bool, optional
        Genes held (origin fixing in polar groups, atoms held where an earlier search put them); their gradient is
        zeroed in the local search.
    selector : callable, optional
        genomes (n, n_genes) -> mean in-place probability (n,) from the selection network
        (:class:`nnselect.selector.SiteSelector`).
    nn : NNSettings, optional
        How ``selector`` is used (:mod:`gasolve.ga.nn_settings`); required with ``selector``.
    project : callable, optional
        genomes (n, n_genes) -> the same genomes with the coordinates of sites on special positions made
        consistent (:meth:`gasolve.crystal.wyckoff.SiteMap.project`); applied to the genomes written back.
    atom_ranker : callable, optional
        frac (n_sites, 3) -> per-atom in-place probability (n_sites,)
        (:class:`gasolve.ga.atom_selection.AtomRanker`): the relocation scan then moves only the ``scan_share`` of
        the movable atoms with the lowest probabilities.
    scan_share : float
        Used with ``atom_ranker``.
    held_values : ndarray, shape (n_genes,), optional
        The values the ``fixed_genes`` are held at (fractional coordinates); 0 by default (origin fixing).
    local_penalty : callable, optional
        genomes (n, n_sites, 3) -> penalty (n,) and its gradient with respect to the genomes (n, n_sites, 3),
        added to Rwp in the local search (the bond-valence restraint); the refined models' Rwp is then scored
        again, alone.
    """

    def __init__(
        self,
        scorer: ModelScorer,
        settings: GASettings,
        penalty: Callable[[np.ndarray], np.ndarray] | None = None,
        fixed_genes: np.ndarray | None = None,
        selector: Callable[[np.ndarray], np.ndarray] | None = None,
        nn: NNSettings | None = None,
        project: Callable[[np.ndarray], np.ndarray] | None = None,
        atom_ranker: Callable[[np.ndarray], np.ndarray] | None = None,
        scan_share: float = 1.0,
        held_values: np.ndarray | None = None,
        local_penalty: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    ):
        if (selector is None) != (nn is None):
            raise ValueError("selector and nn settings go together")
        self.scorer = scorer
        self.settings = settings
        self.penalty = penalty
        self.local_penalty = local_penalty
        self.selector = selector
        self.nn = nn
        self.project = project
        self.last_nn_seconds = 0.0  # network time of the latest call (s)
        self.atom_ranker = atom_ranker
        self.scan_share = scan_share
        self.ranker_seconds = 0.0  # per-atom network time over the run (s)
        self.n_sites = scorer.problem.n_sites
        self.fixed = np.zeros(3 * self.n_sites, dtype=bool) if fixed_genes is None else np.asarray(fixed_genes, bool)
        self.held_values = np.zeros(3 * self.n_sites) if held_values is None else np.asarray(held_values, float)
        if self.held_values.shape != self.fixed.shape:
            raise ValueError(f"held_values has shape {self.held_values.shape}, expected {self.fixed.shape}")
        site_map = scorer.site_map
        self.movable = scanned_sites(self.fixed, site_map)
        #: Sites the relocation scan moves: also those on special positions with free coordinates.
        self.relocatable = (
            self.movable if site_map is None else relocation.relocatable_sites(self.fixed, site_map.fixed)
        )
        self._orbits = None  # the relocation scan's grid (relocation.symmetric_grid), made at the first scan
        #: Clearing in survivor selection (multipop.Niche), None below ``niche_min_sites``.
        self.niche = search_niche(settings, scorer.problem)

    def rwp(self, genomes: np.ndarray) -> np.ndarray:
        return self.scorer.rwp(genomes.reshape(len(genomes), self.n_sites, 3))

    def rwp_and_gradient(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The local search's objective: Rwp, plus the local penalty if any, and its gradient (n, n_genes)."""
        shaped = genomes.reshape(len(genomes), self.n_sites, 3)
        rwp, gradient = self.scorer.rwp_and_gradient(shaped)
        if self.local_penalty is not None:
            extra, extra_gradient = self.local_penalty(shaped)
            rwp, gradient = rwp + extra, gradient + extra_gradient
        gradient = gradient.reshape(len(genomes), -1)
        gradient[:, self.fixed] = 0.0
        return rwp, gradient

    def _nn_scores(self, genomes: np.ndarray) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        scores = np.asarray(self.selector(genomes), dtype=float)
        return scores, time.perf_counter() - started

    def __call__(self, genomes: np.ndarray) -> Evaluated:
        """Score a batch; refine its chosen share by L-BFGS and write the refined genomes back.

        Parameters
        ----------
        genomes : ndarray, shape (n, n_genes)
            Fractional coordinates, flattened per model.

        Returns
        -------
        Evaluated
        """
        s = self.settings
        nn = self.nn
        genomes = np.array(genomes, dtype=float)
        genomes[:, self.fixed] = self.held_values[self.fixed]
        n = len(genomes)
        evaluations = 0.0
        nn_seconds = 0.0
        fraction = nn.refine_fraction if nn is not None and nn.refine else s.rates.local_fraction
        n_local = round(fraction * n) if s.layout.local_steps > 0 else 0
        if n_local < n:
            rwp = self.rwp(genomes)
            evaluations += n
            priority = rwp
            if nn is not None and nn.refine:
                scores, nn_seconds = self._nn_scores(genomes)
                priority = rwp - nn.weight * scores
            chosen = np.argsort(priority, kind="stable")[:n_local]
        else:
            rwp = np.empty(n)
            chosen = np.arange(n)
        if n_local:
            result = lbfgs(self.rwp_and_gradient, genomes[chosen], s.layout.local_steps)
            genomes[chosen] = result.x - np.floor(result.x)
            rwp[chosen] = result.f
            evaluations += result.gradient_calls * s.rates.gradient_cost
            if self.local_penalty is not None:  # result.f holds the penalty too
                rwp[chosen] = self.rwp(genomes[chosen])
                evaluations += n_local
        if self.project is not None:
            genomes = self.project(genomes)
        fitness = rwp + (self.penalty(genomes) if self.penalty is not None else 0.0)
        nn_score = None
        if nn is not None and nn.rerank:
            nn_score, seconds = self._nn_scores(genomes)
            nn_seconds += seconds
            fitness = fitness - nn.weight * nn_score
        self.last_nn_seconds = nn_seconds
        return Evaluated(genomes, fitness, rwp, evaluations, nn_seconds, nn_score)

    def relocation_scan(self, genome: np.ndarray, rng: np.random.Generator) -> Evaluated:
        """Move each relocatable atom of ``genome`` over one point of each orbit of a grid through the cell, or an
        atom on a special position over those points' distinct projections onto its position
        (:mod:`gasolve.ga.relocation`), then score and refine the ``scan_top`` best places of each atom like any
        offspring.

        Parameters
        ----------
        genome : ndarray, shape (n_genes,)
        rng : Generator
            Shifts the grid.

        Returns
        -------
        Evaluated
            The refined candidates, shape (n_relocatable · scan_top, n_genes); ``evaluations`` includes the scan.
        """
        s = self.settings
        if self._orbits is None:  # the group's grid and its orbits, the same for every scan of the run
            problem = self.scorer.problem
            group = problem.space_group
            self._orbits = relocation.symmetric_grid(problem.cell, s.rates.scan_spacing, group.rotations,
                                                     group.translations)  # fmt: skip
        grid = relocation.scan_points(rng, self._orbits)

        def rwp_of(genomes):
            return self.rwp(self.project(genomes) if self.project is not None else genomes)

        sites, ranker_seconds = self.scan_sites(genome)
        candidates, spent = relocation.best_relocations(rwp_of, genome, sites, grid, s.layout.scan_top, self.project)
        if s.layout.scan_fourier:
            from gasolve.ga.fourier_rebuild import CYCLES, map_cost, rebuilt_models

            rebuilt = rebuilt_models(self.scorer, genome, self.movable)
            if len(rebuilt):
                candidates = np.concatenate([rebuilt, candidates])
                spent += map_cost(self.scorer.problem) * CYCLES * (len(rebuilt) // 2)  # maps and partitions
        if not len(candidates):
            return Evaluated(candidates, np.empty(0), np.empty(0), float(spent), ranker_seconds)
        done = self(candidates)
        return Evaluated(
            done.genomes, done.fitness, done.rwp, done.evaluations + spent, done.nn_seconds + ranker_seconds,
            done.nn_score,
        )  # fmt: skip

    def scan_sites(self, genome: np.ndarray) -> tuple[np.ndarray, float]:
        """Sites the relocation scan of ``genome`` moves, and the seconds the atom ranker took (0 without one)."""
        if self.atom_ranker is None:
            return self.relocatable, 0.0
        from gasolve.ga.atom_selection import scan_sites

        started = time.perf_counter()
        frac = np.asarray(genome, dtype=float)[None]
        if self.project is not None:
            frac = self.project(frac)
        probability = np.asarray(self.atom_ranker(frac.reshape(self.n_sites, 3)), dtype=float)
        seconds = time.perf_counter() - started
        self.ranker_seconds += seconds
        return scan_sites(probability, self.relocatable, self.scan_share), seconds


def search_niche(settings: GASettings, problem) -> multipop.Niche | None:
    """The clearing of survivor selection of a search of ``problem`` (a
    :class:`~gasolve.scoring.problem.ScoringProblem`): ``niche_radius`` from ``niche_min_sites`` sites on, else None.
    Sites weigh as :func:`niche_weights`."""
    smallest = settings.layout.niche_min_sites
    if not smallest or problem.n_sites < smallest:
        return None
    group = problem.space_group
    _, codes = np.unique(np.asarray(problem.elements), return_inverse=True)
    return multipop.Niche(
        settings.rates.niche_radius,
        problem.cell.metric,
        group.rotations,
        group.translations,
        codes,
        niche_weights(problem.elements),
    )


def niche_weights(elements) -> np.ndarray:
    """Weight of each site (element symbols, length n_sites) in the clearing distance, shape (n_sites,): 0 for
    the sites an X-ray pattern does not locate (H and D, :func:`gasolve.crystal.xray_visibility.undetermined`),
    1 for the others (all 1 without H, or when every site is H). Models that differ only in their H atoms, which
    carry a few hundredths of a percent of the scattering, are thus one niche: an island cannot keep them apart
    while it collapses on one frame of the other atoms."""
    from gasolve.crystal.xray_visibility import undetermined

    return np.where(undetermined(elements), 0.0, 1.0)


def scanned_sites(fixed_genes: np.ndarray, site_map=None) -> np.ndarray:
    """Sites the relocation scan moves: those with three free genes, neither held (``fixed_genes``, (n_genes,)
    bool) nor fixed by their Wyckoff position (``site_map``); shape (k,), int."""
    pinned = fixed_genes if site_map is None else fixed_genes | site_map.fixed
    return relocation.movable_sites(pinned)


def origin_fixing_genes(space_group, elements, site_map=None) -> np.ndarray:
    """Genes to pin so that the origin is no longer free (polar groups; all three axes in P1; [111] in
    rhombohedral-axes settings such as R3:R).

    Along a direction left invariant by every rotation (a polar direction) the origin may slide continuously;
    the heaviest site's coordinate along it is held (:func:`gasolve.crystal.origin.origin_fixing_slots`), which
    removes the degeneracy (equivalent models that differ by a shift would otherwise breed destructive
    offspring). ``site_map`` (a :class:`~gasolve.crystal.wyckoff.SiteMap`) says which slots of a site on a
    special position are free.
    """
    from gasolve.crystal.origin import origin_fixing_slots

    return origin_fixing_slots(space_group, elements, None if site_map is None else site_map.matrix)


def initialise(evaluate: Evaluator, settings: GASettings, n_genes: int) -> GAState:
    batch = multipop.initial_batch(generation_rng(settings.budget.seed, -1), settings, n_genes)
    done = evaluate(batch.genomes)
    return multipop.init(batch, done.genomes, done.fitness, done.rwp, done.evaluations, settings, evaluate.niche)


def step(evaluate: Evaluator, state: GAState, settings: GASettings) -> tuple[GAState, multipop.Batch, Evaluated]:
    """One generation; then, if the islands' best has not improved for ``scan_after`` generations, a relocation
    scan of that best (its refined models join the search), or, after ``restart_after_scans`` scans that found
    nothing better, a restart of the whole search."""
    rng = generation_rng(settings.budget.seed, state.generation)
    batch = multipop.ask(rng, state, settings)
    done = evaluate(batch.genomes)
    state = multipop.tell(
        batch, done.genomes, done.fitness, done.rwp, done.evaluations, state, settings, evaluate.niche
    )
    if settings.layout.scan_after and state.stagnant >= settings.layout.scan_after:
        if settings.layout.restart_after_scans and state.failed_scans >= settings.layout.restart_after_scans:
            return multipop.restart_search(state, settings), batch, done
        scanned = evaluate.relocation_scan(state.epoch_best_genome(), rng)
        state = multipop.inject(
            scanned.genomes, scanned.fitness, scanned.rwp, scanned.evaluations, state, settings, evaluate.niche
        )
        done = Evaluated(
            np.concatenate([done.genomes, scanned.genomes]),
            np.concatenate([done.fitness, scanned.fitness]),
            np.concatenate([done.rwp, scanned.rwp]),
            done.evaluations + scanned.evaluations,
            done.nn_seconds + scanned.nn_seconds,
            None,
        )
    return state, batch, done
