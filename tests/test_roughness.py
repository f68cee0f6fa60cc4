"""Specimen corrections of the Rietveld refinement (gasolve.rietveld.corrections): surface roughness (Suortti,
Pitschke) and cylinder absorption. The formulas against their definitions and finite differences, the cylinder's
quadrature against an independent Monte Carlo integral, a simulated pattern with a known correction given back, and
the `[refinement]` keys."""

from __future__ import annotations

from dataclasses import replace

import gemmi
import numpy as np
import pytest

from gasolve.crystal.cif_io import read_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.rietveld import RefinementSettings, RietveldModel, parse_refinement, refine
from gasolve.rietveld.corrections import (
    PITSCHKE_C_MAX,
    IntensityCorrection,
    cylinder_absorption,
    pitschke,
    suortti,
)
from gasolve.rietveld.report import format_refined_cif, parameter_table, refinement_summary
from gasolve.rietveld.settings import refinement_table
from tests.conftest import shared_path

RADIATION = Radiation(((1.5406, 1.0),), "CuKa1")
PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.0)


def _central(function, values, k, h=1e-6):
    plus, minus = list(values), list(values)
    plus[k] += h
    minus[k] -= h
    return (function(*plus)[0] - function(*minus)[0]) / (2 * h)


def test_roughness_factors_match_their_formulas_and_derivatives():
    sin_theta = np.sin(np.radians(np.linspace(5.0, 75.0, 15)))
    factor, derivative = suortti(sin_theta, 0.3, 0.4)
    expected = (0.3 + 0.7 * np.exp(-0.4 / sin_theta)) / (0.3 + 0.7 * np.exp(-0.4))
    np.testing.assert_allclose(factor, expected, rtol=1e-14)
    assert np.all(np.diff(factor) > 0) and factor[-1] < 1.0  # depressed at low angle, 1 at 2θ = 180°
    for k in range(2):
        np.testing.assert_allclose(
            derivative[k], _central(lambda p, q: suortti(sin_theta, p, q), (0.3, 0.4), k), rtol=1e-7
        )
    np.testing.assert_array_equal(suortti(sin_theta, 0.3, 0.0)[0], 1.0)  # q = 0: no correction
    factor, derivative = pitschke(sin_theta, 1.5, 0.04)
    u = 0.04 / sin_theta
    np.testing.assert_allclose(factor, 1 - 1.5 * u * (1 - u), rtol=1e-14)
    for k in range(2):
        np.testing.assert_allclose(
            derivative[k], _central(lambda c, t: pitschke(sin_theta, c, t), (1.5, 0.04), k), rtol=1e-7
        )


def _monte_carlo_absorption(two_theta, mu_r, n=400_000, seed=1):
    """Mean of exp(-μR (l_in + l_out)) over uniform random points of the unit disc: the definition, sampled."""
    rng = np.random.default_rng(seed)
    r, phi = np.sqrt(rng.random(n)), 2 * np.pi * rng.random(n)
    x, y = r * np.cos(phi), r * np.sin(phi)
    out = []
    for angle in np.radians(two_theta):
        l_in = x + np.sqrt(1 - y**2)
        d = np.array([np.cos(angle), np.sin(angle)])
        along = x * d[0] + y * d[1]
        l_out = -along + np.sqrt(along**2 + 1 - x**2 - y**2)
        out.append(np.mean(np.exp(-mu_r * (l_in + l_out))))
    return np.array(out)


def test_cylinder_absorption_is_the_disc_integral():
    two_theta = np.array([0.0, 30.0, 90.0, 150.0, 180.0])
    for mu_r in (0.5, 2.0):
        a, d_a = cylinder_absorption(two_theta, mu_r)
        sampled = _monte_carlo_absorption(two_theta, mu_r)
        np.testing.assert_allclose(a, sampled, rtol=5e-3)  # Monte Carlo error ~1e-3
        assert np.all(np.diff(a) > 0)  # absorbed most at low angle
        numeric = (
            cylinder_absorption(two_theta, mu_r + 1e-6)[0] - cylinder_absorption(two_theta, mu_r - 1e-6)[0]
        ) / 2e-6
        np.testing.assert_allclose(d_a[0], numeric, rtol=1e-6)
    # first order: the mean path 16 R / 3π at every angle; and the quadrature converged
    small = cylinder_absorption(two_theta, 1e-6)[0]
    np.testing.assert_allclose((1 - small) / 1e-6, 16 / (3 * np.pi), rtol=1e-5)


@pytest.fixture(scope="module")
def pbso4():
    structure = read_cif(shared_path("measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif"))
    return replace(
        structure,
        sites=tuple(replace(s, b_iso=b) for s, b in zip(structure.sites, [1.2, 0.6, 1.5, 1.8, 1.4], strict=True)),
    )


def _simulated(structure, correction, truth, lo=10.0, hi=120.0, seed=3):
    """A pattern of the model with ``correction`` at ``truth``, scale 1, flat background 50, Poisson noise."""
    two_theta = np.arange(lo, hi, 0.02)
    empty = ObservedPattern(two_theta, np.ones_like(two_theta), np.ones_like(two_theta))
    model = RietveldModel(structure, empty, RADIATION, PROFILE, background_terms=1, corrections=(correction,))
    x = model.x0.copy()
    for name, value in zip(correction.names, truth, strict=True):
        x[model.layout.index(name)] = value
    peaks = model.peaks(x)
    y = np.random.default_rng(seed).poisson(4000.0 * peaks / peaks.max() + 50.0).astype(float)
    return ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)))


