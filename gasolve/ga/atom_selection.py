"""Which atoms the relocation scan moves, chosen by a per-atom in-place probability (the ``[atom_selection]`` table).

Without it the scan (:mod:`gasolve.ga.relocation`) moves every movable atom of the stuck model over the grid, at
n_atoms · n_grid evaluations. With a per-atom ranker, a callable that gives each atom of a model the probability
that it already lies near its true position (:class:`nnselect.peratom.ranker.AtomRanker`, or an oracle in the
benchmarks), only the share ``scan_share`` of the movable atoms with the lowest probabilities is scanned, lowest
first. The core only defines the protocol; the network comes in through a factory
(:func:`gasolve.pipeline.prepare`), so gasolve never imports nnselect.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gasolve.errors import InputError


class AtomRanker(Protocol):
    """Per-atom in-place probabilities of one model."""

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        """frac (n_sites, 3) fractional coordinates -> probabilities (n_sites,) in [0, 1]."""
        ...


@dataclass(frozen=True)
class AtomSelectionSettings:
    """The ``[atom_selection]`` table: a per-atom network chooses the atoms the relocation scan moves.

    Attributes
    ----------
    model : Path
        Weights file of the per-atom network (``nnselect.peratom``).
    scan_share : float
        Share of the movable atoms scanned, in (0, 1]; at least one atom (ceil).
    allow_untrained_elements : bool
        Run with a warning (instead of refusing) when the structure has elements the network was not trained on.
    """

    model: Path
    scan_share: float = 0.34
    allow_untrained_elements: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scan_share) and 0 < self.scan_share <= 1):
            raise InputError(f"scan_share: expected a number in (0, 1], got {self.scan_share}")


def scan_sites(probability: np.ndarray, movable: np.ndarray, share: float) -> np.ndarray:
    """The movable sites to scan: the ``ceil(share · k)`` of lowest in-place probability, lowest first.

    Parameters
    ----------
    probability : ndarray, shape (n_sites,)
    movable : ndarray, shape (k,), int
        Sites the scan may move (:func:`gasolve.ga.relocation.movable_sites`).
    share : float
        In (0, 1].

    Returns
    -------
    ndarray, shape (m,), int
        Ties keep the order of ``movable``.
    """
    movable = np.asarray(movable, dtype=int)
    probability = np.asarray(probability, dtype=float)
    if probability.ndim != 1 or (len(movable) and movable.max() >= len(probability)):
        raise ValueError(f"expected one probability per site, got shape {probability.shape}")
    if not len(movable):
        return movable
    n = max(1, math.ceil(share * len(movable) - 1e-9))
    order = np.argsort(probability[movable], kind="stable")
    return movable[order[:n]]
