"""Whole-pattern profile fit: profile, zero shift and cell of a measured pattern, with the structure unknown.

The calculated pattern is y = P(θ) I + B c: P the peak-shape matrix of :mod:`gasolve.diffraction.profile`, I one
free intensity per reflection, B the Chebyshev background. As in Pawley's method (J. Appl. Cryst. 14 (1981)
357), the intensities are least-squares parameters; here they are eliminated exactly (variable projection,
Golub & Pereyra, SIAM J. Numer. Anal. 10 (1973) 413): for every trial θ the weighted linear least squares for
(I, c) is solved, and the residual left is minimised over θ alone by trust-region least squares. θ holds the
zero shift, the free coefficients of the reciprocal metric, Caglioti U, V, W, η at 2θ = 0° and 180° (or, with
``shape="tch"``, the Thompson-Cox-Hastings Lorentzian X and Y instead of η), the Finger-Cox-Jephcoat axial
divergence SH/L (or the Bérar-Baldinozzi terms), and optionally the specimen displacement. Reflections at the
same d (e.g. 330 and 411 of a cubic cell) have identical peaks and are merged into one column; a tiny ridge keeps
nearly coincident ones determined.

Why not Le Bail's iterative partition (Le Bail, Duroy & Fourquet, Mater. Res. Bull. 23 (1988) 447)? Alternating
it with the least-squares step is not a descent method: on a simulated rutile pattern with Poisson noise the Rwp
crept up over cycles and the cell came out 2e-4 Å off (8 esd); the exact elimination recovers it.

Parameters are released in stages as in GSAS and FullProf practice: zero, cell, W and η first; then U and V;
then the asymmetry, kept only if it lowers Rwp noticeably (``asymmetry="auto"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.diffraction.background import chebyshev_basis
from gasolve.diffraction.fit_metrics import FitMetrics, fit_metrics
from gasolve.diffraction.profile import PeakProfile, build_peak_matrix
from gasolve.diffraction.reflections import ReflectionList, generate_reflections
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.profile_fit.lattice import LatticeConstraint

#: Relative ridge added to the Jacobi-scaled normal equations of the intensities (nearly coincident peaks).
RIDGE = 1e-9
#: Starting SH/L of the axial-divergence stage (lab diffractometers: 0.01-0.07).
AXIAL_START = 0.02
#: Constant FWHMs (degrees 2θ) tried as the starting width; the one with the lowest Rwp wins.
START_FWHM = (0.03, 0.05, 0.08, 0.12, 0.18, 0.27, 0.4)
_ASYMMETRY_MODES = ("auto", "on", "off")
#: Peak shapes: the pseudo-Voigt of one width with a linear η, or Thompson-Cox-Hastings
#: (:class:`gasolve.diffraction.profile.PeakProfile`).
SHAPES = ("pseudo-voigt", "tch")
_ASYMMETRY = ("P1", "P2", "P3", "P4")


@dataclass(frozen=True)
class LeBailSettings:
    """How the fit runs.

    Attributes
    ----------
    background_terms : int
        Chebyshev background terms.
    asymmetry : {"auto", "on", "off"}
        Refine the peak asymmetry; "auto" keeps it only if Rwp drops by more than ``asymmetry_gain``.
    asymmetry_model : {"fcj", "bb"}
        Finger-Cox-Jephcoat axial divergence (one parameter, SH/L) or the empirical Bérar-Baldinozzi terms.
    asymmetry_gain : float
        Relative Rwp decrease that justifies the two asymmetry parameters in "auto" mode.
    max_evaluations : int
        Residual evaluations per stage at most (each builds the peak matrix and solves for the intensities).
    tolerance : float
        ftol and xtol of the least squares (relative change of the cost and of the parameters).
    cutoff : float
        Peak cut-off (FWHM units).
    monochromator_two_theta : float
        2θ_M (degrees) of the Lorentz-polarisation factor; 0 for none.
    polarisation : float or None
        Beam polarisation fraction (GSAS-II's "Polariz."), instead of ``monochromator_two_theta``; None for none.
    max_cell_change : float
        A refined cell length that moves by more than this fraction means the fit diverged.
    max_rwp_fraction : float
        The fit failed (a wrong cell, group or wavelength, or a starting cell too far off) when its Rwp exceeds
        this fraction of the Rwp of the background alone, unless it passes ``max_left_above_noise``.
    max_left_above_noise : float
        ... a fit whose Rwp fails that test still passes when it leaves at most this fraction of what the
        background alone leaves above the noise: (χ² - 1) / (χ²_bg - 1), χ² reduced. On a noisy pattern (lines
        above a long noisy background, a normalised pattern whose σ was scaled to its scatter) the noise keeps Rwp
        high whatever fits the lines: the measured andalusite pattern of RRUFF (σ from its scatter, one quartz line
        unindexed) leaves 0.17 at Rwp 0.55 of the background's. A simulated rutile pattern in a false minimum
        1.2 % off its cell leaves 0.23 at Rwp 0.54 of the background's, and fails.
    max_zero : float
        Bound on the zero shift and on the specimen displacement shift (degrees).
    displacement : bool
        Refine the specimen displacement (Bragg-Brentano cos θ shift) besides the zero shift.
    intensity_covariance : bool
        Also return the covariance of the intensities (an n_refl² matrix; the extinction analysis needs it).
    shape : {"pseudo-voigt", "tch"}
        The pseudo-Voigt of one width (Caglioti U, V, W; η linear in 2θ) or Thompson-Cox-Hastings (Gaussian U, V,
        W and Lorentzian X / cos θ + Y tan θ).
    """

    background_terms: int = 12
    asymmetry: str = "auto"
    asymmetry_gain: float = 0.01
    max_evaluations: int = 400
    tolerance: float = 1e-8
    cutoff: float = 15.0
    monochromator_two_theta: float = 0.0
    polarisation: float | None = None
    max_cell_change: float = 0.02
    max_rwp_fraction: float = 0.5
    max_left_above_noise: float = 0.2
    max_zero: float = 1.0
    asymmetry_model: str = "fcj"
    displacement: bool = False
    intensity_covariance: bool = False
    shape: str = "pseudo-voigt"

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise InputError(f"peak shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if self.asymmetry not in _ASYMMETRY_MODES:
            raise InputError(f"asymmetry must be one of {', '.join(_ASYMMETRY_MODES)}, got {self.asymmetry!r}")
        if self.background_terms < 0:
            raise InputError(f"number of background terms must be >= 0, got {self.background_terms}")
        if self.asymmetry_model not in ("fcj", "bb"):
            raise InputError(f"asymmetry model must be fcj or bb, got {self.asymmetry_model!r}")
        if self.max_evaluations < 1:
            raise InputError(f"max_evaluations must be >= 1, got {self.max_evaluations}")


@dataclass(frozen=True)
class LeBailResult:
    """A converged Le Bail fit.

    Attributes
    ----------
    cell : UnitCell
        Refined cell.
    cell_esd : tuple of 6 float
        Standard uncertainties of a, b, c (Å) and α, β, γ (degrees), from the final Jacobian (intensities and
        background profiled out).
    profile : PeakProfile
        Refined zero shift, Caglioti U, V, W, η and its slope, asymmetry.
    profile_esd : dict of str to float
        Standard uncertainties of the refined non-linear parameters, by name.
    reflections : ReflectionList
        With the refined d-spacings.
    intensities : ndarray, shape (n_refl,)
        Fitted intensity of each reflection (|F|² times the scale; may be slightly negative for weak ones).
    background : ndarray, shape (background_terms,)
        Chebyshev coefficients.
    two_theta, y_obs, weights, y_calc : ndarray, shape (n_points,)
    metrics : FitMetrics
        Rwp, Rp, Rexp, χ² of the fit.
    rwp_history : tuple of float
        Rwp at the start and after each stage.
    asymmetry_refined : bool
    wavelengths : tuple of float
        Emission lines of the fit (Å).
    intensity_covariance : ndarray, shape (n_refl, n_refl), or None
        Only with ``LeBailSettings(intensity_covariance=True)``: covariance of ``intensities`` at the refined
        profile and cell, the inverse of the weighted normal matrix of the linear parameters (intensities and
        background) times the reduced χ² (Pawley 1981; the uncertainty of the non-linear parameters is not
        propagated). Reflections of one equal-d group share their group's entries; a reflection with no
        intensity in the range has an infinite variance.
    """

    cell: UnitCell
    cell_esd: tuple[float, ...]
    profile: PeakProfile
    profile_esd: dict
    reflections: ReflectionList
    intensities: np.ndarray = field(repr=False)
    background: np.ndarray = field(repr=False)
    two_theta: np.ndarray = field(repr=False)
    y_obs: np.ndarray = field(repr=False)
    weights: np.ndarray = field(repr=False)
    y_calc: np.ndarray = field(repr=False)
    metrics: FitMetrics
    rwp_history: tuple[float, ...]
    asymmetry_refined: bool
    wavelengths: tuple[float, ...] = ()
    intensity_covariance: np.ndarray | None = field(default=None, repr=False)

    @property
    def intensity_esd(self) -> np.ndarray | None:
        """Standard uncertainties of ``intensities``, shape (n_refl,); None when no covariance was computed."""
        if self.intensity_covariance is None:
            return None
        return np.sqrt(np.maximum(np.diag(self.intensity_covariance), 0.0))


class _Model:
    """The parameter vector θ and the pattern it gives; names index into θ."""

    def __init__(
        self,
        pattern: ObservedPattern,
        radiation: Radiation,
        constraint: LatticeConstraint,
        hkl: np.ndarray,
        multiplicity: np.ndarray,
        settings: LeBailSettings,
    ):
        self.pattern = pattern
        self.radiation = radiation
        self.constraint = constraint
        self.hkl = hkl
        self.multiplicity = multiplicity
        self.settings = settings
        self.names = ["zero", "displacement", *(f"metric{k}" for k in range(constraint.n_free)), "U", "V", "W"]
        self.names += ["eta_0", "eta_180", "P1", "P2", "P3", "P4", "axial", "X", "Y"]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.root_w = np.sqrt(pattern.weights)
        self.basis = chebyshev_basis(pattern.two_theta, settings.background_terms)
        self.merge = equal_d_groups(constraint, hkl)

    def bounds(self, free: list[str]) -> tuple[np.ndarray, np.ndarray]:
        lower = {
            "zero": -self.settings.max_zero,
            "displacement": -self.settings.max_zero,
            "U": 0.0,
            "W": 1e-8,
            "eta_0": 0.0,
            "eta_180": 0.0,
            "X": 0.0,
            "Y": 0.0,
        }
        upper = {"zero": self.settings.max_zero, "displacement": self.settings.max_zero, "eta_0": 1.0, "eta_180": 1.0}
        upper.update({name: 2.0 for name in _ASYMMETRY})
        lower["axial"], upper["axial"] = 0.0, 0.25
        lower.update({name: -2.0 for name in _ASYMMETRY})
        return (
            np.array([lower.get(name, -np.inf) for name in free]),
            np.array([upper.get(name, np.inf) for name in free]),
        )

    def profile(self, theta: np.ndarray) -> PeakProfile:
        i = self.index
        eta_0, eta_180 = theta[i["eta_0"]], theta[i["eta_180"]]
        return PeakProfile(
            caglioti=(theta[i["U"]], theta[i["V"]], theta[i["W"]]),
            eta=float(eta_0),
            eta_slope=float((eta_180 - eta_0) / 180.0),
            zero=float(theta[i["zero"]]),
            cutoff=self.settings.cutoff,
            monochromator_two_theta=self.settings.monochromator_two_theta,
            polarisation=self.settings.polarisation,
            asymmetry=(theta[i["P1"]], theta[i["P2"]], theta[i["P3"]], theta[i["P4"]]),
            displacement=float(theta[i["displacement"]]),
            axial=float(theta[i["axial"]]),
            lorentzian=(float(theta[i["X"]]), float(theta[i["Y"]])) if self.settings.shape == "tch" else None,
        )

    def metric_coefficients(self, theta: np.ndarray) -> np.ndarray:
        return theta[[self.index[f"metric{k}"] for k in range(self.constraint.n_free)]]

    def reflections(self, theta: np.ndarray) -> ReflectionList:
        d = self.constraint.d_spacing(self.metric_coefficients(theta), self.hkl)
        return ReflectionList(self.hkl, d, self.multiplicity)

    def peak_matrix(self, theta: np.ndarray) -> scipy.sparse.csc_matrix:
        """P(θ), shape (n_points, n_refl); raises InputError when θ gives no valid profile."""
        profile = self.profile(theta)
        profile.fwhm(np.linspace(0.5, 179.5, 359))  # FWHM² > 0 everywhere, or InputError
        return build_peak_matrix(self.pattern.two_theta, self.reflections(theta), self.radiation, profile).to_sparse()

    def normal_equations(self, p: scipy.sparse.csc_matrix) -> tuple[np.ndarray, np.ndarray, scipy.sparse.csc_matrix]:
        """Weighted normal matrix and right-hand side of (group intensities, background) for P.

        Returns
        -------
        normal : ndarray, shape (n_groups + background_terms,) * 2
        rhs : ndarray, shape (n_groups + background_terms,)
        grouped : scipy.sparse.csc_matrix, shape (n_points, n_groups)
            P with the columns of each equal-d group summed.
        """
        grouped = (p @ self.merge).tocsc()
        weighted = grouped.multiply(self.root_w[:, None]).tocsc()
        basis_w = self.basis * self.root_w[:, None]
        target = self.root_w * self.pattern.y_obs
        n_groups = grouped.shape[1]
        normal = np.zeros((n_groups + self.basis.shape[1],) * 2)
        normal[:n_groups, :n_groups] = (weighted.T @ weighted).toarray()
        cross = np.asarray(weighted.T @ basis_w)
        normal[:n_groups, n_groups:] = cross
        normal[n_groups:, :n_groups] = cross.T
        normal[n_groups:, n_groups:] = basis_w.T @ basis_w
        rhs = np.concatenate([np.asarray(weighted.T @ target).ravel(), basis_w.T @ target])
        return normal, rhs, grouped

    def linear_solve(self, p: scipy.sparse.csc_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weighted least-squares intensities (one per group of equal-d reflections) and background for P.

        Returns
        -------
        intensities : ndarray, shape (n_refl,)
            Each reflection gets its group's intensity (equipartition between exactly overlapping ones).
        background : ndarray, shape (background_terms,)
        y_calc : ndarray, shape (n_points,)
        """
        normal, rhs, grouped = self.normal_equations(p)
        n_groups = grouped.shape[1]
        diagonal = np.diag(normal).copy()
        keep = diagonal > 0
        scale = 1.0 / np.sqrt(diagonal[keep])  # Jacobi scaling: peak and background columns differ by decades
        scaled = normal[np.ix_(keep, keep)] * scale[:, None] * scale[None, :]
        scaled[np.diag_indices_from(scaled)] += RIDGE
        solution = np.zeros(len(diagonal))
        try:
            solution[keep] = scale * scipy.linalg.solve(scaled, scale * rhs[keep], assume_a="pos")
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            solution[keep] = scale * np.linalg.lstsq(scaled, scale * rhs[keep], rcond=None)[0]
        group_intensity, background = solution[:n_groups], solution[n_groups:]
        y_calc = grouped @ group_intensity + self.basis @ background
        return self.merge @ group_intensity, background, y_calc

    def intensity_covariance(self, p: scipy.sparse.csc_matrix, reduced_chi2: float) -> np.ndarray:
        """Covariance (n_refl, n_refl) of the intensities of :meth:`linear_solve`: the intensity block of the
        inverse normal matrix times ``reduced_chi2``; infinite variance where a group has no intensity."""
        normal, _, grouped = self.normal_equations(p)
        n_groups = grouped.shape[1]
        diagonal = np.diag(normal).copy()
        keep = diagonal > 0
        scale = 1.0 / np.sqrt(diagonal[keep])
        scaled = normal[np.ix_(keep, keep)] * scale[:, None] * scale[None, :]
        scaled[np.diag_indices_from(scaled)] += RIDGE
        full = np.zeros((len(diagonal),) * 2)
        try:
            inverse = scipy.linalg.cho_solve(scipy.linalg.cho_factor(scaled), np.eye(len(scaled)))
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            inverse = np.linalg.pinv(scaled, hermitian=True)
        full[np.ix_(keep, keep)] = inverse * scale[:, None] * scale[None, :]
        full[~keep, ~keep] = np.inf  # the diagonal entries of the empty columns
        group_covariance = full[:n_groups, :n_groups] * reduced_chi2
        group = np.asarray(self.merge.argmax(axis=1)).ravel()  # each reflection's equal-d group
        return group_covariance[np.ix_(group, group)]

    def residual(self, theta: np.ndarray) -> np.ndarray:
        """√w (y_obs - y_calc) with intensities and background at their optimum for θ; shape (n_points,)."""
        try:
            p = self.peak_matrix(theta)
        except InputError:  # outside the valid profiles: the residual of an empty model, worse than any fit
            return self.root_w * self.pattern.y_obs
        return self.root_w * (self.pattern.y_obs - self.linear_solve(p)[2])

    def rwp(self, theta: np.ndarray) -> float:
        r = self.residual(theta)
        return float(np.sqrt(np.sum(r**2) / np.sum(self.pattern.weights * self.pattern.y_obs**2)))


def equal_d_groups(constraint: LatticeConstraint, hkl: np.ndarray) -> scipy.sparse.csr_matrix:
    """Indicator (n_refl, n_groups) of reflections whose d coincide for every cell the constraint allows.

    d depends on the cell only through h S_k hᵀ for the basis matrices S_k, so reflections with equal values of
    all of them (330 and 411 of a cubic cell) overlap exactly whatever the refined cell.
    """
    hkl = np.asarray(hkl, dtype=float)
    forms = np.einsum("ni,kij,nj->nk", hkl, constraint.basis, hkl)
    keys = np.round(forms / np.max(np.abs(forms), axis=0, keepdims=True), 10)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = np.asarray(group).ravel()
    n_refl = len(hkl)
    return scipy.sparse.csr_matrix((np.ones(n_refl), (np.arange(n_refl), group)), shape=(n_refl, group.max() + 1))


def _stage_free(model: _Model, stage: int) -> list[str]:
    tch = model.settings.shape == "tch"
    free = ["zero", *(f"metric{k}" for k in range(model.constraint.n_free)), "W"]
    free += ["X"] if tch else ["eta_0", "eta_180"]
    if stage >= 1:
        free += ["U", "V"] + (["Y"] if tch else []) + (["displacement"] if model.settings.displacement else [])
    if stage >= 2:
        free += list(_ASYMMETRY) if model.settings.asymmetry_model == "bb" else ["axial"]
    return free


def _run_stage(model: _Model, theta: np.ndarray, free: list[str], settings: LeBailSettings):
    """Least squares over the ``free`` parameters of θ; returns the new θ and scipy's result."""
    columns = [model.index[name] for name in free]
    lower, upper = model.bounds(free)

    def residual(x):
        trial = theta.copy()
        trial[columns] = x
        return model.residual(trial)

    start = np.clip(theta[columns], lower, upper)
    result = scipy.optimize.least_squares(
        residual,
        start,
        bounds=(lower, upper),
        method="trf",
        x_scale="jac",
        ftol=settings.tolerance,
        xtol=settings.tolerance,
        max_nfev=settings.max_evaluations,
    )
    refined = theta.copy()
    refined[columns] = result.x
    return refined, result


def _esd(theta_names: list[str], result) -> tuple[dict[str, float], np.ndarray]:
    """Standard uncertainties from the final Jacobian: cov = (JᵀJ)⁻¹ χ²/(N - P)."""
    jac = np.asarray(result.jac)
    dof = max(len(result.fun) - len(theta_names), 1)
    norms = np.linalg.norm(jac, axis=0)
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)  # columns differ by decades
    scaled = jac * scale
    try:  # a truncated pseudo-inverse would hide, not report, an ill-determined combination
        inverse = np.linalg.inv(scaled.T @ scaled)
    except np.linalg.LinAlgError:
        inverse = np.full((len(theta_names),) * 2, np.nan)
    covariance = scale[:, None] * inverse * scale[None, :]
    covariance *= float(np.sum(result.fun**2)) / dof
    return {name: float(math.sqrt(max(covariance[i, i], 0.0))) for i, name in enumerate(theta_names)}, covariance


