"""Temperature scaling (Guo, Pleiss, Sun & Weinberger, ICML 2017) and top-k summaries of logits.

One temperature T per head is fitted on held-out validation logits by minimising the negative log-likelihood of
softmax(logits / T); it changes confidence, never the ranking. ``classify`` abstains from naming a space group
when the calibrated top probability falls below a threshold.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of integer ``labels`` (n,) under softmax(``logits`` (n, k) / T)."""
    logp = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises :func:`nll` (bounded scalar search on log T)."""
    result = minimize_scalar(
        lambda t: nll(logits, labels, float(np.exp(t))), bounds=(np.log(0.05), np.log(20.0)), method="bounded"
    )
    return float(np.exp(result.x))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities, same shape as ``logits`` (…, k)."""
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-1 prediction: Σ_bins (n_b / n) |accuracy_b - confidence_b|."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges) - 1, 0, n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` highest scores; ``scores`` (n, n_classes), ``labels`` (n,)."""
    if len(labels) == 0:
        return float("nan")
    top = np.argpartition(-scores, kth=min(k, scores.shape[1]) - 1, axis=1)[:, :k]
    return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=1)))
