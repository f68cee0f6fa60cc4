"""Convergence of gasolve against its peers: success rate and evaluations to solution over many seeds.

Usage::

    python benchmarks/convergence.py [--seeds 20] [--p1-seeds N] [--scheduler tcp://HOST:PORT] [--workers N]
        [--problems K4SnO4,K4PbO4,K4SnO4-P1] [--methods gasolve,plain,restarts] [--p1-methods gasolve]
        [--budget N] [--method-budget METHOD=N,...] [--max-seconds METHOD=S,...] [--note TEXT]
        [--json PATH] [--png PATH]

Problems (patterns and references from ``examples/``):

- ``K4SnO4``, ``K4PbO4``: P-1, 9 independent sites (27 coordinates); budget 2,000,000 evaluations.
- ``K4SnO4-P1``: the K4SnO4 cell and pattern solved in P1, the 18 atoms of the cell independent (54
  coordinates); budget 10,000,000 evaluations. The reference is the expanded K4SnO4 cell in P1.

Methods, all on the same problems, seeds and budgets in one run:

- ``gasolve``: the memetic multipopulation GA with its default settings (25 L-BFGS steps per offspring,
  anti-bump penalty), stopped at the first solution as ``gasolve run --stop-when-solved`` does.
- ``plain``: the same GA without local optimisation (``local_steps = 0``), the setting of Zaloga et al. (2019).
- ``half-refine``: the gasolve GA refining only the best half of each generation's offspring by Rwp (the
  baseline of ``nn-refine``).
- ``nn-rerank``, ``nn-refine``, ``nn-both``: the gasolve GA with the selection network of ``--nn CHECKPOINT``
  (``[nn] mode`` rerank, refine or both, ``weight`` from ``--nn-weight``, refine fraction 0.5; see
  ``gasolve.ga.nn_settings``). Their records add the network's wall time (``nn_seconds``).
- ``oracle-rerank``, ``oracle-refine``: the same two uses with a perfect network
  (``benchmarks.oracle_selector``): each model's exact share of sites within 0.1 Å of the truth. The upper bound
  of what any selection network can buy in that use; compare evaluations (its comparisons, ``nn_seconds``,
  stand for a network's inference and are in the wall time).
- ``restarts``: random-restart local search: batches of uniformly random models, each refined by the same
  batched L-BFGS (``gasolve.ga.local.lbfgs``) for ``restart_steps`` iterations on Rwp alone; a batch's models
  with Rwp below ``restart_judge_rwp`` are compared with the reference.

Evaluations are Rwp-evaluation equivalents as the GA counts them (one per Rwp, ``gradient_cost`` = 2.6 per
Rwp + gradient call); the restarts are charged the same way. A batch of restarts runs together for speed, but
the restarts are independent and in random order, so a restart search run one at a time would have stopped
at the batch's first solved restart: its evaluations (and seconds) to solution are those before the batch plus
that restart's share of the batch, (index + 1) / batch size (``evaluations_to_solution_batch_end`` keeps the
unprorated value; ``evaluations`` what was actually computed). A run is solved when its best model (GA) or
one of its refined models (restarts) has every reference site within the config's tolerance (0.3 Å) after
the best normaliser/permutation alignment (``gasolve.solve.Judge``). Wall time is measured around the
search including the comparisons with the reference, after a warm-up (JIT compilation, problem tables) that
is not counted.

Every run is an independent pure function ``run_one(problem, method, seed, budget, max_seconds)`` executed
on Dask: by default a ``distributed.LocalCluster`` with one single-threaded worker process per core
(``NUMBA_NUM_THREADS=1``, BLAS threads 1), or an existing cluster given by ``--scheduler`` (its workers must
import ``gasolve`` and ``benchmarks.convergence``: start them in the repository root, single-threaded, with
``NUMBA_NUM_THREADS=1``).

The plain GA rarely solves and scores far fewer evaluations per second (its generations are cheap, Python's
bookkeeping is not), so it may be given a lower budget (``--method-budget plain=N``, in evaluations, so that
the result does not depend on the load of the machine). Every run also stops when its wall time passes
``max_seconds`` of its method, a safety net; such runs count as unsolved and the success curves stop at the
least evaluations an unsolved run reached (``limit``), beyond which they would be biased.

Per problem and method: success rate (with a Wilson 95 % interval), evaluations and seconds to solution over
the solved runs (median, IQR, min-max), the expected evaluations to solution ERT = (evaluations spent by all
runs) / (solved runs), sustained evaluations per second, final best Rwp, and the cumulative success curve
against evaluations and seconds. ``run_benchmark`` returns that as plain data and writes it as JSON with the
config, seeds, versions and machine; ``benchmarks/plot_convergence.py`` draws the PNG from the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that `python benchmarks/convergence.py` finds an uninstalled gasolve

from benchmarks import provenance  # noqa: E402
from gasolve.io.atomic import atomic_write  # noqa: E402
from gasolve.parallel import WORKER_ENV  # noqa: E402  (one thread per worker process)

if TYPE_CHECKING:
    from gasolve.pipeline import Setup

EXAMPLES = REPO / "examples"
RESULTS = REPO / "benchmarks" / "results"
METHODS = (
    "gasolve",
    "plain",
    "restarts",
    "half-refine",
    "nn-rerank",
    "nn-refine",
    "nn-both",
    "oracle-rerank",
    "oracle-refine",
)
#: Methods measured unless others are asked for.
DEFAULT_METHODS = ("gasolve", "plain", "restarts")
#: Methods that use the selection network (``--nn``); the suffix is the :class:`NNSettings` mode.
NN_METHODS = ("nn-rerank", "nn-refine", "nn-both")
#: The same selection with a perfect network in place of the trained one (:mod:`benchmarks.oracle_selector`):
#: the exact share of sites within :data:`ORACLE_RADIUS` of the truth. The upper bound of what a network buys.
ORACLE_METHODS = ("oracle-rerank", "oracle-refine")
ORACLE_RADIUS = 0.1
#: Share of offspring refined locally by ``half-refine`` and by the network's refine modes.
REFINE_FRACTION = 0.5


@dataclass(frozen=True)
class ProblemSpec:
    """A benchmark problem: a run config of ``examples/``, optionally expanded to P1."""

    config: str
    p1: bool
    budget: int


PROBLEMS = {
    "K4SnO4": ProblemSpec("K4SnO4.toml", p1=False, budget=2_000_000),
    "K4PbO4": ProblemSpec("K4PbO4.toml", p1=False, budget=2_000_000),
    "K4SnO4-P1": ProblemSpec("K4SnO4.toml", p1=True, budget=10_000_000),
}

#: Wall-time cap of one run (seconds) per method, single-threaded.
DEFAULT_MAX_SECONDS = {
    "gasolve": 600.0,
    "plain": 300.0,
    "restarts": 300.0,
    "half-refine": 600.0,
    "nn-rerank": 600.0,
    "nn-refine": 600.0,
    "nn-both": 600.0,
    "oracle-rerank": 600.0,
    "oracle-refine": 600.0,
}

#: Expected relative cost of a run, for the submission order (longest first balances the workers).
_COST = {("gasolve", True): 4.0, ("plain", False): 3.0, ("restarts", False): 2.0, ("gasolve", False): 1.0}


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that defines a benchmark run.

    Attributes
    ----------
    problems : tuple of str
        Keys of :data:`PROBLEMS`.
    methods : tuple of str
        Methods run on the P-1 problems (from :data:`METHODS`).
    p1_methods : tuple of str
        Methods run on the P1 problems.
    seeds : int
        Runs per problem and method on the P-1 problems: seeds ``first_seed``, ``first_seed + 1``, ...
    p1_seeds : int
        Runs per method on the P1 problems.
    first_seed : int
    budget : int or None
        Evaluation budget of every run; None: each problem's own (:data:`PROBLEMS`).
    method_budgets : dict
        Method -> a lower evaluation budget for that method's runs (a slow peer), in evaluations so that the
        result does not depend on the load of the machine.
    max_seconds : dict
        Wall-time cap of one run per method (seconds).
    restart_batch : int
        Random models refined together by the random-restart peer.
    restart_steps : int
        L-BFGS iterations per restart.
    restart_judge_rwp : float
        Restarts that end below this Rwp are compared with the reference (the truth of K4SnO4 has Rwp 0.038,
        its false minimum 0.114).
    nn_model : str or None
        Checkpoint of the selection network; required by the ``nn-*`` methods.
    nn_weight : float
        ``[nn] weight`` of the ``nn-*`` methods.
    workers : int or None
        Worker processes of the local cluster (None: one per usable core); ignored with ``scheduler``.
    scheduler : str or None
        Address of an existing Dask scheduler.
    ga : dict
        ``[ga]`` settings that replace the examples' in every GA run (e.g. ``{"islands": 4}``).
    notes : tuple of str
        Free text stored with the results (why seeds or budgets were reduced, ...).
    """

    problems: tuple[str, ...] = ("K4SnO4", "K4PbO4", "K4SnO4-P1")
    methods: tuple[str, ...] = DEFAULT_METHODS
    p1_methods: tuple[str, ...] = ("gasolve",)
    seeds: int = 20
    p1_seeds: int = 20
    first_seed: int = 0
    budget: int | None = None
    method_budgets: dict = field(default_factory=dict)
    max_seconds: dict = field(default_factory=lambda: dict(DEFAULT_MAX_SECONDS))
    restart_batch: int = 64
    restart_steps: int = 130
    restart_judge_rwp: float = 0.1
    nn_model: str | None = None
    nn_weight: float = 0.05
    workers: int | None = None
    scheduler: str | None = None
    ga: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self.problems:
            if name not in PROBLEMS:
                raise ValueError(f"unknown problem {name!r}; known: {', '.join(PROBLEMS)}")
        for name in (*self.methods, *self.p1_methods):
            if name not in METHODS:
                raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
        if self.seeds < 0 or self.p1_seeds < 0 or self.first_seed < 0:
            raise ValueError("seed counts and the first seed must be >= 0")
        if self.budget is not None and self.budget < 1:
            raise ValueError(f"budget must be positive, got {self.budget}")
        for method, value in self.method_budgets.items():
            if method not in METHODS or not value >= 1:
                raise ValueError(f"method_budgets: expected a method of {METHODS} and a positive budget, got {method}")
        missing = set(self.methods) | set(self.p1_methods)
        missing -= set(self.max_seconds)
        if missing:
            raise ValueError(f"max_seconds lacks method(s) {sorted(missing)}")
        if any(not v > 0 for v in self.max_seconds.values()):
            raise ValueError("max_seconds must be positive")
        if self.restart_batch < 1 or self.restart_steps < 1:
            raise ValueError("restart_batch and restart_steps must be positive")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be positive, got {self.workers}")
        if self.ga:
            from gasolve.errors import InputError
            from gasolve.ga.settings import GASettings

            try:
                GASettings.from_flat(self.ga)
            except (InputError, TypeError) as error:
                raise ValueError(f"--ga: {error}") from None
        if set(NN_METHODS) & (set(self.methods) | set(self.p1_methods)) and not self.nn_model:
            raise ValueError(f"methods {', '.join(NN_METHODS)} need --nn CHECKPOINT")

    def cells(self) -> list[tuple[str, str]]:
        """(problem, method) pairs measured, in a stable order."""
        return [
            (problem, method)
            for problem in self.problems
            for method in (self.p1_methods if PROBLEMS[problem].p1 else self.methods)
        ]

    def seed_list(self, problem: str) -> list[int]:
        n = self.p1_seeds if PROBLEMS[problem].p1 else self.seeds
        return list(range(self.first_seed, self.first_seed + n))

    def budget_of(self, problem: str, method: str | None = None) -> int:
        """Evaluation budget of the runs of ``problem`` (and ``method``)."""
        budget = self.budget if self.budget is not None else PROBLEMS[problem].budget
        if method is not None and method in self.method_budgets:
            budget = min(budget, int(self.method_budgets[method]))
        return budget


