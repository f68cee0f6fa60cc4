"""Reflection lists for powder diffraction.

All hkl within a d-spacing range are generated, symmetry-equivalent reflections (under the Laue group, i.e.
the point group plus Friedel's law) are merged into one with its multiplicity, and systematically absent
reflections are removed. Reflections at the same d that are not equivalent (e.g. 330 and 411 in a cubic
cell) stay separate because their structure factors differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup


@dataclass(frozen=True)
class ReflectionList:
    """Unique reflections sorted by decreasing d.

    Attributes
    ----------
    hkl : ndarray, shape (n_refl, 3), int
        One representative of each set of equivalent reflections.
    d_spacing : ndarray, shape (n_refl,), Å
    multiplicity : ndarray, shape (n_refl,), int
        Number of distinct hkl (Friedel mates included) in the set.
    """

    hkl: np.ndarray
    d_spacing: np.ndarray
    multiplicity: np.ndarray

    def __len__(self) -> int:
        return len(self.hkl)

    @property
    def stol2(self) -> np.ndarray:
        """(sin θ / λ)² = 1 / (4 d²), shape (n_refl,), Å⁻²."""
        return 0.25 / self.d_spacing**2

    def two_theta(self, wavelength: float, zero: float = 0.0) -> np.ndarray:
        """Bragg angles 2θ (degrees) for ``wavelength`` (Å), plus a zero shift (degrees)."""
        return 2.0 * np.degrees(np.arcsin(np.clip(wavelength / (2.0 * self.d_spacing), -1.0, 1.0))) + zero

    def subset(self, keep: np.ndarray) -> ReflectionList:
        return ReflectionList(self.hkl[keep], self.d_spacing[keep], self.multiplicity[keep])


def _encode(hkl: np.ndarray, offset: int) -> np.ndarray:
    span = 2 * offset + 1
    return ((hkl[..., 0] + offset) * span + (hkl[..., 1] + offset)) * span + (hkl[..., 2] + offset)


def generate_reflections(
    cell: UnitCell, space_group: SpaceGroup, d_min: float, d_max: float = math.inf
) -> ReflectionList:
    """Unique, allowed reflections with ``d_min <= d <= d_max``.

    Parameters
    ----------
    cell : UnitCell
    space_group : SpaceGroup
    d_min, d_max : float
        d-spacing limits (Å).

    Returns
    -------
    ReflectionList
        Sorted by decreasing d (increasing 2θ).
    """
    limits = [math.floor(length / d_min) for length in (cell.a, cell.b, cell.c)]
    axes = [np.arange(-n, n + 1) for n in limits]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    inv_d2 = np.einsum("ni,ij,nj->n", hkl, cell.reciprocal_metric, hkl)
    inside = (inv_d2 <= 1.0 / d_min**2 * (1 + 1e-12)) & (inv_d2 >= 1.0 / d_max**2 if math.isfinite(d_max) else True)
    hkl = hkl[inside]
    # Orbit of each hkl under the Laue group: h R for every rotation, and -h R (Friedel).
    rotations = space_group.primitive_rotations
    orbit = np.einsum("ni,sij->nsj", hkl, rotations)
    orbit = np.concatenate([orbit, -orbit], axis=1)
    offset = int(np.abs(orbit).max()) + 1
    keys = np.sort(_encode(orbit, offset), axis=1)
    multiplicity = 1 + np.count_nonzero(np.diff(keys, axis=1), axis=1)
    representative_key = keys[:, -1]
    own_key = _encode(hkl, offset)
    is_representative = own_key == representative_key
    hkl, multiplicity = hkl[is_representative], multiplicity[is_representative]
    allowed = ~space_group.is_absent(hkl)
    hkl, multiplicity = hkl[allowed], multiplicity[allowed]
    d_spacing = cell.d_spacing(hkl)
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], -np.round(d_spacing, 10)))
    return ReflectionList(hkl[order], d_spacing[order], multiplicity[order])
