"""Slow, readable NumPy references for the powder-pattern engine (no Numba, no engine physics).

Everything here is computed from the textbook definitions, with loops where the engine vectorises or
factorises, so that a test comparing the two checks the engine's bookkeeping (symmetry factors, special
positions, multiplicities, systematic absences, peak-matrix storage, the quadratic form of Rwp) rather than
reusing it. Only inputs are borrowed from the engine: ``PeakProfile`` and ``Radiation`` (instrument numbers)
and ``chebyshev_basis`` (the background basis functions, which define what the background coefficients mean).

- Symmetry: operators from gemmi's Hall-symbol tables, applied atom by atom; coinciding images are merged.
- Structure factor: F(h) = Σ_atoms occ f0(s) exp(-B s²) exp(2πi h·x) over every atom of the cell
  (International Tables Vol. C, 6.1.1.3 and 6.2.1), f0 from the IT92 four-Gaussian coefficients
  (ITC Table 6.1.1.4, as tabulated in gemmi).
- Reflections: every index triple inside the limiting sphere, one by one (no merging, no multiplicities, no
  absence rules: absent reflections have F = 0 by themselves).
- Profile: y(2θ) = Σ_hkl Σ_lines w_line |F|² LP(2θ_B) pV(2θ - 2θ_B - zero) with a unit-area pseudo-Voigt of
  Caglioti width H² = U tan²θ_B + V tan θ_B + W at the Bragg angle (Caglioti, Paoletti & Ricci 1958),
  mixing η = η0 + η1·(2θ_B + zero) at the observed peak centre, cut at ``cutoff`` FWHM from each line's
  centre, and LP = (1 + K cos² 2θ_B) / ((1 + K) sin² θ_B cos θ_B) with K = cos² 2θ_M (K = 1 without a
  monochromator).
- Scale and background: ordinary weighted linear least squares on the design matrix [y_peaks, B].
- Rwp = sqrt(Σ w (y_obs - y_calc)² / Σ w y_obs²) (Young, The Rietveld Method, 1993, ch. 1).
- Dynamical occupancy correction (Favre-Nicolin & Černý 2002): each site's occupancy divided by the weighted
  count of identical images overlapping it, every image kept as an atom of its own and distances by brute force
  over neighbouring cells.
"""

from __future__ import annotations

import itertools
import math

import gemmi
import numpy as np

from gasolve.diffraction.background import chebyshev_basis
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import Radiation


