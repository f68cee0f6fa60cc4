"""The peak-shape matrix and its analytic derivatives (gasolve.rietveld.shape_jacobian) on real structures.

The values must be the engine's matrix; the derivatives of the pattern with respect to the cell, zero shift,
specimen displacement and profile must match an independent 4-point difference of the pattern. The engine cuts each
peak at ``cutoff`` FWHM, so P I jumps a little when a window edge crosses a data point; with the model's own steps
(tests/naive.py peak_derivative_4point: 1 % of a width) those jumps put 10⁻³-10⁻² into the difference, so the tight
comparison uses steps 10³-10⁶ times smaller and keeps the best (the jump of a crossed edge is not small with the
step; it swamps the difference quotient, so that a crossing is plain).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gasolve.crystal.cif_io import read_cif
from gasolve.diffraction.profile import PeakProfile, build_peak_matrix
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import Radiation, parse_radiation
from gasolve.io.patterns import ObservedPattern
from gasolve.rietveld.model import RietveldModel
from gasolve.rietveld.shape_jacobian import peak_shape_jacobian
from tests.conftest import shared_path
from tests.naive import peak_derivative_4point

PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.02)
SHAPE_GROUPS = ("cell", "zero", "profile")

#: (name, CIF under ../shared/data, radiation, profile, displacement refined).
CASES = {
    # PbSO4 (Pbnm, 3 cell coefficients), lab Kα1+2 with axial divergence and a specimen displacement
    "pbso4-axial": (
        "measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif",
        parse_radiation("CuKa12"),
        replace(PROFILE, axial=0.03, displacement=0.01),
        True,
    ),
    # corundum (R-3c, 2 cell coefficients), Kα1 with Bérar-Baldinozzi asymmetry
    "corundum-asymmetry": (
        "measured/corundum-SRM676a-lab-CuKa/corundum_COD1000017_copied_from_XRed.cif",
        Radiation(((1.5406, 1.0),), "CuKa1"),
        replace(PROFILE, asymmetry=(0.05, 0.02, 0.0, 0.0)),
        False,
    ),
    # Thompson-Cox-Hastings: PbSO4 with Kα1+2 and axial divergence; LaB6 at 11-BM with a displacement
    "pbso4-tch": (
        "measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif",
        parse_radiation("CuKa12"),
        PeakProfile(caglioti=(0.01, -0.005, 0.003), lorentzian=(0.03, 0.02), zero=0.02, axial=0.03),
        False,
    ),
    "lab6-tch-synchrotron": (
        "measured/LaB6-SRM660-lab-CuKa/LaB6_literature.cif",
        Radiation(((0.413909, 1.0),), "11-BM"),
        PeakProfile(caglioti=(0.002, -0.001, 0.0008), lorentzian=(0.004, 0.002), polarisation=0.99),
        True,
    ),
    # LaB6 (Pm-3m, 1 coefficient) at a synchrotron wavelength with a polarised beam (another LP form)
    "lab6-synchrotron": (
        "measured/LaB6-SRM660-lab-CuKa/LaB6_literature.cif",
        Radiation(((0.413909, 1.0),), "11-BM"),
        replace(PROFILE, caglioti=(0.002, -0.001, 0.0008), polarisation=0.99),
        True,
    ),
}


def _model(case: str) -> tuple[RietveldModel, np.ndarray]:
    cif, radiation, profile, displacement = CASES[case]
    structure = read_cif(shared_path(cif))
    wavelength = radiation.lines[0][0]
    lo, hi = (15.0, 60.0) if wavelength > 1 else (4.0, 16.0)
    two_theta = np.arange(lo, hi, 0.02 if wavelength > 1 else 0.005)
    sim = simulate(structure, two_theta, radiation, profile, np.array([100.0, -10.0, 5.0]))
    y = 1e4 * sim.peaks / sim.peaks.max() + sim.background
    pattern = ObservedPattern(two_theta, y, np.sqrt(y))
    model = RietveldModel(structure, pattern, radiation, profile, background_terms=3, displacement=displacement)
    # away from special values, by 1e-3 of each value (of 0.1 for the small ones)
    x = model.x0 + 1e-3 * np.sin(np.arange(model.n_parameters)) * np.maximum(np.abs(model.x0), 0.1)
    return model, x


def _four_point(model: RietveldModel, x: np.ndarray, j: int, h: float) -> np.ndarray:
    values = []
    for k in (-2, -1, 1, 2):
        trial = np.array(x, dtype=float)
        trial[j] += k * h
        values.append(model.peaks(trial))
    return (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_are_the_engines_matrix(case):
    model, x = _model(case)
    reflections = model.reflections(x)
    profile = model.profile(x)
    two_theta = model.pattern.two_theta
    names = tuple(n for n in model.profile_names)
    jacobian = peak_shape_jacobian(
        two_theta, reflections, model.radiation, profile, np.zeros((len(reflections), 0)), names
    )
    engine = build_peak_matrix(two_theta, reflections, model.radiation, profile).to_sparse().tocoo()
    ours = np.zeros((len(two_theta), len(reflections)))
    np.add.at(ours, (jacobian.rows, jacobian.column), jacobian.values)
    np.testing.assert_allclose(ours, engine.toarray(), rtol=1e-12, atol=1e-14 * engine.max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_shape_derivatives_match_four_point_differences(case):
    model, x = _model(case)
    free = model.layout.indices(SHAPE_GROUPS)
    derivative = model.peak_derivatives(x, free)
    steps = model.layout.steps(x)
    for column, j in enumerate(free):
        name = model.layout.names[j]
        # tight: steps 10³-10⁶ times smaller than the model's, the best of four: one that crosses a window edge
        # (module docstring) is far off, however small, and rounding limits the smallest to ~1e-4
        error = min(
            np.linalg.norm(derivative[:, column] - _four_point(model, x, j, factor * steps[j]))
            / np.linalg.norm(derivative[:, column])
            for factor in (1e-3, 1e-4, 1e-5, 1e-6)
        )
        assert error < 1e-4, (name, error)
        # and the reference of tests/naive.py with the model's steps, within the jumps it crosses
        reference = peak_derivative_4point(model, x, j)
        error = np.linalg.norm(derivative[:, column] - reference) / np.linalg.norm(reference)
        assert error < 0.1, (name, error)


def test_a_wrong_chain_is_caught():
    """The comparison can fail: drop the intensities' share of the cell derivative and it does."""
    model, x = _model("pbso4-axial")
    j = int(model.layout.indices("cell")[0])
    full = model.shape_derivatives(x, np.array([j]))[:, 0]
    reflections = model.reflections(x)
    profile = model.profile(x)
    near = model._near_the_data(reflections, profile)
    hkl = model.hkl[near].astype(float)
    gradient = np.einsum("ni,ik,nk->n", hkl, model.constraint.basis[0], hkl)[:, None]
    jacobian = peak_shape_jacobian(
        model.pattern.two_theta, reflections.subset(near), model.radiation, profile, gradient, ()
    )
    shape_only = jacobian.apply(model.intensities(x)[near])[:, 0]
    reference = _four_point(model, x, j, 1e-4 * model.layout.steps(x)[j])
    assert np.linalg.norm(full - reference) / np.linalg.norm(reference) < 1e-4
    assert np.linalg.norm(shape_only - reference) / np.linalg.norm(reference) > 1e-3