# ----------------------------------------------------------------------------------------------------------
# Problems (built once per worker process)


@dataclass(frozen=True)
class Problem:
    """A problem ready to solve: the run's :class:`gasolve.pipeline.Setup` (scorer, template, reference judge and
    the GA settings of its config), as ``gasolve run`` builds it."""

    name: str
    setup: Setup
    space_group: str

    @property
    def scorer(self):
        return self.setup.scorer

    @property
    def judge(self):
        return self.setup.judge

    @property
    def settings(self):
        return self.setup.config.ga

    @property
    def n_sites(self) -> int:
        return self.setup.template.n_sites


@functools.cache
def build_problem(name: str) -> Problem:
    """Load the problem ``name`` of :data:`PROBLEMS` and warm it up (JIT, tables); cached per process.

    The example's config goes through :func:`gasolve.pipeline.prepare`; a P1 problem replaces its structure by the
    atoms of the reference's cell (space group P1, every atom independent) and judges against that expanded cell.
    """
    from gasolve import pipeline
    from gasolve.config import load_run_config
    from gasolve.crystal import Site, SpaceGroup, Structure, read_cif
    from gasolve.solve import Judge, site_labels

    spec = PROBLEMS[name]
    config = load_run_config(EXAMPLES / spec.config)
    if spec.p1:
        structure = config.structure
        reference = read_cif(config.reference.cif)
        space_group = SpaceGroup.from_symbol("P1")
        b_iso = np.array(structure.b_iso, float)
        elements, frac, _, _, site_index = reference.expand()
        b_iso = b_iso[site_index] if len(b_iso) == structure.n_sites else np.full(len(elements), b_iso[0])
        atoms = tuple(
            Site(label=label, element=element, frac=tuple(x), b_iso=float(reference.sites[i].b_iso))
            for label, element, x, i in zip(site_labels(elements), elements, frac, site_index, strict=True)
        )
        reference = Structure(reference.cell, space_group, atoms, name=f"{reference.name} (P1)")
        expanded = dataclasses.replace(
            structure,
            space_group=space_group,
            sites=tuple(elements),
            b_iso=tuple(float(b) for b in b_iso),
            wyckoff=None,
        )
        setup = pipeline.prepare(dataclasses.replace(config, structure=expanded, reference=None))
        setup = dataclasses.replace(setup, judge=Judge(setup.template, reference, config.reference.tolerance))
    else:
        setup = pipeline.prepare(config)
    return ready_problem(name, setup)


