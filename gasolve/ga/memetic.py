"""The search loop: ask -> evaluate (with Lamarckian L-BFGS refinement) -> tell, one generation at a time.

Each generation's Generator derives from (seed, generation) alone, so a run resumed from a checkpoint of its
state continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gasolve.ga import multipop
from gasolve.ga.local import lbfgs
from gasolve.ga.settings import GASettings
from gasolve.ga.state import GAState
from gasolve.scoring import Scorer


def generation_rng(seed: int, generation: int) -> np.random.Generator:
    """The Generator of one generation (generation -1 is the initial population)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, generation + 1])))


@dataclass(frozen=True)
class Evaluated:
    """Genomes after evaluation (and refinement), with fitness, Rwp and the evaluations spent."""

    genomes: np.ndarray
    fitness: np.ndarray
    rwp: np.ndarray
    evaluations: float


class Evaluator:
    """Scores GA genomes (n, 3 n_sites) with the engine, refining the best share locally.

    Parameters
    ----------
    scorer : Scorer
    settings : GASettings
    penalty : callable, optional
        genomes (n, n_genes) -> penalty (n,) added to Rwp for selection (anti-bump).
    fixed_genes : ndarray, shape (n_genes,), bool, optional
        Genes held at 0 (origin fixing in polar groups); their gradient is zeroed in the local search.
    """

    def __init__(
        self,
        scorer: Scorer,
        settings: GASettings,
        penalty: Callable[[np.ndarray], np.ndarray] | None = None,
        fixed_genes: np.ndarray | None = None,
    ):
        self.scorer = scorer
        self.settings = settings
        self.penalty = penalty
        self.n_sites = scorer.problem.n_sites
        self.fixed = np.zeros(3 * self.n_sites, dtype=bool) if fixed_genes is None else np.asarray(fixed_genes, bool)

    def rwp(self, genomes: np.ndarray) -> np.ndarray:
        return self.scorer.rwp(genomes.reshape(len(genomes), self.n_sites, 3))

    def rwp_and_gradient(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rwp, gradient = self.scorer.rwp_and_gradient(genomes.reshape(len(genomes), self.n_sites, 3))
        gradient = gradient.reshape(len(genomes), -1)
        gradient[:, self.fixed] = 0.0
        return rwp, gradient

    def __call__(self, genomes: np.ndarray) -> Evaluated:
        s = self.settings
        genomes = np.array(genomes, dtype=float)
        genomes[:, self.fixed] = 0.0
        n = len(genomes)
        evaluations = 0.0
        n_local = round(s.local_fraction * n) if s.local_steps > 0 else 0
        if n_local < n:
            rwp = self.rwp(genomes)
            evaluations += n
            chosen = np.argsort(rwp, kind="stable")[:n_local]
        else:
            rwp = np.empty(n)
            chosen = np.arange(n)
        if n_local:
            result = lbfgs(self.rwp_and_gradient, genomes[chosen], s.local_steps)
            genomes[chosen] = result.x - np.floor(result.x)
            rwp[chosen] = result.f
            evaluations += result.gradient_calls * s.gradient_cost
        fitness = rwp + (self.penalty(genomes) if self.penalty is not None else 0.0)
        return Evaluated(genomes, fitness, rwp, evaluations)


def origin_fixing_genes(space_group, elements) -> np.ndarray:
    """Genes to pin at 0 so that the origin is no longer free (polar groups; all three axes in P1).

    Along a direction left invariant by every rotation (a polar axis) the origin may slide continuously; the
    coordinate of the heaviest site along it is fixed, which removes the degeneracy (equivalent models that
    differ by a shift would otherwise breed destructive offspring).
    """
    import gemmi

    n_sites = len(elements)
    fixed = np.zeros(3 * n_sites, dtype=bool)
    eye = np.eye(3, dtype=int)
    free = [i for i in range(3) if all(np.array_equal(r[:, i], eye[i]) for r in space_group.rotations)]
    if free:
        anchor = int(np.argmax([gemmi.Element(e).atomic_number for e in elements]))
        fixed[3 * anchor + np.array(free)] = True
    return fixed


def initialise(evaluate: Evaluator, settings: GASettings, n_genes: int) -> GAState:
    batch = multipop.initial_batch(generation_rng(settings.seed, -1), settings, n_genes)
    done = evaluate(batch.genomes)
    return multipop.init(batch, done.genomes, done.fitness, done.rwp, done.evaluations, settings)


def step(evaluate: Evaluator, state: GAState, settings: GASettings) -> tuple[GAState, multipop.Batch, Evaluated]:
    """One generation."""
    rng = generation_rng(settings.seed, state.generation)
    batch = multipop.ask(rng, state, settings)
    done = evaluate(batch.genomes)
    return multipop.tell(batch, done.genomes, done.fitness, done.rwp, done.evaluations, state, settings), batch, done
