"""Lattices of indexing solutions: centring from the indices of the lines, Bravais type, Niggli reduction.

A dichotomy solution is a primitive cell of one crystal system. Its lattice may be centred (the lines then miss a
class of indices: h+k odd for C, h+k+l odd for I, mixed parities for F, -h+k+l not a multiple of 3 for the
obverse R setting), and a solution found in a lower system may have a metric of higher symmetry. Both are settled
by building the lattice's primitive basis and asking spglib for the symmetry of that lattice (one atom per lattice
point; Togo & Tanaka, spglib, arXiv:1808.01590), which also gives the conventional cell. Solutions are compared
by their Niggli-reduced cells (spglib's ``niggli_reduce``; Křivý & Gruber, Acta Cryst. A32 (1976) 297).
"""

from __future__ import annotations

import numpy as np
import spglib

from gasolve.crystal.cell import UnitCell
from gasolve.indexing.systems import coefficient_matrix, direct_cell

#: Reflection conditions of the centrings a dichotomy solution may hide, as functions of (h, k, l).
CENTRING_CONDITIONS = {
    "A": lambda h, k, l_: (k + l_) % 2 == 0,
    "B": lambda h, k, l_: (h + l_) % 2 == 0,
    "C": lambda h, k, l_: (h + k) % 2 == 0,
    "I": lambda h, k, l_: (h + k + l_) % 2 == 0,
    "F": lambda h, k, l_: ((h + k) % 2 == 0) & ((k + l_) % 2 == 0),
    "R": lambda h, k, l_: (-h + k + l_) % 3 == 0,
}

#: Lattice points of each centring in the conventional cell (fractional), beyond the origin.
CENTRING_TRANSLATIONS = {
    "P": [],
    "A": [[0, 0.5, 0.5]],
    "B": [[0.5, 0, 0.5]],
    "C": [[0.5, 0.5, 0]],
    "I": [[0.5, 0.5, 0.5]],
    "F": [[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]],
    "R": [[2 / 3, 1 / 3, 1 / 3], [1 / 3, 2 / 3, 2 / 3]],
}

#: Centrings tried in each system, the most restrictive first.
CENTRINGS_OF_SYSTEM = {
    "cubic": ("F", "I"),
    "tetragonal": ("I",),
    "hexagonal": ("R",),
    "orthorhombic": ("F", "I", "C", "A", "B"),
    "monoclinic": ("C", "A", "I"),
    "triclinic": (),
}

_CRYSTAL_SYSTEMS = (
    (2, "triclinic", "a"),
    (15, "monoclinic", "m"),
    (74, "orthorhombic", "o"),
    (142, "tetragonal", "t"),
    (167, "trigonal", "h"),
    (194, "hexagonal", "h"),
    (230, "cubic", "c"),
)


def consistent_centrings(
    system: str, parameters: np.ndarray, q_obs: np.ndarray, q_tol: np.ndarray, indexed: np.ndarray
) -> list[str]:
    """Centrings under which every indexed line still has a calculated line within its tolerance.

    The indices a dichotomy solution assigns are one representative of each Q, so the test is made on Q: all
    indices up to the last line (every sign) that the centring allows, against each indexed line.

    Parameters
    ----------
    system : str
    parameters : ndarray, shape (n_par,)
        Reciprocal parameters of the solution (:mod:`gasolve.indexing.systems`).
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻².
    indexed : ndarray, shape (n_lines,), bool

    Returns
    -------
    list of str
        Most restrictive first; empty when the lattice looks primitive.
    """
    return [
        name
        for name in CENTRINGS_OF_SYSTEM[system]
        if not np.any(centring_violations(system, parameters, q_obs, q_tol, indexed, name))
    ]


