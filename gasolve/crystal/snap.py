"""Snap atoms that lie within a small distance of a special position exactly onto it.

A site on the general position whose images under some operators h (besides the identity) lie closer than
``distance`` to it is replaced by the mean of its images under the group H those operators generate (closed
under the group's multiplication table): x' = mean_{h in H} (h x), each image taken next to x. x' is fixed by
every element of H, so it lies on the special position of site-symmetry group H, and the map is idempotent.
Its derivative is P = mean_{h in H} R_h, the projector onto the position's free directions (the identity for a
site left alone).

During the search this is the Lamarckian counterpart of the dynamical occupancy correction
(:mod:`gasolve.scoring.overlap`), with ``distance`` its merge distance (half the overlap radius, 0.4 Å by
default): two images that close already count as one atom there, and snapping makes them one atom exactly. The
anti-bump penalty then recognises the coinciding images as one atom, the structure comparison finds the right
number of atoms per cell, and the search has no split-atom models (an atom a little off a mirror with half
weight in each image) to fall into, which with a fixed B can fit slightly better than the atom on the mirror.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup

#: Default distance (Å) between an atom and one of its images below which the atom is snapped.
SNAP_DISTANCE = 0.4
#: Rounds of snapping: a snapped atom may come within reach of a further symmetry element.
_ROUNDS = 3


def multiplication_table(space_group: SpaceGroup) -> np.ndarray:
    """Index of the product (R_a R_b, R_a t_b + t_a) of every pair of operators, shape (n_ops, n_ops), int."""
    rotations = np.rint(space_group.rotations).astype(np.int64)
    translations = space_group.translations

    def key(rotation, translation):
        return (tuple(rotation.ravel()), tuple(np.round(np.mod(translation, 1.0) * 48).astype(int) % 48))

    index = {key(r, t): s for s, (r, t) in enumerate(zip(rotations, translations, strict=True))}
    n_ops = len(rotations)
    table = np.empty((n_ops, n_ops), dtype=np.int64)
    for a in range(n_ops):
        for b in range(n_ops):
            table[a, b] = index[key(rotations[a] @ rotations[b], rotations[a] @ translations[b] + translations[a])]
    return table


@dataclass(frozen=True)
class SpecialPositionSnap:
    """The snapping map for the sites of one problem.

    Attributes
    ----------
    rotations : ndarray, shape (n_ops, 3, 3), float
    translations : ndarray, shape (n_ops, 3)
    metric : ndarray, shape (3, 3), Å²
    table : ndarray, shape (n_ops, n_ops), int
        :func:`multiplication_table`.
    snappable : ndarray, shape (n_sites,), bool
        Sites that may be snapped (those on the general position).
    distance : float
        Å, see the module docstring.
    """

    rotations: np.ndarray = field(repr=False)
    translations: np.ndarray = field(repr=False)
    metric: np.ndarray = field(repr=False)
    table: np.ndarray = field(repr=False)
    snappable: np.ndarray
    distance: float

    @classmethod
    def build(
        cls, cell: UnitCell, space_group: SpaceGroup, snappable: np.ndarray, distance: float = SNAP_DISTANCE
    ) -> SpecialPositionSnap:
        """The map for ``cell`` and ``space_group``; ``snappable`` (n_sites,) bool marks the sites it may move."""
        return cls(
            rotations=space_group.rotations.astype(float),
            translations=np.asarray(space_group.translations, dtype=float),
            metric=cell.metric,
            table=multiplication_table(space_group),
            snappable=np.asarray(snappable, dtype=bool),
            distance=float(distance),
        )

    @property
    def n_sites(self) -> int:
        return len(self.snappable)

    def snap(self, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Snapped coordinates and the derivative of the map.

        Parameters
        ----------
        frac : ndarray, shape (n_models, n_sites, 3)

        Returns
        -------
        snapped : ndarray, shape (n_models, n_sites, 3)
            Wrapped into [0, 1) where a site moved; other sites unchanged.
        projector : ndarray, shape (n_models, n_sites, 3, 3)
            d snapped / d frac per site (the identity for sites left alone).
        """
        frac = np.array(frac, dtype=float)
        if frac.ndim != 3 or frac.shape[1:] != (self.n_sites, 3):
            raise ValueError(f"expected coordinates of shape (n_models, {self.n_sites}, 3), got {frac.shape}")
        n_models = len(frac)
        projector = np.broadcast_to(np.eye(3), (n_models, self.n_sites, 3, 3)).copy()
        for _ in range(_ROUNDS):
            delta, near = self._near(frac)
            rows = np.flatnonzero((near.sum(axis=-1) > 1) & np.tile(self.snappable, n_models))
            if not len(rows):
                break
            group = self._close(near[rows])
            moved = self._moves(delta[rows], group)
            if np.all(np.abs(moved) < 1e-15):
                break
            count = group.sum(axis=1)
            step = np.einsum("ks,sij->kij", group.astype(float), self.rotations) / count[:, None, None]
            flat_frac = frac.reshape(-1, 3)
            flat_projector = projector.reshape(-1, 3, 3)
            wrapped = flat_frac[rows] + moved
            wrapped -= np.floor(wrapped)
            flat_frac[rows] = np.where(wrapped < 1.0, wrapped, 0.0)  # -1e-17 wraps to 1.0 in floating point
            flat_projector[rows] = step @ flat_projector[rows]
        return frac, projector

    def _near(self, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rounded differences image - x, shape (n_models n_sites, n_ops, 3), and which are within reach."""
        points = frac.reshape(-1, 3)
        images = np.einsum("sij,kj->ksi", self.rotations, points) + self.translations
        delta = images - points[:, None, :]
        delta -= np.floor(delta + 0.5)
        d2 = np.einsum("ksi,ij,ksj->ks", delta, self.metric, delta)
        return delta, d2 < self.distance**2

    def _close(self, mask: np.ndarray) -> np.ndarray:
        """Smallest subgroups containing the operators of each row of ``mask`` (n_rows, n_ops), bool."""
        group = mask.copy()
        while True:
            grown = group.copy()
            for a in range(group.shape[1]):
                grown[:, self.table[a]] |= group[:, a : a + 1] & group
            if np.array_equal(grown, group):
                return group
            group = grown

    @staticmethod
    def _moves(delta: np.ndarray, group: np.ndarray) -> np.ndarray:
        """Mean of the differences over each row's group, shape (n_rows, 3)."""
        return np.einsum("ks,ksi->ki", group.astype(float), delta) / group.sum(axis=1)[:, None]
