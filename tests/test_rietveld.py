"""Joint Rietveld refinement (gasolve.rietveld): the model against the scorer, derivatives of every parameter group
against finite differences, a simulated pattern with known parameters given back within its esds, and the
singular-matrix stop. The patterns here are simulated with neutral atoms and no anomalous dispersion
(gasolve.diffraction.simulate), so the models that must reproduce them exactly are built with
anomalous_dispersion=False; tests/test_scattering.py covers f', f''."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gasolve.crystal.cif_io import read_cif
from gasolve.crystal.structure import Site
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import Radiation
from gasolve.io.patterns import ObservedPattern
from gasolve.rietveld import RefinementSettings, RietveldModel, refine
from gasolve.rietveld.corrections import IntensityCorrection
from gasolve.rietveld.parameters import GROUPS
from gasolve.scoring import Scorer
from gasolve.scoring.problem import ScoringProblem
from tests.conftest import shared_path
from tests.naive import peak_derivative_4point

RADIATION = Radiation(((1.5406, 1.0),), "CuKa1")
TRUE_PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.02)
BACKGROUND = np.array([100.0, -10.0, 5.0])


@pytest.fixture(scope="module")
def pbso4():
    structure = read_cif(shared_path("measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif"))
    return replace(
        structure,
        sites=tuple(replace(s, b_iso=b) for s, b in zip(structure.sites, [1.2, 0.6, 1.5, 1.8, 1.4], strict=True)),
    )


def _pattern(structure, lo=15.0, hi=75.0, scale=3e-3, rng=None) -> ObservedPattern:
    two_theta = np.arange(lo, hi, 0.02)
    sim = simulate(structure, two_theta, RADIATION, TRUE_PROFILE, BACKGROUND)
    y = scale * sim.peaks + sim.background
    if rng is not None:
        y = rng.poisson(y).astype(float)
    return ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)))


def test_intensities_equal_the_scorers(pbso4):
    pattern = _pattern(pbso4)
    model = RietveldModel(pbso4, pattern, RADIATION, TRUE_PROFILE, background_terms=3, anomalous_dispersion=False)
    problem = ScoringProblem.from_structure(pbso4, pattern, RADIATION, TRUE_PROFILE, 3)
    engine = Scorer(problem).intensities(pbso4.frac[None])[0]
    ours = dict(zip(map(tuple, model.hkl), model.intensities(model.x0), strict=True))
    mine = np.array([ours[tuple(h)] for h in problem.reflections.hkl])
    np.testing.assert_allclose(mine, engine, rtol=1e-9, atol=1e-9 * engine.max())
    # and the whole pattern of the true vector is the simulated one: χ² zero to rounding
    assert model.chi2(model.x0) < 1e-12 * float(np.sum(pattern.weights * pattern.y_obs**2))


#: The specimen corrections of the derivative test (each a model of its own, at values away from their bounds).
_CORRECTIONS = {
    "surface_roughness": IntensityCorrection("suortti", (0.3, 0.4)),
    "absorption": IntensityCorrection("cylinder", (1.2,)),
}


# a further phase's cell and B move only that phase's peaks: tests/test_rietveld_phases.py checks their derivatives
@pytest.mark.parametrize("group", [g for g in GROUPS if not g.startswith("phase_")])
def test_derivatives_match_finite_differences(pbso4, group):
    pattern = _pattern(pbso4, 15.0, 50.0)
    po = (1, 0, 1) if group == "preferred_orientation" else None  # March-Dollase r (a model of its own)
    corrections = (_CORRECTIONS[group],) if group in _CORRECTIONS else ()
    adp = "aniso" if group == "u_aniso" else "iso"  # anisotropic U on every site (mirror and general positions)
    model = RietveldModel(
        pbso4,
        pattern,
        RADIATION,
        TRUE_PROFILE,
        background_terms=3,
        preferred_orientation=po,
        corrections=corrections,
        adp=adp,
    )
    x = model.x0 + 0.002 * np.sin(np.arange(model.n_parameters))  # away from special values
    x[model.layout.indices("preferred_orientation")] = 0.8
    free = model.layout.indices(group)
    assert len(free) > 0
    derivative = model.peak_derivatives(x, free)
    for column, j in enumerate(free):
        # an independent estimate: a 4-point (O(h⁴)) central difference with twice the model's step
        reference = peak_derivative_4point(model, x, j)
        # cell, zero, profile: the difference crosses the engine's window edges (tests/test_rietveld_shape.py checks
        # them tightly with small steps)
        analytic = ("coordinates", "b_iso", "u_aniso", "preferred_orientation", *_CORRECTIONS)
        tolerance = 1e-5 if group in analytic else 0.1
        error = np.linalg.norm(derivative[:, column] - reference) / np.linalg.norm(reference)
        assert error < tolerance, (model.layout.names[j], error)


def test_simulated_pattern_gives_its_parameters_back(pbso4):
    rng = np.random.default_rng(7)
    pattern = _pattern(pbso4, rng=rng)
    start = pbso4.with_frac(pbso4.frac + rng.normal(scale=0.008, size=pbso4.frac.shape) * [[1, 0, 1]])
    start = replace(
        start,
        cell=replace(start.cell, a=start.cell.a * 1.0004, c=start.cell.c * 0.9996),
        sites=tuple(replace(s, b_iso=1.0) for s in start.sites),
    )
    # O5 is on the general position: move its y too
    start = start.with_frac(start.frac + np.array([[0, 0, 0]] * 4 + [[0, 0.01, 0]]))
    profile0 = replace(TRUE_PROFILE, caglioti=(0.015, -0.002, 0.005), eta=0.5, zero=0.0)
    # the last stage crawls along the U, V, W valley from this start: 42 cycles to the convergence test
    settings = RefinementSettings(background_terms=3, max_iterations=60, anomalous_dispersion=False)
    result = refine(start, pattern, RADIATION, profile0, settings)
    assert result.error is None
    assert all(stage.converged for stage in result.stages), result.stages
    assert result.metrics.chi2 < 1.2  # Poisson noise only
    cell_error = np.abs(np.array(result.structure.cell.parameters[:3]) - pbso4.cell.parameters[:3])
    assert np.all(cell_error < 4 * result.cell_esd[:3]), (cell_error, result.cell_esd)
    delta = result.structure.frac - pbso4.frac
    delta -= np.round(delta)
    esd = result.coordinate_esd
    moved = esd > 0
    assert np.all(np.abs(delta[moved]) < 4 * esd[moved] + 1e-12)
    assert np.all(np.abs(delta[~moved]) < 1e-9)  # y = 1/4 of the mirror sites stays exact
    b = np.array([s.b_iso for s in result.structure.sites])
    b_true = np.array([s.b_iso for s in pbso4.sites])
    assert np.all(np.abs(b - b_true) < 4 * result.b_esd), (b, result.b_esd)
    u = result.uncertainties
    assert abs(result.profile.zero - TRUE_PROFILE.zero) < 4 * u.of("zero")
    assert 0 <= result.r_bragg < 0.05
    assert result.metrics.rwp <= result.stages[1].rwp + 1e-12


def test_b_per_element_has_one_parameter_per_element(pbso4):
    pattern = _pattern(pbso4, 15.0, 40.0)
    model = RietveldModel(pbso4, pattern, RADIATION, TRUE_PROFILE, background_terms=3, b_per="element")
    names = [n for n, g in zip(model.layout.names, model.layout.groups, strict=True) if g == "b_iso"]
    assert names == ["B(Pb)", "B(S)", "B(O)"]
    x = model.x0.copy()
    x[model.layout.index("B(O)")] = 2.5
    assert list(model.b_iso(x)[2:]) == [2.5, 2.5, 2.5]


def test_singular_matrix_names_parameters_and_keeps_last_sound_model(pbso4):
    # Two S atoms on the same spot: moving one or the other changes the pattern identically.
    twin = Site("S2b", "S", pbso4.sites[1].frac, 1.0, pbso4.sites[1].b_iso)
    start = replace(pbso4, sites=(*pbso4.sites, twin))
    pattern = _pattern(pbso4, 15.0, 40.0)
    result = refine(start, pattern, RADIATION, TRUE_PROFILE, RefinementSettings(background_terms=3))
    assert result.error is not None and "stage coordinates" in result.error
    assert "x(S2)" in result.error and "x(S2b)" in result.error
    assert "x(PB1)" not in result.error
    # the model is the one the previous stage left: coordinates as started
    np.testing.assert_allclose(result.structure.frac[:5], pbso4.frac - np.floor(pbso4.frac), atol=1e-12)


def test_unknown_group_is_rejected():
    from gasolve.errors import InputError

    with pytest.raises(InputError, match="unknown refinement groups"):
        RefinementSettings(groups=("cell", "texture"))


def test_polar_group_holds_the_origin_and_refines_the_rest():
    # Cu3AsS4, Pmn2_1: the origin floats along c; the heaviest atom (As) holds it, as refinement programs do.
    truth = read_cif(shared_path("cif/aflow-prototypes/086_AB3C4_oP16_31_a_ab_2ab.cif"))
    truth = replace(truth, sites=tuple(replace(s, b_iso=0.8) for s in truth.sites))
    pattern = _pattern(truth, 15.0, 60.0)
    model = RietveldModel(truth, pattern, RADIATION, TRUE_PROFILE, background_terms=3, anomalous_dispersion=False)
    anchor = truth.elements.index("As")
    assert f"z({truth.sites[anchor].label})" not in model.layout.names
    others = [f"z({s.label})" for i, s in enumerate(truth.sites) if i != anchor]
    assert all(name in model.layout.names for name in others)
    x = model.x0.copy()
    x[model.layout.indices("coordinates")] += 0.004  # the free coordinates only: sites stay on their mirrors
    settings = RefinementSettings(background_terms=3, groups=("coordinates",), anomalous_dispersion=False)
    result = refine(model.structure_of(x), pattern, RADIATION, TRUE_PROFILE, settings)
    assert result.error is None
    assert np.isnan(result.coordinate_esd[anchor, 2])
    assert np.all(np.isfinite(np.delete(result.coordinate_esd, anchor, axis=0)))
    for site, reference in zip(result.structure.sites, truth.sites, strict=True):
        delta = truth.space_group.orbit(np.array(reference.frac)) - np.array(site.frac)
        delta -= np.round(delta)
        assert np.min(truth.cell.distance(np.zeros(3), delta)) < 1e-3, site.label


def test_sites_a_little_off_their_mirror_are_refined_on_it(pbso4):
    # coordinates rounded as in a CIF: y = 0.2501 instead of 1/4 (0.5 mÅ off the mirror)
    nudged = pbso4.with_frac(pbso4.frac + np.array([[0, 1e-4, 0]] * 4 + [[0, 0, 0]]))
    pattern = _pattern(pbso4, 15.0, 40.0)
    model = RietveldModel(nudged, pattern, RADIATION, TRUE_PROFILE, background_terms=3, anomalous_dispersion=False)
    assert model.wyckoff == ("4c", "4c", "4c", "4c", "8d")
    assert list(model.multiplicity) == [4, 4, 4, 4, 8]
    assert model.chi2(model.x0) < 1e-9 * float(np.sum(model.pattern.weights * model.pattern.y_obs**2))


def test_a_step_slides_along_a_linear_bound():
    """A damped step that would break A x <= b (η + slope·2θ <= 1) ends on the bound, keeping the rest of it."""
    from gasolve.rietveld.lm import CONSTRAINT_MARGIN, _onto_constraints

    metric = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    step = np.array([1.0, 1.0, 1.0])
    bound = (np.array([[1.0, 1.0, 0.0, 0.0]]), np.array([0.5]))  # on x0 + x1, the last entry not free
    x = np.zeros(4)
    held = _onto_constraints(metric, step, x, np.array([0, 1, 2]), bound)
    assert held[0] + held[1] == pytest.approx(0.5 - CONSTRAINT_MARGIN, abs=1e-12)
    assert held[2] == pytest.approx(1.0)  # untouched by the bound
    # the minimum of the quadratic model on the bound: its gradient there is normal to the bound
    gradient = metric @ (held - np.linalg.solve(metric, metric @ step))
    assert gradient[0] == pytest.approx(gradient[1])
    # a step that breaks nothing is kept
    np.testing.assert_array_equal(_onto_constraints(metric, -step, x, np.array([0, 1, 2]), bound), -step)
