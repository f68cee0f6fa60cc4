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
- its integrated intensity is at most ``max_ratio`` (0.45) times the parent's. Unfiltered, Kβ/Kα1 is the ratio of
  the emission intensities (0.22 for Cu in xraydb's table: Kβ1+Kβ3 against Kα1); a β filter (Ni for Cu) lowers it
  a hundredfold. Absorption and the Lorentz-polarisation factor change it by tens of per cent, not by factors (the
  latter, larger at the lower Kβ angle, lifts it to 0.24-0.34 in simulated Cu Kα1 patterns), so a line stronger
  than 0.45 times its would-be parent is a reflection of its own;
- the pattern shows Kβ: its Kβ/Kα1 ratio, measured where the Kβ lines of its strongest lines must lie
  (:func:`kbeta_ratio`), is at least ``evidence`` esds above zero, and the line is at most ``ratio_spread`` times
  that ratio times its parent. Position and intensity alone take a weak reflection of the sample's own at the Kβ
  position of a stronger line for a satellite: they flagged 27 lines in 17 of 56 simulated patterns without any Kβ
  (``benchmarks/kbeta.py``), none with this test. Without the profile (a bare line list) the test is not made.

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
    evidence : float
        Significance (in esds of the estimate) that the pattern's Kβ/Kα1 ratio, measured at the Kβ positions of
        its strongest lines (:func:`kbeta_ratio`), must reach before any line is flagged; 0 turns the test off
        (the position and intensity rule alone, as before). Only applied when the profile is given.
    n_parents : int
        Strongest lines whose Kβ positions are measured for that estimate (those whose Kβ window is free of
        other lines).
    ratio_spread : float
        A flagged line's intensity is at most this multiple of the estimated ratio times its parent's
        (absorption, Lorentz-polarisation and the fitted areas of lines near the detection limit, which come out
        high: the two satellites of the measured corundum pattern give 0.002 and 0.005 against an estimate of
        0.0036, one of a simulated pattern with Kβ at 0.004 of Kα1 0.008 against 0.004).
    """

    max_ratio: float = 0.45
    n_sigma: float = 3.0
    min_tolerance: float = 0.03
    evidence: float = 3.0
    n_parents: int = 8
    ratio_spread: float = 3.0

    def __post_init__(self) -> None:
        for name in ("max_ratio", "n_sigma", "min_tolerance", "ratio_spread"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"Kβ setting {name} must be a positive number, got {value}")
        if not (math.isfinite(float(self.evidence)) and self.evidence >= 0):
            raise InputError(f"Kβ setting evidence must be a number >= 0, got {self.evidence}")
        if int(self.n_parents) < 1:
            raise InputError(f"Kβ setting n_parents must be at least 1, got {self.n_parents}")


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


def flag_kbeta(
    peaks: PeakSet,
    radiation: Radiation,
    settings: KBetaSettings | None = None,
    profile: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> PeakSet:
    """The peak set with its Kβ satellites flagged (:attr:`gasolve.indexing.peaks.PeakSet.kbeta_of`).

    Parameters
    ----------
    peaks : PeakSet
    radiation : Radiation
        What the peaks were searched with; a radiation of no laboratory anode flags nothing.
    settings : KBetaSettings, optional
    profile : (two_theta, net, sigma), each ndarray of shape (n_points,), optional
        The background-subtracted profile the peaks were found in (degrees, counts, counts). When given (and
        ``settings.evidence`` > 0), lines are flagged only when the pattern's Kβ/Kα1 ratio measured at the Kβ
        positions of its strongest lines is significant (:func:`kbeta_ratio`), and only those no stronger than
        ``ratio_spread`` times that ratio: a weak reflection at the Kβ position of a stronger line is a chance
        coincidence in a pattern without Kβ (11 of 56 simulated patterns without Kβ had one flagged before).

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
    candidates = _candidates(peaks, radiation, kbeta, settings)
    if not np.isfinite(candidates).any():
        return replace(peaks, kbeta_of=parent_of)
    if profile is None or settings.evidence <= 0:
        return replace(peaks, kbeta_of=candidates)
    estimate = kbeta_ratio(peaks, radiation, profile, settings, candidates)
    if estimate.significance < settings.evidence:
        return replace(peaks, kbeta_of=parent_of)
    ceiling = min(settings.max_ratio, settings.ratio_spread * estimate.ratio)
    for j in np.flatnonzero(np.isfinite(candidates)):
        parent = int(np.argmin(np.abs(peaks.two_theta - candidates[j])))
        if peaks.intensity[j] <= ceiling * peaks.intensity[parent]:
            parent_of[j] = candidates[j]
    return replace(peaks, kbeta_of=parent_of)


def _candidates(peaks: PeakSet, radiation: Radiation, kbeta: float, settings: KBetaSettings) -> np.ndarray:
    """Each line's would-be parent 2θ (degrees; NaN for none) by position and intensity alone (module docstring)."""
    parent_of = np.full(peaks.n_peaks, np.nan)
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
    return parent_of


@dataclass(frozen=True)
class KBetaRatio:
    """The pattern's Kβ/Kα1 intensity ratio measured at the Kβ positions of its strongest lines.

    Attributes
    ----------
    ratio : float
        Weighted median of the per-line ratios (Kβ area over the parent's primary-line area), the most significant
        one left out.
    esd : float
        Its standard uncertainty: 1.25 times that of the weighted mean (the median's efficiency for normal errors).
    n_parents : int
        Lines measured, the one left out included (0 when fewer than two could be: the ratio is then 0).
    """

    ratio: float
    esd: float
    n_parents: int

    @property
    def significance(self) -> float:
        """ratio / esd (0 when nothing was measured)."""
        return self.ratio / self.esd if self.n_parents and self.esd > 0 else 0.0


def kbeta_ratio(
    peaks: PeakSet,
    radiation: Radiation,
    profile: tuple[np.ndarray, np.ndarray, np.ndarray],
    settings: KBetaSettings | None = None,
    candidates: np.ndarray | None = None,
) -> KBetaRatio:
    """Kβ/Kα1 ratio of a pattern, measured where the Kβ lines of its strongest lines must lie.

    A tube's Kβ line goes with every reflection at one ratio (changed by tens of per cent by absorption and the
    Lorentz-polarisation factor), so a real satellite comes with satellites of the other strong lines, most of
    them too weak to be found by the peak search on their own but measurable where they must lie. At the Kβ
    position of each of the ``n_parents`` strongest lines (not themselves possible satellites, whose window of
    2.5 FWHM either side lies in the pattern, with no other line's component within a FWHM of the position, save
    lines that may be that line's satellite), the area of a single pseudo-Voigt line (the parent's FWHM,
    η = 0.5) is fitted by weighted linear least squares with a constant, a slope and the other lines whose tails
    reach into the window (at their found positions and widths, free areas). The line whose ratio is the most
    significant (its esd scaled by √χ²_ν when that exceeds 1) is then left out: a reflection of the sample's own
    at the Kβ position of the strongest line, which weighs most, must not make the evidence alone (simulated
    BiPd2Pb has one at 0.005 times its parent). The ratio is the weighted median of the others' area / parent
    intensity, weighted by the counting statistics alone (a strong satellite fitted with the parent's width and a
    fixed shape leaves χ²_ν well above 1, which must not hand the median to the windows without one), robust to
    further such reflections; its esd comes from the scaled esds.

    Parameters
    ----------
    peaks : PeakSet
    radiation : Radiation
        A laboratory radiation (:func:`kbeta_wavelength`); otherwise nothing is measured.
    profile : (two_theta, net, sigma), each ndarray of shape (n_points,)
        Background-subtracted profile (degrees, counts, counts).
    settings : KBetaSettings, optional
    candidates : ndarray, shape (n_peaks,), optional
        Each line's would-be parent 2θ by position alone (NaN for none); such lines may lie in their parent's
        window. Computed when not given.

    Returns
    -------
    KBetaRatio
    """
    from gasolve.diffraction.profile import pseudo_voigt
    from gasolve.indexing.peaks import _component_positions, _line_ratios

    settings = settings or KBetaSettings()
    kbeta = kbeta_wavelength(radiation)
    if kbeta is None or peaks.n_peaks == 0:
        return KBetaRatio(0.0, math.inf, 0)
    if candidates is None:
        candidates = _candidates(peaks, radiation, kbeta, settings)
    t, net, sigma = (np.asarray(a, dtype=float) for a in profile)
    position = kbeta_position(peaks.two_theta, radiation.primary, kbeta)
    line_ratios, line_weights = _line_ratios(radiation)
    components = _component_positions(peaks.two_theta, line_ratios)[0]  # (n_peaks, n_lines)
    ratios, esds = [], []
    for i in np.argsort(-peaks.intensity, kind="stable"):
        if len(ratios) >= settings.n_parents:
            break
        x, width = float(position[i]), float(peaks.fwhm[i])
        half = 2.5 * width
        # A line that may itself be a satellite has none of its own.
        if np.isfinite(candidates[i]) or not np.isfinite(x) or x - half < t[0] or x + half > t[-1]:
            continue
        own = np.isclose(candidates, peaks.two_theta[i])  # lines that may be this line's satellite
        distance = np.abs(components - x)
        if ((distance < np.maximum(width, peaks.fwhm[:, None])).any(axis=1) & ~own).any():
            continue  # another line on the position: the satellite cannot be measured
        inside = np.abs(t - x) <= half
        if np.count_nonzero(inside) < 8:
            continue
        # Lines whose tails reach into the window are fitted with it (their positions and widths as found).
        near = np.flatnonzero((distance < half + 3.0 * peaks.fwhm[:, None]).any(axis=1) & ~own)
        columns = [np.ones(np.count_nonzero(inside)), t[inside] - x, pseudo_voigt(t[inside] - x, width, 0.5)]
        for k in near:
            offsets = t[inside][:, None] - components[k][None, :]
            columns.append(pseudo_voigt(offsets, peaks.fwhm[k], 0.5) @ line_weights)
        design = np.column_stack(columns)
        weight = 1.0 / sigma[inside]
        solution, residual, rank, _ = np.linalg.lstsq(design * weight[:, None], net[inside] * weight, rcond=None)
        if rank < design.shape[1]:
            continue
        dof = max(len(weight) - design.shape[1], 1)
        chi2 = float(residual[0]) / dof if len(residual) else 1.0
        counting = math.sqrt(np.linalg.inv((design * weight[:, None]).T @ (design * weight[:, None]))[2, 2])
        ratios.append(solution[2] / peaks.intensity[i])
        esds.append((counting / peaks.intensity[i], counting * math.sqrt(max(chi2, 1.0)) / peaks.intensity[i]))
    if len(ratios) < 2:
        return KBetaRatio(0.0, math.inf, 0)
    # Without the line that speaks most for Kβ: one reflection of the sample's own at one Kβ position, that of the
    # strongest line, which weighs most, is not evidence enough.
    ratios, esds = np.array(ratios), np.array(esds)
    keep = np.arange(len(ratios)) != int(np.argmax(ratios / esds[:, 1]))
    ratios, esds = ratios[keep], esds[keep]
    # Median weights from the counting statistics alone: a strong satellite fitted with the parent's width and a
    # fixed shape leaves a χ² well above 1, which must not hand the median to the windows without one.
    weights = 1.0 / esds[:, 0] ** 2
    order = np.argsort(ratios)
    cumulative = np.cumsum(weights[order])
    median = float(ratios[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])
    return KBetaRatio(median, 1.25 / math.sqrt(float(np.sum(1.0 / esds[:, 1] ** 2))), len(ratios) + 1)


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
