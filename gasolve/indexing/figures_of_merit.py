"""Figures of merit of a powder indexing: de Wolff's M_N and Smith & Snyder's F_N.

de Wolff, J. Appl. Cryst. 1 (1968) 108:  M20 = Q20 / (2 ⟨ε⟩ N20), Q20 the Q = 1/d² of the 20th observed line,
⟨ε⟩ the mean absolute difference between each of the 20 observed Q and the nearest calculated one, N20 the number
of distinct calculated Q up to Q20. (GSAS-II's ``calc_M20`` computes Q20 / (2 Σ|ε|), leaving N20 out; this module
follows the paper.)

Smith & Snyder, J. Appl. Cryst. 12 (1979) 60:  F_N = N / (⟨|Δ2θ|⟩ N_poss), ⟨|Δ2θ|⟩ the mean absolute difference
(degrees) between the N observed 2θ and the nearest calculated ones, N_poss the number of distinct calculated lines
up to the N-th observed line; reported as F_N = value(⟨|Δ2θ|⟩, N_poss).

The calculated lines are those of the candidate lattice with its centring absences (or a space group's, when one
is assumed); equal Q count once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gasolve.errors import InputError

#: Calculated Q closer than this (relative) are one line; a line this close to Q_N (or 2θ_N) counts as below it.
DISTINCT_Q_RTOL = 1e-7


@dataclass(frozen=True)
class DeWolffM:
    """de Wolff's M_N.

    Attributes
    ----------
    value : float
        M_N (dimensionless); ``inf`` when every line is matched exactly.
    n_lines : int
        N, the observed lines used (20 unless fewer were given).
    n_indexed : int
        How many of them count in ⟨ε⟩ (all unless an ``indexed`` mask left some out).
    q_last : float
        Q_N, Q of the N-th observed line (Å⁻²).
    mean_discrepancy : float
        ⟨ε⟩ (Å⁻²).
    n_calculated : int
        N_N, distinct calculated Q ≤ Q_N.
    """

    value: float
    n_lines: int
    n_indexed: int
    q_last: float
    mean_discrepancy: float
    n_calculated: int


@dataclass(frozen=True)
class SmithSnyderF:
    """Smith & Snyder's F_N.

    Attributes
    ----------
    value : float
        F_N (degrees⁻¹); ``inf`` when every line is matched exactly.
    n_lines : int
        N, the observed lines used.
    mean_discrepancy : float
        ⟨|Δ2θ|⟩ (degrees).
    n_possible : int
        N_poss, distinct calculated lines up to the N-th observed 2θ.
    """

    value: float
    n_lines: int
    mean_discrepancy: float
    n_possible: int

    def __str__(self) -> str:
        return f"F{self.n_lines} = {self.value:.1f}({self.mean_discrepancy:.4f}, {self.n_possible})"


def q_from_two_theta(two_theta: np.ndarray, wavelength: float, zero: float = 0.0) -> np.ndarray:
    """Q = 1/d² = (2 sin θ / λ)² (Å⁻²) of observed angles 2θ (degrees), Bragg angle 2θ - zero."""
    _check_wavelength(wavelength)
    theta = np.radians(np.asarray(two_theta, dtype=float) - zero) / 2.0
    return (2.0 * np.sin(theta) / wavelength) ** 2


def two_theta_from_q(q: np.ndarray, wavelength: float) -> np.ndarray:
    """Bragg angle 2θ (degrees) of Q = 1/d² (Å⁻²); NaN where λ √Q / 2 > 1 (beyond 180°)."""
    _check_wavelength(wavelength)
    sine = wavelength * np.sqrt(np.maximum(np.asarray(q, dtype=float), 0.0)) / 2.0
    with np.errstate(invalid="ignore"):
        return np.where(sine <= 1.0, 2.0 * np.degrees(np.arcsin(np.minimum(sine, 1.0))), np.nan)


def distinct_q(q_calc: np.ndarray, rtol: float = DISTINCT_Q_RTOL) -> np.ndarray:
    """Sorted calculated Q with coincident values (relative difference ≤ rtol) merged, shape (n_distinct,)."""
    q = np.sort(np.asarray(q_calc, dtype=float).reshape(-1))
    if q.size == 0:
        return q
    new = np.concatenate([[True], np.diff(q) > rtol * q[1:]])
    return q[new]


def de_wolff_m(
    q_obs: np.ndarray,
    q_calc: np.ndarray,
    n_lines: int = 20,
    indexed: np.ndarray | None = None,
    unindexed_error: np.ndarray | None = None,
) -> DeWolffM:
    """de Wolff's M_N of a candidate lattice (module docstring).

    Parameters
    ----------
    q_obs : ndarray, shape (n_obs,)
        Observed Q = 1/d² (Å⁻², zero shift already removed); the N lowest are used.
    q_calc : ndarray, shape (n_calc,)
        Calculated Q of the lattice (Å⁻²), reaching at least Q_N; duplicates are merged (:func:`distinct_q`).
    n_lines : int
        N (20 for M20); fewer observed lines give M_n with n = n_obs.
    indexed : ndarray of bool, shape (n_obs,), optional
        Lines to count in ⟨ε⟩ (aligned with ``q_obs``); the others (impurity lines) still set Q_N.
    unindexed_error : ndarray, shape (n_obs,), optional
        With ``indexed``: the unindexed lines count in ⟨ε⟩ too, each with this discrepancy (Å⁻², aligned with
        ``q_obs``; their tolerance: a line no better than the worst an indexed line may be). This counts the
        impurity lines against the figure, for ranking cells that leave different numbers of lines unindexed.

    Returns
    -------
    DeWolffM
    """
    observed, calculated, order = _prepare(q_obs, q_calc, n_lines)
    mask = np.ones(len(observed), bool) if indexed is None else _mask(indexed, q_obs)[order][: len(observed)]
    if not mask.any():
        raise InputError("no indexed line among the observed lines: de Wolff's M is undefined")
    q_last = float(observed[-1])
    error = np.abs(observed - nearest_value(observed, calculated))
    if unindexed_error is not None and indexed is not None:
        counted = np.asarray(unindexed_error, dtype=float).reshape(-1)[order][: len(observed)]
        error = np.where(mask, error, counted)
    else:
        error = error[mask]
    mean = float(error.mean())
    n_calculated = int(np.count_nonzero(calculated <= q_last * (1.0 + DISTINCT_Q_RTOL)))  # rounding: ≤ holds
    value = math.inf if mean == 0.0 or n_calculated == 0 else q_last / (2.0 * mean * n_calculated)
    return DeWolffM(value, len(observed), int(mask.sum()), q_last, mean, n_calculated)


def smith_snyder_f(
    two_theta_obs: np.ndarray,
    q_calc: np.ndarray,
    wavelength: float,
    n_lines: int | None = None,
    zero: float = 0.0,
) -> SmithSnyderF:
    """Smith & Snyder's F_N of a candidate lattice (module docstring).

    Parameters
    ----------
    two_theta_obs : ndarray, shape (n_obs,)
        Observed line positions (degrees); the N lowest are used.
    q_calc : ndarray, shape (n_calc,)
        Calculated Q of the lattice (Å⁻²); duplicates are merged.
    wavelength : float
        λ (Å) that turns the calculated Q into 2θ.
    n_lines : int, optional
        N; all observed lines when None (Smith & Snyder quote F30 or F_N for all lines).
    zero : float
        Zero shift (degrees): the observed Bragg angle is 2θ - zero.

    Returns
    -------
    SmithSnyderF
    """
    _check_wavelength(wavelength)
    observed = np.sort(np.asarray(two_theta_obs, dtype=float).reshape(-1)) - zero
    n = len(observed) if n_lines is None else int(n_lines)
    q_obs = q_from_two_theta(observed, wavelength)
    q_used, calculated_q, _ = _prepare(q_obs, q_calc, n)
    calculated = two_theta_from_q(calculated_q, wavelength)
    calculated = calculated[np.isfinite(calculated)]
    used = observed[: len(q_used)]
    if calculated.size == 0:
        raise InputError(f"no calculated line lies below 180° 2θ at λ = {wavelength} Å")
    mean = float(np.mean(np.abs(used - nearest_value(used, calculated))))
    n_possible = int(np.count_nonzero(calculated <= used[-1] * (1.0 + DISTINCT_Q_RTOL)))
    value = math.inf if mean == 0.0 or n_possible == 0 else len(used) / (mean * n_possible)
    return SmithSnyderF(value, len(used), mean, n_possible)


def _check_wavelength(wavelength: float) -> None:
    if not (math.isfinite(wavelength) and wavelength > 0):
        raise InputError(f"wavelength must be a positive number of Å, got {wavelength}")


def _mask(indexed: np.ndarray, q_obs: np.ndarray) -> np.ndarray:
    mask = np.asarray(indexed, dtype=bool).reshape(-1)
    if mask.shape != (np.asarray(q_obs).size,):
        raise ValueError(f"indexed has {mask.size} entries for {np.asarray(q_obs).size} observed lines")
    return mask


def _prepare(q_obs: np.ndarray, q_calc: np.ndarray, n_lines: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The N lowest observed Q (sorted), the distinct calculated Q, and the sorting order of q_obs."""
    q_obs = np.asarray(q_obs, dtype=float).reshape(-1)
    if n_lines < 1:
        raise ValueError(f"n_lines must be at least 1, got {n_lines}")
    if q_obs.size == 0:
        raise InputError("no observed lines: a figure of merit needs at least one")
    if not np.all(np.isfinite(q_obs)) or np.any(q_obs <= 0):
        raise InputError("observed Q (1/d²) must be positive finite numbers")
    calculated = distinct_q(q_calc)
    if calculated.size == 0:
        raise InputError("no calculated lines: the candidate lattice gives none in the range")
    order = np.argsort(q_obs, kind="stable")
    return q_obs[order][:n_lines], calculated, order


def nearest_value(values: np.ndarray, sorted_reference: np.ndarray) -> np.ndarray:
    """The element of ``sorted_reference`` nearest to each of ``values``."""
    right = np.clip(np.searchsorted(sorted_reference, values), 1, len(sorted_reference) - 1)
    if len(sorted_reference) == 1:
        return np.full_like(values, sorted_reference[0])
    left = right - 1
    closer_left = np.abs(values - sorted_reference[left]) <= np.abs(sorted_reference[right] - values)
    return np.where(closer_left, sorted_reference[left], sorted_reference[right])


def within(values: np.ndarray, sorted_reference: np.ndarray, tolerance) -> np.ndarray:
    """Whether each of ``values`` has an element of ``sorted_reference`` within ``tolerance`` (a number, or one per
    value); all False when the reference is empty."""
    values = np.asarray(values, dtype=float)
    if len(sorted_reference) == 0:
        return np.zeros(values.shape, bool)
    return np.abs(values - nearest_value(values, np.asarray(sorted_reference, dtype=float))) <= tolerance
