"""Noise of a profile from its scatter (gasolve.diffraction.noise), and a peak search that no longer depends on the
arbitrary scale of a normalised pattern."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path

from gasolve.crystal.cif_io import read_cif
from gasolve.diffraction.noise import MIN_INFLATION, NoiseModel, clipped_variance, fit_noise_model, noise_model
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.indexing.peaks import PeakSearchSettings, search_peaks
from gasolve.io.patterns import ObservedPattern, counting_sigma, read_pattern

CUKA12 = parse_radiation("CuKa12")
PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.006), eta=0.4, zero=0.0)


def naive_second_difference_variance(y, sigma):
    """Mean of d²/6 over the points, d = y[i-1] - 2 y[i] + y[i+1], against the mean stated σ²: the model's fit for
    white noise of one level, written out point by point."""
    squares, stated = [], []
    for i in range(1, len(y) - 1):
        squares.append((y[i - 1] - 2.0 * y[i] + y[i + 1]) ** 2 / 6.0)
        stated.append((sigma[i - 1] ** 2 + 4.0 * sigma[i] ** 2 + sigma[i + 1] ** 2) / 6.0)
    return sum(squares) / len(squares), sum(stated) / len(stated)


@pytest.fixture(scope="module")
def signal():
    """Noise-free PbSO4 profile, Cu Kα1+Kα2, 10-90° in 0.01° steps, strongest point 1, on a flat background 0.03."""
    structure = read_cif(data_path("measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif"))
    two_theta = np.round(10.0 + 0.01 * np.arange(8000), 10)
    sim = simulate(structure, two_theta, CUKA12, PROFILE, np.array([0.0]))
    return two_theta, sim.peaks / sim.peaks.max() + 0.03


def counted(signal, counts, seed):
    """The profile counted with ``counts`` at its strongest point (Poisson), σ = √y."""
    two_theta, profile = signal
    y = np.random.default_rng(seed).poisson(counts * profile).astype(float)
    return ObservedPattern(two_theta, y, counting_sigma(y), f"counted-{counts:.0f}")


def test_clipped_variance_of_normal_deviates_with_outliers():
    z = np.random.default_rng(0).normal(0.0, 2.0, 20000)
    z[:400] += 50.0  # 2 % far outliers (peaks)
    assert clipped_variance(z) == pytest.approx(4.0, rel=0.03)
    assert np.var(z) > 10.0


def test_white_noise_of_one_level_matches_the_point_by_point_reference():
    rng = np.random.default_rng(1)
    y = rng.normal(100.0, 3.0, 3000)
    sigma = np.full(3000, 1.0)
    measured, stated = naive_second_difference_variance(y, sigma)
    model = fit_noise_model(y, sigma)
    assert stated == pytest.approx(1.0)
    # One level: the additive and gain terms are not separable, their sum is the variance of the points.
    assert model.additive + model.gain * 1.0 == pytest.approx(measured, rel=0.05)
    assert model.inflation(sigma) == pytest.approx(3.0, rel=0.03)


def test_counting_data_keep_their_sigma(signal):
    pattern = counted(signal, 20000.0, 2)
    model = fit_noise_model(pattern.y_obs, pattern.sigma)
    background = 0.03 * 20000.0  # most points: the model's variance there is the counts'
    assert model.additive + model.gain * background == pytest.approx(background, rel=0.05)
    assert model.inflation(pattern.sigma) < 1.05


def test_rescaled_counts_give_the_scale_as_gain(signal):
    """Counts multiplied by 10 with σ = √y of the new numbers: the noise is √10 times σ, the gain 10."""
    pattern = counted(signal, 2000.0, 3)
    y = 10.0 * pattern.y_obs
    model = fit_noise_model(y, counting_sigma(y))
    assert model.gain == pytest.approx(10.0, rel=0.1)
    assert model.inflation(counting_sigma(y)) == pytest.approx(np.sqrt(10.0), rel=0.06)


def test_a_subtracted_background_leaves_its_noise(signal):
    """Counts with their background (500 counts) subtracted and clipped at 0: σ = √y says 1-5 counts on the
    background, where the points scatter by the background's noise (less what the clipping removed)."""
    _, profile = signal
    rng = np.random.default_rng(4)
    y = np.clip(rng.poisson(5000.0 * (profile - 0.03) + 500.0) - 500.0, 0.0, None).astype(float)
    sigma = counting_sigma(y)
    model = fit_noise_model(y, sigma)
    background = profile - 0.03 < 1e-4
    scatter = float(np.std(y[background]))  # independent points: their spread is their noise
    # The search smooths the profile, so what counts is a local mean of the variances (point by point they follow
    # each point's own σ², small on the zeros).
    assert np.sqrt(np.mean(sigma[background] ** 2)) < 0.5 * scatter
    assert np.sqrt(np.mean(model.sigma(sigma)[background] ** 2)) == pytest.approx(scatter, rel=0.15)


