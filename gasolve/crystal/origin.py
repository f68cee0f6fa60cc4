"""The floating origin of polar space groups, and the coordinates that pin it.

In a space group whose rotations all leave a direction v invariant (R v = v for every operator), shifting every
atom by t v maps a structure onto an equivalent one: the origin is not defined along v (International Tables
Vol. A, sect. 3.5, "polar directions"; Giacovazzo et al., Fundamentals of Crystallography, ch. 5). The polar
directions span the null space of the stacked (R - I). That space is the whole of R³ in P1, one or two axes in
the other polar groups (c in P6_3mc, a and c in Cm) and [111] in rhombohedral-axes settings such as R3:R and
R3m:R. A refinement must hold the origin, as refinement programs do, by fixing one atom's coordinate along each
polar direction (here: the heaviest atom's), otherwise its normal matrix is singular. Everything is derived from
the group's operators; nothing is tabulated by hand.
"""

from __future__ import annotations

import gemmi
import numpy as np
import scipy.linalg

from gasolve.crystal.spacegroup import SpaceGroup

_TOLERANCE = 1e-8


def polar_directions(space_group: SpaceGroup) -> np.ndarray:
    """Basis of the directions along which the origin floats, in fractional coordinates.

    Parameters
    ----------
    space_group : SpaceGroup

    Returns
    -------
    ndarray, shape (n_polar, 3)
        Rows in reduced echelon form (1 at a pivot coordinate, 0 at the other rows' pivots): (0, 0, 1) for
        P6_3mc, (1, 0, 0) and (0, 0, 1) for Cm, (1, 1, 1) for R3:R, the identity for P1; empty for groups with
        a fixed origin.
    """
    stacked = np.concatenate([r - np.eye(3) for r in space_group.primitive_rotations]).astype(float)
    _, singular, vt = np.linalg.svd(stacked)
    rank = int(np.count_nonzero(singular > _TOLERANCE))
    basis = vt[rank:]
    if not len(basis):
        return np.zeros((0, 3))
    _, _, pivots = scipy.linalg.qr(basis, pivoting=True)
    pivots = np.sort(pivots[: len(basis)])
    echelon = np.linalg.solve(basis[:, pivots], basis)
    return np.round(echelon, 12) + 0.0  # exact 0 and 1 where the operators give them; + 0.0 turns -0 into 0


def origin_anchor(elements: list[str] | tuple[str, ...]) -> int:
    """Index of the site that holds the origin: the heaviest (first of the heaviest), as refinement programs
    prefer, since its coordinates are the best determined."""
    return int(np.argmax([gemmi.Element(e).atomic_number for e in elements]))


def origin_fixing_slots(
    space_group: SpaceGroup, elements: list[str] | tuple[str, ...], site_matrices: np.ndarray | None = None
) -> np.ndarray:
    """Genome slots to hold fixed so that the origin no longer floats: the anchor site's coordinates along the
    polar directions.

    Parameters
    ----------
    space_group : SpaceGroup
    elements : sequence of str, length n_sites
    site_matrices : ndarray, shape (n_sites, 3, 3), optional
        frac_i = M_i g_i + t_i per site (:class:`~gasolve.crystal.wyckoff.SiteMap`); the identity (general
        positions) when absent.

    Returns
    -------
    ndarray, shape (3 n_sites,), bool
        True at the slots to hold; as many as there are polar directions, all on the anchor site.
    """
    n_sites = len(elements)
    fixed = np.zeros(3 * n_sites, dtype=bool)
    directions = polar_directions(space_group)
    if not len(directions) or not n_sites:
        return fixed
    anchor = origin_anchor(elements)
    matrix = np.eye(3) if site_matrices is None else np.asarray(site_matrices, dtype=float)[anchor]
    # Genome change that moves the anchor by each polar direction: M dg = v (a site can always follow a polar
    # shift, since its site-symmetry rotations leave v invariant too).
    moves = np.linalg.lstsq(matrix, directions.T, rcond=None)[0].T
    if not np.allclose(matrix @ moves.T, directions.T, atol=1e-6):
        raise ValueError(f"site {anchor} cannot follow the polar shifts of {space_group.symbol}")
    _, _, pivots = scipy.linalg.qr(moves, pivoting=True)
    slots = pivots[: len(directions)]
    if abs(np.linalg.det(moves[:, slots])) < _TOLERANCE:
        raise ValueError(f"site {anchor} cannot hold the origin of {space_group.symbol}")  # pragma: no cover
    fixed[3 * anchor + slots] = True
    return fixed


def held_coordinates(slots: np.ndarray, site_matrices: np.ndarray | None = None) -> np.ndarray:
    """Fractional coordinates that follow the held genome slots (through the site map, if any).

    Parameters
    ----------
    slots : ndarray, shape (3 n_sites,), bool
        From :func:`origin_fixing_slots`.
    site_matrices : ndarray, shape (n_sites, 3, 3), optional

    Returns
    -------
    ndarray, shape (n_sites, 3), bool
    """
    held = np.asarray(slots, dtype=bool).reshape(-1, 3)
    if site_matrices is None:
        return held
    return np.einsum("sij,sj->si", np.abs(np.asarray(site_matrices, dtype=float)), held.astype(float)) > 0
