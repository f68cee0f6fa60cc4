"""Kβ-satellite flags of the peak search (gasolve.indexing.kbeta): false flags without Kβ, true flags with it.

Usage::

    python -m benchmarks.kbeta [--n 350] [--seed 0] [--half tune|report|all] [--limit 4]
        [--ratios 0 0.004 0.2] [--no-measured] [--json PATH]

**Simulated patterns**: those of :mod:`benchmarks.indexing` (the same structures, halves and drawn conditions:
pymatgen sticks, pseudo-Voigt widths, Kα2 for half, zero shift, 0-3 impurity lines, Poisson counts), each
simulated again with pymatgen's Cu Kβ1 line added at each share of Kα1 in ``--ratios`` (0: none, as in the
indexing benchmark; 0.004: a Ni-filtered tube, as the measured corundum pattern shows; 0.2: unfiltered, xraydb's
Kβ1,3/Kα1 emission ratio is 0.22). The noise is drawn from the pattern's own generator, so the patterns differ
only by their Kβ lines and the counts those change.

**Truth**: a found line is a Kβ line when the Kβ sticks within max(FWHM/2, 0.1°) of it are stronger than the Kα1
sticks within FWHM/2 and no impurity line lies within FWHM/2 (their Kα1 parent inside the pattern, so that it can
be recognised at all). A flagged line that is not a Kβ line is a false flag.

**Rules compared on the same peak search**: ``old``, the position and intensity rule alone
(``KBetaSettings(evidence=0)``), and ``new``, the default (the pattern's Kβ/Kα1 ratio measured at the Kβ positions
of its strongest lines must be significant, and a flagged line no stronger than ``ratio_spread`` times it).
Plus the shared measured laboratory patterns (Cu Kα1+Kα2): corundum (SRM 676a, two known satellites at 47.135°
and 51.498°), PbSO4, LaB6, the two Si3N4 patterns and the riet-serv profiles, whose flags are listed.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import broad, indexing  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
#: Measured laboratory patterns (path under shared/data/measured, wavelength when the file states none).
MEASURED = (
    ("corundum-SRM676a-lab-CuKa/row_Cu_676a.xy", "CuKa12"),
    ("PbSO4-lab-CuKa/PBSO4.XRA", "CuKa12"),
    ("LaB6-SRM660-lab-CuKa/NIST660CBI.gsas", "CuKa12"),
    ("Si3N4-two-phase-lab-CuKa/A_SI3N4.XRA", "CuKa12"),
    ("Si3N4-two-phase-lab-CuKa/B_SI3N4.XRA", "CuKa12"),
)
#: The corundum pattern's two satellites (docs/indexing.md), degrees 2θ.
CORUNDUM_SATELLITES = (47.135, 51.498)
FIRST_LINES = 25


def _settings():
    from gasolve.indexing.kbeta import KBetaSettings
    from gasolve.indexing.peaks import PeakSearchSettings

    old = KBetaSettings(max_ratio=0.3, evidence=0.0)  # the rule before the evidence test
    return {"old": PeakSearchSettings(kbeta=old), "new": PeakSearchSettings()}


def truth(peaks, structure, conditions: dict, kbeta: float) -> np.ndarray:
    """Which found lines are Kβ lines (module docstring), shape (n_peaks,), bool."""
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    if kbeta <= 0:
        return np.zeros(peaks.n_peaks, dtype=bool)
    lo, hi = indexing.TWO_THETA_RANGE
    span = (max(lo - 2.0, 0.5), min(hi + 2.0, 179.0))
    alpha, i_alpha = broad.sticks(structure, WAVELENGTHS["CuKa1"], span)
    beta, i_beta = broad.sticks(structure, WAVELENGTHS["CuKb1"], span)
    alpha, beta = alpha + conditions["zero"], beta + conditions["zero"]
    parent = 2 * np.degrees(np.arcsin(np.sin(np.radians(beta - conditions["zero"]) / 2) * 1.540598 / 1.392218))
    inside = parent + conditions["zero"] < hi - 0.3
    beta, i_beta = beta[inside], kbeta * i_beta[inside]
    impurities = np.array([p for p, _ in conditions["impurities"]]) if conditions["impurities"] else np.zeros(0)
    out = np.zeros(peaks.n_peaks, dtype=bool)
    for j, (x, width) in enumerate(zip(peaks.two_theta, peaks.fwhm, strict=True)):
        kb = i_beta[np.abs(beta - x) < max(0.5 * width, 0.1)].sum()
        ka = i_alpha[np.abs(alpha - x) < 0.5 * width].sum()
        out[j] = kb > ka and not np.any(np.abs(impurities - x) < 0.5 * width)
    return out


def _counts(peaks, is_kbeta: np.ndarray) -> dict:
    flagged = peaks.kbeta
    first = np.arange(peaks.n_peaks) < FIRST_LINES
    return {
        "flagged": np.round(peaks.two_theta[flagged], 3).tolist(),
        "false": int(np.count_nonzero(flagged & ~is_kbeta)),
        "true": int(np.count_nonzero(flagged & is_kbeta)),
        "false_first": int(np.count_nonzero(flagged & ~is_kbeta & first)),
        "true_first": int(np.count_nonzero(flagged & is_kbeta & first)),
    }


def run_simulated(entry: dict, seed: int, ratio: float) -> dict:
    """One structure with Kβ at ``ratio``: both rules' flags against the truth."""
    from pymatgen.core import Structure

    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.indexing.kbeta import kbeta_ratio
    from gasolve.indexing.peaks import search_peaks
    from gasolve.io.patterns import ObservedPattern, counting_sigma

    rng = indexing.pattern_rng(entry, seed)
    conditions = {**indexing.draw_conditions(rng), "kbeta": ratio}
    structure = Structure.from_str(entry["reference_cif"], fmt="cif")
    two_theta, y = indexing.simulate(structure, conditions, rng)
    pattern = ObservedPattern(two_theta, y, counting_sigma(y), entry["material_id"])
    radiation = parse_radiation("CuKa12" if conditions["doublet"] else "CuKa1")
    row = {"material_id": entry["material_id"], "formula": entry["formula"], "half": entry["half"]}
    row.update({"crystal_system": entry["crystal_system"], "ratio": ratio, "doublet": conditions["doublet"]})
    row["n_impurities"] = len(conditions["impurities"])
    is_kbeta = None
    for name, settings in _settings().items():
        peaks = search_peaks(pattern, radiation, settings)
        if is_kbeta is None:
            is_kbeta = truth(peaks, structure, conditions, ratio)
            row["n_peaks"], row["kbeta_lines"] = peaks.n_peaks, int(is_kbeta.sum())
            row["kbeta_lines_first"] = int(is_kbeta[:FIRST_LINES].sum())
        row[name] = _counts(peaks, is_kbeta)
    from gasolve.indexing.peaks import PeakSearchSettings, snip_background

    plain = search_peaks(pattern, radiation, PeakSearchSettings(kbeta=None))
    # The evidence the new rule weighs, near enough: the peak search smooths the profile before its SNIP.
    net = y - snip_background(y, round(PeakSearchSettings().background_window / indexing.STEP))
    estimate = kbeta_ratio(plain, radiation, (two_theta, net, counting_sigma(y)))
    row["ratio_estimate"] = [round(estimate.ratio, 5), round(estimate.esd, 5), estimate.n_parents]
    return row


