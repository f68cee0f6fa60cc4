"""Learn the Wyckoff prior of :mod:`gasolve.hypotheses.prior` from ../shared/data/mp-structures and measure it.

Data: the 36,737 Materials Project structures of ../shared/data/mp-structures. spglib (symprec 0.1, as index.csv;
orbits from the idealised standard cell, :func:`benchmarks.z_window.true_assignment`) gives each structure's space
group, conventional standard cell, Z and Wyckoff assignment; ``--extract`` caches them (one JSON line per
structure, about 25 minutes on one core).

Split, by crc32(material_id) % 5 as in benchmarks/z_window.py: 0 = test (held out: never counted, only reported),
1 = validation (smoothing tuned on it with a prior counted on 2-4), 1-4 = train (the shipped prior counts all of
it with the tuned smoothing).

Evaluation (with Z known, the true one): per structure, the assignments of the enumerator
(:func:`gasolve.hypotheses.enumerate_assignments` with the cell's distance filter), normalizer-equivalent ones
merged (:func:`gasolve.hypotheses.deduplicate` with :func:`gasolve.hypotheses.normalizer_canonicaliser` of the
actual cell), up to ``--window`` of them; the rank of the true assignment's class (1 = tried first) under the
prior (:func:`gasolve.hypotheses.prior.order_by_prior`), under the enumeration's default order (fewest free
parameters first) and its expectation under a uniformly random order, (n + 1) / 2. Structures with at most 20
atoms in the primitive cell (MP-20's rule), a seeded sample of the test split.

    python -m benchmarks.wyckoff_prior --extract --build --validate 300 --evaluate 600
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import platform
import random
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.z_window import DATA, crystal_system, true_assignment

REPO = Path(__file__).resolve().parents[1]
PRIOR = REPO / "gasolve" / "hypotheses" / "data" / "wyckoff_prior.json.gz"
RESULTS = REPO / "benchmarks" / "results" / "wyckoff_prior.json"
CACHE = Path.home() / ".cache" / "gasolve" / "mp_wyckoff_assignments.jsonl.gz"
TEST_SAMPLE = REPO / "tests" / "data" / "derived" / "wyckoff_prior_heldout.json"
GRID = {"alpha": (0.3, 1.0, 3.0, 10.0, 30.0), "beta": (0.01, 0.1, 1.0), "gamma": (1.0, 3.0, 10.0, 30.0, 100.0)}


def split(material_id: str) -> str:
    """ "test", "validation" or "train" (module docstring)."""
    bucket = zlib.crc32(material_id.encode()) % 5
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


# --------------------------------------------------------------------------------------------------------------
# extraction


def extract(cache: Path) -> None:
    """spglib's space group, cell, Z and assignment of every structure, one JSON line each, to ``cache``."""
    import pandas as pd
    from pymatgen.core import Structure

    from gasolve.hypotheses import parse_composition

    cache.parent.mkdir(parents=True, exist_ok=True)
    started, n = time.perf_counter(), 0
    with gzip.open(cache, "wt") as handle:
        for chunk in pd.read_csv(DATA / "structures.csv.gz", usecols=["material_id", "cif"], chunksize=2000):
            for row in chunk.itertuples():
                record = {"material_id": row.material_id}
                try:
                    structure = Structure.from_str(row.cif, fmt="cif")
                    number, parameters, sites, dataset = true_assignment(structure)
                    composition = parse_composition(structure.composition.reduced_formula)
                    record.update(
                        space_group=int(number),
                        cell=[round(float(p), 5) for p in parameters],
                        composition=composition,
                        z=len(dataset.std_types) // sum(composition.values()),
                        n_primitive=len(structure),
                        sites=[[e, label, c] for (e, label), c in sorted(sites.items())],
                    )
                except Exception as error:
                    record["error"] = repr(error)[:200]
                handle.write(json.dumps(record) + "\n")
                n += 1
            print(f"{n} structures, {time.perf_counter() - started:.0f} s", flush=True)


def load_records(cache: Path) -> list[dict]:
    with gzip.open(cache, "rt") as handle:
        return [json.loads(line) for line in handle]


def truth_sites(record: dict) -> list[tuple[str, str]]:
    return [(e, label) for e, label, count in record["sites"] for _ in range(count)]


def consistent(record: dict) -> bool:
    """The assignment fills Z formula units exactly (multiplicities from gasolve's Wyckoff tables)."""
    from gasolve.hypotheses import wyckoff_slots

    if "error" in record or record["z"] < 1:
        return False
    multiplicity = {s.label: s.multiplicity for s in wyckoff_slots(record["space_group"])}
    filled = defaultdict(int)
    for element, label in truth_sites(record):
        if label not in multiplicity:
            return False
        filled[element] += multiplicity[label]
    return dict(filled) == {e: n * record["z"] for e, n in record["composition"].items()}


