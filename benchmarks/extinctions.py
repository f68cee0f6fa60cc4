"""Space groups from extinctions (issue 13, item 2): is the true extinction class ranked first?

Usage::

    python benchmarks/extinctions.py [--seed 0] [--json PATH] [--groups 19,62,...]

**Structures.** One random structure per space group of :data:`GROUPS` (30 groups, every crystal system, many
extinction classes), made by PyXtal (``pyxtal.from_random``, seeded) in the International Tables standard setting,
then standardised by spglib (its default Hall setting of each number is gemmi's first).

**Pattern** (pymatgen, not gasolve): :func:`benchmarks.broad.simulate_pattern` (``XRDCalculator`` sticks, Cu Kα1,
pseudo-Voigt of FWHM 0.09°, η 0.5, Chebyshev background, Poisson counts with the strongest peak at 20 000 counts,
2θ 5-80°).

**Analysis.** :func:`gasolve.indexing.extinctions.determine_space_group` with the true conventional cell and
Bravais lattice (indexing is benchmarked elsewhere), no network prior. Success: the class that holds the true
group's standard setting (same absences on the probe grid) is first, or tied with the first (same log-likelihood:
the data cannot tell them apart; ``n_tied_first`` counts such classes); also within the top 3. Writes
``benchmarks/results/extinctions.json``.
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

RESULTS = REPO / "benchmarks" / "results"
#: Space-group numbers of the benchmark: P-1 ... Ia-3, 30 extinction classes of the seven crystal systems.
GROUPS = (2, 4, 7, 12, 14, 15, 18, 19, 31, 33, 60, 61, 62, 63, 86, 87, 123, 129, 136, 141, 164, 166, 167, 176,
          194, 205, 206, 225, 227, 229)  # fmt: skip
#: Species and counts per asymmetric formula of the random structures.
SPECIES = ("Ti", "O")
TIES = 1e-6


def random_structure(number: int, seed: int):
    """A PyXtal random crystal of group ``number``, standardised by spglib, as a pymatgen Structure.

    Ti and O, twice and four times the multiplicity of the group's most special Wyckoff position per cell (once
    and twice, then once and three times, when PyXtal cannot place those).
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    rng = np.random.default_rng([seed, number])
    smallest = Group(number)[-1].multiplicity  # of the most special Wyckoff position
    for counts in ([2 * smallest, 4 * smallest], [smallest, 2 * smallest], [smallest, 3 * smallest]):
        for _ in range(10):
            crystal = pyxtal()
            try:
                crystal.from_random(3, number, list(SPECIES), counts, random_state=int(rng.integers(2**31)))
            except Exception:  # PyXtal raises bare exceptions when a composition does not fit
                continue
            if crystal.valid:
                structure = crystal.to_pymatgen()
                analyzer = SpacegroupAnalyzer(structure, symprec=0.01)
                if analyzer.get_space_group_number() == number:
                    return analyzer.get_refined_structure()
    raise RuntimeError(f"no random structure of space group {number}")


def bravais_of(number: int) -> str:
    """Bravais symbol of a space-group number (gemmi's centring letter, spglib's crystal family)."""
    import gemmi

    group = gemmi.find_spacegroup_by_number(number)
    family = {
        "triclinic": "a",
        "monoclinic": "m",
        "orthorhombic": "o",
        "tetragonal": "t",
        "trigonal": "h",
        "hexagonal": "h",
        "cubic": "c",
    }[group.crystal_system_str()]
    return family + group.hm[0]


def simulated_pattern(structure, seed: int, fwhm: float = 0.09):
    """ObservedPattern of ``structure`` from :func:`benchmarks.broad.simulate_pattern` (Cu Kα1, Poisson)."""
    from benchmarks.broad import simulate_pattern
    from gasolve.io.patterns import ObservedPattern

    two_theta, y = simulate_pattern(structure, np.random.default_rng(seed), fwhm=fwhm)
    return ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)), "<simulated>")


def true_class_rank(analysis, number: int) -> tuple[int, bool]:
    """Rank (1-based, ties counted as first of their tie) of the class holding group ``number``'s standard
    setting, and whether it ties with the first."""
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.indexing.extinctions import probe_indices

    probe = probe_indices(8)
    absent = SpaceGroup.from_symbol(number).is_absent(probe)
    scores = [c.log_likelihood for c in analysis.classes]
    for score in analysis.classes:
        if np.array_equal(score.extinction_class.absent_probe, absent):
            better = sum(1 for s in scores if s > score.log_likelihood + TIES)
            return better + 1, abs(score.log_likelihood - scores[0]) <= TIES
    raise AssertionError(f"group {number}'s class is not among the candidates")


def _margin(analysis) -> float | None:
    """Log-likelihood of the first class minus that of the best class not tied with it (None when all tie)."""
    first = analysis.classes[0].log_likelihood
    others = [c.log_likelihood for c in analysis.classes if c.log_likelihood < first - TIES]
    return round(first - max(others), 3) if others else None


def run_case(number: int, seed: int) -> dict:
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.indexing.extinctions import determine_space_group

    structure = random_structure(number, seed)
    pattern = simulated_pattern(structure, seed)
    lattice = structure.lattice
    cell = (lattice.a, lattice.b, lattice.c, lattice.alpha, lattice.beta, lattice.gamma)
    start = time.perf_counter()
    analysis = determine_space_group(pattern, parse_radiation("CuKa1"), cell, bravais_of(number))
    rank, tied = true_class_rank(analysis, number)
    first = analysis.classes[0]
    return {
        "number": number,
        "formula": structure.composition.reduced_formula,
        "n_atoms": len(structure),
        "cell": [round(x, 4) for x in cell],
        "bravais": bravais_of(number),
        "rank": rank,
        "tied_with_first": tied,
        "first_class": analysis.classes[0].extinction_class.name,
        "first_log_likelihood": round(analysis.classes[0].log_likelihood, 3),
        "n_tied_first": sum(abs(c.log_likelihood - first.log_likelihood) <= TIES for c in analysis.classes),
        "margin_to_next": _margin(analysis),
        "n_classes": len(analysis.classes),
        "pawley_rwp": round(float(analysis.pawley_rwp), 5),
        "seconds": round(time.perf_counter() - start, 2),
    }


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", help="comma-separated space-group numbers (default: the 30 of GROUPS)")
    parser.add_argument("--json", default=str(RESULTS / "extinctions.json"))
    args = parser.parse_args(argv)
    groups = [int(x) for x in args.groups.split(",")] if args.groups else list(GROUPS)
    rows = []
    for number in groups:
        try:
            row = run_case(number, args.seed)
        except Exception as error:  # a failed case is reported, not fatal
            row = {"number": number, "error": f"{type(error).__name__}: {error}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    done = [r for r in rows if "rank" in r]
    summary = {
        "n": len(rows),
        "n_analysed": len(done),
        "top1": sum(r["rank"] == 1 for r in done) / max(len(done), 1),
        "top3": sum(r["rank"] <= 3 for r in done) / max(len(done), 1),
        "misses": [r["number"] for r in done if r["rank"] != 1],
        "first_shared_with_other_classes": [r["number"] for r in done if r["n_tied_first"] > 1],
        "median_margin_to_next": _median([r["margin_to_next"] for r in done]),
        "median_seconds": _median([r["seconds"] for r in done]),
    }
    result = {
        "description": __doc__.splitlines()[0],
        "seed": args.seed,
        "summary": summary,
        "cases": rows,
        "python": platform.python_version(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