def centring_violations(
    system: str, parameters: np.ndarray, q_obs: np.ndarray, q_tol: np.ndarray, indexed: np.ndarray, centring: str
) -> np.ndarray:
    """The indexed lines that no reflection the centring allows indexes within their tolerance.

    Parameters
    ----------
    system : str
    parameters : ndarray, shape (n_par,)
        Reciprocal parameters of the solution (:mod:`gasolve.indexing.systems`).
    q_obs, q_tol : ndarray, shape (n_lines,)
        Å⁻².
    indexed : ndarray, shape (n_lines,), bool
    centring : str
        A, B, C, I, F or R (:data:`CENTRING_CONDITIONS`).

    Returns
    -------
    ndarray of bool, shape (n_lines,)
        True for an indexed line that only reflections the centring forbids index; every indexed line when the
        centring allows no reflection up to the last line.
    """
    indexed = np.asarray(indexed, dtype=bool)
    out = np.zeros(len(indexed), dtype=bool)
    if not np.any(indexed):
        return out
    q = np.asarray(q_obs, dtype=float)[indexed]
    tol = np.asarray(q_tol, dtype=float)[indexed]
    cell = direct_cell(system, parameters)
    q_reach = float(np.max(q + tol))
    limits = [int(np.floor(length * np.sqrt(q_reach))) + 1 for length in cell[:3]]
    hkl = np.stack(np.meshgrid(*[np.arange(-n, n + 1) for n in limits], indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    q_all = coefficient_matrix(system, hkl) @ np.asarray(parameters, dtype=float)
    near = q_all <= q_reach
    hkl, q_all = hkl[near], q_all[near]
    allowed = np.sort(q_all[CENTRING_CONDITIONS[centring](hkl[:, 0], hkl[:, 1], hkl[:, 2])])
    if len(allowed) == 0:
        out[indexed] = True
        return out
    position = np.clip(np.searchsorted(allowed, q), 1, max(len(allowed) - 1, 1))
    nearest = np.minimum(np.abs(allowed[position] - q), np.abs(allowed[position - 1] - q))
    out[indexed] = nearest > tol
    return out


def lattice_vectors(cell: tuple[float, ...]) -> np.ndarray:
    """Rows a, b, c (Å) of a cell ``(a, b, c, alpha, beta, gamma)``."""
    return np.asarray(UnitCell(*cell).matrix, dtype=float)


def primitive_basis(cell: tuple[float, ...], centring: str) -> np.ndarray:
    """Rows of a primitive basis (Å) of the lattice of a conventional cell with the given centring."""
    vectors = lattice_vectors(cell)
    if centring == "P":
        return vectors
    points = np.array(CENTRING_TRANSLATIONS[centring], dtype=float)
    # The lattice points of the conventional cell, as one atom each: spglib finds the primitive cell.
    positions = np.vstack([np.zeros(3), points])
    primitive = spglib.find_primitive((vectors, positions, np.ones(len(positions), dtype=int)), symprec=1e-4)
    if primitive is None:
        raise RuntimeError(f"spglib found no primitive cell for centring {centring}")
    return np.asarray(primitive[0], dtype=float)


def cell_parameters(vectors: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """(a, b, c, alpha, beta, gamma) of lattice vectors given as rows."""
    lengths = np.linalg.norm(vectors, axis=1)
    angles = []
    for i, j in ((1, 2), (0, 2), (0, 1)):
        cosine = float(np.dot(vectors[i], vectors[j]) / (lengths[i] * lengths[j]))
        angles.append(float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))))
    return (float(lengths[0]), float(lengths[1]), float(lengths[2]), angles[0], angles[1], angles[2])


def niggli_basis(primitive: np.ndarray) -> np.ndarray:
    """A Niggli-reduced basis (rows, Å) of the lattice of a primitive basis (rows, Å), by spglib."""
    reduced = spglib.niggli_reduce(np.asarray(primitive, dtype=float), eps=1e-5)
    if reduced is None:
        raise RuntimeError("spglib could not Niggli-reduce the cell")
    return np.asarray(reduced, dtype=float)


