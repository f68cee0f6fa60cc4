"""Numba kernel of the peak-shape matrix values. Private: :func:`gasolve.diffraction.profile.build_peak_matrix`
lays out the runs, validates and calls it.

One pass over the stored entries of one emission line: for entry i of reflection k, the pseudo-Voigt of FWHM
H_k and mixing η_k at the offset 2θ_i − centre_k, summed over the axial-divergence nodes (shift s_kj, weight
w_kj; one node of shift 0 and weight 1 without axial divergence), times the Bérar-Baldinozzi factor when the
profile has one, times the line's weight × LP. Entries outside the reflection's window (``cutoff`` FWHM beyond
its outermost node) or of a reflection with no weight are left unchanged. Fused, this costs one exponential per
entry and node, where the NumPy form allocated a dozen temporaries of every entry for every node.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gasolve.jit import JIT

_LN2 = math.log(2.0)
_GAUSS_NORM = 2.0 * math.sqrt(_LN2 / math.pi)


@numba.njit(inline="always", **JIT)
def _pseudo_voigt(x, fwhm, eta):
    z = (2.0 * x / fwhm) ** 2
    gauss = (_GAUSS_NORM / fwhm) * math.exp(-_LN2 * z)
    lorentz = (2.0 / (math.pi * fwhm)) / (1.0 + z)
    return eta * lorentz + (1.0 - eta) * gauss


@numba.njit(**JIT)
def add_line_values_batch(
    x, column, centre, fwhm, eta, weight, shifts, node_weights, below, above, cutoff, tan_theta, asymmetry, values
):
    """Add one emission line's peak values to ``values`` (module docstring).

    Parameters
    ----------
    x : (nnz,) float64
        2θ (degrees) of each stored entry.
    column : (nnz,) int64
        Its reflection.
    centre, fwhm, eta, weight : (n_refl,) float64
        Peak centre (degrees), FWHM (degrees), pseudo-Voigt η and line weight × LP of each reflection.
    shifts, node_weights : (n_refl, n_nodes) float64
        Axial-divergence nodes (degrees 2θ) and their weights (summing to 1).
    below, above : (n_refl,) float64
        Lowest and highest node shift of each reflection (the window's extent beyond ``cutoff`` FWHM).
    cutoff : float
        Window half-width in FWHM.
    tan_theta : (n_refl,) float64
        tan θ of the line's Bragg angle (used only with an asymmetry).
    asymmetry : (4,) float64
        Bérar-Baldinozzi P1..P4; all zero for symmetric peaks.
    values : (nnz,) float64
        Accumulated in place.
    """
    p1, p2, p3, p4 = asymmetry[0], asymmetry[1], asymmetry[2], asymmetry[3]
    asymmetric = p1 != 0.0 or p2 != 0.0 or p3 != 0.0 or p4 != 0.0
    n_nodes = shifts.shape[1]
    for i in range(x.shape[0]):
        k = column[i]
        if weight[k] <= 0.0:
            continue
        h = fwhm[k]
        dx = x[i] - centre[k]
        if dx < below[k] - cutoff * h or dx > above[k] + cutoff * h:
            continue
        shape = 0.0
        for j in range(n_nodes):
            shape += node_weights[k, j] * _pseudo_voigt(dx - shifts[k, j], h, eta[k])
        if asymmetric:
            z = dx / h
            fa = 2.0 * z * math.exp(-z * z)
            fb = 2.0 * (2.0 * z * z - 3.0) * fa
            t = tan_theta[k]
            cot_two_theta = (1.0 - t * t) / (2.0 * t)
            shape *= 1.0 + (p1 * fa + p2 * fb) / t + (p3 * fa + p4 * fb) * cot_two_theta
        values[i] += weight[k] * shape


def no_axial_nodes(n_refl: int) -> tuple[np.ndarray, np.ndarray]:
    """The single node (shift 0, weight 1) of peaks without axial divergence: shapes (n_refl, 1)."""
    return np.zeros((n_refl, 1)), np.ones((n_refl, 1))
