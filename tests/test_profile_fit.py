"""Profile fitting: peak shape with asymmetry and displacement, lattice constraints, Le Bail extraction and fit.

Known answers: patterns simulated with a known cell, zero shift and profile must give them back; the measured
NIST LaB6 standard must give its certified cell.
"""

from __future__ import annotations

import dataclasses
import math

import naive
import numpy as np
import pytest
from conftest import shared_path

from gasolve.crystal import Site, SpaceGroup, Structure, UnitCell
from gasolve.diffraction.fit_metrics import bragg_r
from gasolve.diffraction.profile import (
    PeakProfile,
    asymmetry_factor,
    axial_divergence,
    build_peak_matrix,
    peak_positions,
    pseudo_voigt,
)
from gasolve.diffraction.reflections import generate_reflections
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern, counting_sigma, read_pattern
from gasolve.profile_fit import LatticeConstraint, LeBailSettings, equal_d_groups, fit_lebail

RADIATION = parse_radiation("CuKa12")
#: LaB6 certified lattice parameter (NIST SRM 660b/c, Å), as quoted by the issue and the GSAS-II tutorial.
LAB6_A = 4.15689


def rutile() -> Structure:
    """TiO2 rutile, P4_2/mnm (Baur, Acta Cryst. 9 (1956) 515): Ti on 2a, O on 4f."""
    group = SpaceGroup.from_symbol("P4_2/mnm")
    sites = (Site("Ti1", "Ti", (0.0, 0.0, 0.0), b_iso=0.4), Site("O1", "O", (0.3048, 0.3048, 0.0), b_iso=0.6))
    return Structure(UnitCell(4.5937, 4.5937, 2.9587, 90, 90, 90), group, sites, name="rutile")


TRUE_PROFILE = PeakProfile(
    caglioti=(0.012, -0.006, 0.005), eta=0.3, eta_slope=0.003, zero=0.035, asymmetry=(-0.15, -0.02, 0.0, 0.0)
)


@pytest.fixture(scope="module")
def rutile_pattern() -> ObservedPattern:
    """Rutile over 20-100° with the true profile, a falling background and Poisson noise (seeded)."""
    two_theta = np.round(np.arange(20.0, 100.0 + 1e-9, 0.02), 10)
    sim = simulate(rutile(), two_theta, RADIATION, TRUE_PROFILE, np.array([300.0, -80.0, 30.0]))
    expected = 20000.0 * sim.peaks / sim.peaks.max() + sim.background
    y_obs = np.random.default_rng(7).poisson(expected).astype(float)
    return ObservedPattern(two_theta, y_obs, counting_sigma(y_obs), "rutile-simulated")


def test_peak_matrix_with_asymmetry_and_displacement_equals_naive():
    structure = rutile()
    profile = dataclasses.replace(TRUE_PROFILE, displacement=-0.04, asymmetry=(-0.2, 0.05, 0.1, -0.03), cutoff=8.0)
    two_theta = np.round(np.arange(20.0, 100.0 + 1e-9, 0.02), 10)
    reflections = generate_reflections(structure.cell, structure.space_group, 0.98, 10.0)
    intensity = np.random.default_rng(3).uniform(1.0, 5.0, len(reflections))
    fast = build_peak_matrix(two_theta, reflections, RADIATION, profile).to_sparse() @ intensity
    slow = naive.peak_profile(
        two_theta, reflections.d_spacing, intensity, RADIATION, profile, reflections.multiplicity.astype(float)
    )
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9 * slow.max())


