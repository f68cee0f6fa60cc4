"""Does the per-atom network help the GA? Which atoms the relocation scan moves, on K4SnO4 in P1.

Usage::

    python -m benchmarks.peratom_ga rank --runs GA.json... [--model PATH] [--share 0.34] [--json PATH]
    python -m benchmarks.peratom_ga scan --runs GA.json... [--models 12] [--workers 2] [--json PATH]
    python -m benchmarks.peratom_ga transfer --harvest DIR [--config examples/K4SnO4.toml] [--models N] [--json PATH]
    python -m benchmarks.peratom_ga ga [--model PATH] [--seeds 100 101 ...] [--methods all,network,oracle,random]
        [--share 0.34] [--budget 2e6] [--max-seconds 300] [--workers 2] [--case CONFIG.toml ...] [--json PATH]

The problem is ``K4SnO4-P1`` of benchmarks/convergence.py (the K4SnO4 cell and pattern solved in P1, 18
independent atoms, one held at the origin); K4SnO4 is in no training structure of the shipped network.

``rank``: the stuck models the relocation scans of ``ga`` runs were given (every method records them, up to
``MAX_KEPT_MODELS`` per run). For each, every atom's distance to the truth after the best alignment (labels at
0.3 Å) and how each ranker orders the movable atoms: the within-model ROC-AUC of in-place atoms, and the share of
the misplaced atoms among the ``ceil(share · 17)`` atoms each ranker would scan (the recall that matters: a
misplaced atom left out of the scan is not fixed by it). Rankers: the network, single features (``corr``,
``omit``, ``rho_2fofc``), random.

``transfer``: the network on every model (or ``--models`` of them) of a ``gasolve harvest`` data set of a
structure outside its training set (K4SnO4 in P-1 by default): pooled and within-model ROC-AUC at 0.3 and 0.1 Å.

``scan``: up to ``--models`` of those stuck models that have misplaced atoms, each scanned once by every method
below (grid shifted by the model's seed): whether the candidate of lowest Rwp has more atoms in place than the
model, and the evaluations the scan cost (grid and refinement of its candidates). ``lightest`` (the same share,
lowest atomic number first) joins the methods there, the free heuristic the network has to beat.

``ga``: whole runs, stopped at the first solution (judge: every site within 0.3 Å), the methods:

- ``all``: gasolve's default (the scan moves every movable atom; a ranker that rates all atoms alike with share 1,
  so that its scanned models are recorded too);
- ``network``: the scan moves the ``share`` of the movable atoms the network rates least likely in place;
- ``oracle``: the same share chosen by the true distances (farthest first): the ceiling of the approach;
- ``random``: the same share drawn at random: what scanning fewer atoms buys with no information.

``lightest`` may be asked for too. ``--case`` replaces K4SnO4 in P1 by other problems: ``gasolve run`` configs
with a ``[reference]`` (the case folders of benchmarks/large.py with ``--stop solved`` are such), each solved in
its own group with its own ``[ga]`` settings, every method on every seed.

Per run: solved, evaluations and seconds to solution, ranker seconds (inference included in the wall time).
Runs go to a Dask LocalCluster of single-threaded workers (as benchmarks/convergence.py); the JSON is rewritten
atomically after every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROBLEM = "K4SnO4-P1"
METHODS = ("all", "network", "oracle", "random")
SCAN_METHODS = (*METHODS, "lightest")
LABEL_RADIUS = 0.3
MAX_KEPT_MODELS = 100  # scanned models kept per run for ``rank``


def _true_distances(problem, frac: np.ndarray) -> np.ndarray:
    """Per model site distance (Å) to the reference after the best alignment, frac (n, n_sites, 3) -> (n, n_sites)."""
    from gasolve.compare import site_distances_batch

    template = problem.setup.template
    reference = problem.judge.reference
    elements = [site.element for site in template.sites]
    return site_distances_batch(np.asarray(frac) % 1.0, reference, template.space_group, template.cell, elements)


class TimedRanker:
    """A ranker callable that adds up the seconds it takes and keeps the models it was asked about."""

    def __init__(self, ranker):
        self.ranker = ranker
        self.seconds = 0.0
        self.models: list[np.ndarray] = []

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        out = self.ranker(frac)
        self.seconds += time.perf_counter() - started
        self.models.append(np.array(frac, dtype=float))
        return out


class NoRanker:
    """Every atom equal: with ``scan_share`` 1 the scan moves every movable atom, as gasolve does by default."""

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        return np.zeros(len(frac))


class OracleRanker:
    """In-place score from the true distances: 1 / (1 + d), so that the farthest atoms are scanned first."""

    def __init__(self, problem):
        self.problem = problem

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + _true_distances(self.problem, np.asarray(frac)[None])[0])


class LightestRanker:
    """Lightest atoms first: the score is the atomic number, ties broken at random (a free heuristic)."""

    def __init__(self, elements, seed: int):
        from nnselect.peratom.features import atomic_numbers

        self.z = atomic_numbers(elements).astype(float)
        self.rng = np.random.default_rng([seed, 13])

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        return self.z + 0.5 * self.rng.random(len(self.z))


class RandomRanker:
    """Uniform random scores from a seeded generator."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng([seed, 7])

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        return self.rng.random(len(frac))


