"""Numba kernels of the anti-bump penalty. Private: call them through :class:`gasolve.ga.antibump.AntiBump`.

The penalty is a sum over the pairs of atoms of the cell, every site expanded by every operator (centring
included) so that a site on a special position appears as several coinciding copies. The kernels never list
those copies: the images of a site that coincide (the cosets of its site-symmetry group, found from the
operators' composition table) become one atom of weight equal to their number, so that work scales with the
atoms of the cell, not with sites x operators. A pair of copies of one site is never a clash, and every other
pair of weighted atoms counts w_a w_b times. When the pair distance is invariant under the group (``orbit``:
the rounding of fractional differences commutes with every rotation, as in cells with orthogonal axes), the
sum runs over one atom per site against all atoms of the cell and is multiplied by the number of operators.
Otherwise every pair of weighted atoms is visited once; where a component of their fractional difference lies
at a half-integer, the copies round to different lattice images (and, in an oblique cell, to different
distances), so that pair is summed copy by copy, as the definition does.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from gasolve.scoring.kernels import JIT

#: Images of a site within this (fractional units, per coordinate) of another image are the same atom. Far
#: above the rounding of coordinates computed from exact special positions, far below any physical distance.
SAME_IMAGE = 1e-12
#: A difference component within this of a half-integer may round differently for two copies of an atom.
NEAR_HALF = 1e-9


@numba.njit(**JIT)
def _site_images(frac, rotations, translations, compose, images, labels, positions, weights, label_of, start):
    """Images of one site and its distinct atoms, written from index ``start``; returns the index after the last.

    frac (3,): the site; operator 0 is the identity. images (n_ops, 3) and labels (n_ops,) receive every image and
    the index of the atom it belongs to; positions (n, 3), weights (n,) and label_of (n,) the distinct atoms.
    Images k and k∘h coincide for every h of the site-symmetry group H (the operators that map the site onto
    itself), so each coset k H is one atom, labelled by its smallest operator index, of weight |k H|; the coset
    of the identity (H itself, label 0) comes first.
    """
    n_ops = rotations.shape[0]
    for k in range(n_ops):
        for i in range(3):
            images[k, i] = (
                rotations[k, i, 0] * frac[0]
                + rotations[k, i, 1] * frac[1]
                + rotations[k, i, 2] * frac[2]
                + translations[k, i]
            )
    stabiliser = np.empty(n_ops, dtype=np.int64)
    n_stab = 0
    for k in range(n_ops):
        same = True
        for i in range(3):
            delta = images[k, i] - images[0, i]
            if abs(delta - np.rint(delta)) >= SAME_IMAGE:
                same = False
        if same:
            stabiliser[n_stab] = k
            n_stab += 1
    count = np.zeros(n_ops)
    for k in range(n_ops):
        label = k
        for j in range(n_stab):
            label = min(label, compose[k, stabiliser[j]])
        labels[k] = label
        count[label] += 1.0
    n = start
    for k in range(n_ops):
        if count[k] > 0.0:
            positions[n, 0] = images[k, 0]
            positions[n, 1] = images[k, 1]
            positions[n, 2] = images[k, 2]
            weights[n] = count[k]
            label_of[n] = k
            n += 1
    return n


@numba.njit(inline="always", **JIT)
def _clash(x, y, same_site, metric, distance, same_position):
    """max(0, 1 - d/d0)² of points x and y (3,), d from the rounded fractional difference; 0 for two images of one
    site closer than ``same_position`` (Å)."""
    d0 = x[0] - y[0]
    d1 = x[1] - y[1]
    d2 = x[2] - y[2]
    d0 -= np.rint(d0)
    d1 -= np.rint(d1)
    d2 -= np.rint(d2)
    d_sq = (
        metric[0, 0] * d0 * d0
        + metric[1, 1] * d1 * d1
        + metric[2, 2] * d2 * d2
        + 2.0 * (metric[0, 1] * d0 * d1 + metric[0, 2] * d0 * d2 + metric[1, 2] * d1 * d2)
    )
    d = math.sqrt(d_sq)
    if d >= distance:
        return 0.0
    if same_site and d < same_position:
        return 0.0
    x = 1.0 - d / distance
    return x * x


@numba.njit(inline="always", **JIT)
def _near_half(x, y):
    """Whether a component of x - y lies within NEAR_HALF of a half-integer."""
    for i in range(3):
        delta = x[i] - y[i]
        if abs(delta - np.rint(delta)) > 0.5 - NEAR_HALF:
            return True
    return False


@numba.njit(**JIT)
def _copy_by_copy(a, b, sites, label_of, images, labels, metric, distance, same_position):
    """Σ of the clashes of every copy of atom a with every copy of atom b."""
    s, t = sites[a], sites[b]
    total = 0.0
    for k in range(images.shape[1]):
        if labels[s, k] != label_of[a]:
            continue
        for j in range(images.shape[1]):
            if labels[t, j] == label_of[b]:
                total += _clash(images[s, k], images[t, j], s == t, metric, distance, same_position)
    return total


@numba.njit(**JIT)
def _model_penalty(
    frac,
    free,
    rotations,
    translations,
    compose,
    metric,
    distance,
    same_position,
    orbit,
    fixed,
    positions,
    weights,
    sites,
    label_of,
    images,
    labels,
    first,
):
    """Penalty of one model's free sites against all atoms; the fixed ones are the first ``fixed`` entries of
    ``positions``, ``weights``, ``sites`` and ``label_of``, their images already in ``images`` and ``labels``
    (n_sites, n_ops, ...). Pairs of two fixed atoms are left out."""
    n_sites = frac.shape[0]
    for s in range(n_sites):
        for i in range(3):
            if not math.isfinite(frac[s, i]):
                return np.nan
    n = fixed
    for s in range(n_sites):
        if free[s]:
            first[s] = n
            stop = _site_images(
                frac[s], rotations, translations, compose, images[s], labels[s], positions, weights, label_of, n
            )
            for a in range(n, stop):
                sites[a] = s
            n = stop
    total = 0.0
    if orbit:
        # Σ over the N images of each free site equals N times the sum of its image under the identity, whose
        # atom is the first one written. Pairs of two free atoms are counted from both ends, hence the half.
        n_ops = rotations.shape[0]
        for s in range(n_sites):
            if not free[s]:
                continue
            a = first[s]
            t_fixed = 0.0
            for b in range(fixed):
                t_fixed += weights[b] * _clash(positions[a], positions[b], False, metric, distance, same_position)
            t_free = 0.0
            for b in range(fixed, n):
                same_site = sites[a] == sites[b]
                t_free += weights[b] * _clash(positions[a], positions[b], same_site, metric, distance, same_position)
            total += n_ops * (t_fixed + 0.5 * t_free)
    else:
        for a in range(fixed, n):
            partial = 0.0
            for b in range(a):
                if _near_half(positions[a], positions[b]):
                    total += _copy_by_copy(a, b, sites, label_of, images, labels, metric, distance, same_position)
                else:
                    same_site = sites[a] == sites[b]
                    x = _clash(positions[a], positions[b], same_site, metric, distance, same_position)
                    partial += weights[b] * x
            total += weights[a] * partial
    return total


@numba.njit(**JIT)
def antibump_batch(
    frac,
    free,
    rotations,
    translations,
    compose,
    metric,
    distance,
    same_position,
    orbit,
    fixed_positions,
    fixed_weights,
    fixed_sites,
    fixed_labels,
    images,
    labels,
    constant,
    out,
):
    """Anti-bump penalty of every model: frac (n_models, n_sites, 3) -> out (n_models,).

    free (n_sites,) bool: the sites whose images are computed per model; the others are the ``fixed_*`` atoms
    (distinct atoms with weights, site indices and labels; their images in the rows of images (n_sites, n_ops, 3)
    and labels (n_sites, n_ops), whose other rows are scratch), the same in every model, whose pairs among
    themselves sum to ``constant``. One thread: a batch takes about a millisecond, less than starting Numba's
    thread pool costs on a busy machine (measured: 0.9 ms on one thread, 80-130 ms on two with the two cores
    shared).
    """
    n_sites = frac.shape[1]
    n_ops = rotations.shape[0]
    n_fixed = fixed_positions.shape[0]
    n_max = n_fixed + n_sites * n_ops
    positions = np.empty((n_max, 3))
    weights = np.empty(n_max)
    sites = np.empty(n_max, dtype=np.int64)
    label_of = np.empty(n_max, dtype=np.int64)
    first = np.empty(n_sites, dtype=np.int64)
    for a in range(n_fixed):
        positions[a, 0] = fixed_positions[a, 0]
        positions[a, 1] = fixed_positions[a, 1]
        positions[a, 2] = fixed_positions[a, 2]
        weights[a] = fixed_weights[a]
        sites[a] = fixed_sites[a]
        label_of[a] = fixed_labels[a]
    for m in range(frac.shape[0]):
        out[m] = constant + _model_penalty(
            frac[m],
            free,
            rotations,
            translations,
            compose,
            metric,
            distance,
            same_position,
            orbit,
            n_fixed,
            positions,
            weights,
            sites,
            label_of,
            images,
            labels,
            first,
        )


@numba.njit(**JIT)
def distinct_images_batch(frac, rotations, translations, compose, images, labels, positions, weights, sites, label_of):
    """Images and distinct atoms of every site of frac (n_sites, 3): images (n_sites, n_ops, 3) and labels
    (n_sites, n_ops) as in :func:`_site_images`; positions, weights, sites and label_of sized n_sites · n_ops.
    Returns the number of distinct atoms."""
    n = 0
    for s in range(frac.shape[0]):
        stop = _site_images(
            frac[s], rotations, translations, compose, images[s], labels[s], positions, weights, label_of, n
        )
        for a in range(n, stop):
            sites[a] = s
        n = stop
    return n
