"""The paper's transfer test (Zaloga et al. 2019, Fig. 3): a selection network trained on K4PbO4 GA models,
applied after every epoch to K4SnO4 GA models it never saw; and the gain of gasolve's network over the paper's.

Usage::

    python benchmarks/nn_transfer.py RUN_DIR [RUN_DIR ...] [--names paper,residual] [--evaluate CHECKPOINT DATASET]
        [--json PATH] [--png PATH]

Each RUN_DIR is the output folder of ``gasolve train-nn ... --transfer K4SnO4_DATASET`` (its ``metrics.json``).
For every run and site the script reports, on the held-out K4PbO4 validation models and on the K4SnO4 transfer
models: the paper's per-site accuracy f_i (share of models whose rounded output equals the label), precision,
recall (the paper's "recognition": share of the in-place atoms found) and the base rate (share of models with
the site in place, which is what a network that always answers "in place" would get as precision). The epoch
reported is the one with the lowest validation loss (what ``checkpoint.msgpack`` holds; choosing on the
transfer set would leak it) and, for comparison with the paper's peak, the best transfer epoch is also shown.

The figure has 9 panels (sites in the reference order: Sn/Pb, K1-K4, O1-O4) with the transfer recognition of
each run over the epochs against the site's base rate, as in the paper's Fig. 3.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _series(epochs: list[dict], part: str, key: str) -> np.ndarray:
    """(n_epochs, n_sites) values of one metric; NaN where undefined."""
    return np.array(
        [[np.nan if v is None else v for v in epoch[part][key]] for epoch in epochs if part in epoch], dtype=float
    )


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Running mean over ``window`` epochs along axis 0 (each transfer epoch sees another portion)."""
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.stack([np.convolve(column, kernel, mode="valid") for column in values.T], axis=1)


def summarise_run(metrics: dict, name: str) -> dict:
    """Per-site figures of one training run at its best-validation epoch, plus the transfer curve."""
    epochs = metrics["epochs"]
    best = metrics.get("best_epoch") or int(np.nanargmin([e["validation"]["loss"] or np.inf for e in epochs])) + 1
    record = epochs[best - 1]
    sites = metrics["site_labels"]
    out = {
        "name": name,
        "model": metrics["config"]["model"],
        "loss": metrics["config"]["loss"],
        "label_radius": metrics["config"]["label_radius"],
        "split": metrics["config"]["split"],
        "n_parameters": metrics["n_parameters"],
        "epochs": len(epochs),
        "best_epoch": best,
        "seconds_per_epoch": float(np.median([e["seconds"]["train"] for e in epochs])),
        "sites": sites,
    }
    for part in ("validation", "transfer"):
        if part not in record:
            continue
        out[part] = {key: record[part][key] for key in ("accuracy", "precision", "recall", "base_rate")}
        out[part]["n_models"] = record[part]["n_models"]
    if "transfer" in record:
        recall = _series(epochs, "transfer", "recall")
        smooth = _smooth(recall, 5)
        peak = int(np.nanargmax(np.nanmean(smooth, axis=1)))
        out["transfer_peak"] = {
            "epochs": [peak + 1, peak + 5],
            "recall_5_epoch_mean": np.nanmean(recall[peak : peak + 5], axis=0).tolist(),
        }
        out["transfer_base_rate"] = metrics["transfer_dataset"]["base_rate"]
    return out


def evaluate_checkpoint(path: str | Path, dataset: str | Path, batch_size: int = 200) -> dict:
    """Per-site metrics of a saved network on every model of a harvested data set (not one portion per epoch).

    Parameters
    ----------
    path : str or Path
        ``nnselect`` checkpoint.
    dataset : str or Path
        Harvested data set; its sites may carry other elements (the transfer K4PbO4 -> K4SnO4).

    Returns
    -------
    dict
        ``checkpoint``, ``dataset``, ``n_models``, ``label_radius``, the per-site lists of
        :func:`nnselect.metrics.site_metrics` and the ranking figures of :func:`ranking_figures`.
    """
    from nnselect import checkpoint, metrics
    from nnselect.dataset import load_dataset
    from nnselect.input_pipeline import build_problem
    from nnselect.train import predict

    model, meta = checkpoint.load(path)
    data = load_dataset(dataset)
    inputs = meta.profile_inputs(build_problem(data.manifest, data.directory), allow_other_elements=True)
    probabilities = predict(model, inputs, data.frac, batch_size)
    labels = data.labels(meta.label_radius)
    result = {
        "checkpoint": str(path),
        "dataset": data.manifest.name,
        "n_models": data.n_models,
        "label_radius": meta.label_radius,
        **metrics.to_json(metrics.site_metrics(probabilities, labels, 0.5)),
    }
    result.update(ranking_figures(probabilities, labels, data.rwp))
    return result


