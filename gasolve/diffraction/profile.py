"""Peak profile: pseudo-Voigt with Caglioti width, and the sparse peak-shape matrix of a pattern.

pV(x) = η L(x) + (1 - η) G(x), both of unit area and the same FWHM H (degrees 2θ):
G(x) = (2/H) sqrt(ln 2 / π) exp(-4 ln 2 x² / H²),  L(x) = (2 / (π H)) / (1 + 4 x² / H²)
(Thompson, Cox & Hastings, J. Appl. Cryst. 20 (1987) 79 use the same mixing with a common width).
H² = U tan² θ + V tan θ + W (Caglioti, Paoletti & Ricci, Nucl. Instrum. 3 (1958) 223), degrees².
η(2θ) = eta + eta_slope · 2θ (2θ in degrees). Each peak is cut off at ``cutoff`` FWHM either side.

With ``lorentzian = (X, Y)`` the profile is instead the Thompson-Cox-Hastings pseudo-Voigt (J. Appl. Cryst. 20
(1987) 79; GSAS's and FullProf's usual shape): a Gaussian of FWHM H_G, H_G² = U tan² θ + V tan θ + W, and a
Lorentzian of FWHM H_L = X / cos θ + Y tan θ (size and strain broadening), combined into the pseudo-Voigt whose
FWHM and η approximate their convolution (a Voigt):
H⁵ = H_G⁵ + 2.69269 H_G⁴ H_L + 2.42843 H_G³ H_L² + 4.47163 H_G² H_L³ + 0.07842 H_G H_L⁴ + H_L⁵,
η = 1.36603 q - 0.47719 q² + 0.11116 q³ with q = H_L / H. ``eta`` and ``eta_slope`` are then not used.

Axial divergence follows Finger, Cox & Jephcoat, J. Appl. Cryst. 27 (1994) 892 with S/L = H/L = ``axial``
(GSAS-II's single SH/L): the peak is the pseudo-Voigt convolved with the weight W(2φ) ∝ (2 SH/L - h) / (h |cos 2φ|),
h = sqrt(cos² 2φ / cos² 2θ - 1), for 2φ between 2φ_min (cos 2φ_min = cos 2θ sqrt(1 + (2 SH/L)²)) and 2θ; the
integral is a Gauss-Legendre sum in u with 2θ - 2φ ∝ u², which removes the 1/sqrt singularity at 2θ.
An empirical asymmetry follows Bérar & Baldinozzi, J. Appl. Cryst. 26 (1993) 128, as in FullProf:
the profile is multiplied by A(z) = 1 + (P1 Fa(z) + P2 Fb(z)) / tan θ with z = (2θ - 2θ_peak) / H,
Fa(z) = 2 z exp(-z²) and Fb(z) = 2 (2z² - 3) Fa(z). Both are odd in z, so the peak keeps its area.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from gasolve.diffraction.intensity import lorentz_polarisation
from gasolve.diffraction.peak_kernels import add_line_values_batch, no_axial_nodes
from gasolve.diffraction.reflections import ReflectionList
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class PeakProfile:
    """Instrument profile parameters.

    Attributes
    ----------
    caglioti : (U, V, W)
        Caglioti coefficients, degrees² (2θ). A constant FWHM H is U = V = 0, W = H².
    eta : float
        Lorentzian fraction of the pseudo-Voigt at 2θ = 0.
    eta_slope : float
        Change of η per degree 2θ.
    zero : float
        Zero shift (degrees): a peak at Bragg angle 2θ_B appears at 2θ_B + zero.
    cutoff : float
        Peak tails are cut at this many FWHM from the peak centre.
    monochromator_two_theta : float
        Monochromator angle 2θ_M (degrees) in the Lorentz-polarisation factor; 0 for none.
    polarisation : float or None
        Fraction of the beam polarised perpendicular to the diffraction plane (GSAS-II's "Polariz."; 0.5 for
        an unpolarised beam, about 0.99 at a synchrotron), used instead of ``monochromator_two_theta``; None
        for the monochromator form (:func:`gasolve.diffraction.intensity.lorentz_polarisation`).
    asymmetry : (P1, P2)
        Bérar-Baldinozzi asymmetry coefficients (dimensionless; module docstring); (0, 0) for symmetric peaks.
    displacement : float
        Specimen displacement shift (degrees): a peak moves by ``displacement`` · cos θ, the Bragg-Brentano
        shift -2 s cos θ / R (radians) of a specimen displaced by s from the goniometer axis of radius R.
    axial : float
        Finger-Cox-Jephcoat axial divergence SH/L (S/L = H/L, dimensionless); 0 for none.
    lorentzian : (X, Y) or None
        Thompson-Cox-Hastings Lorentzian widths (degrees 2θ): H_L = X / cos θ + Y tan θ, with ``caglioti`` the
        Gaussian's (module docstring); None for the pseudo-Voigt of one width and η = eta + eta_slope · 2θ.
    """

    caglioti: tuple[float, float, float] = (0.0, 0.0, 0.01)
    eta: float = 0.5
    eta_slope: float = 0.0
    zero: float = 0.0
    cutoff: float = 15.0
    monochromator_two_theta: float = 0.0
    polarisation: float | None = None
    asymmetry: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    displacement: float = 0.0
    axial: float = 0.0
    lorentzian: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.caglioti) != 3 or not all(math.isfinite(float(x)) for x in self.caglioti):
            raise InputError(f"caglioti must be three numbers [U, V, W] (degrees²), got {self.caglioti!r}")
        object.__setattr__(self, "caglioti", tuple(float(x) for x in self.caglioti))
        if len(self.asymmetry) != 4 or not all(math.isfinite(float(x)) for x in self.asymmetry):
            raise InputError(f"asymmetry must be four numbers [P1, P2, P3, P4], got {self.asymmetry!r}")
        object.__setattr__(self, "asymmetry", tuple(float(x) for x in self.asymmetry))
        for name in ("eta", "eta_slope", "zero", "cutoff", "monochromator_two_theta", "displacement", "axial"):
            if not math.isfinite(float(getattr(self, name))):
                raise InputError(f"profile parameter {name} must be a finite number")
        if self.cutoff <= 0:
            raise InputError(f"peak cutoff must be positive (FWHM units), got {self.cutoff}")
        if self.polarisation is not None:
            if not 0.0 < float(self.polarisation) <= 1.0:
                raise InputError(f"beam polarisation must be a fraction in (0, 1], got {self.polarisation}")
            if self.monochromator_two_theta:
                raise InputError("give the beam polarisation or the monochromator angle, not both")
        if not 0 <= self.axial < 0.5:
            raise InputError(f"axial divergence SH/L must be in [0, 0.5), got {self.axial}")
        if self.lorentzian is not None:
            if len(self.lorentzian) != 2 or not all(math.isfinite(float(x)) for x in self.lorentzian):
                raise InputError(f"lorentzian must be two numbers [X, Y] (degrees), got {self.lorentzian!r}")
            object.__setattr__(self, "lorentzian", tuple(float(x) for x in self.lorentzian))

    @property
    def tch(self) -> bool:
        """Whether this is the Thompson-Cox-Hastings pseudo-Voigt (``lorentzian`` given)."""
        return self.lorentzian is not None

    @classmethod
    def constant_fwhm(cls, fwhm: float, **kwargs) -> PeakProfile:
        """Profile with the same FWHM (degrees 2θ) at every angle."""
        if not math.isfinite(fwhm) or fwhm <= 0:
            raise InputError(f"fwhm must be a positive number of degrees, got {fwhm}")
        return cls(caglioti=(0.0, 0.0, fwhm * fwhm), **kwargs)

    def fwhm(self, two_theta: np.ndarray) -> np.ndarray:
        """FWHM (degrees) at Bragg angles ``two_theta`` (degrees)."""
        if self.tch:
            return self.tch_widths(two_theta)[0]
        return self.gaussian_fwhm(two_theta)

    def gaussian_fwhm(self, two_theta: np.ndarray) -> np.ndarray:
        """sqrt(U tan² θ + V tan θ + W) (degrees) at ``two_theta`` (degrees): the FWHM of the pseudo-Voigt of one
        width, or the Gaussian FWHM H_G of the Thompson-Cox-Hastings profile; InputError where it is not real."""
        u, v, w = self.caglioti
        tan_theta = np.tan(np.radians(np.asarray(two_theta, dtype=float)) / 2.0)
        h2 = u * tan_theta**2 + v * tan_theta + w
        if np.any(h2 <= 0):
            bad = float(np.asarray(two_theta).reshape(-1)[np.argmin(h2.reshape(-1))])
            raise InputError(
                f"Caglioti U={u}, V={v}, W={w} give a non-positive FWHM² at 2θ = {bad:.2f}°; "
                "U tan²θ + V tanθ + W must be positive over the whole range"
            )
        return np.sqrt(h2)

    def lorentzian_fwhm(self, two_theta: np.ndarray) -> np.ndarray:
        """H_L = X / cos θ + Y tan θ (degrees) of the Thompson-Cox-Hastings profile at ``two_theta`` (degrees);
        InputError where it is negative."""
        x, y = self.lorentzian
        theta = np.radians(np.asarray(two_theta, dtype=float)) / 2.0
        h_l = x / np.cos(theta) + y * np.tan(theta)
        if np.any(h_l < 0):
            bad = float(np.asarray(two_theta).reshape(-1)[np.argmin(h_l.reshape(-1))])
            raise InputError(
                f"Lorentzian X={x}, Y={y} give a negative width X/cos θ + Y tan θ at 2θ = {bad:.2f}°; "
                "it must be >= 0 over the whole range"
            )
        return h_l

    def tch_widths(self, two_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """FWHM H, η, H_G and H_L (degrees) of the Thompson-Cox-Hastings profile at ``two_theta`` (module
        docstring)."""
        h_g = self.gaussian_fwhm(two_theta)
        h_l = self.lorentzian_fwhm(two_theta)
        h, eta = tch_combination(h_g, h_l)
        return h, eta, h_g, h_l

    def eta_at(self, two_theta: np.ndarray) -> np.ndarray:
        if self.tch:
            return self.tch_widths(two_theta)[1]
        eta = self.eta + self.eta_slope * np.asarray(two_theta, dtype=float)
        if np.any((eta < 0) | (eta > 1)):
            raise InputError(
                f"pseudo-Voigt mixing η = {self.eta} + {self.eta_slope}·2θ leaves [0, 1] inside the pattern range"
            )
        return eta


#: Thompson-Cox-Hastings coefficients of H⁵ (H_G⁵ ... H_L⁵) and of η in q = H_L / H (module docstring).
TCH_WIDTH = (1.0, 2.69269, 2.42843, 4.47163, 0.07842, 1.0)
TCH_ETA = (1.36603, -0.47719, 0.11116)


def tch_combination(h_g: np.ndarray, h_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pseudo-Voigt FWHM H and η of a Gaussian of FWHM ``h_g`` and a Lorentzian of FWHM ``h_l`` (degrees,
    broadcasting; Thompson, Cox & Hastings 1987)."""
    h_g, h_l = np.asarray(h_g, dtype=float), np.asarray(h_l, dtype=float)
    h = sum(c * h_g ** (5 - k) * h_l**k for k, c in enumerate(TCH_WIDTH)) ** 0.2
    q = h_l / h
    return h, TCH_ETA[0] * q + TCH_ETA[1] * q**2 + TCH_ETA[2] * q**3


