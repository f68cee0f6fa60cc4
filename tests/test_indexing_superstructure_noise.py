"""The noise scale of the weak-reflection test (gasolve.indexing.superstructure.noise_scale): σ(I) from the normal
matrix is too small where a measured pattern's noise is correlated, and the negative z, which only noise gives,
measure by how much. RRUFF pattern 207 (Imm2) had its oP supercell of twice the volume put first from 249 extra
reflections at chance 2·10⁻¹⁴, with 13 of them below z = −2 where about 6 would be."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.indexing.superstructure import (
    MIN_NEGATIVE,
    PawleyReflections,
    noise_scale,
    weak_superstructure_lines,
)


def _noise(n: int, scale: float, seed: int = 7) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal(n)


def _quantiles(n: int, scale: float) -> np.ndarray:
    """``n`` z spread as a normal law of this scale would spread them (its quantiles), in a shuffled order."""
    from scipy.stats import norm

    return np.random.default_rng(0).permutation(scale * norm.ppf((np.arange(n) + 0.5) / n))


def test_unit_normal_z_keep_their_scale():
    assert noise_scale(_noise(250, 1.0)) == 1.0
    # Te(HO2)2's true supercell: 39 extra reflections of real signal with a few negative z, s = 1.07 by chance.
    signal = np.r_[np.abs(_noise(25, 2.5)), _noise(14, 1.07, seed=3)]
    assert noise_scale(signal) == 1.0


def test_z_that_scatter_wider_are_scaled_by_their_negative_half():
    z = _noise(250, 1.4)
    negative = z[z < 0]
    assert noise_scale(z) == pytest.approx(np.sqrt(np.mean(negative**2)))
    assert 1.2 < noise_scale(z) < 1.6


def test_too_few_negative_z_are_not_used():
    z = np.r_[np.full(MIN_NEGATIVE - 1, -5.0), np.full(50, 3.0)]
    assert noise_scale(z) == 1.0
    assert noise_scale(np.r_[np.full(MIN_NEGATIVE, -5.0), np.full(50, 3.0)]) == pytest.approx(5.0)


def test_correlated_noise_alone_no_longer_supports_a_supercell():
    # 400 extra reflections of pure noise whose esds are 1.4 times too small (correlated noise).
    n = 400
    z = _quantiles(n, 1.4)
    reflections = PawleyReflections(np.linspace(10.0, 70.0, n), z, np.ones(n), np.full(n, 0.05), (5.0, 80.0))
    weak = weak_superstructure_lines(reflections, np.array([75.0]), np.array([75.0]))
    assert weak.noise_scale == pytest.approx(1.4, rel=0.02)
    assert not weak.supported and weak.p_value > 1e-3
    # Unscaled, as before, this noise passed for a superstructure.
    unscaled = weak.statistic * weak.noise_scale**2
    from gasolve.indexing.superstructure import chi_bar_squared_sf

    assert chi_bar_squared_sf(unscaled, n) < 1e-6


def test_a_superstructure_in_white_noise_keeps_its_support():
    n = 60
    z = np.r_[np.abs(_noise(20, 6.0)) + 3.0, _noise(40, 1.0)]
    reflections = PawleyReflections(np.linspace(10.0, 70.0, n), z, np.ones(n), np.full(n, 0.05), (5.0, 80.0))
    weak = weak_superstructure_lines(reflections, np.array([75.0]), np.array([75.0]))
    assert weak.noise_scale == 1.0 and weak.supported