def ranking_figures(probabilities: np.ndarray, labels: np.ndarray, rwp: np.ndarray) -> dict:
    """How well the network's mean probability ranks models by their number of atoms in place, against Rwp.

    Returns
    -------
    dict
        ``spearman_network`` and ``spearman_rwp``: rank correlation of the number of sites in place with the
        mean probability and with -Rwp; ``top_decile_in_place``: mean share of sites in place among the 10 %
        of models ranked best by the network, by Rwp, and over all models.
    """
    from scipy.stats import spearmanr

    in_place = labels.sum(axis=1)
    score = probabilities.mean(axis=1)
    top = max(1, len(score) // 10)
    share = labels.mean(axis=1)
    return {
        "spearman_network": float(spearmanr(score, in_place).statistic),
        "spearman_rwp": float(spearmanr(-np.asarray(rwp, float), in_place).statistic),
        "top_decile_in_place": {
            "network": float(share[np.argsort(-score, kind="stable")[:top]].mean()),
            "rwp": float(share[np.argsort(rwp, kind="stable")[:top]].mean()),
            "all": float(share.mean()),
        },
    }


def format_evaluation(result: dict) -> str:
    lines = [
        f"{result['checkpoint']} on all {result['n_models']:,} models of {result['dataset']} "
        f"(labels at {result['label_radius']} Å):",
        f"  {'site':<5}{'accuracy':>10}{'precision':>10}{'recall':>10}{'base':>10}",
    ]
    for i in range(len(result["accuracy"])):
        values = [result[k][i] for k in ("accuracy", "precision", "recall", "base_rate")]
        lines.append(f"  {i + 1:<5}" + "".join(f"{'-' if v is None else f'{v:.3f}':>10}" for v in values))
    top = result["top_decile_in_place"]
    lines.append(
        f"  rank correlation with the number of sites in place: network {result['spearman_network']:.3f}, "
        f"-Rwp {result['spearman_rwp']:.3f}; share of sites in place in the best 10 %: network "
        f"{top['network']:.3f}, Rwp {top['rwp']:.3f}, all models {top['all']:.3f}"
    )
    return "\n".join(lines)


def format_report(runs: list[dict]) -> str:
    lines = []
    for run in runs:
        lines.append(
            f"{run['name']}: {run['model']} ({run['n_parameters']:,} parameters), {run['loss']} loss, labels at "
            f"{run['label_radius']} Å, split by {run['split']}; best validation epoch {run['best_epoch']} of "
            f"{run['epochs']}, {run['seconds_per_epoch']:.1f} s per epoch"
        )
        header = f"  {'site':<5}" + "".join(
            f"{p + ' ' + k:>18}"
            for p in ("val", "transfer")
            for k in ("acc", "prec", "recall", "base")
            if (p == "val" and "validation" in run) or (p == "transfer" and "transfer" in run)
        )
        lines.append(header)
        for i, site in enumerate(run["sites"]):
            row = f"  {site:<5}"
            for part in ("validation", "transfer"):
                if part in run:
                    for key in ("accuracy", "precision", "recall", "base_rate"):
                        value = run[part][key][i]
                        row += f"{'-' if value is None else f'{value:.3f}':>18}"
            lines.append(row)
        if "transfer_peak" in run:
            a, b = run["transfer_peak"]["epochs"]
            peak = " ".join(f"{v:.2f}" for v in run["transfer_peak"]["recall_5_epoch_mean"])
            lines.append(f"  transfer recognition, best 5 epochs ({a}-{b}): {peak}")
    return "\n".join(lines)


def plot(metrics_list: list[dict], names: list[str], path: str | Path) -> None:
    """Fig. 3 of the paper: transfer recognition per site over the epochs, against the base rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gasolve.plotting import _save

    sites = metrics_list[0]["site_labels"]
    figure, axes = plt.subplots(3, 3, figsize=(12, 9), sharex=True, sharey=True)
    for metrics, name in zip(metrics_list, names, strict=True):
        recall = _series(metrics["epochs"], "transfer", "recall")
        smooth = _smooth(recall, 5)
        offset = (len(recall) - len(smooth)) // 2 + 1
        for i, ax in enumerate(axes.flat):
            line = ax.plot(np.arange(1, len(recall) + 1), recall[:, i], lw=0.6, alpha=0.35)[0]
            ax.plot(np.arange(offset, offset + len(smooth)), smooth[:, i], color=line.get_color(), lw=1.8, label=name)
    base = metrics_list[0]["transfer_dataset"]["base_rate"]
    transfer_name = metrics_list[0]["transfer_dataset"]["name"]
    for i, ax in enumerate(axes.flat):
        ax.axhline(base[i], color="0.3", ls="--", lw=1.0, label="base rate")
        ax.set_title(f"{sites[i]} (K4SnO4 site {i + 1})", fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("epoch (1,200 K4PbO4 patterns each)")
    for ax in axes[:, 0]:
        ax.set_ylabel("in-place atoms recognised")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    figure.suptitle(
        f"Transfer: networks trained on K4PbO4 models, tested on {transfer_name} models "
        "(one new portion per epoch; thick: 5-epoch mean)"
    )
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="training output folders (with metrics.json)")
    parser.add_argument("--names", help="comma-separated names of the runs (default: folder names)")
    parser.add_argument(
        "--evaluate",
        nargs=2,
        action="append",
        default=[],
        metavar=("CHECKPOINT", "DATASET"),
        help="also evaluate a saved network on every model of a data set (repeatable)",
    )
    parser.add_argument("--json", default=str(RESULTS / "nn_transfer.json"))
    parser.add_argument("--png", default=str(RESULTS / "nn_transfer.png"))
    args = parser.parse_args(argv)
    names = args.names.split(",") if args.names else [Path(r).name for r in args.runs]
    if len(names) != len(args.runs):
        print("error: --names must name every run", file=sys.stderr)
        return 2
    metrics_list = []
    for run in args.runs:
        path = Path(run) / "metrics.json"
        try:
            metrics_list.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            return 2
    runs = [summarise_run(m, n) for m, n in zip(metrics_list, names, strict=True)]
    print(format_report(runs))
    evaluations = [evaluate_checkpoint(path, dataset) for path, dataset in args.evaluate]
    for evaluation in evaluations:
        print(format_evaluation(evaluation))
    result = {"benchmark": "nn_transfer", "runs": runs, "whole_set_evaluations": evaluations}
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    with_transfer = [(m, n) for m, n in zip(metrics_list, names, strict=True) if "transfer_dataset" in m]
    if with_transfer:
        plot([m for m, _ in with_transfer], [n for _, n in with_transfer], args.png)
        print(f"wrote {args.json} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
