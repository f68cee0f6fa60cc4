"""Peak search on a measured powder profile: the line positions (with esds) that indexing starts from.

0. Noise: the thresholds below are in esds of the profile, so σ is first scaled up to the profile's
   point-to-point scatter where the points scatter more than σ says (:mod:`gasolve.diffraction.noise`): a
   normalised pattern's σ = √y depends on its arbitrary scale (``calibrate_noise``).
1. Background: SNIP, the statistics-sensitive non-linear iterative peak-clipping of Ryan, Clayton, Griffin, Sie &
   Cousens, Nucl. Instrum. Methods B 34 (1988) 396, on the log-log-square-root (LLS) transformed profile, with
   the clipping window growing from 1 to m points as in Morháč & Matoušek, Appl. Spectrosc. 62 (2008) 91
   (their eqs. 3-5). The profile is smoothed over about one FWHM first (Savitzky-Golay), so that clipping does
   not follow the lower envelope of the noise; what bias remains is taken up by a local constant and slope in
   each fit window.
2. Candidates: ``scipy.signal.find_peaks`` on the background-subtracted profile smoothed by a Savitzky-Golay
   filter, keeping maxima whose height and prominence both exceed ``min_significance`` times the standard
   uncertainty of the smoothed profile (propagated from the pattern's σ through the filter coefficients).
   With a Kα1+Kα2 doublet the search runs on the Kα1 profile from Rachinger's stripping (W. A. Rachinger,
   J. Sci. Instrum. 25 (1948) 254: y₁(2θ) = y(2θ) - Σ_j w_j y₁(2θ'_j), 2θ'_j the Kα1 angle whose line j falls at
   2θ, computed from low to high angle), so that Kα2 components give no maxima and a line hidden under another's
   Kα2 shows its own; a candidate that still sits on the Kα2 position of a stronger one and is lower than
   ``ghost_ratio`` of its height is taken for a stripping residue. The stripped profile holds only the Kα1 share
   w₁ / Σw of each line (2/3 for Cu Kα1+Kα2): when fewer than ``wanted_lines`` maxima reach the threshold, the
   maxima are taken again at that share of it, since a line is as significant as all its components, which the
   area test of step 3 checks. Held to the whole threshold, a noisy measured RRUFF pattern (σ from the scatter
   16 times √y) kept 2 of its 8 clear lines. Patterns with enough strong lines keep the stricter threshold.
3. Positions: candidates whose fit windows (``window_fwhm`` FWHM either side) overlap are fitted together by
   ``scipy.optimize.least_squares`` (weights 1/σ²): per peak the Kα1 position, area, FWHM and Lorentzian fraction
   of a unit-area pseudo-Voigt (:func:`gasolve.diffraction.profile.pseudo_voigt`), each further line of the
   radiation at 2θ_j = 2 arcsin((λ_j/λ_1) sin θ_1) with the same shape and its fixed relative weight, plus a
   constant and a slope per window. The esd of a position is the square root of the diagonal of
   (JᵀJ)⁻¹ χ²_ν (J the Jacobian of the weighted residuals, χ²_ν the reduced chi² of the window).
   Fitted peaks whose area is less than ``min_area_significance`` esds (the esd with the peak shape held at the
   fit, as a matched filter's; divided by the Kα1 share for a line only the lowered threshold of step 2 let in)
   are dropped, and so are noise spikes: peaks narrower than half the typical FWHM
   *and* than ``spike_steps`` steps of the pattern. The typical FWHM comes from the smoothed profile before the
   Kα2 is stripped and includes clusters of lines, so on patterns whose lines vary in width it can be twice a
   sharp line's: a measured RRUFF mineral pattern (../shared/data/rruff-dev, 0.01° steps) has single lines of
   0.04° beside clusters of 0.2°, and the width test alone dropped its second strongest line (area 47 esds, 4
   points wide). A spike is one or two points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize
import scipy.signal
from threadpoolctl import threadpool_limits

from gasolve.diffraction.noise import NoiseModel, noise_model
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.indexing.kbeta import KBetaSettings, flag_kbeta
from gasolve.io.patterns import ObservedPattern

_LN2 = math.log(2.0)
_GAUSS_NORM = math.sqrt(_LN2 / math.pi)


@dataclass(frozen=True)
class PeakSet:
    """Lines found in a pattern, sorted by 2θ.

    Attributes
    ----------
    two_theta : ndarray, shape (n_peaks,)
        Position of the Kα1 (primary) component (degrees), as measured (no zero correction).
    two_theta_esd : ndarray, shape (n_peaks,)
        Its standard uncertainty (degrees).
    intensity : ndarray, shape (n_peaks,)
        Integrated intensity of the primary component above the background (pattern units × degrees).
    fwhm : ndarray, shape (n_peaks,)
        Full width at half maximum of each component (degrees).
    kbeta_of : ndarray, shape (n_peaks,), optional
        For a line taken for the Kβ satellite of a stronger line (:func:`gasolve.indexing.kbeta.flag_kbeta`), the
        2θ of that parent line (degrees); NaN for the others (all NaN when not given).
    noise_inflation : float
        Median factor (≥ 1) by which the search scaled the pattern's σ to its point-to-point scatter
        (:func:`gasolve.diffraction.noise.noise_model`); 1 when σ described the scatter or was taken as given.
    """

    two_theta: np.ndarray
    two_theta_esd: np.ndarray
    intensity: np.ndarray
    fwhm: np.ndarray
    kbeta_of: np.ndarray | None = None
    noise_inflation: float = 1.0

    def __post_init__(self) -> None:
        if self.kbeta_of is None:
            object.__setattr__(self, "kbeta_of", np.full(np.size(self.two_theta), np.nan))
        arrays = [np.array(getattr(self, name), dtype=float).reshape(-1) for name in _PEAK_FIELDS]
        if len({len(a) for a in arrays}) != 1:
            raise ValueError("PeakSet arrays differ in length")
        order = np.argsort(arrays[0], kind="stable")
        for name, array in zip(_PEAK_FIELDS, arrays, strict=True):
            array = array[order]
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def n_peaks(self) -> int:
        return len(self.two_theta)

    def blend_tolerance(self, window: int = 9, min_excess: float = 1.15) -> np.ndarray:
        """:func:`blend_tolerance` of these lines (degrees), shape (n_peaks,)."""
        return blend_tolerance(self.fwhm, window, min_excess)

    @property
    def kbeta(self) -> np.ndarray:
        """Lines taken for Kβ satellites, shape (n_peaks,), bool."""
        return np.isfinite(self.kbeta_of)

    def q_values(
        self, wavelength: float, zero: float = 0.0, n_sigma: float = 1.0, min_tolerance: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Q = 1/d² of each line and its tolerance, for indexing.

        Parameters
        ----------
        wavelength : float
            Primary wavelength λ (Å).
        zero : float
            Zero shift (degrees): the Bragg angle is 2θ - zero.
        n_sigma : float
            The tolerance in 2θ is ``max(n_sigma * esd, min_tolerance)`` ...
        min_tolerance : float or ndarray (n_peaks,)
            ... so that a floor (degrees) can stand for systematic errors that the esd does not carry (one per line:
            :meth:`blend_tolerance` for the lines that blend reflections).

        Returns
        -------
        q : ndarray, shape (n_peaks,)
            Q = (2 sin θ / λ)² (Å⁻²).
        q_tolerance : ndarray, shape (n_peaks,)
            |dQ/d(2θ)| times the 2θ tolerance: (2 sin 2θ / λ²)(π/180) Δ2θ (Å⁻²).
        """
        if not (math.isfinite(wavelength) and wavelength > 0):
            raise InputError(f"wavelength must be a positive number of Å, got {wavelength}")
        theta = np.radians(self.two_theta - zero) / 2.0
        q = (2.0 * np.sin(theta) / wavelength) ** 2
        tolerance = np.maximum(n_sigma * self.two_theta_esd, min_tolerance)
        q_tolerance = 2.0 * np.abs(np.sin(2.0 * theta)) / wavelength**2 * np.radians(tolerance)
        return q, q_tolerance