def test_correlated_points_do_not_shrink_sigma():
    """A smoothed profile scatters less than its σ: σ is kept, not made smaller."""
    rng = np.random.default_rng(6)
    y = np.convolve(rng.normal(1000.0, np.sqrt(1000.0), 5000), np.ones(5) / 5, mode="same")
    sigma = counting_sigma(y)
    model = fit_noise_model(y, sigma)
    assert model.gain < 0.5
    np.testing.assert_array_equal(model.sigma(sigma), sigma)
    assert model.inflation(sigma) == 1.0


def test_few_points_or_no_scatter_keep_sigma():
    assert fit_noise_model(np.arange(50.0), np.ones(50)) == NoiseModel()
    flat = np.full(1000, 7.0)
    assert fit_noise_model(flat, np.ones(1000)) == NoiseModel()


def test_peak_search_does_not_depend_on_the_scale_of_a_normalised_pattern(signal):
    """The same counts written at two scales, each with σ = √y of its numbers (as a normalised file read without
    esds): the lines found are the same; trusting σ, the larger scale gives many noise lines."""
    pattern = counted(signal, 1000.0, 7)
    found = {}
    for calibrate in (True, False):
        settings = PeakSearchSettings(calibrate_noise=calibrate)
        for scale in (1.0, 20.0):
            y = scale * pattern.y_obs
            scaled = ObservedPattern(pattern.two_theta, y, counting_sigma(y), f"x{scale}")
            found[calibrate, scale] = search_peaks(scaled, CUKA12, settings)
    same_scale = found[True, 1.0]
    assert same_scale.noise_inflation < 1.1
    assert found[True, 20.0].noise_inflation == pytest.approx(np.sqrt(20.0), rel=0.1)
    assert abs(found[True, 20.0].n_peaks - same_scale.n_peaks) <= 0.06 * same_scale.n_peaks
    assert np.array_equal(found[True, 1.0].two_theta.round(1)[:10], found[True, 20.0].two_theta.round(1)[:10])
    assert found[False, 20.0].n_peaks > 1.5 * found[False, 1.0].n_peaks  # fails without the calibration


@pytest.mark.parametrize(
    ("path", "highest"),
    [
        ("measured/LaB6-SRM660-lab-CuKa/NIST660CBI.gsas", 1.1),
        ("measured/corundum-SRM676a-lab-CuKa/row_Cu_676a.xy", 1.1),
        ("measured/PbSO4-lab-CuKa/PBSO4_XRA_converted.xye", 1.2),
    ],
)
def test_measured_counting_patterns_keep_their_sigma(path, highest):
    pattern = read_pattern(data_path(path))
    model = fit_noise_model(pattern.y_obs, pattern.sigma)
    assert model.inflation(pattern.sigma) < highest


