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

Pure functions of the genome; the Evaluator supplies Rwp and the local refinement.
"""

from __future__ import annotations

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


def regular_grid(cell: UnitCell, spacing: float, shift=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Regular fractional grid through the cell, at most ``spacing`` Å along each axis, shifted by ``shift`` (3,)
    steps: points (n_a · n_b · n_c, 3), in C order of the grid, and its shape (n_a, n_b, n_c)."""
    counts = tuple(int(n) for n in np.ceil(np.array([cell.a, cell.b, cell.c]) / spacing))
    axes = [(np.arange(n) + s) / n for n, s in zip(counts, shift, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3), counts


def movable_sites(fixed_genes: np.ndarray) -> np.ndarray:
    """Sites whose three genes are all free (general positions, not the origin anchor), shape (k,), int."""
    return np.flatnonzero(~np.asarray(fixed_genes, dtype=bool).reshape(-1, 3).any(axis=1))


def relocated(genome: np.ndarray, site: int, grid: np.ndarray) -> np.ndarray:
    """Copies of ``genome`` (n_genes,) with the atom of ``site`` on each grid point, shape (n_grid, n_genes)."""
    models = np.repeat(np.asarray(genome, dtype=float)[None], len(grid), axis=0)
    models[:, 3 * site : 3 * site + 3] = grid
    return models


def best_relocations(
    rwp_of, genome: np.ndarray, sites: np.ndarray, grid: np.ndarray, top: int
) -> tuple[np.ndarray, int]:
    """The ``top`` lowest-Rwp places of each movable atom, unrefined.

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

    Returns
    -------
    candidates : ndarray, shape (k · top, n_genes)
    evaluations : int
        Rwp evaluations spent (k · n_grid).
    """
    top = min(top, len(grid))
    kept = []
    for site in sites:
        models = relocated(genome, int(site), grid)
        rwp = np.asarray(rwp_of(models))
        kept.append(models[np.argsort(rwp, kind="stable")[:top]])
    if not kept:
        return np.empty((0, len(genome))), 0
    return np.concatenate(kept), len(sites) * len(grid)
