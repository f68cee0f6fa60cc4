"""Figure of ``benchmarks/symmetry_accuracy.py``: Table 2 confusion matrices and accuracy per space group (Fig. 2).

Usage::

    python benchmarks/plot_symmetry.py [RESULT.json] [--png PATH]

Left: crystal-system confusion matrices (rows true, columns predicted, row-normalised, counts printed) of the
calculated stratified test split and of the measured RRUFF patterns. Right: space-group top-1 accuracy on the
calculated test split against the space-group number, marker area by the number of test patterns, with the
number of training structures of each group on a second axis (the paper's Fig. 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"
SHORT = ("tric", "mono", "orth", "trig", "hex", "tetr", "cub")


def _confusion(ax, matrix: list[list[int]], title: str) -> None:
    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                colour = "white" if share[i, j] > 0.6 else "black"
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(7), SHORT, fontsize=8)
    ax.set_yticks(range(7), SHORT, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gasolve.plotting import _save

    fig = plt.figure(figsize=(14, 5.5))
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1, 2.6])
    calc = result["test_calculated"]
    _confusion(
        fig.add_subplot(grid[:, 0]),
        calc["confusion_system"],
        f"calculated test: system {100 * calc['system_top1']:.1f}%",
    )
    if "rruff" in result:
        rruff = result["rruff"]
        _confusion(
            fig.add_subplot(grid[:, 1]),
            rruff["confusion_system"],
            f"RRUFF measured: system {100 * rruff['system_top1']:.1f}%",
        )
    ax = fig.add_subplot(grid[:, 2])
    per = calc["per_space_group"]
    n = np.asarray(per["n"], float)
    accuracy = np.divide(per["correct"], n, out=np.full_like(n, np.nan), where=n > 0)
    numbers = np.arange(1, len(n) + 1)
    tested = n > 0
    ax.scatter(
        numbers[tested],
        accuracy[tested],
        s=4 + 3 * np.sqrt(n[tested]),
        alpha=0.6,
        color="tab:blue",
        label="top-1 accuracy (area ~ test patterns)",
    )
    for edge in (2, 15, 74, 142, 167, 194):
        ax.axvline(edge + 0.5, color="grey", lw=0.5)
    ax.set_xlim(0, 231)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("space group number")
    ax.set_ylabel("space-group accuracy (calculated test split)")
    twin = ax.twinx()
    twin.bar(numbers, per["train_n"], color="tab:orange", alpha=0.2, width=1.0, label="training structures")
    twin.set_yscale("log")
    twin.set_ylabel("training structures")
    ax.set_zorder(twin.get_zorder() + 1)  # the accuracy points above the bars
    ax.patch.set_visible(False)
    ax.set_title(
        f"space group top-1 {100 * calc['space_group_top1']:.1f}%, top-5 {100 * calc['space_group_top5']:.1f}%",
        fontsize=9,
    )
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + twin.get_legend_handles_labels()[1]
    ax.legend(handles, labels, loc="lower right", fontsize=8)
    _save(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Plot the symmetry-network benchmark.")
    parser.add_argument("result", nargs="?", type=Path, default=RESULTS / "symmetry_accuracy.json")
    parser.add_argument("--png", type=Path, default=RESULTS / "symmetry_accuracy.png")
    args = parser.parse_args(argv)
    plot(json.loads(args.result.read_text()), args.png)
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