def tch_partials(h_g: np.ndarray, h_l: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """∂H/∂H_G, ∂H/∂H_L, ∂η/∂H_G and ∂η/∂H_L of :func:`tch_combination` (analytic), broadcasting."""
    h_g, h_l = np.asarray(h_g, dtype=float), np.asarray(h_l, dtype=float)
    h, _ = tch_combination(h_g, h_l)
    dh_dg = sum(c * (5 - k) * h_g ** (4 - k) * h_l**k for k, c in enumerate(TCH_WIDTH) if k < 5) / (5.0 * h**4)
    dh_dl = sum(c * k * h_g ** (5 - k) * h_l ** (k - 1) for k, c in enumerate(TCH_WIDTH) if k > 0) / (5.0 * h**4)
    q = h_l / h
    deta_dq = TCH_ETA[0] + 2.0 * TCH_ETA[1] * q + 3.0 * TCH_ETA[2] * q**2
    dq_dg = -h_l / h**2 * dh_dg
    dq_dl = 1.0 / h - h_l / h**2 * dh_dl
    return dh_dg, dh_dl, deta_dq * dq_dg, deta_dq * dq_dl


def pseudo_voigt(x: np.ndarray, fwhm: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Unit-area pseudo-Voigt at offsets ``x`` (degrees) from the centre (broadcasting), per degree."""
    z = (2.0 * x / fwhm) ** 2
    gauss = (2.0 / fwhm) * math.sqrt(_LN2 / math.pi) * np.exp(-_LN2 * z)
    lorentz = (2.0 / (math.pi * fwhm)) / (1.0 + z)
    return eta * lorentz + (1.0 - eta) * gauss


def asymmetry_factor(z: np.ndarray, tan_theta: np.ndarray, asymmetry: tuple[float, float]) -> np.ndarray:
    """Bérar-Baldinozzi factor A(z) = 1 + (P1 Fa(z) + P2 Fb(z)) / tan θ (module docstring), broadcasting.

    Parameters
    ----------
    z : ndarray
        Offset from the peak centre in units of the FWHM.
    tan_theta : ndarray
        tan θ of the peak's Bragg angle.
    asymmetry : (P1, P2)
    """
    p1, p2, p3, p4 = asymmetry
    fa = 2.0 * z * np.exp(-z * z)
    fb = 2.0 * (2.0 * z * z - 3.0) * fa
    cot_two_theta = (1.0 - tan_theta * tan_theta) / (2.0 * tan_theta)
    return 1.0 + (p1 * fa + p2 * fb) / tan_theta + (p3 * fa + p4 * fb) * cot_two_theta


@dataclass(frozen=True)
class PeakMatrix:
    """Sparse peak-shape matrix P (n_points, n_refl) stored as one contiguous run of points per reflection.

    Column k holds m_k Σ_lines w_line LP(2θ_line) pV(2θ - 2θ_line) so that the peak part of a pattern is
    y = P |F|² (times the scale).

    Attributes
    ----------
    start : ndarray, shape (n_refl,), int64
        First pattern point of each column's run.
    length : ndarray, shape (n_refl,), int64
    offset : ndarray, shape (n_refl,), int64
        Where each run begins in ``values``.
    values : ndarray, shape (nnz,), float64
    n_points : int
    """

    start: np.ndarray
    length: np.ndarray
    offset: np.ndarray
    values: np.ndarray
    n_points: int

    @property
    def n_refl(self) -> int:
        return len(self.start)

    def to_sparse(self) -> scipy.sparse.csc_matrix:
        rows = np.concatenate([np.arange(s, s + n) for s, n in zip(self.start, self.length, strict=True)])
        indptr = np.concatenate([[0], np.cumsum(self.length)])
        return scipy.sparse.csc_matrix((self.values, rows, indptr), shape=(self.n_points, self.n_refl))

    def dense(self) -> np.ndarray:
        return self.to_sparse().toarray()


#: Gauss-Legendre nodes of the axial-divergence integral per FWHM of its span (6 keeps the peak within 1e-4 of
#: adaptive quadrature, tests/naive.py), and their bounds.
AXIAL_NODES_PER_FWHM = 6.0
AXIAL_NODES = (8, 64)


def axial_span(bragg: np.ndarray, sh_l: float) -> np.ndarray:
    """|2θ - 2φ_min| (degrees) of the axial-divergence weight of peaks at Bragg angles ``bragg`` (degrees)."""
    t0 = np.radians(np.asarray(bragg, dtype=float))
    t_min = np.arccos(np.clip(np.cos(t0) * math.sqrt(1.0 + (2.0 * sh_l) ** 2), -1.0, 1.0))
    return np.degrees(np.abs(t0 - t_min))


@functools.lru_cache(maxsize=64)
def _gauss_legendre(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1] (NumPy's), computed once per ``n_nodes``."""
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    nodes.flags.writeable = False
    weights.flags.writeable = False
    return nodes, weights


def axial_divergence(bragg: np.ndarray, sh_l: float, n_nodes: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Finger-Cox-Jephcoat axial divergence as a weighted sum of shifted peaks (module docstring).

    Parameters
    ----------
    bragg : ndarray, shape (n_refl,)
        Bragg angles 2θ (degrees).
    sh_l : float
        S/L = H/L.
    n_nodes : int

    Returns
    -------
    shifts : ndarray, shape (n_refl, n_nodes)
        Where each component sits relative to the peak (degrees 2θ; negative below 90°, positive above).
    weights : ndarray, shape (n_refl, n_nodes)
        Non-negative, summing to 1 per reflection.
    """
    t0 = np.radians(np.asarray(bragg, dtype=float))[:, None]
    c0 = np.cos(t0)
    c0 = np.where(np.abs(c0) < 1e-9, 1e-9, c0)
    t_min = np.arccos(np.clip(c0 * math.sqrt(1.0 + (2.0 * sh_l) ** 2), -1.0, 1.0))
    span = np.abs(t0 - t_min)
    nodes, gauss = _gauss_legendre(n_nodes)
    u = 0.5 * (nodes + 1.0)
    delta = span * u**2
    t = t0 - np.sign(c0) * delta
    h = np.sqrt(np.maximum(np.cos(t) ** 2 / c0**2 - 1.0, 1e-300))
    density = np.maximum(2.0 * sh_l - h, 0.0) / (h * np.abs(np.cos(t)))
    weights = density * 2.0 * span * u * (0.5 * gauss)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / n_nodes)
    return -np.sign(c0) * np.degrees(delta), weights


def peak_lines(
    reflections: ReflectionList, radiation: Radiation, profile: PeakProfile
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per emission line: peak centre (2θ, degrees), FWHM, η and weight × LP, each shape (n_refl,)."""
    lines = []
    for wavelength, weight in radiation.lines:
        bragg = reflections.two_theta(wavelength)
        valid = wavelength / (2.0 * reflections.d_spacing) < 1.0
        bragg = np.where(valid, bragg, 180.0)
        centre = bragg + profile.zero + profile.displacement * np.cos(np.radians(bragg) / 2.0)
        safe = np.where(valid, bragg, 179.0)
        lp = np.where(valid, lorentz_polarisation(safe, profile.monochromator_two_theta, profile.polarisation), 0.0)
        # η of one width follows the peak centre; Thompson-Cox-Hastings' η comes with its widths at the Bragg angle
        if profile.tch:
            fwhm, eta = profile.tch_widths(safe)[:2]
        else:
            fwhm, eta = profile.fwhm(safe), profile.eta_at(np.where(valid, centre, 90.0))
        lines.append((centre, fwhm, eta, weight * lp))
    return lines


def peak_positions(reflections: ReflectionList, wavelength: float, profile: PeakProfile) -> np.ndarray:
    """Observed peak centres 2θ (degrees) of ``reflections`` at ``wavelength`` (Å): Bragg angle, zero shift and
    specimen displacement; shape (n_refl,)."""
    bragg = reflections.two_theta(wavelength)
    return bragg + profile.zero + profile.displacement * np.cos(np.radians(bragg) / 2.0)


def _compiled_from_cache() -> None:
    """Load the peak kernel from Numba's cache, as the scorer's kernels are (gasolve.scoring.kernel_cache)."""
    from gasolve.scoring.kernel_cache import ensure_cached

    ensure_cached()


def build_peak_matrix(
    two_theta: np.ndarray, reflections: ReflectionList, radiation: Radiation, profile: PeakProfile
) -> PeakMatrix:
    """Peak-shape matrix of ``reflections`` sampled at ``two_theta`` (degrees, increasing), shape (n_points,).

    All runs are evaluated at once on one flat array (reflection k owns ``values[offset[k]:offset[k] +
    length[k]]``), so that building the matrix is cheap enough to repeat inside a profile fit.
    """
    two_theta = np.asarray(two_theta, dtype=float)
    lines = peak_lines(reflections, radiation, profile)
    n_refl = len(reflections)
    lo = np.full(n_refl, np.inf)
    hi = np.full(n_refl, -np.inf)
    axial = []
    for (centre, fwhm, _, weight), (wavelength, _) in zip(lines, radiation.lines, strict=True):
        if profile.axial > 0:
            sin_theta = np.minimum(wavelength / (2.0 * reflections.d_spacing), 1.0)
            bragg = 2.0 * np.degrees(np.arcsin(sin_theta))
            ratio = float(np.max(np.where(weight > 0, axial_span(bragg, profile.axial) / fwhm, 0.0), initial=0.0))
            n_nodes = int(np.clip(math.ceil(AXIAL_NODES_PER_FWHM * ratio), *AXIAL_NODES))
            axial.append(axial_divergence(bragg, profile.axial, n_nodes))
            below, above = np.min(axial[-1][0], axis=1), np.max(axial[-1][0], axis=1)
        else:
            below = above = np.zeros(n_refl)
        active = weight > 0
        lo = np.where(active, np.minimum(lo, centre + below - profile.cutoff * fwhm), lo)
        hi = np.where(active, np.maximum(hi, centre + above + profile.cutoff * fwhm), hi)
    start = np.searchsorted(two_theta, lo, side="left")
    stop = np.searchsorted(two_theta, hi, side="right")
    length = np.maximum(stop - start, 0).astype(np.int64)
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    column = np.repeat(np.arange(n_refl), length)
    rows = np.arange(int(length.sum())) - offset[column] + start[column]
    x = two_theta[rows]
    values = np.zeros(len(rows))
    asymmetry = np.asarray(profile.asymmetry, dtype=float)
    _compiled_from_cache()
    for line, ((centre, fwhm, eta, weight), (wavelength, _)) in enumerate(zip(lines, radiation.lines, strict=True)):
        shifts, node_weights = axial[line] if profile.axial > 0 else no_axial_nodes(n_refl)
        sin_theta = np.minimum(wavelength / (2.0 * reflections.d_spacing), 1.0)
        tan_theta = sin_theta / np.sqrt(np.maximum(1.0 - sin_theta**2, 1e-12))
        add_line_values_batch(
            x,
            column,
            np.ascontiguousarray(centre, dtype=float),
            np.ascontiguousarray(fwhm, dtype=float),
            np.ascontiguousarray(eta, dtype=float),
            np.ascontiguousarray(weight, dtype=float),
            np.ascontiguousarray(shifts, dtype=float),
            np.ascontiguousarray(node_weights, dtype=float),
            shifts.min(axis=1),
            shifts.max(axis=1),
            float(profile.cutoff),
            tan_theta,
            asymmetry,
            values,
        )
    values *= reflections.multiplicity[column]
    return PeakMatrix(start.astype(np.int64), length, offset, values, len(two_theta))