def run_measured(path: Path, wavelength: str) -> dict:
    from gasolve.diffraction.wavelength import choose_radiation
    from gasolve.indexing.peaks import search_peaks
    from gasolve.io.patterns import read_pattern

    pattern = read_pattern(path)
    radiation, _ = choose_radiation(pattern.radiation, None if pattern.radiation else wavelength, str(path))
    row = {"pattern": str(path.relative_to(indexing.SHARED)), "ratio": None}
    for name, settings in _settings().items():
        peaks = search_peaks(pattern, radiation, settings)
        known = np.zeros(peaks.n_peaks, dtype=bool)
        if "corundum" in str(path):
            known = np.abs(peaks.two_theta[:, None] - np.array(CORUNDUM_SATELLITES)).min(axis=1) < 0.01
        row[name] = _counts(peaks, known)
        row["n_peaks"] = peaks.n_peaks
    return row


def measured_paths() -> list[tuple[Path, str]]:
    base = indexing.SHARED / "measured"
    found = [(base / p, w) for p, w in MEASURED if (base / p).is_file()]
    found += [
        (Path(p), "CuKa12")
        for p in sorted(glob.glob(str(base / "riet-serv-lab-profiles" / "**" / "*.xye"), recursive=True))
    ]
    return found


def summarise(rows: list[dict]) -> dict:
    out = {}
    for ratio in sorted({r["ratio"] for r in rows if r["ratio"] is not None}):
        chosen = [r for r in rows if r["ratio"] == ratio]
        block = {"patterns": len(chosen), "kbeta_lines": sum(r["kbeta_lines"] for r in chosen)}
        block["kbeta_lines_first"] = sum(r["kbeta_lines_first"] for r in chosen)
        for name in ("old", "new"):
            block[name] = {
                "patterns_with_false_flags": sum(1 for r in chosen if r[name]["false"]),
                "false_flags": sum(r[name]["false"] for r in chosen),
                "false_flags_first": sum(r[name]["false_first"] for r in chosen),
                "true_flags": sum(r[name]["true"] for r in chosen),
                "true_flags_first": sum(r[name]["true_first"] for r in chosen),
                "patterns_with_true_flags": sum(1 for r in chosen if r[name]["true"]),
            }
        out[str(ratio)] = block
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=350)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--half", choices=("tune", "report", "all"), default="all")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.004, 0.2])
    parser.add_argument("--no-measured", action="store_true")
    parser.add_argument("--json", default=str(RESULTS / "kbeta.json"))
    args = parser.parse_args(argv)
    entries = indexing.select(indexing.sample_simulated(args.n, args.seed), args.half, args.limit)
    rows = []
    if not args.no_measured:
        for path, wavelength in measured_paths():
            rows.append(run_measured(path, wavelength))
            r = rows[-1]
            print(f"{r['pattern']}: old {r['old']['flagged']} new {r['new']['flagged']}", flush=True)
    for entry in entries:
        for ratio in args.ratios:
            rows.append(run_simulated(entry, args.seed, ratio))
            r = rows[-1]
            print(
                f"{entry['material_id']:<12} {entry['half']:<6} Kβ {ratio:<5} lines {r['kbeta_lines']:>2} "
                f"old {r['old']['true']}/{r['old']['false']} new {r['new']['true']}/{r['new']['false']} "
                f"(true/false) estimate {r['ratio_estimate']}",
                flush=True,
            )
    simulated = [r for r in rows if r["ratio"] is not None]
    result = {
        "benchmark": "kbeta",
        "settings": vars(args),
        "summary": {half: summarise([r for r in simulated if half == "all" or r["half"] == half])
                    for half in ("tune", "report", "all")},
        "rows": rows,
    }  # fmt: skip
    broad.write_json(result, Path(args.json))
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
