"""Structure factors of single sites, observed amplitudes by Rietveld partition, and Fourier maps on a grid.

For a model with sites j, the engine's structure factor is F(h) = Σ_j F_j(h), F_j the site's orbit summed over the
operators of :func:`gasolve.scoring.problem.symmetry_terms` and weighted by ``site_f`` (form factor, B, occupancy,
multiplicity of the Wyckoff position; real when the group is centric). The observed amplitudes are the Rietveld
partition of the observed profile (Rietveld, J. Appl. Cryst. 2 (1969) 65): I_obs(h) = I_calc(h) Σ_i c_ih
(y_obs - bg)_i / (y_calc - bg)_i, c_ih reflection h's peak shape normalised to unit sum, which shares overlapping
intensity in the model's proportions.

A Fourier map with coefficients X(h) is evaluated at a point r as the correlation of X with the orbit of a unit
point atom at r, Σ_h m_h Re(X(h) conj(O(r, h))): because the map has the space group's symmetry this is the sum of
the map over r's symmetry images, n_ops ρ(r) for a general and a special position alike (Parseval: the value of
the map at the atom). ``m_h`` is the reflection multiplicity, Friedel mates included.
"""

from __future__ import annotations

import numpy as np

from gasolve.scoring.problem import ScoringProblem

#: Largest ratio (y_obs - bg) / (y_calc - bg) taken into the Rietveld partition (noise where y_calc is ~0).
MAX_PARTITION_RATIO = 20.0
#: Complex exponentials evaluated per chunk of grid points (memory: 16 bytes each).
CHUNK_TERMS = 4_000_000


def orbit_sums(problem: ScoringProblem, frac: np.ndarray) -> np.ndarray:
    """Σ over the explicitly summed operators of exp(2πi (h R_s x + h t_s)) (2 cos(...) summed when centric is
    left to ``site_f``: here cos), for points ``frac`` (n, 3): shape (n, n_refl), complex."""
    frac = np.asarray(frac, dtype=float)
    phase = np.einsum("ja,sak->jsk", frac - np.floor(frac), problem.hr) + problem.ht[None]
    if problem.centric:
        return np.cos(2.0 * np.pi * phase).sum(axis=1).astype(complex)
    return np.exp(2j * np.pi * phase).sum(axis=1)


def site_structure_factors(problem: ScoringProblem, frac: np.ndarray) -> np.ndarray:
    """Each site's contribution F_j(h) to the structure factor of one model.

    Parameters
    ----------
    problem : ScoringProblem
    frac : ndarray, shape (n_sites, 3)
        Fractional coordinates of the independent sites (projected onto their Wyckoff positions).

    Returns
    -------
    ndarray, shape (n_sites, n_refl), complex
        Electrons; the sum over sites is the F whose |F|² :meth:`gasolve.scoring.scorer.Scorer.intensities` gives
        (real when the group is centric, as in the engine).
    """
    return problem.site_f * orbit_sums(problem, frac)


def observed_intensities(
    problem: ScoringProblem, intensity: np.ndarray, difference: np.ndarray, scale: float, peaks=None
) -> np.ndarray:
    """Rietveld partition of the observed profile among the reflections (module docstring).

    Parameters
    ----------
    problem : ScoringProblem
    intensity : ndarray, shape (n_refl,)
        The model's |F|² (:meth:`Scorer.intensities`).
    difference : ndarray, shape (n_points,)
        y_obs - y_calc of the model after the exact scale and background fit (:meth:`Scorer.profiles`).
    scale : float
        The fitted scale.
    peaks : scipy.sparse matrix, shape (n_points, n_refl), optional
        The problem's peak matrix in CSR form, when the caller partitions many models (built here otherwise).

    Returns
    -------
    ndarray, shape (n_refl,)
        I_obs on the scale of ``intensity`` (electrons²).
    """
    if peaks is None:
        peaks = problem.peak_matrix.to_sparse().tocsr()  # (n_points, n_refl)
    area = np.asarray(peaks.sum(axis=0)).ravel()
    calc = scale * (peaks @ intensity)  # y_calc - background
    observed = difference + calc  # y_obs - background
    floor = 1e-9 * max(float(np.max(np.abs(calc))), 1e-300)
    ratio = np.where(calc > floor, observed / np.where(calc > floor, calc, 1.0), 1.0)
    ratio = np.clip(ratio, 0.0, MAX_PARTITION_RATIO)
    return intensity * (peaks.T @ ratio) / np.where(area > 0, area, 1.0)


def map_values(problem: ScoringProblem, coefficients: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Fourier map with ``coefficients`` X(h) (n_refl,), complex, at ``points`` (n, 3): shape (n,), n_ops ρ(r).

    Evaluated in chunks of :data:`CHUNK_TERMS` exponentials.
    """
    points = np.asarray(points, dtype=float)
    weighted = problem.reflections.multiplicity.astype(float) * np.asarray(coefficients)
    per_point = problem.hr.shape[0] * problem.n_refl
    step = max(1, CHUNK_TERMS // max(per_point, 1))
    out = np.empty(len(points))
    for start in range(0, len(points), step):
        orbit = orbit_sums(problem, points[start : start + step])
        out[start : start + step] = np.real(orbit.conj() @ weighted)
    return out


def map_on_grid(problem: ScoringProblem, coefficients: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """The map of :func:`map_values` at every point j / shape of a regular grid, by one FFT, shape (prod(shape),).

    Each reflection h and operator term s contributes m_h X(h) exp(-2πi h·t_s) at the wave vector h R_s (half of
    it at ±h R_s when the group is centric, the engine summing cosines), so the map is the real part of the
    discrete Fourier transform of those coefficients on the grid. The grid must hold more than twice the largest
    index along each axis (no aliasing): a spacing below d_min / 2.
    """
    shape = tuple(int(n) for n in shape)
    k = np.rint(problem.hr).astype(np.int64)  # (n_terms, 3, n_refl)
    weighted = problem.reflections.multiplicity.astype(float) * np.asarray(coefficients)
    value = weighted[None, :] * np.exp(-2j * np.pi * problem.ht)  # (n_terms, n_refl)
    if problem.centric:
        k = np.concatenate([k, -k])
        value = np.concatenate([value, weighted[None, :] * np.exp(2j * np.pi * problem.ht)]) / 2.0
    if np.any(2 * np.abs(k).max(axis=(0, 2)) >= np.array(shape)):
        raise ValueError(f"grid {shape} too coarse for the reflections' indices (aliasing)")
    grid = np.zeros(shape, dtype=complex)
    np.add.at(grid, (k[:, 0] % shape[0], k[:, 1] % shape[1], k[:, 2] % shape[2]), value)
    return np.real(np.fft.fftn(grid)).ravel()
