"""Numba kernels of the scorer with the dynamical occupancy correction of every site, model by model.

Private: :class:`gasolve.scoring.Scorer` calls them when its problem carries
:class:`~gasolve.scoring.overlap.OverlapTables`; without it the kernels of :mod:`gasolve.scoring.kernels` run
unchanged, so the correction costs nothing when it is off.

Each model's factors c (n_sites,) come from :func:`gasolve.scoring.overlap.model_factors` inside the same
parallel loop (a second parallel region per call would cost a thread wake-up, milliseconds on a loaded
machine), and site j scatters with c_j · site_f[j]. The gradient adds the chain rule through c: with
F = Σ_j c_j P_j (P_j the site's partial structure factor) and I = |F|², dI/dc_j = 2 Re(F* P_j), and
dRwp/dx_i += Σ_j dRwp/dc_j · dc_j/dx_i.

The ``overlap`` arguments are :meth:`~gasolve.scoring.overlap.OverlapTables.kernel_args`: rotations
(n_ops, 3, 3), translations (n_ops, 3), metric (3, 3), image_weight (n_sites,), partners (n_sites, n_sites) and
the overlap radius (Å).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gasolve.scoring.kernels import (
    _TWO_PI,
    JIT,
    _chi2,
    _cos2pi,
    _gram_times,
    _quadratic_terms,
    _reduce,
    _sin2pi,
    _site_position_gradient,
)
from gasolve.scoring.overlap import model_factors


@numba.njit(**JIT)
def _scaled_structure_factors(frac, factors, hr, ht, site_f, centric, f_re, f_im):
    """F(h) of one model with site j's scattering scaled by ``factors[j]``, into ``f_re`` and ``f_im`` (n_refl,).

    As :func:`gasolve.scoring.kernels._structure_factors`, one multiplication more per term (cheaper than
    scaling a copy of ``site_f``, which does not stay in the first-level cache).
    """
    n_sites = frac.shape[0]
    n_terms = hr.shape[0]
    n_refl = hr.shape[2]
    for k in range(n_refl):
        f_re[k] = 0.0
        f_im[k] = 0.0
    for j in range(n_sites):
        c_j = factors[j]
        f_j = site_f[j]
        x = frac[j, 0] - math.floor(frac[j, 0])
        y = frac[j, 1] - math.floor(frac[j, 1])
        z = frac[j, 2] - math.floor(frac[j, 2])
        for s in range(n_terms):
            if centric:
                for k in range(n_refl):
                    t = _reduce(hr[s, 0, k] * x + hr[s, 1, k] * y + hr[s, 2, k] * z + ht[s, k])
                    f_re[k] += c_j * f_j[k] * _cos2pi(t)
            else:
                for k in range(n_refl):
                    t = _reduce(hr[s, 0, k] * x + hr[s, 1, k] * y + hr[s, 2, k] * z + ht[s, k])
                    w = c_j * f_j[k]
                    f_re[k] += w * _cos2pi(t)
                    f_im[k] += w * _sin2pi(t)


@numba.njit(**JIT)
def _site_structure_factors(frac, hr, ht, site_f, centric, p_re, p_im):
    """Partial structure factor of every site, P_j(h), into ``p_re`` and ``p_im`` (n_sites, n_refl).

    As :func:`gasolve.scoring.kernels._structure_factors`, site by site instead of summed.
    """
    n_sites = frac.shape[0]
    n_terms = hr.shape[0]
    n_refl = hr.shape[2]
    for j in range(n_sites):
        row_re = p_re[j]
        row_im = p_im[j]
        f_j = site_f[j]
        for k in range(n_refl):
            row_re[k] = 0.0
            row_im[k] = 0.0
        x = frac[j, 0] - math.floor(frac[j, 0])
        y = frac[j, 1] - math.floor(frac[j, 1])
        z = frac[j, 2] - math.floor(frac[j, 2])
        for s in range(n_terms):
            if centric:
                for k in range(n_refl):
                    t = _reduce(hr[s, 0, k] * x + hr[s, 1, k] * y + hr[s, 2, k] * z + ht[s, k])
                    row_re[k] += f_j[k] * _cos2pi(t)
            else:
                for k in range(n_refl):
                    t = _reduce(hr[s, 0, k] * x + hr[s, 1, k] * y + hr[s, 2, k] * z + ht[s, k])
                    row_re[k] += f_j[k] * _cos2pi(t)
                    row_im[k] += f_j[k] * _sin2pi(t)


@numba.njit(parallel=True, **JIT)
def rwp_batch(
    frac,
    rotations,
    translations,
    metric,
    image_weight,
    partners,
    radius,
    hr,
    ht,
    site_f,
    centric,
    b,
    band,
    band_start,
    band_stop,
    c_matrix,
    a_const,
    norm,
    bounds,
    out,
):
    """Rwp of every model with the correction: frac (n_models, n_sites, 3) -> out (n_models,)."""
    n_refl = hr.shape[2]
    n_sites = site_f.shape[0]
    for c in numba.prange(bounds.shape[0] - 1):
        factors = np.empty(n_sites)
        unused = np.empty((1, 1, 3))
        f_re = np.empty(n_refl)
        f_im = np.empty(n_refl)
        intensity = np.empty(n_refl)
        acc = np.empty(n_refl)
        for m in range(bounds[c], bounds[c + 1]):
            model_factors(
                frac[m], rotations, translations, metric, image_weight, partners, radius, False, factors, unused
            )
            _scaled_structure_factors(frac[m], factors, hr, ht, site_f, centric, f_re, f_im)
            for k in range(n_refl):
                intensity[k] = f_re[k] * f_re[k] + f_im[k] * f_im[k]
            num, den = _quadratic_terms(intensity, b, band, band_start, band_stop, c_matrix, acc)
            chi2, _ = _chi2(num, den, a_const)
            out[m] = math.sqrt(chi2 / norm)


@numba.njit(parallel=True, **JIT)
def intensities_batch(
    frac, rotations, translations, metric, image_weight, partners, radius, hr, ht, site_f, centric, bounds, out
):
    """|F|² of every model with the correction: out (n_models, n_refl)."""
    n_refl = hr.shape[2]
    n_sites = site_f.shape[0]
    for c in numba.prange(bounds.shape[0] - 1):
        factors = np.empty(n_sites)
        unused = np.empty((1, 1, 3))
        f_re = np.empty(n_refl)
        f_im = np.empty(n_refl)
        for m in range(bounds[c], bounds[c + 1]):
            model_factors(
                frac[m], rotations, translations, metric, image_weight, partners, radius, False, factors, unused
            )
            _scaled_structure_factors(frac[m], factors, hr, ht, site_f, centric, f_re, f_im)
            for k in range(n_refl):
                out[m, k] = f_re[k] * f_re[k] + f_im[k] * f_im[k]


@numba.njit(parallel=True, **JIT)
def rwp_gradient_batch(
    frac,
    rotations,
    translations,
    metric,
    image_weight,
    partners,
    radius,
    hr,
    ht,
    site_f,
    centric,
    b,
    band,
    band_start,
    band_stop,
    c_matrix,
    a_const,
    norm,
    bounds,
    out,
    grad,
):
    """Rwp and dRwp/dx (n_models, n_sites, 3) with the correction, its factors' derivatives included.

    The position gradient at fixed factors is that of :func:`gasolve.scoring.kernels.rwp_gradient_batch` with
    every site's scattering scaled by its factor; dRwp/dc_j = Σ_k dRwp/dI_k · 2 (F_re P_j,re + F_im P_j,im).
    """
    n_refl = hr.shape[2]
    n_sites = frac.shape[1]
    for c in numba.prange(bounds.shape[0] - 1):
        factors = np.empty(n_sites)
        jacobian = np.empty((n_sites, n_sites, 3))
        grad_factors = np.empty(n_sites)
        p_re = np.empty((n_sites, n_refl))
        p_im = np.empty((n_sites, n_refl))
        f_re = np.empty(n_refl)
        f_im = np.empty(n_refl)
        intensity = np.empty(n_refl)
        g_i = np.empty(n_refl)
        acc = np.empty(n_refl)
        for m in range(bounds[c], bounds[c + 1]):
            model_factors(
                frac[m], rotations, translations, metric, image_weight, partners, radius, True, factors, jacobian
            )
            _site_structure_factors(frac[m], hr, ht, site_f, centric, p_re, p_im)
            for k in range(n_refl):
                f_re[k] = 0.0
                f_im[k] = 0.0
            for j in range(n_sites):
                c_j = factors[j]
                for k in range(n_refl):
                    f_re[k] += c_j * p_re[j, k]
                    f_im[k] += c_j * p_im[j, k]
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
            _gram_times(intensity, band, band_start, band_stop, c_matrix, g_i)
            # g_i = 2π · 2 dRwp/dI (as in kernels.rwp_gradient_batch): dRwp/dI = g_i / (4π).
            factor = _TWO_PI / (2.0 * rwp * norm)
            for k in range(n_refl):
                g_i[k] = factor * 2.0 * (-2.0 * ratio * b[k] + 2.0 * ratio * ratio * g_i[k])
            for j in range(n_sites):
                dot = 0.0
                for k in range(n_refl):
                    dot += g_i[k] * (f_re[k] * p_re[j, k] + f_im[k] * p_im[j, k])
                grad_factors[j] = dot / _TWO_PI
                gx, gy, gz = _site_position_gradient(frac[m, j], j, hr, ht, site_f, centric, g_i, f_re, f_im)
                c_j = factors[j]
                grad[m, j, 0] += c_j * gx
                grad[m, j, 1] += c_j * gy
                grad[m, j, 2] += c_j * gz
            for j in range(n_sites):  # chain rule through the factors
                for i in range(n_sites):
                    for a in range(3):
                        grad[m, i, a] += grad_factors[j] * jacobian[j, i, a]