def ready_problem(name: str, setup: Setup) -> Problem:
    """The :class:`Problem` of a prepared ``setup``, its scorer and judge warmed up (JIT, tables)."""
    warm = np.random.default_rng(0).random((4, setup.template.n_sites, 3))
    setup.scorer.rwp(warm)
    setup.scorer.rwp_and_gradient(warm)
    setup.judge(warm[0])
    return Problem(name, setup, setup.template.space_group.gemmi.hm)


# ----------------------------------------------------------------------------------------------------------
# One run


@functools.cache
def _selector(problem_name: str, path: str):
    """The selection network on a problem's scoring tables, warmed up (compiled); cached per process."""
    from nnselect.selector import SiteSelector

    problem = build_problem(problem_name)
    selector = SiteSelector(path, problem.scorer.problem)
    selector(np.random.default_rng(0).random((2, 3 * problem.n_sites)))
    selector.seconds = 0.0
    return selector


def _run_ga(problem: Problem, settings, max_seconds: float, selector=None, nn=None) -> dict:
    from gasolve import pipeline

    setup = problem.setup
    setup = dataclasses.replace(setup, config=dataclasses.replace(setup.config, ga=settings, nn=nn), selector=selector)
    started = time.perf_counter()
    record = None
    seconds_to_solution = None
    stopped_by = "budget"
    nn_before = selector.seconds if selector is not None else 0.0
    for record in pipeline.search(setup):
        elapsed = time.perf_counter() - started
        if record.solved:
            seconds_to_solution = elapsed
            stopped_by = "solved"
            break
        if elapsed > max_seconds:
            stopped_by = "time"
            break
    state = record.state
    solved, evaluations_to_solution = record.solved, record.evaluations_to_solution
    evaluations = float(state.evaluations)
    refined_rwp = None
    # Progress of a run that ends unsolved: how many sites of its best model (by the GA's fitness, which
    # includes the network's term in the nn-* methods) lie within the judge's tolerance of the reference.
    ga_in_place = _sites_in_place(problem, state.best_genome)
    final_in_place = problem.n_sites if solved else ga_in_place
    if not solved and stopped_by == "budget":
        # gasolve run ends with a least-squares refinement of the best distinct models and judges its result;
        # a run counts as solved there too, its refinement's Rwp+gradient calls charged at gradient_cost each.
        # Every coordinate moves (no origin held in the polar P1 problem), as this benchmark has always refined.
        best, refinements = pipeline.refine_candidates(setup, record, hold_origin=False)
        evaluations += sum(r.evaluations for r in refinements) * settings.rates.gradient_cost
        refined_rwp = float(best.rwp_after)
        solved, distances = problem.judge(best.frac)
        final_in_place = int(np.sum(distances <= problem.judge.tolerance))
        if solved:
            evaluations_to_solution = evaluations
            seconds_to_solution = time.perf_counter() - started
            stopped_by = "solved after final refinement"
    return {
        "solved": solved,
        "evaluations_to_solution": evaluations_to_solution,
        "seconds_to_solution": seconds_to_solution,
        "best_rwp": float(state.best_rwp),
        "refined_rwp": refined_rwp,
        "evaluations": evaluations,
        "seconds": time.perf_counter() - started,
        "generations": int(state.generation),
        "scans": int(state.scans),
        "search_restarts": int(state.search_restarts),
        "ga_sites_in_place": ga_in_place,
        "sites_in_place": final_in_place,
        "stopped_by": stopped_by,
        "nn_seconds": selector.seconds - nn_before if selector is not None else None,
    }


