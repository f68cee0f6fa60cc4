"""The dynamical occupancy correction: its factors, the kernels and the gradient against tests/naive.py, and oracles.

Oracles: a structure whose atoms sit on special positions, declared with every site on the *general* position
and scored with the correction, must give the pattern of the same structure declared on its Wyckoff positions
(gasolve's multiplicities), of tests/naive.py's expanded cell (coinciding images merged) and of gemmi's
structure factors; scored without the correction it must not (the control that lets the test fail). Cases:
PbSO4 (Pnma, four atoms on the mirror), low quartz (P3_221, non-centrosymmetric, Si on a two-fold axis) and
high cristobalite (Fd-3m origin 1, F-centred, Si with site symmetry of order 24).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import gemmi
import naive
import numpy as np
import pytest
from conftest import shared_path

from gasolve.crystal import Structure, read_cif
from gasolve.crystal.cif_io import format_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.io.patterns import ObservedPattern, counting_sigma, read_pattern
from gasolve.scoring import Scorer, ScoringProblem
from gasolve.scoring.overlap import OverlapTables, overlap_weight

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RADIATION = parse_radiation("CuKa12")
PROFILE = PeakProfile(caglioti=(0.004, -0.002, 0.003), eta=0.4, eta_slope=0.002, zero=0.03, cutoff=6.0)
TWO_THETA = np.round(np.arange(10.0, 60.0 + 1e-9, 0.02), 10)
N_BACKGROUND = 3
RADIUS = 0.8
RTOL = 1e-6


@dataclass(frozen=True)
class Case:
    """A structure with atoms on special positions, its pattern, and scorers with every site general."""

    name: str
    structure: Structure
    pattern: ObservedPattern

    @property
    def hall(self) -> str:
        return self.structure.space_group.hall

    @property
    def b_iso(self) -> np.ndarray:
        return np.array([site.b_iso for site in self.structure.sites])

    def general_problem(self, correction: bool = True, identical: bool = False) -> ScoringProblem:
        s = self.structure
        problem = ScoringProblem.build(
            s.cell, s.space_group, s.elements, self.pattern, RADIATION, PROFILE, N_BACKGROUND, b_iso=self.b_iso
        )
        return problem.with_occupancy_correction(radius=RADIUS, identical=identical) if correction else problem

    def wyckoff_problem(self) -> ScoringProblem:
        return ScoringProblem.from_structure(self.structure, self.pattern, RADIATION, PROFILE, N_BACKGROUND)

    def near_models(self, seed: int, n_models: int = 3) -> np.ndarray:
        """Models whose atoms lie 0-0.3 Å from the special positions (every regime of the weight), plus noise
        along the free directions, shape (n_models, n_sites, 3)."""
        rng = np.random.default_rng(seed)
        x0 = self.structure.frac
        lengths = np.array(self.structure.cell.parameters[:3])
        return np.array([x0 + rng.uniform(-0.3, 0.3, x0.shape) / lengths for _ in range(n_models)])


def _symmetrised(structure: Structure) -> Structure:
    return structure.with_frac(
        np.array([naive.symmetrise_position(structure.space_group.hall, x) for x in structure.frac])
    )


@functools.cache
def make_case(name: str) -> Case:
    if name == "PbSO4-Pnma":
        structure = read_cif(EXAMPLES / "PbSO4.cif")
    else:
        structure = read_cif(
            shared_path(
                {
                    "quartz-P3221": "cif/pyxtal-database/lt_quartz.cif",
                    "cristobalite-Fd-3m:1": "cif/pyxtal-database/ht_cristobalite.cif",
                }[name]
            )
        )
    structure = _symmetrised(structure)
    peaks = naive.model_pattern(
        structure.space_group.hall,
        structure.cell.parameters,
        structure.elements,
        structure.frac,
        np.array([site.occupancy for site in structure.sites]),
        np.array([site.b_iso for site in structure.sites]),
        TWO_THETA,
        RADIATION,
        PROFILE,
    )
    expected = 4000.0 * peaks / peaks.max() + 150.0 + 40.0 * np.cos(TWO_THETA / 12.0)
    y_obs = np.random.default_rng(len(name)).poisson(expected).astype(float)
    return Case(name, structure, ObservedPattern(TWO_THETA, y_obs, counting_sigma(y_obs)))


CASES = ["PbSO4-Pnma", "quartz-P3221", "cristobalite-Fd-3m:1"]


@pytest.fixture(scope="module", params=CASES)
def case(request) -> Case:
    return make_case(request.param)


@pytest.fixture(scope="module", params=CASES[:2])
def free_case(request) -> Case:
    """The cases with free coordinates."""
    return make_case(request.param)


# --- the weight and the factors ---------------------------------------------------------------------------------


def test_overlap_weight_known_values_and_smoothness():
    d = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.5])
    np.testing.assert_allclose(overlap_weight(d, RADIUS), [1.0, 1.0, 1.0, 0.5625, 0.0, 0.0], atol=1e-15)
    np.testing.assert_allclose([naive.overlap_weight(x, RADIUS) for x in d], overlap_weight(d, RADIUS), atol=1e-15)
    grid = np.linspace(0.0, 1.0, 100001)
    w = overlap_weight(grid, RADIUS)
    slope = np.diff(w) / np.diff(grid)
    assert np.all(slope <= 1e-12)  # never increases with distance
    assert np.max(np.abs(np.diff(slope))) < 1e-3  # no kink: the slope is continuous, at r/2 and r too


def test_factors_of_a_site_approaching_the_mirror():
    """Pnma, a Pb atom at (x, 1/4 + δ, z): its mirror image is 2δb away; c = 1 / (1 + w(2δb))."""
    structure = make_case("PbSO4-Pnma").structure
    b = structure.cell.parameters[1]
    tables = OverlapTables.build(structure.cell, structure.space_group, ["Pb"], radius=RADIUS)
    image_distance = np.array([0.0, 0.3, 0.6, 0.9])
    frac = np.array([[[0.1882, 0.25 + d / (2 * b), 0.167]] for d in image_distance])
    factors, _ = tables.factors(frac)
    np.testing.assert_allclose(factors[:, 0], [0.5, 0.5, 1 / 1.5625, 1.0], rtol=1e-12)


@pytest.mark.parametrize("identical", [False, True], ids=["own images", "identical atoms"])
def test_factors_equal_naive(case, identical):
    s = case.structure
    tables = case.general_problem(identical=identical).overlap
    models = case.near_models(seed=1)
    factors, _ = tables.factors(models)
    for frac, got in zip(models, factors, strict=True):
        expected = naive.occupancy_factors(
            case.hall, s.cell.parameters, s.elements, frac, np.full(s.n_sites, s.space_group.n_ops), RADIUS, identical
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert np.ptp(factors) > 0.2 * factors.max()  # the models reach more than one regime of the weight
    exact, _ = tables.factors(s.frac[None])
    multiplicity = s.site_multiplicities()
    if not identical:  # on its position a general site counts multiplicity / n_ops of its n_ops images
        np.testing.assert_allclose(exact[0], multiplicity / s.space_group.n_ops, rtol=1e-12)


@pytest.mark.parametrize("identical", [False, True], ids=["own images", "identical atoms"])
def test_factor_jacobian_equals_central_differences(free_case, identical):
    tables = free_case.general_problem(identical=identical).overlap
    models = free_case.near_models(seed=2)
    _, jacobian = tables.factors(models)
    step = 1e-7
    n_sites = models.shape[1]
    for m, frac in enumerate(models):
        numeric = np.zeros((n_sites, n_sites, 3))
        for i, axis in np.ndindex(n_sites, 3):
            up, down = frac.copy(), frac.copy()
            up[i, axis] += step
            down[i, axis] -= step
            numeric[:, i, axis] = (tables.factors(up[None])[0][0] - tables.factors(down[None])[0][0]) / (2 * step)
        np.testing.assert_allclose(jacobian[m], numeric, rtol=1e-5, atol=1e-6 * max(np.abs(numeric).max(), 1.0))
    assert np.abs(jacobian).max() > 0.1


# --- the kernels against the slow reference ---------------------------------------------------------------------


@pytest.mark.parametrize("identical", [False, True], ids=["own images", "identical atoms"])
def test_rwp_intensities_and_profiles_equal_naive(free_case, identical):
    case = free_case
    s = case.structure
    scorer = Scorer(case.general_problem(identical=identical))
    models = case.near_models(seed=3, n_models=2)
    rwp = scorer.rwp(models)
    rwp_gradient_path, _ = scorer.rwp_and_gradient(models)
    fit = scorer.profiles(models)
    for m, frac in enumerate(models):
        peaks = naive.corrected_model_pattern(
            case.hall,
            s.cell.parameters,
            s.elements,
            frac,
            np.ones(s.n_sites),
            case.b_iso,
            TWO_THETA,
            RADIATION,
            PROFILE,
            RADIUS,
            identical,
        )
        p = case.pattern
        scale, _, y_calc = naive.fit_scale_background(p.y_obs, p.weights, peaks, N_BACKGROUND, p.two_theta)
        expected = naive.rwp(p.y_obs, y_calc, p.weights)
        np.testing.assert_allclose([rwp[m], rwp_gradient_path[m], fit.rwp[m]], expected, rtol=RTOL)
        np.testing.assert_allclose(fit.y_calc[m], y_calc, rtol=RTOL, atol=RTOL * p.y_obs.max())
        assert scale > 0


@pytest.mark.parametrize("identical", [False, True], ids=["own images", "identical atoms"])
def test_gradient_with_the_correction_equals_central_differences(free_case, identical):
    """Near the special positions, where the factors change with the coordinates: dRwp/dc · dc/dx included."""
    scorer = Scorer(free_case.general_problem(identical=identical))
    models = free_case.near_models(seed=4, n_models=2)
    _, jacobian = scorer.problem.overlap.factors(models)
    assert np.abs(jacobian).max() > 0.1  # the test would notice a missing occupancy term
    rwp, gradient = scorer.rwp_and_gradient(models)
    step = 1e-6
    n_sites = models.shape[1]
    for m, frac in enumerate(models):
        shifted = np.repeat(frac[None], 2 * n_sites * 3, axis=0).reshape(n_sites, 3, 2, n_sites, 3)
        for j, axis in np.ndindex(n_sites, 3):
            shifted[j, axis, 0, j, axis] += step
            shifted[j, axis, 1, j, axis] -= step
        values = scorer.rwp(shifted.reshape(-1, n_sites, 3)).reshape(n_sites, 3, 2)
        numeric = (values[..., 0] - values[..., 1]) / (2 * step)
        assert rwp[m] > 0.02
        np.testing.assert_allclose(gradient[m], numeric, rtol=1e-5, atol=1e-5 * np.abs(numeric).max())


# --- oracles: general sites on special positions ------------------------------------------------------------------


def test_general_sites_on_special_positions_score_as_wyckoff_sites(case):
    s = case.structure
    truth = s.frac[None]
    corrected = Scorer(case.general_problem())
    wyckoff = Scorer(case.wyckoff_problem())
    uncorrected = Scorer(case.general_problem(correction=False))
    expected = wyckoff.intensities(truth)[0]
    got = corrected.intensities(truth)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * expected.max())
    np.testing.assert_allclose(corrected.rwp(truth), wyckoff.rwp(truth), rtol=1e-6)
    # The real structure by an independent program: gemmi's F from the published sites.
    block = gemmi.cif.read_string(format_cif(s)).sole_block()
    small = gemmi.make_small_structure_from_block(block)
    for site, x in zip(small.sites, s.frac, strict=True):
        site.fract = gemmi.Fractional(*x)  # exact, not the CIF's 6 decimals
    small.change_occupancies_to_crystallographic()  # gemmi sums every operator: divide by coinciding images
    calculator = gemmi.StructureFactorCalculatorX(small.cell)
    hkl = corrected.problem.reflections.hkl
    oracle = np.abs([calculator.calculate_sf_from_small_structure(small, list(map(int, h))) for h in hkl]) ** 2
    np.testing.assert_allclose(got, oracle, rtol=1e-5, atol=1e-7 * oracle.max())
    # Without the correction the coinciding images count twice or more: a different pattern.
    wrong = uncorrected.intensities(truth)[0]
    assert np.max(np.abs(wrong - expected)) > 0.1 * expected.max()


def test_correction_changes_nothing_for_atoms_far_from_special_positions():
    """K4SnO4 (P-1, all atoms general): models whose images are all farther than r from every atom score as
    without the correction; and the correction is off unless asked for."""
    structure = read_cif(EXAMPLES / "K4SnO4.cif")
    pattern = read_pattern(EXAMPLES / "K4SnO4.xye").restrict(5.0, 40.0)
    profile = PeakProfile.constant_fwhm(0.1, eta=0.5)
    problem = ScoringProblem.from_structure(structure, pattern, parse_radiation("CuKa1"), profile, N_BACKGROUND)
    assert problem.overlap is None
    corrected = Scorer(problem.with_occupancy_correction(radius=RADIUS, identical=True))
    models = np.random.default_rng(5).random((40, structure.n_sites, 3))
    factors, _ = corrected.problem.overlap.factors(models)
    far = np.all(factors == 1.0, axis=1)
    assert 5 < far.sum() < len(models)
    plain = Scorer(problem)
    np.testing.assert_allclose(corrected.rwp(models[far]), plain.rwp(models[far]), rtol=1e-12)
    np.testing.assert_allclose(
        corrected.rwp_and_gradient(models[far])[1], plain.rwp_and_gradient(models[far])[1], rtol=1e-10, atol=1e-12
    )
    assert np.all(np.abs(corrected.rwp(models[~far]) - plain.rwp(models[~far])) > 1e-9)
