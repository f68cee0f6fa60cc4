"""Full-profile powder pattern of a known structure (NumPy, from the readable formulas)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gasolve.crystal.structure import Structure
from gasolve.diffraction.background import chebyshev_basis
from gasolve.diffraction.intensity import structure_factors
from gasolve.diffraction.profile import PeakProfile, build_peak_matrix
from gasolve.diffraction.reflections import ReflectionList, generate_reflections
from gasolve.diffraction.wavelength import Radiation


@dataclass(frozen=True)
class SimulatedPattern:
    """A calculated pattern and its parts.

    Attributes
    ----------
    two_theta : ndarray, shape (n_points,), degrees
    peaks : ndarray, shape (n_points,)
        Peak part for unit scale: Σ_k m_k |F_k|² LP pV.
    background : ndarray, shape (n_points,)
    reflections : ReflectionList
    f_squared : ndarray, shape (n_refl,)
    """

    two_theta: np.ndarray
    peaks: np.ndarray
    background: np.ndarray
    reflections: ReflectionList
    f_squared: np.ndarray


def simulate(
    structure: Structure,
    two_theta: np.ndarray,
    radiation: Radiation,
    profile: PeakProfile,
    background_coefficients: np.ndarray | None = None,
) -> SimulatedPattern:
    """Calculated pattern of ``structure`` on the grid ``two_theta`` (degrees, increasing).

    Parameters
    ----------
    background_coefficients : ndarray, shape (background_terms,), optional
        Chebyshev coefficients of the background over the grid's range (same units as the result).
    """
    from gasolve.scoring.problem import d_spacing_limits  # shared reach rule, no import cycle at load

    two_theta = np.asarray(two_theta, dtype=float)
    d_min, d_max = d_spacing_limits(two_theta, radiation, profile)
    reflections = generate_reflections(structure.cell, structure.space_group, d_min, d_max)
    f_squared = np.abs(structure_factors(structure, reflections)) ** 2
    peaks = build_peak_matrix(two_theta, reflections, radiation, profile).to_sparse() @ f_squared
    coefficients = np.zeros(0) if background_coefficients is None else np.asarray(background_coefficients, float)
    background = chebyshev_basis(two_theta, len(coefficients)) @ coefficients
    return SimulatedPattern(two_theta, peaks, background, reflections, f_squared)