def rank_benchmark(runs_json: list[Path], model: Path, share: float) -> dict:
    """The ``rank`` measurement (module docstring) on the models the GA runs of ``runs_json`` scanned."""
    from benchmarks.convergence import build_problem
    from gasolve.ga.atom_selection import scan_sites
    from gasolve.solve import build_evaluator
    from nnselect.peratom.features import SCALARS, AtomFeatures
    from nnselect.peratom.ranker import AtomRanker
    from nnselect.peratom.train import roc_auc

    problem = build_problem(PROBLEM)
    models = [np.array(m) for path in runs_json for run in json.loads(path.read_text())["runs"]
              for m in run["scanned_models"]]  # fmt: skip
    frac = np.unique(np.round(np.array(models), 6), axis=0)
    distances = _true_distances(problem, frac)
    started = time.perf_counter()
    features = AtomFeatures(problem.scorer.problem)(frac)
    feature_seconds = time.perf_counter() - started
    ranker = AtomRanker.load(model)
    started = time.perf_counter()
    network = ranker.predict_features(features)
    inference_seconds = time.perf_counter() - started
    movable = build_evaluator(problem.scorer, problem.settings).movable
    rng = np.random.default_rng(1)
    scores = {
        "network": network,
        "random": rng.random(network.shape),
        **{f"feature:{name}": features[..., SCALARS.index(name)] for name in ("corr", "omit", "z", "share")},
    }
    labels = distances <= LABEL_RADIUS
    wrong_counts = (~labels[:, movable]).sum(axis=1)
    out = {
        "n_models": len(frac),
        "share": share,
        "scanned_per_model": len(scan_sites(np.zeros(frac.shape[1]), movable, share)),
        "misplaced_per_model": _spread(wrong_counts.tolist()),
        "seconds_per_model": {"features": feature_seconds / len(frac), "network": inference_seconds / len(frac)},
        "rankers": {},
    }
    for name, score in scores.items():
        recall, aucs = [], []
        for m in range(len(frac)):
            wrong = set(movable[~labels[m, movable]].tolist())
            if not wrong:
                continue
            chosen = set(scan_sites(score[m], movable, share).tolist())
            recall.append(len(wrong & chosen) / len(wrong))
            if len(wrong) < len(movable):
                aucs.append(roc_auc(labels[m, movable], score[m, movable]))
        out["rankers"][name] = {
            "within_model_auc": float(np.mean(aucs)) if aucs else None,
            "misplaced_scanned": float(np.mean(recall)) if recall else None,
            "all_misplaced_scanned": float(np.mean(np.array(recall) == 1.0)) if recall else None,
        }
    return out


@functools.cache
def case_problem(config: str):
    """The problem of a ``gasolve run`` config with a ``[reference]`` (``--case``), warmed up; cached per process."""
    from benchmarks.convergence import ready_problem
    from gasolve import pipeline
    from gasolve.config import load_run_config

    loaded = load_run_config(Path(config))
    if loaded.reference is None:
        raise ValueError(f"{config}: the config has no [reference]; the judge and the oracle need one")
    return ready_problem(Path(config).parent.name, pipeline.prepare(loaded))


def _problem(case: str | None):
    """``--case``'s problem, or K4SnO4 in P1."""
    from benchmarks.convergence import build_problem

    return case_problem(case) if case else build_problem(PROBLEM)