@pytest.mark.parametrize(("bragg", "sh_l", "n_nodes"), [(21.0, 0.03, 24), (40.0, 0.06, 48), (130.0, 0.03, 12)])
def test_axial_divergence_equals_adaptive_quadrature(bragg, sh_l, n_nodes):
    x = np.linspace(-1.0, 0.6, 41) if bragg < 90 else np.linspace(-0.6, 1.0, 41)
    reference = naive.fcj_profile(x, bragg, 0.06, 0.5, sh_l)
    shifts, weights = axial_divergence(np.array([bragg]), sh_l, n_nodes)
    fast = sum(weights[0, j] * pseudo_voigt(x - shifts[0, j], 0.06, 0.5) for j in range(n_nodes))
    np.testing.assert_allclose(fast, reference, atol=2e-4 * reference.max())
    assert np.all(shifts < 0) if bragg < 90 else np.all(shifts > 0)  # the tail points away from 90°


def test_peak_matrix_with_axial_divergence_equals_naive():
    structure = rutile()
    profile = dataclasses.replace(TRUE_PROFILE, asymmetry=(0.0, 0.0, 0.0, 0.0), axial=0.04, cutoff=10.0)
    two_theta = np.round(np.arange(20.0, 45.0 + 1e-9, 0.03), 10)
    reflections = generate_reflections(structure.cell, structure.space_group, 1.9, 10.0)
    intensity = np.random.default_rng(5).uniform(1.0, 5.0, len(reflections))
    fast = build_peak_matrix(two_theta, reflections, parse_radiation("CuKa1"), profile).to_sparse() @ intensity
    slow = np.zeros_like(two_theta)
    wavelength = parse_radiation("CuKa1").primary
    for d, f2, m in zip(reflections.d_spacing, intensity, reflections.multiplicity, strict=True):
        bragg = 2.0 * math.degrees(math.asin(wavelength / (2.0 * d)))
        fwhm = float(profile.fwhm(np.array([bragg]))[0])
        eta = profile.eta + profile.eta_slope * (bragg + profile.zero)
        # the same window as the matrix: cutoff FWHM beyond the ends of the axial-divergence span
        low = math.degrees(math.acos(math.cos(math.radians(bragg)) * math.sqrt(1 + (2 * profile.axial) ** 2)))
        offset = two_theta - bragg - profile.zero
        near = (offset >= low - bragg - profile.cutoff * fwhm) & (offset <= profile.cutoff * fwhm)
        shape = naive.fcj_profile(offset[near], bragg, fwhm, eta, profile.axial)
        slow[near] += m * f2 * naive.lorentz_polarisation(bragg) * shape
    np.testing.assert_allclose(fast, slow, atol=1e-3 * slow.max())


def test_asymmetry_keeps_the_area_and_moves_the_peak_to_low_angle():
    x = np.linspace(-3.0, 3.0, 60001)
    fwhm, eta = 0.1, 0.4
    symmetric = naive.pseudo_voigt(x, fwhm, eta)
    skewed = symmetric * asymmetry_factor(x / fwhm, np.tan(np.radians(10.0)), (-0.3, 0.0, 0.0, 0.0))
    step = x[1] - x[0]
    assert np.sum(skewed) * step == pytest.approx(np.sum(symmetric) * step, rel=1e-9)
    assert np.sum(x * skewed) < -1e-3  # P1 < 0 puts the tail at low angle, as axial divergence does
    assert x[np.argmax(skewed)] < 0


