"""Per-site quality of the selection network's predictions (pure NumPy).

Zaloga et al. (2019), part 2, measure each site i by the accuracy f_i = (1/M) Σ_j [round(Y_ij) = U_ij] over M
models (Y the network's output, U the 0/1 label), and show in their Fig. 3 the share of in-position atoms the
network recognises, against the share of in-position atoms among all models (the site's base rate). Because
few atoms are in place (the labels are imbalanced), accuracy alone flatters a network that never says "in
place": its f_i equals 1 - base rate. So precision (how often a "in place" is right; compare it with the base
rate, which is the precision of a random pick) and recall (= the Fig. 3 recognition rate) are reported too.

Two threshold-free measures tell how well the probabilities *rank* models with the site in place above those
without, whatever the threshold: the ROC-AUC (probability that a random in-place model scores above a random
out-of-place one; 0.5 for chance) and the average precision (area under the precision-recall curve; the base rate
for chance), which weighs the rare positive class more.

Conventions: a prediction is positive when its probability is >= ``threshold`` (0.5: the paper's rounding, with
exact halves counted positive). A ratio whose denominator is zero is NaN (no positives predicted: precision;
no positives present: recall), written as null in JSON by :func:`to_json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SiteCounts:
    """Confusion counts per site.

    Attributes
    ----------
    true_positive, false_positive, false_negative, true_negative : ndarray, shape (n_sites,), int64
    """

    true_positive: np.ndarray
    false_positive: np.ndarray
    false_negative: np.ndarray
    true_negative: np.ndarray

    @property
    def n_models(self) -> int:
        return int(self.true_positive[0] + self.false_positive[0] + self.false_negative[0] + self.true_negative[0])


def _check(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=float)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or probabilities.shape != labels.shape:
        raise ValueError(
            f"probabilities and labels must both have shape (n_models, n_sites); got {probabilities.shape} "
            f"and {labels.shape}"
        )
    if len(labels) == 0:
        raise ValueError("no models to measure")
    if not np.all(np.isin(labels, (0, 1))):
        raise ValueError("labels must be 0 or 1")
    return probabilities, labels.astype(bool)


def site_counts(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> SiteCounts:
    """Confusion counts of each site.

    Parameters
    ----------
    probabilities : ndarray, shape (n_models, n_sites)
        Network outputs in [0, 1].
    labels : ndarray, shape (n_models, n_sites)
        1 where the atom is in place.
    threshold : float

    Returns
    -------
    SiteCounts
    """
    probabilities, labels = _check(probabilities, labels)
    predicted = probabilities >= threshold
    return SiteCounts(
        true_positive=np.sum(predicted & labels, axis=0),
        false_positive=np.sum(predicted & ~labels, axis=0),
        false_negative=np.sum(~predicted & labels, axis=0),
        true_negative=np.sum(~predicted & ~labels, axis=0),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=float)
    denominator = np.asarray(denominator, dtype=float)
    out = np.full(numerator.shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def site_accuracy(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The paper's f_i: share of models whose rounded output equals the label, shape (n_sites,)."""
    c = site_counts(probabilities, labels, threshold)
    return (c.true_positive + c.true_negative) / c.n_models