def test_sigma_is_replaced_only_when_the_scatter_clearly_contradicts_it(signal):
    pattern = counted(signal, 2000.0, 8)
    assert noise_model(pattern.y_obs, pattern.sigma) == NoiseModel()
    y = 3.0 * pattern.y_obs  # σ = √y of the rescaled numbers understates the noise by √3
    model = noise_model(y, counting_sigma(y))
    assert model != NoiseModel() and model.inflation(counting_sigma(y)) >= MIN_INFLATION


def test_indexing_a_rescaled_pattern_notes_it_and_finds_the_same_cell(signal):
    from gasolve.indexing.pattern import IndexingSettings, index_pattern

    pattern = counted(signal, 3000.0, 9)
    y = 20.0 * pattern.y_obs
    rescaled = ObservedPattern(pattern.two_theta, y, counting_sigma(y), "x20")
    settings = IndexingSettings(systems=("orthorhombic",), n_pawley=1)
    plain, scaled = index_pattern(pattern, CUKA12, settings), index_pattern(rescaled, CUKA12, settings)
    assert not any("σ is taken from the scatter" in note for note in plain.notes)
    assert any("σ is taken from the scatter" in note for note in scaled.notes)
    np.testing.assert_allclose(scaled.candidates[0].solution.cell, plain.candidates[0].solution.cell, rtol=1e-4)
    np.testing.assert_allclose(sorted(scaled.candidates[0].solution.cell[:3]), (5.40, 6.96, 8.48), rtol=0.01)


def test_the_clipping_correction_is_the_variance_of_a_normal_clipped_at_the_limit():
    """Var(z | |z| ≤ c) = 1 - 2 c φ(c) / (2 Φ(c) - 1) for a standard normal z (truncated normal moments)."""
    from scipy.stats import norm

    from gasolve.diffraction.noise import _CLIPPED_SHARE, CLIP

    exact = 1.0 - 2.0 * CLIP * norm.pdf(CLIP) / (2.0 * norm.cdf(CLIP) - 1.0)
    assert _CLIPPED_SHARE == pytest.approx(exact, abs=1e-6)


def test_index_and_rank_keeps_sigma_when_the_calibration_is_off(signal, monkeypatch):
    """``calibrate_noise=False`` trusts σ on the classify route as on gasolve index: the extinction fit as well
    as the indexing sees the stated σ."""
    import gasolve.indexing.pattern
    from gasolve.errors import InputError
    from gasolve.indexing.extinctions import index_and_rank
    from gasolve.indexing.pattern import IndexingSettings

    pattern = counted(signal, 3000.0, 9)
    y = 20.0 * pattern.y_obs
    rescaled = ObservedPattern(pattern.two_theta, y, counting_sigma(y), "x20")
    seen = []

    def stop(pattern, radiation, settings):
        seen.append(pattern.sigma)
        raise InputError("stopped here", "test")

    monkeypatch.setattr(gasolve.indexing.pattern, "index_pattern", stop)
    trusting = IndexingSettings(n_pawley=1, peak_search=PeakSearchSettings(calibrate_noise=False))
    assert index_and_rank(rescaled, CUKA12, indexing=trusting)[0] is None
    np.testing.assert_array_equal(seen[-1], rescaled.sigma)
    index_and_rank(rescaled, CUKA12)  # the default calibrates
    assert np.median(seen[-1] / rescaled.sigma) > MIN_INFLATION


def test_the_classify_route_says_when_sigma_came_from_the_scatter(signal):
    from gasolve.indexing.extinctions import index_and_rank
    from gasolve.indexing.pattern import IndexingSettings

    pattern = counted(signal, 3000.0, 9)
    y = 20.0 * pattern.y_obs
    rescaled = ObservedPattern(pattern.two_theta, y, counting_sigma(y), "x20")
    settings = IndexingSettings(systems=("orthorhombic",), n_pawley=1)
    analysis, reason = index_and_rank(rescaled, CUKA12, indexing=settings)
    assert analysis is not None and reason.startswith("oP cell") and "σ from the scatter" in reason
    assert "σ from the scatter" not in index_and_rank(pattern, CUKA12, indexing=settings)[1]
