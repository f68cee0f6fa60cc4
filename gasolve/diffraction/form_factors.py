"""X-ray atomic form factors from gemmi's International Tables Vol. C (1992) four-Gaussian coefficients.

f0(s) = sum_i a_i exp(-b_i s²) + c with s = sin θ / λ (Å⁻¹); Table 6.1.1.4 of ITC, neutral atoms, as
tabulated in gemmi (``gemmi.Element(symbol).it92``). Anomalous dispersion is not included.
"""

from __future__ import annotations

import gemmi
import numpy as np

from gasolve.crystal.structure import element_symbol


def it92_coefficients(element: str) -> tuple[np.ndarray, np.ndarray, float]:
    """IT92 coefficients (a (4,), b (4,) Å², c) of a neutral atom."""
    coefs = gemmi.Element(element_symbol(element)).it92.get_coefs()
    return np.array(coefs[0:4]), np.array(coefs[4:8]), float(coefs[8])


def form_factor(element: str, stol2: np.ndarray) -> np.ndarray:
    """Atomic form factor f0 (electrons) at (sin θ / λ)² = ``stol2`` (Å⁻², any shape)."""
    a, b, c = it92_coefficients(element)
    stol2 = np.asarray(stol2, dtype=float)
    return np.einsum("i,...i->...", a, np.exp(-np.multiply.outer(stol2, b))) + c


def debye_waller(b_iso: float | np.ndarray, stol2: np.ndarray) -> np.ndarray:
    """Isotropic Debye-Waller factor exp(-B s²), B in Å², s² = (sin θ / λ)² in Å⁻²."""
    return np.exp(-np.multiply.outer(np.asarray(b_iso, dtype=float), np.asarray(stol2, dtype=float)))
