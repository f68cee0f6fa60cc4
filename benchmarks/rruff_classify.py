"""Crystal system and space group of measured RRUFF patterns: indexing + extinctions + network, against the network.

Usage::

    python -m benchmarks.rruff_classify [--per-system 4] [--seed 0] [--json PATH] [--resume]

Issue 13 measures the space-group route of ``gasolve classify`` (index the pattern, score the extinction classes of
its lattice with the network's probabilities as the prior; the network alone when the pattern does not index
soundly) on the 454 measured RRUFF patterns of ../shared/data/rruff-dev (Cu Kα, λ 1.5418 Å, 5-90°, as packaged by
Salgado et al. 2023), against AlphaDiffract's 81.7 % crystal system and 66.2 % space group. Indexing takes one to
several minutes a pattern on two cores, so the benchmark draws a seeded sample stratified by the true crystal
system (``--per-system`` each, every one where a system has fewer).

Each pattern is written as an .xye file (the stored intensities scaled to a strongest point of 10⁴ counts, esd
the square root) and classified twice by the command a user runs, as a subprocess: ``gasolve classify FILE
--wavelength CuKa12 --json`` and the same with ``--no-index``. Judged: the first crystal system and the first
space group (by number) of each answer against the label. Every pattern is checkpointed in the JSON; ``--resume``
goes on after a stop. A pattern whose command fails is recorded with its error and the others go on.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "rruff-dev" / "rruff_dev.npz"
RESULTS = REPO / "benchmarks" / "results"
#: Cu Kα1+Kα2: the packaged patterns state λ 1.5418 Å, the Kα doublet's weighted mean, from unmonochromated
#: laboratory instruments; the doublet is resolved at high angles, so the indexing reads it as two lines.
WAVELENGTH = "CuKa12"
SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
#: Strongest point of a written pattern (counts); esd = sqrt(counts).
PEAK_COUNTS = 1.0e4


def crystal_system(number: int) -> str:
    """Crystal system of a space-group number (International Tables ranges)."""
    for last, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal")):
        if number <= last:
            return name
    return "trigonal" if number <= 167 else "hexagonal" if number <= 194 else "cubic"


def sample(space_groups: np.ndarray, per_system: int, seed: int) -> list[int]:
    """Indices of a sample stratified by crystal system, seeded, in system order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for system in SYSTEMS:
        pool = np.flatnonzero([crystal_system(int(n)) == system for n in space_groups])
        chosen += sorted(int(i) for i in rng.permutation(pool)[:per_system])
    return chosen


def write_pattern(path: Path, two_theta: np.ndarray, intensity: np.ndarray, label: str) -> None:
    y = np.clip(np.asarray(intensity, dtype=float), 0.0, None)
    y = PEAK_COUNTS * y / max(float(y.max()), 1e-12)
    sigma = np.sqrt(np.maximum(y, 1.0))
    header = f"RRUFF development pattern {label} (rruff_dev.npz), scaled to {PEAK_COUNTS:.0f} counts at the maximum"
    np.savetxt(path, np.column_stack([two_theta, y, sigma]), fmt="%.5f", header=header)


def classify(path: Path, no_index: bool, timeout: float, wavelength: str = WAVELENGTH) -> dict:
    command = [sys.executable, "-m", "gasolve.cli.main", "classify", str(path), "--wavelength", wavelength]
    command += ["--json", "--top", "5"] + (["--no-index"] if no_index else [])
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "seconds": round(time.perf_counter() - started, 1)}
    seconds = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout)[-400:], "returncode": done.returncode, "seconds": seconds}
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "route": answer["route"],
        "note": answer.get("note"),
        "crystal_system": answer["crystal_system"]["name"],
        "space_groups": [g["number"] for g in answer["space_groups"]],
        "bravais": answer.get("bravais"),
        "cell": answer.get("cell"),
        "seconds": seconds,
    }


def judge(row: dict, key: str) -> None:
    answer = row[key]
    if "error" in answer:
        answer.update(system_right=False, group_first=False, group_top5=False)
        return
    answer["system_right"] = answer["crystal_system"] == row["crystal_system"]
    answer["group_first"] = bool(answer["space_groups"]) and answer["space_groups"][0] == row["space_group"]
    answer["group_top5"] = row["space_group"] in answer["space_groups"][:5]


def summarise(rows: list[dict]) -> dict:
    def rates(subset: list[dict]) -> dict:
        out = {"n": len(subset)}
        for key in ("route", "network"):
            for figure in ("system_right", "group_first", "group_top5"):
                hits = sum(bool(r[key].get(figure)) for r in subset)
                out[f"{key}_{figure}"] = round(hits / len(subset), 4) if subset else None
        out["indexed"] = sum(r["route"].get("route") == "extinctions+network" for r in subset)
        return out

    by_system = defaultdict(list)
    for row in rows:
        by_system[row["crystal_system"]].append(row)
    seconds = [r["route"].get("seconds", 0.0) for r in rows]
    return {
        "all": rates(rows),
        "per_crystal_system": {s: rates(by_system[s]) for s in SYSTEMS if by_system[s]},
        "route_seconds_median": float(np.median(seconds)) if seconds else None,
        "route_seconds_max": float(max(seconds)) if seconds else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--per-system", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per classify command")
    parser.add_argument("--wavelength", default=WAVELENGTH, help="gasolve classify --wavelength (default CuKa12)")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "rruff")
    parser.add_argument("--json", type=Path, default=RESULTS / "rruff-classify.json")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"{args.data}: not found (the RRUFF development set of ../shared/data)", file=sys.stderr)
        return 2
    from rich.progress import track

    from benchmarks.provenance import git

    with np.load(args.data) as data:
        two_theta, intensity = data["two_theta"], data["intensity"]
        labels, sources = data["space_group"].astype(int), data["source_index"].astype(int)
    chosen = sample(labels, args.per_system, args.seed)
    result = json.loads(args.json.read_text()) if args.resume and args.json.exists() else {"rows": []}
    done = {row["index"] for row in result["rows"]}
    result["settings"] = vars(args) | {"data": str(args.data), "work": str(args.work), "json": str(args.json)}
    result["machine"] = {"python": platform.python_version(), "commit": git("rev-parse", "HEAD")}
    args.work.mkdir(parents=True, exist_ok=True)
    for index in track([i for i in chosen if i not in done], description="RRUFF patterns"):
        path = args.work / f"rruff_{index:03d}.xye"
        write_pattern(path, two_theta, intensity[index], f"{index} (source {sources[index]})")
        row = {
            "index": index,
            "source_index": int(sources[index]),
            "space_group": int(labels[index]),
            "crystal_system": crystal_system(int(labels[index])),
            "network": classify(path, True, args.timeout, args.wavelength),
            "route": classify(path, False, args.timeout, args.wavelength),
        }
        judge(row, "network")
        judge(row, "route")
        result["rows"].append(row)
        result["summary"] = summarise(result["rows"])
        temporary = args.json.with_suffix(".tmp")
        temporary.write_text(json.dumps(result, indent=1))
        temporary.replace(args.json)
    print(json.dumps(result.get("summary", {}), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
