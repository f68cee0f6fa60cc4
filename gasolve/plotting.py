"""Plots (matplotlib, Agg backend). Science modules never plot; the CLI calls these."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gasolve.io.atomic import atomic_writer


def _save(fig, path: str | Path) -> None:
    """Write a figure atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_writer(path) as stream:
            fig.savefig(stream, format=path.suffix.lstrip(".") or None)
    finally:
        plt.close(fig)


def plot_fit(
    path: str | Path,
    two_theta: np.ndarray,
    y_obs: np.ndarray,
    y_calc: np.ndarray,
    ticks: list[tuple[str, np.ndarray]],
    title: str = "",
    annotation: str = "",
) -> None:
    """Rietveld-style plot: observed (points), calculated (line), difference (below) and reflection ticks.

    Parameters
    ----------
    path : output PNG.
    two_theta, y_obs, y_calc : ndarray, shape (n_points,)
    ticks : list of (label, positions in degrees 2θ), one row of ticks per entry (e.g. per emission line).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    difference = y_obs - y_calc
    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=120)
    span = float(np.max(y_obs) - np.min(y_obs)) or 1.0
    ax.plot(two_theta, y_obs, "o", ms=1.6, mfc="none", mec="tab:blue", mew=0.5, label="observed")
    ax.plot(two_theta, y_calc, "-", lw=0.8, color="tab:red", label="calculated")
    base = float(np.min(y_obs)) - 0.05 * span
    for row, (label, positions) in enumerate(ticks):
        inside = positions[(positions >= two_theta[0]) & (positions <= two_theta[-1])]
        y = base - row * 0.05 * span
        ax.vlines(inside, y - 0.02 * span, y + 0.02 * span, color=f"C{2 + row}", lw=0.6, label=label)
    offset = base - (len(ticks) + 0.5) * 0.05 * span - float(np.max(difference))
    ax.plot(two_theta, difference + offset, "-", lw=0.6, color="0.35", label="difference")
    ax.set_xlim(two_theta[0], two_theta[-1])
    ax.set_xlabel("2θ (degrees)")
    ax.set_ylabel("intensity")
    ax.set_title(title)
    if annotation:
        ax.text(
            0.99,
            0.97,
            annotation,
            transform=ax.transAxes,
            ha="right",
            va="top",
            family="monospace",
            fontsize=9,
        )
    ax.legend(loc="upper center", fontsize=8, ncol=4, frameon=False)
    _save(fig, path)


def plot_convergence(
    path: str | Path,
    history: list[dict] | tuple[dict, ...],
    title: str = "",
    evaluations_to_solution: float | None = None,
) -> None:
    """Best Rwp overall and per island (best and median) against evaluations, log-scaled evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evaluations = np.array([row["evaluations"] for row in history], dtype=float)
    fig, ax = plt.subplots(figsize=(9, 5), dpi=120)
    n_islands = sum(1 for key in history[-1] if key.endswith("_best_rwp") and key.startswith("island"))
    for i in range(n_islands):
        best = [row.get(f"island{i}_best_rwp", np.nan) for row in history]
        median = [row.get(f"island{i}_median_rwp", np.nan) for row in history]
        ax.plot(evaluations, best, "-", lw=0.8, color=f"C{i}", label=f"island {i} best")
        ax.plot(evaluations, median, ":", lw=0.8, color=f"C{i}", label=f"island {i} median")
    ax.plot(evaluations, [row["best_rwp"] for row in history], "-", lw=2.0, color="black", label="best overall")
    if evaluations_to_solution is not None:
        ax.axvline(evaluations_to_solution, color="tab:green", ls="--", lw=1, label="solution found")
    ax.set_xscale("log")
    ax.set_xlabel("evaluations (Rwp equivalents)")
    ax.set_ylabel("Rwp")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)


def plot_refinement_progress(path: str | Path, stages: list[tuple[str, list[float]]], title: str = "") -> None:
    """Rwp after every accepted least-squares cycle of a staged refinement, the stages one after another.

    Parameters
    ----------
    path : output PNG.
    stages : list of (stage name, Rwp after each cycle, the stage's start first).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    start = 0
    for k, (name, history) in enumerate(stages):
        cycles = np.arange(start, start + len(history))
        ax.plot(cycles, history, "o-", ms=3, lw=1, color=f"C{k % 10}", label=f"{name} ({history[-1]:.4f})")
        start += max(len(history) - 1, 0) + 1
    ax.set_xlabel("least-squares cycle (all stages)")
    ax.set_ylabel("Rwp")
    ax.set_title(title)
    ax.legend(fontsize=8)
    _save(fig, path)
