"""Per-atom features of nnselect.peratom: shapes, invariances, and against slow references built another way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnselect.peratom.features import N_FEATURES, SCALARS, AtomFeatures, site_structure_factors

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _problem(elements, frac, group="P-1", y_scale=1.0, drop=None):
    """A ScoringProblem of the K4SnO4 cell against the pattern of ``frac`` (simulated by the engine, no noise);
    ``drop``: leave that site out of the problem (the pattern stays)."""
    from gasolve.crystal import SpaceGroup, UnitCell
    from gasolve.diffraction.profile import PeakProfile
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.io.patterns import ObservedPattern
    from gasolve.scoring.problem import ScoringProblem
    from gasolve.scoring.scorer import Scorer

    cell = UnitCell(6.6, 6.9, 9.1, 95.0, 101.0, 92.0)
    group = SpaceGroup.from_symbol(group)
    radiation = parse_radiation("CuKa1")
    profile = PeakProfile(caglioti=(0.0, 0.0, 0.12**2), eta=0.5)
    two_theta = np.arange(10.0, 60.0, 0.02)
    flat = ObservedPattern(two_theta, np.ones_like(two_theta), np.ones_like(two_theta))
    truth = ScoringProblem.build(cell, group, list(elements), flat, radiation, profile, 3, b_iso=1.0)
    fit = Scorer(truth).intensities(np.asarray(frac)[None])[0]
    y = 50.0 + truth.peak_matrix.to_sparse() @ fit
    y = y_scale * y / y.max() * 1e4
    pattern = ObservedPattern(two_theta, y, np.sqrt(y))
    keep = [i for i in range(len(elements)) if i != drop]
    return ScoringProblem.build(cell, group, [elements[i] for i in keep], pattern, radiation, profile, 3, b_iso=1.0)


ELEMENTS = ("Sn", "K", "K", "O", "O")
TRUTH = np.array([[0.1, 0.2, 0.3], [0.4, 0.1, 0.7], [0.8, 0.6, 0.2], [0.3, 0.7, 0.5], [0.6, 0.35, 0.85]])


@pytest.mark.parametrize("group", ["P-1", "P1", "P2_1/c"])
def test_site_structure_factors_sum_to_the_engine_intensities(group):
    from gasolve.scoring.scorer import Scorer

    problem = _problem(ELEMENTS, TRUTH, group)
    model = np.random.default_rng(0).random((5, 3))
    f_site = site_structure_factors(problem, model)
    assert f_site.shape == (5, problem.n_refl)
    np.testing.assert_allclose(np.abs(f_site.sum(axis=0)) ** 2, Scorer(problem).intensities(model[None])[0], rtol=1e-9)


def test_site_structure_factors_match_the_naive_expansion():
    """Each site's F_j(h) against tests/naive.py: the orbit expanded by gemmi-free operators, IT92 form factors."""
    import naive

    problem = _problem(ELEMENTS, TRUTH, "P2_1/c")
    model = np.random.default_rng(1).random((5, 3))
    f_site = site_structure_factors(problem, model)
    hall = problem.space_group.hall
    c = problem.cell
    params = (c.a, c.b, c.c, c.alpha, c.beta, c.gamma)
    for j, element in enumerate(ELEMENTS):
        expected = naive.model_structure_factors(
            hall, params, [element], model[j : j + 1], np.ones(1), np.ones(1), problem.reflections.hkl
        )
        np.testing.assert_allclose(np.abs(f_site[j]) ** 2, np.abs(expected) ** 2, rtol=1e-6, atol=1e-6)


def test_omit_and_correlation_match_problems_built_without_the_atom():
    """``omit`` = log(χ² without the atom / χ²) and ``corr`` = weighted correlation of d with the atom's profile,
    both recomputed from a problem built without the site (the engine's own exact scale and background fit)."""
    from gasolve.scoring.scorer import Scorer

    model = TRUTH.copy()
    model[3] = (model[3] + 0.37) % 1.0  # one O misplaced
    problem = _problem(ELEMENTS, TRUTH)
    features = AtomFeatures(problem)(model)[0]
    scorer = Scorer(problem)
    fit = scorer.profiles(model[None])
    chi2 = fit.rwp[0] ** 2 * problem.norm
    dense = problem.peak_matrix.to_sparse().toarray()
    w = problem.pattern.weights
    d = fit.difference[0]
    intensity = scorer.intensities(model[None])[0]
    for j in range(len(ELEMENTS)):
        without = _problem(ELEMENTS, TRUTH, drop=j)
        rest = np.delete(model, j, axis=0)[None]
        chi2_without = Scorer(without).rwp(rest)[0] ** 2 * without.norm
        assert features[j, SCALARS.index("omit")] == pytest.approx(np.log(chi2_without / chi2), abs=1e-4)
        contribution = fit.scale[0] * dense @ (intensity - Scorer(without).intensities(rest)[0])
        corr = np.sum(w * d * contribution) / np.sqrt(np.sum(w * d**2) * np.sum(w * contribution**2))
        assert features[j, SCALARS.index("corr")] == pytest.approx(corr, abs=1e-4)
    # the misplaced O is the one the data least want where it is
    assert np.argmin(features[:, SCALARS.index("omit")]) == 3
    assert np.argmin(features[:, SCALARS.index("rho_2fofc")]) == 3


def test_features_have_one_fixed_length_whatever_the_site_count_and_follow_the_sites():
    small = _problem(ELEMENTS[:2], TRUTH[:2])
    large = _problem(ELEMENTS, TRUTH)
    rng = np.random.default_rng(2)
    f_small = AtomFeatures(small)(rng.random((3, 2, 3)))
    f_large = AtomFeatures(large)(rng.random((3, 5, 3)))
    assert f_small.shape == (3, 2, N_FEATURES) and f_large.shape == (3, 5, N_FEATURES)
    assert np.all(np.isfinite(f_large))
    # permuting the two K sites of the model (same element) permutes their feature rows
    model = rng.random((5, 3))
    order = [0, 2, 1, 3, 4]
    features = AtomFeatures(large)
    np.testing.assert_allclose(features(model[order])[0], features(model)[0][order], rtol=1e-4, atol=1e-5)


def test_features_do_not_depend_on_the_counting_scale():
    model = np.random.default_rng(3).random((2, 5, 3))
    one = AtomFeatures(_problem(ELEMENTS, TRUTH))(model)
    ten = AtomFeatures(_problem(ELEMENTS, TRUTH, y_scale=10.0))(model)
    np.testing.assert_allclose(one, ten, rtol=1e-3, atol=1e-4)


def test_features_refuse_coordinates_of_another_site_count():
    features = AtomFeatures(_problem(ELEMENTS, TRUTH))
    with pytest.raises(ValueError, match="n_models, 5, 3"):
        features(np.zeros((1, 4, 3)))
