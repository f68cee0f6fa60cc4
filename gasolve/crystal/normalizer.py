"""The Euclidean normalizer of a space group in a given cell: every isometry that maps the group onto itself.

Two descriptions of one crystal structure in the same cell and space group G differ by an element of the
Euclidean normalizer N(G) of G (International Tables for Crystallography Vol. A, ch. 3.5, "Normalizers of space
groups", tables 3.5.2.3 and 3.5.2.4): an origin shift, possibly the enantiomorph (inversion), and possibly a change
of axes that keeps the group. Modulo G itself the normalizer is a short list of affine operations x -> P x + p
(in the fractional basis of the setting) plus, in polar groups, continuous origin shifts along the polar
directions. The tables of ITA list the normalizer for the general metric of each crystal family ("the
normalizer of the lattice"); for a special metric (say a = b in an orthorhombic cell) the normalizer can be
larger. Here it is derived for the actual cell, from the group's operators alone:

1. Linear parts: the lattice automorphisms that keep the metric, P^T G P = G within a tolerance, found as integer
   matrices with entries in {-1, 0, 1} in a Delaunay-reduced primitive basis (spglib's reduction; the search
   that spglib uses for the lattice point group), brought back to the setting's basis. An axis change is
   therefore offered only when this cell admits it: a <-> b only where a = b and the angles fit (PyXtal's
   normalizer tables list such permutations for every cell, which is wrong in general). Those that map the
   point group onto itself (P R P^-1 is again a rotation of the group) are kept, one per coset P R.
2. Translation parts: for each linear part P, the shifts p on a 1/24 grid (halves, thirds, quarters, sixths,
   eighths, twelfths) such that conjugation by (P, p) maps every operator (R, t) to an operator of the group:
   (P R P^-1, P t + (I - P R P^-1) p) in G modulo lattice translations. Shifts are listed once modulo the
   lattice, the centring translations and the polar directions.
3. Polar directions: the common null space of all I - R; along them the origin shift is continuous (the whole
   space for P1).

The result is cached per operator set and metric.
"""

from __future__ import annotations

import functools
import itertools
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import spglib
from scipy.linalg import null_space

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup

#: Denominator of the grid searched for discrete origin shifts (covers 1/2, 1/3, 1/4, 1/6, 1/8, 1/12).
GRID = 24
#: Largest |D^-1 (P^T G P - G) D^-1| entry of an isometry, D = diag(a, b, c): about 0.1 % in a length and
#: 0.1 degree in an angle. Looser tolerances would offer axis changes between different axes.
METRIC_TOLERANCE = 2e-3
_EPS = 1e-6
_OFFSETS = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=3)))
_UNIMODULAR = np.array(list(itertools.product((-1, 0, 1), repeat=9)), dtype=float).reshape(-1, 3, 3)
_UNIMODULAR = _UNIMODULAR[np.abs(np.abs(np.linalg.det(_UNIMODULAR)) - 1.0) < 1e-9]


@dataclass(frozen=True)
class Normalizer:
    """Coset representatives of the Euclidean normalizer modulo the group: x -> linear @ x + shift (+ free @ u).

    Attributes
    ----------
    linear : ndarray, shape (n_operations, 3, 3)
        Linear parts P in the fractional basis of the setting (integers in conventional settings; a special
        metric of a centred cell can give halves). The identity comes first, proper parts before improper ones;
        -I stands for its coset wherever it belongs to it.
    shifts : ndarray, shape (n_operations, 3)
        Translation parts p (fractional), in [0, 1); for each linear part the zero shift first where allowed.
    free_directions : ndarray, shape (3, n_free)
        Orthonormal basis (fractional coordinates) of the continuous origin shifts allowed on top of ``shifts``:
        the polar directions. Shape (3, 0) when the origin is fixed, (3, 3) for P1.
    """

    linear: np.ndarray
    shifts: np.ndarray
    free_directions: np.ndarray

    def __post_init__(self) -> None:
        for name in ("linear", "shifts", "free_directions"):
            array = np.array(getattr(self, name), dtype=float)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.linear)

    @property
    def n_free(self) -> int:
        return self.free_directions.shape[1]

    @property
    def improper(self) -> np.ndarray:
        """Whether each operation changes the hand (det P = -1), shape (n_operations,), bool."""
        return np.linalg.det(self.linear) < 0

    @property
    def triplets(self) -> list[str]:
        """The operations as coordinate triplets, e.g. ``'-x+1/2,-y,-z'`` or ``'y,x,z'``."""
        return [operation_triplet(p, s) for p, s in zip(self.linear, self.shifts, strict=True)]


