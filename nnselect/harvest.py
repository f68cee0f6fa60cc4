"""Harvest the models a GA evaluates while solving a known structure, with per-site distances to the truth.

The training set of the selection network of Zaloga, Stanovov, Bezrukova, Dubinin & Yakimov, J. Sib. Fed. Univ.
Chem. 12 (2019) 188-200 (part 2: about 150,000 GA models of K4PbO4, each atom labelled in place when it lies
within about 0.1 Å of the true structure). Here the GA is gasolve's own memetic multipopulation GA, exactly as
``gasolve run`` runs it (settings from the config's ``[ga]`` table, anti-bump penalty and origin fixing
included), and every model it evaluates is recorded: the initial population and every generation's offspring,
after their Lamarckian local refinement (the coordinates the GA goes on with), with their Rwp.

Runs use seeds ``[ga] seed``, ``+1``, ``+2``, ... and each is written as one shard when it ends, so a
harvest resumes by skipping the seeds already stored; a run that was killed is redone from its seed, which
reproduces it exactly (the GA draws each generation's random numbers from (seed, generation) alone).

When a run ends
---------------
A run stops at the first of:

* its evaluation budget (``[ga] max_evaluations``) or ``max_generations_per_run`` generations;
* ``generations_after_solution`` generations (default 5) after the generation whose model first made the run's
  best match the reference within ``[reference] tolerance`` (0.3 Å by default; :class:`gasolve.solve.Judge`,
  as ``gasolve run`` decides "solved").

Why 5: on K4PbO4 (examples/K4PbO4.toml with the then default 4 x 24 islands, 96 models per generation) the runs of
seeds 1-3 found the solution in generation 6, 7 and 6; until then almost no model has its O atoms within 0.1 Å.
After the solution the population fills with it: in seed 1 the share of models with every site within 0.5 Å was 0.04
in the generation of the solution and 0.11, 0.20, 0.29, 0.40, 0.50 in the five after, and above 0.85 from 10
generations after, when the population is nearly all copies of the answer. Stopping 5 generations after keeps the
search before the solution and the converging population with partly correct models, without a long tail of near-
duplicates of the answer: the 3-run K4PbO4 data set (3,840 models) has 10 % of its models with every site within 0.5
Å, and base rates at 0.1 Å from 0.10-0.13 (O sites) and 0.28-0.36 (K) to 0.66 (Pb).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gasolve.config import RunConfig, resolved_toml
from gasolve.crystal import Structure
from gasolve.errors import InputError
from gasolve.ga import memetic
from gasolve.ga.settings import GASettings
from gasolve.io.patterns import ObservedPattern
from gasolve.scoring.protocol import ModelScorer
from gasolve.solve import build_evaluator
from nnselect.dataset import MANIFEST, HarvestDataset, new_manifest, wrap_frac

#: Models harvested by default (the paper's figure).
DEFAULT_TARGET_MODELS = 150_000
#: Generations a run goes on after its best first matches the reference (see the module docstring).
DEFAULT_GENERATIONS_AFTER_SOLUTION = 5


@dataclass(frozen=True)
class HarvestProgress:
    """Where a harvest stands, reported after every generation.

    Attributes
    ----------
    seed : int
        Seed of the run in progress.
    runs_done : int
        Runs stored in the data set before this one.
    generation : int
        Generation just evaluated (-1: the initial population).
    run_models : int
        Models of the run in progress so far.
    n_models : int
        Models stored plus ``run_models``.
    target_models : int or None
    best_rwp : float
        Best Rwp of the run so far.
    solved : bool
        Whether the run's best has matched the reference.
    """

    seed: int
    runs_done: int
    generation: int
    run_models: int
    n_models: int
    target_models: int | None
    best_rwp: float
    solved: bool


@dataclass(frozen=True)
class RunModels:
    """Every model one GA run evaluated.

    Attributes
    ----------
    seed : int
    frac : ndarray, shape (n, n_sites, 3), float32
        Fractional coordinates in [0, 1).
    rwp : ndarray, shape (n,), float32
    generation : ndarray, shape (n,), int32
        -1 for the initial population, then 0, 1, ... (the index of
        :func:`gasolve.ga.memetic.generation_rng` that produced the offspring).
    distances : ndarray, shape (n, n_sites), float32, Å
        Per model site, distance to the nearest reference atom of its element after the best alignment.
    generations : int
        Generations run after the initial population.
    evaluations : float
        Rwp-evaluation equivalents spent.
    best_rwp : float
    solved_generation : int or None
        Generation of the model with which the best first matched the reference (None: not solved).
    evaluations_to_solution : float or None
    """

    seed: int
    frac: np.ndarray
    rwp: np.ndarray
    generation: np.ndarray
    distances: np.ndarray
    generations: int
    evaluations: float
    best_rwp: float
    solved_generation: int | None
    evaluations_to_solution: float | None

    @property
    def n_models(self) -> int:
        return len(self.rwp)

    def arrays(self) -> dict[str, np.ndarray]:
        """The shard arrays (see :mod:`nnselect.dataset`)."""
        return {
            "frac": self.frac,
            "rwp": self.rwp,
            "generation": self.generation,
            "seed": np.full(self.n_models, self.seed, dtype=np.int32),
            "distances": self.distances,
        }

    def info(self) -> dict[str, Any]:
        """Facts about the run for its manifest entry."""
        return {
            "generations": self.generations,
            "evaluations": round(self.evaluations, 1),
            "best_rwp": self.best_rwp if np.isfinite(self.best_rwp) else None,
            "solved_generation": self.solved_generation,
            "evaluations_to_solution": self.evaluations_to_solution,
        }


@dataclass(frozen=True)
class HarvestProblem:
    """What every run of a harvest shares: the scorer, the reference and how models are measured against it.

    Attributes
    ----------
    scorer : ModelScorer
        As `gasolve run` builds it (Wyckoff positions, occupancy correction).
    observed : ObservedPattern
        The pattern restricted to the config's range.
    reference : Structure
        The known structure.
    template : Structure
        The models' cell, space group and sites (coordinates replaced per model).
    tolerance : float
        Å: a run is solved when its best model has every site this close (one to one, ``gasolve compare``).
    """

    scorer: ModelScorer
    observed: ObservedPattern
    reference: Structure
    template: Structure
    tolerance: float

    @classmethod
    def from_config(cls, config: RunConfig) -> HarvestProblem:
        """Build the scorer, template and reference as ``gasolve run`` does (:func:`gasolve.pipeline.prepare`).

        Raises
        ------
        InputError
            If the config has no ``[reference]``, no ``[pattern.profile]`` or no ``sites``, or the reference's
            cell or composition does not match.
        """
        from gasolve import pipeline

        if config.reference is None:
            raise InputError(
                "harvesting needs the known structure: add a [reference] table with its cif", str(config.source)
            )
        if config.pattern.profile is None:
            raise InputError(
                "harvesting needs a fixed profile: add [pattern.profile] (gasolve lebail CONFIG writes one)",
                str(config.source),
            )
        if not config.structure.sites:
            raise InputError(
                "harvesting needs the independent atoms: give [structure] sites (a composition search's "
                "solution.toml has them)",
                str(config.source),
            )
        setup = pipeline.prepare(dataclasses.replace(config, nn=None))  # the harvest's GA runs without a network
        return cls(setup.scorer, setup.observed, setup.judge.reference, setup.template, config.reference.tolerance)

    @property
    def elements(self) -> list[str]:
        return [site.element for site in self.template.sites]

    def distances(self, frac: np.ndarray) -> np.ndarray:
        """Per-site distances (Å) of models (n, n_sites, 3) to the reference: shape (n, n_sites)."""
        from gasolve.compare import site_distances_batch

        return site_distances_batch(frac, self.reference, self.template.space_group, self.template.cell, self.elements)


class _Recording:
    """An evaluator that keeps every batch it evaluated (the genomes after local refinement and their Rwp)."""

    def __init__(self, evaluate: memetic.Evaluator):
        self.evaluate = evaluate
        self.batches: list[memetic.Evaluated] = []

    @property
    def niche(self):
        """The evaluator's clearing niche (:func:`gasolve.ga.memetic.search_niche`), which the GA step reads."""
        return self.evaluate.niche

    def __call__(self, genomes: np.ndarray) -> memetic.Evaluated:
        done = self.evaluate(genomes)
        self.batches.append(done)
        return done

    def relocation_scan(self, genome: np.ndarray, rng: np.random.Generator) -> memetic.Evaluated:
        """The evaluator's relocation scan; its refined candidates are kept like any batch."""
        done = self.evaluate.relocation_scan(genome, rng)
        self.batches.append(done)
        return done