_PEAK_FIELDS = ("two_theta", "two_theta_esd", "intensity", "fwhm", "kbeta_of")


@dataclass(frozen=True)
class PeakSearchSettings:
    """Settings of :func:`search_peaks`.

    Attributes
    ----------
    min_significance : float
        A candidate's smoothed net height and prominence must exceed this many σ of the smoothed profile.
    min_area_significance : float
        A fitted peak's area must exceed this many esds.
    background_window : float
        SNIP's largest clipping half-window (degrees 2θ); wider than the widest peak cluster, narrower than
        background features.
    window_fwhm : float
        Fit window: this many FWHM either side of a peak (and of its last Kα2 component).
    ghost_ratio : float
        After stripping, a candidate at the Kα2 position of a stronger one is a residue of the Kα2 (not a line)
        when lower than this fraction of its height.
    max_group : int
        Peaks fitted together at most; larger clusters are split at their widest gaps.
    spike_steps : float
        A fitted peak narrower than half the typical FWHM is a noise spike only when it is also narrower than this
        many steps of the pattern.
    calibrate_noise : bool
        Scale σ up to the profile's point-to-point scatter when the points scatter more than σ says
        (:mod:`gasolve.diffraction.noise`): a normalised pattern's √y depends on its arbitrary scale. False trusts σ.
    fwhm : float or None
        Typical FWHM (degrees) if known; estimated from the pattern when None.
    kbeta : KBetaSettings or None
        How Kβ satellites of a laboratory radiation are flagged (:mod:`gasolve.indexing.kbeta`); None flags none.
    wanted_lines : int
        With a multiplet radiation (Kα1+Kα2), when fewer Kα1 maxima than this reach ``min_significance``, the
        maxima are taken at the Kα1 share of it (module docstring, step 2): the lines indexing asks for
        (20, as de Wolff's M20), from a noisy pattern. 0 never.

    Notes
    -----
    The default thresholds (6 σ, 5 esds) favour indexing, which suffers more from a false line than from a missing
    weak one: on the measured LaB6 (NIST 660c) pattern, 4 σ and 3 esds reported 44 lines for its 20 distinct
    lines in 15-125° (the others: Kβ lines, asymmetric tails, noise), these defaults the 20 and 2 others.
    """

    min_significance: float = 6.0
    min_area_significance: float = 5.0
    background_window: float = 1.5
    window_fwhm: float = 3.0
    ghost_ratio: float = 0.3
    max_group: int = 10
    spike_steps: float = 3.0
    calibrate_noise: bool = True
    fwhm: float | None = None
    kbeta: KBetaSettings | None = field(default_factory=KBetaSettings)
    wanted_lines: int = 20

    def __post_init__(self) -> None:
        names = ("min_significance", "min_area_significance", "background_window", "window_fwhm", "ghost_ratio")
        for name in (*names, "spike_steps"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"peak search setting {name} must be a positive number, got {value}")
        if int(self.max_group) < 1:
            raise InputError(f"peak search setting max_group must be at least 1, got {self.max_group}")
        if int(self.wanted_lines) < 0:
            raise InputError(f"peak search setting wanted_lines must be 0 or more, got {self.wanted_lines}")
        if self.fwhm is not None and not (math.isfinite(self.fwhm) and self.fwhm > 0):
            raise InputError(f"peak search setting fwhm must be a positive number of degrees, got {self.fwhm}")


