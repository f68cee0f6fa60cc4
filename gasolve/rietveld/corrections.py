"""Intensity corrections of the specimen: surface roughness (Bragg-Brentano) and cylinder absorption
(Debye-Scherrer capillary), each a factor on every reflection's intensity at its Bragg angle, with analytic
derivatives.

Surface roughness lowers the low-angle intensities of a flat, rough or loosely packed specimen: the beam sees fewer
grains near grazing incidence. Left out, B takes up the depression (too small or negative B). Two forms:

- **Suortti** (J. Appl. Cryst. 5 (1972) 325; GSAS-II's SurfaceRough, SRA = p, SRB = q):
  SR(θ) = (p + (1 - p) exp(-q / sin θ)) / (p + (1 - p) exp(-q)), normalised to 1 at 2θ = 180°;
  0 <= p <= 1, q >= 0. q = 0 or p = 1 is no correction.
- **Pitschke, Hermann & Mattern** (Powder Diffr. 8 (1993) 74): the intensity is multiplied by 1 - P with
  P = P0 + C u (1 - u), u = τ / sin θ, τ the normalised roughness. P0 is the same for every reflection and goes
  into the scale, which leaves SR(θ) = 1 - c u (1 - u), c = C / (1 - P0). The paper's analysis holds for
  τ² / sin θ << 1 and gives τ <= 0.3 for real powders. u (1 - u) rises with u only up to u = 1/2: beyond it
  (sin θ < 2τ) the form would depress the lowest angles less than the next ones, which no rough surface does. τ is
  therefore kept in [0, min(0.3, sin θ_min / 2)], θ_min the pattern's lowest angle, and c in [0, 4), so that SR is
  in (0, 1] and rises with θ over the data. c = 0 is no correction.

Cylinder absorption: the transmission factor of a cylinder of radius R fully bathed in the beam, perpendicular to
the diffraction plane,

    A(θ, μR) = (1 / π R²) ∫∫_disc exp(-μ (l_in + l_out)) dx dy,

l_in the path from where the beam enters to the point, l_out from the point out along 2θ (International Tables
Vol. C (2004), 6.3.3.3; the integral that Lobanov & Alte da Veiga, 6th EPDIC (1998) abstract P12-16, fit and GSAS-II
uses). It is evaluated here by Gauss-Legendre quadrature over the disc (x = cos α · s, y = sin α: smooth in s and
α), not by a fitted formula, and ∂A/∂μR is the same quadrature of -(l_in + l_out)/R e^{...}. For small μR,
A ≈ 1 - (16 / 3π) μR at every angle; the angle dependence comes at second order, which is why μR and B are strongly
correlated: give μR from the composition and packing where it is known.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Correction kinds and their parameters, in vector order.
ROUGHNESS_KINDS = ("suortti", "pitschke")
PARAMETERS = {"suortti": ("SR_p", "SR_q"), "pitschke": ("SR_c", "SR_tau"), "cylinder": ("mu_R",)}
#: Pitschke's τ is kept at or below this (the paper: τ < 0.3 for real powders).
PITSCHKE_TAU_MAX = 0.3
#: Pitschke's c stays below 4, where 1 - c u (1 - u) reaches 0 at u = 1/2.
PITSCHKE_C_MAX = 3.99
#: Suortti's q is kept at or below this (exp(-q / sin θ) stays representable at low angles).
SUORTTI_Q_MAX = 20.0
#: μR is kept at or below this.
MU_R_MAX = 20.0
#: Gauss-Legendre nodes per axis of the disc quadrature: A to 1e-6 (relative) for μR <= 1, 3e-5 at 5, 1e-4 at 10
#: (against 160 nodes).
DISC_NODES = 48


def suortti(sin_theta: np.ndarray, p: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    """Suortti's surface-roughness factor (module docstring) and its derivatives.

    Parameters
    ----------
    sin_theta : ndarray, shape (n,)
        sin θ of the reflections, in (0, 1].
    p, q : float
        0 <= p <= 1, q >= 0.

    Returns
    -------
    factor : ndarray, shape (n,)
    derivatives : ndarray, shape (2, n)
        ∂/∂p, ∂/∂q.
    """
    e = np.exp(-q / sin_theta)
    e1 = np.exp(-q)
    numerator = p + (1.0 - p) * e
    denominator = p + (1.0 - p) * e1
    factor = numerator / denominator
    d_p = ((1.0 - e) * denominator - (1.0 - e1) * numerator) / denominator**2
    d_q = (-(1.0 - p) * e / sin_theta * denominator + (1.0 - p) * e1 * numerator) / denominator**2
    return factor, np.array([d_p, d_q])


def pitschke(sin_theta: np.ndarray, c: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Pitschke, Hermann & Mattern's surface-roughness factor 1 - c u (1 - u), u = τ / sin θ (module docstring),
    and its derivatives ∂/∂c, ∂/∂τ, shapes (n,) and (2, n)."""
    u = tau / sin_theta
    factor = 1.0 - c * u * (1.0 - u)
    d_c = -u * (1.0 - u)
    d_tau = -c * (1.0 - 2.0 * u) / sin_theta
    return factor, np.array([d_c, d_tau])


