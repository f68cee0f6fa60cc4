"""A perfect selection network, for measuring what network-guided selection could buy at best.

:class:`OracleSelector` answers the question the selection network (nnselect) is trained to answer, exactly:
for each model, the share of its sites that lie within ``radius`` Å of the known structure, after the best
origin, inversion and permutation (:class:`gasolve.solve.Judge`, i.e. ``gasolve compare``). Put in place of the
network (same call signature as :class:`nnselect.selector.SiteSelector`), it gives the upper bound of every
``[nn]`` mode: no network can rank the offspring better than the truth does. It is a benchmark instrument only;
it needs the answer, so it cannot serve a real search.
"""

from __future__ import annotations

import time

import numpy as np


class OracleSelector:
    """Exact share of sites in place of each model.

    Parameters
    ----------
    judge : gasolve.solve.Judge
        Compares a model with the reference structure.
    n_sites : int
    radius : float
        Label radius, Å (0.1: the network's).

    Attributes
    ----------
    seconds : float
        Wall time spent comparing models, s (not charged to the search: a network would cost its own time).
    calls : int
        Models judged so far.
    """

    def __init__(self, judge, n_sites: int, radius: float = 0.1):
        self.judge = judge
        self.n_sites = int(n_sites)
        self.radius = float(radius)
        self.seconds = 0.0
        self.calls = 0

    def in_place(self, genomes: np.ndarray) -> np.ndarray:
        """Whether each site of each model lies within ``radius`` of the truth.

        Parameters
        ----------
        genomes : ndarray, shape (n_models, 3 n_sites)
            Fractional coordinates.

        Returns
        -------
        ndarray, shape (n_models, n_sites), bool
        """
        frac = np.asarray(genomes, dtype=float).reshape(-1, self.n_sites, 3) % 1.0
        return np.array([self.judge.distances(x) <= self.radius for x in frac], dtype=bool).reshape(-1, self.n_sites)

    def __call__(self, genomes: np.ndarray) -> np.ndarray:
        """Share of sites in place of each model, shape (n_models,), float64 in [0, 1]."""
        started = time.perf_counter()
        share = self.in_place(genomes).mean(axis=1, dtype=np.float64)
        self.seconds += time.perf_counter() - started
        self.calls += len(share)
        return share
