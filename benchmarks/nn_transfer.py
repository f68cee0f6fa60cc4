"""The paper's transfer test (Zaloga et al. 2019, Fig. 3): a selection network trained on K4PbO4 GA models,
applied after every epoch to K4SnO4 GA models it never saw; and the gain of gasolve's network over the paper's.

Usage::

    python benchmarks/nn_transfer.py RUN_DIR [RUN_DIR ...] [--names paper,residual] [--evaluate CHECKPOINT DATASET]
        [--compare] [--checkpoint checkpoint|last] [--ranking-radii 0.1,0.5] [--json PATH] [--png PATH]

Each RUN_DIR is the output folder of ``gasolve train-nn ... --transfer K4SnO4_DATASET`` (its ``metrics.json``).
For every run and site the script reports, on the held-out K4PbO4 validation models and on the K4SnO4 transfer
models: the paper's per-site accuracy f_i (share of models whose rounded output equals the label), precision,
recall (the paper's "recognition": share of the in-place atoms found) and the base rate (share of models with
the site in place, which is what a network that always answers "in place" would get as precision). The epoch
reported is the one with the lowest validation loss (what ``checkpoint.msgpack`` holds; choosing on the
transfer set would leak it) and, for comparison with the paper's peak, the best transfer epoch is also shown.

``--compare`` sets the networks side by side on whole sets instead of per-epoch samples: each run's saved network
(``checkpoint.msgpack``, the lowest validation loss, or ``last.msgpack``) is applied to (a) every model of the GA
runs its training held out (the split by run is read from ``metrics.json``, or redone from the config's seed for
runs trained before it was recorded) and (b) every model of the transfer set. Per site: recall, precision, F1 and
base rate at the network's own label radius, and the threshold-free ROC-AUC and average precision; per network:
the Spearman correlation of the mean probability with the number of sites in place (against that of -Rwp) and the
share of sites in place among the 10 % of models ranked best, at every radius of ``--ranking-radii``. The runs
must hold out the same GA runs (same data set, seed and split), which is checked.

The figure has 9 panels (sites in the reference order: Sn/Pb, K1-K4, O1-O4) with the transfer recognition of
each run over the epochs against the site's base rate, as in the paper's Fig. 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that `python benchmarks/nn_transfer.py` finds benchmarks and nnselect
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
        mean probability and with -Rwp (None when either is constant); ``top_decile_in_place``: mean share of
        sites in place among the 10 % of models ranked best by the network, by Rwp, and over all models.
    """
    from scipy.stats import spearmanr

    in_place = labels.sum(axis=1)
    score = probabilities.mean(axis=1)
    top = max(1, len(score) // 10)
    share = labels.mean(axis=1)

    def spearman(values: np.ndarray) -> float | None:
        """None where it is undefined (constant input), which JSON cannot hold as NaN."""
        if np.ptp(values) == 0 or np.ptp(in_place) == 0:
            return None
        return float(spearmanr(values, in_place).statistic)

    return {
        "spearman_network": spearman(score),
        "spearman_rwp": spearman(-np.asarray(rwp, float)),
        "top_decile_in_place": {
            "network": float(share[np.argsort(-score, kind="stable")[:top]].mean()),
            "rwp": float(share[np.argsort(rwp, kind="stable")[:top]].mean()),
            "all": float(share.mean()),
        },
    }


#: Per-site figures of the side-by-side comparison (keys of :func:`nnselect.metrics.site_metrics`).
COMPARE_KEYS = ("recall", "precision", "f1", "roc_auc", "average_precision")


def held_out_seeds(metrics: dict, seeds: np.ndarray) -> np.ndarray:
    """The GA runs (seeds) a training run held out for validation.

    Parameters
    ----------
    metrics : dict
        The run's ``metrics.json``; its split must be by run.
    seeds : ndarray, shape (n_models,)
        GA run of every model of its training data set (in the data set's order).

    Returns
    -------
    ndarray of int, sorted
        From ``dataset.validation_seeds`` when recorded; otherwise the split redone as
        :func:`nnselect.train.train_and_evaluate` draws it (the first draw of ``default_rng(config.seed)``), checked
        against the recorded number of validation models.
    """
    from nnselect.input_pipeline import split_indices

    config, recorded = metrics["config"], metrics["dataset"]
    if config["split"] != "run":
        raise ValueError(f"the run was split by {config['split']}, not by GA run: it has no held-out runs")
    if recorded.get("validation_seeds") is not None:
        return np.array(sorted(recorded["validation_seeds"]))
    if config["max_models"]:
        raise ValueError("cannot redo the split of a run trained on a subset (max_models)")
    rng = np.random.default_rng(config["seed"])
    _, validation = split_indices(seeds, rng, config["validation_fraction"], "run")
    if len(validation) != recorded["n_validation"]:
        raise ValueError(
            f"the redone split holds {len(validation)} models, the run held out {recorded['n_validation']}"
        )
    return np.unique(seeds[validation])


def network_figures(
    probabilities: np.ndarray, distances: np.ndarray, rwp: np.ndarray, radius: float, ranking_radii: list[float]
) -> dict:
    """Per-site figures at the network's label ``radius`` and ranking figures at each of ``ranking_radii``.

    Parameters
    ----------
    probabilities, distances : ndarray, shape (n_models, n_sites)
    rwp : ndarray, shape (n_models,)
    radius : float
        Å, the radius the network was trained for.
    ranking_radii : list of float
        Å.

    Returns
    -------
    dict
        ``label_radius``, ``base_rate`` and the per-site lists of :data:`COMPARE_KEYS` (and ``accuracy``), and
        ``ranking``: {radius: :func:`ranking_figures`}.
    """
    from nnselect import metrics
    from nnselect.dataset import in_place

    labels = in_place(distances, radius)
    site = metrics.to_json(metrics.site_metrics(probabilities, labels, 0.5))
    out = {"label_radius": radius, **{key: site[key] for key in ("base_rate", "accuracy", *COMPARE_KEYS)}}
    out["ranking"] = {f"{r:g}": ranking_figures(probabilities, in_place(distances, r), rwp) for r in ranking_radii}
    return out


def paired_bootstrap(
    probabilities: dict[str, np.ndarray], labels: np.ndarray, seeds: np.ndarray, n_resamples: int = 200, seed: int = 0
) -> dict:
    """Differences of site-mean ROC-AUC and average precision between networks, with a bootstrap over GA runs.

    Models of one GA run are near-copies, so the resampling unit is the run: each resample draws the runs with
    replacement and takes all their models. Every network after the first is compared with the first.

    Parameters
    ----------
    probabilities : dict of name -> ndarray, shape (n_models, n_sites)
        The first entry is the reference.
    labels : ndarray, shape (n_models, n_sites), bool
    seeds : ndarray, shape (n_models,)
        GA run of each model.
    n_resamples : int
    seed : int
        Of the NumPy generator that draws the resamples.

    Returns
    -------
    dict
        {"B - A": {"roc_auc" | "average_precision": {"difference", "interval_95", "share_above_zero"}}} with
        the difference measured on the whole set and the 2.5-97.5 percentiles over the resamples.
    """
    from nnselect import metrics

    def means(pick: np.ndarray) -> dict[str, tuple[float, float]]:
        return {
            name: (
                float(np.nanmean(metrics.site_roc_auc(p[pick], labels[pick]))),
                float(np.nanmean(metrics.site_average_precision(p[pick], labels[pick]))),
            )
            for name, p in probabilities.items()
        }

    runs = np.unique(seeds)
    members = [np.flatnonzero(seeds == run) for run in runs]
    rng = np.random.default_rng(seed)
    whole = means(np.arange(len(labels)))
    draws = [
        means(np.concatenate([members[i] for i in rng.integers(0, len(runs), len(runs))])) for _ in range(n_resamples)
    ]
    names = list(probabilities)
    out = {}
    for name in names[1:]:
        pair = {}
        for k, key in enumerate(("roc_auc", "average_precision")):
            samples = np.array([d[name][k] - d[names[0]][k] for d in draws])
            pair[key] = {
                "difference": whole[name][k] - whole[names[0]][k],
                "interval_95": np.percentile(samples, [2.5, 97.5]).tolist(),
                "share_above_zero": float(np.mean(samples > 0)),
            }
        out[f"{name} - {names[0]}"] = pair
    return out


def compare_networks(
    runs: list[tuple[str, str | Path, dict]],
    ranking_radii: list[float],
    checkpoint_name: str = "checkpoint.msgpack",
    batch_size: int = 200,
    n_resamples: int = 200,
) -> dict:
    """Several trained networks side by side on whole sets: their held-out training runs and the transfer set.

    Parameters
    ----------
    runs : list of (name, run folder, metrics.json content)
        Every run must be split by GA run from the same training data set, holding out the same runs, and (for
        the transfer part) name the same transfer data set.
    ranking_radii : list of float
        Å; ranking figures are given at each.
    checkpoint_name : str
        The file of each run folder to evaluate.
    batch_size : int
    n_resamples : int
        Bootstrap resamples of :func:`paired_bootstrap` (0: none); only when all networks share a label radius.

    Returns
    -------
    dict
        ``checkpoint``, ``ranking_radii`` and ``sets``: a list with one entry per data set (``part``:
        ``"held_out"`` or ``"transfer"``, ``dataset``, ``n_models``, ``n_runs``, ``site_labels``, ``seeds`` (held
        out only),
        ``networks``: {name: :func:`network_figures` + ``model``, ``loss``, ``epoch``, ``seconds``} and
        ``bootstrap`` (:func:`paired_bootstrap`)).
    """
    from nnselect import checkpoint
    from nnselect.dataset import in_place, load_dataset
    from nnselect.input_pipeline import build_problem
    from nnselect.train import predict

    training = {m["config"]["dataset"] for _, _, m in runs}
    transfer = {m["config"].get("transfer_dataset") for _, _, m in runs}
    if len(training) != 1:
        raise ValueError(f"the runs were trained on different data sets: {sorted(training)}")
    data = load_dataset(training.pop())
    held_out = [held_out_seeds(m, data.seed) for _, _, m in runs]
    if any(not np.array_equal(h, held_out[0]) for h in held_out):
        raise ValueError("the runs held out different GA runs; train them with the same split, seed and data set")
    sets = [("held_out", data.subset(np.flatnonzero(np.isin(data.seed, held_out[0]))))]
    if len(transfer) == 1 and None not in transfer:
        sets.append(("transfer", load_dataset(transfer.pop())))
    out = {"checkpoint": checkpoint_name, "ranking_radii": list(ranking_radii), "sets": []}
    for part, models in sets:
        entry = {
            "part": part,
            "dataset": models.manifest.name,
            "n_models": models.n_models,
            "n_runs": len(np.unique(models.seed)),
            "site_labels": list(models.manifest.site_labels),
            "networks": {},
        }
        if part == "held_out":
            entry["seeds"] = held_out[0].tolist()
        problem = build_problem(models.manifest, models.directory)
        kept = {}
        for name, folder, metrics in runs:
            model, meta = checkpoint.load(Path(folder) / checkpoint_name)
            inputs = meta.profile_inputs(problem, allow_other_elements=part == "transfer")
            started = time.perf_counter()
            probabilities = predict(model, inputs, models.frac, batch_size)
            seconds = time.perf_counter() - started
            kept[name] = (probabilities, meta.label_radius)
            figures = network_figures(probabilities, models.distances, models.rwp, meta.label_radius, ranking_radii)
            entry["networks"][name] = {
                "model": metrics["config"]["model"],
                "loss": metrics["config"]["loss"],
                "epoch": meta.info.get("epoch"),
                "epochs_trained": len(metrics["epochs"]),
                "seconds": round(seconds, 1),
                **figures,
            }
        radii = {radius for _, radius in kept.values()}
        if len(kept) > 1 and n_resamples and len(radii) == 1:  # AUC and AP compare only on the same labels
            labels = in_place(models.distances, radii.pop())
            probabilities = {name: p for name, (p, _) in kept.items()}
            entry["bootstrap"] = paired_bootstrap(probabilities, labels, models.seed, n_resamples)
        out["sets"].append(entry)
    return out


def _cell(value: float | None, width: int = 7) -> str:
    return f"{'-' if value is None else f'{value:.3f}':>{width}}"


def _text(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _mean(values: list) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def format_comparison(result: dict) -> str:
    """The side-by-side tables of :func:`compare_networks`, one per data set, with a row of site means."""
    heads = {"base_rate": "base", "recall": "recall", "precision": "prec", "f1": "F1", "roc_auc": "AUC"}
    heads["average_precision"] = "AP"
    width = 7 * len(heads)
    lines = []
    for entry in result["sets"]:
        networks = entry["networks"]
        what = "held-out GA runs of" if entry["part"] == "held_out" else "transfer set"
        lines.append(
            f"{what} {entry['dataset']}: all {entry['n_models']:,} models of {entry['n_runs']} runs "
            f"({result['checkpoint']} of each network)"
        )
        titles = [
            f"{name}: {n['model']} {n['loss']} {n['label_radius']:g} Å ep {n['epoch']}" for name, n in networks.items()
        ]
        lines.append(f"  {'':<6}" + "".join(f" | {title[:width]:<{width}}" for title in titles))
        lines.append(f"  {'site':<6}" + (" | " + "".join(f"{h:>7}" for h in heads.values())) * len(networks))
        for i, label in enumerate(entry["site_labels"]):
            row = "".join(" | " + "".join(_cell(n[key][i]) for key in heads) for n in networks.values())
            lines.append(f"  {label:<6}{row}")
        row = "".join(" | " + "".join(_cell(_mean(n[key])) for key in heads) for n in networks.values())
        lines.append(f"  {'mean':<6}{row}")
        for key in (f"{radius:g}" for radius in result["ranking_radii"]):
            ranking = {name: n["ranking"][key] for name, n in networks.items()}
            first = next(iter(ranking.values()))
            spearman = ", ".join(f"{name} {_text(r['spearman_network'])}" for name, r in ranking.items())
            top = ", ".join(f"{name} {r['top_decile_in_place']['network']:.3f}" for name, r in ranking.items())
            lines.append(
                f"  sites in place at {key} Å, Spearman with the mean probability: {spearman}; with -Rwp "
                f"{_text(first['spearman_rwp'])}"
            )
            lines.append(
                f"    share of sites in place in the best 10 %: {top}; by Rwp "
                f"{first['top_decile_in_place']['rwp']:.3f}; all models {first['top_decile_in_place']['all']:.3f}"
            )
        for pair, figures in entry.get("bootstrap", {}).items():
            parts = [
                f"{key} {f['difference']:+.4f} [{f['interval_95'][0]:+.4f}, {f['interval_95'][1]:+.4f}]"
                for key, f in figures.items()
            ]
            lines.append(f"  site-mean difference {pair} (95 % bootstrap over GA runs): {'; '.join(parts)}")
        lines.append("")
    return "\n".join(lines)


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
        f"  rank correlation with the number of sites in place: network {_text(result['spearman_network'])}, "
        f"-Rwp {_text(result['spearman_rwp'])}; share of sites in place in the best 10 %: network "
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


def _provenance() -> dict:
    """Package versions, commit, CPU and cores (:mod:`benchmarks.provenance`)."""
    from benchmarks import provenance

    return {
        "versions": provenance.versions("jax", "flax", "optax"),
        "cpu_model": provenance.cpu_model(),
        "usable_cores": provenance.usable_cores(),
    }


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
    parser.add_argument(
        "--compare",
        action="store_true",
        help="evaluate every run's network on its held-out GA runs and on the whole transfer set, side by side",
    )
    parser.add_argument(
        "--checkpoint",
        choices=("checkpoint", "last"),
        default="checkpoint",
        help="with --compare: the lowest-validation-loss network (default) or the last epoch's",
    )
    parser.add_argument(
        "--ranking-radii", default="0.1,0.5", help="with --compare: label radii (Å) of the ranking figures"
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
    if args.compare:
        radii = [float(r) for r in args.ranking_radii.split(",")]
        named = list(zip(names, args.runs, metrics_list, strict=True))
        comparison = compare_networks(named, radii, f"{args.checkpoint}.msgpack")
        print(format_comparison(comparison))
        result["comparison"] = comparison
        result["provenance"] = _provenance()
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    with_transfer = [(m, n) for m, n in zip(metrics_list, names, strict=True) if "transfer_dataset" in m]
    if with_transfer:
        plot([m for m, _ in with_transfer], [n for _, n in with_transfer], args.png)
        print(f"wrote {args.json} and {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
