"""Wyckoff positions: which coordinates of a site on a special position are free, from PyXtal's tables.

A Wyckoff position is an affine map from its free parameters to fractional coordinates, frac = M p + t
(International Tables Vol. A, ch. 2.1.3.12); for 4c of Pnma, (x, 1/4, z). PyXtal (Fredericks et al., Comput.
Phys. Commun. 261 (2021) 107810) tabulates the representative of every position of the 230 groups in their
standard settings; nothing here is typed by hand. gemmi's operators and PyXtal's general position are compared,
so a group given in another setting is refused rather than mapped wrongly.

:class:`SiteMap` turns a GA genome into fractional coordinates for sites on general or special positions.
The genome keeps three slots per site: each free parameter lives in the slot of the first coordinate it drives
(x of (x, 1/4, z), x of (x, x, x)); the other slots are dependent. ``project`` rewrites the dependent slots from
the free ones, so a projected genome *is* the fractional coordinates, and the rest of the program can read it
as such; ``pullback`` carries a gradient with respect to the coordinates back onto the free slots (zero on the
dependent ones, which the GA pins).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError

_LABEL = re.compile(r"^\s*(\d*)\s*([a-zA-Z])\s*$")


@dataclass(frozen=True)
class WyckoffPosition:
    """One Wyckoff position of a space group.

    Attributes
    ----------
    letter : str
    multiplicity : int
        Positions per conventional cell.
    matrix : ndarray, shape (3, 3)
        M of frac = M p + t, p = (x, y, z) the free parameters (columns of zeros for unused ones).
    offset : ndarray, shape (3,)
        t.
    """

    letter: str
    multiplicity: int
    matrix: np.ndarray = field(repr=False)
    offset: np.ndarray = field(repr=False)

    @property
    def label(self) -> str:
        return f"{self.multiplicity}{self.letter}"

    @property
    def free_parameters(self) -> list[int]:
        """Indices (0 = x, 1 = y, 2 = z) of the parameters the position depends on."""
        return [j for j in range(3) if np.any(self.matrix[:, j] != 0)]

    def coordinates(self, parameters: np.ndarray) -> np.ndarray:
        """frac = M p + t for parameters (..., 3)."""
        return np.einsum("ij,...j->...i", self.matrix, np.asarray(parameters, dtype=float)) + self.offset


def _op_key(rotation: np.ndarray, translation: np.ndarray) -> tuple:
    return (
        tuple(np.rint(rotation).astype(int).ravel()),
        tuple(np.round(np.mod(translation, 1.0) * 24).astype(int) % 24),
    )


@functools.cache
def _pyxtal_group(number: int):
    """PyXtal's tables of space group ``number`` (built once per process: about 10 ms each)."""
    from pyxtal.symmetry import Group

    return Group(number)


def wyckoff_positions(space_group: SpaceGroup) -> list[WyckoffPosition]:
    """Every Wyckoff position of ``space_group``, general position first (PyXtal's order).

    Raises
    ------
    InputError
        When the group is not in the standard setting PyXtal tabulates (the operators differ).
    """
    group = _pyxtal_group(space_group.number)
    general = group.Wyckoff_positions[0].ops
    theirs = {_op_key(op.rotation_matrix, op.translation_vector) for op in general}
    ours = {_op_key(r, t) for r, t in zip(space_group.rotations, space_group.translations, strict=True)}
    if theirs != ours:
        raise InputError(
            f"Wyckoff letters are tabulated for the standard setting of space group {space_group.number} "
            f"({group.symbol}); {space_group.symbol!r} is another setting. Give the group as {group.symbol!r} "
            "with the cell transformed to it, or leave out the Wyckoff letters"
        )
    positions = []
    for wp in group.Wyckoff_positions:
        affine = np.array(wp.ops[0].affine_matrix, dtype=float)
        positions.append(WyckoffPosition(wp.letter, int(wp.multiplicity), affine[:3, :3], affine[:3, 3]))
    return positions