def test_no_jump_where_eta_leaves_the_unit_interval_beyond_the_data():
    """A reflection just beyond the data whose η + slope·2θ crosses 1 keeps a clipped η: the pattern moves by
    about its derivative times the step, where dropping that peak made χ² jump (PbSO4: +400 at Rwp 7.8 %)."""
    model, x = _model("pbso4-axial")
    reflections = model.reflections(x)
    profile = model.profile(x)
    near = model._near_the_data(reflections, profile)
    centre = reflections.two_theta(model.radiation.lines[0][0]) + profile.zero
    beyond = np.flatnonzero(near & (centre > model.pattern.two_theta[-1]))
    assert len(beyond)
    k = beyond[np.argmin(centre[beyond])]
    j = model.layout.index("eta")
    slope = x[model.layout.index("eta_slope")]
    x[j] = 1.0 - 1e-7 - slope * (centre[k] + profile.displacement * np.cos(np.radians(centre[k]) / 2))
    tail = np.asarray(model.peak_matrix(x)[:, k].todense()).ravel() * model.intensities(x)[k]
    step = 1e-6
    above = x.copy()
    above[j] += step  # η of reflection k now 1 + 9e-7: clipped
    change = model.peaks(above) - model.peaks(x)
    slope_change = step * model.peak_derivatives(x, np.array([j]))[:, 0]
    assert np.max(np.abs(change)) < 2.0 * np.max(np.abs(slope_change))
    assert np.max(np.abs(change)) < 1e-3 * np.max(tail)  # the tail inside the data that dropping k removed