def blend_tolerance(fwhm: np.ndarray, window: int = 9, min_excess: float = 1.15) -> np.ndarray:
    """2θ tolerance (degrees) that a line wider than its neighbours needs: an unresolved blend of reflections.

    One peak fitted to two reflections a distance δ apart lies between them, up to δ/2 from the nearer. Its width
    tells δ: profiles of width w whose centres spread by δ blend into a width of about √(w² + (2√(2 ln 2) δ/2)²)
    (Gaussian variances add), so δ/2 ≈ √(FWHM² - w²) / (2√(2 ln 2)). The expected width w is the median FWHM of
    the ``window`` lines nearest in 2θ order (the lines of a pattern share a slowly varying width; blends are a
    minority). Lines within ``min_excess`` of it get 0 (their width is the noise of the fit). Simulated LiV5O10:
    the lines at 18.17, 24.08, 33.76 and 36.72° are 0.17-0.27° wide among lines of 0.15-0.16° and lie 0.025-0.066°
    from their reflections (tolerances 0.036-0.095° here), where the search allowed 0.02°.

    Parameters
    ----------
    fwhm : ndarray, shape (n_lines,)
        The fitted FWHM of each line (degrees), the lines in 2θ order.
    window : int
        Lines whose median width is the expected one (odd, >= 1).
    min_excess : float
        Ratio to that width below which a line counts as single (>= 1).

    Returns
    -------
    ndarray, shape (n_lines,)
        Degrees, >= 0.

    Raises
    ------
    ValueError
        For a window below 1 or a ratio below 1.
    """
    if window < 1 or min_excess < 1.0:
        raise ValueError(f"blend_tolerance needs window >= 1 and min_excess >= 1, got {window}, {min_excess}")
    fwhm = np.asarray(fwhm, dtype=float)
    n = len(fwhm)
    half = window // 2
    typical = np.array([np.median(fwhm[max(0, i - half) : i + half + 1]) for i in range(n)])
    blended = fwhm >= min_excess * typical
    excess = np.sqrt(np.maximum(fwhm**2 - typical**2, 0.0)) / (2.0 * math.sqrt(2.0 * _LN2))
    return np.where(blended, excess, 0.0)


