"""Fourier maps and the heavy-atoms-first rebuild: structure factors, Rietveld partition, map peaks, completion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gasolve.scoring.fourier import map_on_grid, map_values, observed_intensities, site_structure_factors

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def k4sno4():
    """The K4SnO4 example's scorer and the published coordinates in the order of its sites."""
    from gasolve import pipeline
    from gasolve.config import load_run_config
    from gasolve.crystal.cif_io import read_cif

    scorer = pipeline.prepare(load_run_config(EXAMPLES / "K4SnO4.toml")).scorer
    reference = read_cif(EXAMPLES / "K4SnO4.cif")
    pool: dict[str, list] = {}
    for site in reference.sites:
        pool.setdefault(site.element, []).append(np.asarray(site.frac, dtype=float))
    truth = np.array([pool[element].pop(0) for element in scorer.problem.elements])
    return scorer, truth


def test_site_structure_factors_sum_to_the_engine_intensities(k4sno4):
    scorer, truth = k4sno4
    f_site = site_structure_factors(scorer.problem, truth)
    np.testing.assert_allclose(np.abs(f_site.sum(axis=0)) ** 2, scorer.intensities(truth[None])[0], rtol=1e-9)


def test_partition_of_the_true_models_pattern_gives_back_its_intensities(k4sno4):
    """On the example's simulated pattern the truth fits to the noise: I_obs / I_calc is 1 within the noise for
    the strong reflections, and far from 1 for a wrong model."""
    scorer, truth = k4sno4
    problem = scorer.problem
    intensity = scorer.intensities(truth[None])[0]
    fit = scorer.profiles(truth[None])
    observed = observed_intensities(problem, intensity, fit.difference[0], float(fit.scale[0]))
    strong = intensity > 0.05 * intensity.max()
    ratio = observed[strong] / intensity[strong]
    assert np.median(np.abs(ratio - 1)) < 0.03
    wrong = np.random.default_rng(0).random(truth.shape)
    w_int = scorer.intensities(wrong[None])[0]
    w_fit = scorer.profiles(wrong[None])
    w_obs = observed_intensities(problem, w_int, w_fit.difference[0], float(w_fit.scale[0]))
    w_strong = w_int > 0.05 * w_int.max()
    assert np.median(np.abs(w_obs[w_strong] / w_int[w_strong] - 1)) > 0.2


def test_calculated_map_peaks_on_the_atoms(k4sno4):
    """The Fc map of the true model is higher at every atom than at 95 % of the cell, and highest at Sn."""
    from gasolve.ga.fourier_rebuild import closest_distance, images, map_peaks
    from gasolve.ga.relocation import regular_grid

    scorer, truth = k4sno4
    problem = scorer.problem
    f_calc = site_structure_factors(problem, truth).sum(axis=0)
    grid, shape = regular_grid(problem.cell, 0.3)
    values = map_values(problem, f_calc, grid)
    at_atoms = map_values(problem, f_calc, truth)
    assert np.all(at_atoms > np.quantile(values, 0.95))
    assert np.argmax(at_atoms) == problem.elements.index("Sn")
    top = grid[map_peaks(values, shape)[0]]
    tin = images(problem.space_group, truth[[problem.elements.index("Sn")]]).reshape(-1, 3)
    assert closest_distance(problem.cell, top, tin) < 0.3


@pytest.mark.parametrize("seed", [0, 1])
def test_rebuild_puts_random_oxygens_back_from_the_heavy_atoms_map(k4sno4, seed):
    """Sn and K at their places, the four O thrown anywhere: every O of the rebuilt model (after the Fourier
    cycles) lies within 0.5 Å of an O of the structure, and Rwp drops."""
    from gasolve.ga.fourier_rebuild import closest_distance, images, rebuilt_models

    scorer, truth = k4sno4
    problem = scorer.problem
    oxygen = np.array([e == "O" for e in problem.elements])
    start = truth.copy()
    start[oxygen] = np.random.default_rng(seed).random((oxygen.sum(), 3))
    models = rebuilt_models(scorer, start.ravel(), np.arange(problem.n_sites))
    assert models.shape == (4, truth.size)  # two splits (keep Sn; keep Sn and K), first and last cycle each
    last = models[-1].reshape(-1, 3)
    true_oxygens = images(problem.space_group, truth[oxygen]).reshape(-1, 3)
    distances = [closest_distance(problem.cell, last[j], true_oxygens) for j in np.flatnonzero(oxygen)]
    assert max(distances) < 0.5, distances
    np.testing.assert_array_equal(last[~oxygen], start[~oxygen])  # the kept atoms do not move
    assert scorer.rwp(last[None])[0] < 0.5 * scorer.rwp(start[None])[0]


