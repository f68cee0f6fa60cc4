"""Soft restraints on bond distances and angles, as extra weighted residuals of the least squares
(GSAS-II's and TOPAS's restraints): χ² gains Σ ((value - target) / σ)² and the esds account for them.

The image of each atom is fixed at the start: the symmetry image (operator and lattice translation) of the second
atom nearest to the first (distance), or of the outer atoms nearest to the middle one (angle), so that the
restrained value is a smooth function of the refined coordinates and cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError

_SHIFTS = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=float)


@dataclass(frozen=True)
class _Image:
    """Site ``site`` moved by the operator (rotation, translation): x' = R x + t."""

    site: int
    rotation: np.ndarray
    translation: np.ndarray

    def of(self, frac: np.ndarray) -> np.ndarray:
        return self.rotation @ frac[self.site] + self.translation


def _nearest_image(group: SpaceGroup, cell: UnitCell, frac: np.ndarray, site: int, to: np.ndarray) -> _Image:
    """The image of ``site`` nearest to the point ``to`` (it may be the site itself), other than ``to`` itself."""
    best, best_distance = None, np.inf
    for rotation, translation in zip(group.rotations, group.translations, strict=True):
        moved = rotation @ frac[site] + translation
        base = np.round(to - moved)
        for shift in _SHIFTS:
            vector = moved + base + shift - to
            distance = float(np.linalg.norm(vector @ cell.matrix))
            if 1e-3 < distance < best_distance:
                best_distance = distance
                best = _Image(site, rotation.astype(float), translation + base + shift)
    if best is None:
        raise InputError(f"site {site} has no image apart from the restraint's other atom")
    return best


class RestraintSet:
    """The restraints of one refinement with their images chosen at the starting structure.

    Parameters
    ----------
    restraints : sequence of Restraint
    labels : list of str
        Site labels of the structure.
    space_group : SpaceGroup
    cell : UnitCell
    frac : ndarray, shape (n_sites, 3)
        Starting coordinates.

    Raises
    ------
    InputError
        A restraint names a label that is not a site (the message lists the sites).
    """

    def __init__(self, restraints, labels: list[str], space_group: SpaceGroup, cell: UnitCell, frac: np.ndarray):
        self.restraints = tuple(restraints)
        self.terms: list[tuple[int, list[_Image]]] = []
        for restraint in self.restraints:
            missing = [a for a in restraint.atoms if a not in labels]
            if missing:
                raise InputError(
                    f"[refinement] restraints: {restraint.name} names {', '.join(missing)}, which is not a site of "
                    f"the model; sites: {', '.join(labels)}"
                )
            index = [labels.index(a) for a in restraint.atoms]
            if restraint.kind == "distance":
                centre = index[0]
                images = [_nearest_image(space_group, cell, frac, index[1], frac[centre])]
            else:
                centre = index[1]
                images = [_nearest_image(space_group, cell, frac, i, frac[centre]) for i in (index[0], index[2])]
            self.terms.append((centre, images))
        self.target = np.array([r.target for r in self.restraints])
        self.sigma = np.array([r.sigma for r in self.restraints])

    def __len__(self) -> int:
        return len(self.restraints)

    def values(self, frac: np.ndarray, cell: UnitCell) -> np.ndarray:
        """Distances (Å) and angles (degrees) of the restraints, shape (n_restraints,)."""
        matrix = cell.matrix  # rows a, b, c: Cartesian = frac @ matrix
        out = np.zeros(len(self))
        for k, (centre, images) in enumerate(self.terms):
            vectors = [(image.of(frac) - frac[centre]) @ matrix for image in images]
            if len(vectors) == 1:
                out[k] = np.linalg.norm(vectors[0])
            else:
                a, b = vectors
                cosine = float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))
                out[k] = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
        return out

    def residuals(self, frac: np.ndarray, cell: UnitCell) -> np.ndarray:
        """(target - value) / σ, shape (n_restraints,) (the sign of the pattern residuals y_obs - y_calc)."""
        return (self.target - self.values(frac, cell)) / self.sigma
