"""Numba kernel of the peak-shape matrix's values and their derivatives in one pass. Private:
:func:`gasolve.rietveld.shape_jacobian.peak_shape_jacobian` lays out the runs, builds the chain tables and calls it.

The values are those of :func:`gasolve.diffraction.peak_kernels.add_line_values_batch` (same formula, same window):
for entry i of reflection k, v = w_k A(z) Σ_j ω_kj pV(2θ_i − c_k − s_kj; H_k, η_k), with the axial-divergence nodes
(shift s_kj, weight ω_kj), the Bérar-Baldinozzi factor A (1 without asymmetry, z = (2θ_i − c_k)/H_k) and the line
weight × LP × multiplicity w_k. Alongside, the partial derivatives of v with respect to its per-reflection inputs,
the "elements" e of :data:`ELEMENTS`: the centre c, the FWHM H, η, ln w, tan θ (in A), the Bragg angle through the
node tables (∂s_kj/∂2θ_B, ∂ω_kj/∂2θ_B given), SH/L through them (∂s/∂SH/L, ∂ω/∂SH/L given) and P1..P4. The
derivative with respect to a parameter m follows by the chain rule with the table T (n_refl, n_elements, n_dir) of
∂e/∂m: ∂v/∂m = Σ_e ∂v/∂e T[k, e, m].

pV = η L + (1 − η) G with ρ = (2u/H)², G = (g/H) exp(−ln2 ρ), L = (2/(πH)) / (1 + ρ):
∂G/∂u = −ln2 G ∂ρ/∂u, ∂L/∂u = −L/(1 + ρ) ∂ρ/∂u, ∂ρ/∂u = 8u/H²; ∂G/∂H = G (2 ln2 ρ − 1)/H,
∂L/∂H = L (ρ − 1)/((1 + ρ) H); ∂pV/∂η = L − G.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gasolve.jit import JIT

_LN2 = math.log(2.0)
_GAUSS_NORM = 2.0 * math.sqrt(_LN2 / math.pi)

#: The per-reflection inputs whose partial derivatives the kernel forms, in the order of the chain table's axis 1.
ELEMENTS = ("centre", "fwhm", "eta", "log_weight", "tan_theta", "bragg_nodes", "axial_nodes", "P1", "P2", "P3", "P4")
N_ELEMENTS = len(ELEMENTS)


@numba.njit(**JIT)
def add_line_values_and_derivatives(
    x,
    column,
    centre,
    fwhm,
    eta,
    weight,
    shifts,
    node_weights,
    below,
    above,
    cutoff,
    tan_theta,
    asymmetry,
    d_shifts_bragg,
    d_weights_bragg,
    d_shifts_axial,
    d_weights_axial,
    chain,
    values,
    derivatives,
):
    """Add one emission line's values and derivatives (module docstring) to ``values`` and ``derivatives``.

    Parameters
    ----------
    x, column, centre, fwhm, eta, weight, shifts, node_weights, below, above, cutoff, tan_theta, asymmetry
        As :func:`gasolve.diffraction.peak_kernels.add_line_values_batch` (``weight`` here includes the
        multiplicity).
    d_shifts_bragg, d_weights_bragg : (n_refl, n_nodes) float64
        ∂s_kj/∂2θ_B and ∂ω_kj/∂2θ_B of the node tables (per degree).
    d_shifts_axial, d_weights_axial : (n_refl, n_nodes) float64
        Their derivatives with respect to SH/L.
    chain : (n_refl, N_ELEMENTS, n_dir) float64
        ∂(element)/∂(parameter) of every reflection.
    values : (nnz,) float64
        Accumulated in place.
    derivatives : (nnz, n_dir) float64
        Accumulated in place.
    """
    p1, p2, p3, p4 = asymmetry[0], asymmetry[1], asymmetry[2], asymmetry[3]
    asymmetric = p1 != 0.0 or p2 != 0.0 or p3 != 0.0 or p4 != 0.0
    n_nodes = shifts.shape[1]
    n_dir = chain.shape[2]
    g = np.zeros(N_ELEMENTS)
    for i in range(x.shape[0]):
        k = column[i]
        if weight[k] <= 0.0:
            continue
        h = fwhm[k]
        dx = x[i] - centre[k]
        if dx < below[k] - cutoff * h or dx > above[k] + cutoff * h:
            continue
        e = eta[k]
        s = 0.0  # Σ ω pV
        s_u = 0.0  # Σ ω ∂pV/∂u
        s_h = 0.0
        s_eta = 0.0
        s_bragg = 0.0
        s_axial = 0.0
        for j in range(n_nodes):
            u = dx - shifts[k, j]
            rho = (2.0 * u / h) ** 2
            gauss = (_GAUSS_NORM / h) * math.exp(-_LN2 * rho)
            lorentz = (2.0 / (math.pi * h)) / (1.0 + rho)
            pv = e * lorentz + (1.0 - e) * gauss
            d_rho_du = 8.0 * u / (h * h)
            pv_u = -(e * lorentz / (1.0 + rho) + (1.0 - e) * _LN2 * gauss) * d_rho_du
            pv_h = (e * lorentz * (rho - 1.0) / (1.0 + rho) + (1.0 - e) * gauss * (2.0 * _LN2 * rho - 1.0)) / h
            w = node_weights[k, j]
            s += w * pv
            s_u += w * pv_u
            s_h += w * pv_h
            s_eta += w * (lorentz - gauss)
            s_bragg += d_weights_bragg[k, j] * pv - w * pv_u * d_shifts_bragg[k, j]
            s_axial += d_weights_axial[k, j] * pv - w * pv_u * d_shifts_axial[k, j]
        factor = 1.0
        factor_z = 0.0
        if asymmetric:
            z = dx / h
            ez = math.exp(-z * z)
            fa = 2.0 * z * ez
            fa_z = 2.0 * ez * (1.0 - 2.0 * z * z)
            fb = 2.0 * (2.0 * z * z - 3.0) * fa
            fb_z = 8.0 * z * fa + 2.0 * (2.0 * z * z - 3.0) * fa_z
            t = tan_theta[k]
            cot = (1.0 - t * t) / (2.0 * t)
            factor = 1.0 + (p1 * fa + p2 * fb) / t + (p3 * fa + p4 * fb) * cot
            factor_z = (p1 * fa_z + p2 * fb_z) / t + (p3 * fa_z + p4 * fb_z) * cot
            g[4] = s * (-(p1 * fa + p2 * fb) / (t * t) + (p3 * fa + p4 * fb) * (-0.5 / (t * t) - 0.5))
            g[7] = s * fa / t
            g[8] = s * fb / t
            g[9] = s * fa * cot
            g[10] = s * fb * cot
        shape = s * factor
        g[0] = -(s_u * factor + s * factor_z / h)
        g[1] = s_h * factor - s * factor_z * dx / (h * h)
        g[2] = s_eta * factor
        g[3] = shape
        g[5] = s_bragg * factor
        g[6] = s_axial * factor
        wk = weight[k]
        values[i] += wk * shape
        for m in range(n_dir):
            total = 0.0
            for q in range(N_ELEMENTS):
                total += g[q] * chain[k, q, m]
            derivatives[i, m] += wk * total
