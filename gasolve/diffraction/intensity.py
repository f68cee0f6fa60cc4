"""Structure factors and integrated intensities: the plain, readable formulas.

F(h) = sum_atoms occ f0(s) exp(-B s²) exp(2 pi i h.x) over every atom of the cell (International Tables
Vol. C, 6.1.1.3 and 6.2). The integrated powder intensity of a merged reflection is
I = m |F|² LP(2θ) with multiplicity m and the Lorentz-polarisation factor of a Bragg-Brentano
diffractometer, LP = (1 + K cos² 2θ) / ((1 + K) sin² θ cos θ), K = cos² 2θ_M for a monochromator at
2θ_M (K = 1 without one, the unpolarised tube source). A beam of known polarisation (a synchrotron) is described
instead by the fraction P of its intensity polarised perpendicular to the diffraction plane, the convention of
GSAS-II's instrument parameter "Polariz." (Toby & Von Dreele, J. Appl. Cryst. 46 (2013) 544): the polarisation
factor is P + (1 − P) cos² 2θ, which is the form above with K = (1 − P)/P (P = 0.5 is the unpolarised beam,
P ≈ 0.99 a horizontally polarised synchrotron beam diffracted in the vertical plane, as at APS 11-BM).
"""

from __future__ import annotations

import numpy as np

from gasolve.crystal.structure import Structure
from gasolve.diffraction.form_factors import debye_waller, form_factor
from gasolve.diffraction.reflections import ReflectionList


def lorentz_polarisation(
    two_theta: np.ndarray, monochromator_two_theta: float = 0.0, polarisation: float | None = None
) -> np.ndarray:
    """Lorentz-polarisation factor (dimensionless) at Bragg angles ``two_theta`` (degrees).

    Parameters
    ----------
    two_theta : ndarray, degrees
    monochromator_two_theta : float
        Monochromator 2θ_M (degrees); 0 for none (unpolarised source).
    polarisation : float or None
        Fraction P in (0, 1] of the beam polarised perpendicular to the diffraction plane (module docstring);
        None to use ``monochromator_two_theta``. Giving both a P and a monochromator angle is an error.
    """
    theta = np.radians(np.asarray(two_theta, dtype=float)) / 2.0
    if polarisation is None:
        k = np.cos(np.radians(monochromator_two_theta)) ** 2
    else:
        if monochromator_two_theta:
            raise ValueError("give the beam polarisation or the monochromator angle, not both")
        k = (1.0 - polarisation) / polarisation
    return (1.0 + k * np.cos(2.0 * theta) ** 2) / ((1.0 + k) * np.sin(theta) ** 2 * np.cos(theta))


def structure_factors(structure: Structure, reflections: ReflectionList) -> np.ndarray:
    """Complex structure factors F(hkl) (electrons), shape (n_refl,), from the expanded cell."""
    elements, frac, occupancy, b_iso, _ = structure.expand()
    stol2 = reflections.stol2
    f = np.array([form_factor(el, stol2) for el in elements])  # (n_atoms, n_refl)
    f *= occupancy[:, None] * debye_waller(b_iso, stol2)
    phase = 2.0 * np.pi * frac @ reflections.hkl.T  # (n_atoms, n_refl)
    return np.sum(f * np.exp(1j * phase), axis=0)


def integrated_intensities(
    structure: Structure,
    reflections: ReflectionList,
    wavelength: float,
    monochromator_two_theta: float = 0.0,
    polarisation: float | None = None,
) -> np.ndarray:
    """m |F|² LP for each reflection at ``wavelength`` (Å), shape (n_refl,)."""
    f2 = np.abs(structure_factors(structure, reflections)) ** 2
    lp = lorentz_polarisation(reflections.two_theta(wavelength), monochromator_two_theta, polarisation)
    return reflections.multiplicity * f2 * lp