def _ranker(method: str, problem, model: str, seed: int):
    """The atom ranker of ``method`` (module docstring) for ``problem``; None for "all" (every atom scanned)."""
    if method == "network":
        from nnselect.peratom.ranker import AtomRanker

        return AtomRanker.load(model).bind(problem.scorer.problem)
    if method == "oracle":
        return OracleRanker(problem)
    if method == "random":
        return RandomRanker(seed)
    if method == "lightest":
        return LightestRanker(problem.scorer.problem.elements, seed)
    if method == "all":
        return None
    raise ValueError(f"unknown method {method!r}")


def run_one(
    method: str, seed: int, share: float, budget: int, max_seconds: float, model: str, case: str | None = None
) -> dict:
    """One GA run of ``method`` (module docstring) with ``seed`` on ``case`` (K4SnO4 in P1 if None); plain data."""
    import numba

    from benchmarks.convergence import _run_ga
    from gasolve.ga.atom_selection import AtomSelectionSettings

    numba.set_num_threads(1)
    problem = _problem(case)
    ranker = _ranker(method, problem, model, seed)
    timed = TimedRanker(ranker if ranker is not None else NoRanker())
    setup = problem.setup
    selection = AtomSelectionSettings(Path(model), scan_share=share if ranker is not None else 1.0)
    setup = dataclasses.replace(setup, config=dataclasses.replace(setup.config, selection=selection), ranker=timed)
    spec = dataclasses.replace(problem, setup=setup)
    settings = problem.settings.replace({}, seed=seed, max_evaluations=budget)
    outcome = _run_ga(spec, settings, max_seconds)
    return {
        "problem": problem.name,
        "case": case,
        "method": method,
        "seed": seed,
        "share": selection.scan_share,
        **outcome,
        "ranker_seconds": timed.seconds if ranker is not None else 0.0,
        "ranker_calls": len(timed.models),
        "scanned_models": [m.round(6).tolist() for m in timed.models[:MAX_KEPT_MODELS]],
    }


def transfer_benchmark(harvest: Path, model: Path, max_models: int, config: Path) -> dict:
    """The network on a ``gasolve harvest`` data set of a structure it was not trained on (every model its GA runs
    evaluated, labelled there): pooled and within-model ROC-AUC at 0.3 and 0.1 Å, against single features."""
    from gasolve import pipeline
    from gasolve.config import load_run_config
    from nnselect.peratom.features import SCALARS, AtomFeatures
    from nnselect.peratom.ranker import AtomRanker
    from nnselect.peratom.train import evaluate_scores

    frac, distances = [], []
    for shard in sorted(harvest.glob("shard-*.npz")):
        with np.load(shard) as data:
            frac.append(data["frac"])
            distances.append(data["distances"])
    frac, distances = np.concatenate(frac).astype(float), np.concatenate(distances)
    keep = np.sort(np.random.default_rng(0).permutation(len(frac))[:max_models])
    frac, distances = frac[keep], distances[keep]
    problem = pipeline.prepare(load_run_config(config)).scorer.problem
    started = time.perf_counter()
    features = AtomFeatures(problem)(frac)
    feature_seconds = time.perf_counter() - started
    network = AtomRanker.load(model).predict_features(features)
    model_of_atom = np.repeat(np.arange(len(frac)), frac.shape[1])
    out = {"models": len(frac), "sites": frac.shape[1], "feature_seconds_per_model": feature_seconds / len(frac)}
    for radius in (0.3, 0.1):
        labels = (distances <= radius).ravel()
        result = {"network": evaluate_scores(labels, network.ravel(), 0.5, model_of_atom)}
        for name in ("corr", "omit", "z", "share", "rwp"):
            score = features[..., SCALARS.index(name)].ravel()
            result[f"feature:{name}"] = evaluate_scores(labels, score if name != "rwp" else -score, None, model_of_atom)
        out[f"radius_{radius}"] = result
    return out


