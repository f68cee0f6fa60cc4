"""Independent sites that sit on one orbit: two atoms at the same place, which a CIF cannot hold.

A wrong model can put two independent sites on one orbit (two N sites of an α-N2 hypothesis in Pa-3 at x and
-x of one 8c position, or both snapped onto one special position). The scorer sums their scattering, but a CIF
of two full atoms at one point describes no crystal: pymatgen's CifParser merges atoms closer than its site
tolerance (1e-4 in fractional coordinates) and refuses a merged occupancy above 1 ("Invalid CIF file with no
structures"), and ASE silently drops the second atom. :func:`share_occupancy` writes such a group the way a
crystal can hold it, as one point whose occupancies add up to 1, which is what FOX's dynamical occupancy
correction (Favre-Nicolin & Černý, J. Appl. Cryst. 35 (2002) 734) makes of overlapping atoms of a general-position
search; the caller says so in summary.json.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gasolve.crystal.structure import Structure

#: Two sites coincide when an image of one lies within this distance (Å) of the other ...
COINCIDENT_DISTANCE = 0.05
#: ... or within this of it in every fractional coordinate: ASE's CIF reader merges atoms at 1e-3 (its
#: ``symprec``) and pymatgen at 1e-4, whatever the cell's size.
COINCIDENT_FRACTION = 1e-3
_OFFSETS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)


@dataclass(frozen=True)
class CoincidentGroup:
    """Sites of a structure whose orbits share their points.

    Attributes
    ----------
    sites : tuple of int
        Indices of the independent sites, ascending.
    distance : float
        Largest distance (Å) from the first site to the nearest image of each other one.
    """

    sites: tuple[int, ...]
    distance: float


def coincident_groups(
    structure: Structure, distance: float = COINCIDENT_DISTANCE, fraction: float = COINCIDENT_FRACTION
) -> list[CoincidentGroup]:
    """Groups of independent sites that lie on one orbit (see :data:`COINCIDENT_DISTANCE`).

    Parameters
    ----------
    structure : Structure
    distance : float
        Å.
    fraction : float
        Fractional coordinates.

    Returns
    -------
    list of CoincidentGroup
        Connected groups (site i with j and j with k make one group), each of two sites or more; empty for a
        model whose sites are all apart.
    """
    frac = structure.frac
    n_sites = len(frac)
    if n_sites < 2:
        return []
    group = structure.space_group
    images = np.einsum("sij,nj->nsi", group.rotations.astype(float), frac) + group.translations  # (n, s, 3)
    metric = structure.cell.metric
    linked = np.zeros((n_sites, n_sites), dtype=bool)
    for i in range(n_sites):
        delta = images[i + 1 :] - frac[i]  # (m, s, 3): every image of every later site against site i
        delta = delta - np.round(delta)
        trial = delta[:, :, None, :] + _OFFSETS  # neighbouring cells, for oblique cells
        d2 = np.einsum("...i,ij,...j->...", trial, metric, trial).min(axis=2)  # (m, s)
        nearest = np.sqrt(d2.min(axis=1))
        near_fraction = np.all(np.abs(delta) <= fraction, axis=2).any(axis=1)
        linked[i, i + 1 :] = (nearest <= distance) | near_fraction
    parent = list(range(n_sites))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for i, j in zip(*np.nonzero(linked), strict=True):
        parent[root(int(j))] = root(int(i))
    members: dict[int, list[int]] = {}
    for k in range(n_sites):
        members.setdefault(root(k), []).append(k)
    groups = []
    for sites in members.values():
        if len(sites) > 1:
            first = sites[0]
            spread = max(_nearest_image(images[k], frac[first], metric) for k in sites[1:])
            groups.append(CoincidentGroup(tuple(sites), spread))
    return groups


def share_occupancy(
    structure: Structure, groups: list[CoincidentGroup] | None = None
) -> tuple[Structure, list[CoincidentGroup]]:
    """``structure`` with the occupancies of each coincident group scaled to add up to 1 where they add up to more.

    Parameters
    ----------
    structure : Structure
    groups : list of CoincidentGroup, optional
        Default: :func:`coincident_groups` of ``structure``.

    Returns
    -------
    structure : Structure
        Coordinates, labels and elements unchanged; so are the occupancies of a group that add up to 1 or less
        (atoms that the dynamical occupancy correction already counts as one).
    shared : list of CoincidentGroup
        The groups whose occupancies were scaled: atoms that the model counted at one place more than once.
    """
    if groups is None:
        groups = coincident_groups(structure)
    sites = list(structure.sites)
    shared = []
    for coincident in groups:
        total = sum(sites[k].occupancy for k in coincident.sites)
        if total > 1.0 + 1e-6:
            shared.append(coincident)
            for k in coincident.sites:
                sites[k] = replace(sites[k], occupancy=sites[k].occupancy / total)
    return replace(structure, sites=tuple(sites), _cache={}), shared


def _nearest_image(images: np.ndarray, point: np.ndarray, metric: np.ndarray) -> float:
    """Shortest distance (Å) from ``point`` (3,) to any lattice translate of ``images`` (s, 3)."""
    delta = images - point
    delta = delta - np.round(delta)
    trial = delta[:, None, :] + _OFFSETS
    return float(np.sqrt(np.einsum("...i,ij,...j->...", trial, metric, trial).min()))
