"""Relocation scan: move one atom of a stuck model over a grid through the whole cell, keep the best places.

When every island has converged on one model and restarts no longer beat it, that model is most often right
but for one or a few atoms that sit several Å from their sites (measured on K4SnO4 in P1: 9 of 20 runs of
10⁷ evaluations ended so, e.g. 17 of 18 atoms within 0.1 Å and one O 3.8 Å off). No small mutation or
crossover takes such an atom out: every model between its place and its site is worse. Thrown at random
positions and refined, the atom reached its site in none of 1,000 trials (an O atom's basin is a small share
of the cell), but the systematic version finds it at once: with every other atom held, put the atom on each
point of a grid of spacing ~0.4 Å through the cell, rank the points by Rwp, and refine the best few places of
each atom. This is the real-space analogue of completing a structure from a difference Fourier map, and it
costs n_atoms · n_grid Rwp evaluations (about 1.2·10⁵ for the 17 movable atoms of K4SnO4 in P1).

Only one point of each orbit of a grid the group maps onto itself is scored (:func:`scan_points`): an atom on a
general position put at ``p`` or at any image ``R p + t`` of it gives the same crystal and the same Rwp, so a
whole-cell grid scores each place once per operator of the group (centring included). In R-3 (18 operators in the
hexagonal cell) the scan costs about a sixteenth of the whole-cell grid; in P1 nothing changes.

An atom on a special position with free coordinates (a plane such as 3j (x, y, 0) in P-6, a line such as 4a
(x, x, x) in P2_13) is moved too, over the projections of the same points onto its position, each distinct place
scored once (:func:`relocatable_sites`; ``best_relocations`` with ``project``). A scan that took only atoms with
three free coordinates moved nothing in structures built on special positions: Yb6Co30P19 (P-6, all 19 sites on
3j, 3k and 1b, large benchmark tune half) ended 3 runs of 2·10⁶ evaluations (seeds 1-3) at Rwp 0.039-0.044 against
the truth's 0.038, some P and Co 2-3.6 Å off; with its special positions scanned all 3 were solved (largest
distance 0.09-0.11 Å), in the GA or in the light-atom search that follows it. A site on a plane costs at most the
grid's points on it (n_a · n_b for (x, y, 0)), one on a line fewer.

Pure functions of the genome; the Evaluator supplies Rwp and the local refinement.
"""

from __future__ import annotations

from fractions import Fraction
from math import lcm

import numpy as np

from gasolve.crystal.cell import UnitCell


def scan_grid(rng: np.random.Generator, cell: UnitCell, spacing: float) -> np.ndarray:
    """Fractional grid points through the cell, spacing at most ``spacing`` Å along each axis.

    The grid is shifted by a random fraction of one step per axis, so that repeated scans look at new points.

    Parameters
    ----------
    rng : Generator
    cell : UnitCell
    spacing : float
        Largest step along a, b and c (Å).

    Returns
    -------
    ndarray, shape (n_a · n_b · n_c, 3)
        Fractional coordinates in [0, 1).
    """
    return regular_grid(cell, spacing, rng.random(3))[0]


def scan_points(rng: np.random.Generator, orbits: tuple[np.ndarray, tuple[int, int, int]]) -> np.ndarray:
    """The places the scan puts an atom: one point of each orbit of a grid that the group maps onto itself
    (:func:`symmetric_grid`'s result, ``orbits``), all shifted by one random vector of at most a quarter step per
    axis, so that repeated scans look at new points.

    Every place in the cell is equivalent under the group to a place near a point returned: as near as the
    whole-cell grid of :func:`scan_grid` would put it, give or take the shift.

    Parameters
    ----------
    rng : Generator
        Draws the shift.
    orbits : (ndarray (m, 3), tuple of int)
        The points kept and the grid's counts along a, b and c (:func:`symmetric_grid`).

    Returns
    -------
    ndarray, shape (m, 3)
        Fractional coordinates in [0, 1); m about n_grid / n_ops.
    """
    points, counts = orbits
    shift = (rng.random(3) - 0.5) / (2.0 * np.asarray(counts))
    return np.mod(points + shift, 1.0)


