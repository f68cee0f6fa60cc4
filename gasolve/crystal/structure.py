"""Crystal structure: cell, space group and independent atoms, with expansion to the full cell."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

import gemmi
import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError

#: B = 8 pi^2 U (Å²), the isotropic Debye-Waller convention of International Tables Vol. C, 6.1.1.3.
U_TO_B = 8.0 * math.pi**2


def element_symbol(text: str) -> str:
    """Validated, canonically capitalised element symbol ('sn' -> 'Sn'); ions lose their charge ('O2-' -> 'O')."""
    stripped = "".join(ch for ch in str(text) if ch.isalpha())
    element = gemmi.Element(stripped)
    if not stripped or element.atomic_number == 0 or element.name.lower() != stripped.lower():
        raise InputError(f"unknown chemical element {text!r}")
    return element.name


_SPECIES = re.compile(r"^\s*([A-Za-z]{1,2})\s*(?:(\d*)([+-])|([+-])(\d*))?\s*$")


def parse_species(text: str) -> tuple[str, int]:
    """Element and charge of a species symbol: 'Ca2+' -> ('Ca', 2), 'F1-', 'F-' and 'F-1' -> ('F', -1), 'O' ->
    ('O', 0). Raises InputError for anything else."""
    match = _SPECIES.match(str(text))
    if match is None:
        raise InputError(f"unknown species {text!r}: expected an element symbol with an optional charge (Ca2+, F1-)")
    symbol, digits_before, sign_after, sign_before, digits_after = match.groups()
    element = element_symbol(symbol)
    sign = sign_after or sign_before
    if sign is None:
        return element, 0
    digits = digits_before if sign_after else digits_after
    magnitude = int(digits) if digits else 1
    return element, magnitude if sign == "+" else -magnitude


@dataclass(frozen=True)
class Site:
    """One independent atom.

    Attributes
    ----------
    label : str
    element : str
        Element symbol. A species with a charge ('Ca2+', 'F1-') sets ``charge`` and keeps the element.
    frac : tuple of 3 float
        Fractional coordinates.
    occupancy : float
    b_iso : float
        Isotropic displacement parameter B (Å²).
    charge : int
        Formal charge (0: neutral atom). Only the Rietveld refinement uses it (ionic form factors).
    u_aniso : tuple of 6 float, optional
        Anisotropic displacement U11, U22, U33, U12, U13, U23 (Å², CIF convention, in this structure's axes) as a
        CIF's ``_atom_site_aniso_`` loop gives them; None (the default) for none. Only the Rietveld refinement
        reads it, as the start of an anisotropic site (:mod:`gasolve.rietveld.adp`); ``b_iso`` stays the
        isotropic equivalent (8π² Ueq).
    """

    label: str
    element: str
    frac: tuple[float, float, float]
    occupancy: float = 1.0
    b_iso: float = 0.0
    charge: int = 0
    u_aniso: tuple[float, float, float, float, float, float] | None = None

    def __post_init__(self) -> None:
        text = str(self.element)
        if "+" in text or "-" in text:
            element, charge = parse_species(text)
            if self.charge not in (0, charge):
                raise InputError(f"site {self.label}: species {text!r} contradicts charge {self.charge}")
            object.__setattr__(self, "charge", charge)
        else:
            element = element_symbol(text)
        if isinstance(self.charge, bool) or int(self.charge) != self.charge:
            raise InputError(f"site {self.label}: charge must be an integer, got {self.charge!r}")
        object.__setattr__(self, "charge", int(self.charge))
        object.__setattr__(self, "element", element)
        if len(self.frac) != 3 or not all(math.isfinite(float(x)) for x in self.frac):
            raise InputError(f"site {self.label}: fractional coordinates must be 3 finite numbers")
        object.__setattr__(self, "frac", tuple(float(x) for x in self.frac))
        if not 0 < self.occupancy <= 1.0 + 1e-6:
            raise InputError(f"site {self.label}: occupancy must be in (0, 1], got {self.occupancy}")
        if not math.isfinite(self.b_iso) or self.b_iso < 0:
            raise InputError(f"site {self.label}: B_iso must be a non-negative number (Å²), got {self.b_iso}")
        if self.u_aniso is not None:
            if len(self.u_aniso) != 6 or not all(math.isfinite(float(u)) for u in self.u_aniso):
                raise InputError(f"site {self.label}: anisotropic U must be 6 finite numbers (Å²), got {self.u_aniso}")
            object.__setattr__(self, "u_aniso", tuple(float(u) for u in self.u_aniso))


@dataclass(frozen=True)
class Structure:
    """A crystal structure: unit cell, space group and the independent atoms."""

    cell: UnitCell
    space_group: SpaceGroup
    sites: tuple[Site, ...]
    name: str = "structure"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def frac(self) -> np.ndarray:
        """Fractional coordinates of the independent atoms, shape (n_sites, 3)."""
        return np.array([s.frac for s in self.sites], dtype=float).reshape(-1, 3)

    @property
    def elements(self) -> list[str]:
        return [s.element for s in self.sites]

    def site_multiplicities(self) -> np.ndarray:
        """Number of distinct positions each site generates in the cell, shape (n_sites,), int."""
        return np.array([len(self.space_group.orbit(s.frac)) for s in self.sites], dtype=int)

    def with_frac(self, frac: np.ndarray) -> Structure:
        """A copy with new fractional coordinates, shape (n_sites, 3)."""
        frac = np.asarray(frac, dtype=float).reshape(self.n_sites, 3)
        sites = tuple(replace(s, frac=tuple(map(float, x))) for s, x in zip(self.sites, frac, strict=True))
        return replace(self, sites=sites, _cache={})

    def with_b_iso(self, b_iso: float) -> Structure:
        """A copy in which every atom has displacement parameter ``b_iso`` (Å²), isotropic (no ``u_aniso``)."""
        return replace(self, sites=tuple(replace(s, b_iso=float(b_iso), u_aniso=None) for s in self.sites), _cache={})

    def expand(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All atoms of the unit cell.

        Returns
        -------
        elements : list of str, length n_atoms
        frac : ndarray, shape (n_atoms, 3), in [0, 1)
        occupancy : ndarray, shape (n_atoms,)
        b_iso : ndarray, shape (n_atoms,), Å²
        site_index : ndarray, shape (n_atoms,), int
            Independent site each atom comes from.
        """
        elements, frac, occupancy, b_iso, index = [], [], [], [], []
        for i, site in enumerate(self.sites):
            for position in self.space_group.orbit(site.frac):
                elements.append(site.element)
                frac.append(position)
                occupancy.append(site.occupancy)
                b_iso.append(site.b_iso)
                index.append(i)
        return elements, np.array(frac).reshape(-1, 3), np.array(occupancy), np.array(b_iso), np.array(index)

    def formula(self) -> str:
        counts: dict[str, float] = {}
        for site, mult in zip(self.sites, self.site_multiplicities(), strict=True):
            counts[site.element] = counts.get(site.element, 0.0) + mult * site.occupancy
        return " ".join(f"{el}{round(n, 3):g}" for el, n in counts.items())