def euclidean_normalizer(
    space_group: SpaceGroup,
    cell: UnitCell,
    *,
    allow_improper: bool = True,
    metric_tolerance: float = METRIC_TOLERANCE,
) -> Normalizer:
    """The Euclidean normalizer of ``space_group`` for this ``cell``, modulo the group itself.

    Parameters
    ----------
    space_group : SpaceGroup
        Any setting; the operations are returned in its fractional basis.
    cell : UnitCell
        Decides which axis changes keep the metric.
    allow_improper : bool
        Also list operations that change the hand (the enantiomorph); False keeps only proper ones.
    metric_tolerance : float
        See :data:`METRIC_TOLERANCE`.

    Returns
    -------
    Normalizer
        For example 8 shifts for P-1 and P2_1/c, the shifts 0 and (1/2, 1/2, 1/2) for Fm-3m, the identity
        and the inversion with three free directions for P1, two linear parts (1 and -1) with a free c for
        P6_3mc, and four cosets for P6_3/m (the mirror x <-> y and the shift (0, 0, 1/2)).
    """
    return normalizer_of_operators(
        space_group.rotations,
        space_group.translations,
        cell.metric,
        allow_improper=allow_improper,
        metric_tolerance=metric_tolerance,
    )


def normalizer_of_operators(
    rotations: np.ndarray,
    translations: np.ndarray,
    metric: np.ndarray,
    *,
    allow_improper: bool = True,
    metric_tolerance: float = METRIC_TOLERANCE,
) -> Normalizer:
    """:func:`euclidean_normalizer` of a group given by all its operators (centring translations included).

    Parameters
    ----------
    rotations : ndarray, shape (n_ops, 3, 3), int
    translations : ndarray, shape (n_ops, 3)
        Fractional; the pure translations (identity rotation) are the centring vectors.
    metric : ndarray, shape (3, 3), Å²
    """
    rotations = np.asarray(rotations)
    translations = np.asarray(translations, dtype=float)
    if rotations.ndim != 3 or rotations.shape[1:] != (3, 3) or translations.shape != (len(rotations), 3):
        shapes = f"{rotations.shape}, {translations.shape}"
        raise ValueError(f"operators must have shapes (n, 3, 3) and (n, 3), got {shapes}")
    ops_key = tuple(sorted(_op_key(r, t) for r, t in zip(rotations, translations, strict=True)))
    metric = np.asarray(metric, dtype=float)
    metric_key = tuple(np.round(metric.ravel(), 6).tolist())
    return _normalizer_cached(ops_key, metric_key, bool(allow_improper), float(metric_tolerance))


def lattice_automorphisms(centring: np.ndarray, metric: np.ndarray, tolerance: float = METRIC_TOLERANCE) -> np.ndarray:
    """The lattice's point symmetry: linear maps that keep the (centred) lattice and its metric.

    Parameters
    ----------
    centring : ndarray, shape (n_centring, 3)
        Centring vectors of the setting (the zero vector included).
    metric : ndarray, shape (3, 3), Å²
        Metric tensor G of the setting's basis.
    tolerance : float
        See :data:`METRIC_TOLERANCE`.

    Returns
    -------
    ndarray, shape (n, 3, 3)
        Matrices P in the setting's fractional basis with P^T G P = G (within ``tolerance``), the identity first.
        48 for a cubic cell, 24 for a hexagonal one, 2 for a general triclinic one.
    """
    basis = _reduced_primitive_basis(np.asarray(centring, dtype=float), metric)
    reduced_metric = basis.T @ metric @ basis
    scale = 1.0 / np.sqrt(np.diag(reduced_metric))
    moved = np.einsum("kji,jl,klm->kim", _UNIMODULAR, reduced_metric, _UNIMODULAR)
    error = np.abs(moved - reduced_metric) * scale[:, None] * scale[None, :]
    found = _UNIMODULAR[np.all(error <= tolerance, axis=(1, 2))]
    setting = basis @ found @ np.linalg.inv(basis)
    setting = np.where(np.abs(setting - np.round(setting * 6) / 6) < 1e-6, np.round(setting * 6) / 6, setting)
    # Check the tolerance again in the setting's basis and put the identity first.
    scale = 1.0 / np.sqrt(np.diag(metric))
    error = np.abs(np.einsum("kji,jl,klm->kim", setting, metric, setting) - metric) * scale[:, None] * scale[None, :]
    setting = setting[np.all(error <= tolerance, axis=(1, 2))]
    first = np.argsort(~np.all(np.abs(setting - np.eye(3)) < _EPS, axis=(1, 2)), kind="stable")
    return setting[first]