def scan_one(frac: list, seed: int, method: str, share: float, model: str) -> dict:
    """One relocation scan of a recorded stuck model (n_sites, 3) with the atoms ``method`` chooses: the most
    atoms in place among its refined candidates, against the model's own, and the evaluations it cost."""
    import numba

    from benchmarks.convergence import build_problem
    from gasolve.solve import build_evaluator

    numba.set_num_threads(1)
    problem = build_problem(PROBLEM)
    ranker = _ranker(method, problem, model, seed)
    used_share = share if ranker is not None else 1.0
    evaluate = build_evaluator(problem.scorer, problem.settings, atom_ranker=ranker, scan_share=used_share)
    genome = np.asarray(frac, dtype=float).reshape(-1)
    before = int(np.sum(_true_distances(problem, genome.reshape(1, -1, 3))[0] <= LABEL_RADIUS))
    started = time.perf_counter()
    done = evaluate.relocation_scan(genome, np.random.default_rng([seed, 11]))
    seconds = time.perf_counter() - started
    after = _true_distances(problem, done.genomes.reshape(len(done.genomes), -1, 3)) <= LABEL_RADIUS
    best = int(np.argmin(done.rwp))
    return {
        "method": method,
        "seed": seed,
        "in_place_before": before,
        "in_place_best_candidate": int(after.sum(axis=1).max()),
        "in_place_lowest_rwp": int(after[best].sum()),
        "evaluations": float(done.evaluations),
        "seconds": seconds,
    }


def scan_benchmark(runs_json: list[Path], model: Path, share: float, n_models: int, workers: int) -> dict:
    """Scans of up to ``n_models`` recorded stuck models with misplaced atoms, every method on each."""
    from dask.distributed import Client, LocalCluster

    from benchmarks.convergence import build_problem
    from gasolve.parallel import worker_environment

    problem = build_problem(PROBLEM)
    models = [np.array(m) for path in runs_json for run in json.loads(path.read_text())["runs"]
              for m in run["scanned_models"]]  # fmt: skip
    frac = np.unique(np.round(np.array(models), 6), axis=0)
    in_place = (_true_distances(problem, frac) <= LABEL_RADIUS).sum(axis=1)
    stuck = frac[in_place < frac.shape[1]]
    order = np.random.default_rng(0).permutation(len(stuck))[:n_models]
    with worker_environment(), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster:
        with Client(cluster) as client:
            futures = [
                client.submit(scan_one, stuck[i].tolist(), int(i), method, share, str(model), pure=False)
                for i in order
                for method in SCAN_METHODS
            ]
            scans = client.gather(futures)
    summary = {}
    for method in SCAN_METHODS:
        rows = [r for r in scans if r["method"] == method]
        gained = [r["in_place_lowest_rwp"] > r["in_place_before"] for r in rows]
        summary[method] = {
            "scans": len(rows),
            "gained_an_atom": int(sum(gained)),
            "evaluations": _spread([r["evaluations"] for r in rows]),
            "evaluations_per_gain": sum(r["evaluations"] for r in rows) / max(sum(gained), 1),
        }
    return {"scans": scans, "summary": summary}


def _spread(values: list[float]) -> dict | None:
    if not values:
        return None
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {"min": q[0], "p25": q[1], "median": q[2], "p75": q[3], "max": q[4], "n": len(values)}


def summarise(runs: list[dict]) -> dict:
    """Per problem (when there are several) and per method: solved, evaluations and seconds to solution (solved
    runs), ERT, ranker share of wall time."""
    problems = sorted({r.get("problem", PROBLEM) for r in runs})
    if len(problems) > 1:
        return {name: _summarise_methods([r for r in runs if r.get("problem", PROBLEM) == name]) for name in problems}
    return _summarise_methods(runs)


def _summarise_methods(runs: list[dict]) -> dict:
    out = {}
    for method in SCAN_METHODS:
        rows = [r for r in runs if r["method"] == method]
        if not rows:
            continue
        solved = [r for r in rows if r["solved"]]
        spent = sum(r["evaluations"] for r in rows)
        out[method] = {
            "runs": len(rows),
            "solved": len(solved),
            "evaluations_to_solution": _spread([r["evaluations_to_solution"] for r in solved]),
            "seconds_to_solution": _spread([r["seconds_to_solution"] for r in solved]),
            "ert": spent / len(solved) if solved else None,
            "scans": _spread([r["scans"] for r in rows]),
            "ranker_share_of_wall": sum(r["ranker_seconds"] for r in rows) / max(sum(r["seconds"] for r in rows), 1e-9),
        }
    return out


