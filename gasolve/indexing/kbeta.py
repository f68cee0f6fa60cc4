"""Kβ satellites among the lines of a laboratory pattern: which lines are the Kβ reflection of a stronger line.

A laboratory tube without a monochromator (a β filter only lowers it) also emits its Kβ line, so a strong
reflection of d-spacing d gives a weak satellite at 2θ_β = 2 arcsin(λ_β / 2d), a few degrees below its Kα line. An
indexing that takes such a satellite for a line of the Kα pattern sees an impurity (the measured corundum pattern,
NIST SRM 676a, holds two among its first 20 lines). A line is taken for the Kβ satellite of a *parent* line when

- the radiation is a laboratory Kα line (its primary wavelength is an element's Kα1, or Kα mean, of the wavelength
  table, :func:`gasolve.diffraction.wavelength.named_wavelengths`: Cu, Mo, Co, Fe, Cr, Ag ...; a synchrotron
  wavelength matches none);
- its position is where the parent's d-spacing diffracts λ_β, within max(``n_sigma`` × the combined esd,
  ``min_tolerance``). Kβ is a single line; when the radiation is a Kα1+Kα2 doublet the peak search fits the
  satellite as a doublet too, which puts its "Kα1" position between the satellite's own position and that position
  less the doublet's intensity-weighted centroid offset; the position expected is where that fit puts a
  noise-free single line (:func:`fitted_position`);
- its integrated intensity is at most ``max_ratio`` (0.3) times the parent's. Unfiltered, Kβ/Kα1 is the ratio of
  the emission intensities (0.22 for Cu in xraydb's table: Kβ1+Kβ3 against Kα1); a β filter (Ni for Cu) lowers it
  a hundredfold. Absorption and the Lorentz-polarisation factor change it by tens of per cent, not by factors, so
  a line stronger than 0.3 times its would-be parent is a reflection of its own.

λ_β is the primary wavelength times E(Kα1) / E(Kβ), with the emission energies of xraydb's table
(``xraydb.xray_lines``; Elam, Ravel & Sieber, Radiat. Phys. Chem. 63 (2002) 121): Kβ1 and Kβ3 weighted by their
intensities (one line in a powder pattern: 0-2 eV apart for Cr to Cu, 18 eV for Mo, a few hundredths of a
degree), and Kα1 (or the Kα1+Kα2 mean when the radiation's primary line is the Kα mean). The ratio carries the
table's own energy offsets (1-2 eV) out: for Cu it gives λ_β = 1.39233 Å from λ_Kα1 = 1.540598 Å.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from gasolve.diffraction.wavelength import AGREEMENT, Radiation
from gasolve.errors import InputError

if TYPE_CHECKING:
    from gasolve.indexing.peaks import PeakSet


@dataclass(frozen=True)
class KBetaSettings:
    """How Kβ satellites are recognised (module docstring).

    Attributes
    ----------
    max_ratio : float
        A satellite's integrated intensity is at most this multiple of its parent's.
    n_sigma : float
        Position tolerance in esds of the difference between the satellite and the predicted position.
    min_tolerance : float
        Floor of the position tolerance (degrees 2θ). Wider than the indexing's 0.02°: a weak satellite fitted with
        the Kα model is less well placed than its esd says. On the corundum pattern (NIST SRM 676a, zero shift
        -0.005° against the certified cell) the satellites of 024 and 116 lie 0.027° and 0.029° below the
        positions that the certified cell gives for Cu Kβ.
    """

    max_ratio: float = 0.3
    n_sigma: float = 3.0
    min_tolerance: float = 0.03

    def __post_init__(self) -> None:
        for name in ("max_ratio", "n_sigma", "min_tolerance"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"Kβ setting {name} must be a positive number, got {value}")


def _emission_energy(element: str, names: tuple[str, ...]) -> float:
    """Intensity-weighted mean energy (eV) of ``element``'s K emission lines ``names`` (xraydb)."""
    import xraydb

    lines = xraydb.xray_lines(element, "K")
    chosen = [lines[name] for name in names if name in lines]
    if not chosen:
        raise KeyError(f"xraydb lists none of {names} for {element}")
    weight = sum(line.intensity for line in chosen)
    return sum(line.energy * line.intensity for line in chosen) / weight


def laboratory_anode(radiation: Radiation) -> tuple[str, str] | None:
    """The element and line (``'Ka1'`` or ``'Ka'``, the Kα mean) whose wavelength is the radiation's primary one.

    Parameters
    ----------
    radiation : Radiation

    Returns
    -------
    (element, line) or None
        None when no laboratory Kα line of the wavelength table is within
        :data:`gasolve.diffraction.wavelength.AGREEMENT` (relative) of the primary wavelength (a synchrotron).
    """
    from gasolve.diffraction.wavelength import named_wavelengths

    primary = radiation.primary
    # ASE's table first (Cu): pymatgen's, which names the other anodes, takes seconds to import.
    for include_pymatgen in (False, True):
        for name, value in sorted(named_wavelengths(include_pymatgen).items()):
            for line in ("Ka1", "Ka"):
                if name.endswith(line) and name[: -len(line)].isalpha() and abs(value / primary - 1.0) <= AGREEMENT:
                    return name[: -len(line)], line
    return None


