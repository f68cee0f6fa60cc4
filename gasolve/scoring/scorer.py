"""Validating wrapper around the batched Numba kernels: Rwp, Rwp gradient, intensities and profiles.

When the problem carries :class:`~gasolve.scoring.overlap.OverlapTables` (the dynamical occupancy correction),
the kernels of :mod:`gasolve.scoring.occupancy_kernels` compute each model's occupancy factors and their
derivatives and multiply them in; the gradient adds dRwp/dc · dc/dx.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from gasolve.scoring import kernels, occupancy_kernels
from gasolve.scoring.problem import ScoringProblem


@dataclass(frozen=True)
class ProfileFit:
    """Calculated and difference profiles of a batch of models after the linear scale and background fit.

    Attributes
    ----------
    y_obs : ndarray, shape (n_points,)
    difference : ndarray, shape (n_models, n_points)
        y_obs - y_calc.
    scale : ndarray, shape (n_models,)
    background : ndarray, shape (n_models, background_terms)
        Chebyshev coefficients.
    rwp : ndarray, shape (n_models,)
    """

    y_obs: np.ndarray
    difference: np.ndarray
    scale: np.ndarray
    background: np.ndarray
    rwp: np.ndarray

    @property
    def y_calc(self) -> np.ndarray:
        """Scaled calculated profile, background included, shape (n_models, n_points)."""
        return self.y_obs[None, :] - self.difference


class Scorer:
    """Scores trial coordinates of the problem's sites against its observed pattern.

    Parameters
    ----------
    problem : ScoringProblem
    chunks_per_thread : int
        Work is split into this many chunks per Numba thread (load balance against scheduling cost).
    """

    def __init__(self, problem: ScoringProblem, chunks_per_thread: int = 4):
        from gasolve.scoring.kernel_cache import ensure_cached

        ensure_cached()  # run the machine code of Numba's cache, as every other process does
        self.problem = problem
        self.chunks_per_thread = chunks_per_thread

    #: Every site on the general position: genomes are the fractional coordinates themselves.
    site_map = None

    @property
    def base(self) -> Scorer:
        """The scorer of fractional coordinates under any mapping (itself)."""
        return self

    def project(self, genomes: np.ndarray) -> np.ndarray:
        """Fractional coordinates of genomes: the genomes themselves, as floats (any shape)."""
        return np.asarray(genomes, dtype=float)

    def _check(self, frac: np.ndarray) -> np.ndarray:
        frac = np.asarray(frac)
        n_sites = self.problem.n_sites
        if frac.ndim == 2 and frac.shape == (n_sites, 3):
            frac = frac[None]
        if frac.ndim != 3 or frac.shape[1:] != (n_sites, 3):
            raise ValueError(f"expected fractional coordinates of shape (n_models, {n_sites}, 3), got {frac.shape}")
        if not np.issubdtype(frac.dtype, np.floating):
            raise ValueError(f"expected floating-point coordinates, got dtype {frac.dtype}")
        frac = np.ascontiguousarray(frac, dtype=np.float64)
        if not np.all(np.isfinite(frac)):
            raise ValueError("coordinates contain NaN or infinity")
        return frac

    def _bounds(self, n_models: int) -> np.ndarray:
        n_chunks = max(1, min(n_models, numba.get_num_threads() * self.chunks_per_thread))
        return np.linspace(0, n_models, n_chunks + 1).astype(np.int64)

    def _tables(self):
        p = self.problem
        return p.hr, p.ht, p.site_f, p.centric

    def _quadratic(self):
        p = self.problem
        return p.b, p.band, p.band_start, p.band_stop, p.c_matrix, p.a_const, p.norm

    def rwp(self, frac: np.ndarray) -> np.ndarray:
        """Weighted-profile R factor of each model.

        Parameters
        ----------
        frac : ndarray, shape (n_models, n_sites, 3)
            Fractional coordinates of the independent sites.

        Returns
        -------
        ndarray, shape (n_models,)
        """
        frac = self._check(frac)
        out = np.empty(len(frac))
        bounds = self._bounds(len(frac))
        if self.problem.overlap is None:
            kernels.rwp_batch(frac, *self._tables(), *self._quadratic(), bounds, out)
        else:
            overlap = self.problem.overlap.kernel_args()
            occupancy_kernels.rwp_batch(frac, *overlap, *self._tables(), *self._quadratic(), bounds, out)
        return out

    def coordinate_gradient(
        self, genomes: np.ndarray, function: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``function(genomes)``: a function of the fractional coordinates and its gradient (the genomes are the
        coordinates; :meth:`gasolve.scoring.mapped.MappedScorer.coordinate_gradient` takes it through a site map)."""
        return function(np.asarray(genomes, dtype=float))

    def rwp_and_gradient(self, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rwp and its analytic gradient with respect to every fractional coordinate.

        Returns
        -------
        rwp : ndarray, shape (n_models,)
        gradient : ndarray, shape (n_models, n_sites, 3)
            dRwp/dx per unit of fractional coordinate.
        """
        frac = self._check(frac)
        out = np.empty(len(frac))
        grad = np.empty_like(frac)
        bounds = self._bounds(len(frac))
        if self.problem.overlap is None:
            kernels.rwp_gradient_batch(frac, *self._tables(), *self._quadratic(), bounds, out, grad)
            return out, grad
        overlap = self.problem.overlap.kernel_args()
        occupancy_kernels.rwp_gradient_batch(frac, *overlap, *self._tables(), *self._quadratic(), bounds, out, grad)
        return out, grad

    def intensities(self, frac: np.ndarray) -> np.ndarray:
        """|F(hkl)|² of each model (electrons²), shape (n_models, n_refl)."""
        frac = self._check(frac)
        out = np.empty((len(frac), self.problem.n_refl))
        bounds = self._bounds(len(frac))
        if self.problem.overlap is None:
            kernels.intensities_batch(frac, *self._tables(), bounds, out)
        else:
            overlap = self.problem.overlap.kernel_args()
            occupancy_kernels.intensities_batch(frac, *overlap, *self._tables(), bounds, out)
        return out

    def profiles(self, frac: np.ndarray, out: np.ndarray | None = None) -> ProfileFit:
        """Difference profile, scale and background of each model after the exact linear fit.

        Parameters
        ----------
        frac : ndarray, shape (n_models, n_sites, 3)
        out : ndarray, shape (n_models, n_points), float64, optional
            Buffer for the difference profiles (reusing one avoids page faults on fresh memory).

        Returns
        -------
        ProfileFit
            ``difference`` (n_models, n_points) is the input of nnselect's network; ``y_calc`` derives from it.
        """
        p = self.problem
        intensity = self.intensities(frac)
        n_models = len(intensity)
        pm = p.peak_matrix
        shape = (n_models, p.pattern.n_points)
        if out is not None and (out.shape != shape or out.dtype != np.float64 or not out.flags.c_contiguous):
            raise ValueError(f"out must be a C-contiguous float64 array of shape {shape}")
        difference = np.empty(shape) if out is None else out
        scale = np.empty(n_models)
        background = np.empty((n_models, p.background_terms))
        rwp = np.empty(n_models)
        if p.background_terms:
            coef_y = p.background_gram_inverse @ (p.background_basis.T @ (p.pattern.weights * p.pattern.y_obs))
        else:
            coef_y = np.zeros(0)
        kernels.fit_profiles_batch(
            intensity,
            pm.start,
            pm.length,
            pm.offset,
            pm.values,
            p.pattern.weights,
            p.pattern.y_obs,
            np.ascontiguousarray(p.background_basis.T),
            p.b,
            p.c_matrix,
            p.background_projection,
            coef_y,
            p.norm,
            self._bounds(n_models),
            difference,
            scale,
            background,
            rwp,
        )
        return ProfileFit(p.pattern.y_obs, difference, scale, background, rwp)