def test_rebuild_has_nothing_to_do_for_one_element():
    from gasolve.crystal import SpaceGroup, UnitCell
    from gasolve.diffraction.profile import PeakProfile
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.ga.fourier_rebuild import rebuilt_models
    from gasolve.io.patterns import ObservedPattern
    from gasolve.scoring.problem import ScoringProblem
    from gasolve.scoring.scorer import Scorer

    two_theta = np.arange(10.0, 60.0, 0.02)
    y = 100.0 + 0 * two_theta
    pattern = ObservedPattern(two_theta, y, np.sqrt(y))
    problem = ScoringProblem.build(
        UnitCell(5.0, 5.0, 5.0, 90, 90, 90), SpaceGroup.from_symbol("P1"), ["Si", "Si"], pattern,
        parse_radiation("CuKa1"), PeakProfile(caglioti=(0.0, 0.0, 0.01), eta=0.5), 3, b_iso=1.0,
    )  # fmt: skip
    assert rebuilt_models(Scorer(problem), np.zeros(6), np.arange(2)).shape == (0, 6)


def test_map_of_an_acentric_structure_peaks_at_x_not_minus_x():
    """In P1 a sign error in the phases would put the map's peaks at -x; they must be at the atoms."""
    from gasolve.crystal import SpaceGroup, UnitCell
    from gasolve.diffraction.profile import PeakProfile
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.ga.fourier_rebuild import closest_distance, map_peaks
    from gasolve.ga.relocation import regular_grid
    from gasolve.io.patterns import ObservedPattern
    from gasolve.scoring.problem import ScoringProblem

    truth = np.array([[0.1, 0.2, 0.3], [0.4, 0.1, 0.7], [0.8, 0.6, 0.2]])
    two_theta = np.arange(10.0, 90.0, 0.02)
    flat = ObservedPattern(two_theta, np.ones_like(two_theta), np.ones_like(two_theta))
    problem = ScoringProblem.build(
        UnitCell(6.6, 6.9, 9.1, 95.0, 101.0, 92.0), SpaceGroup.from_symbol("P1"), ["Sn", "K", "K"], flat,
        parse_radiation("CuKa1"), PeakProfile(caglioti=(0.0, 0.0, 0.01), eta=0.5), 3, b_iso=1.0,
    )  # fmt: skip
    f_calc = site_structure_factors(problem, truth).sum(axis=0)
    grid, shape = regular_grid(problem.cell, 0.25)
    peaks = grid[map_peaks(map_values(problem, f_calc, grid), shape)[:3]]
    for atom in truth:
        assert min(closest_distance(problem.cell, peak, atom[None]) for peak in peaks) < 0.3
    assert closest_distance(problem.cell, peaks[0], truth[:1]) < 0.3  # Sn highest
    assert closest_distance(problem.cell, peaks[0], -truth[:1]) > 1.0


@pytest.mark.parametrize(
    "group, cell",
    [
        ("P-1", (6.6, 6.9, 9.1, 95, 101, 92)), ("P1", (6.6, 6.9, 9.1, 95, 101, 92)),
        ("P2_1/c", (6.6, 6.9, 9.1, 90, 101, 90)), ("Pna2_1", (6.6, 6.9, 9.1, 90, 90, 90)),
        ("Fd-3m", (8.1, 8.1, 8.1, 90, 90, 90)), ("P6_3mc", (5, 5, 8, 90, 90, 120)),
        ("R-3c", (4.76, 4.76, 13, 90, 90, 120)),
    ],
)  # fmt: skip
def test_fft_map_equals_the_direct_sum(group, cell):
    """The FFT synthesis equals the orbit sums point by point, centric and acentric, centred and rhombohedral."""
    from gasolve.crystal import SpaceGroup, UnitCell
    from gasolve.diffraction.profile import PeakProfile
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.ga.relocation import regular_grid
    from gasolve.io.patterns import ObservedPattern
    from gasolve.scoring.problem import ScoringProblem

    two_theta = np.arange(10.0, 90.0, 0.02)
    flat = ObservedPattern(two_theta, np.ones_like(two_theta), np.ones_like(two_theta))
    problem = ScoringProblem.build(
        UnitCell(*cell), SpaceGroup.from_symbol(group), ["Sn"], flat, parse_radiation("CuKa1"),
        PeakProfile(caglioti=(0.0, 0.0, 0.01), eta=0.5), 3, b_iso=1.0,
    )  # fmt: skip
    grid, shape = regular_grid(problem.cell, 0.3)
    rng = np.random.default_rng(0)
    coefficients = rng.normal(size=problem.n_refl) + 1j * rng.normal(size=problem.n_refl)
    direct = map_values(problem, coefficients, grid)
    np.testing.assert_allclose(map_on_grid(problem, coefficients, shape), direct, atol=1e-12 * np.abs(direct).max())
    with pytest.raises(ValueError, match="aliasing"):
        map_on_grid(problem, coefficients, (4, 4, 4))
