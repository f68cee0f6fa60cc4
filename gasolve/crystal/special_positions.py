"""Which Wyckoff position each site of a solved model sits on, and the model written in those terms.

After a run with sites on general positions and the dynamical occupancy correction, a site may have ended on a
mirror, an axis or an inversion centre (its images coincide). :func:`locate` names the position with PyXtal's
tables (:mod:`gasolve.crystal.wyckoff`): the position whose multiplicity equals the number of distinct images of
the point and on one of whose tabulated orbit members the point lies, found by projecting every image of the
point with that position's :class:`~gasolve.crystal.wyckoff.SiteMap`. The point is then moved to that
member, an equivalent choice of the atom, so that the site can be written and refined as a Wyckoff site with
its free coordinates only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import Structure
from gasolve.crystal.wyckoff import SiteMap, WyckoffPosition, wyckoff_positions
from gasolve.errors import InputError

#: Fractional tolerance of "lies on the position" for points that were snapped exactly.
_ON_POSITION = 1e-6


def locate(
    space_group: SpaceGroup, frac: np.ndarray, positions: list[WyckoffPosition] | None = None
) -> tuple[WyckoffPosition, np.ndarray] | None:
    """The Wyckoff position ``frac`` (3,) lies on and the symmetry-equivalent point on its representative.

    Parameters
    ----------
    space_group : SpaceGroup
        In the standard setting PyXtal tabulates.
    frac : ndarray, shape (3,)
        A point exactly on its position (to 1e-6 in fractional units), e.g. snapped.
    positions : list of WyckoffPosition, optional
        :func:`~gasolve.crystal.wyckoff.wyckoff_positions` of the group, if already known.

    Returns
    -------
    (WyckoffPosition, ndarray (3,)) or None
        None if no tabulated position holds the point (it is not exactly on one).

    Raises
    ------
    InputError
        When the group is not in the tabulated setting.
    """
    frac = np.asarray(frac, dtype=float)
    if positions is None:
        positions = wyckoff_positions(space_group)
    multiplicity = len(space_group.orbit(frac))
    images = np.einsum("sij,j->si", space_group.rotations.astype(float), frac) + space_group.translations
    for position in positions:
        if position.multiplicity != multiplicity:
            continue
        site_map = SiteMap.from_labels(space_group, [position.label])
        projected = site_map.project(images[:, None, :])[:, 0, :]
        delta = projected - images
        delta -= np.round(delta)
        on = np.flatnonzero(np.all(np.abs(delta) < _ON_POSITION, axis=1))
        if len(on):
            return position, projected[on[0]]
    return None


@dataclass(frozen=True)
class SettledModel:
    """A model's sites as Wyckoff sites.

    Attributes
    ----------
    frac : ndarray, shape (n_sites, 3)
        Each site moved to the tabulated representative of its position (an equivalent point).
    labels : tuple of str, or None
        Wyckoff label of each site ("4c", "8d"); None when the group's setting has no table.
    multiplicity : ndarray, shape (n_sites,), int
        Distinct positions each site generates in the cell.
    occupancy : ndarray, shape (n_sites,)
        Occupancy to write, such that multiplicity × occupancy is the number of atoms the scorer counted.
    general : ndarray, shape (n_sites,), bool
        Whether each site is on the general position.
    """

    frac: np.ndarray
    labels: tuple[str, ...] | None
    multiplicity: np.ndarray
    occupancy: np.ndarray
    general: np.ndarray

    def site_map(self, space_group: SpaceGroup) -> SiteMap | None:
        """The :class:`SiteMap` of the found positions (None without labels)."""
        return None if self.labels is None else SiteMap.from_labels(space_group, list(self.labels))

    def apply(self, structure: Structure) -> Structure:
        """``structure`` (same sites) with this model's coordinates and occupancies."""
        sites = tuple(
            replace(site, frac=tuple(map(float, x)), occupancy=float(occ))
            for site, x, occ in zip(structure.sites, self.frac, self.occupancy, strict=True)
        )
        return replace(structure, sites=sites, _cache={})

    def report(self, site_labels: list[str]) -> list[dict]:
        """One entry per site not on the general position: site label, Wyckoff label (None without tables),
        multiplicity, occupancy and fractional coordinates."""
        return [
            {
                "site": name,
                "wyckoff": None if self.labels is None else self.labels[i],
                "multiplicity": int(self.multiplicity[i]),
                "occupancy": float(self.occupancy[i]),
                "frac": [float(x) for x in self.frac[i]],
            }
            for i, name in enumerate(site_labels)
            if not self.general[i]
        ]


def settle(
    space_group: SpaceGroup,
    frac: np.ndarray,
    scored_multiplicity: np.ndarray | None = None,
    correction: np.ndarray | None = None,
) -> SettledModel:
    """Name the Wyckoff position of every site of a model and put the site on its representative.

    Parameters
    ----------
    space_group : SpaceGroup
    frac : ndarray, shape (n_sites, 3)
        The model, with sites on special positions put exactly on them (:mod:`gasolve.crystal.snap`).
    scored_multiplicity : ndarray, shape (n_sites,), optional
        The multiplicities the scorer was built with (default: general positions).
    correction : ndarray, shape (n_sites,), optional
        The dynamical occupancy factors c of the model (:mod:`gasolve.scoring.overlap`); without them every
        occupancy is 1.

    Returns
    -------
    SettledModel
        Occupancy = scored multiplicity × c / multiplicity, clipped to 1 (1 for a site exactly on its position
        with nothing else overlapping it).
    """
    frac = np.asarray(frac, dtype=float).reshape(-1, 3)
    n_sites = len(frac)
    multiplicity = np.array([len(space_group.orbit(x)) for x in frac], dtype=int)
    try:
        positions = wyckoff_positions(space_group)
    except InputError:
        positions = None
    labels = None
    settled = frac - np.floor(frac)
    if positions is not None:
        found = [locate(space_group, x, positions) for x in frac]
        if all(item is not None for item in found):
            labels = tuple(position.label for position, _ in found)
            settled = np.array([point for _, point in found])
            settled -= np.floor(settled)
    scored = np.full(n_sites, space_group.n_ops) if scored_multiplicity is None else np.asarray(scored_multiplicity)
    if correction is None:
        occupancy = np.ones(n_sites)
    else:
        occupancy = np.minimum(scored * np.asarray(correction, dtype=float) / multiplicity, 1.0)
    return SettledModel(
        frac=settled,
        labels=labels,
        multiplicity=multiplicity,
        occupancy=occupancy,
        general=multiplicity == space_group.n_ops,
    )
