"""Lattice parameters constrained by the space group, refined through the reciprocal metric tensor.

Reflections h and hR (R a rotation of the point group) have the same d, so the reciprocal metric G* (1/d² =
h G* hᵀ, h a row vector) satisfies R G* Rᵀ = G* for every rotation. The symmetric matrices with that property
form a linear space whose dimension is the number of free lattice parameters (1 for a cubic group, 2 for
tetragonal, hexagonal and rhombohedral, 3 orthorhombic, 4 monoclinic, 6 triclinic), whatever the setting.
It is found here as the null space of those linear conditions, so no table of crystal systems is needed.
A cell is refined as the coefficients of G* on an orthonormal basis of that space; 1/d² is linear in them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError

#: Index pairs of the six independent entries of a symmetric 3x3 matrix.
_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def _symmetric(vector: np.ndarray) -> np.ndarray:
    matrix = np.zeros((3, 3))
    for value, (i, j) in zip(vector, _PAIRS, strict=True):
        matrix[i, j] = matrix[j, i] = value
    return matrix


def metric_basis(space_group: SpaceGroup) -> np.ndarray:
    """Orthonormal basis of the reciprocal metric tensors allowed by the group's rotations.

    Parameters
    ----------
    space_group : SpaceGroup

    Returns
    -------
    ndarray, shape (n_free, 3, 3)
        Symmetric matrices S_k with R S_k Rᵀ = S_k for every rotation R; orthonormal in the 6 independent
        entries.
    """
    rows = []
    for rotation in space_group.primitive_rotations.astype(float):
        images = np.array([(rotation @ _symmetric(e) @ rotation.T) for e in np.eye(6)])  # image of each unit entry
        change = np.array([[image[i, j] for i, j in _PAIRS] for image in images]).T - np.eye(6)
        rows.append(change)
    _, singular, vt = np.linalg.svd(np.concatenate(rows))
    rank = int(np.sum(singular > 1e-9 * max(singular[0], 1.0)))
    return np.array([_symmetric(v) for v in vt[rank:]])


def cell_from_reciprocal_metric(reciprocal_metric: np.ndarray) -> UnitCell:
    """The cell whose reciprocal metric tensor is ``reciprocal_metric`` (3, 3), Å⁻²."""
    metric = np.linalg.inv(reciprocal_metric)
    lengths = np.sqrt(np.diag(metric))
    cosines = [metric[1, 2] / (lengths[1] * lengths[2]), metric[0, 2] / (lengths[0] * lengths[2])]
    cosines.append(metric[0, 1] / (lengths[0] * lengths[1]))
    angles = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))
    return UnitCell(*(float(x) for x in lengths), *(float(x) for x in angles))


@dataclass(frozen=True)
class LatticeConstraint:
    """Maps the free lattice coefficients of a space group to the reciprocal metric and the cell.

    Attributes
    ----------
    basis : ndarray, shape (n_free, 3, 3)
        From :func:`metric_basis`.
    """

    basis: np.ndarray

    @classmethod
    def for_group(cls, space_group: SpaceGroup) -> LatticeConstraint:
        return cls(metric_basis(space_group))

    @property
    def n_free(self) -> int:
        return len(self.basis)

    def coefficients(self, cell: UnitCell, tolerance: float = 1e-4) -> np.ndarray:
        """Coefficients (n_free,) of ``cell``'s reciprocal metric on the basis.

        Raises
        ------
        InputError
            When the cell does not have the lattice symmetry of the group (e.g. a ≠ b in a tetragonal group).
        """
        target = cell.reciprocal_metric
        design = np.array([[s[i, j] for i, j in _PAIRS] for s in self.basis]).T
        wanted = np.array([target[i, j] for i, j in _PAIRS])
        coefficients = np.linalg.lstsq(design, wanted, rcond=None)[0]
        mismatch = np.max(np.abs(design @ coefficients - wanted)) / np.max(np.abs(wanted))
        if mismatch > tolerance:
            raise InputError(
                f"the cell {', '.join(f'{x:g}' for x in cell.parameters)} does not have the lattice symmetry of "
                f"the space group (relative mismatch {mismatch:.2g} of the reciprocal metric)"
            )
        return coefficients

    def reciprocal_metric(self, coefficients: np.ndarray) -> np.ndarray:
        """G* (3, 3), Å⁻², of the coefficients (n_free,)."""
        return np.einsum("k,kij->ij", np.asarray(coefficients, dtype=float), self.basis)

    def cell(self, coefficients: np.ndarray) -> UnitCell:
        return cell_from_reciprocal_metric(self.reciprocal_metric(coefficients))

    def d_spacing(self, coefficients: np.ndarray, hkl: np.ndarray) -> np.ndarray:
        """d (Å) of reflections ``hkl`` (n_refl, 3) for the coefficients."""
        hkl = np.asarray(hkl, dtype=float)
        return 1.0 / np.sqrt(np.einsum("ni,ij,nj->n", hkl, self.reciprocal_metric(coefficients), hkl))