def wyckoff_position(space_group: SpaceGroup, label: str) -> WyckoffPosition:
    """The position named ``label`` ("4c" or "c"; the multiplicity, when given, must match)."""
    match = _LABEL.match(str(label))
    if match is None:
        raise InputError(f"a Wyckoff position is a multiplicity and a letter such as '4c', got {label!r}")
    count, letter = match.group(1), match.group(2)
    positions = wyckoff_positions(space_group)
    found = [p for p in positions if p.letter == letter]
    known = ", ".join(p.label for p in positions)
    if not found:
        raise InputError(f"space group {space_group.symbol} has no Wyckoff position {label!r}; it has {known}")
    position = found[0]
    if count and int(count) != position.multiplicity:
        raise InputError(
            f"Wyckoff position {letter} of {space_group.symbol} has multiplicity {position.multiplicity}, "
            f"not {count} ({label!r}); it has {known}"
        )
    return position


@dataclass(frozen=True)
class SiteMap:
    """Affine map from GA genomes to fractional coordinates, one Wyckoff position per site (module docstring).

    Attributes
    ----------
    matrix : ndarray, shape (n_sites, 3, 3)
        frac_i = matrix_i @ genome_i + offset_i, with the genome slots of site i as the inputs.
    offset : ndarray, shape (n_sites, 3)
    multiplicity : ndarray, shape (n_sites,), int
        Positions each site generates in the cell.
    labels : tuple of str
        Wyckoff label of each site ("" for general positions made without a table).
    """

    matrix: np.ndarray = field(repr=False)
    offset: np.ndarray = field(repr=False)
    multiplicity: np.ndarray
    labels: tuple[str, ...]

    @classmethod
    def general(cls, space_group: SpaceGroup, n_sites: int) -> SiteMap:
        """Every site on the general position: the identity map."""
        return cls(
            np.broadcast_to(np.eye(3), (n_sites, 3, 3)).copy(),
            np.zeros((n_sites, 3)),
            np.full(n_sites, space_group.n_ops, dtype=int),
            ("",) * n_sites,
        )

    @classmethod
    def from_labels(cls, space_group: SpaceGroup, labels: list[str] | tuple[str, ...]) -> SiteMap:
        """Sites on the Wyckoff positions ``labels`` (e.g. ["4c", "4c", "4c", "4c", "8d"])."""
        matrices, offsets, multiplicities, names = [], [], [], []
        for label in labels:
            position = wyckoff_position(space_group, label)
            matrix = np.zeros((3, 3))
            used: list[int] = []
            for j in position.free_parameters:
                rows = [i for i in range(3) if position.matrix[i, j] != 0 and i not in used]
                slot = min(rows, key=lambda i: (position.matrix[i, j] != 1, i))  # prefer x -> x: idempotent
                used.append(slot)
                matrix[:, slot] = position.matrix[:, j]
            matrices.append(matrix)
            offsets.append(position.offset)
            multiplicities.append(position.multiplicity)
            names.append(position.label)
        return cls(np.array(matrices), np.array(offsets), np.array(multiplicities, dtype=int), tuple(names))

    @property
    def n_sites(self) -> int:
        return len(self.offset)

    @property
    def fixed(self) -> np.ndarray:
        """Genome slots that carry no free parameter, shape (3 n_sites,), bool."""
        return ~np.any(self.matrix != 0, axis=1).reshape(-1)

    @property
    def n_free(self) -> int:
        return int(np.count_nonzero(~self.fixed))

    def project(self, genomes: np.ndarray) -> np.ndarray:
        """Fractional coordinates of genomes (n_models, 3 n_sites) or (n_models, n_sites, 3), wrapped into [0, 1);
        same shape as the input."""
        genomes = np.asarray(genomes, dtype=float)
        frac = np.einsum("sij,msj->msi", self.matrix, genomes.reshape(len(genomes), self.n_sites, 3)) + self.offset
        return (frac - np.floor(frac)).reshape(genomes.shape)

    def pullback(self, gradient: np.ndarray) -> np.ndarray:
        """Gradient with respect to the genome from one with respect to the coordinates (same shapes as
        :meth:`project`): Mᵀ g per site, zero on the dependent slots."""
        gradient = np.asarray(gradient, dtype=float)
        pulled = np.einsum("sij,msi->msj", self.matrix, gradient.reshape(len(gradient), self.n_sites, 3))
        return pulled.reshape(gradient.shape)