def harvest_run(
    problem: HarvestProblem,
    settings: GASettings,
    *,
    generations_after_solution: int = DEFAULT_GENERATIONS_AFTER_SOLUTION,
    max_generations: int | None = None,
    on_generation: Callable[[int, int, float, bool], None] | None = None,
) -> RunModels:
    """Run the memetic GA once from ``settings.budget.seed`` and return every model it evaluated.

    Parameters
    ----------
    problem : HarvestProblem
    settings : GASettings
        The run's settings; ``budget.seed`` selects the run.
    generations_after_solution : int
        Generations run after the one whose model first made the best match the reference.
    max_generations : int, optional
        Most generations after the initial population (the evaluation budget applies as well).
    on_generation : callable, optional
        Called after each generation with (generation, models so far, best Rwp, solved).

    Returns
    -------
    RunModels
    """
    from gasolve.solve import Judge

    if generations_after_solution < 0:
        raise ValueError(f"generations_after_solution must be >= 0, got {generations_after_solution}")
    if max_generations is not None and max_generations < 0:
        raise ValueError(f"max_generations must be >= 0, got {max_generations}")
    judge = Judge(problem.template, problem.reference, problem.tolerance)
    n_sites = problem.template.n_sites
    evaluate = _Recording(build_evaluator(problem.scorer, settings))
    state = memetic.initialise(evaluate, settings, 3 * n_sites)
    labels = [np.full(len(evaluate.batches[-1].rwp), -1, dtype=np.int32)]
    solved_generation = None
    evaluations_to_solution = None
    best_fitness = np.inf

    def check(generation: int) -> None:
        nonlocal solved_generation, evaluations_to_solution, best_fitness
        if state.best_fitness < best_fitness:  # the best changed: was it found in this generation's batch?
            best_fitness = state.best_fitness
            if solved_generation is None and judge(np.asarray(state.best_genome).reshape(-1, 3))[0]:
                solved_generation = generation
                evaluations_to_solution = float(state.evaluations)
        if on_generation is not None:
            n = sum(len(batch.rwp) for batch in evaluate.batches)
            on_generation(generation, n, float(state.best_rwp), solved_generation is not None)

    check(-1)
    while state.evaluations < settings.budget.max_evaluations and (
        max_generations is None or state.generation < max_generations
    ):
        if solved_generation is not None and state.generation - 1 - solved_generation >= generations_after_solution:
            break
        generation = state.generation  # the offspring of this step come from generation_rng(seed, generation)
        n_batches = len(evaluate.batches)
        state, _, _ = memetic.step(evaluate, state, settings)
        n_models = sum(len(batch.rwp) for batch in evaluate.batches[n_batches:])  # offspring, and any scan
        labels.append(np.full(n_models, generation, dtype=np.int32))
        check(generation)
    frac = wrap_frac(np.concatenate([batch.genomes for batch in evaluate.batches]).reshape(-1, n_sites, 3))
    return RunModels(
        seed=settings.budget.seed,
        frac=frac,
        rwp=np.concatenate([batch.rwp for batch in evaluate.batches]).astype(np.float32),
        generation=np.concatenate(labels),
        # measured on the stored float32 coordinates, so that the labels follow from the data set alone
        distances=problem.distances(frac.astype(float)).astype(np.float32),
        generations=int(state.generation),
        evaluations=float(state.evaluations),
        best_rwp=float(state.best_rwp),
        solved_generation=solved_generation,
        evaluations_to_solution=evaluations_to_solution,
    )