# --------------------------------------------------------------------------------------------------------------
# learning


def electronegativities(records: list[dict]) -> dict[str, float]:
    """Pauling electronegativity (pymatgen) of every element in the records; NaN (noble gases) left out."""
    import warnings

    from pymatgen.core import Element

    values = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for element in sorted({e for r in records for e in r["composition"]}):
            x = float(Element(element).X)
            if np.isfinite(x):
                values[element] = x
    return values


def fit(records: list[dict], smoothing, label_maps: dict, element_order=None, meta: dict | None = None):
    from gasolve.hypotheses import wyckoff_slots
    from gasolve.hypotheses.prior import WyckoffPrior

    groups = sorted({r["space_group"] for r in records})
    return WyckoffPrior.fit(
        ((r["space_group"], r["composition"], truth_sites(r)) for r in records),
        {g: label_maps[g] for g in groups},
        {g: len(wyckoff_slots(g)) for g in groups},
        smoothing,
        element_order,
        meta,
    )


def all_label_maps(groups, cache: Path | None = None) -> dict[int, list[dict]]:
    """:func:`gasolve.hypotheses.prior.generic_label_maps` of every group (about 1 s each), kept in ``cache``."""
    from gasolve.hypotheses.prior import generic_label_maps

    known = {int(k): v for k, v in json.loads(cache.read_text()).items()} if cache and cache.exists() else {}
    maps = {g: known[g] if g in known else generic_label_maps(g) for g in sorted(groups)}
    if cache:
        cache.write_text(json.dumps({**known, **maps}))
    return maps


# --------------------------------------------------------------------------------------------------------------
# candidates and ranks


def candidates(record: dict, window: int) -> dict:
    """The distinct assignments of a record (module docstring): canonical element keys in default order, the
    index of the true one (None when the enumerator does not yield it), whether the window was exceeded."""
    from gasolve.crystal.cell import UnitCell
    from gasolve.hypotheses import deduplicate, enumerate_assignments, normalizer_canonicaliser
    from gasolve.hypotheses.assignments import Assignment

    number, composition, z = record["space_group"], record["composition"], record["z"]
    cell = UnitCell(*record["cell"])
    canonical = normalizer_canonicaliser(number, cell)
    distinct = deduplicate(enumerate_assignments(composition, z, number, cell), canonical)
    listed = list(itertools.islice(distinct, window + 1))
    truth = canonical(Assignment(z, tuple(sorted(truth_sites(record))), 0))
    keys = [canonical(a) for a in listed[:window]]
    return {
        "assignments": listed[:window],
        "truth": keys.index(truth) if truth in keys else None,
        "over_window": len(listed) > window,
    }


def prior_rank(prior, record: dict, assignments: list, truth: int) -> int:
    """1-based position of the truth after a stable sort by decreasing prior score (what order_by_prior yields)."""
    scores = prior.window_scores(record["space_group"], record["composition"], assignments)
    target = scores[truth]
    return 1 + sum(1 for i, s in enumerate(scores) if s > target or (s == target and i < truth))


def pattern_table(prior, record: dict, assignments: list) -> list[str]:
    return [prior.pattern(record["space_group"], record["composition"], a.sites) for a in assignments]


def ranks_from_patterns(prior, record: dict, patterns: list[str], truth: int) -> int:
    from gasolve.hypotheses.prior import stoichiometry_key

    key = stoichiometry_key(record["composition"])
    cache: dict[str, float] = {}
    scores = []
    for p in patterns:
        if p not in cache:
            cache[p] = prior.log_score_pattern(record["space_group"], key, p)
        scores.append(cache[p])
    target = scores[truth]
    return 1 + sum(1 for i, s in enumerate(scores) if s > target or (s == target and i < truth))


