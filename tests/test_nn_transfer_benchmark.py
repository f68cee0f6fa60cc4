"""benchmarks/nn_transfer.py: the per-run summary and the ranking figures on hand-made numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import nn_transfer


def _record(epoch: int, loss: float, recall: list[float]) -> dict:
    part = {"accuracy": [0.9, 0.8], "precision": [0.5, None], "recall": recall, "base_rate": [0.2, 0.1]}
    return {
        "epoch": epoch,
        "train_loss": loss,
        "validation": {"loss": loss, "n_models": 10, **part},
        "transfer": {"loss": loss, "n_models": 5, **part},
        "seconds": {"train": 2.0, "evaluation": 1.0},
    }


def test_summary_takes_the_best_validation_epoch_and_the_best_five_transfer_epochs():
    losses = [0.5, 0.4, 0.3, 0.35, 0.45, 0.5, 0.6]
    recalls = [[0.0, 0.0], [0.1, 0.0], [0.2, 0.1], [0.9, 0.8], [0.9, 0.8], [0.9, 0.8], [0.9, 0.8]]
    metrics = {
        "config": {"model": "PaperCNN", "loss": "mse", "label_radius": 0.1, "split": "model"},
        "n_parameters": 10,
        "site_labels": ["Pb1", "K1"],
        "transfer_dataset": {"base_rate": [0.3, 0.2], "name": "K4SnO4"},
        "epochs": [_record(i + 1, loss, r) for i, (loss, r) in enumerate(zip(losses, recalls, strict=True))],
    }
    summary = nn_transfer.summarise_run(metrics, "paper")
    assert summary["best_epoch"] == 3 and summary["validation"]["recall"] == [0.2, 0.1]
    assert summary["transfer_peak"]["epochs"] == [3, 7]
    np.testing.assert_allclose(summary["transfer_peak"]["recall_5_epoch_mean"], [0.76, 0.66])
    assert "Pb1" in nn_transfer.format_report([summary])


def test_ranking_figures_by_hand():
    labels = np.array([[1, 1], [1, 0], [0, 0], [0, 0]], dtype=float)
    probabilities = np.array([[0.9, 0.8], [0.7, 0.1], [0.2, 0.1], [0.1, 0.0]])
    rwp = np.array([0.3, 0.1, 0.2, 0.4])  # Rwp ranks the model with one site in place first
    figures = nn_transfer.ranking_figures(probabilities, labels, rwp)
    assert figures["spearman_network"] == pytest.approx(0.9486832980505138)
    assert figures["top_decile_in_place"] == {"network": 1.0, "rwp": 0.5, "all": 0.375}


def test_held_out_seeds_redo_the_training_split_or_read_it():
    from nnselect.input_pipeline import split_indices

    seeds = np.repeat(np.arange(10, 20), [5, 7, 3, 9, 4, 6, 8, 2, 5, 6])
    _, validation = split_indices(seeds, np.random.default_rng(3), 0.2, "run")
    config = {"split": "run", "seed": 3, "validation_fraction": 0.2, "max_models": 0}
    metrics = {"config": config, "dataset": {"n_validation": len(validation)}}
    np.testing.assert_array_equal(nn_transfer.held_out_seeds(metrics, seeds), np.unique(seeds[validation]))
    metrics["dataset"]["validation_seeds"] = [12, 11]
    np.testing.assert_array_equal(nn_transfer.held_out_seeds(metrics, seeds), [11, 12])
    with pytest.raises(ValueError, match="not by GA run"):
        nn_transfer.held_out_seeds({"config": {**config, "split": "model"}, "dataset": {}}, seeds)
    with pytest.raises(ValueError, match="redone split"):
        nn_transfer.held_out_seeds({"config": config, "dataset": {"n_validation": 1}}, seeds)


def test_network_figures_and_the_side_by_side_table():
    distances = np.array([[0.05, 0.4], [0.3, 0.05], [0.6, 0.7], [0.08, 0.09]])
    probabilities = np.array([[0.9, 0.2], [0.6, 0.8], [0.1, 0.3], [0.7, 0.4]])
    rwp = np.array([0.2, 0.1, 0.5, 0.3])
    figures = nn_transfer.network_figures(probabilities, distances, rwp, 0.1, [0.1, 0.5])
    # labels at 0.1 Å: site 0 [1, 0, 0, 1], site 1 [0, 1, 0, 1]; site 1's 0.4 < 0.5 threshold misses model 3
    assert figures["base_rate"] == [0.5, 0.5] and figures["recall"] == [1.0, 0.5]
    assert figures["precision"] == [2 / 3, 1.0] and figures["roc_auc"] == [1.0, 1.0]
    assert figures["ranking"]["0.5"]["top_decile_in_place"]["all"] == 0.75
    entry = {"part": "transfer", "dataset": "K4SnO4", "n_models": 4, "n_runs": 1, "site_labels": ["Sn1", "K1"]}
    named = {"model": "PaperCNN", "loss": "mse", "epoch": 3, **figures}
    result = {"checkpoint": "checkpoint.msgpack", "ranking_radii": [0.1, 0.5], "sets": []}
    result["sets"].append({**entry, "networks": {"paper": named, "residual": named}})
    text = nn_transfer.format_comparison(result)
    assert "paper: PaperCNN mse 0.1 Å ep 3" in text and "residual:" in text
    assert "  mean   |   0.500  0.750  0.833  0.733  1.000  1.000 |" in text
    assert "with -Rwp" in text and "at 0.5 Å" in text and "  Sn1    |" in text


def test_compare_networks_on_held_out_runs_and_a_transfer_set(tmp_path):
    """Two tiny networks trained with the same split by run, compared on whole sets through their checkpoints."""
    import dataclasses
    import json

    from test_nnselect import _write_dataset

    from nnselect.configs import get_preset
    from nnselect.dataset import load_dataset
    from nnselect.train import train_and_evaluate

    data = _write_dataset(tmp_path / "data", n_random=24, n_near=24)
    tiny = dataclasses.replace(
        get_preset("tiny"), dataset=str(data), transfer_dataset=str(data), split="run", validation_fraction=0.5
    )
    runs = []
    for name, changes in (("paper", {}), ("wide", {"label_radius": 0.5})):
        folder = tmp_path / name
        train_and_evaluate(dataclasses.replace(tiny, **changes), folder)
        runs.append((name, folder, json.loads((folder / "metrics.json").read_text())))
    result = nn_transfer.compare_networks(runs, [0.1, 0.5])
    held_out, transfer = result["sets"]
    seeds = load_dataset(data).seed
    assert held_out["seeds"] == runs[0][2]["dataset"]["validation_seeds"] and len(held_out["seeds"]) == 1
    assert held_out["n_models"] == np.count_nonzero(seeds == held_out["seeds"][0]) and transfer["n_models"] == 48
    assert held_out["networks"]["wide"]["label_radius"] == 0.5 and transfer["networks"]["paper"]["epoch"] == 1
    assert set(transfer["networks"]["paper"]["ranking"]) == {"0.1", "0.5"}
    assert "bootstrap" not in transfer  # AUC and AP of networks trained for other radii do not compare
    runs[1][2]["dataset"]["validation_seeds"] = [11, 12]
    with pytest.raises(ValueError, match="held out different GA runs"):
        nn_transfer.compare_networks(runs, [0.1])


def test_paired_bootstrap_over_runs():
    rng = np.random.default_rng(1)
    labels = rng.random((60, 2)) < 0.4
    seeds = np.repeat(np.arange(6), 10)
    noisy = np.clip(labels + rng.normal(0, 0.6, labels.shape), 0, 1)
    result = nn_transfer.paired_bootstrap(
        {"a": noisy, "same": noisy.copy(), "perfect": labels.astype(float)}, labels, seeds, 50
    )
    assert result["same - a"]["roc_auc"] == {"difference": 0.0, "interval_95": [0.0, 0.0], "share_above_zero": 0.0}
    better = result["perfect - a"]["average_precision"]
    assert better["difference"] > 0 and better["interval_95"][0] > 0 and better["share_above_zero"] == 1.0