@pytest.mark.parametrize(
    ("symbol", "cell", "n_free"),
    [
        ("Pm-3m", (4.1, 4.1, 4.1, 90, 90, 90), 1),
        ("P4_2/mnm", (4.59, 4.59, 2.96, 90, 90, 90), 2),
        ("R-3c", (4.76, 4.76, 12.99, 90, 90, 120), 2),
        ("R-3m:R", (5.0, 5.0, 5.0, 70, 70, 70), 2),
        ("P6_3/mmc", (3.2, 3.2, 5.2, 90, 90, 120), 2),
        ("Pnma", (8.48, 5.40, 6.96, 90, 90, 90), 3),
        ("P21/c", (5.1, 6.2, 7.3, 90, 101.5, 90), 4),
        ("C2/m", (9.1, 6.2, 5.3, 90, 97.0, 90), 4),
        ("P-1", (6.6, 6.6, 9.9, 80.2, 71.7, 67.3), 6),
    ],
)
def test_lattice_constraints_count_the_free_parameters_and_round_trip(symbol, cell, n_free):
    constraint = LatticeConstraint.for_group(SpaceGroup.from_symbol(symbol))
    assert constraint.n_free == n_free
    coefficients = constraint.coefficients(UnitCell(*cell))
    np.testing.assert_allclose(constraint.cell(coefficients).parameters, cell, rtol=1e-10)
    hkl = np.array([[1, 0, 0], [1, 1, 0], [1, 2, 3], [2, -1, 1]])
    np.testing.assert_allclose(constraint.d_spacing(coefficients, hkl), UnitCell(*cell).d_spacing(hkl), rtol=1e-12)


def test_cell_without_the_symmetry_of_the_group_is_refused():
    constraint = LatticeConstraint.for_group(SpaceGroup.from_symbol("P4/mmm"))
    with pytest.raises(InputError, match="lattice symmetry"):
        constraint.coefficients(UnitCell(4.0, 4.1, 3.0, 90, 90, 90))


def test_reflections_at_the_same_d_share_one_intensity():
    cubic = SpaceGroup.from_symbol("Pm-3m")
    hkl = np.array([[3, 3, 0], [4, 1, 1], [1, 0, 0], [2, 2, 1], [3, 0, 0]])
    groups = equal_d_groups(LatticeConstraint.for_group(cubic), hkl).toarray()
    assert groups.shape[1] == 3  # {330, 411}, {100}, {221, 300}
    assert groups[0] @ groups[1] == 1 and groups[3] @ groups[4] == 1 and groups[0] @ groups[2] == 0
    tetragonal = LatticeConstraint.for_group(SpaceGroup.from_symbol("P4/mmm"))
    assert equal_d_groups(tetragonal, np.array([[1, 0, 0], [0, 0, 1]])).shape[1] == 2  # equal only if a = c


def test_intensities_are_recovered_for_the_true_profile():
    """With θ at the truth and a noise-free pattern, the eliminated intensities are the simulated ones."""
    structure = rutile()
    two_theta = np.round(np.arange(20.0, 100.0 + 1e-9, 0.02), 10)
    sim = simulate(structure, two_theta, RADIATION, TRUE_PROFILE)
    pattern = ObservedPattern(two_theta, sim.peaks, np.ones_like(two_theta), "noise-free")
    settings = LeBailSettings(background_terms=0, asymmetry_model="bb")  # the truth has Bérar-Baldinozzi terms
    result = fit_lebail(pattern, structure.cell, structure.space_group, RADIATION, settings)
    by_hkl = {tuple(h): f2 for h, f2 in zip(sim.reflections.hkl, sim.f_squared, strict=True)}
    inside = (result.reflections.two_theta(RADIATION.primary) > 21) & (result.reflections.two_theta(1.6) < 99)
    fitted = result.intensities[inside]
    truth = np.array([by_hkl[tuple(h)] for h in result.reflections.hkl[inside]])
    np.testing.assert_allclose(fitted, truth, rtol=2e-3)
    assert result.metrics.rwp < 1e-3


def test_bragg_r_is_zero_for_the_true_intensities_and_grows_with_error():
    structure = rutile()
    two_theta = np.round(np.arange(20.0, 100.0 + 1e-9, 0.02), 10)
    reflections = generate_reflections(structure.cell, structure.space_group, 0.98, 10.0)
    p = build_peak_matrix(two_theta, reflections, RADIATION, TRUE_PROFILE).to_sparse()
    truth = np.random.default_rng(2).uniform(1.0, 10.0, len(reflections))
    background = np.full(len(two_theta), 5.0)
    y = p @ truth + background
    assert bragg_r(p, truth, y, background) == pytest.approx(0.0, abs=1e-12)
    wrong = truth * np.random.default_rng(3).uniform(0.5, 1.5, len(truth))
    assert bragg_r(p, wrong, y, background) > 0.05


