"""Anisotropic displacement parameters: site-symmetry constraints, the Debye-Waller factor, Ueq, definiteness.

Convention: U (Å²) in the crystal axes of the CIF (Trueblood et al., Acta Cryst. A52 (1996) 770), stored as the
6-vector (U11, U22, U33, U12, U13, U23). With N = diag(a*, b*, c*) the displacement covariance in fractional
coordinates is U* = N U N, and an atom at R x + t (the image of x under the operator (R, t)) has U*' = R U* Rᵀ, so
its Debye-Waller factor for the reflection h is

    T(h) = exp(-2π² hᵀ R U* Rᵀ h) = exp(-2π² (hR) U* (hR)ᵀ),

with hR the row vector the structure factor's phase already uses. Ueq = (1/3) Σ_ij U*_ij G_ij (G the direct
metric), one third of the trace of the Cartesian tensor (Fischer & Tillmanns, Acta Cryst. C44 (1988) 775).

Symmetry constraints (Peterse & Palm, Acta Cryst. 20 (1966) 147; Grosse-Kunstleve & Adams, J. Appl. Cryst. 35
(2002) 477): an atom on a special position is left in place by its site-symmetry operators R (those with
R x + t ≡ x), so its U* must satisfy R U* Rᵀ = U* for each of them. The allowed tensors are the null space of the
stacked linear maps U* ↦ R U* Rᵀ - U*, computed numerically from the space group's operators (no table of cases),
and carried to U by U_ij = U*_ij / (a*_i a*_j). (In a conventional setting the operators map each axis onto axes
of the same reciprocal length, so the null space is the same for U and U*; the scaling matters only in unusual
settings.) The basis is brought to reduced row-echelon form over (U11, U22, U33, U12, U13, U23), so
that each free parameter is one named component (the pivot), e.g. U11 and U33 of a site on a hexagonal 3-fold axis,
with U22 = U11, U12 = U11/2, U13 = U23 = 0 following.
"""

from __future__ import annotations

import math

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup

#: Component names in the order of the 6-vector.
U_COMPONENTS = ("U11", "U22", "U33", "U12", "U13", "U23")
#: (i, j) of each component.
PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
#: Each component counts once on the diagonal and twice off it in hᵀ U h.
MULTIPLICITY = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
#: Tolerance (fractional units, per axis) for an operator to leave a site in place.
SITE_TOLERANCE = 1e-4


def tensor(u6: np.ndarray) -> np.ndarray:
    """Symmetric tensors (..., 3, 3) of 6-vectors (..., 6)."""
    u6 = np.asarray(u6, dtype=float)
    out = np.empty((*u6.shape[:-1], 3, 3))
    for m, (i, j) in enumerate(PAIRS):
        out[..., i, j] = out[..., j, i] = u6[..., m]
    return out


def six(u: np.ndarray) -> np.ndarray:
    """6-vectors (..., 6) of symmetric tensors (..., 3, 3)."""
    u = np.asarray(u, dtype=float)
    return np.stack([u[..., i, j] for i, j in PAIRS], axis=-1)


def reciprocal_lengths(reciprocal_metric: np.ndarray) -> np.ndarray:
    """a*, b*, c* (Å⁻¹) of a reciprocal metric G* (3, 3): the diagonal of N."""
    return np.sqrt(np.diag(reciprocal_metric))


def site_rotations(space_group: SpaceGroup, frac: np.ndarray, tolerance: float = SITE_TOLERANCE) -> np.ndarray:
    """Rotation parts (n, 3, 3) of the operators that leave the position ``frac`` (3,) in place (modulo lattice
    translations): the site-symmetry group, the identity included."""
    frac = np.asarray(frac, dtype=float)
    images = np.einsum("sij,j->si", space_group.rotations, frac) + space_group.translations
    delta = images - frac
    delta -= np.round(delta)
    keep = np.all(np.abs(delta) < tolerance, axis=1)
    return np.unique(space_group.rotations[keep], axis=0)