def _cell_esd(model: _Model, theta: np.ndarray, free: list[str], covariance: np.ndarray) -> tuple[float, ...]:
    """Propagate the metric coefficients' covariance to a, b, c, α, β, γ by finite differences."""
    metric_names = [f"metric{k}" for k in range(model.constraint.n_free)]
    positions = [free.index(name) for name in metric_names]
    coefficients = model.metric_coefficients(theta)
    base = np.array(model.constraint.cell(coefficients).parameters)
    jacobian = np.zeros((6, len(metric_names)))
    for k in range(len(metric_names)):
        step = 1e-7 * max(abs(coefficients[k]), 1e-6)
        shifted = coefficients.copy()
        shifted[k] += step
        jacobian[:, k] = (np.array(model.constraint.cell(shifted).parameters) - base) / step
    sub = covariance[np.ix_(positions, positions)]
    return tuple(float(math.sqrt(max(v, 0.0))) for v in np.diag(jacobian @ sub @ jacobian.T))


def fit_lebail(
    pattern: ObservedPattern,
    cell: UnitCell,
    space_group: SpaceGroup,
    radiation: Radiation,
    settings: LeBailSettings | None = None,
) -> LeBailResult:
    """Whole-pattern fit of ``pattern`` with a known cell and space group (module docstring).

    Parameters
    ----------
    pattern : ObservedPattern
        Already restricted to the range to fit.
    cell : UnitCell
        Starting cell; it must have the lattice symmetry of ``space_group``.
    space_group : SpaceGroup
        Gives the systematic absences and the lattice constraints.
    radiation : Radiation
    settings : LeBailSettings, optional

    Returns
    -------
    LeBailResult

    Raises
    ------
    InputError
        When the cell does not match the group, no reflection falls in the range, or the fit fails (a cell
        length moves by more than ``max_cell_change``, or the peaks explain too little: ``max_rwp_fraction``).
    """
    from threadpoolctl import threadpool_limits

    # The normal equations are a few hundred wide: a threaded BLAS only contends for the cores (a 410-wide
    # solve took 1.2 s with OpenBLAS threads on a loaded 2-core machine, 2 ms on one thread).
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(pattern, cell, space_group, radiation, settings or LeBailSettings())


