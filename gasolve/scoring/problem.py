"""Everything the cell, space group, composition, instrument and observed pattern fix, computed once.

With the peak-shape matrix P (n_points, n_refl) (multiplicity, Lorentz-polarisation and emission lines
folded in), the background basis B (n_points, background_terms), weights W = diag(w) and reflection intensities
I = |F|², the calculated pattern is y_calc = s P I + B c. Scale s and background c enter linearly, so their
weighted least-squares optimum is exact and Rwp follows from a quadratic form in I:

    chi2_min = A - (b·I)² / (Iᵀ G I),   Rwp² = chi2_min / Σ w y_obs²,

with Q = W - W B (BᵀWB)⁻¹ BᵀW, b = Pᵀ Q y_obs, G = Pᵀ Q P and A = y_obsᵀ Q y_obs. G = G0 - CᵀC where
G0 = Pᵀ W P is banded (peaks overlap only nearby) and C = L⁻¹ BᵀWP with BᵀWB = L Lᵀ (background_terms rows). When
b·I <= 0 the best non-negative scale is zero and chi2_min = A.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.linalg
import scipy.sparse

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import Structure, element_symbol
from gasolve.diffraction.background import chebyshev_basis
from gasolve.diffraction.form_factors import debye_waller, form_factor
from gasolve.diffraction.profile import PeakMatrix, PeakProfile, build_peak_matrix
from gasolve.diffraction.reflections import ReflectionList, generate_reflections
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.scoring.overlap import DEFAULT_OVERLAP_RADIUS, OverlapTables


def d_spacing_limits(two_theta: np.ndarray, radiation: Radiation, profile: PeakProfile) -> tuple[float, float]:
    """d range (Å) of reflections whose peaks (tails included) can reach the pattern's 2θ range.

    A peak at 2θ_B reaches cutoff · FWHM(2θ_B) either side, and FWHM grows with angle, so the outer limits
    are found by fixed-point iteration: top = hi + cutoff · max FWHM over [lo, top] (and likewise below lo).
    """
    shift = abs(profile.displacement)  # |displacement · cos θ| is at most this
    lo, hi = float(two_theta[0]) - profile.zero - shift, float(two_theta[-1]) - profile.zero + shift
    top, bottom = hi, lo
    for _ in range(100):
        grid = np.linspace(max(bottom, 0.01), min(top, 179.9), 400)
        reach = profile.cutoff * float(np.max(profile.fwhm(grid)))
        new_top, new_bottom = min(hi + reach, 179.9), max(lo - reach, 0.01)
        if abs(new_top - top) < 1e-6 and abs(new_bottom - bottom) < 1e-6:
            break
        top, bottom = new_top, new_bottom
    d_min = min(w / (2.0 * np.sin(np.radians(top) / 2.0)) for w, _ in radiation.lines)
    d_max = max(w / (2.0 * np.sin(np.radians(bottom) / 2.0)) for w, _ in radiation.lines)
    return d_min, d_max


def symmetry_terms(space_group: SpaceGroup) -> tuple[np.ndarray, np.ndarray, bool, float]:
    """Operators summed explicitly in F, and the factor the others contribute.

    Returns
    -------
    rotations : ndarray, shape (n_terms, 3, 3)
    translations : ndarray, shape (n_terms, 3)
    centric : bool
        True if -x (plus a centring vector) is an operator; then only one of each pair (R, t), (-R, -t) is
        kept and F = Σ 2 f cos(2π(hR.x + h.t)) is real.
    factor : float
        Centring multiplier (F sums over n_centring copies), times 2 when centric.
    """
    rotations = space_group.primitive_rotations
    translations = space_group.primitive_translations
    n_centring = len(space_group.centring)
    if not space_group.inversion_at_origin:
        return rotations, translations, False, float(n_centring)
    keep: list[int] = []
    for s, rotation in enumerate(rotations):
        if not any(np.array_equal(rotation, -rotations[t]) for t in keep):
            keep.append(s)
    return rotations[keep], translations[keep], True, 2.0 * n_centring


@dataclass(frozen=True)
class ScoringProblem:
    """Precomputed tables for scoring trial coordinates of fixed sites against one observed pattern.

    Attributes
    ----------
    elements : tuple of str, length n_sites
    reflections : ReflectionList
    pattern : ObservedPattern
        The observed pattern restricted to the fitted range.
    peak_matrix : PeakMatrix
    background_basis : ndarray, shape (n_points, background_terms)
    hr : ndarray, shape (n_terms, 3, n_refl)
        h R_s for each explicitly summed operator s.
    ht : ndarray, shape (n_terms, n_refl)
        h · t_s (cycles).
    site_f : ndarray, shape (n_sites, n_refl)
        f0(s) exp(-B s²) occupancy (multiplicity / n_ops) times the symmetry factor, electrons.
    centric : bool
    b, band, band_start, band_stop, c_matrix, a_const, norm
        The quadratic form of Rwp (module docstring); G0's upper band stored by diagonals
        (:func:`diagonal_storage`).
    overlap : OverlapTables or None
        The dynamical occupancy correction (:mod:`gasolve.scoring.overlap`), None when it is off; set with
        :meth:`with_occupancy_correction`.
    """

    elements: tuple[str, ...]
    cell: UnitCell
    space_group: SpaceGroup
    radiation: Radiation
    profile: PeakProfile
    reflections: ReflectionList
    pattern: ObservedPattern
    peak_matrix: PeakMatrix
    background_basis: np.ndarray = field(repr=False)
    hr: np.ndarray = field(repr=False)
    ht: np.ndarray = field(repr=False)
    site_f: np.ndarray = field(repr=False)
    centric: bool
    b: np.ndarray = field(repr=False)
    band: np.ndarray = field(repr=False)
    band_start: np.ndarray = field(repr=False)
    band_stop: np.ndarray = field(repr=False)
    c_matrix: np.ndarray = field(repr=False)
    a_const: float
    norm: float
    background_gram_inverse: np.ndarray = field(repr=False)
    background_projection: np.ndarray = field(repr=False)
    overlap: OverlapTables | None = field(default=None, repr=False)

    @property
    def n_sites(self) -> int:
        return len(self.elements)

    @property
    def n_refl(self) -> int:
        return len(self.reflections)

    @property
    def background_terms(self) -> int:
        return self.background_basis.shape[1]

    @classmethod
    def build(
        cls,
        cell: UnitCell,
        space_group: SpaceGroup,
        elements: list[str],
        pattern: ObservedPattern,
        radiation: Radiation,
        profile: PeakProfile,
        background_terms: int = 6,
        b_iso: float | np.ndarray = 0.0,
        occupancy: float | np.ndarray = 1.0,
        site_multiplicity: np.ndarray | None = None,
    ) -> ScoringProblem:
        """Precompute the scoring tables.

        Parameters
        ----------
        cell, space_group : the fixed lattice and symmetry.
        elements : list of str, length n_sites
            Element of each independent site.
        pattern : ObservedPattern
            Already restricted to the fitted 2θ range.
        radiation, profile : instrument.
        background_terms : int
            Number of Chebyshev background terms refined with the scale.
        b_iso : float or ndarray (n_sites,)
            Isotropic displacement parameters (Å²).
        occupancy : float or ndarray (n_sites,)
        site_multiplicity : ndarray (n_sites,), optional
            Distinct positions each site generates; default: general positions (all operators).
        """
        elements = [element_symbol(e) for e in elements]
        n_sites = len(elements)
        if n_sites == 0:
            raise InputError("at least one site is needed")
        if background_terms < 0:
            raise InputError(f"number of background terms must be >= 0, got {background_terms}")
        if background_terms >= pattern.n_points // 2:
            raise InputError(f"{background_terms} background terms are too many for {pattern.n_points} points")
        d_min, d_max = d_spacing_limits(pattern.two_theta, radiation, profile)
        reflections = generate_reflections(cell, space_group, d_min, d_max)
        peaks = build_peak_matrix(pattern.two_theta, reflections, radiation, profile)
        keep = peaks.length > 0
        if not np.all(keep):
            reflections = reflections.subset(keep)
            peaks = build_peak_matrix(pattern.two_theta, reflections, radiation, profile)
        if len(reflections) == 0:
            raise InputError("no reflection falls inside the 2θ range; check cell, wavelength and range")

        rotations, translations, centric, factor = symmetry_terms(space_group)
        hkl = reflections.hkl.astype(float)
        hr = np.ascontiguousarray(np.einsum("ki,sij->sjk", hkl, rotations))
        ht = np.ascontiguousarray(np.mod(np.einsum("ki,si->sk", hkl, translations), 1.0))
        b_iso = np.broadcast_to(np.asarray(b_iso, dtype=float), (n_sites,))
        occupancy = np.broadcast_to(np.asarray(occupancy, dtype=float), (n_sites,))
        n_ops = space_group.n_ops
        multiplicity = (
            np.full(n_sites, n_ops, dtype=float) if site_multiplicity is None else np.asarray(site_multiplicity, float)
        )
        stol2 = reflections.stol2
        site_f = np.array(
            [
                form_factor(el, stol2) * debye_waller(b, stol2) * occ * (mult / n_ops) * factor
                for el, b, occ, mult in zip(elements, b_iso, occupancy, multiplicity, strict=True)
            ]
        )

        weights = pattern.weights
        y_obs = pattern.y_obs
        basis = chebyshev_basis(pattern.two_theta, background_terms)
        p_sparse = peaks.to_sparse()
        wp = p_sparse.multiply(weights[:, None]).tocsc()
        if background_terms > 0:
            gram = basis.T @ (weights[:, None] * basis)
            chol = np.linalg.cholesky(gram)
            gram_inverse = scipy.linalg.cho_solve((chol, True), np.eye(background_terms))
            coef_y = gram_inverse @ (basis.T @ (weights * y_obs))
            residual_y = y_obs - basis @ coef_y
            c_matrix = scipy.linalg.solve_triangular(chol, np.asarray((wp.T @ basis).T), lower=True)
            # (background_terms, n_refl): background coefficients of each column
            projection = gram_inverse @ np.asarray((wp.T @ basis).T)
        else:
            gram_inverse = np.zeros((0, 0))
            residual_y = y_obs.copy()
            c_matrix = np.zeros((0, len(reflections)))
            projection = np.zeros((0, len(reflections)))
        b = np.asarray(wp.T @ residual_y).ravel()
        a_const = float(np.sum(weights * residual_y**2))
        norm = float(np.sum(weights * y_obs**2))
        band, band_start, band_stop = diagonal_storage(*_upper_band(scipy.sparse.csr_matrix(p_sparse.T @ wp)))
        return cls(
            elements=tuple(elements),
            cell=cell,
            space_group=space_group,
            radiation=radiation,
            profile=profile,
            reflections=reflections,
            pattern=pattern,
            peak_matrix=peaks,
            background_basis=basis,
            hr=hr,
            ht=ht,
            site_f=np.ascontiguousarray(site_f),
            centric=centric,
            b=b,
            band=np.ascontiguousarray(band),
            band_start=band_start,
            band_stop=band_stop,
            c_matrix=np.ascontiguousarray(c_matrix),
            a_const=a_const,
            norm=norm,
            background_gram_inverse=gram_inverse,
            background_projection=projection,
        )

    def with_occupancy_correction(
        self,
        site_multiplicity: np.ndarray | None = None,
        radius: float = DEFAULT_OVERLAP_RADIUS,
        identical: bool = False,
    ) -> ScoringProblem:
        """A copy that scores with FOX's dynamical occupancy correction (:mod:`gasolve.scoring.overlap`).

        Parameters
        ----------
        site_multiplicity : ndarray, shape (n_sites,), optional
            The multiplicities the problem was built with (default: general positions).
        radius : float
            Overlap radius (Å).
        identical : bool
            Also count overlaps with other sites of the same element.
        """
        tables = OverlapTables.build(self.cell, self.space_group, self.elements, site_multiplicity, radius, identical)
        return replace(self, overlap=tables)

    @classmethod
    def from_structure(
        cls,
        structure: Structure,
        pattern: ObservedPattern,
        radiation: Radiation,
        profile: PeakProfile,
        background_terms: int = 6,
    ) -> ScoringProblem:
        """Tables for the sites of ``structure`` (their elements, B, occupancies and site multiplicities)."""
        return cls.build(
            structure.cell,
            structure.space_group,
            structure.elements,
            pattern,
            radiation,
            profile,
            background_terms=background_terms,
            b_iso=np.array([s.b_iso for s in structure.sites]),
            occupancy=np.array([s.occupancy for s in structure.sites]),
            site_multiplicity=structure.site_multiplicities(),
        )


def diagonal_storage(
    band: np.ndarray, band_ptr: np.ndarray, band_len: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-store the upper band of G0 diagonal by diagonal.

    ``diagonals[d, k] = G0[k, k + d]``; on diagonal d only rows ``start[d] <= k < stop[d]`` can be non-zero
    (bandwidth grows with 2θ as peaks widen and crowd). Products of a diagonal with a slice of I are long
    unit-stride loops that vectorise, with no horizontal reduction per row.

    Returns
    -------
    diagonals : ndarray, shape (n_diagonals, n_refl), float64
    start, stop : ndarray, shape (n_diagonals,), int64
    """
    n = len(band_ptr)
    n_diagonals = int(band_len.max())
    diagonals = np.zeros((n_diagonals, n))
    for k in range(n):
        diagonals[: band_len[k], k] = band[band_ptr[k] : band_ptr[k] + band_len[k]]
    start = np.zeros(n_diagonals, dtype=np.int64)
    stop = np.zeros(n_diagonals, dtype=np.int64)
    for d in range(n_diagonals):
        rows = np.flatnonzero(band_len > d)
        start[d], stop[d] = rows.min(), rows.max() + 1
    return diagonals, start, stop


def _upper_band(gram: scipy.sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper band of a symmetric sparse matrix: row k holds G[k, k : k + band_len[k]] from band[band_ptr[k]]."""
    n = gram.shape[0]
    gram.sort_indices()
    band_len = np.ones(n, dtype=np.int64)
    for k in range(n):
        cols = gram.indices[gram.indptr[k] : gram.indptr[k + 1]]
        if cols.size:
            band_len[k] = max(1, int(cols.max()) - k + 1)
    band_ptr = np.concatenate([[0], np.cumsum(band_len)[:-1]]).astype(np.int64)
    band = np.zeros(int(band_len.sum()))
    for k in range(n):
        lo, hi = gram.indptr[k], gram.indptr[k + 1]
        cols = gram.indices[lo:hi]
        vals = gram.data[lo:hi]
        upper = cols >= k
        band[band_ptr[k] + cols[upper] - k] = vals[upper]
    return band, band_ptr, band_len