def symmetric_grid(
    cell: UnitCell, spacing: float, rotations: np.ndarray, translations: np.ndarray
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """One point of each orbit of a regular grid through the cell that the group maps onto itself.

    The grid has at least ``cell length / spacing`` points along each axis, rounded up so that every translation
    of the group is a whole number of steps and axes that a rotation mixes (a and b in trigonal, hexagonal and
    tetragonal groups, all three in cubic ones) have as many points. Each operator then maps grid points on grid
    points, exactly, in integer arithmetic, and the point kept of each orbit is the one of lowest index.

    Parameters
    ----------
    cell : UnitCell
    spacing : float
        Largest step along a, b and c (Å).
    rotations : ndarray, shape (n_ops, 3, 3), int
    translations : ndarray, shape (n_ops, 3)
        Operators x -> R x + t, centring included; translations multiples of 1/24.

    Returns
    -------
    points : ndarray, shape (m, 3)
        Fractional coordinates in [0, 1) of the points kept, about n_grid / n_ops of them (more where special
        positions, whose orbits are short, lie on the grid).
    counts : tuple of int
        The grid's points along a, b and c.
    """
    rotations = np.asarray(rotations, dtype=np.int64)
    translations = np.asarray(translations, dtype=float)
    counts = _symmetric_counts(cell, spacing, rotations, translations)
    n = np.asarray(counts, dtype=np.int64)
    index = np.stack(np.meshgrid(*(np.arange(k) for k in counts), indexing="ij"), axis=-1).reshape(-1, 3)
    linear = (index[:, 0] * n[1] + index[:, 1]) * n[2] + index[:, 2]
    lowest = linear.copy()
    for rotation, translation in zip(rotations, translations, strict=True):
        # x -> R x + t with x = i / n: i' = R i + n t, whole numbers because R mixes only axes of equal counts and
        # the counts are multiples of the translations' denominators
        image = np.mod(index @ rotation.T + np.rint(translation * n).astype(np.int64), n)
        lowest = np.minimum(lowest, (image[:, 0] * n[1] + image[:, 1]) * n[2] + image[:, 2])
    kept = index[lowest == linear]
    return kept / n, counts


def _symmetric_counts(
    cell: UnitCell, spacing: float, rotations: np.ndarray, translations: np.ndarray
) -> tuple[int, int, int]:
    """Grid points per axis for :func:`symmetric_grid`: at least length / spacing, a multiple of each axis's
    translation denominators, equal on axes a rotation mixes."""
    counts = [int(np.ceil(length / spacing)) for length in (cell.a, cell.b, cell.c)]
    denominators = [1, 1, 1]
    for translation in translations:
        for axis, value in enumerate(translation):
            denominators[axis] = lcm(denominators[axis], Fraction(float(value)).limit_denominator(24).denominator)
    mixed = [{axis} for axis in range(3)]
    for rotation in rotations:
        for i in range(3):
            for j in range(3):
                if i != j and rotation[i, j] != 0:
                    joined = mixed[i] | mixed[j]
                    for axis in joined:
                        mixed[axis] = joined
    for axis in range(3):
        group = sorted(mixed[axis])
        step = lcm(*(denominators[k] for k in group))
        largest = max(counts[k] for k in group)
        counts[axis] = -(-largest // step) * step
    return counts[0], counts[1], counts[2]


def regular_grid(cell: UnitCell, spacing: float, shift=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Regular fractional grid through the cell, at most ``spacing`` Å along each axis, shifted by ``shift`` (3,)
    steps: points (n_a · n_b · n_c, 3), in C order of the grid, and its shape (n_a, n_b, n_c)."""
    counts = tuple(int(n) for n in np.ceil(np.array([cell.a, cell.b, cell.c]) / spacing))
    axes = [(np.arange(n) + s) / n for n, s in zip(counts, shift, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3), counts


def movable_sites(fixed_genes: np.ndarray) -> np.ndarray:
    """Sites whose three genes are all free (general positions, not the origin anchor), shape (k,), int."""
    return np.flatnonzero(~np.asarray(fixed_genes, dtype=bool).reshape(-1, 3).any(axis=1))


def relocatable_sites(held_genes: np.ndarray, position_fixed: np.ndarray) -> np.ndarray:
    """Sites the scan may move: none of their genes held (origin anchor, atoms held by an earlier search) and at
    least one left free by their Wyckoff position, shape (k,), int.

    Parameters
    ----------
    held_genes, position_fixed : ndarray, shape (n_genes,), bool
        Genes held by the search; genes that carry no free parameter of the site's Wyckoff position.
    """
    held = np.asarray(held_genes, dtype=bool).reshape(-1, 3).any(axis=1)
    free = (~np.asarray(position_fixed, dtype=bool)).reshape(-1, 3).any(axis=1)
    return np.flatnonzero(~held & free)


def relocated(genome: np.ndarray, site: int, grid: np.ndarray) -> np.ndarray:
    """Copies of ``genome`` (n_genes,) with the atom of ``site`` on each grid point, shape (n_grid, n_genes)."""
    models = np.repeat(np.asarray(genome, dtype=float)[None], len(grid), axis=0)
    models[:, 3 * site : 3 * site + 3] = grid
    return models


def best_relocations(
    rwp_of, genome: np.ndarray, sites: np.ndarray, grid: np.ndarray, top: int, project=None
) -> tuple[np.ndarray, int]:
    """The ``top`` lowest-Rwp places of each movable atom, unrefined.

    With ``project``, the copies are projected on the sites' Wyckoff positions and the places a site takes are
    scored once each: an atom on a plane or a line of special positions (3j in P-6, 4a (x,x,x) in P2_13) takes
    every grid point's projection, and many points project to one place.

    Parameters
    ----------
    rwp_of : callable
        genomes (n, n_genes) -> Rwp (n,).
    genome : ndarray, shape (n_genes,)
    sites : ndarray, shape (k,), int
        Atoms to move (:func:`movable_sites`).
    grid : ndarray, shape (n_grid, 3)
    top : int
        Places kept per atom.
    project : callable, optional
        genomes (n, n_genes) -> the same with every site on its Wyckoff position
        (:meth:`gasolve.crystal.wyckoff.SiteMap.project`).

    Returns
    -------
    candidates : ndarray, shape (at most k · top, n_genes)
    evaluations : int
        Rwp evaluations spent (k · n_grid without ``project``; the distinct places with it).
    """
    kept = []
    spent = 0
    for site in sites:
        models = relocated(genome, int(site), grid)
        if project is not None:
            models = project(models)
            slots = np.round(models[:, 3 * int(site) : 3 * int(site) + 3], 9) % 1.0
            models = models[np.sort(np.unique(slots, axis=0, return_index=True)[1])]
        rwp = np.asarray(rwp_of(models))
        spent += len(models)
        kept.append(models[np.argsort(rwp, kind="stable")[:top]])
    if not kept:
        return np.empty((0, len(genome))), 0
    return np.concatenate(kept), spent
