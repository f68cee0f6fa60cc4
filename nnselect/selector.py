"""A trained selection network applied to the models of a running search.

:class:`SiteSelector` loads a checkpoint, builds its input pipeline on the run's own scoring problem (the run's
pattern resampled onto the network's grid through d-spacing; refused with a clear error when it cannot be), and
returns, for a batch of GA genomes, each site's probability of being in place and their mean. It is what
``[nn] model`` of a run config points at; the GA (:class:`gasolve.ga.memetic.Evaluator`) only sees a callable
genomes -> scores and never imports JAX.

The network's outputs are matched to the run's sites by position (site i of the run is output i of the
network), which is how the paper transfers a K4PbO4 network to K4SnO4: the two have the same number of sites
in the same roles, with Sn in place of Pb. Other elements are therefore accepted; another number of sites is
not.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from gasolve.errors import InputError
from gasolve.scoring import ScoringProblem


class SiteSelector:
    """Per-site in-place probabilities of GA models from a trained network.

    Parameters
    ----------
    path : str or Path
        ``nnselect`` checkpoint.
    problem : ScoringProblem
        The run's scoring tables (its pattern, instrument and sites).
    batch_size : int
        Models per network call; a call with fewer is padded, so one compiled function serves all.

    Attributes
    ----------
    meta : nnselect.checkpoint.CheckpointMeta
    seconds : float
        Wall time spent in :meth:`probabilities` so far (profiles and network), s.
    calls : int
        Models scored so far.

    Raises
    ------
    InputError
        Not a checkpoint, another number of sites, or a pattern that does not cover the network's grid.
    """

    def __init__(self, path: str | Path, problem: ScoringProblem, batch_size: int = 72):
        from nnselect import checkpoint

        self.path = Path(path)
        self.model, self.meta = checkpoint.load(self.path)
        try:
            self.inputs = self.meta.profile_inputs(problem, allow_other_elements=True)
        except InputError as error:
            raise InputError(error.message, str(self.path)) from None
        self.batch_size = int(batch_size)
        self.n_sites = problem.n_sites
        self.seconds = 0.0
        self.calls = 0

    def probabilities(self, frac: np.ndarray) -> np.ndarray:
        """Probability that each site lies within the network's label radius of the truth.

        Parameters
        ----------
        frac : ndarray, shape (n_models, n_sites, 3)

        Returns
        -------
        ndarray, shape (n_models, n_sites), float32
        """
        from nnselect.train import predict

        started = time.perf_counter()
        frac = np.asarray(frac, dtype=float).reshape(-1, self.n_sites, 3)
        result = predict(self.model, self.inputs, frac, self.batch_size) if len(frac) else np.zeros((0, self.n_sites))
        self.seconds += time.perf_counter() - started
        self.calls += len(frac)
        return np.asarray(result, dtype=np.float32)

    def __call__(self, genomes: np.ndarray) -> np.ndarray:
        """Mean in-place probability of each model (the expected share of its atoms in place).

        Parameters
        ----------
        genomes : ndarray, shape (n_models, 3 n_sites)

        Returns
        -------
        ndarray, shape (n_models,), float64
        """
        return self.probabilities(genomes).mean(axis=1, dtype=np.float64)