def _rotation_map(rotation: np.ndarray) -> np.ndarray:
    """The 6×6 matrix of U ↦ six(R tensor(U) Rᵀ)."""
    columns = [six(rotation @ tensor(np.eye(6)[m]) @ rotation.T) for m in range(6)]
    return np.array(columns).T


def constraint_basis(rotations: np.ndarray, lengths: np.ndarray | None = None, tolerance: float = 1e-9) -> np.ndarray:
    """Basis (6, k) of the CIF-convention tensors U whose U* = N U N every rotation (n, 3, 3) leaves unchanged
    (R U* Rᵀ = U*), in reduced row-echelon form.

    ``lengths``: a*, b*, c* (the diagonal of N; default 1, 1, 1). Column p of the basis has 1 at its pivot
    component, 0 at the other pivots; a tensor is U = C p with p the values of the pivot components
    (:func:`pivots`).
    """
    stacked = np.vstack([_rotation_map(np.asarray(r, dtype=float)) - np.eye(6) for r in rotations])
    _, singular, vt = np.linalg.svd(stacked)
    singular = np.concatenate([singular, np.zeros(6 - len(singular))])
    null = vt[singular < tolerance * max(singular[0], 1.0)]  # rows: allowed U* (6-vectors)
    if lengths is not None:
        n = np.asarray(lengths, dtype=float)
        null = null / np.array([n[i] * n[j] for i, j in PAIRS])
    return _rref(null, tolerance).T


def _rref(rows: np.ndarray, tolerance: float) -> np.ndarray:
    """Reduced row-echelon form of the (k, 6) matrix ``rows`` (full row rank), near-zero entries cleared."""
    rows = np.array(rows, dtype=float)
    pivot_row = 0
    for column in range(rows.shape[1]):
        if pivot_row == len(rows):
            break
        best = pivot_row + int(np.argmax(np.abs(rows[pivot_row:, column])))
        if abs(rows[best, column]) < tolerance:
            continue
        rows[[pivot_row, best]] = rows[[best, pivot_row]]
        rows[pivot_row] /= rows[pivot_row, column]
        for r in range(len(rows)):
            if r != pivot_row:
                rows[r] -= rows[r, column] * rows[pivot_row]
        pivot_row += 1
    rows[np.abs(rows) < tolerance] = 0.0
    return rows


def pivots(basis: np.ndarray) -> list[int]:
    """Component index (0-5) of each column's parameter in a basis from :func:`constraint_basis`."""
    return [int(np.flatnonzero(np.abs(column) > 0)[0]) for column in basis.T]


def site_basis(space_group: SpaceGroup, frac: np.ndarray, cell: UnitCell | None = None) -> np.ndarray:
    """The constraint basis (6, k) of the site at ``frac`` (:func:`constraint_basis` of its site symmetry, with the
    reciprocal lengths of ``cell`` when given)."""
    lengths = None if cell is None else reciprocal_lengths(cell.reciprocal_metric)
    return constraint_basis(site_rotations(space_group, frac), lengths)


#: A tensor read from a CIF that lies further than this (Å², largest component) from the site symmetry's allowed
#: tensors is reported (:class:`SiteSymmetryWarning`); U_ij given to 4 decimals round by 5e-5 each.
SYMMETRY_TOLERANCE = 1e-4


class SiteSymmetryWarning(UserWarning):
    """A given U (a CIF's) breaks its site's symmetry by more than :data:`SYMMETRY_TOLERANCE`."""


def project(u6: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, float]:
    """The free components p (k,) of the allowed tensor nearest to U (6,) (least squares over the six components)
    under the constraint ``basis`` (6, k) (:func:`constraint_basis`), and the largest |U - C p| (Å²): how far U
    breaks the site symmetry."""
    u6 = np.asarray(u6, dtype=float)
    p = np.linalg.lstsq(basis, u6, rcond=None)[0]
    return p, float(np.max(np.abs(basis @ p - u6)))


