"""Space groups: symmetry operators, centring, centrosymmetry and systematic absences, all from gemmi.

gemmi's tables cover the 230 groups in every setting of International Tables Vol. A; nothing here is typed by
hand. An operator maps fractional coordinates as x' = R x + t.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gemmi
import numpy as np

from gasolve.errors import InputError


def _lookup(symbol_or_number: str | int) -> gemmi.SpaceGroup:
    if isinstance(symbol_or_number, bool):
        raise InputError(f"space group must be a Hermann-Mauguin symbol or a number 1-230, got {symbol_or_number!r}")
    if isinstance(symbol_or_number, int):
        if not 1 <= symbol_or_number <= 230:
            raise InputError(f"space group number must be 1-230, got {symbol_or_number}")
        found = gemmi.find_spacegroup_by_number(symbol_or_number)
    else:
        text = str(symbol_or_number).strip()
        if text.isdigit():
            return _lookup(int(text))
        found = gemmi.find_spacegroup_by_name(text)
    if found is None:
        raise InputError(
            f"unknown space group {symbol_or_number!r}; expected a Hermann-Mauguin symbol such as 'P-1', "
            "'P21/c', 'Pnma', 'Fd-3m:2', or a number 1-230"
        )
    if ":" not in str(symbol_or_number) and found.ext == "1":
        # Prefer origin choice 2 (origin at an inversion centre) where ITA offers two; give ':1' to override.
        second = gemmi.find_spacegroup_by_name(found.hm + ":2")
        if second is not None:
            found = second
    return found


@dataclass(frozen=True)
class SpaceGroup:
    """A space group with its full set of symmetry operators.

    Attributes
    ----------
    number : int
        International Tables number, 1-230.
    symbol : str
        Extended Hermann-Mauguin symbol of the setting (gemmi's ``xhm``), e.g. ``'P 1 21/c 1'``.
    hall : str
        Hall symbol of the setting.
    rotations : ndarray, shape (n_ops, 3, 3), int
        Rotation parts R of all operators, centring included.
    translations : ndarray, shape (n_ops, 3), float
        Translation parts t (fractions of the cell), in [0, 1).
    centring : ndarray, shape (n_centring, 3), float
        Lattice centring vectors, the zero vector first.
    """

    number: int
    symbol: str
    hall: str
    rotations: np.ndarray = field(repr=False, compare=False)
    translations: np.ndarray = field(repr=False, compare=False)
    centring: np.ndarray = field(repr=False, compare=False)
    primitive_rotations: np.ndarray = field(repr=False, compare=False)
    primitive_translations: np.ndarray = field(repr=False, compare=False)

    @classmethod
    def from_gemmi(cls, group: gemmi.SpaceGroup) -> SpaceGroup:
        ops = group.operations()
        den = float(gemmi.Op.DEN)
        sym_rot = np.array([op.rot for op in ops.sym_ops], dtype=np.int64) // gemmi.Op.DEN
        sym_tran = np.mod(np.array([op.tran for op in ops.sym_ops], dtype=float) / den, 1.0)
        centring = np.mod(np.array(ops.cen_ops, dtype=float) / den, 1.0)
        rotations = np.concatenate([sym_rot for _ in centring])
        translations = np.mod(np.concatenate([sym_tran + c for c in centring]), 1.0)
        arrays = (sym_rot, sym_tran, centring, rotations, translations)
        for array in arrays:
            array.setflags(write=False)
        return cls(
            number=group.number,
            symbol=group.xhm(),
            hall=group.hall,
            rotations=rotations,
            translations=translations,
            centring=centring,
            primitive_rotations=sym_rot,
            primitive_translations=sym_tran,
        )

    @classmethod
    def from_symbol(cls, symbol_or_number: str | int) -> SpaceGroup:
        """Look up a space group by Hermann-Mauguin symbol (any common spelling) or number.

        Where International Tables give two origin choices, origin choice 2 (at an inversion centre) is taken
        unless the symbol says ``:1``.
        """
        return cls.from_gemmi(_lookup(symbol_or_number))

    @classmethod
    def from_hall(cls, hall: str) -> SpaceGroup:
        return cls.from_gemmi(gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(hall)))

    @property
    def gemmi(self) -> gemmi.SpaceGroup:
        return gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(self.hall))

    @property
    def n_ops(self) -> int:
        return len(self.rotations)

    @property
    def triplets(self) -> list[str]:
        """Operators as coordinate triplets ('x,y,z', '-x,-y,-z', ...), centring included."""
        return [op.triplet() for op in self.gemmi.operations()]

    @property
    def is_centrosymmetric(self) -> bool:
        return bool(np.any(np.all(self.rotations == -np.eye(3, dtype=int), axis=(1, 2))))

    @property
    def inversion_at_origin(self) -> bool:
        """True if -x (plus a centring vector) is an operator, so F(hkl) is real for every allowed reflection."""
        inverse = np.all(self.rotations == -np.eye(3, dtype=int), axis=(1, 2))
        for t in self.translations[inverse]:
            if np.any(np.all(np.isclose(np.mod(self.centring - t + 0.5, 1.0) - 0.5, 0.0), axis=1)):
                return True
        return False

    @property
    def crystal_system(self) -> str:
        return gemmi.find_spacegroup_by_number(self.number).crystal_system_str()

    def is_absent(self, hkl: np.ndarray) -> np.ndarray:
        """Systematically absent reflections.

        A reflection h is absent if some operator (R, t) has h R = h and h . t not an integer
        (International Tables Vol. A, sect. 1.6.5).

        Parameters
        ----------
        hkl : ndarray, shape (n, 3), int

        Returns
        -------
        ndarray, shape (n,), bool
        """
        hkl = np.asarray(hkl, dtype=np.int64)
        h_rot = np.einsum("ni,sij->nsj", hkl, self.rotations)
        invariant = np.all(h_rot == hkl[:, None, :], axis=2)
        phase = hkl @ self.translations.T
        non_integer = np.abs(phase - np.round(phase)) > 1e-6
        return np.any(invariant & non_integer, axis=1)

    def orbit(self, frac: np.ndarray, tol: float = 1e-4) -> np.ndarray:
        """Distinct images of one fractional position under all operators, wrapped into [0, 1).

        Parameters
        ----------
        frac : ndarray, shape (3,)
        tol : float
            Two images closer than this (fractional units, per axis, modulo 1) are the same position.

        Returns
        -------
        ndarray, shape (multiplicity, 3)
        """
        images = np.mod(np.einsum("sij,j->si", self.rotations, np.asarray(frac, float)) + self.translations, 1.0)
        # An image is new unless an earlier one coincides with it (vectorised: this runs inside GA loops).
        diff = images[:, None, :] - images[None, :, :]
        diff -= np.round(diff)
        same = (np.abs(diff) < tol).all(axis=2)
        return images[~np.tril(same, k=-1).any(axis=1)]
