"""The batched Numba scorer against the slow references of tests/naive.py, on real structures.

Cases: K4SnO4 (P-1, centrosymmetric, 9 general positions); PbSO4 (Pnma, four atoms on the mirror at
y = 1/4, here given a different B for every site and partial occupancies); low quartz (P3_221,
non-centrosymmetric, Si on a two-fold axis); high cristobalite in Fd-3m origin choice 1 (centrosymmetric with
the inversion centre off the origin, F-centred, every atom on a fixed special position). The instrument has
both Cu Kα lines, Caglioti widths, an angle-dependent η and a zero shift. The observed patterns are built by
tests/naive.py from the published structures (special positions made exact), plus a smooth background that
is not a Chebyshev polynomial, plus Poisson noise. Trial models keep every atom on its Wyckoff position,
because the scorer's site multiplicities are fixed when the problem is built.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import naive
import numpy as np
import pytest
from conftest import shared_path

from gasolve.crystal import Structure, read_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.io.patterns import ObservedPattern, counting_sigma
from gasolve.scoring import Scorer, ScoringProblem

CASES = {
    "K4SnO4-P-1": "structures/K4SnO4.cif",
    "PbSO4-Pnma": "measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif",
    "quartz-P3221": "cif/pyxtal-database/lt_quartz.cif",
    "cristobalite-Fd-3m:1": "cif/pyxtal-database/ht_cristobalite.cif",
}
RADIATION = parse_radiation("CuKa12")
PROFILE = PeakProfile(caglioti=(0.004, -0.002, 0.003), eta=0.4, eta_slope=0.002, zero=0.03, cutoff=6.0)
TWO_THETA = np.round(np.arange(10.0, 70.0 + 1e-9, 0.02), 10)
N_BACKGROUND = 4
RTOL = 1e-6


@dataclass(frozen=True)
class Case:
    """A structure, its observed pattern and the scorer built for it, with what tests/naive.py needs."""

    name: str
    structure: Structure
    pattern: ObservedPattern
    scorer: Scorer
    projectors: np.ndarray  # (n_sites, 3, 3): shifts x + P d that keep each site on its Wyckoff position

    @property
    def hall(self) -> str:
        return self.structure.space_group.hall

    @property
    def occupancy(self) -> np.ndarray:
        return np.array([site.occupancy for site in self.structure.sites])

    @property
    def b_iso(self) -> np.ndarray:
        return np.array([site.b_iso for site in self.structure.sites])

    def naive_peaks(self, frac: np.ndarray, two_theta: np.ndarray = TWO_THETA) -> np.ndarray:
        return naive.model_pattern(
            self.hall,
            self.structure.cell.parameters,
            self.structure.elements,
            frac,
            self.occupancy,
            self.b_iso,
            two_theta,
            RADIATION,
            PROFILE,
        )

    def naive_fit(self, frac: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, float]:
        """Scale, background coefficients, y_calc and Rwp of one model by explicit least squares."""
        peaks = self.naive_peaks(frac)
        p = self.pattern
        scale, coefficients, y_calc = naive.fit_scale_background(p.y_obs, p.weights, peaks, N_BACKGROUND, p.two_theta)
        return scale, coefficients, y_calc, naive.rwp(p.y_obs, y_calc, p.weights)

    def models(self, seed: int, n_random: int = 3) -> np.ndarray:
        """The true coordinates, one model near them and ``n_random`` random ones, (n_models, n_sites, 3).

        Random shifts are projected onto each site's Wyckoff position and may leave [0, 1).
        """
        rng = np.random.default_rng(seed)
        x0 = self.structure.frac
        out = [x0]
        for amplitude in [0.03] + [0.6] * n_random:
            shift = rng.uniform(-amplitude, amplitude, size=x0.shape)
            out.append(x0 + np.einsum("sij,sj->si", self.projectors, shift))
        return np.array(out)


def symmetrised(structure: Structure) -> Structure:
    """The structure with every near-special position put exactly onto it (CIFs round 1/3 to 8 digits)."""
    hall = structure.space_group.hall
    return structure.with_frac(np.array([naive.symmetrise_position(hall, x) for x in structure.frac]))


def noisy_pattern(case_structure: Structure, seed: int) -> ObservedPattern:
    """Peaks of the structure (strongest point 5000 counts) over a smooth background, with Poisson noise."""
    peaks = naive.model_pattern(
        case_structure.space_group.hall,
        case_structure.cell.parameters,
        case_structure.elements,
        case_structure.frac,
        np.array([s.occupancy for s in case_structure.sites]),
        np.array([s.b_iso for s in case_structure.sites]),
        TWO_THETA,
        RADIATION,
        PROFILE,
    )
    expected = 5000.0 * peaks / peaks.max() + 200.0 + 60.0 * np.cos(TWO_THETA / 15.0)
    y_obs = np.random.default_rng(seed).poisson(expected).astype(float)
    return ObservedPattern(TWO_THETA, y_obs, counting_sigma(y_obs))


def with_site_parameters(structure: Structure, b_iso: list[float], occupancy: list[float]) -> Structure:
    sites = tuple(
        dataclasses.replace(site, b_iso=b, occupancy=occ)
        for site, b, occ in zip(structure.sites, b_iso, occupancy, strict=True)
    )
    return dataclasses.replace(structure, sites=sites, _cache={})


@functools.cache
def make_case(name: str) -> Case:
    structure = symmetrised(read_cif(shared_path(CASES[name])))
    if name == "PbSO4-Pnma":  # site-specific B and occupancies must reach the scorer's tables
        structure = with_site_parameters(structure, [0.6, 0.3, 1.2, 0.9, 1.5], [1.0, 0.95, 0.9, 1.0, 0.8])
    pattern = noisy_pattern(structure, seed=len(name))
    problem = ScoringProblem.from_structure(structure, pattern, RADIATION, PROFILE, background_terms=N_BACKGROUND)
    hall = structure.space_group.hall
    projectors = np.array([naive.special_position_projector(hall, x) for x in structure.frac])
    return Case(name, structure, pattern, Scorer(problem), projectors)


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> Case:
    return make_case(request.param)


@pytest.fixture(scope="module", params=["K4SnO4-P-1", "PbSO4-Pnma", "quartz-P3221"])
def free_case(request) -> Case:
    """The cases with free coordinates (every atom of cristobalite sits on a fixed special position)."""
    return make_case(request.param)


def test_cases_cover_the_intended_symmetry(case):
    group = case.structure.space_group
    expected = {
        "K4SnO4-P-1": (True, True, 18),
        "PbSO4-Pnma": (True, True, 24),
        "quartz-P3221": (False, False, 9),
        "cristobalite-Fd-3m:1": (True, False, 24),
    }[case.name]
    n_atoms = len(
        naive.expand_cell(case.hall, case.structure.elements, case.structure.frac, case.occupancy, case.b_iso)[0]
    )
    assert (group.is_centrosymmetric, case.scorer.problem.centric, n_atoms) == expected
    special = [not np.allclose(p, np.eye(3)) for p in case.projectors]
    assert any(special) == (case.name != "K4SnO4-P-1")


def test_rwp_equals_naive(case):
    models = case.models(seed=1)
    expected = [case.naive_fit(frac)[3] for frac in models]
    np.testing.assert_allclose(case.scorer.rwp(models), expected, rtol=RTOL)
    rwp_from_gradient_path, _ = case.scorer.rwp_and_gradient(models)
    np.testing.assert_allclose(rwp_from_gradient_path, expected, rtol=RTOL)


def test_batch_equals_models_scored_one_by_one():
    """Chunking a batch across threads changes nothing: 37 models at once equal 37 single calls."""
    case = make_case("PbSO4-Pnma")
    models = np.concatenate([case.models(seed=seed, n_random=6) for seed in range(10, 14)])[:37]
    batch_rwp, batch_gradient = case.scorer.rwp_and_gradient(models)
    np.testing.assert_allclose(case.scorer.rwp(models), batch_rwp, rtol=1e-13)
    for frac, rwp, gradient in zip(models, batch_rwp, batch_gradient, strict=True):
        single_rwp, single_gradient = case.scorer.rwp_and_gradient(frac[None])
        np.testing.assert_allclose(single_rwp[0], rwp, rtol=1e-13)
        np.testing.assert_allclose(single_gradient[0], gradient, rtol=1e-12, atol=1e-12 * np.abs(gradient).max())
    assert np.ptp(batch_rwp) > 0.05


def test_intensities_equal_naive_f_squared(case):
    models = case.models(seed=2)
    reflections = case.scorer.problem.reflections
    engine = case.scorer.intensities(models)
    for frac, got in zip(models, engine, strict=True):
        f = naive.model_structure_factors(
            case.hall,
            case.structure.cell.parameters,
            case.structure.elements,
            frac,
            case.occupancy,
            case.b_iso,
            reflections.hkl,
        )
        expected = np.abs(f) ** 2
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-9 * expected.max())


def test_profiles_equal_naive_least_squares(case):
    models = case.models(seed=3)
    fit = case.scorer.profiles(models)
    y_scale = np.abs(case.pattern.y_obs).max()
    for m, frac in enumerate(models):
        scale, coefficients, y_calc, rwp = case.naive_fit(frac)
        assert scale > 0
        np.testing.assert_allclose(fit.scale[m], scale, rtol=RTOL)
        np.testing.assert_allclose(fit.background[m], coefficients, rtol=RTOL, atol=RTOL * y_scale)
        np.testing.assert_allclose(fit.y_calc[m], y_calc, rtol=RTOL, atol=RTOL * y_scale)
        np.testing.assert_allclose(fit.difference[m], case.pattern.y_obs - y_calc, rtol=RTOL, atol=RTOL * y_scale)
        np.testing.assert_allclose(fit.rwp[m], rwp, rtol=RTOL)


def test_gradient_equals_central_differences(free_case):
    case = free_case
    models = case.models(seed=4, n_random=1)[1:]  # one near the truth, one random: both far from Rwp = 0
    rwp, gradient = case.scorer.rwp_and_gradient(models)
    step = 1e-6
    n_sites = case.structure.n_sites
    for m, frac in enumerate(models):
        shifted = np.repeat(frac[None], 2 * n_sites * 3, axis=0).reshape(n_sites, 3, 2, n_sites, 3)
        for j in range(n_sites):
            for axis in range(3):
                shifted[j, axis, 0, j, axis] += step
                shifted[j, axis, 1, j, axis] -= step
        values = case.scorer.rwp(shifted.reshape(-1, n_sites, 3)).reshape(n_sites, 3, 2)
        finite = (values[..., 0] - values[..., 1]) / (2.0 * step)
        assert rwp[m] > 0.05
        assert np.abs(finite).max() > 1e-2
        np.testing.assert_allclose(gradient[m], finite, rtol=1e-5, atol=1e-5 * np.abs(finite).max())


def test_rwp_is_zero_for_the_noise_free_simulation(case):
    """simulate() (NumPy, expanded cell) and the scorer (symmetry-factored Numba) agree to rounding."""
    coefficients = np.array([300.0, -40.0, 20.0, 5.0])
    simulated = simulate(case.structure, TWO_THETA, RADIATION, PROFILE, coefficients)
    y_obs = 2.0 * simulated.peaks + simulated.background
    pattern = ObservedPattern(TWO_THETA, y_obs, counting_sigma(y_obs))
    scorer = Scorer(ScoringProblem.from_structure(case.structure, pattern, RADIATION, PROFILE, len(coefficients)))
    truth = case.structure.frac[None]
    fit = scorer.profiles(truth)
    assert fit.rwp[0] < 1e-10
    np.testing.assert_allclose(fit.scale, 2.0, rtol=1e-10)
    np.testing.assert_allclose(fit.background[0], coefficients, rtol=1e-8, atol=1e-8)
    # The fast path forms chi2 = A - (b·I)²/(IᵀGI): a difference of two numbers of size Σ w y², so its Rwp
    # cannot resolve values below about sqrt(machine epsilon) ~ 1e-8.
    assert scorer.rwp(truth)[0] < 1e-7
    assert scorer.rwp_and_gradient(truth)[0][0] < 1e-7
    # A wrong model fits badly. Cristobalite has no free coordinate (its models are all the truth), so there its
    # last atom is moved off its fixed position (scored as given).
    wrong = case.models(seed=5, n_random=1)[-1:]
    if not case.projectors.any():
        wrong = truth.copy()
        wrong[0, -1] += (0.03, 0.01, -0.02)
    assert not np.allclose(wrong, truth)
    assert scorer.rwp(wrong)[0] > 1e-3


def _naive_arguments(structure: Structure) -> tuple:
    """naive.model_pattern's arguments before the profile: full occupancy, B = 0, the module's grid and radiation."""
    return (
        structure.space_group.hall,
        structure.cell.parameters,
        structure.elements,
        structure.frac,
        np.ones(structure.n_sites),
        np.zeros(structure.n_sites),
        TWO_THETA,
        RADIATION,
    )


def test_peak_tails_from_beyond_the_range_are_kept():
    structure = make_case("K4SnO4-P-1").structure
    broad = PeakProfile(caglioti=(0.3, -0.1, 0.05), eta=0.5, cutoff=30.0)
    expected = naive.model_pattern(*_naive_arguments(structure), broad, margin=30.0)
    got = simulate(structure, TWO_THETA, RADIATION, broad).peaks
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_rwp_invariant_under_p1_bar_origin_choice_inversion_and_relabelling():
    """P-1 has inversion centres at the 8 points (0 or 1/2 per axis); any of them may be the origin."""
    case = make_case("K4SnO4-P-1")
    assert case.structure.elements == ["Sn", "K", "K", "K", "K", "O", "O", "O", "O"]
    model = case.models(seed=6, n_random=0)[1]
    variants = [model + 0.5 * np.array(shift) for shift in np.ndindex(2, 2, 2)]
    variants += [-model, -model + np.array([0.5, 0.0, 0.5])]
    permuted = model.copy()
    permuted[1:5] = model[[3, 1, 4, 2]]  # the four K sites
    permuted[5:9] = model[[8, 7, 5, 6]]  # the four O sites
    variants += [permuted, -permuted + 0.5]
    reference = case.scorer.rwp(model[None])[0]
    np.testing.assert_allclose(case.scorer.rwp(np.array(variants)), reference, rtol=1e-10)
    # The same moves that are not symmetries of P-1 do change Rwp.
    controls = [model + np.array([0.25, 0.0, 0.0]), model * np.array([-1.0, 1.0, 1.0])]
    swapped = model.copy()
    swapped[[0, 1]] = model[[1, 0]]  # Sn with a K
    controls.append(swapped)
    assert np.all(np.abs(case.scorer.rwp(np.array(controls)) / reference - 1.0) > 1e-3)


def test_negative_best_scale_is_replaced_by_zero():
    """When the peaks anticorrelate with the data the scale is 0 and only the background is fitted."""
    case = make_case("K4SnO4-P-1")
    truth = case.structure.frac
    peaks = case.naive_peaks(truth)
    y_obs = 3000.0 + 400.0 * np.cos(TWO_THETA / 10.0) - 2000.0 * peaks / peaks.max()
    pattern = ObservedPattern(TWO_THETA, y_obs, counting_sigma(y_obs))
    weights = pattern.weights
    assert naive.unconstrained_scale(y_obs, weights, peaks, N_BACKGROUND, TWO_THETA) < 0
    scale, coefficients, y_calc = naive.fit_scale_background(y_obs, weights, peaks, N_BACKGROUND, TWO_THETA)
    assert scale == 0.0
    expected_rwp = naive.rwp(y_obs, y_calc, weights)
    assert expected_rwp > 1e-3

    scorer = Scorer(ScoringProblem.from_structure(case.structure, pattern, RADIATION, PROFILE, N_BACKGROUND))
    fit = scorer.profiles(truth[None])
    assert fit.scale[0] == 0.0
    np.testing.assert_allclose(fit.background[0], coefficients, rtol=RTOL, atol=RTOL * y_obs.max())
    np.testing.assert_allclose(fit.y_calc[0], y_calc, rtol=RTOL)
    np.testing.assert_allclose(fit.rwp[0], expected_rwp, rtol=RTOL)
    np.testing.assert_allclose(scorer.rwp(truth[None])[0], expected_rwp, rtol=RTOL)
    rwp, gradient = scorer.rwp_and_gradient(truth[None])
    np.testing.assert_allclose(rwp[0], expected_rwp, rtol=RTOL)
    assert np.all(gradient == 0.0)

    # Without background nothing is fitted at all: y_calc = 0 and Rwp = 1 exactly.
    y_obs = 50.0 - 2000.0 * peaks / peaks.max()
    pattern = ObservedPattern(TWO_THETA, y_obs, counting_sigma(y_obs))
    assert naive.unconstrained_scale(y_obs, pattern.weights, peaks, 0, TWO_THETA) < 0
    bare = Scorer(ScoringProblem.from_structure(case.structure, pattern, RADIATION, PROFILE, background_terms=0))
    np.testing.assert_allclose(bare.rwp(truth[None]), 1.0, rtol=1e-12)
    np.testing.assert_allclose(bare.profiles(truth[None]).y_calc, 0.0, atol=0.0)


@pytest.mark.parametrize("polarisation", [0.5, 0.99])
def test_synchrotron_polarisation_equals_naive(polarisation):
    """The engine's beam-polarisation factor (GSAS-II's P + (1 − P) cos² 2θ) equals the naive pattern; P = 0.5
    is the unpolarised laboratory form, and 0.99 differs from it."""
    structure = make_case("K4SnO4-P-1").structure
    profile = PeakProfile(caglioti=(0.01, -0.005, 0.01), eta=0.4, polarisation=polarisation)
    arguments = _naive_arguments(structure)
    got = simulate(structure, TWO_THETA, RADIATION, profile).peaks
    np.testing.assert_allclose(got, naive.model_pattern(*arguments, profile), rtol=RTOL, atol=1e-12 * got.max())
    laboratory = naive.model_pattern(*arguments, dataclasses.replace(profile, polarisation=None))
    if polarisation == 0.5:
        np.testing.assert_allclose(got, laboratory, rtol=RTOL, atol=1e-12 * got.max())
    else:
        assert np.max(np.abs(got - laboratory)) > 0.05 * got.max()