def carried(u6: np.ndarray, rotation: np.ndarray, reciprocal_metric: np.ndarray) -> np.ndarray:
    """U (6,) of the image R x + t of an atom whose U (6,) is ``u6``: U*' = R U* Rᵀ (module docstring), carried
    back to the CIF convention U' = N⁻¹ U*' N⁻¹."""
    n = reciprocal_lengths(reciprocal_metric)
    u_star = tensor(fractional(u6, reciprocal_metric))
    rotation = np.asarray(rotation, dtype=float)
    return six(rotation @ u_star @ rotation.T / np.outer(n, n))


def isotropic(u_iso: float, reciprocal_metric: np.ndarray) -> np.ndarray:
    """The 6-vector U of an isotropic displacement Uiso (Å²) in the CIF convention: U = Uiso N⁻¹ G* N⁻¹ (so that
    U11 = U22 = U33 = Uiso, U13 = Uiso cos β* etc.)."""
    n = reciprocal_lengths(reciprocal_metric)
    return u_iso * six(reciprocal_metric / np.outer(n, n))


def fractional(u6: np.ndarray, reciprocal_metric: np.ndarray) -> np.ndarray:
    """U* = N U N (6-vectors, ..., 6) of CIF-convention U (..., 6)."""
    n = reciprocal_lengths(reciprocal_metric)
    scale = np.array([n[i] * n[j] for i, j in PAIRS])
    return np.asarray(u6, dtype=float) * scale


def u_equivalent_weights(cell: UnitCell) -> np.ndarray:
    """g (6,) with Ueq = g · U for CIF-convention U: g_ij = a*_i a*_j G_ij / 3, off-diagonal terms counted twice."""
    n = reciprocal_lengths(cell.reciprocal_metric)
    metric = cell.metric
    return np.array([n[i] * n[j] * metric[i, j] for i, j in PAIRS]) * MULTIPLICITY / 3.0


def u_equivalent(u6: np.ndarray, cell: UnitCell) -> np.ndarray:
    """Ueq (Å²) of CIF-convention U (..., 6)."""
    return np.asarray(u6, dtype=float) @ u_equivalent_weights(cell)


def cartesian(u6: np.ndarray, cell: UnitCell) -> np.ndarray:
    """The Cartesian tensor (3, 3) of CIF-convention U (6,): M U* Mᵀ, M with the direct axes as columns."""
    u_star = tensor(fractional(u6, cell.reciprocal_metric))
    axes = cell.matrix.T
    return axes @ u_star @ axes.T


def principal_values(u6: np.ndarray, cell: UnitCell) -> np.ndarray:
    """Eigenvalues (3,) of the Cartesian tensor (Å², ascending): all positive for a physical U."""
    return np.linalg.eigvalsh(cartesian(u6, cell))


def debye_waller_factor(hr: np.ndarray, u_star: np.ndarray) -> np.ndarray:
    """T = exp(-2π² (hR) U* (hR)ᵀ) of each operator term and reflection.

    Parameters
    ----------
    hr : ndarray, shape (n_terms, 3, n_refl)
        h R of each operator term (:func:`gasolve.scoring.problem.symmetry_terms`).
    u_star : ndarray, shape (n_sites, 6)
        U* = N U N of each site.

    Returns
    -------
    ndarray, shape (n_terms, n_sites, n_refl)
    """
    return np.exp(-2.0 * math.pi**2 * np.einsum("smk,jm->sjk", quadratic_terms(hr), u_star))


def quadratic_terms(hr: np.ndarray) -> np.ndarray:
    """(hR)_i (hR)_j of each component, counted twice off the diagonal, shape (n_terms, 6, n_refl): hᵀ U* h is
    their sum against U*'s 6-vector."""
    return np.stack([hr[:, i, :] * hr[:, j, :] * MULTIPLICITY[m] for m, (i, j) in enumerate(PAIRS)], axis=1)
