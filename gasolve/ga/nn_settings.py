"""Settings of the network-guided selection (the ``[nn]`` table of a run config).

The network (nnselect) predicts, from a model's difference profile, the probability p_i that each atom i already
lies within the label radius of its true position. gasolve uses the mean of those probabilities,
s = Σ_i p_i / n_sites (the expected share of atoms in place), in one or both of two places:

``"rerank"`` (the paper's use)
    after every generation's evaluation, the selection fitness of each model becomes
    Rwp + anti-bump penalty - ``weight`` · s, so that among models of similar Rwp those the network believes
    to hold more correct atoms survive. The reported Rwp is untouched.
``"refine"`` (the natural place in a memetic GA)
    only the share ``refine_fraction`` of the offspring gets the expensive L-BFGS refinement; they are chosen by
    Rwp - ``weight`` · s of the raw offspring instead of by Rwp alone.
``"both"``
    the two together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gasolve.errors import InputError

#: Accepted values of :attr:`NNSettings.mode`.
MODES = ("rerank", "refine", "both")


@dataclass(frozen=True)
class NNSettings:
    """How a trained selection network takes part in the search.

    Attributes
    ----------
    model : Path
        Checkpoint (``nnselect`` msgpack) of the network.
    mode : str
        One of :data:`MODES`.
    weight : float
        Rwp units per unit of mean in-place probability (>= 0).
    refine_fraction : float
        Share of each generation's offspring refined locally in the ``"refine"`` and ``"both"`` modes, in (0, 1].
    batch_size : int
        Models per network call (inputs are padded to it, so one compiled function serves every generation).
    """

    model: Path
    mode: str = "rerank"
    weight: float = 0.05
    refine_fraction: float = 0.5
    batch_size: int = 72

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode: expected one of {', '.join(MODES)}, got {self.mode!r}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise InputError(f"weight: expected a number >= 0, got {self.weight}")
        if not 0 < self.refine_fraction <= 1:
            raise InputError(f"refine_fraction: expected a number in (0, 1], got {self.refine_fraction}")
        if self.batch_size < 1:
            raise InputError(f"batch_size: expected a positive integer, got {self.batch_size}")

    @property
    def rerank(self) -> bool:
        return self.mode in ("rerank", "both")

    @property
    def refine(self) -> bool:
        return self.mode in ("refine", "both")
