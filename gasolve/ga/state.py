"""Explicit, immutable state of the multipopulation GA (replaced with ``dataclasses.replace``, never edited)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def frozen_array(array, dtype=float) -> np.ndarray:
    """A read-only copy of ``array``."""
    out = np.array(array, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class IslandState:
    """One subpopulation.

    Attributes
    ----------
    population : ndarray, shape (n_members, n_genes)
        Fractional coordinates in [0, 1).
    fitness : ndarray, shape (n_members,)
        Selection fitness: Rwp plus any penalty (lower is better).
    rwp : ndarray, shape (n_members,)
    target_size : int
        Size the island keeps after survivor selection (changed by reallocation).
    selection : str
        Parent-selection scheme of this island.
    crossover_probability, mutation_probability : ndarray
        Self-configured probabilities of the operators (``GALayout.crossovers``, ``.mutations``).
    crossover_success, mutation_success : ndarray
        Exponential moving averages of each operator's success rate.
    sigma : float
        Gaussian mutation step (fractional units), adapted by the 1/5 success rule.
    best_fitness : float
        Best fitness the island has held since its last restart.
    stagnant : int
        Generations since ``best_fitness`` last improved.
    progress : float
        Improvement of ``best_fitness`` since the last reallocation (cooperative-competitive ranking).
    restart_pending : bool
        The next ``ask`` replaces this island with fresh random models.
    """

    population: np.ndarray
    fitness: np.ndarray
    rwp: np.ndarray
    target_size: int
    selection: str
    crossover_probability: np.ndarray
    mutation_probability: np.ndarray
    crossover_success: np.ndarray
    mutation_success: np.ndarray
    sigma: float
    best_fitness: float
    stagnant: int
    progress: float
    restart_pending: bool


@dataclass(frozen=True)
class GAState:
    """The whole search.

    Attributes
    ----------
    islands : tuple of IslandState
    generation : int
        Generations told so far (0 after initialisation).
    evaluations : float
        Rwp-evaluation equivalents spent (Rwp + gradient calls weighted by ``gradient_cost``).
    best_genome : ndarray, shape (n_genes,)
    best_fitness, best_rwp : float
    restarts : int
        Island restarts so far.
    stagnant : int
        Generations since ``epoch_best`` last improved or the last relocation scan.
    epoch_best : float
        Best fitness the islands have held since the last restart of the whole search (``best_fitness`` is the
        best of the whole run and survives such restarts).
    failed_scans : int
        Relocation scans since ``epoch_best`` last improved.
    scans : int
        Relocation scans so far.
    search_restarts : int
        Restarts of the whole search (every island from random models) so far.
    """

    islands: tuple[IslandState, ...]
    generation: int
    evaluations: float
    best_genome: np.ndarray
    best_fitness: float
    best_rwp: float
    restarts: int
    stagnant: int = 0
    epoch_best: float = np.inf
    failed_scans: int = 0
    scans: int = 0
    search_restarts: int = 0

    def epoch_best_genome(self) -> np.ndarray:
        """The best model the islands hold now, shape (n_genes,)."""
        island = min(self.islands, key=lambda isl: isl.fitness[0])
        return np.asarray(island.population[0])
