"""A scorer for sites on special positions: genomes go through a :class:`~gasolve.crystal.wyckoff.SiteMap`.

The wrapped :class:`~gasolve.scoring.scorer.Scorer` sees the projected fractional coordinates; gradients come
back through the map's pullback (chain rule of an affine map), so the GA's L-BFGS moves only the free
parameters. The problem must have been built with the map's multiplicities.

With a :class:`~gasolve.crystal.snap.SpecialPositionSnap` (used with the dynamical occupancy correction), the
projected coordinates are then snapped: general sites within reach of a special position are put on it, and the
gradient comes back through the snap's local projector first, then through the site map.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gasolve.crystal.snap import SpecialPositionSnap
from gasolve.crystal.wyckoff import SiteMap
from gasolve.scoring.scorer import ProfileFit, Scorer


class MappedScorer:
    """Same interface as :class:`Scorer` for genomes of shape (n_models, n_sites, 3) read through ``site_map``.

    Parameters
    ----------
    scorer : Scorer
    site_map : SiteMap
        One Wyckoff position per site of ``scorer.problem``.
    snap : SpecialPositionSnap, optional
        Applied after the site map.
    """

    def __init__(self, scorer: Scorer, site_map: SiteMap, snap: SpecialPositionSnap | None = None):
        if site_map.n_sites != scorer.problem.n_sites:
            raise ValueError(f"site map has {site_map.n_sites} sites, the problem {scorer.problem.n_sites}")
        if snap is not None and snap.n_sites != site_map.n_sites:
            raise ValueError(f"snap has {snap.n_sites} sites, the site map {site_map.n_sites}")
        self.scorer = scorer
        self.site_map = site_map
        self.snap = snap

    @property
    def problem(self):
        return self.scorer.problem

    @property
    def base(self) -> Scorer:
        """The scorer of fractional coordinates that this one maps genomes into."""
        return self.scorer

    def _project(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Coordinates (n_models, n_sites, 3) of genomes of that shape and the snap's projectors, if any."""
        frac = self.site_map.project(genomes)
        if self.snap is None:
            return frac, None
        return self.snap.snap(frac)

    def project(self, genomes: np.ndarray) -> np.ndarray:
        """Fractional coordinates of genomes (any shape with n_models first and 3 n_sites values per model)."""
        genomes = np.asarray(genomes, dtype=float)
        frac, _ = self._project(genomes.reshape(len(genomes), self.site_map.n_sites, 3))
        return frac.reshape(genomes.shape)

    def rwp(self, genomes: np.ndarray) -> np.ndarray:
        """Rwp of each genome, shape (n_models,)."""
        return self.scorer.rwp(self.project(self.scorer._check(genomes)))

    def rwp_and_gradient(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rwp and dRwp/dgenome, shape (n_models,) and (n_models, n_sites, 3); zero on dependent slots."""
        return self.coordinate_gradient(self.scorer._check(genomes), self.scorer.rwp_and_gradient)

    def coordinate_gradient(
        self, genomes: np.ndarray, function: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """A function of the fractional coordinates and its gradient, taken to the genomes.

        Parameters
        ----------
        genomes : ndarray, shape (n_models, n_sites, 3)
        function : callable
            frac (n_models, n_sites, 3) -> values (n_models,), gradient with respect to frac (same shape as frac).

        Returns
        -------
        values : ndarray, shape (n_models,)
        gradient : ndarray, shape (n_models, n_sites, 3)
            With respect to the genomes; zero on dependent slots.
        """
        frac, projector = self._project(np.asarray(genomes, dtype=float))
        values, gradient = function(frac)
        if projector is not None:
            gradient = np.einsum("msij,msi->msj", projector, gradient)
        return values, self.site_map.pullback(gradient)

    def intensities(self, genomes: np.ndarray) -> np.ndarray:
        return self.scorer.intensities(self.project(self.scorer._check(genomes)))

    def profiles(self, genomes: np.ndarray, out: np.ndarray | None = None) -> ProfileFit:
        return self.scorer.profiles(self.project(self.scorer._check(genomes)), out)
