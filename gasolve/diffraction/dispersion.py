"""Anomalous dispersion f'(λ), f''(λ) of the elements from Chantler's tables, through xraydb.

The scattering factor of an atom is f = f0(s) + f' + i f'' (International Tables Vol. C, 4.2.6); f' and f''
depend on the photon energy E = hc/λ, not on s. Values: C. T. Chantler, J. Phys. Chem. Ref. Data 24 (1995) 71 and
29 (2000) 597, as ``xraydb.f1_chantler`` (f') and ``xraydb.f2_chantler`` (f''), in electrons. For radiation of
several lines (Kα1 + Kα2) one value per element is used, the mean over the lines weighted by their relative
intensities (Cu Kα1/Kα2 differ by 20 eV: for Pb, f' -4.310 and -4.303, f'' 8.415 and 8.446 electrons), because the
calculated pattern shares one intensity per reflection among the lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.constants

from gasolve.crystal.structure import element_symbol
from gasolve.diffraction.wavelength import Radiation

#: hc in eV Å (CODATA, scipy.constants): E (eV) = HC_EV_ANGSTROM / λ (Å).
HC_EV_ANGSTROM = scipy.constants.h * scipy.constants.c / scipy.constants.e * 1e10

#: Where the values come from, as refined.cif's ``_atom_type_scat_dispersion_source`` says.
SOURCE = "Chantler (1995, 2000), J. Phys. Chem. Ref. Data 24, 71; 29, 597 (via xraydb)"


def photon_energy(wavelength: float) -> float:
    """Photon energy (eV) of a wavelength (Å)."""
    return HC_EV_ANGSTROM / float(wavelength)


@dataclass(frozen=True)
class Dispersion:
    """f' and f'' (electrons) of each element for one radiation.

    Attributes
    ----------
    elements : tuple of str
    f_prime, f_double_prime : tuple of float
        One per element.
    radiation : str
        The radiation's name.
    """

    elements: tuple[str, ...]
    f_prime: tuple[float, ...]
    f_double_prime: tuple[float, ...]
    radiation: str

    def of(self, element: str) -> tuple[float, float]:
        """(f', f'') of ``element``."""
        k = self.elements.index(element_symbol(element))
        return self.f_prime[k], self.f_double_prime[k]


def line_dispersion(element: str, wavelength: float) -> tuple[float, float]:
    """f' and f'' (electrons) of ``element`` at one wavelength (Å), Chantler's tables (xraydb)."""
    import xraydb

    symbol = element_symbol(element)
    energy = photon_energy(wavelength)
    return float(xraydb.f1_chantler(symbol, energy)), float(xraydb.f2_chantler(symbol, energy))


def anomalous_dispersion(elements, radiation: Radiation) -> Dispersion:
    """f' and f'' of every distinct element of ``elements`` for ``radiation``: the mean over its lines weighted by
    their relative intensities (module docstring)."""
    unique = tuple(dict.fromkeys(element_symbol(e) for e in elements))
    weights = np.array([weight for _, weight in radiation.lines], dtype=float)
    weights = weights / weights.sum()
    f1, f2 = [], []
    for element in unique:
        values = np.array([line_dispersion(element, wavelength) for wavelength, _ in radiation.lines])
        mean = weights @ values
        f1.append(float(mean[0]))
        f2.append(float(mean[1]))
    return Dispersion(unique, tuple(f1), tuple(f2), radiation.name)
