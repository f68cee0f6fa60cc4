"""Per-atom features of a trial model: what its difference profile says about each atom, whatever the site count.

For atom j of a model with structure factors F(h) = Σ_j F_j(h) (F_j: the atom's orbit, symmetry factor and
multiplicity of its Wyckoff position included, as in :mod:`gasolve.scoring.kernels`) and intensities I = |F|²:

* its **own contribution to the calculated profile**, c_j = s P (I - |F - F_j|²) (n_points,), with the model's
  fitted scale s and the peak-shape matrix P (what the calculated profile loses when the atom is omitted);
* ``corr``: the weighted correlation of c_j with the difference profile d = y_obs - y_calc,
  Σ w d c_j / (Σ w d² Σ w c_j²)^½ (negative when the atom puts intensity where there is none);
* ``omit``: log(χ²_omit / χ²), χ² after the exact scale and background refit without the atom (an omit test:
  small or negative when the data do not want the atom where it is);
* ``rho_diff``, ``rho_2fofc``, ``rho_fo``: the difference, 2Fo-Fc and Fo Fourier densities summed over the atom's
  orbit, in units of its own density: Σ_h m_h X_h Re(F_h F_j,h*)/|F_h| / Σ_h m_h |F_j,h|², X = |Fo|-|Fc|, 2|Fo|-|Fc|
  or |Fo|; |Fo|² is the Rietveld partition of the observed profile (Rietveld 1969, J. Appl. Cryst. 2, 65:
  I_obs = I_calc Σ_i c_ik (y_obs - bg)_i / (y_calc - bg)_i with c_ik the peak shape normalised to unit sum);
  by Parseval these are the map values at the atom's positions, the direct-space check a crystallographer makes;
* ``share``: the atom's share of Σ m |F|² over all sites, times the number of sites (1 for an average atom);
  ``multiplicity``: occupied positions of its site over the group's operators; ``z``: atomic number / 100;
* ``rwp``: the model's Rwp (context, the same for every atom of a model);
* ``corr``, ``omit`` and ``rho_2fofc`` again, minus their median over the model's atoms;
* ``bins``: the correlation split over ``N_BINS`` equal slices of the 2θ points (they sum to ``corr``), so that
  where along the pattern an atom's contribution misfits is kept at a fixed length.

Every quantity is a ratio, so the features do not depend on the number of sites, the scale or the counting time.
The calculation reuses the engine's tables (:class:`gasolve.scoring.problem.ScoringProblem`) and its profile fit
(:meth:`gasolve.scoring.scorer.Scorer.profiles`); the per-atom structure factors are summed here in NumPy.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from gasolve.diffraction.form_factors import form_factor
from gasolve.scoring.fourier import observed_intensities, site_structure_factors
from gasolve.scoring.problem import ScoringProblem, symmetry_terms
from gasolve.scoring.scorer import Scorer

#: Slices of the 2θ range the correlation is split into.
N_BINS = 16
#: Names of the scalar features, in order; the ``N_BINS`` correlation slices follow.
SCALARS = (
    "corr",
    "omit",
    "rho_diff",
    "rho_2fofc",
    "rho_fo",
    "share",
    "multiplicity",
    "z",
    "rwp",
    "corr_centred",
    "omit_centred",
    "rho_2fofc_centred",
)
N_FEATURES = len(SCALARS) + N_BINS


def atomic_numbers(elements) -> np.ndarray:
    """Atomic numbers of element symbols (ASE's table), shape (n,), int."""
    from ase.data import atomic_numbers as table

    return np.array([table[e] for e in elements], dtype=int)


def site_multiplicity_fraction(problem: ScoringProblem) -> np.ndarray:
    """Occupancy x multiplicity / n_ops of each site, read back from ``site_f`` at the lowest angle, shape (n_sites,).

    ``site_f`` = f0 exp(-B s²) occ (mult / n_ops) factor; at the smallest sin θ/λ of the pattern exp(-B s²) is within
    a few per mille of 1 for usual B.
    """
    _, _, _, factor = symmetry_terms(problem.space_group)
    k = int(np.argmin(problem.reflections.stol2))
    stol2 = problem.reflections.stol2[k]
    f0 = np.array([float(form_factor(e, np.array([stol2]))[0]) for e in problem.elements])
    return problem.site_f[:, k] / (f0 * factor)


class AtomFeatures:
    """Computes :data:`N_FEATURES` features per atom for batches of models of one scoring problem.

    Parameters
    ----------
    problem : ScoringProblem
        The run's problem (a :class:`~gasolve.scoring.mapped.MappedScorer`'s ``problem``: coordinates are then
        the projected fractional coordinates).
    """

    def __init__(self, problem: ScoringProblem):
        self.problem = problem
        self.scorer = Scorer(problem)
        self.peaks = problem.peak_matrix.to_sparse().tocsr()  # (n_points, n_refl)
        self.weights = problem.pattern.weights
        self.sqrt_w = np.sqrt(self.weights)
        self.mult = problem.reflections.multiplicity.astype(float)
        self.z = atomic_numbers(problem.elements) / 100.0
        self.multiplicity = site_multiplicity_fraction(problem)
        edges = np.linspace(0, problem.pattern.n_points, N_BINS + 1).round().astype(int)
        self.bin_of_point = np.searchsorted(edges, np.arange(problem.pattern.n_points), side="right") - 1
        self.bin_matrix = scipy.sparse.csr_matrix(
            (np.ones(problem.pattern.n_points), (self.bin_of_point, np.arange(problem.pattern.n_points))),
            shape=(N_BINS, problem.pattern.n_points),
        )

    @property
    def n_sites(self) -> int:
        return self.problem.n_sites

    def _chi2(self, intensity: np.ndarray) -> np.ndarray:
        """χ² after the exact scale and background fit for intensities (n_refl, n) (module docstring of
        :mod:`gasolve.scoring.problem`), shape (n,)."""
        p = self.problem
        num = p.b @ intensity
        profile = self.peaks @ intensity
        den = np.sum(self.weights[:, None] * profile**2, axis=0) - np.sum((p.c_matrix @ intensity) ** 2, axis=0)
        ok = (num > 0) & (den > 0)
        return np.where(ok, p.a_const - np.where(ok, num, 0.0) ** 2 / np.where(ok, den, 1.0), p.a_const)

    def _one(self, frac: np.ndarray, difference: np.ndarray, scale: float, rwp: float) -> np.ndarray:
        f_site = site_structure_factors(self.problem, frac)  # (n_sites, n_refl)
        f_total = f_site.sum(axis=0)
        intensity = np.abs(f_total) ** 2
        omitted = np.abs(f_total[None] - f_site) ** 2  # (n_sites, n_refl)
        contribution = scale * (self.peaks @ (intensity[None] - omitted).T)  # (n_points, n_sites)
        w = self.weights
        d_norm = np.sqrt(np.sum(w * difference**2))
        c_norm = np.sqrt(np.sum(w[:, None] * contribution**2, axis=0))
        denom = np.where(c_norm > 0, c_norm, 1.0) * (d_norm if d_norm > 0 else 1.0)
        product = (w * difference)[:, None] * contribution / denom  # (n_points, n_sites)
        bins = np.asarray(self.bin_matrix @ product).T  # (n_sites, N_BINS)
        corr = bins.sum(axis=1)

        chi2_all = self._chi2(np.concatenate([intensity[:, None], omitted.T], axis=1))
        chi2 = max(chi2_all[0], 1e-300)
        omit = np.log(np.maximum(chi2_all[1:], 1e-300) / chi2)

        i_obs = observed_intensities(self.problem, intensity, difference, scale, self.peaks)
        f_obs, f_calc = np.sqrt(i_obs), np.sqrt(intensity)
        along = np.real(f_total[None] * np.conj(f_site)) / np.where(f_calc > 0, f_calc, 1.0)  # (n_sites, n_refl)
        own = (np.abs(f_site) ** 2) @ self.mult
        own_safe = np.where(own > 0, own, 1.0)
        rho_diff = (along * (f_obs - f_calc)) @ self.mult / own_safe
        rho_2fofc = (along * (2.0 * f_obs - f_calc)) @ self.mult / own_safe
        rho_fo = (along * f_obs) @ self.mult / own_safe
        share = own / max(own.sum(), 1e-300) * self.n_sites

        out = np.empty((self.n_sites, N_FEATURES))
        columns = (corr, omit, rho_diff, rho_2fofc, rho_fo, share, self.multiplicity, self.z)
        for i, column in enumerate(columns):
            out[:, i] = column
        out[:, 8] = rwp
        out[:, 9] = corr - np.median(corr)
        out[:, 10] = omit - np.median(omit)
        out[:, 11] = rho_2fofc - np.median(rho_2fofc)
        out[:, len(SCALARS) :] = bins
        return out

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        """Features of every atom of every model.

        Parameters
        ----------
        frac : ndarray, shape (n_models, n_sites, 3) or (n_sites, 3)
            Fractional coordinates.

        Returns
        -------
        ndarray, shape (n_models, n_sites, N_FEATURES), float32
            Columns :data:`SCALARS` then the ``N_BINS`` correlation slices; finite.
        """
        frac = np.asarray(frac, dtype=float)
        if frac.ndim == 2:
            frac = frac[None]
        if frac.ndim != 3 or frac.shape[1:] != (self.n_sites, 3):
            raise ValueError(f"expected coordinates of shape (n_models, {self.n_sites}, 3), got {frac.shape}")
        fit = self.scorer.profiles(frac)
        out = np.empty((len(frac), self.n_sites, N_FEATURES), dtype=np.float32)
        for m in range(len(frac)):
            out[m] = self._one(frac[m], fit.difference[m], float(fit.scale[m]), float(fit.rwp[m]))
        return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
