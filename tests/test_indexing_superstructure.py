"""Weak superstructure reflections in the Pawley fit (:mod:`gasolve.indexing.superstructure`): the one-sided
chi-bar-squared law against a Monte Carlo draw, the choice of the extra reflections, and the benchmark's
Li3Nb4O12, whose true cell (c = 28.1 Å) came second behind its subcell (c = 14.05 Å)."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.indexing.superstructure import (
    PawleyReflections,
    chi_bar_squared_sf,
    weak_superstructure_lines,
)
from tests.simulated import benchmark_pattern


@pytest.mark.parametrize("n", [1, 4, 12])
def test_chi_bar_squared_law_matches_a_monte_carlo_draw(n):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200_000, n))
    statistic = np.sum(np.clip(z, 0.0, None) ** 2, axis=1)
    for s in (0.5, 2.0, 6.0, 12.0):
        drawn = float(np.mean(statistic >= s))
        assert chi_bar_squared_sf(s, n) == pytest.approx(drawn, abs=4e-3, rel=0.05)
    # All z <= 0 has probability 2^-n, and S >= 0 always.
    assert chi_bar_squared_sf(0.0, n) == pytest.approx(1.0)
    assert chi_bar_squared_sf(0.0, 0) == 1.0


def test_only_isolated_extra_reflections_count_each_position_once():
    # Reflections at 20, 21 (near the subcell's 21.05), 30 (near an observed line at 30.1), 40 and 40 again (one
    # equal-d group), 50 with no intensity in range (infinite esd). FWHM 0.1°: isolation 0.15°.
    reflections = PawleyReflections(
        two_theta=np.array([20.0, 21.0, 30.0, 40.0, 40.0, 50.0]),
        intensity=np.array([5.0, 100.0, 100.0, -2.0, -2.0, 0.0]),
        esd=np.array([1.0, 1.0, 1.0, 1.0, 1.0, np.inf]),
        fwhm=np.full(6, 0.1),
        fitted_range=(5.0, 80.0),
    )
    weak = weak_superstructure_lines(reflections, np.array([21.05, 35.0]), np.array([21.05, 30.1, 35.0]))
    assert weak.n_reflections == 2  # 20 and 40
    assert weak.statistic == pytest.approx(25.0)  # max(5, 0)² + max(-2, 0)²
    assert weak.p_value == pytest.approx(chi_bar_squared_sf(25.0, 2))
    assert weak.p_value_without_strongest == pytest.approx(chi_bar_squared_sf(0.0, 1))
    # Within EDGE FWHM (1°) of the end of the fitted range, or beyond it, a reflection is not counted.
    edge = PawleyReflections(
        np.array([20.0, 79.5, 80.5]), np.array([5.0, 50.0, 50.0]), np.ones(3), np.full(3, 0.1), (5.0, 80.0)
    )
    assert weak_superstructure_lines(edge, np.array([35.0]), np.array([35.0])).n_reflections == 1


def test_one_strong_extra_reflection_alone_does_not_support_a_supercell():
    # An impurity line just under the peak search's threshold: one z of 30 among 20 reflections of noise.
    z = np.r_[30.0, np.random.default_rng(1).standard_normal(19)]
    reflections = PawleyReflections(np.linspace(10.0, 60.0, 20), z, np.ones(20), np.full(20, 0.1), (5.0, 80.0))
    weak = weak_superstructure_lines(reflections, np.array([70.0]), np.array([70.0]))
    assert weak.p_value < 1e-100 and weak.p_value_without_strongest > 1e-3
    assert not weak.supported


def _weak_lines(pattern, radiation, small, large):
    from gasolve.crystal.cell import UnitCell
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.indexing.pattern import HOLOHEDRY, IndexingSettings
    from gasolve.indexing.peaks import search_peaks
    from gasolve.profile_fit.lebail import LeBailSettings, fit_lebail

    settings = LeBailSettings(tolerance=1e-6, intensity_covariance=True)
    fits = [
        fit_lebail(pattern, UnitCell(*cell), SpaceGroup.from_symbol(HOLOHEDRY[bravais]), radiation, settings)
        for cell, bravais in (small, large)
    ]
    sub, sup = (PawleyReflections.from_fit(fit, radiation.primary) for fit in fits)
    peaks = search_peaks(pattern, radiation, IndexingSettings().peak_search)
    return weak_superstructure_lines(sup, sub.two_theta, peaks.two_theta[~peaks.kbeta])


def test_the_ordering_of_li3nb4o12_is_found_in_its_weak_reflections():
    # The first 20 lines: the subcell (R, c = 14.05 Å) indexes 17, the true cell 18; M20 928 against 507 put the
    # subcell first. Between its lines the true cell's Pawley fit finds intensity far beyond chance.
    pattern, radiation, _ = benchmark_pattern("Li3Nb4O12", "mp-706276")
    small = ((5.283, 5.283, 14.053, 90.0, 90.0, 120.0), "hR")
    large = ((5.283, 5.283, 28.105, 90.0, 90.0, 120.0), "hR")
    weak = _weak_lines(pattern, radiation, small, large)
    assert weak.n_reflections >= 20
    assert weak.supported and weak.p_value < 1e-20


def test_a_doubled_cell_without_superstructure_is_not_supported():
    # Hg3Bi (Pm-3m, a = 4.759 Å) against the cubic cell of 2a: nothing lies at the half-integer reflections.
    pattern, radiation, _ = benchmark_pattern("Hg3Bi", "mp-981387")
    small = ((4.759, 4.759, 4.759, 90.0, 90.0, 90.0), "cP")
    large = ((9.518, 9.518, 9.518, 90.0, 90.0, 90.0), "cP")
    weak = _weak_lines(pattern, radiation, small, large)
    assert weak.n_reflections >= 10
    assert not weak.supported and weak.p_value > 1e-3