def test_le_bail_recovers_cell_zero_and_profile_of_a_simulated_pattern(rutile_pattern):
    start = UnitCell(4.5937 * 1.002, 4.5937 * 1.002, 2.9587 * 0.998, 90, 90, 90)
    settings = LeBailSettings(background_terms=3, asymmetry="on", asymmetry_model="bb")
    result = fit_lebail(rutile_pattern, start, rutile().space_group, RADIATION, settings)
    # Measured: a off by 1.5e-4 Å, c by 1.0e-4 Å (Poisson noise; the asymmetry terms correlate with the cell).
    assert result.cell.a == pytest.approx(4.5937, abs=3e-4)
    assert result.cell.c == pytest.approx(2.9587, abs=3e-4)
    assert result.profile.zero == pytest.approx(0.035, abs=0.005)
    fwhm_true = TRUE_PROFILE.fwhm(np.array([30.0, 60.0, 90.0]))
    np.testing.assert_allclose(result.profile.fwhm(np.array([30.0, 60.0, 90.0])), fwhm_true, rtol=0.05)
    assert result.metrics.rwp < 1.05 * result.metrics.rexp  # at the noise level
    assert result.asymmetry_refined
    assert result.profile.asymmetry[0] < 0


def test_le_bail_refuses_a_wrong_cell(rutile_pattern):
    with pytest.raises(InputError, match="profile fit failed"):
        fit_lebail(
            rutile_pattern,
            UnitCell(4.65, 4.65, 2.99, 90, 90, 90),  # 1.2% off: a false minimum, Rwp 0.31 against 0.44
            rutile().space_group,
            RADIATION,
            LeBailSettings(background_terms=3, asymmetry="off"),
        )


def test_peak_positions_include_zero_and_displacement():
    structure = rutile()
    reflections = generate_reflections(structure.cell, structure.space_group, 1.0, 10.0)
    profile = PeakProfile(zero=0.02, displacement=-0.05)
    bragg = reflections.two_theta(1.5406)
    expected = bragg + 0.02 - 0.05 * np.cos(np.radians(bragg / 2))
    np.testing.assert_allclose(peak_positions(reflections, 1.5406, profile), expected)


def test_axial_divergence_is_recovered_from_a_simulated_pattern():
    truth = dataclasses.replace(TRUE_PROFILE, asymmetry=(0.0, 0.0, 0.0, 0.0), axial=0.035)
    two_theta = np.round(np.arange(20.0, 100.0 + 1e-9, 0.02), 10)
    sim = simulate(rutile(), two_theta, RADIATION, truth, np.array([300.0, -80.0, 30.0]))
    expected = 20000.0 * sim.peaks / sim.peaks.max() + sim.background
    y = np.random.default_rng(8).poisson(expected).astype(float)
    pattern = ObservedPattern(two_theta, y, counting_sigma(y))
    start = UnitCell(4.5937 * 0.998, 4.5937 * 0.998, 2.9587 * 1.002, 90, 90, 90)
    result = fit_lebail(pattern, start, rutile().space_group, RADIATION, LeBailSettings(background_terms=3))
    assert result.asymmetry_refined
    assert result.profile.axial == pytest.approx(0.035, abs=0.005)
    assert result.cell.a == pytest.approx(4.5937, abs=2e-4)
    assert result.cell.c == pytest.approx(2.9587, abs=2e-4)
    assert result.metrics.rwp < 1.05 * result.metrics.rexp