def kbeta_wavelength(radiation: Radiation) -> float | None:
    """λ of the Kβ line (Å) that goes with a laboratory radiation, or None (module docstring).

    Parameters
    ----------
    radiation : Radiation
        Its primary line must be an element's Kα1 or Kα mean (:func:`laboratory_anode`).

    Returns
    -------
    float or None
        λ_β = λ_primary · E(Kα) / E(Kβ1,3) with xraydb's emission energies; None for a wavelength of no anode.
    """
    anode = laboratory_anode(radiation)
    if anode is None:
        return None
    element, line = anode
    alpha = ("Ka1",) if line == "Ka1" else ("Ka1", "Ka2")
    try:
        ratio = _emission_energy(element, alpha) / _emission_energy(element, ("Kb1", "Kb3"))
    except KeyError:
        return None
    return radiation.primary * ratio


def kbeta_position(two_theta: np.ndarray, wavelength: float, kbeta: float) -> np.ndarray:
    """2θ (degrees) at which lines at ``two_theta`` (degrees, primary λ ``wavelength``) diffract λ_β = ``kbeta``;
    NaN where the d-spacing is too short for Kβ (never for λ_β < λ)."""
    sine = np.sin(np.radians(np.asarray(two_theta, dtype=float)) / 2.0) * kbeta / wavelength
    with np.errstate(invalid="ignore"):
        return np.where(sine < 1.0, 2.0 * np.degrees(np.arcsin(np.minimum(sine, 1.0))), np.nan)


def doublet_offset(two_theta: np.ndarray, radiation: Radiation) -> np.ndarray:
    """Intensity-weighted centroid of the radiation's lines less its primary line's position (degrees), for a
    primary line at ``two_theta``: how far the peak search's fitted primary position of a *single* line lies below
    the line when it is fitted as the multiplet (at most)."""
    two_theta = np.asarray(two_theta, dtype=float)
    lines = np.array(radiation.lines, dtype=float)
    if len(lines) < 2:
        return np.zeros_like(two_theta)
    sine = np.clip(np.sin(np.radians(two_theta) / 2.0)[..., None] * lines[:, 0] / lines[0, 0], -1.0, 1.0)
    positions = 2.0 * np.degrees(np.arcsin(sine))
    return (positions @ lines[:, 1]) / lines[:, 1].sum() - two_theta


def flag_kbeta(peaks: PeakSet, radiation: Radiation, settings: KBetaSettings | None = None) -> PeakSet:
    """The peak set with its Kβ satellites flagged (:attr:`gasolve.indexing.peaks.PeakSet.kbeta_of`).

    Parameters
    ----------
    peaks : PeakSet
    radiation : Radiation
        What the peaks were searched with; a radiation of no laboratory anode flags nothing.
    settings : KBetaSettings, optional

    Returns
    -------
    PeakSet
        The same lines; ``kbeta_of`` holds each satellite's parent 2θ (degrees) and NaN elsewhere. Lines are
        examined from the strongest down, a satellite's parent being a stronger line not itself flagged.
    """
    settings = settings or KBetaSettings()
    kbeta = kbeta_wavelength(radiation)
    parent_of = np.full(peaks.n_peaks, np.nan)
    if kbeta is None or peaks.n_peaks < 2:
        return replace(peaks, kbeta_of=parent_of)
    wavelength = radiation.primary
    position = kbeta_position(peaks.two_theta, wavelength, kbeta)  # where each line's Kβ falls
    offset = doublet_offset(position, radiation)
    # d(2θ_β)/d(2θ): the parent's esd carried to the predicted position.
    theta, theta_beta = np.radians(peaks.two_theta) / 2.0, np.radians(position) / 2.0
    slope = (kbeta / wavelength) * np.cos(theta) / np.cos(theta_beta)
    for j in np.argsort(-peaks.intensity, kind="stable"):
        parents = (peaks.intensity * settings.max_ratio >= peaks.intensity[j]) & np.isnan(parent_of)
        parents[j] = False
        esd = np.hypot(peaks.two_theta_esd[j], slope * peaks.two_theta_esd)
        tolerance = np.maximum(settings.n_sigma * esd, settings.min_tolerance)
        low = position - np.maximum(offset, 0.0) - tolerance
        high = position - np.minimum(offset, 0.0) + tolerance
        near = np.flatnonzero(parents & (peaks.two_theta[j] >= low) & (peaks.two_theta[j] <= high))
        # Where the peak search's multiplet fit puts a single line at each predicted position.
        expected = [fitted_position(position[i], peaks.fwhm[i], radiation) for i in near]
        near = [i for i, e in zip(near, expected, strict=True) if abs(peaks.two_theta[j] - e) <= tolerance[i]]
        if near:
            parent_of[j] = peaks.two_theta[max(near, key=lambda i: peaks.intensity[i])]
    return replace(peaks, kbeta_of=parent_of)