def niggli_cell(primitive: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Niggli-reduced parameters of a primitive basis (rows, Å)."""
    return cell_parameters(niggli_basis(primitive))


def bravais_lattice(primitive: np.ndarray, symprec: float = 0.01) -> tuple[str, str, tuple[float, ...]]:
    """Bravais type, crystal system and conventional cell of a lattice.

    Parameters
    ----------
    primitive : ndarray, shape (3, 3)
        Rows of a primitive basis (Å).
    symprec : float
        Distance tolerance (Å) of the lattice's symmetry (the refined cell's own precision is ~1e-3 Å).

    Returns
    -------
    bravais : str
        Pearson-style symbol: aP, mP, mC, oP, oC, oI, oF, tP, tI, hR, hP, cP, cI, cF (oA/oB/mA/mI settings are
        reported in spglib's standard setting, hence as oC or mC).
    crystal_system : str
        Of the lattice (trigonal lattices are hexagonal unless rhombohedral, which is reported as trigonal).
    conventional : tuple of float
        Conventional cell (a, b, c, alpha, beta, gamma) in spglib's standard setting.
    """
    dataset = spglib.get_symmetry_dataset((np.asarray(primitive, dtype=float), [[0.0, 0.0, 0.0]], [1]), symprec)
    if dataset is None:
        raise RuntimeError("spglib found no symmetry for the lattice")
    number = int(dataset.number)
    letter = dataset.international[0]
    system, prefix = next((name, first) for last, name, first in _CRYSTAL_SYSTEMS if number <= last)
    if letter == "R":
        system, prefix = "trigonal", "h"
    elif system == "trigonal":
        system = "hexagonal"
    centring = "C" if letter in "ABC" else letter
    if system == "triclinic":
        centring = "P"
    return prefix + centring, system, cell_parameters(np.asarray(dataset.std_lattice))


def same_lattice(
    cell_a: tuple[float, ...], cell_b: tuple[float, ...], length_tol: float = 0.01, angle_tol: float = 1.0
) -> bool:
    """True when two Niggli-reduced cells agree (relative length tolerance, angle tolerance in degrees).

    Angles of 90° ± ε may be reduced to either side of 90°, so angles are compared also as their supplements.
    """
    lengths_a, lengths_b = np.array(cell_a[:3]), np.array(cell_b[:3])
    if np.any(np.abs(lengths_a - lengths_b) > length_tol * lengths_b):
        return False
    angles_a, angles_b = np.array(cell_a[3:]), np.array(cell_b[3:])
    close = np.abs(angles_a - angles_b) <= angle_tol
    supplement = np.abs(angles_a + angles_b - 180.0) <= angle_tol
    return bool(np.all(close | supplement))


def allowed_hkl(cell: tuple[float, ...], bravais: str, q_max: float) -> np.ndarray:
    """Miller indices (h, k, l) != 0 that the centring of ``bravais`` allows, over the box |h| <= a sqrt(q_max) + 1
    (and so on), which holds every reflection with Q <= ``q_max`` (Å⁻²) of the conventional ``cell``; shape (n, 3),
    int. Some of them lie beyond ``q_max``."""
    unit_cell = UnitCell(*cell)
    limits = [int(np.floor(length * np.sqrt(q_max))) + 1 for length in (unit_cell.a, unit_cell.b, unit_cell.c)]
    axes = [np.arange(-n, n + 1) for n in limits]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    centring = bravais[1]
    if centring != "P":
        hkl = hkl[CENTRING_CONDITIONS[centring](hkl[:, 0], hkl[:, 1], hkl[:, 2])]
    return hkl


def calculated_q(cell: tuple[float, ...], bravais: str, q_max: float) -> np.ndarray:
    """Distinct Q = 1/d² (Å⁻²) of a lattice's allowed lines up to ``q_max``, increasing.

    Parameters
    ----------
    cell : tuple of float
        Conventional cell of the lattice (Å, degrees), as returned by :func:`bravais_lattice`.
    bravais : str
        Its Bravais symbol; the centring letter sets the reflection condition.
    q_max : float
        Å⁻².

    Returns
    -------
    ndarray, shape (n_lines,)
        Values that agree to a relative 1e-7 count once.
    """
    hkl = allowed_hkl(cell, bravais, q_max)
    q = np.einsum("ni,ij,nj->n", hkl, UnitCell(*cell).reciprocal_metric, hkl)
    q = np.sort(q[q <= q_max * (1 + 1e-9)])
    if len(q) == 0:
        return q
    distinct = np.concatenate([[True], np.diff(q) > 1e-7 * q[1:]])
    return q[distinct]
