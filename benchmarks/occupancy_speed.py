"""Cost of the dynamical occupancy correction: Rwp and Rwp + gradient per second with it off and on.

Usage::

    python benchmarks/occupancy_speed.py [--repeats 7] [--models 2000] [--json benchmarks/results/occupancy_speed.json]

Every measurement is made on one Numba thread and on all of them: on a shared machine the one-thread figures
(and the best of the repetitions) are the robust ones, since a parallel call waits for every thread to be
scheduled.

Problems (general positions, as a run without Wyckoff letters scores them): K4SnO4 (P-1, 9 sites, Cu Kα1,
2θ 5-80° in 0.015° steps, the bundled example pattern) and PbSO4 (Pnma, 5 sites, the round-robin pattern 10-160°,
Cu Kα1+Kα2, the profile of its Le Bail fit as in ``examples/PbSO4_general.toml``, 12 background terms). For each
problem and each call (``Scorer.rwp``, ``Scorer.rwp_and_gradient``) the same random batches are scored without
and with the correction (own images only, and with identical atoms), the repetitions interleaved so that the
machine's drift spreads over all variants; each timed call follows an untimed one on the same batch. Models are
random (uniform fractional coordinates), so most atoms are far from special positions and the factors are 1:
the measured cost is that of the pre-step and the occupancy kernels, not of any particular geometry.

``run_benchmark`` returns plain data and writes JSON (settings, machine, versions).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import provenance  # noqa: E402
from gasolve.crystal import read_cif  # noqa: E402
from gasolve.diffraction.profile import PeakProfile  # noqa: E402
from gasolve.diffraction.wavelength import parse_radiation  # noqa: E402
from gasolve.io.patterns import read_pattern  # noqa: E402
from gasolve.scoring import Scorer, ScoringProblem  # noqa: E402

EXAMPLES = ROOT / "examples"
#: The profile fitted by ``gasolve lebail examples/PbSO4.toml`` (lebail.toml), so no fit is needed here.
PBSO4_PROFILE = PeakProfile(
    caglioti=(0.009018585967304465, 0.01020259927480067, 0.00269736022055588),
    eta=0.7520836215507074,
    eta_slope=0.0013771140436405292,
    zero=-0.010865714883024026,
    axial=0.027591311125247764,
)


def problems() -> dict[str, ScoringProblem]:
    """The two problems on general positions, without the correction."""
    k4 = read_cif(EXAMPLES / "K4SnO4.cif")
    pb = read_cif(EXAMPLES / "PbSO4.cif")
    return {
        "K4SnO4 (P-1, 9 sites)": ScoringProblem.build(
            k4.cell,
            k4.space_group,
            k4.elements,
            read_pattern(EXAMPLES / "K4SnO4.xye").restrict(5.0, 80.0),
            parse_radiation("CuKa1"),
            PeakProfile.constant_fwhm(0.1, eta=0.5),
            background_terms=6,
            b_iso=1.0,
        ),
        "PbSO4 (Pnma, 5 sites)": ScoringProblem.build(
            pb.cell,
            pb.space_group,
            pb.elements,
            read_pattern(EXAMPLES / "PbSO4.xra"),
            parse_radiation("CuKa12"),
            PBSO4_PROFILE,
            background_terms=12,
            b_iso=1.0,
        ),
    }


def _rate(function, frac: np.ndarray) -> float:
    function(frac)  # untimed: memory first touched, caches warm
    gc.collect()
    start = time.perf_counter()
    function(frac)
    return len(frac) / (time.perf_counter() - start)


def _spread(values: list[float]) -> dict:
    q = np.percentile(values, [0, 25, 50, 75, 100])
    return {"min": q[0], "p25": q[1], "median": q[2], "p75": q[3], "max": q[4], "values": list(map(float, values))}


def run_benchmark(repeats: int = 7, n_models: int = 2000, seed: int = 0, json_path: str | Path | None = None) -> dict:
    """Models per second of every problem, call, variant and thread count; spreads and ratios to the plain
    scorer."""
    import numba

    all_threads = numba.get_num_threads()
    results = {}
    for threads in sorted({1, all_threads}):
        numba.set_num_threads(threads)
        results[f"{threads} thread{'s' if threads > 1 else ''}"] = _measure(repeats, n_models, seed)
    numba.set_num_threads(all_threads)
    result = {
        "settings": {"repeats": repeats, "n_models": n_models, "seed": seed},
        "results": results,
        "machine": {
            "cpu": provenance.cpu_model(),
            "usable_cores": provenance.usable_cores(),
            "load_average": list(os.getloadavg()),
        },
        "versions": provenance.versions("gemmi"),
    }
    if json_path is not None:
        Path(json_path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _measure(repeats: int, n_models: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    results = {}
    for name, problem in problems().items():
        variants = {
            "off": Scorer(problem),
            "on": Scorer(problem.with_occupancy_correction()),
            "on, identical atoms": Scorer(problem.with_occupancy_correction(identical=True)),
        }
        calls = {"rwp": "rwp", "rwp_and_gradient": "rwp_and_gradient"}
        rates = {(v, c): [] for v in variants for c in calls}
        batch = rng.random((n_models, problem.n_sites, 3))
        for scorer in variants.values():  # compile or load every kernel before timing
            scorer.rwp(batch[:4])
            scorer.rwp_and_gradient(batch[:4])
        for _ in range(repeats):
            batch = rng.random((n_models, problem.n_sites, 3))
            for (variant, call), values in rates.items():
                values.append(_rate(getattr(variants[variant], calls[call]), batch))
        entry = {"n_reflections": problem.n_refl, "n_points": problem.pattern.n_points, "calls": {}}
        for call in calls:
            off = np.array(rates[("off", call)])
            entry["calls"][call] = {
                variant: {
                    "models_per_second": _spread(rates[(variant, call)]),
                    "ratio_to_off": _spread(list(np.array(rates[(variant, call)]) / off)),
                }
                for variant in variants
            }
        results[name] = entry
    return results


def format_report(result: dict) -> str:
    head = f"{'threads':9} {'problem':23} {'call':17} {'variant':20} {'median/s':>9} {'best/s':>9}"
    head += f" {'ratio':>6} {'best':>6}"
    lines = [head + "   (ratio: median of per-repetition ratios to off; best: ratio of the best rates)"]
    for threads, problems_ in result["results"].items():
        for name, entry in problems_.items():
            for call, variants in entry["calls"].items():
                best_off = variants["off"]["models_per_second"]["max"]
                for variant, numbers in variants.items():
                    rate, ratio = numbers["models_per_second"], numbers["ratio_to_off"]
                    lines.append(
                        f"{threads:9} {name:23} {call:17} {variant:20} {rate['median']:9,.0f} {rate['max']:9,.0f} "
                        f"{ratio['median']:6.3f} {rate['max'] / best_off:6.3f}"
                    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "occupancy_speed.json"))
    args = parser.parse_args(argv)
    result = run_benchmark(args.repeats, args.models, json_path=args.json)
    print(format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
