"""Background as a Chebyshev polynomial in 2θ, refined linearly together with the scale.

The abscissa is mapped onto [-1, 1] over the pattern range, where Chebyshev polynomials of the first kind
are well conditioned (the GSAS "shifted Chebyshev" background, function 1).
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import chebyshev


def chebyshev_basis(two_theta: np.ndarray, n_terms: int) -> np.ndarray:
    """Background basis T_0..T_{n_terms-1} at ``two_theta`` (degrees), shape (n_points, n_terms)."""
    two_theta = np.asarray(two_theta, dtype=float)
    if n_terms == 0:
        return np.zeros((len(two_theta), 0))
    lo, hi = two_theta[0], two_theta[-1]
    x = 2.0 * (two_theta - lo) / (hi - lo) - 1.0 if hi > lo else np.zeros_like(two_theta)
    return chebyshev.chebvander(x, n_terms - 1)
