"""Numba kernels of the scorer. Private: call them through :class:`gasolve.scoring.Scorer`, which validates.

Every kernel takes only arrays and scalars and writes into preallocated outputs. Models are split into
chunks, one ``prange`` iteration per chunk, so that each thread allocates its scratch arrays once.

cos(2πt) and sin(2πt) are evaluated by reducing t to [-1/4, 1/4] and summing their Taylor series to x^20 and
x^21 (truncation error below 4e-15): the polynomial vectorises, where NumPy's cos does not under Numba
without Intel's SVML.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gasolve.jit import JIT

_TWO_PI = 2.0 * math.pi
_COS = tuple((-1.0) ** n * _TWO_PI ** (2 * n) / math.factorial(2 * n) for n in range(11))
_SIN = tuple((-1.0) ** n * _TWO_PI ** (2 * n + 1) / math.factorial(2 * n + 1) for n in range(11))
C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10 = _COS
S0, S1, S2, S3, S4, S5, S6, S7, S8, S9, S10 = _SIN


@numba.njit(inline="always", **JIT)
def _reduce(phase):
    """Fractional part of ``phase`` folded to [-1/2, 1/2]."""
    return phase - math.floor(phase + 0.5)


@numba.njit(inline="always", **JIT)
def _cos2pi(t):
    """cos(2πt) for t in [-1/2, 1/2]."""
    a = abs(t)
    flip = a > 0.25
    a = 0.5 - a if flip else a
    u = a * a
    c = C10
    c = c * u + C9
    c = c * u + C8
    c = c * u + C7
    c = c * u + C6
    c = c * u + C5
    c = c * u + C4
    c = c * u + C3
    c = c * u + C2
    c = c * u + C1
    c = c * u + C0
    return -c if flip else c


@numba.njit(inline="always", **JIT)
def _sin2pi(t):
    """sin(2πt) for t in [-1/2, 1/2]."""
    a = abs(t)
    a = 0.5 - a if a > 0.25 else a
    u = a * a
    s = S10
    s = s * u + S9
    s = s * u + S8
    s = s * u + S7
    s = s * u + S6
    s = s * u + S5
    s = s * u + S4
    s = s * u + S3
    s = s * u + S2
    s = s * u + S1
    s = s * u + S0
    s = s * a
    return -s if t < 0 else s


@numba.njit(**JIT)
def _structure_factors(frac, hr, ht, site_f, centric, f_re, f_im):
    """F(h) of one model into ``f_re`` and ``f_im`` (n_refl,).

    frac (n_sites, 3); hr (n_terms, 3, n_refl) = h R_s; ht (n_terms, n_refl) = h t_s;
    site_f (n_sites, n_refl) = scattering power of each site at each reflection, symmetry factors included.
    centric: F = Σ_j f_j Σ_s cos(2π(h R_s x_j + h t_s)) (``site_f`` carries the factor 2); else the complex sum.
    """
    n_sites = frac.shape[0]
    n_terms = hr.shape[0]
    n_refl = hr.shape[2]
    for k in range(n_refl):
        f_re[k] = 0.0
        f_im[k] = 0.0
    for j in range(n_sites):
        x = frac[j, 0] - math.floor(frac[j, 0])
        y = frac[j, 1] - math.floor(frac[j, 1])
        z = frac[j, 2] - math.floor(frac[j, 2])
        for s in range(n_terms):
            if centric:
                for k in range(n_refl):
                    t = _reduce(hr[s, 0, k] * x + hr[s, 1, k] * y + hr[s, 2, k] * z + ht[s, k])
                    f_re[k] += site_f[j, k] * _cos2pi(t)
            else:
                for k in range(n_refl):
                    t = _reduce(hr[s, 0, k] * x + hr[s, 1, k] * y + hr[s, 2, k] * z + ht[s, k])
                    f_re[k] += site_f[j, k] * _cos2pi(t)
                    f_im[k] += site_f[j, k] * _sin2pi(t)


@numba.njit(**JIT)
def _quadratic_terms(intensity, b, band, band_start, band_stop, c_matrix, acc):
    """b·I and Iᵀ G I with G = G0 - CᵀC, G0's upper band stored by diagonals; ``acc`` is scratch (n_refl,).

    Inner loops run over slices from index 0: LLVM vectorises those, not loops with a run-time start.
    """
    n_refl = intensity.shape[0]
    num = 0.0
    for k in range(n_refl):
        num += b[k] * intensity[k]
        acc[k] = 0.0
    for d in range(1, band.shape[0]):
        lo = band_start[d]
        hi = band_stop[d]
        acc_d = acc[lo:hi]
        g_d = band[d, lo:hi]
        i_d = intensity[lo + d : hi + d]
        for k in range(hi - lo):
            acc_d[k] += g_d[k] * i_d[k]
    den = 0.0
    diagonal = band[0]
    for k in range(n_refl):
        den += intensity[k] * (diagonal[k] * intensity[k] + 2.0 * acc[k])
    for r in range(c_matrix.shape[0]):
        c_r = c_matrix[r]
        dot = 0.0
        for k in range(n_refl):
            dot += c_r[k] * intensity[k]
        den -= dot * dot
    return num, den


@numba.njit(**JIT)
def _gram_times(intensity, band, band_start, band_stop, c_matrix, out):
    """(G0 - CᵀC) I into ``out`` (n_refl,)."""
    n_refl = intensity.shape[0]
    diagonal = band[0]
    for k in range(n_refl):
        out[k] = diagonal[k] * intensity[k]
    for d in range(1, band.shape[0]):
        lo = band_start[d]
        hi = band_stop[d]
        g_d = band[d, lo:hi]
        upper = out[lo:hi]
        i_up = intensity[lo + d : hi + d]
        for k in range(hi - lo):
            upper[k] += g_d[k] * i_up[k]
        lower = out[lo + d : hi + d]
        i_low = intensity[lo:hi]
        for k in range(hi - lo):
            lower[k] += g_d[k] * i_low[k]
    for r in range(c_matrix.shape[0]):
        c_r = c_matrix[r]
        dot = 0.0
        for k in range(n_refl):
            dot += c_r[k] * intensity[k]
        for k in range(n_refl):
            out[k] -= c_r[k] * dot


@numba.njit(**JIT)
def _chi2(num, den, a_const):
    """Minimum weighted squared residual over scale (>= 0) and background; and the ratio num/den (the scale)."""
    if num > 0.0 and den > 0.0:
        ratio = num / den
        return max(a_const - num * ratio, 0.0), ratio
    return a_const, 0.0


@numba.njit(parallel=True, **JIT)
def rwp_batch(frac, hr, ht, site_f, centric, b, band, band_start, band_stop, c_matrix, a_const, norm, bounds, out):
    """Rwp of every model: frac (n_models, n_sites, 3) -> out (n_models,)."""
    n_refl = hr.shape[2]
    for c in numba.prange(bounds.shape[0] - 1):
        f_re = np.empty(n_refl)
        f_im = np.empty(n_refl)
        intensity = np.empty(n_refl)
        acc = np.empty(n_refl)
        for m in range(bounds[c], bounds[c + 1]):
            _structure_factors(frac[m], hr, ht, site_f, centric, f_re, f_im)
            for k in range(n_refl):
                intensity[k] = f_re[k] * f_re[k] + f_im[k] * f_im[k]
            num, den = _quadratic_terms(intensity, b, band, band_start, band_stop, c_matrix, acc)
            chi2, _ = _chi2(num, den, a_const)
            out[m] = math.sqrt(chi2 / norm)


@numba.njit(inline="always", **JIT)
def _site_position_gradient(x_j, j, hr, ht, site_f, centric, g_i, f_re, f_im):
    """Σ_k g_k (F_re ∂F_re/∂x + F_im ∂F_im/∂x)_k / 2π for site j at fixed scattering factors, x_j (3,) the site's
    fractional coordinates, g_i (n_refl,); returns (gx, gy, gz)."""
    n_refl = hr.shape[2]
    x = x_j[0] - math.floor(x_j[0])
    y = x_j[1] - math.floor(x_j[1])
    z = x_j[2] - math.floor(x_j[2])
    gx = 0.0
    gy = 0.0
    gz = 0.0
    for s in range(hr.shape[0]):
        if centric:
            for k in range(n_refl):
                t = _reduce(hr[s, 0, k] * x + hr[s, 1, k] * y + hr[s, 2, k] * z + ht[s, k])
                w = -g_i[k] * f_re[k] * site_f[j, k] * _sin2pi(t)
                gx += w * hr[s, 0, k]
                gy += w * hr[s, 1, k]
                gz += w * hr[s, 2, k]
        else:
            for k in range(n_refl):
                t = _reduce(hr[s, 0, k] * x + hr[s, 1, k] * y + hr[s, 2, k] * z + ht[s, k])
                w = g_i[k] * site_f[j, k] * (f_im[k] * _cos2pi(t) - f_re[k] * _sin2pi(t))
                gx += w * hr[s, 0, k]
                gy += w * hr[s, 1, k]
                gz += w * hr[s, 2, k]
    return gx, gy, gz


@numba.njit(parallel=True, **JIT)
def rwp_gradient_batch(
    frac, hr, ht, site_f, centric, b, band, band_start, band_stop, c_matrix, a_const, norm, bounds, out, grad
):
    """Rwp and dRwp/dx for every model: out (n_models,), grad (n_models, n_sites, 3) per fractional unit."""
    n_refl = hr.shape[2]
    n_sites = frac.shape[1]
    for c in numba.prange(bounds.shape[0] - 1):
        f_re = np.empty(n_refl)
        f_im = np.empty(n_refl)
        intensity = np.empty(n_refl)
        g_i = np.empty(n_refl)
        acc = np.empty(n_refl)
        for m in range(bounds[c], bounds[c + 1]):
            _structure_factors(frac[m], hr, ht, site_f, centric, f_re, f_im)
            for k in range(n_refl):
                intensity[k] = f_re[k] * f_re[k] + f_im[k] * f_im[k]
            num, den = _quadratic_terms(intensity, b, band, band_start, band_stop, c_matrix, acc)
            chi2, ratio = _chi2(num, den, a_const)
            rwp = math.sqrt(chi2 / norm)
            out[m] = rwp
            for j in range(n_sites):
                grad[m, j, 0] = 0.0
                grad[m, j, 1] = 0.0
                grad[m, j, 2] = 0.0
            if ratio == 0.0 or rwp == 0.0:
                continue
            # d chi2 / d I_k = -2 r b_k + 2 r² (G I)_k with r = num/den and G I = G0 I - Cᵀ (C I).
            _gram_times(intensity, band, band_start, band_stop, c_matrix, g_i)
            # Chain rule to Rwp = sqrt(chi2 / norm) and to F: dI/dF = 2F; dF/dx = 2π f (-sin, cos) hR.
            factor = _TWO_PI / (2.0 * rwp * norm)
            for k in range(n_refl):
                g_i[k] = factor * 2.0 * (-2.0 * ratio * b[k] + 2.0 * ratio * ratio * g_i[k])
            for j in range(n_sites):
                gx, gy, gz = _site_position_gradient(frac[m, j], j, hr, ht, site_f, centric, g_i, f_re, f_im)
                grad[m, j, 0] = gx
                grad[m, j, 1] = gy
                grad[m, j, 2] = gz


@numba.njit(parallel=True, **JIT)
def intensities_batch(frac, hr, ht, site_f, centric, bounds, out):
    """|F|² of every model: frac (n_models, n_sites, 3) -> out (n_models, n_refl)."""
    n_refl = hr.shape[2]
    for c in numba.prange(bounds.shape[0] - 1):
        f_re = np.empty(n_refl)
        f_im = np.empty(n_refl)
        for m in range(bounds[c], bounds[c + 1]):
            _structure_factors(frac[m], hr, ht, site_f, centric, f_re, f_im)
            for k in range(n_refl):
                out[m, k] = f_re[k] * f_re[k] + f_im[k] * f_im[k]


@numba.njit(parallel=True, **JIT)
def fit_profiles_batch(
    intensity,
    start,
    length,
    offset,
    values,
    weights,
    y_obs,
    basis_t,
    b,
    c_matrix,
    projection,
    coef_y,
    norm,
    bounds,
    difference,
    scale,
    background,
    rwp,
):
    """Difference profiles after the exact scale and background fit, one model at a time in cache.

    intensity (n_models, n_refl) = |F|²; P stored as runs (start, length, offset, values); basis_t
    (background_terms, n_points); projection (background_terms, n_refl) = (BᵀWB)⁻¹BᵀWP; coef_y (background_terms,)
    = background fit of y_obs alone. Writes difference (n_models, n_points) = y_obs - y_calc, scale (n_models,),
    background (n_models, background_terms) and rwp (n_models,).
    """
    n_refl = intensity.shape[1]
    n_points = y_obs.shape[0]
    background_terms = basis_t.shape[0]
    for c in numba.prange(bounds.shape[0] - 1):
        peaks = np.empty(n_points)
        for m in range(bounds[c], bounds[c + 1]):
            for i in range(n_points):
                peaks[i] = 0.0
            for k in range(n_refl):
                ik = intensity[m, k]
                run = peaks[start[k] : start[k] + length[k]]
                vals = values[offset[k] : offset[k] + length[k]]
                for i in range(length[k]):
                    run[i] += ik * vals[i]
            num = 0.0
            for k in range(n_refl):
                num += b[k] * intensity[m, k]
            den = 0.0
            for i in range(n_points):
                den += weights[i] * peaks[i] * peaks[i]
            for r in range(background_terms):
                dot = 0.0
                for k in range(n_refl):
                    dot += c_matrix[r, k] * intensity[m, k]
                den -= dot * dot
            s = num / den if (num > 0.0 and den > 0.0) else 0.0
            scale[m] = s
            out = difference[m]
            for i in range(n_points):
                out[i] = y_obs[i] - s * peaks[i]
            for r in range(background_terms):
                dot = 0.0
                for k in range(n_refl):
                    dot += projection[r, k] * intensity[m, k]
                coef = coef_y[r] - s * dot
                background[m, r] = coef
                row = basis_t[r]
                for i in range(n_points):
                    out[i] -= coef * row[i]
            chi2 = 0.0
            for i in range(n_points):
                chi2 += weights[i] * out[i] * out[i]
            rwp[m] = math.sqrt(chi2 / norm)
