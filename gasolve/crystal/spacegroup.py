"""Space groups: symmetry operators, centring, centrosymmetry and systematic absences, all from gemmi.

gemmi's tables cover the 230 groups in every setting of International Tables Vol. A; nothing here is typed by
hand. An operator maps fractional coordinates as x' = R x + t.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import gemmi
import numpy as np

from gasolve.errors import InputError

_EXAMPLES = (
    "a Hermann-Mauguin symbol in any common spelling ('P2_1/c', 'P 21/c', 'P121/c1', 'P 1 21/n 1', 'Pbnm', "
    "'R-3m:H', 'R3:R', 'Fd-3m:1'), a Hall symbol ('-P 2ybc'), or a number 1-230"
)


def _spellings(text: str) -> list[str]:
    """The ways a user's symbol may be meant: as written; screw axes as 2_1 or 6(3) written 21 and 63 (pymatgen's
    and some papers' spellings), a Unicode minus as '-'."""
    plain = text.replace("\u2212", "-").replace("\u2013", "-")
    screws = re.sub(r"_\{?(\d)\}?", r"\1", re.sub(r"(\d)\((\d)\)", r"\1\2", plain))
    # Full symbols (P 2/m 2/m 2/m, F 4/m -3 2/m, I 41/a 2/m 2/d) to short ones: a twofold axis under a plane
    # is implied by the plane; a cubic 4/m -3 is m -3. Tried last, after gemmi's own names (P 1 21/m 1).
    short = re.sub(r"(?<![\w/])4\d?/(\w) -3", r"\1 -3", re.sub(r"(?<![\w/])21?/(?=\w)", "", screws))
    return list(dict.fromkeys([text, plain, screws, short]))


def _from_hall(text: str) -> gemmi.SpaceGroup | None:
    try:
        return gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(text))
    except (RuntimeError, ValueError):
        return None


def _lookup(symbol_or_number: str | int) -> gemmi.SpaceGroup:
    """The gemmi space group of a number, a Hermann-Mauguin symbol (gemmi's table of settings, several spellings
    tried) or a Hall symbol (gemmi's Hall parser; a leading ``Hall:`` forces that reading)."""
    if isinstance(symbol_or_number, bool):
        raise InputError(f"space group must be {_EXAMPLES}; got {symbol_or_number!r}")
    if isinstance(symbol_or_number, int):
        if not 1 <= symbol_or_number <= 230:
            raise InputError(f"space group number must be 1-230, got {symbol_or_number}")
        found = gemmi.find_spacegroup_by_number(symbol_or_number)
    else:
        text = str(symbol_or_number).strip()
        if text.isdigit():
            return _lookup(int(text))
        found = None
        if text.lower().startswith("hall:"):
            found = _from_hall(text[5:].strip())
        else:
            for spelling in _spellings(text):
                found = gemmi.find_spacegroup_by_name(spelling)
                if found is not None:
                    break
            if found is None:
                found = _from_hall(text)
    if found is None:
        raise InputError(f"unknown space group {symbol_or_number!r}; expected {_EXAMPLES}")
    if ":" not in str(symbol_or_number) and found.ext == "1" and not _is_hall(symbol_or_number, found):
        # Prefer origin choice 2 (origin at an inversion centre) where ITA offers two; give ':1' to override.
        second = gemmi.find_spacegroup_by_name(found.hm + ":2")
        if second is not None:
            found = second
    return found