def _fit(
    pattern: ObservedPattern,
    cell: UnitCell,
    space_group: SpaceGroup,
    radiation: Radiation,
    settings: LeBailSettings,
) -> LeBailResult:
    constraint = LatticeConstraint.for_group(space_group)
    coefficients = constraint.coefficients(cell)
    two_theta = pattern.two_theta
    lo, hi = float(two_theta[0]), float(two_theta[-1])
    margin = 3.0  # degrees: reflections just outside the range still send their tails in
    wavelengths = [w for w, _ in radiation.lines]
    d_min = min(wavelengths) / (2.0 * math.sin(math.radians(min(hi + margin, 179.0)) / 2.0))
    d_max = max(wavelengths) / (2.0 * math.sin(math.radians(max(lo - margin, 0.5)) / 2.0))
    generated = generate_reflections(cell, space_group, d_min, d_max)
    if len(generated) == 0:
        raise InputError("no reflection falls inside the 2θ range; check the cell, wavelength and range")
    model = _Model(pattern, radiation, constraint, generated.hkl, generated.multiplicity, settings)
    theta = np.zeros(len(model.names))
    theta[[model.index[f"metric{k}"] for k in range(constraint.n_free)]] = coefficients
    theta[model.index["eta_0"]] = theta[model.index["eta_180"]] = 0.5
    starts = []
    for fwhm in START_FWHM:
        trial = theta.copy()
        trial[model.index["W"]] = fwhm**2
        if settings.shape == "tch":  # half the width Gaussian, half Lorentzian (η ≈ 0.6): both start away from 0
            trial[model.index["W"]] = (0.6 * fwhm) ** 2
            trial[model.index["X"]] = 0.5 * fwhm
        starts.append((model.rwp(trial), trial))
    history, theta = [min(starts, key=lambda item: item[0])[0]], min(starts, key=lambda item: item[0])[1]

    for stage in (0, 1):
        free = _stage_free(model, stage)
        theta, result = _run_stage(model, theta, free, settings)
        history.append(model.rwp(theta))
    asymmetry_refined = False
    if settings.asymmetry != "off":
        free_asymmetric = _stage_free(model, 2)
        start = theta.copy()
        if settings.asymmetry_model == "fcj":
            start[model.index["axial"]] = AXIAL_START
        theta_asymmetric, result_asymmetric = _run_stage(model, start, free_asymmetric, settings)
        rwp_asymmetric = model.rwp(theta_asymmetric)
        if settings.asymmetry == "on" or rwp_asymmetric < (1.0 - settings.asymmetry_gain) * history[-1]:
            theta, result, free = theta_asymmetric, result_asymmetric, free_asymmetric
            asymmetry_refined = True
        history.append(rwp_asymmetric)

    refined_cell = constraint.cell(model.metric_coefficients(theta))
    for name, old, new in zip(("a", "b", "c"), cell.parameters[:3], refined_cell.parameters[:3], strict=True):
        if abs(new - old) > settings.max_cell_change * old:
            raise InputError(
                f"the profile fit diverged: cell length {name} went from {old:.5f} to {new:.5f} Å; check the cell, "
                "space group, wavelength and 2θ range, or give [pattern.profile] by hand"
            )
    peak_matrix = model.peak_matrix(theta)
    intensities, background, y_calc = model.linear_solve(peak_matrix)
    n_groups = model.merge.shape[1]
    metrics_parameters = n_groups + settings.background_terms + len(free)
    metrics = fit_metrics(pattern.y_obs, y_calc, pattern.weights, metrics_parameters)
    root_w, y_obs = model.root_w, pattern.y_obs
    background_only = np.linalg.lstsq(model.basis * root_w[:, None], root_w * y_obs, rcond=None)[0]
    background_metrics = fit_metrics(y_obs, model.basis @ background_only, pattern.weights, settings.background_terms)
    rwp_background = background_metrics.rwp
    above_noise = background_metrics.chi2 - 1.0  # what the peaks have to explain (none: nothing to fit)
    at_noise = above_noise > 0 and metrics.chi2 - 1.0 <= settings.max_left_above_noise * above_noise
    if not math.isfinite(metrics.rwp) or (metrics.rwp > settings.max_rwp_fraction * rwp_background and not at_noise):
        raise InputError(
            f"the profile fit failed: Rwp {metrics.rwp:.3f} against {rwp_background:.3f} for the background alone "
            f"(χ² {metrics.chi2:.3g} against {background_metrics.chi2:.3g}); "
            "check the cell (it must be within about 1% of the truth), space group, wavelength and 2θ range, or "
            "give [pattern.profile] by hand"
        )
    esd, covariance = _esd(free, result)
    reduced_chi2 = float(np.sum(pattern.weights * (y_obs - y_calc) ** 2)) / max(len(y_obs) - metrics_parameters, 1)
    return LeBailResult(
        cell=refined_cell,
        cell_esd=_cell_esd(model, theta, free, covariance),
        profile=model.profile(theta),
        profile_esd=esd,
        reflections=model.reflections(theta),
        intensities=intensities,
        background=background,
        two_theta=two_theta,
        y_obs=pattern.y_obs,
        weights=pattern.weights,
        y_calc=y_calc,
        metrics=metrics,
        rwp_history=tuple(history),
        asymmetry_refined=asymmetry_refined,
        wavelengths=tuple(w for w, _ in radiation.lines),
        intensity_covariance=(
            model.intensity_covariance(peak_matrix, reduced_chi2) if settings.intensity_covariance else None
        ),
    )