def site_precision(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """TP / (TP + FP) per site, shape (n_sites,); NaN where nothing is predicted in place."""
    c = site_counts(probabilities, labels, threshold)
    return _ratio(c.true_positive, c.true_positive + c.false_positive)


def site_recall(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """TP / (TP + FN) per site, shape (n_sites,); NaN where no atom is in place.

    This is the paper's Fig. 3 recognition rate: the share of in-position atoms the network finds.
    """
    c = site_counts(probabilities, labels, threshold)
    return _ratio(c.true_positive, c.true_positive + c.false_negative)


#: The paper's Fig. 3 quantity under its own name.
recognition_rate = site_recall


def base_rate(labels: np.ndarray) -> np.ndarray:
    """Share of models with the site's atom in place, shape (n_sites,)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or len(labels) == 0:
        raise ValueError(f"labels must have shape (n_models, n_sites) with n_models > 0, got {labels.shape}")
    return np.mean(labels.astype(bool), axis=0)


def site_roc_auc(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Area under the ROC curve of each site, shape (n_sites,); NaN where a site has only one class.

    Mann-Whitney form: AUC = (Σ rank of positives - n₊(n₊ + 1)/2) / (n₊ n₋), ranks averaged over ties (a tie
    between a positive and a negative counts one half).
    """
    from scipy.stats import rankdata

    probabilities, labels = _check(probabilities, labels)
    ranks = rankdata(probabilities, axis=0)
    n_positive = labels.sum(axis=0).astype(float)
    n_negative = len(labels) - n_positive
    u = np.sum(np.where(labels, ranks, 0.0), axis=0) - n_positive * (n_positive + 1) / 2
    return _ratio(u, n_positive * n_negative)


def site_average_precision(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Average precision of each site, shape (n_sites,); NaN where no atom of the site is in place.

    AP = Σ_k (R_k - R_{k-1}) P_k over the distinct probabilities taken as thresholds from the highest down (P_k,
    R_k the precision and recall of "in place when probability >= the k-th"), as scikit-learn computes it.
    """
    probabilities, labels = _check(probabilities, labels)
    out = np.full(labels.shape[1], np.nan)
    for i in range(labels.shape[1]):
        order = np.argsort(-probabilities[:, i], kind="stable")
        score, hit = probabilities[order, i], labels[order, i]
        n_positive = int(hit.sum())
        if n_positive == 0:
            continue
        last = np.flatnonzero(np.r_[score[1:] != score[:-1], True])  # last model at each distinct threshold
        true_positive = np.cumsum(hit)[last]
        precision = true_positive / (last + 1)
        recall = true_positive / n_positive
        out[i] = float(np.sum(np.diff(recall, prepend=0.0) * precision))
    return out


def site_metrics(probabilities: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Every per-site measure at once.

    Parameters
    ----------
    probabilities, labels : ndarray, shape (n_models, n_sites)
    threshold : float

    Returns
    -------
    dict of ndarray, each shape (n_sites,)
        ``accuracy`` (f_i), ``precision``, ``recall`` (= ``recognition``, the Fig. 3 rate), ``f1`` (their
        harmonic mean), ``base_rate``, ``predicted_rate`` (share predicted in place), ``lift`` (precision / base
        rate; 1 for a random pick), the threshold-free ``roc_auc`` and ``average_precision``, and the
        counts ``true_positive``, ``false_positive``, ``false_negative``, ``true_negative``.
    """
    c = site_counts(probabilities, labels, threshold)
    n = c.n_models
    precision = _ratio(c.true_positive, c.true_positive + c.false_positive)
    recall = _ratio(c.true_positive, c.true_positive + c.false_negative)
    rate = (c.true_positive + c.false_negative) / n
    return {
        "accuracy": (c.true_positive + c.true_negative) / n,
        "precision": precision,
        "recall": recall,
        "recognition": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "base_rate": rate,
        "predicted_rate": (c.true_positive + c.false_positive) / n,
        "lift": _ratio(precision, rate),
        "roc_auc": site_roc_auc(probabilities, labels),
        "average_precision": site_average_precision(probabilities, labels),
        "true_positive": c.true_positive,
        "false_positive": c.false_positive,
        "false_negative": c.false_negative,
        "true_negative": c.true_negative,
    }


def to_json(values: dict[str, np.ndarray]) -> dict[str, list]:
    """Lists of plain numbers (NaN -> None) for ``json.dump``."""

    def plain(x):
        x = x.item() if hasattr(x, "item") else x
        return None if isinstance(x, float) and not math.isfinite(x) else x

    return {key: [plain(x) for x in np.asarray(array).ravel()] for key, array in values.items()}
