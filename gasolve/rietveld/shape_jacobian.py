"""The peak-shape matrix P and its derivatives with respect to the cell, zero shift and profile, in one pass.

Each column of P (:func:`gasolve.diffraction.profile.build_peak_matrix`) holds, per emission line, the pseudo-Voigt
of the reflection's centre c, FWHM H and mixing η, over the axial-divergence nodes of its Bragg angle 2θ_B and
SH/L, times the Bérar-Baldinozzi factor of tan θ and P1..P4, times the line weight × LP(2θ_B) × multiplicity. The
Numba kernel (:mod:`gasolve.rietveld.shape_kernel`) forms the values and their partial derivatives with respect
to these per-reflection inputs; this module gives the inputs' derivatives with respect to the parameters (the
chain table), analytically:

- cell: 1/d² = Σ_j g_j hᵀS_jh is linear in the free coefficients g_j of the reciprocal metric
  (:class:`gasolve.profile_fit.lattice.LatticeConstraint`), sin θ = λ/(2d), so
  ∂2θ_B/∂g_j = (360/π) λ² hᵀS_jh / (8 sin θ cos θ) (degrees);
- c = 2θ_B + zero + displacement · cos θ: ∂c/∂2θ_B = 1 − displacement · sin θ · π/360;
- H² = U t² + V t + W, t = tan θ: ∂H/∂U = t²/(2H), ∂H/∂V = t/(2H), ∂H/∂W = 1/(2H),
  ∂H/∂2θ_B = (2Ut + V)/(2H) · (1 + t²) π/360;
- η = eta + eta_slope · c: ∂η/∂eta = 1, ∂η/∂eta_slope = c, and eta_slope · ∂c/∂p through the centre;
- Thompson-Cox-Hastings (``lorentzian`` given): H and η are functions of H_G (H_G² = U t² + V t + W) and
  H_L = X / cos θ + Y tan θ, chained through :func:`gasolve.diffraction.profile.tch_partials`:
  ∂H/∂U = ∂H/∂H_G · t²/(2H_G), ∂H/∂X = ∂H/∂H_L / cos θ, ∂H/∂Y = ∂H/∂H_L · t, the same for η, and both through
  H_G and H_L in the Bragg angle (∂H_L/∂2θ_B = (X sin θ/cos² θ + Y (1 + t²)) π/360);
- ln LP = ln(1 + k cos² 2θ) − 2 ln sin θ − ln cos θ + const:
  ∂ ln LP/∂θ = −4k cos 2θ sin 2θ/(1 + k cos² 2θ) − 2 cot θ + tan θ;
- the axial-divergence nodes (shifts and weights of :func:`gasolve.diffraction.profile.axial_divergence`, their
  number held) by central differences of that function in 2θ_B and SH/L: a table of n_refl × n_nodes numbers,
  not a matrix, so that no peak is evaluated twice.

The layout of the runs and the node counts are those of :func:`build_peak_matrix`, so that the values equal its
matrix (tests/test_rietveld_shape.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from gasolve.diffraction.intensity import lorentz_polarisation
from gasolve.diffraction.peak_kernels import no_axial_nodes
from gasolve.diffraction.profile import (
    AXIAL_NODES,
    AXIAL_NODES_PER_FWHM,
    PeakProfile,
    axial_divergence,
    axial_span,
    tch_partials,
)
from gasolve.diffraction.reflections import ReflectionList
from gasolve.diffraction.wavelength import Radiation
from gasolve.rietveld.shape_kernel import ELEMENTS, N_ELEMENTS, add_line_values_and_derivatives

#: Profile parameters the chain table knows (names of the refinement's vector).
SHAPE_PARAMETERS = ("zero", "displacement", "U", "V", "W", "eta", "eta_slope", "X", "Y", "axial", "P1", "P2")
#: Central-difference steps of the axial-divergence node tables: in 2θ_B (degrees) and in SH/L.
NODE_STEP_BRAGG = 1e-4
NODE_STEP_AXIAL = 1e-6
_DEG = math.pi / 180.0
_E = {name: i for i, name in enumerate(ELEMENTS)}


@dataclass(frozen=True)
class ShapeJacobian:
    """P and ∂P/∂p stored as P's runs (one contiguous run of points per reflection).

    Attributes
    ----------
    rows, column : ndarray, shape (nnz,), int64
        Pattern point and reflection of each stored entry.
    values : ndarray, shape (nnz,)
        P's entries (as :func:`gasolve.diffraction.profile.build_peak_matrix` gives them).
    derivatives : ndarray, shape (nnz, n_dir)
        ∂P/∂p of each entry for the directions (cell coefficients first, then the named profile parameters).
    n_points : int
    """

    rows: np.ndarray
    column: np.ndarray
    values: np.ndarray
    derivatives: np.ndarray
    n_points: int

    def apply(self, intensities: np.ndarray) -> np.ndarray:
        """Σ_k ∂P_ik/∂p I_k for intensities ``intensities`` (n_refl,), shape (n_points, n_dir)."""
        weighted = self.derivatives * np.asarray(intensities, dtype=float)[self.column][:, None]
        out = np.empty((self.n_points, weighted.shape[1]))
        for m in range(weighted.shape[1]):
            out[:, m] = np.bincount(self.rows, weights=weighted[:, m], minlength=self.n_points)
        return out


def profile_lines(
    reflections: ReflectionList, radiation: Radiation, profile: PeakProfile
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per emission line: peak centre (2θ, degrees), FWHM, η, weight × LP and whether η is free, each (n_refl,).

    As :func:`gasolve.diffraction.profile.peak_lines`, except that η is clipped to [0, 1] instead of refused: a
    reflection beyond the data whose η + slope · 2θ leaves [0, 1] (the profile is checked over the data only) keeps
    the nearest valid shape, with ∂η = 0, so that the pattern does not jump when η crosses 1 there (left out, its
    tail inside the data would vanish at once and stop a refinement at that wall).
    """
    lines = []
    for wavelength, weight in radiation.lines:
        bragg = reflections.two_theta(wavelength)
        valid = wavelength / (2.0 * reflections.d_spacing) < 1.0
        bragg = np.where(valid, bragg, 180.0)
        centre = bragg + profile.zero + profile.displacement * np.cos(np.radians(bragg) / 2.0)
        safe = np.where(valid, bragg, 179.0)
        lp = np.where(valid, lorentz_polarisation(safe, profile.monochromator_two_theta, profile.polarisation), 0.0)
        if profile.tch:  # η of the widths at the Bragg angle: always in [0, 1]
            fwhm, eta = profile.tch_widths(safe)[:2]
        else:
            fwhm, eta = profile.fwhm(safe), profile.eta + profile.eta_slope * np.where(valid, centre, 90.0)
        free = (eta >= 0.0) & (eta <= 1.0)
        lines.append((centre, fwhm, np.clip(eta, 0.0, 1.0), weight * lp, free))
    return lines


