"""Standard uncertainties from the normal matrix, scaled by χ² (Prince, Mathematical Techniques in
Crystallography and Materials Science, 2nd ed., ch. 8; the convention of GSAS, FullProf and TOPAS).

The Jacobian is that of the full problem, scale and background columns included, so that the esds carry their
correlation with the non-linear parameters: cov = (JᵀJ)⁻¹ χ² / (N + R - P), P every refined parameter, R the
restraints, whose rows (zero in the scale and background columns) and residuals are part of J and χ².
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gasolve.rietveld.model import RietveldModel

#: Correlations above this (in absolute value) are reported.
CORRELATION_REPORT = 0.9


@dataclass(frozen=True)
class Uncertainties:
    """esds of the refined parameters and their large correlations.

    Attributes
    ----------
    names : tuple of str
        The refined non-linear parameters, then ``"scale"`` and ``"bkg0"``...
    values, esd : ndarray, shape (n,)
    correlation : ndarray, shape (n, n)
    reduced_chi2 : float
    high_correlations : tuple of (str, str, float)
        Pairs with |correlation| > :data:`CORRELATION_REPORT`.
    """

    names: tuple[str, ...]
    values: np.ndarray
    esd: np.ndarray
    covariance: np.ndarray
    correlation: np.ndarray
    reduced_chi2: float
    high_correlations: tuple[tuple[str, str, float], ...]

    def of(self, name: str) -> float:
        return float(self.esd[self.names.index(name)])


def uncertainties(model: RietveldModel, x: np.ndarray, free: np.ndarray) -> Uncertainties:
    """esds of ``free`` entries of ``x``, the scale and the background terms at the refined ``x``."""
    free = np.asarray(free, dtype=int)
    fit = model.linear_fit(x)
    root_w = model.root_w
    columns = [model.scaled_derivatives(x, free, fit), model.linear_columns(fit)]
    jacobian = np.column_stack(columns) * root_w[:, None]
    residual = root_w * (model.pattern.y_obs - fit.y_calc)
    if len(model.restraints):
        rows = np.zeros((len(model.restraints), jacobian.shape[1]))
        rows[:, : len(free)] = model.restraint_jacobian(x, free)
        jacobian = np.vstack([jacobian, rows])
        residual = np.concatenate([residual, model.restraint_residuals(x)])
    n_parameters = jacobian.shape[1]
    reduced = float(residual @ residual) / max(len(residual) - n_parameters, 1)
    norms = np.linalg.norm(jacobian, axis=0)
    norms[norms == 0] = 1.0
    scaled = jacobian / norms
    covariance = np.linalg.pinv(scaled.T @ scaled) / np.outer(norms, norms) * reduced
    esd = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    esd[: len(free)][np.isin(free, model.dormant(x))] = np.nan  # no effect where it stands: no esd
    safe = np.where(esd > 0, esd, 1.0)
    correlation = covariance / np.outer(safe, safe)
    names = tuple(
        [model.layout.names[i] for i in free]
        + ["scale"]
        + [f"scale({phase.name})" for phase in model.phases]
        + [f"bkg{k}" for k in range(model.background_terms)]
    )
    values = np.concatenate([x[free], [fit.scale], fit.phase_scales, fit.background])
    pairs = [
        (names[i], names[j], float(correlation[i, j]))
        for i in range(n_parameters)
        for j in range(i + 1, n_parameters)
        if abs(correlation[i, j]) > CORRELATION_REPORT
    ]
    return Uncertainties(names, values, esd, covariance, correlation, reduced, tuple(pairs))


def cell_esd(
    model: RietveldModel, x: np.ndarray, names: tuple[str, ...], covariance: np.ndarray, phase: int | None = None
) -> np.ndarray:
    """esds of a, b, c, α, β, γ (Å, degrees) from the covariance of the metric coefficients (numerical Jacobian
    of the cell parameters with respect to them); 0 for a parameter the constraints fix. ``phase``: of that
    further phase's cell instead (:mod:`gasolve.rietveld.phases`)."""
    if phase is None:
        cell_idx = model.layout.indices("cell")
        cell_of = model.cell
    else:
        cell_idx = model.further.by_group[phase]["phase_cell"]
        cell_of = lambda vector: model.further.cell(vector, phase)  # noqa: E731
    positions = [names.index(model.layout.names[i]) for i in cell_idx if model.layout.names[i] in names]
    if len(positions) != len(cell_idx):
        return np.zeros(6)
    jacobian = np.zeros((6, len(cell_idx)))
    for column, j in enumerate(cell_idx):
        step = 1e-7 * max(abs(x[j]), 1e-6)
        plus, minus = x.copy(), x.copy()
        plus[j] += step
        minus[j] -= step
        jacobian[:, column] = (np.array(cell_of(plus).parameters) - np.array(cell_of(minus).parameters)) / (2 * step)
    sub = covariance[np.ix_(positions, positions)]
    return np.sqrt(np.maximum(np.diag(jacobian @ sub @ jacobian.T), 0.0))