def _provenance(config: RunConfig, problem: HarvestProblem, harvest_rule: dict) -> dict[str, Any]:
    """The keyword arguments of :func:`nnselect.dataset.new_manifest` for a config."""
    pattern = config.pattern
    return {
        "name": config.structure.name,
        "elements": list(config.structure.sites),
        "config_toml": resolved_toml(config),
        "reference_cif": Path(config.reference.cif).read_text(encoding="utf-8", errors="replace"),
        "observed": problem.observed,
        "wavelength": [list(line) for line in pattern.radiation.lines],
        "profile": dataclasses.asdict(pattern.profile),
        "background_terms": pattern.background_terms,
        "settings": config.ga.flat(),
        "harvest": harvest_rule,
    }


def harvest(
    config: RunConfig,
    out_dir: str | Path,
    n_runs: int | None = None,
    target_models: int | None = DEFAULT_TARGET_MODELS,
    max_generations_per_run: int | None = None,
    progress: Callable[[HarvestProgress], None] | None = None,
    *,
    generations_after_solution: int = DEFAULT_GENERATIONS_AFTER_SOLUTION,
) -> HarvestDataset:
    """Run the GA with seeds ``[ga] seed``, +1, +2, ... on a known structure and store every model evaluated.

    Seeds already in the data set at ``out_dir`` are skipped, so calling again with the same arguments after an
    interruption continues the harvest; the data set then holds exactly the models an uninterrupted harvest
    would have. ``report.json`` (:meth:`HarvestDataset.report`: per-site base rates at 0.1, 0.3 and 0.5 Å and
    the co-occurrence of in-place sites) is written at the end.

    Parameters
    ----------
    config : RunConfig
        Must have a ``[reference]``; its ``[ga]`` settings drive every run (``seed`` is the first seed).
    out_dir : str or Path
        The data set folder (created, or extended when it holds a data set of the same config).
    n_runs : int, optional
        Stop when the data set holds this many runs.
    target_models : int, optional
        Stop when the data set holds at least this many models. Runs are stored whole, so the last run may
        overshoot. At least one of ``n_runs`` and ``target_models`` must be given.
    max_generations_per_run : int, optional
        Most generations per run after the initial population (the ``[ga] max_evaluations`` budget applies too).
    progress : callable, optional
        Called with a :class:`HarvestProgress` after every generation.
    generations_after_solution : int
        Generations a run continues after its best first matches the reference (see the module docstring).

    Returns
    -------
    HarvestDataset

    Raises
    ------
    InputError
        Without ``[reference]``, with a reference that does not match the structure, or when ``out_dir`` holds
        something else than a data set of the same structure, pattern, GA settings and stopping rule.
    """
    if n_runs is None and target_models is None:
        raise ValueError("give n_runs or target_models (or both): the harvest would never end")
    for name, value in (("n_runs", n_runs), ("target_models", target_models)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    problem = HarvestProblem.from_config(config)
    harvest_rule = {
        "generations_after_solution": int(generations_after_solution),
        "max_generations_per_run": max_generations_per_run,
        "solution_tolerance": float(problem.tolerance),
        "labels": "distances: per model site, to the nearest reference atom of its element after the best "
        "alignment of the Euclidean normaliser (gasolve.compare.site_distances_batch); label = distances <= radius",
        "models": "every model evaluated: the initial population (generation -1) and each generation's "
        "offspring after the Lamarckian local refinement",
    }
    out_dir = Path(out_dir)
    provenance = _provenance(config, problem, harvest_rule)
    if (out_dir / MANIFEST).exists():
        dataset = HarvestDataset.open(out_dir, name=config.structure.name, elements=config.structure.sites)
        dataset.check_same_source(new_manifest(**provenance))
    else:
        dataset = HarvestDataset.create(out_dir, **provenance)
    done = set(dataset.seeds_done)
    seed = config.ga.budget.seed
    while (n_runs is None or dataset.n_runs < n_runs) and (target_models is None or dataset.n_models < target_models):
        if seed in done:
            seed += 1
            continue
        stored = dataset.n_models

        def report(
            generation: int, run_models: int, best_rwp: float, solved: bool, seed: int = seed, stored: int = stored
        ) -> None:
            progress(
                HarvestProgress(
                    seed, dataset.n_runs, generation, run_models, stored + run_models, target_models, best_rwp, solved
                )
            )

        started = time.perf_counter()
        run = harvest_run(
            problem,
            config.ga.replace(seed=seed),
            generations_after_solution=generations_after_solution,
            max_generations=max_generations_per_run,
            on_generation=report if progress is not None else None,
        )
        dataset.append_run(seed, run.arrays(), {**run.info(), "wall_seconds": round(time.perf_counter() - started, 3)})
        seed += 1
    dataset.write_report()
    return dataset