def operation_triplet(linear: np.ndarray, shift: np.ndarray) -> str:
    """An affine operation as a coordinate triplet, ITA style: ``'-y+1/2,x,z'``."""
    parts = []
    for row, s in zip(np.asarray(linear, dtype=float), np.asarray(shift, dtype=float), strict=True):
        text = ""
        for coefficient, axis in zip(row, "xyz", strict=True):
            value = Fraction(coefficient).limit_denominator(12)
            if value == 0:
                continue
            sign = "-" if value < 0 else ("+" if text else "")
            magnitude = "" if abs(value) == 1 else f"{abs(value)}*"
            text += f"{sign}{magnitude}{axis}"
        value = Fraction(float(s)).limit_denominator(GRID)
        if value != 0:
            text += f"{'+' if value > 0 and text else ''}{value}" if value > 0 else f"{value}"
        parts.append(text or "0")
    return ",".join(parts)


# --- implementation -------------------------------------------------------------------------------------------


def _op_key(rotation: np.ndarray, translation: np.ndarray) -> tuple:
    t = np.round(np.mod(translation, 1.0) * 1e6).astype(np.int64) % 1_000_000
    return (*np.asarray(np.round(rotation), dtype=np.int64).ravel().tolist(), *t.tolist())


def _reduced_primitive_basis(centring: np.ndarray, metric: np.ndarray) -> np.ndarray:
    """Columns: a Delaunay-reduced primitive basis of the centred lattice, in the setting's fractional basis."""
    volume = 1.0 / len(centring)
    vectors = (centring[:, None, :] + _OFFSETS[None, :, :]).reshape(-1, 3)
    vectors = vectors[np.einsum("ni,ij,nj->n", vectors, metric, vectors) > _EPS]
    vectors = vectors[np.argsort(np.einsum("ni,ij,nj->n", vectors, metric, vectors), kind="stable")]
    basis = None
    for triple in itertools.combinations(range(min(len(vectors), 40)), 3):
        candidate = vectors[list(triple)].T
        if abs(abs(np.linalg.det(candidate)) - volume) < 1e-9:
            basis = candidate
            break
    if basis is None:  # pragma: no cover - every centring of the 230 groups has short primitive vectors
        raise ValueError("no primitive basis found for the centring vectors")
    cholesky = np.linalg.cholesky(metric)  # x^T G x = |L^T x|^2: rows of (L^T B)^T are Cartesian vectors
    lattice = (cholesky.T @ basis).T
    with warnings.catch_warnings():  # spglib 2.x warns about its legacy error handling on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        reduced = spglib.delaunay_reduce(lattice, eps=1e-5)
    if reduced is not None:
        basis = np.linalg.solve(cholesky.T, np.asarray(reduced).T)
    return basis