def symmetry_operators(hall: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """All operators (R, t) of a space group, centring included, from gemmi's Hall-symbol tables."""
    operators = []
    for op in gemmi.symops_from_hall(hall):
        rotation = np.array(op.rot, dtype=float) / gemmi.Op.DEN
        translation = np.array(op.tran, dtype=float) / gemmi.Op.DEN
        operators.append((rotation, translation))
    return operators


def _same_position(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    delta = a - b
    return bool(np.all(np.abs(delta - np.round(delta)) < tol))


def expand_cell(
    hall: str,
    elements: list[str],
    frac: np.ndarray,
    occupancy: np.ndarray,
    b_iso: np.ndarray,
    tol: float = 1e-4,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every atom of the unit cell: apply each operator to each independent atom, drop coinciding images.

    Parameters
    ----------
    hall : str
        Hall symbol of the space group.
    elements : list of str, length n_sites
    frac : ndarray, shape (n_sites, 3)
    occupancy, b_iso : ndarray, shape (n_sites,)
        Occupancies and isotropic B (Å²).
    tol : float
        Images closer than this (fractional units, per axis, modulo 1) are one atom.

    Returns
    -------
    elements : list of str, length n_atoms
    frac : ndarray, shape (n_atoms, 3), in [0, 1)
    occupancy, b_iso : ndarray, shape (n_atoms,)
    """
    operators = symmetry_operators(hall)
    out_elements: list[str] = []
    out_frac: list[np.ndarray] = []
    out_occ: list[float] = []
    out_b: list[float] = []
    for element, x, occ, b in zip(elements, np.asarray(frac, float), occupancy, b_iso, strict=True):
        images: list[np.ndarray] = []
        for rotation, translation in operators:
            image = np.mod(rotation @ x + translation, 1.0)
            if not any(_same_position(image, seen, tol) for seen in images):
                images.append(image)
        for image in images:
            out_elements.append(element)
            out_frac.append(image)
            out_occ.append(float(occ))
            out_b.append(float(b))
    return out_elements, np.array(out_frac).reshape(-1, 3), np.array(out_occ), np.array(out_b)


def special_position_projector(hall: str, frac: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Matrix P (3, 3) such that x + P d stays on the Wyckoff position of ``frac`` for any shift d.

    P is the mean of the rotation parts of the site-symmetry operators (those that map ``frac`` onto itself
    modulo a lattice translation); for a general position it is the identity.
    """
    frac = np.asarray(frac, dtype=float)
    stabiliser = [r for r, t in symmetry_operators(hall) if _same_position(r @ frac + t, frac, tol)]
    return np.mean(stabiliser, axis=0)


def symmetrise_position(hall: str, frac: np.ndarray, tol: float = 1e-4) -> np.ndarray:
    """Put a position that is within ``tol`` of a special position exactly onto it.

    The mean of its images under the site-symmetry operators, each brought back next to ``frac`` by a
    lattice translation (CIFs often give 1/3 as 0.33333333, which is off the position by 3e-9).
    """
    frac = np.asarray(frac, dtype=float)
    images = []
    for rotation, translation in symmetry_operators(hall):
        image = rotation @ frac + translation
        if _same_position(image, frac, tol):
            images.append(image - np.round(image - frac))
    return np.mean(images, axis=0)


def direct_basis(cell_parameters) -> np.ndarray:
    """Cartesian cell vectors (rows a, b, c; Å) from a, b, c (Å) and alpha, beta, gamma (degrees)."""
    a, b, c, alpha, beta, gamma = cell_parameters
    ca, cb, cg = (math.cos(math.radians(angle)) for angle in (alpha, beta, gamma))
    sg = math.sin(math.radians(gamma))
    cx = cb
    cy = (ca - cb * cg) / sg
    cz = math.sqrt(1.0 - cx * cx - cy * cy)
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [c * cx, c * cy, c * cz]])


def d_spacings(cell_parameters, hkl: np.ndarray) -> np.ndarray:
    """d (Å) = 1 / |h a* + k b* + l c*| with the reciprocal vectors from the inverse of the direct basis."""
    reciprocal = np.linalg.inv(direct_basis(cell_parameters)).T  # rows a*, b*, c* (Å⁻¹, no 2π)
    g = np.asarray(hkl, dtype=float) @ reciprocal
    return 1.0 / np.linalg.norm(g, axis=1)


def all_reflections(cell_parameters, d_min: float) -> tuple[np.ndarray, np.ndarray]:
    """Every index triple h != 0 with d >= ``d_min`` (Å): no merging, no absences. Sorted by decreasing d."""
    a, b, c = cell_parameters[:3]
    # |h| <= a / d_min bounds every index of the sphere 1/d <= 1/d_min, whatever the angles.
    limits = [math.ceil(length / d_min) for length in (a, b, c)]
    grid = np.stack(np.meshgrid(*(np.arange(-n, n + 1) for n in limits), indexing="ij"), axis=-1).reshape(-1, 3)
    grid = grid[np.any(grid != 0, axis=1)]
    d = d_spacings(cell_parameters, grid)
    keep = d >= d_min
    order = np.argsort(-d[keep], kind="stable")
    return grid[keep][order], d[keep][order]


def form_factor_it92(element: str, stol2: np.ndarray) -> np.ndarray:
    """f0 (electrons) = Σ_i a_i exp(-b_i s²) + c at s² = (sin θ / λ)² (Å⁻²), ITC Table 6.1.1.4."""
    coefficients = gemmi.Element(element).it92.get_coefs()
    a, b, c = coefficients[0:4], coefficients[4:8], coefficients[8]
    total = np.full(np.shape(stol2), float(c))
    for a_i, b_i in zip(a, b, strict=True):
        total = total + a_i * np.exp(-b_i * np.asarray(stol2, dtype=float))
    return total


def structure_factors(
    hkl: np.ndarray,
    d_spacing: np.ndarray,
    elements: list[str],
    frac: np.ndarray,
    occupancy: np.ndarray,
    b_iso: np.ndarray,
) -> np.ndarray:
    """Complex F(hkl) (electrons) over every atom of the cell, one atom at a time.

    Parameters
    ----------
    hkl : ndarray, shape (n_refl, 3)
    d_spacing : ndarray, shape (n_refl,), Å
    elements, frac, occupancy, b_iso : the expanded cell (see :func:`expand_cell`).

    Returns
    -------
    ndarray, shape (n_refl,), complex
    """
    stol2 = 0.25 / np.asarray(d_spacing, dtype=float) ** 2
    hkl = np.asarray(hkl, dtype=float)
    total = np.zeros(len(hkl), dtype=complex)
    for element, x, occ, b in zip(elements, frac, occupancy, b_iso, strict=True):
        scattering = occ * form_factor_it92(element, stol2) * np.exp(-b * stol2)
        total += scattering * np.exp(2j * np.pi * (hkl @ x))
    return total


def model_structure_factors(
    hall: str,
    cell_parameters,
    elements: list[str],
    frac: np.ndarray,
    occupancy: np.ndarray,
    b_iso: np.ndarray,
    hkl: np.ndarray,
) -> np.ndarray:
    """F(hkl) of independent sites ``frac`` (n_sites, 3) after expansion by the group's operators."""
    cell_elements, cell_frac, cell_occ, cell_b = expand_cell(hall, elements, frac, occupancy, b_iso)
    return structure_factors(hkl, d_spacings(cell_parameters, hkl), cell_elements, cell_frac, cell_occ, cell_b)


def lorentz_polarisation(
    two_theta_deg: float, monochromator_two_theta: float = 0.0, polarisation: float | None = None
) -> float:
    """(1 + K cos² 2θ) / ((1 + K) sin² θ cos θ), K = cos² 2θ_M, for one Bragg angle 2θ (degrees).

    With a beam polarisation P (GSAS-II's Polariz.): Lorentz 1/(sin² θ cos θ) times P + (1 − P) cos² 2θ, the
    intensities of the components perpendicular to (unchanged) and in (× cos² 2θ) the diffraction plane.
    """
    theta = math.radians(two_theta_deg) / 2.0
    if polarisation is not None:
        lorentz = 1.0 / (math.sin(theta) ** 2 * math.cos(theta))
        return lorentz * (polarisation + (1.0 - polarisation) * math.cos(2.0 * theta) ** 2)
    k = math.cos(math.radians(monochromator_two_theta)) ** 2
    return (1.0 + k * math.cos(2.0 * theta) ** 2) / ((1.0 + k) * math.sin(theta) ** 2 * math.cos(theta))


def pseudo_voigt(x: np.ndarray, fwhm: float, eta: float) -> np.ndarray:
    """Unit-area pseudo-Voigt (per degree) at offsets ``x`` (degrees), Gaussian and Lorentzian of FWHM H."""
    gauss = (2.0 / fwhm) * math.sqrt(math.log(2.0) / math.pi) * np.exp(-4.0 * math.log(2.0) * x**2 / fwhm**2)
    lorentz = (2.0 / (math.pi * fwhm)) / (1.0 + 4.0 * x**2 / fwhm**2)
    return eta * lorentz + (1.0 - eta) * gauss


def berar_baldinozzi(z: np.ndarray, tan_theta: float, asymmetry: tuple[float, float, float, float]) -> np.ndarray:
    """Asymmetry factor 1 + (P1 Fa(z) + P2 Fb(z)) / tan θ + (P3 Fa(z) + P4 Fb(z)) / tan 2θ, Fa = 2z exp(-z²),
    Fb = 2(2z² - 3) Fa (J. Appl. Cryst. 26 (1993) 128; FullProf's form), z the offset in FWHM units."""
    fa = 2.0 * z * np.exp(-(z**2))
    fb = 2.0 * (2.0 * z**2 - 3.0) * fa
    theta = math.atan(tan_theta)
    p1, p2, p3, p4 = asymmetry
    return 1.0 + (p1 * fa + p2 * fb) / math.tan(theta) + (p3 * fa + p4 * fb) / math.tan(2.0 * theta)


def fcj_profile(x: np.ndarray, bragg: float, fwhm: float, eta: float, sh_l: float) -> np.ndarray:
    """Pseudo-Voigt convolved with the Finger-Cox-Jephcoat axial-divergence weight (J. Appl. Cryst. 27 (1994)
    892, S/L = H/L = ``sh_l``), by adaptive quadrature over the angle 2φ at which each ray is recorded.

    ``x`` are offsets (degrees) from the peak at Bragg angle ``bragg`` (degrees); W(2φ) = (2 sh_l - h) /
    (h |cos 2φ|) with h = sqrt(cos² 2φ / cos² 2θ - 1), between 2φ_min and 2θ.
    """
    from scipy.integrate import quad

    t0 = math.radians(bragg)
    t_min = math.acos(max(-1.0, min(1.0, math.cos(t0) * math.sqrt(1.0 + (2.0 * sh_l) ** 2))))

    def weight(t):
        h = math.sqrt(max(math.cos(t) ** 2 / math.cos(t0) ** 2 - 1.0, 0.0))
        return max(2.0 * sh_l - h, 0.0) / (h * abs(math.cos(t))) if h > 0 else 0.0

    lo, hi = sorted((t_min, t0))
    norm = quad(weight, lo, hi, limit=200)[0]
    values = []
    for offset in np.atleast_1d(x):

        def integrand(t, offset=offset):
            return weight(t) * pseudo_voigt(np.array([offset - math.degrees(t - t0)]), fwhm, eta)[0]

        values.append(quad(integrand, lo, hi, limit=400)[0] / norm)
    return np.array(values)


def reflections_for_pattern(
    cell_parameters, two_theta: np.ndarray, radiation: Radiation, margin: float = 10.0
) -> tuple[np.ndarray, np.ndarray]:
    """Every hkl whose Bragg angle, for some emission line, lies at most ``margin`` degrees past the pattern.

    Reflections further out are ignored: their peaks are taken not to reach the pattern (Caglioti widths
    diverge towards 2θ = 180°, so "every reflection in the limiting sphere" would not be a sensible model).
    """
    top = min(float(two_theta[-1]) + margin, 179.0)
    shortest = min(wavelength for wavelength, _ in radiation.lines)
    return all_reflections(cell_parameters, shortest / (2.0 * math.sin(math.radians(top) / 2.0)))


def peak_profile(
    two_theta: np.ndarray,
    d_spacing: np.ndarray,
    intensity: np.ndarray,
    radiation: Radiation,
    profile: PeakProfile,
    multiplicity: np.ndarray | None = None,
) -> np.ndarray:
    """Peak part of a pattern for unit scale, reflection by reflection and line by line.

    Parameters
    ----------
    two_theta : ndarray, shape (n_points,), degrees
    d_spacing : ndarray, shape (n_refl,), Å
    intensity : ndarray, shape (n_refl,)
        |F|² of each reflection.
    radiation, profile : instrument.
    multiplicity : ndarray, shape (n_refl,), optional
        Default 1 (every hkl listed separately).

    Returns
    -------
    ndarray, shape (n_points,)
    """
    two_theta = np.asarray(two_theta, dtype=float)
    if multiplicity is None:
        multiplicity = np.ones(len(d_spacing))
    u, v, w = profile.caglioti
    y = np.zeros_like(two_theta)
    for d, f2, m in zip(d_spacing, intensity, multiplicity, strict=True):
        for wavelength, weight in radiation.lines:
            sin_theta = wavelength / (2.0 * d)
            if sin_theta >= 1.0:
                continue
            bragg = 2.0 * math.degrees(math.asin(sin_theta))
            centre = bragg + profile.zero + profile.displacement * math.cos(math.radians(bragg) / 2.0)
            tan_theta = math.tan(math.radians(bragg) / 2.0)
            fwhm = math.sqrt(u * tan_theta**2 + v * tan_theta + w)
            eta = profile.eta + profile.eta_slope * centre
            reach = profile.cutoff * fwhm
            inside = np.abs(two_theta - centre) <= reach
            if not np.any(inside):
                continue
            lp = lorentz_polarisation(bragg, profile.monochromator_two_theta, profile.polarisation)
            x = two_theta[inside] - centre
            shape = pseudo_voigt(x, fwhm, eta) * berar_baldinozzi(x / fwhm, tan_theta, profile.asymmetry)
            y[inside] += m * f2 * weight * lp * shape
    return y


def fit_scale_background(
    y_obs: np.ndarray, weights: np.ndarray, peaks: np.ndarray, background_terms: int, two_theta: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted least squares of y_obs ≈ s·peaks + B c; if the best s is negative, s = 0 and only c is fitted.

    Returns
    -------
    scale : float
    coefficients : ndarray, shape (background_terms,)
        Chebyshev background coefficients.
    y_calc : ndarray, shape (n_points,)
    """
    basis = chebyshev_basis(two_theta, background_terms)
    root_w = np.sqrt(weights)
    design = np.column_stack([peaks, basis]) * root_w[:, None]
    solution = np.linalg.lstsq(design, root_w * y_obs, rcond=None)[0]
    scale, coefficients = float(solution[0]), solution[1:]
    if scale < 0.0:
        scale = 0.0
        if background_terms:
            coefficients = np.linalg.lstsq(basis * root_w[:, None], root_w * y_obs, rcond=None)[0]
        else:
            coefficients = np.zeros(0)
    return scale, coefficients, scale * peaks + basis @ coefficients


def unconstrained_scale(
    y_obs: np.ndarray, weights: np.ndarray, peaks: np.ndarray, background_terms: int, two_theta: np.ndarray
) -> float:
    """Best scale of the weighted least-squares fit without the s >= 0 rule."""
    basis = chebyshev_basis(two_theta, background_terms)
    root_w = np.sqrt(weights)
    design = np.column_stack([peaks, basis]) * root_w[:, None]
    return float(np.linalg.lstsq(design, root_w * y_obs, rcond=None)[0][0])


def rwp(y_obs: np.ndarray, y_calc: np.ndarray, weights: np.ndarray) -> float:
    """sqrt(Σ w (y_obs - y_calc)² / Σ w y_obs²)."""
    return float(np.sqrt(np.sum(weights * (y_obs - y_calc) ** 2) / np.sum(weights * y_obs**2)))


def model_pattern(
    hall: str,
    cell_parameters,
    elements: list[str],
    frac: np.ndarray,
    occupancy: np.ndarray,
    b_iso: np.ndarray,
    two_theta: np.ndarray,
    radiation: Radiation,
    profile: PeakProfile,
    margin: float = 10.0,
) -> np.ndarray:
    """Unit-scale peak pattern of one model (independent sites ``frac``, shape (n_sites, 3)).

    ``margin`` (degrees): see :func:`reflections_for_pattern`.
    """
    hkl, d = reflections_for_pattern(cell_parameters, two_theta, radiation, margin)
    f = model_structure_factors(hall, cell_parameters, elements, frac, occupancy, b_iso, hkl)
    return peak_profile(two_theta, d, np.abs(f) ** 2, radiation, profile)


# --- the dynamical occupancy correction (FOX) -------------------------------------------------------------------


def overlap_weight(distance: float, radius: float) -> float:
    """FOX-like overlap weight of two identical atoms ``distance`` Å apart: 1 up to r/2, a smooth step
    (1 - t²)² with t = (d - r/2) / (r/2) down to 0 at r, 0 beyond (gasolve.scoring.overlap's definition)."""
    half = radius / 2.0
    if distance <= half:
        return 1.0
    if distance >= radius:
        return 0.0
    t = (distance - half) / half
    return (1.0 - t * t) ** 2


def shortest_distance(cell_parameters, a: np.ndarray, b: np.ndarray, reach: int = 2) -> float:
    """Shortest Cartesian distance (Å) between the fractional points ``a`` and ``b`` over all lattice images of
    ``b`` within ``reach`` cells, by brute force."""
    basis = direct_basis(cell_parameters)
    base = np.asarray(b, float) - np.asarray(a, float)
    base -= np.round(base)
    best = math.inf
    for shift in np.ndindex(*(2 * reach + 1,) * 3):
        vector = (base + np.array(shift) - reach) @ basis
        best = min(best, float(np.linalg.norm(vector)))
    return best


def occupancy_factors(
    hall: str,
    cell_parameters,
    elements: list[str],
    frac: np.ndarray,
    multiplicity: np.ndarray,
    radius: float,
    identical: bool = False,
) -> np.ndarray:
    """c_j = 1 / Σ_i Σ_ops (multiplicity_i / n_ops) w(|op(x_i) - x_j|) for every site j, one term at a time.

    The sum runs over every operator image of site j itself and, with ``identical``, of every other site of the
    same element; the identity image of site j gives w(0) = 1.
    """
    operators = symmetry_operators(hall)
    n_ops = len(operators)
    factors = []
    for j, (element_j, x_j) in enumerate(zip(elements, frac, strict=True)):
        total = 0.0
        for i, (element_i, x_i) in enumerate(zip(elements, frac, strict=True)):
            if i != j and not (identical and element_i == element_j):
                continue
            for rotation, translation in operators:
                image = rotation @ np.asarray(x_i, float) + translation
                distance = shortest_distance(cell_parameters, x_j, image)
                total += multiplicity[i] / n_ops * overlap_weight(distance, radius)
        factors.append(1.0 / total)
    return np.array(factors)


def corrected_model_pattern(
    hall: str,
    cell_parameters,
    elements: list[str],
    frac: np.ndarray,
    occupancy: np.ndarray,
    b_iso: np.ndarray,
    two_theta: np.ndarray,
    radiation: Radiation,
    profile: PeakProfile,
    radius: float,
    identical: bool = False,
) -> np.ndarray:
    """Unit-scale peak pattern of general-position sites with the dynamical occupancy correction.

    Every operator image of every site is kept as an atom of its own (no merging), with occupancy
    occupancy_j · c_j (:func:`occupancy_factors`): coinciding images then add up to the right number of atoms.
    """
    operators = symmetry_operators(hall)
    n_sites = len(elements)
    factors = occupancy_factors(
        hall, cell_parameters, elements, frac, np.full(n_sites, len(operators)), radius, identical
    )
    atoms, positions, weights, displacements = [], [], [], []
    for element, x, occ, b, c in zip(elements, np.asarray(frac, float), occupancy, b_iso, factors, strict=True):
        for rotation, translation in operators:
            atoms.append(element)
            positions.append(np.mod(rotation @ x + translation, 1.0))
            weights.append(occ * c)
            displacements.append(b)
    hkl, d = reflections_for_pattern(cell_parameters, two_theta, radiation)
    f = structure_factors(hkl, d, atoms, np.array(positions), np.array(weights), np.array(displacements))
    return peak_profile(two_theta, d, np.abs(f) ** 2, radiation, profile)


def antibump_penalty(
    hall: str, cell_parameters, frac: np.ndarray, distance: float, same_position: float = 1e-3
) -> float:
    """Anti-bump penalty of one model: Σ over every pair of atoms of the cell (each site expanded by every
    operator, centring included, coinciding images kept as atoms of their own) of max(0, 1 - d/d0)², d the
    Cartesian length of the fractional difference minus its rounding; a pair of images of one site closer than
    ``same_position`` (Å) is one atom on a special position and counts 0."""
    operators = symmetry_operators(hall)
    basis = direct_basis(cell_parameters)
    sites, positions = [], []
    for site, x in enumerate(np.asarray(frac, float)):
        for rotation, translation in operators:
            sites.append(site)
            positions.append(rotation @ x + translation)
    sites, positions = np.array(sites), np.array(positions)
    total = 0.0
    for i in range(len(positions)):  # atom i against every later atom j
        delta = positions[i] - positions[i + 1 :]
        delta -= np.round(delta)
        d = np.linalg.norm(delta @ basis, axis=1)
        same_atom = (sites[i + 1 :] == sites[i]) & (d < same_position)
        total += float(np.sum(np.where(same_atom, 0.0, np.maximum(0.0, 1.0 - d / distance) ** 2)))
    return total


def unindexed_lines(
    q_obs: np.ndarray, q_tol: np.ndarray, coefficients: np.ndarray, r_lo: np.ndarray, r_hi: np.ndarray
) -> int:
    """Lines of one dichotomy box that no index reaches: Q(hkl) = c . R over the box R in [r_lo, r_hi].

    The range of a linear form over a box, by brute force over the box's 2**n corners.
    """
    n_par = len(r_lo)
    corners = np.array(
        [[r_hi[p] if (corner >> p) & 1 else r_lo[p] for p in range(n_par)] for corner in range(2**n_par)]
    )
    values = coefficients @ corners.T  # (n_hkl, n_corners)
    q_lo, q_hi = values.min(axis=1), values.max(axis=1)
    missing = 0
    for q, tol in zip(q_obs, q_tol, strict=True):
        if not np.any((q_lo - tol <= q) & (q <= q_hi + tol)):
            missing += 1
    return missing


def extinction_log_ratio(intensity: float, esd: float, mean: float, contamination: float = 0.0) -> float:
    """log p(I | absent) - log p(I | present) by quadrature: absent I ~ N(0, esd²), or with probability
    ``contamination`` a foreign line distributed as a present one; present I = J + e with J ~ Exp(mean) (Wilson,
    acentric) and e ~ N(0, esd²), the convolution integrated numerically over J >= 0."""
    import scipy.integrate

    def gauss(x):
        return math.exp(-0.5 * (x / esd) ** 2) / (esd * math.sqrt(2 * math.pi))

    centre = max(intensity, 0.0)
    points = sorted({centre, mean, max(centre - 10 * esd, 0.0), centre + 10 * esd})
    present = 0.0
    edges = [0.0, *points, centre + 40 * esd + 40 * mean]
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        if hi > lo:
            present += scipy.integrate.quad(
                lambda j: math.exp(-j / mean) / mean * gauss(intensity - j), lo, hi, epsabs=0.0, epsrel=1e-10, limit=200
            )[0]
    log_absent = -0.5 * (intensity / esd) ** 2 - math.log(esd * math.sqrt(2 * math.pi))
    if contamination == 0.0:
        return log_absent - math.log(present)
    return math.log((1 - contamination) * math.exp(log_absent) + contamination * present) - math.log(present)


def holohedral_absence(symbol: str, holohedry: str, hkl) -> list[bool]:
    """For each reflection: absent in ``symbol`` for every index triple of its ``holohedry`` orbit, one by one with
    gemmi's ``GroupOps.is_systematically_absent`` (h R for every rotation R of the holohedral Hall operators)."""
    import gemmi

    ops = gemmi.find_spacegroup_by_name(symbol).operations()
    rotations = [np.array(op.rot) // gemmi.Op.DEN for op in gemmi.find_spacegroup_by_name(holohedry).operations()]
    out = []
    for h in hkl:
        orbit = {tuple(int(x) for x in np.asarray(h) @ r) for r in rotations}
        out.append(all(ops.is_systematically_absent(list(k)) for k in orbit))
    return out


def anomalous_powder_intensities(
    hkl: np.ndarray,
    d_spacing: np.ndarray,
    species: list[str],
    frac: np.ndarray,
    occupancy: np.ndarray,
    b_iso: np.ndarray,
    f0,
    f_prime: dict[str, float],
    f_double_prime: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Powder intensity of each reflection with complex scattering factors, one atom and one reflection at a time.

    f = f0(s) + f' + i f'' (International Tables Vol. C, 4.2.6), the same f for h and -h, so that
    |F(h)|² ≠ |F(-h)|² in a non-centrosymmetric structure; a powder line holds both: I = (|F(h)|² + |F(-h)|²) / 2.

    Parameters
    ----------
    hkl : ndarray, shape (n_refl, 3)
    d_spacing : ndarray, shape (n_refl,), Å
    species, frac, occupancy, b_iso : every atom of the cell (:func:`expand_cell`), species as keys of the tables.
    f0 : callable (species, s² in Å⁻²) -> electrons
    f_prime, f_double_prime : dict species -> electrons

    Returns
    -------
    intensity, f_plus_squared, f_minus_squared : ndarray, shape (n_refl,) each
    """
    plus = np.zeros(len(hkl))
    minus = np.zeros(len(hkl))
    for k in range(len(hkl)):
        h = np.asarray(hkl[k], dtype=float)
        s2 = 0.25 / float(d_spacing[k]) ** 2
        f_h = 0j
        f_minus_h = 0j
        for name, x, occ, b in zip(species, frac, occupancy, b_iso, strict=True):
            f = complex(float(f0(name, s2)) + f_prime[name], f_double_prime[name]) * occ * math.exp(-b * s2)
            f_h += f * np.exp(2j * np.pi * float(h @ x))
            f_minus_h += f * np.exp(-2j * np.pi * float(h @ x))
        plus[k] = abs(f_h) ** 2
        minus[k] = abs(f_minus_h) ** 2
    return 0.5 * (plus + minus), plus, minus


def peak_derivative_4point(model, x: np.ndarray, j: int) -> np.ndarray:
    """d(peaks)/dx_j of a Rietveld model by a 4-point (O(h⁴)) central difference with twice the model's step:
    the independent estimate the analytic derivatives are checked against."""
    h = 2.0 * model.layout.steps(x)[j]
    values = []
    for k in (-2, -1, 1, 2):
        trial = np.array(x, dtype=float)
        trial[j] += k * h
        values.append(model.peaks(trial))
    return (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)


def anisotropic_powder_intensities(
    hall: str,
    cell_parameters,
    hkl: np.ndarray,
    elements: list[str],
    frac: np.ndarray,
    occupancy: np.ndarray,
    u_cif: np.ndarray,
    f_prime: dict[str, float] | None = None,
    f_double_prime: dict[str, float] | None = None,
    tol: float = 1e-4,
) -> np.ndarray:
    """Powder intensity (|F(h)|² + |F(-h)|²)/2 with anisotropic displacements, one atom and one reflection at a
    time.

    Each independent site is expanded by every operator (R, t) (coinciding images merged); its image at R x + t
    carries the rotated tensor β' = R β Rᵀ of β = 2π² N U N, N = diag(a*, b*, c*) from the inverse of the
    direct basis, U (Å²) in the CIF convention (Trueblood et al., Acta Cryst. A52 (1996) 770), and scatters with
    f = occ (f0_IT92(s) + f' + i f'') exp(-hᵀ β' h) exp(2πi h·(R x + t)).

    Parameters
    ----------
    hall : str
    cell_parameters : a, b, c (Å), alpha, beta, gamma (degrees)
    hkl : ndarray, shape (n_refl, 3)
    elements : list of str, length n_sites
    frac : ndarray, shape (n_sites, 3)
    occupancy : ndarray, shape (n_sites,)
    u_cif : ndarray, shape (n_sites, 6)
        U11, U22, U33, U12, U13, U23 of each site.
    f_prime, f_double_prime : dict element -> electrons, optional (0 without)

    Returns
    -------
    ndarray, shape (n_refl,)
    """
    reciprocal = np.linalg.inv(direct_basis(cell_parameters)).T  # rows a*, b*, c*
    n = np.diag(np.linalg.norm(reciprocal, axis=1))
    operators = symmetry_operators(hall)
    atoms = []  # (element, occupancy, position, beta)
    for element, x, occ, u in zip(elements, np.asarray(frac, float), occupancy, np.asarray(u_cif, float), strict=True):
        tensor = np.array([[u[0], u[3], u[4]], [u[3], u[1], u[5]], [u[4], u[5], u[2]]])
        beta = 2.0 * math.pi**2 * n @ tensor @ n
        seen: list[np.ndarray] = []
        for rotation, translation in operators:
            image = np.mod(rotation @ x + translation, 1.0)
            if any(_same_position(image, other, tol) for other in seen):
                continue
            seen.append(image)
            atoms.append((element, float(occ), image, rotation @ beta @ rotation.T))
    f_prime = f_prime or {}
    f_double_prime = f_double_prime or {}
    out = np.zeros(len(hkl))
    for k, h in enumerate(np.asarray(hkl, dtype=float)):
        s2 = 0.25 * float(np.sum((h @ reciprocal) ** 2))
        plus, minus = 0j, 0j
        for element, occ, x, beta in atoms:
            f0 = float(form_factor_it92(element, np.array(s2)))
            f = occ * complex(f0 + f_prime.get(element, 0.0), f_double_prime.get(element, 0.0))
            f *= math.exp(-float(h @ beta @ h))
            plus += f * np.exp(2j * np.pi * float(h @ x))
            minus += f * np.exp(-2j * np.pi * float(h @ x))
        out[k] = 0.5 * (abs(plus) ** 2 + abs(minus) ** 2)
    return out


def wyckoff_locus(cell_parameters, hall: str, matrix: np.ndarray, offset: np.ndarray, reach: int = 3):
    """Line or plane of a Wyckoff position frac = M p + t, by brute force: (atoms of one site on one line or
    plane per period, period length Å or 2D cell area Å²), or None for a point or the general position.

    The orbit of a generic point comes from gemmi's operators; a point is on the representative locus when some
    lattice image of it lies on it (Cartesian distance < 1e-6 Å); the period is the shortest lattice vector along
    the line, or the smallest non-zero area spanned by two lattice vectors in the plane (all vectors with
    components up to ``reach``).
    """
    columns = [matrix[:, j] for j in range(3) if np.any(matrix[:, j] != 0)]
    if len(columns) not in (1, 2):
        return None
    basis = direct_basis(cell_parameters)
    point = matrix @ np.array([0.1370, 0.2890, 0.4130]) + offset
    orbit = []
    for rotation, translation in symmetry_operators(hall):
        image = np.mod(rotation @ point + translation, 1.0)
        if not any(_same_position(image, seen, 1e-6) for seen in orbit):
            orbit.append(image)
    directions = [c @ basis for c in columns]
    if len(columns) == 2:
        normal = np.cross(directions[0], directions[1])
        directions = [normal / np.linalg.norm(normal)]
    lattice = [np.array(t, float) for t in itertools.product(range(-reach, reach + 1), repeat=3) if any(t)]

    def off_locus(vector: np.ndarray) -> float:
        if len(columns) == 1:
            unit = directions[0] / np.linalg.norm(directions[0])
            return float(np.linalg.norm(vector - (vector @ unit) * unit))
        return abs(float(vector @ directions[0]))

    on = 0
    for image in orbit:
        delta = image - point
        if any(off_locus((delta + t) @ basis) < 1e-6 for t in [np.zeros(3), *lattice]):
            on += 1
    in_locus = [t @ basis for t in lattice if off_locus(t @ basis) < 1e-6]
    if len(columns) == 1:
        return on, min(float(np.linalg.norm(v)) for v in in_locus)
    areas = [float(np.linalg.norm(np.cross(u, v))) for u, v in itertools.combinations(in_locus, 2)]
    return on, min(a for a in areas if a > 1e-6)
