"""How fast the GA's islands collapse onto one model: per-generation diagnostics of one run (issue 15).

Runs the search of a prepared case folder (``config.toml`` with ``[reference]``, e.g. a structure folder that
``benchmarks.large`` wrote) in this process and records after every generation, per island: the best and median
Rwp, the spread of its members (median over members of the largest fractional-coordinate difference from the
island's best: about 0.5 for random models, near 0 for copies of one model), and how many of the reference's
atoms the island's best has within 0.5 Å; every second generation, how many of the island pairs hold the same
best model (largest distance under the group's normaliser below 0.3 Å, :func:`gasolve.compare.compare_structures`).

    python -m benchmarks.island_collapse /tmp/large_tune/mp-767740 --seed 1 --max-evaluations 4e5 \
        [--ga niche_min_sites=0] --json benchmarks/results/island-collapse-VP3O9-seed1.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

from benchmarks import provenance

SAME_MODEL = 0.3  # Å
RIGHT = 0.5  # Å


def spread(population: np.ndarray) -> float:
    """Median over the members after the first of their largest periodic gene difference from the first."""
    delta = np.asarray(population[1:]) - np.asarray(population[0])
    delta -= np.round(delta)
    return float(np.median(np.abs(delta).max(axis=1))) if len(delta) else 0.0


def same_pairs(template, project, bests: list[np.ndarray]) -> int:
    """Island pairs whose best models are the same structure (every atom within SAME_MODEL Å)."""
    from gasolve.compare import compare_structures
    from gasolve.errors import InputError
    from gasolve.solve import model_structure

    models = [model_structure(template, project(b)) for b in bests]
    count = 0
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            try:
                count += int(compare_structures(models[i], models[j]).site_distances.max() < SAME_MODEL)
            except InputError:
                continue
    return count


def run(folder: Path, seed: int, budget: float, ga: dict) -> dict:
    """The per-generation rows of one run of ``folder``'s config with ``[ga]`` changes ``ga``."""
    from gasolve.config import load_run_config
    from gasolve.pipeline import prepare
    from gasolve.solve import iterate

    config = load_run_config(folder / "config.toml")
    settings = config.ga.replace(seed=seed, max_evaluations=int(budget), light_atom_evaluations=0, **ga)
    config = dataclasses.replace(config, ga=settings)
    here = Path.cwd()
    os.chdir(folder)  # the config's relative paths (pattern, reference)
    try:
        setup = prepare(config)
    finally:
        os.chdir(here)
    scorer, judge = setup.scorer, setup.judge

    def project(genome):
        return scorer.project(np.asarray(genome)[None].reshape(1, -1, 3))[0]

    rows, started = [], time.perf_counter()
    for record in iterate(scorer, settings, None, judge):
        state = record.state
        bests = [np.asarray(island.population[0]) for island in state.islands]
        rows.append(
            {
                "generation": state.generation,
                "evaluations": round(state.evaluations),
                "best_rwp": state.best_rwp,
                "search_restarts": state.search_restarts,
                "island_best_rwp": [float(island.rwp[0]) for island in state.islands],
                "island_median_rwp": [float(np.median(island.rwp)) for island in state.islands],
                "island_spread": [spread(island.population) for island in state.islands],
                "island_atoms_right": [int(np.sum(judge.distances(project(b)) <= RIGHT)) for b in bests],
                "same_pairs": same_pairs(setup.template, project, bests) if state.generation % 2 == 0 else None,
                "solved": record.solved,
            }
        )
        if record.solved:
            break
    return {
        "folder": str(folder),
        "seed": seed,
        "budget": budget,
        "ga": ga,
        "n_sites": scorer.problem.n_sites,
        "reference_atoms": len(judge.distances(project(bests[0]))),
        "seconds": time.perf_counter() - started,
        "rows": rows,
    }


def _value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="case folder with config.toml and [reference]")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-evaluations", type=float, default=4e5)
    parser.add_argument("--ga", action="append", default=[], help="[ga] KEY=VALUE (TOML value), repeatable")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args(argv)
    changes = {}
    for item in args.ga:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--ga {item!r}: expected KEY=VALUE")
        changes[key.strip()] = _value(value.strip())
    args.ga = changes
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args.folder, args.seed, args.max_evaluations, args.ga)
    result["versions"] = provenance.versions("numpy")
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    last = result["rows"][-1]
    print(
        f"{len(result['rows'])} generations, best Rwp {last['best_rwp']:.4f}, solved {last['solved']}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
