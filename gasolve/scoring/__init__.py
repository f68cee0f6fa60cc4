"""Full-profile scoring of trial structures: precomputed tables and batched Numba kernels."""

from gasolve.scoring.problem import ScoringProblem
from gasolve.scoring.scorer import ProfileFit, Scorer

__all__ = ["ProfileFit", "Scorer", "ScoringProblem"]