def snip_background(y: np.ndarray, half_window: int) -> np.ndarray:
    """SNIP background of a profile (Ryan et al. 1988; Morháč & Matoušek 2008, increasing window).

    Parameters
    ----------
    y : ndarray, shape (n_points,)
        Profile (counts); a profile with negative values is shifted up by its minimum for the LLS transform.
    half_window : int
        Largest clipping half-window m (points).

    Returns
    -------
    ndarray, shape (n_points,)
        Background, ≤ ``y`` everywhere (clipping only lowers the transformed profile).
    """
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
    offset = min(0.0, float(y.min()))
    v = np.log(np.log(np.sqrt(y - offset + 1.0) + 1.0) + 1.0)
    n = len(v)
    for p in range(1, min(int(half_window), (n - 1) // 2) + 1):
        mean = 0.5 * (v[: n - 2 * p] + v[2 * p :])
        np.minimum(v[p : n - p], mean, out=v[p : n - p])
    return (np.exp(np.exp(v) - 1.0) - 1.0) ** 2 - 1.0 + offset


def rachinger_strip(two_theta: np.ndarray, y: np.ndarray, ratios: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Primary-line profile of a multi-line pattern (Rachinger 1948; module docstring).

    Parameters
    ----------
    two_theta : ndarray, shape (n_points,)
        Increasing 2θ (degrees).
    y : ndarray, shape (n_points,)
        Background-subtracted profile.
    ratios, weights : ndarray, shape (n_lines,)
        λ_j / λ_1 and relative intensity of each line; the first line is the primary one (ratio 1, weight 1).

    Returns
    -------
    ndarray, shape (n_points,)
        y₁ with y = Σ_j w_j y₁(2θ'_j) (linear interpolation between grid points; zero below the grid).
    """
    two_theta = np.asarray(two_theta, dtype=float)
    y1 = np.array(y, dtype=float)
    if len(ratios) < 2:
        return y1
    n = len(two_theta)
    sources = []
    for ratio, weight in zip(ratios[1:], weights[1:], strict=True):
        source = np.degrees(2.0 * np.arcsin(np.sin(np.radians(two_theta) / 2.0) / ratio))
        index = np.searchsorted(two_theta, source, side="right") - 1  # two_theta[index] <= source
        fraction = np.zeros(n)
        valid = (index >= 0) & (index < n - 1)
        i = index[valid]
        fraction[valid] = (source[valid] - two_theta[i]) / (two_theta[i + 1] - two_theta[i])
        sources.append((index, fraction, float(weight)))
    for i in range(n):
        value = y1[i]
        divisor = 1.0
        for index, fraction, weight in sources:
            j = index[i]
            if j < 0:
                continue
            value -= weight * (1.0 - fraction[i]) * y1[j]
            if j + 1 < i:
                value -= weight * fraction[i] * y1[j + 1]
            else:  # the source lies between the previous point and this one: solve for y₁[i]
                divisor += weight * fraction[i]
        y1[i] = value / divisor
    return y1


def _line_ratios(radiation: Radiation) -> tuple[np.ndarray, np.ndarray]:
    lines = np.array(radiation.lines, dtype=float)
    return lines[:, 0] / lines[0, 0], lines[:, 1]


def _component_positions(position: np.ndarray, ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2θ of every line (shape (..., n_lines)) and d2θ_j/d2θ_1 from the Kα1 position(s) (degrees)."""
    half = np.radians(np.asarray(position, dtype=float))[..., None] / 2.0
    sine = np.clip(ratios * np.sin(half), -1.0, 1.0 - 1e-12)
    positions = np.degrees(2.0 * np.arcsin(sine))
    derivative = ratios * np.cos(half) / np.sqrt(1.0 - sine**2)
    return positions, derivative


def _pv_and_derivatives(x: np.ndarray, fwhm: float, eta: float):
    """Unit-area pseudo-Voigt at offsets x and its derivatives by position (= -d/dx), FWHM and η."""
    z = (2.0 * x / fwhm) ** 2
    gauss = (2.0 / fwhm) * _GAUSS_NORM * np.exp(-_LN2 * z)
    lorentz = (2.0 / (math.pi * fwhm)) / (1.0 + z)
    value = eta * lorentz + (1.0 - eta) * gauss
    d_position = (8.0 * x / fwhm**2) * (eta * lorentz / (1.0 + z) + (1.0 - eta) * _LN2 * gauss)
    d_fwhm = (eta * lorentz * (2.0 * z / (1.0 + z) - 1.0) + (1.0 - eta) * gauss * (2.0 * _LN2 * z - 1.0)) / fwhm
    return value, d_position, d_fwhm, lorentz - gauss


def _group_model(params: np.ndarray, t: np.ndarray, centre: float, ratios: np.ndarray, weights: np.ndarray):
    """Model of one window and its Jacobian; params = [b0, b1, (position, area, fwhm, eta) per peak]."""
    n_peaks = (len(params) - 2) // 4
    peaks = params[2:].reshape(n_peaks, 4)
    area, fwhm, eta = peaks[:, 1, None], peaks[:, 2, None], peaks[:, 3, None]
    positions, slopes = _component_positions(peaks[:, 0], ratios)  # (n_peaks, n_lines)
    value, d_pos, d_fwhm, d_eta = _pv_and_derivatives(t[:, None, None] - positions, fwhm, eta)
    jac = np.empty((len(t), len(params)))
    jac[:, 0] = 1.0
    jac[:, 1] = t - centre
    shape = value @ weights  # (n_points, n_peaks)
    jac[:, 2::4] = area[:, 0] * ((d_pos * slopes) @ weights)
    jac[:, 3::4] = shape
    jac[:, 4::4] = area[:, 0] * (d_fwhm @ weights)
    jac[:, 5::4] = area[:, 0] * (d_eta @ weights)
    model = params[0] + params[1] * (t - centre) + shape @ area[:, 0]
    return model, jac


@dataclass(frozen=True)
class _Fit:
    position: np.ndarray
    position_esd: np.ndarray
    area: np.ndarray
    area_esd: np.ndarray
    fwhm: np.ndarray


def _fit_group(
    t: np.ndarray,
    net: np.ndarray,
    sigma: np.ndarray,
    position: np.ndarray,
    height: np.ndarray,
    fwhm: np.ndarray,
    ratios: np.ndarray,
    weights: np.ndarray,
) -> _Fit:
    """Least-squares fit of one window's peaks (module docstring, step 3)."""
    centre = float(t.mean())
    n_peaks = len(position)
    start = np.empty(2 + 4 * n_peaks)
    lower = np.full_like(start, -np.inf)
    upper = np.full_like(start, np.inf)
    start[:2] = 0.0
    peaks = np.column_stack(
        [position, 1.2 * np.maximum(height, 0.0) * fwhm / weights.sum(), fwhm, np.full(n_peaks, 0.5)]
    )
    start[2:] = peaks.reshape(-1)
    lower[2:] = np.column_stack([position - 0.5 * fwhm, np.zeros(n_peaks), 0.4 * fwhm, np.zeros(n_peaks)]).reshape(-1)
    upper[2:] = np.column_stack(
        [position + 0.5 * fwhm, np.full(n_peaks, np.inf), 3.0 * fwhm, np.ones(n_peaks)]
    ).reshape(-1)
    start = np.clip(start, lower, upper)

    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def evaluate(params):
        key = params.tobytes()
        if key not in cache:
            cache.clear()
            model, jac = _group_model(params, t, centre, ratios, weights)
            cache[key] = ((model - net) / sigma, jac / sigma[:, None])
        return cache[key]

    def residuals(params):
        return evaluate(params)[0]

    def jacobian(params):
        return evaluate(params)[1]

    result = scipy.optimize.least_squares(
        residuals, start, jac=jacobian, bounds=(lower, upper), x_scale="jac", max_nfev=100, ftol=1e-6, xtol=1e-6
    )
    dof = max(len(t) - len(start), 1)
    reduced_chi2 = 2.0 * result.cost / dof
    covariance = np.linalg.pinv(result.jac.T @ result.jac) * reduced_chi2
    esd = np.sqrt(np.maximum(np.diag(covariance), 0.0))[2:].reshape(n_peaks, 4)
    fitted = result.x[2:].reshape(n_peaks, 4)
    # Detection significance of an area: its esd with the shape held at the fit (the matched-filter esd);
    # the full esd also carries the FWHM and η, which a weak line does not determine.
    shape_norm = np.sqrt(np.sum(result.jac[:, 3::4] ** 2, axis=0))
    area_esd = np.sqrt(reduced_chi2) / np.maximum(shape_norm, 1e-300)
    return _Fit(fitted[:, 0], esd[:, 0], fitted[:, 1], area_esd, fitted[:, 2])


def _odd(n: float, minimum: int) -> int:
    n = max(round(n), minimum)
    return n if n % 2 else n + 1


def _smooth(y: np.ndarray, sigma: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Savitzky-Golay (quadratic) smoothing of y and the propagated σ."""
    if window < 3 or window >= len(y):
        return y.copy(), sigma.copy()
    coefficients = scipy.signal.savgol_coeffs(window, 2)
    smoothed = scipy.signal.savgol_filter(y, window, 2, mode="interp")
    variance = np.convolve(sigma**2, coefficients**2, mode="same")
    return smoothed, np.sqrt(np.maximum(variance, (sigma * np.abs(coefficients).max()) ** 2))


def _groups(lo: np.ndarray, hi: np.ndarray, position: np.ndarray, max_group: int) -> list[np.ndarray]:
    """Indices of candidates whose windows [lo, hi] overlap (sorted by position), split to at most max_group."""
    groups: list[list[int]] = []
    reach = -np.inf
    for i in np.argsort(position):
        if lo[i] > reach:
            groups.append([])
        groups[-1].append(int(i))
        reach = max(reach, hi[i])
    out: list[np.ndarray] = []
    stack = [np.array(g) for g in groups]
    while stack:
        group = stack.pop()
        if len(group) <= max_group:
            out.append(group)
            continue
        cut = int(np.argmax(np.diff(position[group]))) + 1
        stack.extend([group[:cut], group[cut:]])
    return sorted(out, key=lambda g: position[g[0]])


def search_peaks(pattern: ObservedPattern, radiation: Radiation, settings: PeakSearchSettings | None = None) -> PeakSet:
    """Find the lines of a powder pattern and refine their positions (module docstring).

    Parameters
    ----------
    pattern : ObservedPattern
        Measured profile: 2θ (degrees, increasing), y_obs and σ (n_points,).
    radiation : Radiation
        Its emission lines; with more than one (Kα1+Kα2), every peak is fitted as the multiplet and the Kα1
        position is reported.
    settings : PeakSearchSettings, optional

    Returns
    -------
    PeakSet
        Lines sorted by 2θ; empty when nothing is significant.
    """
    settings = settings or PeakSearchSettings()
    t, y, sigma = pattern.two_theta, pattern.y_obs, pattern.sigma
    if len(t) < 10:
        raise InputError(f"a peak search needs at least 10 points, the pattern has {len(t)}", pattern.source)
    noise = noise_model(y, sigma) if settings.calibrate_noise else NoiseModel()
    inflation_of_noise = noise.inflation(sigma)
    sigma = noise.sigma(sigma)
    step = float(np.median(np.diff(t)))
    ratios, weights = _line_ratios(radiation)
    k = settings.min_significance

    half_window = max(1, round(settings.background_window / step))
    net = y - snip_background(_smooth(y, sigma, 5)[0], half_window)

    # Typical FWHM from the clearly significant maxima of a lightly smoothed profile: those above 2k σ, else (a
    # pattern of few counts, where even the strongest line's points are not 2k σ each) those above k σ. A RRUFF
    # pattern rescaled from about 40 counts at its strongest point (σ from the scatter 16 times √y) has its
    # strongest line 8 σ high per smoothed point, and no line was found at all.
    if settings.fwhm is None:
        rough, rough_sigma = _smooth(net, sigma, 5)
        for bar in (2 * k, k):
            found, _ = scipy.signal.find_peaks(rough, height=bar * rough_sigma, prominence=bar * rough_sigma)
            if len(found):
                break
        if len(found) == 0:
            return _empty(inflation_of_noise)
        widths = scipy.signal.peak_widths(rough, found, rel_height=0.5)[0] * step
        typical = float(np.median(widths))
    else:
        typical = float(settings.fwhm)
    typical = max(typical, 2.0 * step)
    # Clipping follows the lower envelope of the noise: smoothing over about a FWHM first keeps that bias small.
    net = y - snip_background(_smooth(y, sigma, _odd(typical / step, 5))[0], half_window)

    # Stripping adds Σ_j w_j² of y₁'s variance again at each step: σ₁² = σ² / (1 - Σ_{j>1} w_j²) (w_j < 1).
    inflation = 1.0 / math.sqrt(max(1.0 - float(np.sum(weights[1:] ** 2)), 0.1))
    primary = rachinger_strip(t, net, ratios, weights)
    smoothed, smoothed_sigma = _smooth(primary, sigma * inflation, _odd(0.6 * typical / step, 5))
    threshold = k * smoothed_sigma
    candidates, properties = scipy.signal.find_peaks(smoothed, height=threshold, prominence=threshold)
    share = float(weights[0] / np.sum(weights))
    lowered = share < 1.0 and len(candidates) < settings.wanted_lines
    if lowered:
        # The stripped profile holds the Kα1 component alone, the share w₁ / Σw of each line; a line is as
        # significant as all its components, so its Kα1 maximum needs only that share of the threshold.
        candidates, properties = scipy.signal.find_peaks(
            smoothed, height=share * threshold, prominence=share * threshold
        )
    if len(candidates) == 0:
        return _empty(inflation_of_noise)
    height = properties["peak_heights"]
    widths = scipy.signal.peak_widths(smoothed, candidates, rel_height=0.5)[0] * step
    fwhm = np.clip(widths, 0.7 * typical, 4.0 * typical)
    position = t[candidates]

    if len(ratios) > 1:
        keep = np.ones(len(candidates), dtype=bool)
        ghost_of = _component_positions(position, ratios)[0][:, 1:]
        for i in np.argsort(-height):
            if not keep[i]:
                continue
            near = np.abs(position[:, None] - ghost_of[i][None, :]).min(axis=1) < 0.5 * fwhm[i]
            keep &= ~(near & (height < settings.ghost_ratio * height[i]))
        position, height, fwhm = position[keep], height[keep], fwhm[keep]

    last = _component_positions(position, ratios)[0][:, -1]
    lo = position - settings.window_fwhm * fwhm
    hi = last + settings.window_fwhm * fwhm
    results: list[_Fit] = []
    # The windows' matrices are small: threaded BLAS only adds overhead (tenfold on a busy machine).
    with threadpool_limits(limits=1):
        for group in _groups(lo, hi, position, int(settings.max_group)):
            inside = (t >= lo[group].min()) & (t <= hi[group].max())
            if np.count_nonzero(inside) <= 2 + 4 * len(group):
                continue
            results.append(
                _fit_group(
                    t[inside], net[inside], sigma[inside], position[group], height[group], fwhm[group], ratios, weights
                )
            )
    if not results:
        return _empty(inflation_of_noise)
    fitted = {name: np.concatenate([getattr(r, name) for r in results]) for name in _Fit.__dataclass_fields__}
    area_bar = np.full(len(fitted["area"]), settings.min_area_significance)
    if lowered:
        # A line that only the lowered threshold let in must pass an area test raised by the same factor: the fit
        # of a candidate placed at a maximum of the noise underrates its area's esd. Flat Poisson noise (Cu
        # Kα1+Kα2, 10-80°): a false line in 1 of 4 patterns at 5 esds, in 2 of 200 at 5 / share = 7.5 esds.
        at = np.clip(np.searchsorted(t, fitted["position"]), 0, len(t) - 1)
        weak = smoothed[at] < threshold[at]
        area_bar[weak] /= share
    significant = fitted["area"] > area_bar * fitted["area_esd"]
    significant &= (fitted["position"] >= t[0]) & (fitted["position"] <= t[-1])
    spike = (fitted["fwhm"] <= 0.5 * typical) & (fitted["fwhm"] <= settings.spike_steps * step)
    significant &= ~spike  # narrower than any line and only a point or two wide: a noise spike
    peaks = PeakSet(
        fitted["position"][significant],
        fitted["position_esd"][significant],
        fitted["area"][significant],
        fitted["fwhm"][significant],
        noise_inflation=inflation_of_noise,
    )
    return peaks if settings.kbeta is None else flag_kbeta(peaks, radiation, settings.kbeta, (t, net, sigma))


def _empty(noise_inflation: float = 1.0) -> PeakSet:
    return PeakSet(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), noise_inflation=noise_inflation)
