"""Peak profile: pseudo-Voigt with Caglioti width, and the sparse peak-shape matrix of a pattern.

pV(x) = η L(x) + (1 - η) G(x), both of unit area and the same FWHM H (degrees 2θ):
G(x) = (2/H) sqrt(ln 2 / π) exp(-4 ln 2 x² / H²),  L(x) = (2 / (π H)) / (1 + 4 x² / H²)
(Thompson, Cox & Hastings, J. Appl. Cryst. 20 (1987) 79 use the same mixing with a common width).
H² = U tan² θ + V tan θ + W (Caglioti, Paoletti & Ricci, Nucl. Instrum. 3 (1958) 223), degrees².
η(2θ) = eta + eta_slope · 2θ (2θ in degrees). Each peak is cut off at ``cutoff`` FWHM either side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from gasolve.diffraction.intensity import lorentz_polarisation
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
    """

    caglioti: tuple[float, float, float] = (0.0, 0.0, 0.01)
    eta: float = 0.5
    eta_slope: float = 0.0
    zero: float = 0.0
    cutoff: float = 15.0
    monochromator_two_theta: float = 0.0

    def __post_init__(self) -> None:
        if len(self.caglioti) != 3 or not all(math.isfinite(float(x)) for x in self.caglioti):
            raise InputError(f"caglioti must be three numbers [U, V, W] (degrees²), got {self.caglioti!r}")
        object.__setattr__(self, "caglioti", tuple(float(x) for x in self.caglioti))
        for name in ("eta", "eta_slope", "zero", "cutoff", "monochromator_two_theta"):
            if not math.isfinite(float(getattr(self, name))):
                raise InputError(f"profile parameter {name} must be a finite number")
        if self.cutoff <= 0:
            raise InputError(f"peak cutoff must be positive (FWHM units), got {self.cutoff}")

    @classmethod
    def constant_fwhm(cls, fwhm: float, **kwargs) -> PeakProfile:
        """Profile with the same FWHM (degrees 2θ) at every angle."""
        if not math.isfinite(fwhm) or fwhm <= 0:
            raise InputError(f"fwhm must be a positive number of degrees, got {fwhm}")
        return cls(caglioti=(0.0, 0.0, fwhm * fwhm), **kwargs)

    def fwhm(self, two_theta: np.ndarray) -> np.ndarray:
        """FWHM (degrees) at Bragg angles ``two_theta`` (degrees)."""
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

    def eta_at(self, two_theta: np.ndarray) -> np.ndarray:
        eta = self.eta + self.eta_slope * np.asarray(two_theta, dtype=float)
        if np.any((eta < 0) | (eta > 1)):
            raise InputError(
                f"pseudo-Voigt mixing η = {self.eta} + {self.eta_slope}·2θ leaves [0, 1] inside the pattern range"
            )
        return eta


def pseudo_voigt(x: np.ndarray, fwhm: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Unit-area pseudo-Voigt at offsets ``x`` (degrees) from the centre (broadcasting), per degree."""
    z = (2.0 * x / fwhm) ** 2
    gauss = (2.0 / fwhm) * math.sqrt(_LN2 / math.pi) * np.exp(-_LN2 * z)
    lorentz = (2.0 / (math.pi * fwhm)) / (1.0 + z)
    return eta * lorentz + (1.0 - eta) * gauss


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


def peak_lines(
    reflections: ReflectionList, radiation: Radiation, profile: PeakProfile
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per emission line: peak centre (2θ, degrees), FWHM, η and weight × LP, each shape (n_refl,)."""
    lines = []
    for wavelength, weight in radiation.lines:
        bragg = reflections.two_theta(wavelength)
        valid = wavelength / (2.0 * reflections.d_spacing) < 1.0
        bragg = np.where(valid, bragg, 180.0)
        centre = bragg + profile.zero
        safe = np.where(valid, bragg, 179.0)
        lp = np.where(valid, lorentz_polarisation(safe, profile.monochromator_two_theta), 0.0)
        lines.append((centre, profile.fwhm(safe), profile.eta_at(np.where(valid, centre, 90.0)), weight * lp))
    return lines


def build_peak_matrix(
    two_theta: np.ndarray, reflections: ReflectionList, radiation: Radiation, profile: PeakProfile
) -> PeakMatrix:
    """Peak-shape matrix of ``reflections`` sampled at ``two_theta`` (degrees, increasing), shape (n_points,)."""
    two_theta = np.asarray(two_theta, dtype=float)
    lines = peak_lines(reflections, radiation, profile)
    n_refl = len(reflections)
    lo = np.full(n_refl, np.inf)
    hi = np.full(n_refl, -np.inf)
    for centre, fwhm, _, weight in lines:
        active = weight > 0
        lo = np.where(active, np.minimum(lo, centre - profile.cutoff * fwhm), lo)
        hi = np.where(active, np.maximum(hi, centre + profile.cutoff * fwhm), hi)
    start = np.searchsorted(two_theta, lo, side="left")
    stop = np.searchsorted(two_theta, hi, side="right")
    length = np.maximum(stop - start, 0).astype(np.int64)
    offset = np.concatenate([[0], np.cumsum(length)[:-1]]).astype(np.int64)
    values = np.zeros(int(length.sum()))
    for k in range(n_refl):
        if length[k] == 0:
            continue
        x = two_theta[start[k] : stop[k]]
        run = np.zeros(length[k])
        for centre, fwhm, eta, weight in lines:
            if weight[k] == 0:
                continue
            dx = x - centre[k]
            inside = np.abs(dx) <= profile.cutoff * fwhm[k]
            run += np.where(inside, weight[k] * pseudo_voigt(dx, fwhm[k], eta[k]), 0.0)
        values[offset[k] : offset[k] + length[k]] = reflections.multiplicity[k] * run
    return PeakMatrix(start.astype(np.int64), length, offset, values, len(two_theta))