def summarise(rows: list[dict]) -> dict:
    ranked = [r for r in rows if r.get("rank_prior") is not None]
    if not ranked:
        return {"n": len(rows), "n_ranked": 0}
    prior = np.array([r["rank_prior"] for r in ranked], float)
    default = np.array([r["rank_default"] for r in ranked], float)
    uniform = np.array([(r["n_distinct"] + 1) / 2 for r in ranked], float)
    return {
        "n": len(rows),
        "n_ranked": len(ranked),
        "truth_not_enumerated": sum(1 for r in rows if r.get("truth_missing")),
        "over_window": sum(1 for r in rows if r.get("over_window")),
        "median_distinct": float(np.median([r["n_distinct"] for r in ranked])),
        "prior": {
            "first": round(float(np.mean(prior == 1)), 4),
            "top10": round(float(np.mean(prior <= 10)), 4),
            "median_rank": float(np.median(prior)),
        },
        "default_order": {
            "first": round(float(np.mean(default == 1)), 4),
            "top10": round(float(np.mean(default <= 10)), 4),
            "median_rank": float(np.median(default)),
        },
        "uniform_expected": {"median_rank": float(np.median(uniform))},
        "geometric_mean_saving": {
            "prior_vs_uniform": round(float(np.exp(np.mean(np.log(uniform) - np.log(prior)))), 3),
            "prior_vs_default": round(float(np.exp(np.mean(np.log(default) - np.log(prior)))), 3),
            "default_vs_uniform": round(float(np.exp(np.mean(np.log(uniform) - np.log(default)))), 3),
        },
        "exact_pattern_seen": {
            "share": round(float(np.mean([r["seen"] for r in ranked])), 4),
            "first_when_seen": _share([r["rank_prior"] == 1 for r in ranked if r["seen"]]),
            "first_when_unseen": _share([r["rank_prior"] == 1 for r in ranked if not r["seen"]]),
            "median_rank_when_unseen": float(np.median([r["rank_prior"] for r in ranked if not r["seen"]] or [0])),
        },
    }