def test_lab6_srm660_cell_from_the_measured_pattern():
    """The certified cell is 4.15689 Å; the issue asks for 0.0005 Å. Measured: 4.15641(1) Å with the
    Finger-Cox-Jephcoat axial divergence (SH/L 0.032), Rwp 0.049; the Bérar-Baldinozzi terms gave 4.15509."""
    pattern = read_pattern(shared_path("measured/LaB6-SRM660-lab-CuKa/NIST660CBI.gsas"))
    start = UnitCell(4.15, 4.15, 4.15, 90, 90, 90)
    result = fit_lebail(pattern, start, SpaceGroup.from_symbol("Pm-3m"), RADIATION, LeBailSettings(background_terms=8))
    assert abs(result.cell.a - LAB6_A) < 0.0005
    assert result.metrics.rwp < 0.05
    assert 0 < result.cell_esd[0] < 1e-4


def _background_rwp_and_chi2(pattern: ObservedPattern, terms: int) -> tuple[float, float]:
    """Rwp and reduced χ² of the background alone (Chebyshev polynomial of ``terms`` terms, weighted fit)."""
    basis = np.polynomial.chebyshev.chebvander(np.linspace(-1, 1, pattern.n_points), terms - 1)
    root_w = 1.0 / pattern.sigma
    coefficients = np.linalg.lstsq(basis * root_w[:, None], root_w * pattern.y_obs, rcond=None)[0]
    residual = root_w * (pattern.y_obs - basis @ coefficients)
    rwp = math.sqrt(np.sum(residual**2) / np.sum((root_w * pattern.y_obs) ** 2))
    return rwp, float(np.sum(residual**2)) / (pattern.n_points - terms)


def test_a_fit_at_the_noise_passes_where_its_rwp_alone_fails():
    """Rutile 2000 counts high over a background of 400, with noise 1.5 times counting statistics and σ saying so:
    the fit is at the noise, but the noise keeps its Rwp above half the background's. It passes by what it leaves
    above the noise (the Rwp test alone, as before, refused it)."""
    two_theta = np.round(np.arange(20.0, 100.0 + 1e-9, 0.02), 10)
    sim = simulate(rutile(), two_theta, RADIATION, TRUE_PROFILE, np.array([400.0]))
    rng = np.random.default_rng(9)
    expected = 2000.0 * sim.peaks / sim.peaks.max() + sim.background
    y_obs = rng.normal(expected, 1.5 * np.sqrt(expected))
    pattern = ObservedPattern(two_theta, y_obs, 1.5 * np.sqrt(expected), "noisy-rutile")
    settings = LeBailSettings(background_terms=3, asymmetry="off")
    rwp_background, chi2_background = _background_rwp_and_chi2(pattern, 3)
    result = fit_lebail(pattern, rutile().cell, rutile().space_group, RADIATION, settings)
    assert result.metrics.rwp > settings.max_rwp_fraction * rwp_background  # refused by the Rwp test alone
    assert result.metrics.chi2 - 1.0 <= settings.max_left_above_noise * (chi2_background - 1.0)


def test_a_false_minimum_fails_both_tests():
    """Rutile 4000 counts high over 400: started 1.2 % off, the fit stays in a false minimum that leaves 23 % of
    the background's χ² above the noise, and fails."""
    two_theta = np.round(np.arange(20.0, 100.0 + 1e-9, 0.02), 10)
    sim = simulate(rutile(), two_theta, RADIATION, TRUE_PROFILE, np.array([400.0]))
    y_obs = np.random.default_rng(8).poisson(4000.0 * sim.peaks / sim.peaks.max() + sim.background).astype(float)
    pattern = ObservedPattern(two_theta, y_obs, counting_sigma(y_obs), "rutile-4000")
    settings = LeBailSettings(background_terms=3, asymmetry="off")
    assert fit_lebail(pattern, rutile().cell, rutile().space_group, RADIATION, settings).metrics.chi2 < 1.1
    with pytest.raises(InputError, match="profile fit failed"):
        fit_lebail(pattern, UnitCell(4.65, 4.65, 2.99, 90, 90, 90), rutile().space_group, RADIATION, settings)
