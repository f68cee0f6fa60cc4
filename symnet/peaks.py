"""Peak lists: the d-spacings and intensities m |F|² of a structure, computed by the gasolve engine.

A peak list is what the training set stores for every structure (a few kB instead of a 10,000-point pattern):
profiles are rendered from it on the fly with a fresh random instrument each epoch (:mod:`symnet.render`,
:mod:`symnet.augment`). Reflections come from :func:`gasolve.diffraction.reflections.generate_reflections` and
structure factors from :func:`gasolve.diffraction.intensity.structure_factors` (IT92 form factors, the
structure's own B). Lorentz-polarisation and the wavelength enter only at rendering. Reflections whose d agree
to ``merge_tolerance`` (relative) are merged: in a P1 description of a symmetric cell, equivalent reflections
arrive separately at the same d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gasolve.crystal.structure import Structure
from gasolve.diffraction.intensity import structure_factors
from gasolve.diffraction.reflections import generate_reflections


@dataclass(frozen=True)
class PeakList:
    """Peaks of one structure.

    Attributes
    ----------
    d_spacing : ndarray, shape (n_peaks,), float64
        Å, decreasing.
    intensity : ndarray, shape (n_peaks,), float64
        m |F|² without Lorentz-polarisation, scaled so that the largest is 1.
    """

    d_spacing: np.ndarray
    intensity: np.ndarray

    def __len__(self) -> int:
        return len(self.d_spacing)


def merge_peaks(
    d_spacing: np.ndarray, intensity: np.ndarray, merge_tolerance: float = 2e-5, min_relative: float = 1e-6
) -> PeakList:
    """Sum peaks at the same d (relative tolerance), drop the negligible ones, scale to a maximum of 1.

    Parameters
    ----------
    d_spacing : ndarray, shape (n,)
        Å, any order.
    intensity : ndarray, shape (n,)
        Non-negative.
    merge_tolerance : float
        Peaks whose d differ by less than this fraction of d from the previous one join its group.
    min_relative : float
        Merged peaks below this fraction of the strongest are dropped (systematic absences in P1 cells come out
        as |F|² at rounding level).

    Returns
    -------
    PeakList
    """
    order = np.argsort(-np.asarray(d_spacing, dtype=float), kind="stable")
    d = np.asarray(d_spacing, dtype=float)[order]
    intensity = np.asarray(intensity, dtype=float)[order]
    if len(d) == 0:
        return PeakList(np.zeros(0), np.zeros(0))
    new_group = np.concatenate([[True], (d[:-1] - d[1:]) > merge_tolerance * d[:-1]])
    group = np.cumsum(new_group) - 1
    total = np.bincount(group, weights=intensity)
    weighted_d = np.bincount(group, weights=intensity * d)
    d_mean = np.where(total > 0, weighted_d / np.where(total > 0, total, 1.0), d[new_group])
    top = total.max()
    if not top > 0:
        return PeakList(np.zeros(0), np.zeros(0))
    keep = total >= min_relative * top
    return PeakList(d_mean[keep], total[keep] / top)


def peak_list(structure: Structure, d_min: float, merge_tolerance: float = 2e-5) -> PeakList:
    """Peaks of ``structure`` with d >= ``d_min`` (Å).

    Parameters
    ----------
    structure : Structure
        Any setting; a P1 cell with every atom gives the same peaks as its symmetric description.
    d_min : float
        Å; for a grid ending at 2θ_max use λ / (2 sin(θ_max)) with some margin.
    merge_tolerance : float
        See :func:`merge_peaks`.

    Returns
    -------
    PeakList
    """
    reflections = generate_reflections(structure.cell, structure.space_group, d_min)
    if len(reflections) == 0:
        return PeakList(np.zeros(0), np.zeros(0))
    f_squared = np.abs(structure_factors(structure, reflections)) ** 2
    return merge_peaks(reflections.d_spacing, reflections.multiplicity * f_squared, merge_tolerance)