def _disc_quadrature(nodes: int = DISC_NODES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points (x, y) of the unit disc and weights summing to 1 (the disc's mean): x = cos α · s, y = sin α,
    dx dy = cos² α ds dα, Gauss-Legendre in s ∈ [-1, 1] and α ∈ [-π/2, π/2]."""
    s, ws = np.polynomial.legendre.leggauss(nodes)
    t, wt = np.polynomial.legendre.leggauss(nodes)
    alpha = 0.5 * np.pi * t
    x = np.outer(np.cos(alpha), s).ravel()
    y = np.repeat(np.sin(alpha), nodes)
    weights = np.outer(wt * 0.5 * np.pi * np.cos(alpha) ** 2, ws).ravel() / np.pi
    return x, y, weights


_DISC = _disc_quadrature()


def cylinder_path_lengths(two_theta_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(l_in + l_out)/R at the quadrature points of the unit disc for each angle, shape (n, n_points), and the
    quadrature weights (n_points,) (mean over the disc)."""
    x, y, weights = _DISC
    l_in = x + np.sqrt(np.maximum(1.0 - y**2, 0.0))  # the beam runs along +x
    angle = np.radians(np.asarray(two_theta_deg, dtype=float))[:, None]
    along = x * np.cos(angle) + y * np.sin(angle)  # p · d, d the diffracted direction
    l_out = -along + np.sqrt(np.maximum(along**2 + 1.0 - x**2 - y**2, 0.0))
    return l_in[None, :] + l_out, weights


def cylinder_absorption(two_theta_deg: np.ndarray, mu_r: float, paths=None) -> tuple[np.ndarray, np.ndarray]:
    """Transmission factor A(2θ, μR) of a cylinder (module docstring) and ∂A/∂μR, shapes (n,) and (1, n).

    Parameters
    ----------
    two_theta_deg : ndarray, shape (n,)
    mu_r : float
        Linear absorption coefficient times the radius, >= 0.
    paths : tuple, optional
        :func:`cylinder_path_lengths` of the same angles, to reuse.
    """
    lengths, weights = paths if paths is not None else cylinder_path_lengths(two_theta_deg)
    attenuation = np.exp(-mu_r * lengths)
    return attenuation @ weights, (-(lengths * attenuation) @ weights)[None, :]


@dataclass(frozen=True)
class IntensityCorrection:
    """One specimen correction of a refinement: its kind, parameter names, start values and bounds.

    Attributes
    ----------
    kind : {"suortti", "pitschke", "cylinder"}
    start : tuple of float
        Start values, in the order of :data:`PARAMETERS`.
    refine : bool
        False: the parameters are held at ``start`` (a μR known from the composition and packing).
    """

    kind: str
    start: tuple[float, ...]
    refine: bool = True

    @property
    def names(self) -> tuple[str, ...]:
        return PARAMETERS[self.kind]

    @property
    def group(self) -> str:
        return "absorption" if self.kind == "cylinder" else "surface_roughness"

    def bounds(self, sin_theta_min: float) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of the parameters (module docstring); sin θ of the pattern's lowest angle,
        ``sin_theta_min``, bounds Pitschke's τ."""
        if self.kind == "suortti":
            return np.array([0.0, 0.0]), np.array([1.0, SUORTTI_Q_MAX])
        if self.kind == "pitschke":
            return np.array([0.0, 0.0]), np.array([PITSCHKE_C_MAX, min(PITSCHKE_TAU_MAX, sin_theta_min / 2)])
        return np.array([0.0]), np.array([MU_R_MAX])

    def dormant(self, values: np.ndarray) -> np.ndarray:
        """Which parameters have no effect at ``values`` (their partner switches the correction off), shape
        (n_parameters,) bool: Suortti's p at q = 0 and q at p = 1; Pitschke's τ at c = 0 and c at τ = 0."""
        if self.kind == "suortti":
            return np.array([values[1] == 0.0, values[0] == 1.0])
        if self.kind == "pitschke":
            return np.array([values[1] == 0.0, values[0] == 0.0])
        return np.array([False])

    def factor(self, sin_theta: np.ndarray, two_theta_deg: np.ndarray, values: np.ndarray, paths=None):
        """The factor on each reflection's intensity and its derivatives, shapes (n,) and (n_parameters, n)."""
        if self.kind == "suortti":
            return suortti(sin_theta, *values)
        if self.kind == "pitschke":
            return pitschke(sin_theta, *values)
        return cylinder_absorption(two_theta_deg, float(values[0]), paths)


#: Start values when the config gives none: Suortti at p = 0, q = 0 (q acts alone first, p once q > 0);
#: Pitschke at c = 0 and τ = 0.05 or its bound, if lower (c acts first); μR 0.
DEFAULT_START = {"suortti": (0.0, 0.0), "pitschke": (0.0, 0.05), "cylinder": (0.0,)}