def _chain_table(
    reflections: ReflectionList,
    wavelength: float,
    profile: PeakProfile,
    centre: np.ndarray,
    fwhm: np.ndarray,
    cell_gradient: np.ndarray,
    names: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Chain table (n_refl, N_ELEMENTS, n_dir) of one line and ∂2θ_B/∂g (n_refl, n_cell) (module docstring)."""
    n_refl, n_cell = cell_gradient.shape
    d = reflections.d_spacing
    sin_theta = np.minimum(wavelength / (2.0 * d), 1.0)
    valid = sin_theta < 1.0
    sin_theta = np.where(valid, sin_theta, 0.5)  # invalid reflections have no weight: any finite numbers
    cos_theta = np.sqrt(1.0 - sin_theta**2)
    tan_theta = sin_theta / cos_theta
    d_bragg = (360.0 / math.pi) * wavelength**2 / (8.0 * sin_theta * cos_theta)  # ∂2θ_B/∂(1/d²)
    d_bragg_cell = np.where(valid[:, None], d_bragg[:, None] * cell_gradient, 0.0)  # (n_refl, n_cell)
    u, v, _ = profile.caglioti
    d_tan = (1.0 + tan_theta**2) * (_DEG / 2.0)  # ∂t/∂2θ_B per degree
    d_eta = np.zeros(n_refl)
    if profile.tch:
        bragg = 2.0 * np.degrees(np.arcsin(sin_theta))
        h_g, h_l = profile.gaussian_fwhm(bragg), profile.lorentzian_fwhm(bragg)
        dh_dg, dh_dl, deta_dg, deta_dl = tch_partials(h_g, h_l)
        x_l, y_l = profile.lorentzian
        d_gauss = (2.0 * u * tan_theta + v) / (2.0 * h_g) * d_tan
        d_lorentz = x_l * sin_theta / cos_theta**2 * (_DEG / 2.0) + y_l * d_tan
        d_fwhm = dh_dg * d_gauss + dh_dl * d_lorentz
        d_eta = deta_dg * d_gauss + deta_dl * d_lorentz
    else:
        d_fwhm = (2.0 * u * tan_theta + v) / (2.0 * fwhm) * d_tan
    d_centre = 1.0 - profile.displacement * sin_theta * (_DEG / 2.0)
    if profile.polarisation is None:
        k = math.cos(math.radians(profile.monochromator_two_theta)) ** 2
    else:
        k = (1.0 - profile.polarisation) / profile.polarisation
    cos_2t = 1.0 - 2.0 * sin_theta**2
    sin_2t = 2.0 * sin_theta * cos_theta
    d_log_lp = (-4.0 * k * cos_2t * sin_2t / (1.0 + k * cos_2t**2) - 2.0 / tan_theta + tan_theta) * (_DEG / 2.0)

    n_dir = n_cell + len(names)
    chain = np.zeros((n_refl, N_ELEMENTS, n_dir))
    # the cell moves the Bragg angle, which moves everything that depends on it
    chain[:, _E["centre"], :n_cell] = d_centre[:, None] * d_bragg_cell
    chain[:, _E["fwhm"], :n_cell] = d_fwhm[:, None] * d_bragg_cell
    chain[:, _E["eta"], :n_cell] = d_eta[:, None] * d_bragg_cell
    chain[:, _E["log_weight"], :n_cell] = d_log_lp[:, None] * d_bragg_cell
    chain[:, _E["tan_theta"], :n_cell] = d_tan[:, None] * d_bragg_cell
    chain[:, _E["bragg_nodes"], :n_cell] = d_bragg_cell
    for m, name in enumerate(names, start=n_cell):
        if name == "zero":
            chain[:, _E["centre"], m] = 1.0
        elif name == "displacement":
            chain[:, _E["centre"], m] = cos_theta
        elif name in ("U", "V", "W") and profile.tch:
            d_gauss = {"U": tan_theta**2, "V": tan_theta, "W": 1.0}[name] / (2.0 * h_g)
            chain[:, _E["fwhm"], m] = dh_dg * d_gauss
            chain[:, _E["eta"], m] = deta_dg * d_gauss
        elif name in ("X", "Y"):
            d_lorentz = 1.0 / cos_theta if name == "X" else tan_theta
            chain[:, _E["fwhm"], m] = dh_dl * d_lorentz
            chain[:, _E["eta"], m] = deta_dl * d_lorentz
        elif name == "U":
            chain[:, _E["fwhm"], m] = tan_theta**2 / (2.0 * fwhm)
        elif name == "V":
            chain[:, _E["fwhm"], m] = tan_theta / (2.0 * fwhm)
        elif name == "W":
            chain[:, _E["fwhm"], m] = 1.0 / (2.0 * fwhm)
        elif name == "eta":
            chain[:, _E["eta"], m] = 1.0
        elif name == "eta_slope":
            chain[:, _E["eta"], m] = np.where(valid, centre, 90.0)
        elif name == "axial":
            chain[:, _E["axial_nodes"], m] = 1.0
        elif name in ("P1", "P2"):
            chain[:, _E[name], m] = 1.0
        else:
            raise ValueError(f"no derivative of the peak shape for parameter {name!r}; known: {SHAPE_PARAMETERS}")
    if not profile.tch:  # η follows the centre
        chain[:, _E["eta"], :] += profile.eta_slope * chain[:, _E["centre"], :]
    return chain, d_bragg_cell


def _node_tables(bragg: np.ndarray, profile: PeakProfile, n_nodes: int):
    """Nodes, weights and their central differences in 2θ_B and SH/L, each (n_refl, n_nodes)."""
    shifts, weights = axial_divergence(bragg, profile.axial, n_nodes)
    plus = axial_divergence(bragg + NODE_STEP_BRAGG, profile.axial, n_nodes)
    minus = axial_divergence(bragg - NODE_STEP_BRAGG, profile.axial, n_nodes)
    ds_b = (plus[0] - minus[0]) / (2.0 * NODE_STEP_BRAGG)
    dw_b = (plus[1] - minus[1]) / (2.0 * NODE_STEP_BRAGG)
    step = min(NODE_STEP_AXIAL, 0.5 * profile.axial)
    plus = axial_divergence(bragg, profile.axial + step, n_nodes)
    minus = axial_divergence(bragg, profile.axial - step, n_nodes)
    ds_a = (plus[0] - minus[0]) / (2.0 * step)
    dw_a = (plus[1] - minus[1]) / (2.0 * step)
    return shifts, weights, ds_b, dw_b, ds_a, dw_a


def peak_shape_jacobian(
    two_theta: np.ndarray,
    reflections: ReflectionList,
    radiation: Radiation,
    profile: PeakProfile,
    cell_gradient: np.ndarray,
    names: tuple[str, ...],
) -> ShapeJacobian:
    """P of ``reflections`` at ``two_theta`` and its derivatives (module docstring).

    Parameters
    ----------
    two_theta : ndarray, shape (n_points,)
        Degrees, increasing.
    reflections : ReflectionList
    radiation : Radiation
    profile : PeakProfile
    cell_gradient : ndarray, shape (n_refl, n_cell)
        ∂(1/d²)/∂g_j of each reflection for the cell directions (Å⁻² per unit coefficient); n_cell may be 0.
    names : tuple of str
        The profile directions, from :data:`SHAPE_PARAMETERS`.

    Returns
    -------
    ShapeJacobian
        Directions: the n_cell cell coefficients, then ``names``.
    """
    two_theta = np.asarray(two_theta, dtype=float)
    cell_gradient = np.asarray(cell_gradient, dtype=float).reshape(len(reflections), -1)
    unknown = set(names) - set(SHAPE_PARAMETERS)
    if unknown:
        raise ValueError(f"no derivative of the peak shape for {sorted(unknown)}; known: {SHAPE_PARAMETERS}")
    lines = profile_lines(reflections, radiation, profile)
    n_refl = len(reflections)
    n_dir = cell_gradient.shape[1] + len(names)
    multiplicity = reflections.multiplicity.astype(float)
    lo = np.full(n_refl, np.inf)
    hi = np.full(n_refl, -np.inf)
    nodes = []
    for (centre, fwhm, _, weight, _), (wavelength, _) in zip(lines, radiation.lines, strict=True):
        if profile.axial > 0:
            sin_theta = np.minimum(wavelength / (2.0 * reflections.d_spacing), 1.0)
            bragg = 2.0 * np.degrees(np.arcsin(sin_theta))
            ratio = float(np.max(np.where(weight > 0, axial_span(bragg, profile.axial) / fwhm, 0.0), initial=0.0))
            n_nodes = int(np.clip(math.ceil(AXIAL_NODES_PER_FWHM * ratio), *AXIAL_NODES))
            if n_dir:
                nodes.append(_node_tables(bragg, profile, n_nodes))
            else:  # values only: no node derivatives
                shifts, weights = axial_divergence(bragg, profile.axial, n_nodes)
                zero = np.zeros_like(shifts)
                nodes.append((shifts, weights, zero, zero, zero, zero))
            below, above = np.min(nodes[-1][0], axis=1), np.max(nodes[-1][0], axis=1)
        else:
            shifts, weights = no_axial_nodes(n_refl)
            zero = np.zeros_like(shifts)
            nodes.append((shifts, weights, zero, zero, zero, zero))
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
    derivatives = np.zeros((len(rows), n_dir))
    asymmetry = np.asarray(profile.asymmetry, dtype=float)
    for (centre, fwhm, eta, weight, free), (wavelength, _), tables in zip(lines, radiation.lines, nodes, strict=True):
        shifts, node_weights, ds_b, dw_b, ds_a, dw_a = (np.ascontiguousarray(t, dtype=float) for t in tables)
        chain, _ = _chain_table(reflections, wavelength, profile, centre, fwhm, cell_gradient, tuple(names))
        chain[:, _E["eta"], :] *= free[:, None]  # a clipped η does not move
        sin_theta = np.minimum(wavelength / (2.0 * reflections.d_spacing), 1.0)
        tan_theta = sin_theta / np.sqrt(np.maximum(1.0 - sin_theta**2, 1e-12))
        add_line_values_and_derivatives(
            x,
            column,
            np.ascontiguousarray(centre, dtype=float),
            np.ascontiguousarray(fwhm, dtype=float),
            np.ascontiguousarray(eta, dtype=float),
            np.ascontiguousarray(weight * multiplicity, dtype=float),
            shifts,
            node_weights,
            shifts.min(axis=1),
            shifts.max(axis=1),
            float(profile.cutoff),
            tan_theta,
            asymmetry,
            ds_b,
            dw_b,
            ds_a,
            dw_a,
            np.ascontiguousarray(chain),
            values,
            derivatives,
        )
    return ShapeJacobian(rows.astype(np.int64), column.astype(np.int64), values, derivatives, len(two_theta))


def peak_shape_matrix(
    two_theta: np.ndarray, reflections: ReflectionList, radiation: Radiation, profile: PeakProfile
) -> scipy.sparse.csc_matrix:
    """P (n_points, n_refl) alone, from the same kernel and lines as :func:`peak_shape_jacobian` (η clipped to
    [0, 1] beyond the data, :func:`profile_lines`); equal to :func:`gasolve.diffraction.profile.build_peak_matrix`
    where no η is clipped."""
    jacobian = peak_shape_jacobian(two_theta, reflections, radiation, profile, np.zeros((len(reflections), 0)), ())
    return scipy.sparse.csc_matrix(
        (jacobian.values, (jacobian.rows, jacobian.column)), shape=(jacobian.n_points, len(reflections))
    )
