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