def _is_hall(symbol: str | int, found: gemmi.SpaceGroup) -> bool:
    """Whether ``symbol`` was read as a Hall symbol (which names one origin, so no origin choice is applied)."""
    text = str(symbol).strip()
    return text.lower().startswith("hall:") or (
        all(gemmi.find_spacegroup_by_name(s) is None for s in _spellings(text)) and not text.isdigit()
    )


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

    def symmetrized_metric(self, metric: np.ndarray) -> np.ndarray:
        """The part of a direct metric tensor (3, 3) that the group's rotations leave invariant: the mean of
        Rᵀ G R over the point group (a metric compatible with the group satisfies Rᵀ G R = G for every R)."""
        rotations = self.primitive_rotations.astype(float)
        return np.einsum("sji,jk,skl->il", rotations, np.asarray(metric, dtype=float), rotations) / len(rotations)

    def metric_constraints(self) -> list[str]:
        """The relations among cell parameters the group's rotations impose, as text ("a = b", "gamma = 120"),
        read off the symmetrized metric of a generic cell (no table)."""
        generic = _parameters(self.symmetrized_metric(_metric((1.0, 1.3, 1.7, 80.0, 95.0, 110.0))))
        lengths, angles = generic[:3], generic[3:]
        relations: list[str] = []
        for names in (("a", "b", "c"), ("a", "b"), ("b", "c"), ("a", "c")):
            values = [lengths["abc".index(n)] for n in names]
            if np.ptp(values) < 1e-9 and not any(set(names) < set(r.split(" = ")) for r in relations):
                relations.append(" = ".join(names))
        angle_names = ("alpha", "beta", "gamma")
        special = {name: value for name, value in zip(angle_names, angles, strict=True)}
        equal = [n for n in angle_names if abs(special[n] - special["alpha"]) < 1e-9]
        if len(equal) == 3 and abs(special["alpha"] - 90.0) > 1e-6:
            relations.append("alpha = beta = gamma")
        else:
            for name in angle_names:
                for value in (90.0, 120.0):
                    if abs(special[name] - value) < 1e-6:
                        relations.append(f"{name} = {value:g}°")
        return relations

    def check_cell(self, cell, length_tolerance: float = 1e-3, angle_tolerance: float = 0.01) -> None:
        """Raise :class:`InputError` if ``cell`` (a :class:`~gasolve.crystal.cell.UnitCell`) contradicts the
        metric the group's rotations impose (lengths within ``length_tolerance`` relative, angles within
        ``angle_tolerance`` degrees of the nearest compatible cell)."""
        given = np.array(cell.parameters)
        nearest = np.array(_parameters(self.symmetrized_metric(cell.metric)))
        lengths_off = np.abs(given[:3] - nearest[:3]) > length_tolerance * nearest[:3]
        angles_off = np.abs(given[3:] - nearest[3:]) > angle_tolerance
        if np.any(lengths_off) or np.any(angles_off):
            fitting = ", ".join(f"{x:.5g}" for x in nearest)
            raise InputError(
                f"the cell [{', '.join(f'{x:g}' for x in given)}] contradicts space group {self.symbol} "
                f"({self.crystal_system}): expected {', '.join(self.metric_constraints())} (within "
                f"{length_tolerance:g} relative in lengths, {angle_tolerance:g}° in angles); the nearest cell that "
                f"fits is [{fitting}]"
            )

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


def _metric(parameters) -> np.ndarray:
    a, b, c, alpha, beta, gamma = parameters
    ca, cb, cg = np.cos(np.radians([alpha, beta, gamma]))
    return np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])


def _parameters(metric: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """a, b, c (Å) and alpha, beta, gamma (degrees) of a direct metric tensor."""
    lengths = np.sqrt(np.diag(metric))
    cosines = [metric[1, 2] / (lengths[1] * lengths[2]), metric[0, 2] / (lengths[0] * lengths[2])]
    cosines.append(metric[0, 1] / (lengths[0] * lengths[1]))
    angles = np.degrees(np.arccos(np.clip(cosines, -1.0, 1.0)))
    return (*map(float, lengths), *map(float, angles))


#: Lattice letter of each crystal system in a Bravais symbol (trigonal groups of a P lattice are hP).
_FAMILY_LETTER = {
    "triclinic": "a",
    "monoclinic": "m",
    "orthorhombic": "o",
    "tetragonal": "t",
    "trigonal": "h",
    "hexagonal": "h",
    "cubic": "c",
}


def bravais_symbol(number: int) -> str:
    """Bravais symbol (aP, mP, mC, oP, oC, oI, oF, tP, tI, hP, hR, cP, cI, cF) of space group ``number``: the crystal
    system and the centring letter of its standard Hermann-Mauguin symbol, both from gemmi; A- and B-centred groups
    count as C (the same lattice)."""
    group = gemmi.find_spacegroup_by_number(int(number))
    centring = {"A": "C", "B": "C"}.get(group.hm[0], group.hm[0])
    return _FAMILY_LETTER[group.crystal_system_str()] + centring
