"""Structures solved from measured patterns as a new user would: `gasolve run` with the asymmetric unit given
(elements and Wyckoff letters), the profile fitted first (Le Bail), the final Rietveld refinement on (a
``[refinement]`` table, with the specimen's known impurity phases), and the files it writes judged against the
published structure by pymatgen (:func:`benchmarks.broad.judge_file`: every atom within 0.3 Å is the strict
criterion).

Cases (../shared/data/measured): PbSO4 (lab Cu Kα1+2, Hill's round robin; Miyake's structure), NAC (APS 11-BM,
0.41 Å; GSAS's joint refinement, CaF2 as a further phase), corundum (NIST SRM 676a, lab; COD 1000017), LaB6 (NIST
SRM 660c, lab; the literature model), α-Si3N4 (lab, GSAS's two-phase exercise; GSAS's refined model, β-Si3N4 as
a further phase).

Usage::

    python -m benchmarks.measured_solutions [--cases pbso4,nac,...] [--work DIR] [--json OUT] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.broad import judge_file  # noqa: E402
from gasolve.crystal.cif_io import read_cif  # noqa: E402
from gasolve.crystal.snap import SpecialPositionSnap  # noqa: E402
from gasolve.crystal.special_positions import settle  # noqa: E402
from gasolve.io.toml_file import toml_text  # noqa: E402

MEASURED = ROOT.parent / "shared" / "data" / "measured"
DERIVED = ROOT / "tests" / "data" / "derived"
CASES = {
    "pbso4": {
        "pattern": ROOT / "examples" / "PbSO4.xra",
        "wavelength": "CuKa12",
        "reference": ROOT / "examples" / "PbSO4.cif",
        "background": 12,
    },
    "nac": {
        "pattern": MEASURED / "NAC-11BM-synchrotron" / "11BM_NAC_converted.xye",
        "wavelength": 0.413909,
        "polarisation": 0.99,
        "range": [0.5, 50.0],
        "reference": MEASURED / "NAC-11BM-synchrotron" / "NAC.cif",
        "phases": [DERIVED / "CaF2_NAC-2015A_phase2.cif"],
        "background": 10,
    },
    "corundum": {
        "pattern": MEASURED / "corundum-SRM676a-lab-CuKa" / "row_Cu_676a.xy",
        "wavelength": "CuKa12",
        "reference": ROOT
        / "tests"
        / "data"
        / "measured"
        / "corundum-SRM676a-lab-CuKa"
        / "corundum_COD1000017_copied_from_XRed.cif",
        "background": 10,
    },
    "lab6": {
        "pattern": MEASURED / "LaB6-SRM660-lab-CuKa" / "NIST660CBI_converted.xye",
        "wavelength": "CuKa12",
        "reference": MEASURED / "LaB6-SRM660-lab-CuKa" / "LaB6_literature.cif",
        "background": 12,
    },
    "si3n4": {
        "pattern": MEASURED / "Si3N4-two-phase-lab-CuKa" / "A_SI3N4_XRA_converted.xye",
        "wavelength": 1.5405,
        "kalpha2": True,
        "reference": DERIVED / "Si3N4_alpha_GSAS_two_phase.cif",
        "phases": [DERIVED / "Si3N4_beta_GSAS_two_phase.cif"],
        "background": 8,
    },
}


def asymmetric_unit(reference: Path) -> dict:
    """The ``[structure]`` table a user who knows the asymmetric unit writes: the reference's cell, space group,
    elements and Wyckoff letters (the reference's coordinates are not given)."""
    structure = read_cif(reference)
    snap = SpecialPositionSnap.build(structure.cell, structure.space_group, np.ones(structure.n_sites, bool), 0.02)
    labels = settle(structure.space_group, snap.snap(structure.frac[None])[0][0]).labels
    return {
        "name": reference.stem,
        "cell": list(structure.cell.parameters),
        "space_group": structure.space_group.number,
        "sites": [site.element for site in structure.sites],
        "wyckoff": list(labels),
    }


def write_config(name: str, case: dict, folder: Path, seed: int, evaluations: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pattern = {"file": str(case["pattern"]), "background": {"terms": case["background"]}}
    if case.get("kalpha2"):  # GSAS's Cu Kα1/Kα2 pair (INST_XRY.PRM), ratio 0.5
        pattern["wavelength"] = "CuKa12"
    else:
        pattern["wavelength"] = case["wavelength"]
    for key in ("polarisation", "range"):
        if key in case:
            pattern[key] = case[key]
    refinement = {"phases": [str(p) for p in case.get("phases", [])]}
    config = {
        "structure": asymmetric_unit(case["reference"]),
        "pattern": pattern,
        "ga": {"seed": seed, "max_evaluations": evaluations},
        "refinement": refinement,
        "output": {"dir": str(folder / "out")},
    }
    path = folder / f"{name}.toml"
    path.write_text(toml_text(config, [f"benchmarks/measured_solutions.py case {name}"]), encoding="utf-8")
    return path


def run_case(name: str, work: Path, seed: int, evaluations: int, timeout: float) -> dict:
    case = CASES[name]
    folder = work / name
    config = write_config(name, case, folder, seed, evaluations)
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "gasolve.cli.main", "run", str(config), "--quiet"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
    )
    row = {"case": name, "seconds": time.perf_counter() - started, "exit_code": process.returncode}
    if process.returncode != 0:
        row["error"] = (process.stderr or process.stdout)[-600:]
        return row
    reference = case["reference"].read_text()
    out = folder / "out"
    for file in ("best.cif", "refined.cif"):
        verdict = judge_file(out / file, reference)
        row[file] = {k: verdict.get(k) for k in ("strict_match", "ml_match", "max_distance", "cif_error")}
    summary = json.loads((out / "refinement.json").read_text())
    row["rwp"] = summary["figures_of_merit"]["rwp"]
    row["phases"] = [{"name": p["name"], "weight_fraction": p["weight_fraction"]} for p in summary["phases"]]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--work", type=Path, default=Path("/tmp/gasolve-measured-solutions"))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "measured_solutions.json")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-evaluations", type=int, default=300_000)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    rows = []
    for name in args.cases.split(","):
        try:
            row = run_case(name, args.work, args.seed, args.max_evaluations, args.timeout)
        except subprocess.TimeoutExpired:
            row = {"case": name, "error": f"ran past {args.timeout:.0f} s"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    strict = sum(bool(r.get("refined.cif", {}).get("strict_match")) for r in rows)
    report = {"seed": args.seed, "max_evaluations": args.max_evaluations, "rows": rows,
              "refined_strict": f"{strict} of {len(rows)}"}  # fmt: skip
    print(report["refined_strict"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