def _sites_in_place(problem: Problem, genome: np.ndarray) -> int:
    """Sites of the model ``genome`` (shape (n_genes,)) within the judge's tolerance of the reference."""
    _, distances = problem.judge(np.asarray(genome, float).reshape(-1, 3) % 1.0)
    return int(np.sum(distances <= problem.judge.tolerance))


def _run_restarts(problem: Problem, seed: int, budget: int, max_seconds: float, options: dict) -> dict:
    from gasolve.ga.local import lbfgs

    scorer, n_sites = problem.scorer, problem.n_sites
    cost = problem.settings.rates.gradient_cost

    def objective(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rwp, gradient = scorer.rwp_and_gradient(x.reshape(len(x), n_sites, 3))
        return rwp, gradient.reshape(len(x), -1)

    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    started = time.perf_counter()
    evaluations, restarts, judged, best_rwp = 0.0, 0, 0, math.inf
    evaluations_to_solution = seconds_to_solution = batch_end = None
    stopped_by = "budget"
    while evaluations < budget:
        if time.perf_counter() - started > max_seconds:
            stopped_by = "time"
            break
        batch_started = time.perf_counter()
        result = lbfgs(objective, rng.random((options["restart_batch"], 3 * n_sites)), options["restart_steps"])
        batch_seconds = time.perf_counter() - batch_started
        batch_evaluations = result.gradient_calls * cost
        restarts += len(result.f)
        best_rwp = min(best_rwp, float(np.min(result.f)))
        # The restarts of a batch are independent and in random order: one after the other, the search would
        # have stopped at the first solved one, having spent its share of the batch (restarts take about the
        # same number of steps). Judged in index order for that reason.
        for i in np.flatnonzero(result.f < options["restart_judge_rwp"]):
            judged += 1
            solved, _ = problem.judge(result.x[i].reshape(-1, 3) % 1.0)
            if solved:
                share = float(i + 1) / len(result.f)
                evaluations_to_solution = evaluations + share * batch_evaluations
                batch_end = evaluations + batch_evaluations
                judging = time.perf_counter() - batch_started - batch_seconds
                seconds_to_solution = batch_started - started + share * batch_seconds + judging
                break
        evaluations += batch_evaluations
        if evaluations_to_solution is not None:
            stopped_by = "solved"
            break
    return {
        "solved": evaluations_to_solution is not None,
        "evaluations_to_solution": evaluations_to_solution,
        "evaluations_to_solution_batch_end": batch_end,
        "seconds_to_solution": seconds_to_solution,
        "best_rwp": best_rwp,
        "evaluations": evaluations,
        "seconds": time.perf_counter() - started,
        "restarts": restarts,
        "judged": judged,
        "stopped_by": stopped_by,
    }


def run_one(problem: str, method: str, seed: int, budget: int, max_seconds: float, options: dict | None = None) -> dict:
    """One independent run; returns its outcome as plain data.

    Parameters
    ----------
    problem : str
        Key of :data:`PROBLEMS`.
    method : str
        ``"gasolve"``, ``"plain"`` or ``"restarts"``.
    seed : int
        Seed of the run (the GA's ``seed``; the restarts draw from ``SeedSequence([seed, 7])``).
    budget : int
        Evaluations (Rwp equivalents) after which the run stops unsolved.
    max_seconds : float
        Wall time after which the run stops unsolved.
    options : dict, optional
        ``restart_batch``, ``restart_steps``, ``restart_judge_rwp`` (defaults of :class:`BenchmarkConfig`).

    Returns
    -------
    dict
        ``solved``, ``evaluations_to_solution``, ``seconds_to_solution`` (None when unsolved), ``best_rwp``,
        ``evaluations``, ``seconds``, ``evaluations_per_second``, ``stopped_by`` (solved, budget or time) and
        the run's identity, worker process and Numba threads.
    """
    import numba

    defaults = BenchmarkConfig()
    options = {
        "restart_batch": defaults.restart_batch,
        "restart_steps": defaults.restart_steps,
        "restart_judge_rwp": defaults.restart_judge_rwp,
        "nn_model": defaults.nn_model,
        "nn_weight": defaults.nn_weight,
        "ga": {},
        **(options or {}),
    }
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    # One thread per run whatever the worker (a thread of a processes=False cluster, an external worker): the
    # cluster supplies the parallelism, and on small batches Numba's thread pool costs more than it gives.
    threads_before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        spec = build_problem(problem)
        threads = numba.get_num_threads()
        if method == "restarts":
            outcome = _run_restarts(spec, seed, budget, max_seconds, options)
        else:
            settings = spec.settings.replace(options["ga"], seed=seed, max_evaluations=budget)
            selector = nn = None
            if method == "plain":
                settings = settings.replace(local_steps=0)
            elif method == "half-refine":
                settings = settings.replace(local_fraction=REFINE_FRACTION)
            elif method in NN_METHODS or method in ORACLE_METHODS:
                from gasolve.ga.nn_settings import NNSettings

                source, mode = method.split("-", 1)
                model = Path(options["nn_model"]) if source == "nn" else Path("oracle")
                nn = NNSettings(model, mode=mode, weight=options["nn_weight"], refine_fraction=REFINE_FRACTION)
                if source == "nn":
                    selector = _selector(problem, str(model))
                else:
                    from benchmarks.oracle_selector import OracleSelector

                    selector = OracleSelector(spec.judge, spec.n_sites, ORACLE_RADIUS)
            outcome = _run_ga(spec, settings, max_seconds, selector, nn)
    finally:
        numba.set_num_threads(threads_before)
    outcome["evaluations_per_second"] = outcome["evaluations"] / max(outcome["seconds"], 1e-9)
    return {
        "problem": problem,
        "method": method,
        "seed": seed,
        "budget": budget,
        "max_seconds": max_seconds,
        **outcome,
        "pid": os.getpid(),
        "numba_threads": threads,
    }


# ----------------------------------------------------------------------------------------------------------
# Statistics


def spread(values: list[float]) -> dict | None:
    """Median, quartiles and range of ``values``; None when empty."""
    if not values:
        return None
    a = np.asarray(values, dtype=float)
    p25, median, p75 = np.percentile(a, [25, 50, 75])
    return {
        "median": float(median),
        "p25": float(p25),
        "p75": float(p75),
        "min": float(a.min()),
        "max": float(a.max()),
        "n": len(a),
    }


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a success rate (Wilson 1927)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def success_curve(runs: list[dict], key: str, total: str) -> dict:
    """Cumulative share of runs solved by ``x`` evaluations (``key`` ``evaluations_to_solution``) or seconds.

    The curve is exact up to ``limit``: the budget, or the least effort (``total``) an unsolved run reached
    before a wall-time cap stopped it.
    """
    n = len(runs)
    hits = sorted(r[key] for r in runs if r["solved"])
    unsolved = [r[total] for r in runs if not r["solved"]]
    if total == "evaluations":
        limit = min([max(r["budget"] for r in runs), *[r[total] for r in runs if r["stopped_by"] == "time"]])
    else:
        limit = min(unsolved) if unsolved else max(r[total] for r in runs)
    return {"x": hits, "success": [(i + 1) / n for i in range(len(hits))], "limit": float(limit), "n_runs": n}


def summarise(runs: list[dict]) -> dict:
    """Statistics of the runs of one problem and method."""
    ok = [r for r in runs if "error" not in r]
    solved = [r for r in ok if r["solved"]]
    n, k = len(ok), len(solved)
    # A solved run's effort is its effort to solution (the same for the GA, prorated for the restarts).
    spent = sum(r["evaluations_to_solution"] if r["solved"] else r["evaluations"] for r in ok)
    spent_seconds = sum(r["seconds_to_solution"] if r["solved"] else r["seconds"] for r in ok)
    return {
        "n_runs": n,
        "n_errors": len(runs) - n,
        "n_solved": k,
        "success_rate": k / n if n else None,
        "success_rate_95ci": list(wilson_interval(k, n)),
        "evaluations_to_solution": spread([r["evaluations_to_solution"] for r in solved]),
        "seconds_to_solution": spread([r["seconds_to_solution"] for r in solved]),
        "expected_evaluations_to_solution": spent / k if k else None,
        "expected_seconds_to_solution": spent_seconds / k if k else None,
        "evaluations_per_second": spread([r["evaluations_per_second"] for r in ok]),
        "best_rwp": spread([r["best_rwp"] for r in ok]),
        "sites_in_place": spread([r["sites_in_place"] for r in ok if r.get("sites_in_place") is not None]),
        "ga_sites_in_place": spread([r["ga_sites_in_place"] for r in ok if r.get("ga_sites_in_place") is not None]),
        "evaluations": spread([r["evaluations"] for r in ok]),
        "seconds": spread([r["seconds"] for r in ok]),
        "stopped_by": {
            s: sum(r["stopped_by"] == s for r in ok)
            for s in ("solved", "solved after final refinement", "budget", "time")
        },
        "curve_evaluations": success_curve(ok, "evaluations_to_solution", "evaluations") if ok else None,
        "curve_seconds": success_curve(ok, "seconds_to_solution", "seconds") if ok else None,
    }


# ----------------------------------------------------------------------------------------------------------
# Environment


def machine_info() -> dict:
    """CPU, cores and platform of the machine that drives the benchmark."""
    return {
        "cpu_model": provenance.cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": provenance.usable_cores(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "hostname": platform.node(),
    }


def _worker_info() -> dict:
    import numba

    return {
        "pid": os.getpid(),
        "numba_num_threads": int(numba.config.NUMBA_NUM_THREADS),
        "thread_env": {k: os.environ.get(k) for k in WORKER_ENV},
        "cpu_model": provenance.cpu_model(),
        "hostname": platform.node(),
    }


def versions() -> dict:
    """Package versions and the commit of the working tree (:func:`benchmarks.provenance.versions`)."""
    return provenance.versions("dask", "distributed")


# ----------------------------------------------------------------------------------------------------------
# Driver


def make_client(config: BenchmarkConfig):
    """A ``distributed.Client`` on ``config.scheduler``, or on a new local cluster of single-threaded processes."""
    from gasolve.parallel import make_runner

    if config.scheduler:
        return make_runner(config.scheduler).client
    return make_runner("local", config.workers).client  # single-threaded worker processes (gasolve.parallel.WORKER_ENV)


def _options(config: BenchmarkConfig) -> dict:
    return {
        "restart_batch": config.restart_batch,
        "restart_steps": config.restart_steps,
        "restart_judge_rwp": config.restart_judge_rwp,
        "nn_model": config.nn_model,
        "nn_weight": config.nn_weight,
        "ga": dict(config.ga),
    }


def run_benchmark(config: BenchmarkConfig, client=None, json_path: str | Path | None = None, progress=False) -> dict:
    """Run every (problem, method, seed) of ``config`` on Dask and summarise.

    Parameters
    ----------
    config : BenchmarkConfig
    client : distributed.Client, optional
        Where to run; by default :func:`make_client` (closed again at the end).
    json_path : path, optional
        Where to write the result as JSON.
    progress : bool
        Show a rich progress bar over completed runs (one line per run when stderr is not a terminal).

    Returns
    -------
    dict
        ``config``, ``seeds``, ``budgets``, ``versions``, ``machine``, ``workers``, ``runs`` (one dict per run,
        see :func:`run_one`), ``summary`` (problem -> method -> :func:`summarise`), ``started``,
        ``wall_seconds``.
    """
    from distributed import as_completed

    own_client = client is None
    if own_client:
        client = make_client(config)
    started = datetime.datetime.now(datetime.UTC)
    # Other processes on the machine slow the runs (wall time, eval/s, wall-time caps), not their evaluations.
    load_at_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    try:
        # By reference (benchmarks.convergence.run_one), not by value from __main__: a worker then keeps one
        # module, and its problem cache, for all its runs.
        from benchmarks import convergence

        workers = list(client.run(convergence._worker_info).values())
        options = _options(config)
        jobs = [
            (problem, method, seed, config.budget_of(problem, method), float(config.max_seconds[method]))
            for problem, method in config.cells()
            for seed in config.seed_list(problem)
        ]
        # Longest runs first so that the workers finish together; the cost guess only orders the queue.
        futures = [
            client.submit(
                convergence.run_one,
                *job,
                options,
                key=f"{job[0]}-{job[1]}-seed{job[2]}-{os.getpid()}-{id(config)}",
                priority=int(10 * _COST.get((job[1], PROBLEMS[job[0]].p1), 1.0)),
                pure=False,
            )
            for job in jobs
        ]
        identity = {f.key: job for f, job in zip(futures, jobs, strict=True)}
        runs = []
        bar = _progress_bar(len(futures)) if progress and sys.stderr.isatty() else None
        try:
            for future in as_completed(futures):
                try:
                    runs.append(future.result())
                except Exception as error:  # a failed run is recorded, the others go on
                    problem, method, seed, budget, _ = identity[future.key]
                    runs.append(
                        {"problem": problem, "method": method, "seed": seed, "budget": budget, "error": repr(error)}
                    )
                if bar is not None:
                    bar[0].update(bar[1], advance=1, info=_progress_info(runs))
                elif progress:
                    print(f"[{len(runs)}/{len(futures)}] {_progress_info(runs)}", file=sys.stderr, flush=True)
        finally:
            if bar is not None:
                bar[0].stop()
    finally:
        if own_client:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    order = {cell: i for i, cell in enumerate(config.cells())}
    runs.sort(key=lambda r: (order[(r["problem"], r["method"])], r["seed"]))
    summary: dict = {}
    for problem, method in config.cells():
        cell_runs = [r for r in runs if r["problem"] == problem and r["method"] == method]
        summary.setdefault(problem, {})[method] = {"budget": config.budget_of(problem, method), **summarise(cell_runs)}
    result = {
        "benchmark": "convergence",
        "config": _plain(dataclasses.asdict(config)),
        "problems": {
            name: {**dataclasses.asdict(PROBLEMS[name]), "budget": config.budget_of(name)} for name in config.problems
        },
        "seeds": {problem: config.seed_list(problem) for problem in config.problems},
        "versions": versions(),
        "machine": {**machine_info(), "load_average_at_start": load_at_start},
        "workers": workers,
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - t0,
        "summary": summary,
        "runs": runs,
    }
    if json_path is not None:
        write_json(result, json_path)
    return result


def _progress_bar(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    task = bar.add_task("runs", total=total, info="")
    bar.start()
    return bar, task


def _progress_info(runs: list[dict]) -> str:
    last = runs[-1]
    name = f"{last['problem']} {last['method']} seed {last['seed']}"
    if "error" in last:
        return f"{name}: error"
    errors = sum("error" in r for r in runs)
    verdict = "solved" if last["solved"] else f"unsolved ({last['stopped_by']})"
    effort = f"{last['evaluations']:,.0f} evaluations, {last['seconds']:.1f} s"
    return f"last: {name} {verdict} ({effort})" + (f"  ({errors} errors)" if errors else "")


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_json(result: dict, path: str | Path) -> None:
    """Write ``result`` atomically (temporary file, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(result, indent=1, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------------------------------------
# Report


def _count(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def _sites(values: dict | None) -> str:
    if not values:
        return "-"
    return f"{values['median']:g} [{values['p25']:g}-{values['p75']:g}]"


def format_report(result: dict) -> str:
    """Markdown table of the summary: one row per problem and method."""
    header = (
        "| problem | method | budget | solved | success (95% CI) | evaluations to solution: median [IQR] "
        "| seconds to solution: median [IQR] | ERT (evaluations) | eval/s median [IQR] | final Rwp median "
        "| sites in place at the end: median [IQR] |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for problem, methods in result["summary"].items():
        for method, s in methods.items():
            budget = s["budget"]
            lo, hi = s["success_rate_95ci"]
            e, t, r = s["evaluations_to_solution"], s["seconds_to_solution"], s["evaluations_per_second"]
            rate = "-" if s["success_rate"] is None else f"{s['success_rate']:.0%}"
            lines.append(
                f"| {problem} | {method} | {budget:,} | {s['n_solved']}/{s['n_runs']} | {rate} ({lo:.0%}-{hi:.0%}) | "
                + ("-" if e is None else f"{_count(e['median'])} [{_count(e['p25'])}-{_count(e['p75'])}]")
                + " | "
                + ("-" if t is None else f"{_seconds(t['median'])} [{_seconds(t['p25'])}-{_seconds(t['p75'])}]")
                + f" | {_count(s['expected_evaluations_to_solution'])} | "
                + ("-" if r is None else f"{_count(r['median'])} [{_count(r['p25'])}-{_count(r['p75'])}]")
                + " | "
                + ("-" if s["best_rwp"] is None else f"{s['best_rwp']['median']:.4f}")
                + " | "
                + _sites(s.get("sites_in_place"))
                + " |"
            )
    capped = {
        (p, m): s["stopped_by"]["time"]
        for p, methods in result["summary"].items()
        for m, s in methods.items()
        if s["stopped_by"]["time"]
    }
    if capped:
        lines.append("")
        lines.append(
            "runs stopped by the wall-time cap: "
            + ", ".join(f"{p} {m}: {n}" for (p, m), n in capped.items())
            + f" (caps, s: {result['config']['max_seconds']})"
        )
    errors = [r for r in result["runs"] if "error" in r]
    if errors:
        lines.append("")
        lines += [f"error: {r['problem']} {r['method']} seed {r['seed']}: {r['error']}" for r in errors]
    lines.append("")
    lines.append(
        f"{len(result['runs'])} runs in {result['wall_seconds']:.0f} s on {len(result['workers'])} worker(s); "
        f"{result['machine']['cpu_model']}"
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Command line


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _method_values(text: str) -> dict:
    values = {}
    for item in _names(text):
        method, _, value = item.partition("=")
        try:
            values[method] = float(value)
        except ValueError:
            values[method] = None
        if method not in METHODS or values[method] is None:
            raise argparse.ArgumentTypeError(f"expected METHOD=NUMBER with METHOD in {METHODS}, got {item!r}")
    return values


def ga_setting(text: str) -> tuple[str, object]:
    """KEY=VALUE of a [ga] setting; the value read as TOML (a number, true/false, a quoted string)."""
    import tomllib

    key, sep, value = text.partition("=")
    try:
        if not sep or not key.strip():
            raise ValueError
        return key.strip(), tomllib.loads(f"v = {value.strip()}")["v"]
    except (ValueError, tomllib.TOMLDecodeError):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a TOML value, got {text!r}") from None


def _max_seconds(text: str) -> dict:
    return {**DEFAULT_MAX_SECONDS, **_method_values(text)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="runs per problem and method (default 20)")
    parser.add_argument("--p1-seeds", type=int, help="runs per method on the P1 problems (default: --seeds)")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first run (default 0)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    parser.add_argument("--problems", type=_names, default=BenchmarkConfig.problems, help="comma-separated")
    parser.add_argument("--methods", type=_names, default=BenchmarkConfig.methods, help="methods on P-1 problems")
    parser.add_argument("--p1-methods", type=_names, default=("gasolve",), help="methods on P1 (default gasolve)")
    parser.add_argument("--budget", type=int, help="evaluations per run (default: 2e6 for P-1, 1e7 for P1)")
    parser.add_argument(
        "--method-budget",
        type=_method_values,
        default={},
        help="lower evaluation budget for a method's runs, e.g. plain=1000000",
    )
    parser.add_argument(
        "--max-seconds",
        type=_max_seconds,
        default=dict(DEFAULT_MAX_SECONDS),
        help="wall-time cap per run, e.g. plain=30,restarts=60 (default "
        + ",".join(f"{k}={v:g}" for k, v in DEFAULT_MAX_SECONDS.items())
        + ")",
    )
    parser.add_argument("--restart-batch", type=int, default=64, help="random starts refined together (default 64)")
    parser.add_argument("--restart-steps", type=int, default=130, help="L-BFGS steps per restart (default 130)")
    parser.add_argument("--nn", help="selection-network checkpoint for the nn-* methods")
    parser.add_argument("--nn-weight", type=float, default=0.05, help="[nn] weight of the nn-* methods (default 0.05)")
    parser.add_argument(
        "--ga",
        type=ga_setting,
        action="append",
        default=[],
        help="[ga] setting for every GA run, e.g. --ga islands=4 (repeatable)",
    )
    parser.add_argument("--note", action="append", default=[], help="text stored with the results (repeatable)")
    parser.add_argument("--json", default=str(RESULTS / "convergence.json"), help="output JSON path")
    parser.add_argument("--png", help="also draw the figure (benchmarks/plot_convergence.py) to this path")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = BenchmarkConfig(
            problems=args.problems,
            methods=args.methods,
            p1_methods=args.p1_methods,
            seeds=args.seeds,
            p1_seeds=args.seeds if args.p1_seeds is None else args.p1_seeds,
            first_seed=args.first_seed,
            budget=args.budget,
            method_budgets={k: int(v) for k, v in args.method_budget.items()},
            max_seconds=args.max_seconds,
            restart_batch=args.restart_batch,
            restart_steps=args.restart_steps,
            nn_model=str(Path(args.nn).resolve()) if args.nn else None,
            nn_weight=args.nn_weight,
            workers=args.workers,
            scheduler=args.scheduler,
            ga=dict(args.ga),
            notes=tuple(args.note),
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = run_benchmark(config, json_path=args.json, progress=not args.quiet)
    print(format_report(result))
    print(f"\nwrote {args.json}")
    if args.png:
        from benchmarks.plot_convergence import plot

        plot(result, args.png)
        print(f"wrote {args.png}")
    return 1 if any("error" in r for r in result["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