def fitted_position(two_theta: float, fwhm: float, radiation: Radiation, eta: float = 0.5) -> float:
    """The primary-line position (degrees) that the peak search's multiplet fit gives a single line at
    ``two_theta`` (degrees) of the given FWHM (degrees): the line itself for one-line radiation; with a Kα1+Kα2
    doublet, between the line and the line less the doublet's centroid offset (:func:`doublet_offset`), nearer
    the line where the doublet is resolved. Computed by fitting the multiplet model of
    :func:`gasolve.indexing.peaks.search_peaks` to the noise-free line."""
    from gasolve.diffraction.profile import pseudo_voigt
    from gasolve.indexing.peaks import _fit_group, _line_ratios

    ratios, weights = _line_ratios(radiation)
    if len(ratios) < 2:
        return float(two_theta)
    offset = float(doublet_offset(np.array([two_theta]), radiation)[0])
    t = np.linspace(two_theta - 3.0 * fwhm - offset, two_theta + 3.0 * fwhm, 121)
    line = np.asarray(pseudo_voigt(t - two_theta, fwhm, eta), dtype=float)
    line /= line.max()
    sigma = np.full(len(t), 1e-3)
    fit = _fit_group(t, line, sigma, np.array([two_theta]), np.ones(1), np.array([fwhm]), ratios, weights)
    return float(fit.position[0])


@dataclass(frozen=True)
class KBetaLine:
    """A line taken for a Kβ satellite, and what the chosen cell makes of it.

    Attributes
    ----------
    two_theta, parent_two_theta : float
        The satellite's and its parent's observed 2θ (degrees).
    as_kbeta : bool
        The cell has a reflection whose Kβ line falls on the satellite (within the tolerance, after the zero shift).
    as_kalpha : bool
        The cell also has a reflection whose Kα1 line falls there: the line may be a reflection of its own.
    """

    two_theta: float
    parent_two_theta: float
    as_kbeta: bool
    as_kalpha: bool

    def as_dict(self) -> dict:
        return {
            "two_theta": round(self.two_theta, 5),
            "parent_two_theta": round(self.parent_two_theta, 5),
            "indexed_as_kbeta": self.as_kbeta,
            "indexed_as_kalpha": self.as_kalpha,
        }


def check_kbeta(
    peaks: PeakSet,
    radiation: Radiation,
    cell: tuple[float, ...],
    bravais: str,
    zero: float = 0.0,
    settings: KBetaSettings | None = None,
) -> tuple[KBetaLine, ...]:
    """Whether a cell indexes the flagged satellites as Kβ lines (and whether as Kα lines too).

    Parameters
    ----------
    peaks : PeakSet
        With :attr:`~gasolve.indexing.peaks.PeakSet.kbeta_of` set (:func:`flag_kbeta`).
    radiation : Radiation
    cell : tuple of float
        Conventional cell (Å, degrees) ...
    bravais : str
        ... and its Bravais symbol (the centring's extinctions apply).
    zero : float
        Zero shift (degrees): the Bragg angle is 2θ - zero.
    settings : KBetaSettings, optional
        Its tolerance (``n_sigma`` esds, at least ``min_tolerance``).

    Returns
    -------
    tuple of KBetaLine
        One per flagged line, by 2θ; empty when none is flagged or the radiation has no Kβ.
    """
    from gasolve.indexing.figures_of_merit import two_theta_from_q
    from gasolve.indexing.lattice import calculated_q

    settings = settings or KBetaSettings()
    kbeta = kbeta_wavelength(radiation)
    flagged = np.flatnonzero(peaks.kbeta)
    if kbeta is None or len(flagged) == 0:
        return ()
    bragg = peaks.two_theta[flagged] - zero
    q_max = 1.05 * float(np.max((2.0 * np.sin(np.radians(bragg) / 2.0) / min(kbeta, radiation.primary)) ** 2))
    q_calc = calculated_q(tuple(cell), bravais, q_max)
    tolerance = np.maximum(settings.n_sigma * peaks.two_theta_esd[flagged], settings.min_tolerance)
    out = []
    for k, i in enumerate(flagged):
        parent = int(np.argmin(np.abs(peaks.two_theta - peaks.kbeta_of[i])))
        hits = []
        for wavelength in (kbeta, radiation.primary):
            calc = two_theta_from_q(q_calc, wavelength)
            calc = calc[np.isfinite(calc)]
            if calc.size == 0:
                hits.append(False)
                continue
            nearest = float(calc[np.argmin(np.abs(calc - bragg[k]))])
            if wavelength == kbeta:  # a single line, placed as the peak search's doublet fit places it
                nearest = fitted_position(nearest, float(peaks.fwhm[parent]), radiation)
            hits.append(bool(abs(nearest - bragg[k]) <= tolerance[k]))
        out.append(KBetaLine(float(peaks.two_theta[i]), float(peaks.kbeta_of[i]), *hits))
    return tuple(out)
