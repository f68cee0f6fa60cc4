"""Crowding of the true Wyckoff assignments of real structures: the threshold of :mod:`gasolve.hypotheses.crowding`.

For a seeded sample of ../shared/data/mp-structures, spglib's assignment (symprec 0.1, on the idealised standard
cell: :func:`benchmarks.z_window.true_assignment`) and conventional cell give each line or plane position's
crowding (:func:`gasolve.hypotheses.crowding.crowding`). Reported per locus dimension: the number of positions,
quantiles, the largest values with their structures, and how many structures :data:`MAX_CROWDING` would refuse.
Split by crc32(material_id) % 5 as benchmarks/z_window.py: ``--split tune`` (1-4) sets the threshold, ``--split
test`` (0) checks it.

    python -m benchmarks.crowding --split tune --n 8000 --json benchmarks/results/crowding-tune.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

from benchmarks.z_window import DATA, true_assignment


def sample_rows(split: str, n: int, seed: int) -> list[tuple[str, str]]:
    """(material_id, cif) of ``n`` structures of the split, seeded."""
    import pandas as pd

    table = pd.read_csv(DATA / "structures.csv.gz", usecols=["material_id", "cif"])
    bucket = table["material_id"].map(lambda m: zlib.crc32(m.encode()) % 5)
    table = table[bucket == 0] if split == "test" else table[bucket != 0]
    rows = list(table.itertuples(index=False, name=None))
    random.Random(seed).shuffle(rows)
    return rows[:n]


def measure(rows) -> list[dict]:
    """Per structure: id, space group, and every line or plane position's crowding."""
    from pymatgen.core import Structure

    from gasolve.crystal.cell import UnitCell
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.hypotheses.crowding import crowding, position_loci

    found = []
    for material_id, cif in rows:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = Structure.from_str(cif, fmt="cif")
            number, parameters, sites, _ = true_assignment(structure)
            loci = position_loci(SpaceGroup.from_symbol(int(number)), UnitCell.from_parameters(parameters))
            listed = [(e, label) for (e, label), count in sites.items() for _ in range(count)]
            values = crowding(listed, loci)
        except Exception as error:  # a structure spglib or the tables cannot read: reported, not fatal
            found.append({"material_id": material_id, "error": repr(error)[:200]})
            continue
        found.append(
            {
                "material_id": material_id,
                "formula": structure.composition.reduced_formula,
                "space_group": int(number),
                "crowding": {label: [loci[label].dimension, round(v, 4)] for label, v in values.items()},
            }
        )
    return found


def summarise(records: list[dict]) -> dict:
    from gasolve.hypotheses.crowding import MAX_CROWDING

    summary = {"structures": len(records), "errors": sum("error" in r for r in records)}
    for dimension, name in ((1, "line"), (2, "plane")):
        values = [
            (v, r["material_id"], r["formula"], r["space_group"], label)
            for r in records
            if "crowding" in r
            for label, (d, v) in r["crowding"].items()
            if d == dimension
        ]
        array = np.array([v[0] for v in values]) if values else np.zeros(0)
        refused = {v[1] for v in values if v[0] > MAX_CROWDING[dimension]}
        summary[name] = {
            "positions": len(values),
            "quantiles": {
                q: round(float(np.quantile(array, float(q))), 3) for q in ("0.5", "0.9", "0.99", "0.999", "1.0")
            }
            if len(array)
            else {},
            "largest": [list(v) for v in sorted(values, reverse=True)[:10]],
            "threshold": MAX_CROWDING[dimension],
            "structures_refused": sorted(refused),
        }
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "test"), default="tune")
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    records = measure(sample_rows(args.split, args.n, args.seed))
    summary = summarise(records)
    result = {
        "benchmark": "crowding",
        "settings": vars(args) | {"json": str(args.json)},
        "machine": {"platform": platform.platform(), "seconds": round(time.perf_counter() - started, 1)},
        "summary": summary,
        "records_note": "only structures with a position above crowding 1.0 (or an error) are listed; the summary "
        "counts all",
        "records": [r for r in records if "error" in r or any(v > 1.0 for _, v in r["crowding"].values())],
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
