"""Zero shift of a line list without a cell, from the orders of one reflection (Q(nh nk nl) = n² Q(hkl)).

A zero shift z moves every line alike in 2θ, so it breaks the exact relations between the Q = (2 sin θ / λ)² of a
reflection and of its higher orders. For every pair of lines (i, j) and order n, the zero that makes
sin((2θ_j - z)/2) = n sin((2θ_i - z)/2) is solved for by Newton's method; pairs that are orders of one reflection
agree on the pattern's zero, chance pairs scatter. This is the zero-point test that indexing programs use on line
pairs (de Wolff, Acta Cryst. 10 (1957) 590, for the 2θ(2h)/2θ(h) relation; Dong, Wu, Wan & Lin, J. Appl. Cryst. 32
(1999) 838, systematic zero determination from such pairs before indexing). It only orders the zero grid of a
search that cannot refine the zero itself (the triclinic one, :mod:`gasolve.indexing.triclinic`): each grid zero is
scored by the pairs within half a grid step of it.
"""

from __future__ import annotations

import numpy as np


def order_zeros(
    two_theta: np.ndarray,
    grid: np.ndarray,
    orders: tuple[int, ...] = (2, 3),
    iterations: int = 4,
    min_support: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The zero grid ordered by the support of the lines' order pairs, best first.

    Parameters
    ----------
    two_theta : ndarray, shape (n_lines,)
        Observed line positions (degrees), one wavelength.
    grid : ndarray, shape (n_zeros,)
        Zero shifts to order (degrees): the Bragg angle is 2θ - zero. Evenly spaced (the half-step window of each
        is half the smallest spacing).
    orders : tuple of int
        Orders n tried for each pair.
    iterations : int
        Newton steps from z = 0.
    min_support : int
        Fewest solutions that set a zero before the grid's order: a zero with less support counts as unsupported
        (0), so that a single chance pair (of the n(n-1)/2 pairs times the orders tried) does not put a zero
        before 0.

    Returns
    -------
    zeros : ndarray, shape (n_zeros,)
        ``grid`` by decreasing support (below ``min_support``: none); ties keep the grid's order.
    support : ndarray, shape (n_zeros,)
        The number of (pair, order) solutions within half a step of each, in that order.
    """
    grid = np.asarray(grid, dtype=float)
    two_theta = np.sort(np.asarray(two_theta, dtype=float))
    if len(grid) < 2 or len(two_theta) < 2:
        return grid, np.zeros(len(grid), dtype=int)
    half_step = 0.5 * float(np.min(np.diff(np.sort(grid))))
    i, j = np.triu_indices(len(two_theta), k=1)
    low, high = np.radians(two_theta[i]) / 2.0, np.radians(two_theta[j]) / 2.0
    found = []
    for n in orders:
        z = np.zeros(len(i))  # half the zero shift, radians
        for _ in range(iterations):
            g = np.sin(high - z) - n * np.sin(low - z)
            slope = -np.cos(high - z) + n * np.cos(low - z)
            with np.errstate(divide="ignore", invalid="ignore"):
                z = z - g / slope
        found.append(2.0 * np.degrees(z))
    zeros = np.concatenate(found)
    zeros = zeros[np.isfinite(zeros)]
    support = np.array([np.count_nonzero(np.abs(zeros - g) <= half_step) for g in grid])
    order = np.argsort(-np.where(support >= min_support, support, 0), kind="stable")
    return grid[order], support[order]
