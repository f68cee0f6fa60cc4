"""Shortest interatomic distances per element pair in real structures: the table of
:mod:`gasolve.hypotheses.short_contacts`.

For a seeded sample of ../shared/data/mp-structures, each structure gives, for every pair of elements it holds,
the shortest distance between two of its atoms of those elements (pymatgen's periodic distances; for one element,
its shortest lattice translation counts too: an atom and its image). Over the structures of a pair the table keeps
a low quantile (:data:`QUANTILE`) as the pair's floor, for pairs seen in at least :data:`MIN_STRUCTURES`
structures. The floor is set on the training split of the learned prior (``--split tune``: crc32(id) % 5 != 0, the
structures the broad benchmark never draws) and checked on the held-out split (``--split test``): the share of
real structures in which some pair lies below :data:`gasolve.hypotheses.short_contacts.FLOOR_FACTOR` x its floor
(each such structure would be called implausible).

    python -m benchmarks.shortest_distances --split tune --n 12000 --table gasolve/hypotheses/shortest_distances.json
    python -m benchmarks.shortest_distances --split test --n 6000 --check --json benchmarks/results/short-contacts.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks.crowding import sample_rows

#: Quantile of a pair's per-structure shortest distances kept as its floor.
QUANTILE = 0.002
#: Pairs seen in fewer structures get no floor (only the coincidence rule applies to them).
MIN_STRUCTURES = 100


def pair_key(a: str, b: str) -> str:
    """'F-O' for ('O', 'F'): the two symbols in alphabetical order."""
    return "-".join(sorted((a, b)))


def shortest_pairs(structure) -> dict[str, float]:
    """Element pair -> shortest distance (Å) between two atoms of those elements in ``structure``."""
    symbols = np.array([site.specie.symbol for site in structure])
    distances = np.array(structure.distance_matrix, dtype=float)
    np.fill_diagonal(distances, np.inf)
    translation = float(np.min(np.linalg.norm(structure.lattice.matrix, axis=1)))
    found = {}
    elements = sorted(set(symbols))
    for i, a in enumerate(elements):
        rows = symbols == a
        for b in elements[i:]:
            block = distances[np.ix_(rows, symbols == b)]
            shortest = float(block.min()) if block.size else np.inf
            if a == b:
                shortest = min(shortest, translation)
            found[pair_key(a, b)] = shortest
    return found


def measure(rows) -> list[dict]:
    """Per structure: its id and its pairs' shortest distances (or the error that kept it out)."""
    from pymatgen.core import Structure

    records = []
    for material_id, cif in rows:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = Structure.from_str(cif, fmt="cif")
            if not structure.is_ordered:
                continue
            records.append({"material_id": material_id, "pairs": shortest_pairs(structure)})
        except Exception as error:  # a structure pymatgen cannot read: reported, not fatal
            records.append({"material_id": material_id, "error": repr(error)[:200]})
    return records


def floors(records: list[dict]) -> dict[str, dict]:
    """Pair -> {"floor", "structures", "min", "median"} for pairs of at least :data:`MIN_STRUCTURES` structures."""
    seen: dict[str, list[float]] = {}
    for record in records:
        for pair, distance in record.get("pairs", {}).items():
            if np.isfinite(distance):
                seen.setdefault(pair, []).append(distance)
    table = {}
    for pair in sorted(seen):
        values = np.array(seen[pair])
        if len(values) >= MIN_STRUCTURES:
            table[pair] = {
                "floor": round(float(np.quantile(values, QUANTILE)), 3),
                "structures": len(values),
                "min": round(float(values.min()), 3),
                "median": round(float(np.median(values)), 3),
            }
    return table


def check(records: list[dict], table: dict[str, dict], factor: float) -> dict:
    """How many real structures have a pair below ``factor`` x its floor, and which."""
    flagged = []
    readable = [r for r in records if "pairs" in r]
    for record in readable:
        worst = min(
            (
                (distance / (factor * table[pair]["floor"]), pair, distance)
                for pair, distance in record["pairs"].items()
                if pair in table
            ),
            default=(np.inf, "", np.inf),
        )
        if worst[0] < 1:
            flagged.append({"material_id": record["material_id"], "pair": worst[1], "distance": round(worst[2], 3)})
    return {
        "structures": len(readable),
        "flagged": len(flagged),
        "flagged_share": len(flagged) / max(len(readable), 1),
        "examples": flagged[:50],
    }


def main(argv=None) -> int:
    from gasolve.hypotheses.short_contacts import FLOOR_FACTOR, TABLE_FILE, load_table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "test"), default="tune")
    parser.add_argument("--n", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", type=Path, help="write the floors here (the tune split's job)")
    parser.add_argument("--check", action="store_true", help="check the shipped table's floors on this split")
    parser.add_argument("--json", type=Path, help="write the check's figures here")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    records = measure(sample_rows(args.split, args.n, args.seed))
    errors = sum("error" in r for r in records)
    print(f"{len(records)} structures read ({errors} errors) in {time.perf_counter() - t0:.0f} s")
    if args.table is not None:
        table = {
            "source": f"benchmarks/shortest_distances.py --split {args.split} --n {args.n} --seed {args.seed}",
            "quantile": QUANTILE,
            "min_structures": MIN_STRUCTURES,
            "structures": len(records) - errors,
            "pairs": floors(records),
        }
        args.table.write_text(json.dumps(table, indent=1) + "\n")
        print(f"{len(table['pairs'])} pairs written to {args.table}")
    if args.check:
        table = load_table() if args.table is None else json.loads(args.table.read_text())["pairs"]
        figures = check(records, table, FLOOR_FACTOR)
        print(f"{figures['flagged']} of {figures['structures']} real structures have a pair below the floor")
        if args.json is not None:
            payload = {
                "benchmark": "shortest_distances",
                "split": args.split,
                "n": args.n,
                "seed": args.seed,
                "table": TABLE_FILE,
                "factor": FLOOR_FACTOR,
                "platform": platform.platform(),
                **figures,
            }
            args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
