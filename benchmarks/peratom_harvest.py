"""Harvest per-atom training data for the per-atom selection network (:mod:`nnselect.peratom`) from many structures.

Usage::

    python -m benchmarks.peratom_harvest --out DIR [--n 60] [--seed 0] [--models 300] [--budget 4e4]
        [--sites 3 10] [--shard I/N] [--with-elements K,Sn]

**Structures.** Materials Project structures of ../shared/data/mp-structures *outside* the held-out split that
benchmarks/broad.py and benchmarks/large.py use (``crc32(id) % 5 != 0``), so no benchmark structure is trained on;
K4SnO4 and K4PbO4 are left out by formula. index.csv rows with 4 to ``MAX_PRIMITIVE`` atoms in the primitive cell,
in an order drawn from ``--seed``; taken when ordered, standardised by spglib (:func:`benchmarks.broad._entry`),
with at most ``MAX_OPERATORS`` symmetry operators (labelling in groups with many origins is too slow for the 2-core
budget: this leaves out cubic, hexagonal and centred high-symmetry groups) and with ``--sites`` independent sites
(``--with-elements``: only formulas holding one of those elements, to cover elements a random draw missed).
``--shard I/N`` takes every N-th of them from the I-th, for parallel processes.

**Pattern and run.** As benchmarks/broad.py prepares a case (pymatgen pattern, Cu Kα1, 5-80°, Poisson counts, the
profile given, Wyckoff letters given; :func:`benchmarks.broad.prepare_case`) with the reference added; then one run
of gasolve's GA with its default settings, seed ``--seed``, up to ``--budget`` evaluations, stopped 5 generations
after its best first matches the reference (:func:`nnselect.harvest.harvest_run`). Every model it evaluates is
``--models`` of them, drawn at random, are labelled with each site's distance to the reference after the best
origin, inversion and permutation (:func:`gasolve.compare.site_distances_batch`; in chunks, stopped after
``LABEL_SECONDS``) and get their per-atom features
(:class:`nnselect.peratom.features.AtomFeatures`). One ``STRUCTURE.npz`` per structure (``features`` (n, n_sites,
n_features) float32, ``distances`` (n, n_sites) Å, ``rwp``, ``generation``, ``elements``) and ``manifest.json``
(one entry per structure: id, formula, group, sites, models, run facts; versions). A structure already written is
skipped, so the command resumes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import broad  # noqa: E402
from benchmarks.z_window import DATA, held_out  # noqa: E402

MAX_PRIMITIVE = 30
MAX_OPERATORS = 16  # symmetry operators of the conventional cell (centring included)
LABEL_CHUNK = 10
LABEL_SECONDS = 45.0
EXCLUDED_FORMULAS = ("K4SnO4", "K4PbO4")


def candidate_ids(seed: int, data: Path = DATA, with_elements: tuple[str, ...] = ()) -> list[str]:
    """Training-split material ids with 4 to MAX_PRIMITIVE primitive atoms, in an order drawn from ``seed``;
    with ``with_elements``, only formulas holding at least one of them."""
    import pandas as pd
    from pymatgen.core import Composition

    index = pd.read_csv(data / "index.csv")
    index = index[~index.material_id.map(held_out) & index.n_sites.between(4, MAX_PRIMITIVE)]
    index = index[~index.reduced_formula.isin(EXCLUDED_FORMULAS)]
    if with_elements:
        wanted = set(with_elements)
        holds = index.reduced_formula.map(lambda f: bool(wanted & {e.symbol for e in Composition(f)}))
        index = index[holds]
    ids = sorted(index.material_id)
    return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


def entries(n: int, seed: int, sites: tuple[int, int], data: Path = DATA, with_elements: tuple[str, ...] = ()):
    """Yield up to ``n`` benchmark entries (:func:`benchmarks.broad._entry`) with ``sites`` independent sites."""
    from pymatgen.core import Structure

    order = candidate_ids(seed, data, with_elements)
    taken = 0
    start = 0
    while taken < n and start < len(order):
        batch = order[start : start + 4 * n]
        start += len(batch)
        cifs = broad._mp_cifs(batch, data)
        for material_id in batch:
            if taken >= n:
                return
            if material_id not in cifs:
                continue
            entry = broad._entry("mp", material_id, Structure.from_str(cifs[material_id], fmt="cif"), None, None)
            if entry is None or not sites[0] <= entry["n_independent"] <= sites[1]:
                continue
            if _n_operators(entry["space_group"]) > MAX_OPERATORS:
                continue
            if entry["formula"] in EXCLUDED_FORMULAS:
                continue
            taken += 1
            yield entry


def _n_operators(number: int) -> int:
    import gemmi

    return len(gemmi.find_spacegroup_by_number(number).operations())


def _unlabelled_problem():
    from nnselect.harvest import HarvestProblem

    class Unlabelled(HarvestProblem):
        """A harvest problem whose models are labelled later (only those kept)."""

        def distances(self, frac: np.ndarray) -> np.ndarray:
            return np.zeros(np.shape(frac)[:2])

    return Unlabelled


def harvest_structure(entry: dict, folder: Path, seed: int, budget: float, n_models: int) -> dict:
    """Prepare, run and label one structure; write ``folder.npz`` beside ``folder``; return its manifest entry."""
    import dataclasses

    from gasolve.config import load_run_config
    from nnselect.harvest import HarvestProblem, harvest_run

    _Unlabelled = _unlabelled_problem()
    from nnselect.peratom.features import AtomFeatures

    entry = {**entry, "lebail": False}
    config_path = broad.prepare_case(entry, "sites", folder, seed)
    config_path.write_text(config_path.read_text() + '\n[reference]\ncif = "reference.cif"\n')
    config = load_run_config(config_path).with_overrides(seed=seed, max_evaluations=int(budget))
    problem = HarvestProblem.from_config(config)
    unlabelled = _Unlabelled(**{f.name: getattr(problem, f.name) for f in dataclasses.fields(problem)})
    started = time.perf_counter()
    run = harvest_run(unlabelled, config.ga)
    run_seconds = time.perf_counter() - started
    rng = np.random.default_rng([seed, n_models, run.n_models])
    chosen = np.sort(rng.choice(run.n_models, size=min(n_models, run.n_models), replace=False))
    frac = run.frac[chosen].astype(float)
    # Only the kept models are labelled, in chunks until LABEL_SECONDS: the normalizer search is slow in groups
    # with many origins (those left are dropped, a random subset of a random draw).
    distances = []
    started = time.perf_counter()
    for start in range(0, len(frac), LABEL_CHUNK):
        distances.append(problem.distances(frac[start : start + LABEL_CHUNK]).astype(np.float32))
        if time.perf_counter() - started > LABEL_SECONDS:
            break
    distances = np.concatenate(distances)
    chosen, frac = chosen[: len(distances)], frac[: len(distances)]
    started = time.perf_counter()
    projected = problem.scorer.project(frac.reshape(len(frac), -1)).reshape(frac.shape)
    features = AtomFeatures(problem.scorer.problem)(projected)
    feature_seconds = time.perf_counter() - started
    np.savez_compressed(
        folder.with_suffix(".npz"),
        features=features,
        distances=distances,
        rwp=run.rwp[chosen],
        generation=run.generation[chosen],
        elements=np.array(problem.elements),
    )
    return {
        "material_id": entry["material_id"],
        "formula": entry["formula"],
        "space_group": entry["space_group"],
        "crystal_system": entry["crystal_system"],
        "n_independent": entry["n_independent"],
        "elements": problem.elements,
        "models": len(chosen),
        "models_evaluated": int(run.n_models),
        "evaluations": round(run.evaluations),
        "solved_generation": run.solved_generation,
        "best_rwp": run.best_rwp,
        "share_within_0.3": float(np.mean(distances <= 0.3)),
        "run_seconds": round(run_seconds, 2),
        "feature_seconds": round(feature_seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=60, help="structures (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=int, default=300, help="models kept per structure (default 300)")
    parser.add_argument("--budget", type=float, default=4e4, help="evaluations per GA run (default 4e4)")
    parser.add_argument("--sites", type=int, nargs=2, default=(3, 10), help="independent sites (default 3 10)")
    parser.add_argument("--shard", default="0/1", help="I/N: every N-th structure from the I-th")
    parser.add_argument("--with-elements", default="", help="only formulas with one of these elements (K,Sn)")
    args = parser.parse_args(argv)
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with_elements = tuple(e for e in args.with_elements.split(",") if e)
    tag = f"-{'-'.join(with_elements)}" if with_elements else ""
    manifest_path = out / f"manifest{tag}-{shard}of{n_shards}.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"structures": []}
    manifest.update(
        {
            "command": " ".join(sys.argv),
            "seed": args.seed,
            "budget": args.budget,
            "models_per_structure": args.models,
            "sites": list(args.sites),
            "split": "training split of mp-structures: crc32(material_id) % 5 != 0",
            "with_elements": list(with_elements),
            "python": platform.python_version(),
        }
    )
    done = {row["material_id"] for row in manifest["structures"]}
    for i, entry in enumerate(entries(args.n, args.seed, tuple(args.sites), DATA, with_elements)):
        if i % n_shards != shard or entry["material_id"] in done:
            continue
        folder = out / broad._safe(entry["material_id"])
        try:
            row = harvest_structure(entry, folder, args.seed, args.budget, args.models)
        except Exception as error:  # a structure gasolve cannot set up is recorded and skipped
            row = {"material_id": entry["material_id"], "formula": entry["formula"], "error": repr(error)[:300]}
        manifest["structures"].append(row)
        manifest_path.write_text(json.dumps(manifest, indent=1))
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
