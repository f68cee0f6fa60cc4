"""Figure of ``benchmarks/convergence.py``: share of runs solved against evaluations and against wall time.

Usage::

    python benchmarks/plot_convergence.py [RESULT.json] [--png PATH]

One column per problem, one line per method; top row against evaluations (Rwp equivalents), bottom row against
wall seconds (one single-threaded worker per run). Each curve is the cumulative share of the runs solved and
is drawn solid up to its ``limit`` (the budget, or the least effort an unsolved run reached before a wall-time
cap stopped it), dotted beyond that up to the last solution.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

COLOURS = {
    "gasolve": "tab:blue",
    "plain": "tab:orange",
    "restarts": "tab:green",
    "half-refine": "tab:gray",
    "nn-rerank": "tab:red",
    "nn-refine": "tab:purple",
    "nn-both": "tab:brown",
    "oracle-rerank": "tab:olive",
    "oracle-refine": "tab:cyan",
}
LABELS = {
    "gasolve": "gasolve (memetic GA)",
    "plain": "plain GA (no local search)",
    "restarts": "random-restart L-BFGS",
    "half-refine": "gasolve, best half refined",
    "nn-rerank": "gasolve + NN rerank",
    "nn-refine": "gasolve + NN picks half to refine",
    "nn-both": "gasolve + NN rerank and refine",
    "oracle-rerank": "gasolve + perfect network rerank",
    "oracle-refine": "gasolve + perfect network picks half to refine",
}


def _label(method: str, result: dict) -> str:
    """Legend text of a method; its GA is the plain GA when ``--ga local_steps=0`` applied to every run."""
    if (result["config"].get("ga") or {}).get("local_steps") != 0:
        return LABELS.get(method, method)
    return LABELS["plain"] if method == "gasolve" else LABELS.get(method, method).replace("gasolve", "plain GA")


def _steps(curve: dict) -> tuple[list[float], list[float]]:
    """Step-function points of a cumulative success curve, from 0 to its limit."""
    xs, ys = [], []
    level = 0.0
    for x, y in zip(curve["x"], curve["success"], strict=True):
        xs += [x, x]
        ys += [level, y]
        level = y
    return xs, ys


def _draw(ax, curve: dict, colour: str, label: str, x_start: float) -> None:
    limit = curve["limit"]
    xs, ys = _steps(curve)
    inside = [(x, y) for x, y in zip(xs, ys, strict=True) if x <= limit]
    beyond = [(x, y) for x, y in zip(xs, ys, strict=True) if x > limit]
    level_at_limit = inside[-1][1] if inside else 0.0
    solid = [(x_start, 0.0), *inside, (limit, level_at_limit)]
    ax.plot(*zip(*solid, strict=True), color=colour, label=label, lw=1.8)
    if beyond:
        dotted = [(limit, level_at_limit), *beyond]
        ax.plot(*zip(*dotted, strict=True), color=colour, lw=1.2, ls=":")


def plot(result: dict, path: str | Path) -> None:
    """Draw the figure of a :func:`benchmarks.convergence.run_benchmark` result to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    summary = result["summary"]
    problems = list(summary)
    fig, axes = plt.subplots(2, len(problems), figsize=(4.6 * len(problems), 7.2), squeeze=False)
    for column, problem in enumerate(problems):
        budget = result["problems"][problem]["budget"]
        for row, (key, unit) in enumerate((("curve_evaluations", "evaluations"), ("curve_seconds", "seconds"))):
            ax = axes[row][column]
            curves = [s[key] for s in summary[problem].values() if s[key] is not None]
            firsts = [c["x"][0] for c in curves if c["x"]]
            ends = [max([c["limit"], *c["x"]]) for c in curves]
            x_start = min([*firsts, *ends]) / 2 if curves else 1.0
            for method, s in summary[problem].items():
                curve = s[key]
                if curve is None:
                    continue
                label = f"{_label(method, result)}: {s['n_solved']}/{s['n_runs']}"
                if s.get("budget", budget) != budget:
                    label += f" (budget {s['budget']:,})"
                _draw(ax, curve, COLOURS.get(method, None), label, x_start)
            if unit == "evaluations":
                ax.axvline(budget, color="0.6", lw=0.8, ls="--")
                ax.set_title(f"{problem} ({result['problems'][problem]['budget']:,} evaluations budget)", fontsize=10)
                ax.set_xlabel("evaluations (Rwp equivalents)")
            else:
                ax.set_xlabel("wall time per run (s, one thread)")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            if ends:
                ax.set_xlim(x_start, 1.5 * max([*ends, budget] if unit == "evaluations" else ends))
            # Head room above 1 for the legend, which would otherwise hide curves.
            ax.set_ylim(-0.02, 1.4 if row == 0 else 1.02)
            ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
            ax.set_ylabel("share of runs solved")
            ax.grid(True, which="major", alpha=0.3)
            if row == 0:
                ax.legend(fontsize=8, loc="upper left", framealpha=0.9)
    versions = result["versions"]
    # GA settings given on the command line apply to every GA method (e.g. local_steps = 0: the paper's plain GA)
    overrides = result["config"].get("ga") or {}
    settings = ""
    if overrides:
        settings = "\nGA settings for every run: " + ", ".join(f"{k} = {v}" for k, v in overrides.items())
    fig.suptitle(
        f"gasolve {versions['gasolve']} convergence: {len(result['runs'])} runs, "
        f"{result['machine']['cpu_model']}, {len(result['workers'])} workers{settings}",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="?", default=str(RESULTS / "convergence.json"), help="benchmark result")
    parser.add_argument("--png", help="output image (default: the JSON path with .png)")
    args = parser.parse_args(argv)
    source = Path(args.json)
    try:
        result = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        print(f"error: cannot read {source}: {error}", file=sys.stderr)
        return 2
    out = Path(args.png) if args.png else source.with_suffix(".png")
    plot(result, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