def _share(values: list[bool]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


# --------------------------------------------------------------------------------------------------------------
# stages


def sample(records: list[dict], part: str, n: int, seed: int) -> list[dict]:
    pool = [r for r in records if split(r["material_id"]) == part and r["n_primitive"] <= 20 and consistent(r)]
    random.Random(seed).shuffle(pool)
    return pool[:n]


def tune(records, label_maps, n_validation: int, seed: int, window: int) -> tuple:
    """Grid search of the smoothing and of the element order within equal counts (none: fully anonymous, or
    Pauling electronegativity) on the validation split, with a prior counted on the rest of train: the point with
    the largest geometric-mean saving against uniform order, ties broken by the share ranked first."""
    from gasolve.hypotheses.prior import Smoothing

    learn = [r for r in records if split(r["material_id"]) == "train" and consistent(r)]
    validation = []
    for record in sample(records, "validation", n_validation, seed):
        found = candidates(record, window)
        if found["truth"] is not None:
            validation.append((record, found))
    orders = {"anonymous": {}, "electronegativity": electronegativities(records)}
    results = []
    for order_name, order in orders.items():
        prior = fit(learn, Smoothing(), label_maps, order)
        table = [(r, pattern_table(prior, r, f["assignments"]), f["truth"]) for r, f in validation]
        uniform = np.array([(len(p) + 1) / 2 for _, p, _ in table])
        for alpha, beta, gamma in itertools.product(*GRID.values()):
            smoothed = prior.with_smoothing(Smoothing(alpha, beta, gamma))
            ranks = np.array([ranks_from_patterns(smoothed, r, p, t) for r, p, t in table], float)
            saving = float(np.exp(np.mean(np.log(uniform) - np.log(ranks))))
            results.append(
                {
                    "element_order": order_name,
                    "alpha": alpha,
                    "beta": beta,
                    "gamma": gamma,
                    "saving_vs_uniform": round(saving, 4),
                    "first": round(float(np.mean(ranks == 1)), 4),
                    "top10": round(float(np.mean(ranks <= 10)), 4),
                }
            )
    best = max(results, key=lambda r: (r["saving_vs_uniform"], r["first"]))
    smoothing = Smoothing(best["alpha"], best["beta"], best["gamma"])
    return smoothing, orders[best["element_order"]], {"n_validation": len(validation), "best": best, "grid": results}


def evaluate(records, prior, n_test: int, seed: int, window: int) -> list[dict]:
    rows = []
    for record in sample(records, "test", n_test, seed):
        started = time.perf_counter()
        found = candidates(record, window)
        row = {
            "material_id": record["material_id"],
            "formula": "".join(f"{e}{n if n > 1 else ''}" for e, n in record["composition"].items()),
            "space_group": record["space_group"],
            "crystal_system": crystal_system(record["space_group"]),
            "z": record["z"],
            "n_independent": sum(c for _, _, c in record["sites"]),
            "n_distinct": len(found["assignments"]),
            "over_window": found["over_window"],
        }
        if found["truth"] is None:
            row["truth_missing"] = True
        else:
            truth = found["truth"]
            pattern = prior.pattern(record["space_group"], record["composition"], truth_sites(record))
            exact = prior.exact.get(f"{record['space_group']}/{_stoich(record)}", {})
            row.update(rank_default=truth + 1, rank_prior=prior_rank(prior, record, found["assignments"], truth))
            row["seen"] = pattern in exact
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _stoich(record: dict) -> str:
    from gasolve.hypotheses.prior import stoichiometry_key

    return stoichiometry_key(record["composition"])


def write_test_sample(records: list[dict], per_system: int, seed: int, max_distinct: int) -> None:
    """A few held-out structures (test split) with few assignments for tests/test_wyckoff_prior.py."""
    chosen: dict[str, list[dict]] = defaultdict(list)
    for record in sample(records, "test", 10**9, seed + 1):
        system = crystal_system(record["space_group"])
        if len(chosen[system]) >= per_system:
            continue
        from gasolve.hypotheses import count_assignments

        if count_assignments(record["composition"], record["z"], record["space_group"]) > max_distinct:
            continue
        keep = ("material_id", "space_group", "cell", "composition", "z", "sites")
        chosen[system].append({k: record[k] for k in keep})
        if len(chosen) == 7 and all(len(v) >= per_system for v in chosen.values()):
            break
    entries = [e for system in sorted(chosen) for e in chosen[system]]
    TEST_SAMPLE.parent.mkdir(parents=True, exist_ok=True)
    TEST_SAMPLE.write_text(json.dumps({"source": "benchmarks/wyckoff_prior.py --test-sample", "structures": entries}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--extract", action="store_true", help="run spglib over mp-structures into --cache")
    parser.add_argument("--build", action="store_true", help=f"tune, count and write {PRIOR.name}")
    parser.add_argument("--validate", type=int, default=300, help="validation structures for tuning")
    parser.add_argument("--evaluate", type=int, default=0, help="test structures to evaluate")
    parser.add_argument("--test-sample", type=int, default=0, help="held-out structures per crystal system")
    parser.add_argument("--window", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.extract:
        extract(args.cache)
    records = load_records(args.cache)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    from benchmarks.provenance import git
    from gasolve.hypotheses.prior import load_prior

    if args.build:
        started = time.perf_counter()
        usable = [r for r in records if consistent(r)]
        label_maps = all_label_maps({r["space_group"] for r in usable}, args.cache.with_name("wyckoff_label_maps.json"))
        smoothing, order, tuning = tune(records, label_maps, args.validate, args.seed, args.window)
        learn = [r for r in usable if split(r["material_id"]) != "test"]
        meta = {
            "source": "../shared/data/mp-structures (Materials Project, CC BY 4.0): spglib symprec 0.1, conventional "
            "standard setting",
            "split": "crc32(material_id) % 5: 0 held out (never counted), 1-4 counted; smoothing tuned on 1 with "
            "2-4 counted",
            "n_structures": len(learn),
            "command": "python -m benchmarks.wyckoff_prior --extract --build",
            "commit": git("rev-parse", "HEAD"),
        }
        prior = fit(learn, smoothing, label_maps, order, meta)
        PRIOR.parent.mkdir(parents=True, exist_ok=True)
        prior.save(PRIOR)
        results["build"] = {
            "n_records": len(records),
            "n_consistent": len(usable),
            "n_counted": len(learn),
            "smoothing": vars(smoothing),
            "tuning": tuning,
            "file_bytes": PRIOR.stat().st_size,
            "seconds": round(time.perf_counter() - started, 1),
        }
    if args.evaluate:
        prior = load_prior(PRIOR)
        rows = evaluate(records, prior, args.evaluate, args.seed, args.window)
        by_system = defaultdict(list)
        for row in rows:
            by_system[row["crystal_system"]].append(row)
        results["evaluation"] = {
            "n_sample": args.evaluate,
            "seed": args.seed,
            "window": args.window,
            "all": summarise(rows),
            "per_crystal_system": {s: summarise(v) for s, v in sorted(by_system.items())},
            "per_n_independent": {
                label: summarise([r for r in rows if lo <= r["n_independent"] <= hi])
                for label, lo, hi in (("1-2", 1, 2), ("3-4", 3, 4), ("5-8", 5, 8), ("9+", 9, 10**9))
            },
            "rows": rows,
        }
    if args.test_sample:
        write_test_sample(records, args.test_sample, args.seed, max_distinct=300)
    results["machine"] = {"python": platform.python_version(), "commit": git("rev-parse", "HEAD")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
