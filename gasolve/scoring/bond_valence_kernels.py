"""Numba kernel of the bond-valence penalty. Private: call it through
:class:`gasolve.ga.bond_valence_penalty.BondValencePenalty`.

For every model the sites are expanded by the operators into the distinct atoms of the cell
(:func:`gasolve.scoring.antibump_kernels.distinct_images_batch`); the bond valence sum of each counted site is
summed over the distinct atoms within the cutoff of its first image, over the lattice translations that can
reach them, and the global instability index is taken over the atoms of the cell.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gasolve.jit import JIT
from gasolve.scoring import antibump_kernels


@numba.njit(**JIT)
def _visit_bonds(
    positions, sites, label_of, n_atoms, first, rotations, r0, sign, counted, active, metric, cutoff, b, floor, reach,
    with_gradient, coefficient, bvs, grad,
):  # fmt: skip
    """Every counted bond from each active site's first image, within the cutoff.

    Without ``with_gradient``: the bond valence sum (signed, v.u.) of each site into bvs (n_sites,). With it:
    Σ_s coefficient[s] · d(bvs_s)/d(frac) into grad (n_sites, 3), where a bond from site s's first image to the
    image R_k x_t + τ_k (+ a lattice translation) of site t moves with -x_s and with R_k x_t; distances below the
    floor hold the valence constant there.
    """
    cutoff_sq = cutoff * cutoff
    for i in range(bvs.shape[0]):
        if not with_gradient:
            bvs[i] = 0.0
        if not active[i] or (with_gradient and coefficient[i] == 0.0):
            continue
        x = positions[first[i]]
        for a in range(n_atoms):
            j = sites[a]
            if not counted[i, j]:
                continue
            k = label_of[a]
            d0 = positions[a, 0] - x[0]
            d1 = positions[a, 1] - x[1]
            d2 = positions[a, 2] - x[2]
            d0 -= np.rint(d0)
            d1 -= np.rint(d1)
            d2 -= np.rint(d2)
            # a point at fractional component e along an axis lies at least |e| / |a*| from the origin
            for n0 in range(math.ceil(-reach[0] - d0), math.floor(reach[0] - d0) + 1):
                e0 = d0 + n0
                for n1 in range(math.ceil(-reach[1] - d1), math.floor(reach[1] - d1) + 1):
                    e1 = d1 + n1
                    for n2 in range(math.ceil(-reach[2] - d2), math.floor(reach[2] - d2) + 1):
                        e2 = d2 + n2
                        if not with_gradient:
                            d_sq = (
                                metric[0, 0] * e0 * e0
                                + metric[1, 1] * e1 * e1
                                + metric[2, 2] * e2 * e2
                                + 2.0 * (metric[0, 1] * e0 * e1 + metric[0, 2] * e0 * e2 + metric[1, 2] * e1 * e2)
                            )
                            if d_sq < cutoff_sq:
                                d = max(math.sqrt(d_sq), floor)
                                bvs[i] += sign[i, j] * math.exp((r0[i, j] - d) / b[i, j])
                            continue
                        g0 = metric[0, 0] * e0 + metric[0, 1] * e1 + metric[0, 2] * e2
                        g1 = metric[1, 0] * e0 + metric[1, 1] * e1 + metric[1, 2] * e2
                        g2 = metric[2, 0] * e0 + metric[2, 1] * e1 + metric[2, 2] * e2
                        d_sq = e0 * g0 + e1 * g1 + e2 * g2
                        if d_sq >= cutoff_sq:
                            continue
                        d = math.sqrt(d_sq)
                        if d <= floor:
                            continue
                        # d(sign v)/d(delta) = sign (-v / b) G delta / d
                        factor = coefficient[i] * sign[i, j] * (-math.exp((r0[i, j] - d) / b[i, j]) / b[i, j]) / d
                        f0, f1, f2 = factor * g0, factor * g1, factor * g2
                        grad[i, 0] -= f0
                        grad[i, 1] -= f1
                        grad[i, 2] -= f2
                        for c in range(3):
                            grad[j, c] += rotations[k, 0, c] * f0 + rotations[k, 1, c] * f1 + rotations[k, 2, c] * f2


@numba.njit(**JIT)
def global_instability_batch(
    frac, rotations, translations, compose, metric, r0, sign, counted, active, valence, cutoff, b, floor, reach,
    with_gradient, out, grad,
):  # fmt: skip
    """Global instability index (v.u.) of every model into out (n_models,), and with ``with_gradient`` its
    derivative d(GII)/d(frac) into grad (n_models, n_sites, 3) (the sites' multiplicities held constant; 0 where
    the index is 0; grad is not touched without it).

    frac (n_models, n_sites, 3); operator 0 the identity; r0, sign (+1 when the site is the cation of the pair,
    -1 when the anion), b (Å) and counted (n_sites, n_sites) per pair of sites; active (n_sites,) the sites whose sums
    enter the index, valence (n_sites,) their |formal valence|; distances below ``floor`` (Å) count as ``floor``;
    reach (3,) the cutoff times |a*|, |b*|, |c*|: the fractional distance along each axis within which a neighbour
    can lie. A model with a non-finite coordinate gets NaN.
    """
    n_models, n_sites = frac.shape[0], frac.shape[1]
    n_ops = rotations.shape[0]
    images = np.empty((n_sites, n_ops, 3))
    labels = np.empty((n_sites, n_ops), dtype=np.int64)
    positions = np.empty((n_sites * n_ops, 3))
    weights = np.empty(n_sites * n_ops)
    sites = np.empty(n_sites * n_ops, dtype=np.int64)
    label_of = np.empty(n_sites * n_ops, dtype=np.int64)
    first = np.empty(n_sites, dtype=np.int64)
    multiplicity = np.empty(n_sites)
    bvs = np.empty(n_sites)
    coefficient = np.zeros(n_sites)
    unused = np.empty((n_sites, 3))
    for m in range(n_models):
        if with_gradient:
            grad[m] = 0.0
        finite = True
        for s in range(n_sites):
            for k in range(3):
                if not math.isfinite(frac[m, s, k]):
                    finite = False
        if not finite:
            out[m] = np.nan
            if with_gradient:
                grad[m] = np.nan
            continue
        n_atoms = antibump_kernels.distinct_images_batch(
            frac[m], rotations, translations, compose, images, labels, positions, weights, sites, label_of
        )
        multiplicity[:] = 0.0
        for a in range(n_atoms - 1, -1, -1):
            first[sites[a]] = a  # the identity's coset comes first among a site's atoms
            multiplicity[sites[a]] += 1.0
        _visit_bonds(
            positions, sites, label_of, n_atoms, first, rotations, r0, sign, counted, active, metric, cutoff, b,
            floor, reach, False, coefficient, bvs, unused,
        )  # fmt: skip
        total = 0.0
        count = 0.0
        for s in range(n_sites):
            if active[s]:
                deviation = abs(bvs[s]) - valence[s]
                total += multiplicity[s] * deviation * deviation
                count += multiplicity[s]
        gii = math.sqrt(total / count) if count > 0.0 else 0.0
        out[m] = gii
        if not with_gradient or gii == 0.0:
            continue
        for s in range(n_sites):
            coefficient[s] = 0.0
            if active[s] and bvs[s] != 0.0:
                sign_s = 1.0 if bvs[s] > 0.0 else -1.0
                coefficient[s] = multiplicity[s] * (abs(bvs[s]) - valence[s]) * sign_s / (count * gii)
        _visit_bonds(
            positions, sites, label_of, n_atoms, first, rotations, r0, sign, counted, active, metric, cutoff, b,
            floor, reach, True, coefficient, bvs, grad[m],
        )  # fmt: skip