#: Only B and the corrections move (the profile and cell are the true ones): the test is about the corrections.
_STAGES = (("B/specimen corrections", ("b_iso", "surface_roughness", "absorption")),)


@pytest.mark.parametrize(
    ("kind", "truth"),
    [("suortti", (0.35, 0.5)), ("pitschke", (1.2, 0.035)), ("cylinder", (1.5,))],
)
def test_simulated_correction_is_given_back(pbso4, kind, truth):
    correction = IntensityCorrection(kind, truth)
    pattern = _simulated(pbso4, correction, truth)
    start = {"suortti": (0.0, 0.0), "pitschke": (0.0, 0.05), "cylinder": (0.5,)}[kind]
    settings = RefinementSettings(
        background_terms=1, preferred_orientation=None, corrections=(IntensityCorrection(kind, start),)
    )
    result = refine(pbso4, pattern, RADIATION, PROFILE, settings, stages=_STAGES)
    assert result.error is None
    unc = result.uncertainties
    for name, value in zip(correction.names, truth, strict=True):
        k = unc.names.index(name)
        assert abs(unc.values[k] - value) < 3 * unc.esd[k], (name, unc.values[k], unc.esd[k], value)
    b_true = np.array([s.b_iso for s in pbso4.sites])
    b_refined = np.array([s.b_iso for s in result.structure.sites])
    assert np.all(np.abs(b_refined - b_true) < 3 * result.b_esd + 1e-9), (b_refined, result.b_esd)
    summary = refinement_summary(result)["specimen_corrections"][0]
    assert summary["kind"] == kind and all(p["esd"] > 0 for p in summary["parameters"])
    block = gemmi.cif.read_string(format_refined_cif(result)).sole_block()
    assert block.find_value("_exptl_absorpt_correction_type") == ("cylinder" if kind == "cylinder" else "none")
    details = gemmi.cif.as_string(block.find_value("_pd_proc_ls_special_details"))
    assert all(f"{name} = " in details for name in correction.names)
    assert "specimen correction: " in parameter_table(result)


def test_pitschke_tau_is_bounded_where_the_factor_rises_with_angle(pbso4):
    """τ <= sin θ_min / 2: over the data u = τ / sin θ <= 1/2, where 1 - c u (1 - u) rises with θ."""
    pattern = _simulated(pbso4, IntensityCorrection("suortti", (0.0, 0.0)), (0.0, 0.0))
    model = RietveldModel(
        pbso4,
        pattern,
        RADIATION,
        PROFILE,
        background_terms=1,
        corrections=(IntensityCorrection("pitschke", (3.0, 0.2)),),
    )
    _, upper = model.bounds()
    tau = model.layout.index("SR_tau")
    assert upper[tau] == pytest.approx(np.sin(np.radians(5.0)) / 2)
    assert model.x0[tau] == upper[tau]  # a start beyond the bound is put on it
    factor = pitschke(np.sin(np.radians(pattern.two_theta / 2)), PITSCHKE_C_MAX, upper[tau])[0]
    assert np.all(np.diff(factor) >= 0) and factor.min() > 0


def test_no_roughness_in_the_data_leaves_the_correction_off(pbso4):
    """On a pattern without roughness, Suortti's q goes to 0 and p (which then does nothing) is held, not an error."""
    pattern = _simulated(pbso4, IntensityCorrection("suortti", (0.0, 0.0)), (0.0, 0.0))
    settings = RefinementSettings(
        background_terms=1, preferred_orientation=None, corrections=(IntensityCorrection("suortti", (0.0, 0.0)),)
    )
    result = refine(pbso4, pattern, RADIATION, PROFILE, settings, stages=_STAGES)
    assert result.error is None
    unc = result.uncertainties
    q = unc.values[unc.names.index("SR_q")]
    assert q < 3 * unc.esd[unc.names.index("SR_q")]


def test_refinement_keys():
    settings = parse_refinement(
        {"surface_roughness": "pitschke", "absorption": {"geometry": "cylinder", "mu_r": 0.4, "refine": False}},
        "c.toml",
    )
    assert [c.kind for c in settings.corrections] == ["pitschke", "cylinder"]
    assert "surface_roughness" in settings.refined_groups and "absorption" not in settings.refined_groups
    assert parse_refinement(refinement_table(settings), "c.toml") == settings
    assert parse_refinement({}, "c.toml") == RefinementSettings()  # off by default
    assert RefinementSettings().refined_groups == (
        "cell",
        "zero",
        "profile",
        "preferred_orientation",
        "coordinates",
        "b_iso",
    )
    bad = [
        ({"surface_roughness": "rough"}, "surface_roughness"),
        ({"absorption": "cylinder"}, "absorption"),
        ({"absorption": {"geometry": "plate", "mu_r": 1.0}}, "absorption.geometry"),
        ({"absorption": {"geometry": "cylinder", "mu_r": -1.0}}, "absorption.mu_r"),
        ({"absorption": {"geometry": "cylinder", "mu_r": 0.3, "refine": "yes"}}, "absorption.refine"),
        ({"absorption": {"geometry": "cylinder", "radius": 0.3}}, "absorption.radius"),
    ]
    for table, key in bad:
        with pytest.raises(InputError) as raised:
            parse_refinement(table, "c.toml")
        assert f"[refinement] {key}" in str(raised.value), (table, str(raised.value))
