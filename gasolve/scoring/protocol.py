"""What the search, the refinement and the run pipeline need of a scorer: :class:`ModelScorer`.

Two classes satisfy it: :class:`~gasolve.scoring.scorer.Scorer` (every site on the general position, genomes are
fractional coordinates) and :class:`~gasolve.scoring.mapped.MappedScorer` (genomes read through a
:class:`~gasolve.crystal.wyckoff.SiteMap` of Wyckoff positions). Code that takes a scorer types it with this
protocol and reads ``site_map``, ``project`` and ``base`` directly, never by ``getattr`` with a fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from gasolve.crystal.wyckoff import SiteMap
from gasolve.scoring.problem import ScoringProblem
from gasolve.scoring.scorer import ProfileFit, Scorer


@runtime_checkable
class ModelScorer(Protocol):
    """Scores genomes of shape (n_models, n_sites, 3) against the observed pattern of ``problem``.

    Attributes
    ----------
    problem : ScoringProblem
    site_map : SiteMap or None
        The Wyckoff positions genomes are read through; None when every site is on the general position.
    base : Scorer
        The scorer of fractional coordinates underneath (the scorer itself without a site map).
    """

    problem: ScoringProblem
    site_map: SiteMap | None

    @property
    def base(self) -> Scorer: ...

    def project(self, genomes: np.ndarray) -> np.ndarray:
        """Fractional coordinates of genomes (same shape)."""

    def rwp(self, genomes: np.ndarray) -> np.ndarray:
        """Rwp of each model, shape (n_models,)."""

    def rwp_and_gradient(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rwp (n_models,) and its gradient with respect to the genomes (n_models, n_sites, 3)."""

    def coordinate_gradient(
        self, genomes: np.ndarray, function: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """A function of the fractional coordinates, frac (n_models, n_sites, 3) -> values (n_models,) and
        gradient (frac's shape), evaluated for genomes with its gradient taken to the genomes."""

    def intensities(self, genomes: np.ndarray) -> np.ndarray:
        """Integrated intensity of every reflection, shape (n_models, n_reflections)."""

    def profiles(self, genomes: np.ndarray, out: np.ndarray | None = None) -> ProfileFit:
        """Scale, background and difference curve of each model."""