def ga_benchmark(
    model: Path,
    methods,
    seeds,
    share: float,
    budget: int,
    max_seconds: float,
    workers: int,
    cases=(None,),
    save=None,
) -> dict:
    """The ``ga`` measurement on a Dask LocalCluster of ``workers`` single-threaded processes; ``save(result)`` is
    called after every finished run. A run that raises is recorded with its error, the others go on."""
    from dask.distributed import Client, LocalCluster, as_completed

    from gasolve.parallel import worker_environment

    runs: list[dict] = []
    with worker_environment(), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster:
        with Client(cluster) as client:
            futures = {
                client.submit(run_one, method, seed, share, budget, max_seconds, str(model), case, pure=False): (
                    case,
                    method,
                    seed,
                )
                for case in cases
                for seed in seeds
                for method in methods
            }
            for future in as_completed(futures):
                case, method, seed = futures[future]
                try:
                    run = future.result()
                except Exception as error:  # reported, never fatal to the other runs
                    run = {"case": case, "method": method, "seed": seed, "error": repr(error)[:400]}
                runs.append(run)
                print(f"{run.get('problem', case)} {method} seed {seed}: {_line(run)}", flush=True)
                if save is not None:
                    save({"runs": runs, "summary": summarise([r for r in runs if "error" not in r])})
    return {"runs": runs, "summary": summarise([r for r in runs if "error" not in r])}


def _line(run: dict) -> str:
    if "error" in run:
        return f"error {run['error']}"
    verdict = "solved" if run["solved"] else "not solved"
    return f"{verdict}, {run['evaluations']:.0f} evaluations, {run['seconds']:.0f} s, {run['scans']} scans"


def main(argv: list[str] | None = None) -> int:
    from nnselect.peratom.ranker import SHIPPED

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("rank", "ga", "scan", "transfer"))
    parser.add_argument("--harvest", type=Path, help="transfer: a gasolve harvest folder")
    parser.add_argument("--config", type=Path, default=REPO / "examples" / "K4SnO4.toml", help="transfer: its config")
    parser.add_argument("--model", type=Path, default=SHIPPED)
    parser.add_argument("--runs", type=Path, nargs="+", help="rank, scan: JSON files of ga runs")
    parser.add_argument("--models", type=int, default=12, help="scan: stuck models scanned (default 12)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(100, 106)))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--share", type=float, default=0.34)
    parser.add_argument("--budget", type=float, default=2e6)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--case", type=Path, nargs="+", help="ga: gasolve run configs with a [reference]")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.time()
    if args.what == "rank":
        if not args.runs:
            parser.error("rank needs --runs (JSON files written by the ga measurement)")
        result = rank_benchmark(args.runs, args.model, args.share)
    elif args.what == "transfer":
        if not args.harvest:
            parser.error("transfer needs --harvest")
        result = transfer_benchmark(args.harvest, args.model, args.models, args.config)
    elif args.what == "scan":
        if not args.runs:
            parser.error("scan needs --runs (JSON files written by the ga measurement)")
        result = scan_benchmark(args.runs, args.model, args.share, args.models, args.workers)
    else:
        methods = tuple(m for m in args.methods.split(",") if m)
        unknown = sorted(set(methods) - set(SCAN_METHODS))
        if unknown:
            parser.error(f"--methods: unknown {', '.join(unknown)}; expected some of {', '.join(SCAN_METHODS)}")
        cases = tuple(str(c.resolve()) for c in args.case) if args.case else (None,)
        result = ga_benchmark(
            args.model,
            methods,
            args.seeds,
            args.share,
            int(args.budget),
            args.max_seconds,
            args.workers,
            cases,
            save=lambda partial: _write(args, started, partial),
        )
    result = _write(args, started, result)
    shown = result.get("summary", result.get("rankers", {k: v for k, v in result.items() if k.startswith("radius")}))
    print(json.dumps(shown, indent=1, default=float))
    return 0


def _write(args: argparse.Namespace, started: float, result: dict) -> dict:
    """The result with its provenance, written atomically to ``--json`` when given; returned."""
    from gasolve.io.atomic import atomic_write

    result = {
        "benchmark": f"peratom_ga {args.what}",
        "command": " ".join(sys.argv),
        "model": str(args.model),
        "problem": PROBLEM if not args.case else [str(c) for c in args.case],
        "wall_seconds": round(time.time() - started, 1),
        **result,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.json, json.dumps(result, indent=1, default=float))
    return result


if __name__ == "__main__":
    raise SystemExit(main())