@functools.lru_cache(maxsize=128)
def _normalizer_cached(ops_key: tuple, metric_key: tuple, allow_improper: bool, tolerance: float) -> Normalizer:
    ops = np.array(ops_key, dtype=float)
    rotations = ops[:, :9].reshape(-1, 3, 3)
    translations = np.round(ops[:, 9:] / 1e6 * GRID) / GRID  # space-group translations are multiples of 1/24
    metric = np.array(metric_key).reshape(3, 3)
    identity = np.all(rotations == np.eye(3), axis=(1, 2))
    centring = translations[identity]
    unique, first = np.unique(rotations.reshape(-1, 9), axis=0, return_index=True)
    point_group = unique.reshape(-1, 3, 3)
    coset_translations = translations[first]
    point_keys = {tuple(np.round(r).astype(int).ravel()) for r in point_group}
    free = null_space((np.eye(3) - point_group).reshape(-1, 3), rcond=1e-8)

    # Linear parts that keep the metric, the lattice and the point group, one per coset P R.
    linear_parts = []
    seen: set[tuple] = set()
    for matrix in lattice_automorphisms(centring, metric, tolerance):
        conjugated = np.einsum("ij,kjl,lm->kim", matrix, point_group, np.linalg.inv(matrix))
        if np.any(np.abs(conjugated - np.round(conjugated)) > _EPS):
            continue
        if any(tuple(np.round(c).astype(int).ravel()) not in point_keys for c in conjugated):
            continue
        coset = matrix @ point_group
        keys = {_matrix_key(c) for c in coset}
        if keys & seen:
            continue
        seen |= keys
        linear_parts.append(_representative(coset))
    linear_parts.sort(key=lambda p: (np.linalg.det(p) < 0, not (_is(p, np.eye(3)) or _is(p, -np.eye(3)))))
    if not allow_improper:
        linear_parts = [p for p in linear_parts if np.linalg.det(p) > 0]

    grid = _shift_grid(free)
    translation_of = {_matrix_key(r): t for r, t in zip(point_group, coset_translations, strict=True)}
    all_linear, all_shifts = [], []
    for matrix in linear_parts:
        inverse = np.linalg.inv(matrix)
        candidates = grid
        for rotation, t in zip(point_group, coset_translations, strict=True):
            image = np.round(matrix @ rotation @ inverse)
            # (P, p) (R, t) (P, p)^-1 = (R', P t + (I - R') p) must be (R', t_R' + c) for a centring vector c.
            residual = candidates @ (np.eye(3) - image).T + matrix @ t - translation_of[_matrix_key(image)]
            diff = residual[:, None, :] - centring[None, :, :]
            candidates = candidates[np.any(np.all(np.abs(diff - np.round(diff)) < _EPS, axis=2), axis=1)]
        for shift in distinct_shifts(candidates, centring, free):
            all_linear.append(matrix)
            all_shifts.append(shift)
    return Normalizer(
        linear=np.array(all_linear).reshape(-1, 3, 3),
        shifts=np.array(all_shifts).reshape(-1, 3),
        free_directions=free,
    )


def _matrix_key(matrix: np.ndarray) -> tuple:
    return tuple(np.round(np.asarray(matrix) * 12).astype(np.int64).ravel().tolist())


def _is(matrix: np.ndarray, other: np.ndarray) -> bool:
    return bool(np.all(np.abs(matrix - other) < _EPS))


def _representative(coset: np.ndarray) -> np.ndarray:
    """The identity or -I where the coset holds them; else a proper matrix with the fewest non-zero entries."""
    for special in (np.eye(3), -np.eye(3)):
        if any(_is(c, special) for c in coset):
            return special.copy()
    proper = [c for c in coset if np.linalg.det(c) > 0] or list(coset)
    return min(proper, key=lambda c: (np.count_nonzero(np.abs(c) > _EPS), [-x for x in _matrix_key(c)]))


def _shift_grid(free: np.ndarray) -> np.ndarray:
    """The 1/24 grid of origin shifts, without the coordinates that a free direction makes redundant.

    A shift moved along a free direction is the same alignment, so a coordinate can be held at 0 where a free
    direction is that axis (P2_1: y) or, for one free direction with entries 0 or +-1 (R3 in rhombohedral axes:
    [111]), at its first non-zero entry. With three free directions (P1) only the zero shift remains.
    """
    axes = [np.arange(GRID) / GRID for _ in range(3)]
    if free.shape[1] == 3:
        return np.zeros((1, 3))
    for k in range(3):
        if np.linalg.norm(free.T[:, k]) > 1.0 - _EPS:  # the axis e_k lies in the free space
            axes[k] = np.zeros(1)
    if free.shape[1] == 1:
        direction = free[:, 0] / np.abs(free[:, 0]).max()
        if np.all(np.abs(np.abs(direction) - np.round(np.abs(direction))) < _EPS):
            axes[int(np.flatnonzero(np.abs(direction) > _EPS)[0])] = np.zeros(1)
    return np.array(list(itertools.product(*axes)), dtype=float)


def distinct_shifts(points: np.ndarray, centring: np.ndarray, free: np.ndarray) -> list[np.ndarray]:
    """One representative of each class of ``points`` modulo lattice, centring and the free directions."""
    representatives = []
    remaining = points
    while len(remaining):
        first = remaining[0]
        representatives.append(first)
        diff = (remaining - first)[:, None, :] - centring[None, :, :]
        diff = (diff - np.round(diff))[:, :, None, :] + _OFFSETS
        if free.shape[1]:
            diff = diff - (diff @ free) @ free.T
        same = np.any(np.all(np.abs(diff) < _EPS, axis=-1), axis=(1, 2))
        remaining = remaining[~same]
    return representatives
