"""Further phases in the Rietveld refinement (gasolve.rietveld.phases): cell masses against formula weights,
Hill-Howard fractions and their esds, the shared derivatives against central differences, and a two-phase
pattern, simulated phase by phase, refined through `gasolve refine` back to its weight fractions and cells, as
the files read back by gemmi give them."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import gemmi
import numpy as np
import pytest
from conftest import cif_esd

from gasolve.cli.main import main
from gasolve.config import profile_table
from gasolve.crystal.cif_io import read_cif, write_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern, write_xye
from gasolve.io.toml_file import toml_text
from gasolve.rietveld import RietveldModel, SecondaryPhase
from gasolve.rietveld.phases import cell_mass, weight_fractions
from gasolve.rietveld.settings import parse_refinement, refinement_table

DATA = Path(__file__).parent / "data"
CORUNDUM = DATA / "measured" / "corundum-SRM676a-lab-CuKa" / "corundum_COD1000017_copied_from_XRed.cif"
NACL = DATA / "cif" / "pyxtal-database" / "NaCl.cif"
CAF2 = DATA / "derived" / "CaF2_NAC-2015A_phase2.cif"
PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.5, eta_slope=0.001, axial=0.02)
#: Formula weights (IUPAC 2013 standard atomic weights, by hand): Al2O3 101.961, NaCl 58.443, CaF2 78.075.
FORMULA_WEIGHT = {"corundum": (6, 101.961), "NaCl": (4, 58.443), "CaF2": (4, 78.075)}


def test_cell_mass_is_z_times_the_formula_weight():
    for path, key in ((CORUNDUM, "corundum"), (NACL, "NaCl"), (CAF2, "CaF2")):
        z, weight = FORMULA_WEIGHT[key]
        assert math.isclose(cell_mass(read_cif(path)), z * weight, rel_tol=2e-4)


def test_weight_fractions_and_their_esds():
    scales, masses, volumes = np.array([2.0, 1.0]), np.array([100.0, 50.0]), np.array([10.0, 20.0])
    covariance = np.array([[0.04, 0.01], [0.01, 0.09]])
    fractions, esd = weight_fractions(scales, masses, volumes, covariance)
    assert np.allclose(fractions, [2000 / 3000, 1000 / 3000])
    # the esd by central differences of the fraction in the scales
    jacobian = np.zeros((2, 2))
    for i in range(2):
        step = np.zeros(2)
        step[i] = 1e-6
        plus = weight_fractions(scales + step, masses, volumes, covariance)[0]
        minus = weight_fractions(scales - step, masses, volumes, covariance)[0]
        jacobian[:, i] = (plus - minus) / 2e-6
    assert np.allclose(esd, np.sqrt(np.diag(jacobian @ covariance @ jacobian.T)), rtol=1e-6)
    assert np.isclose(esd[0], esd[1])  # two fractions summing to 1 share their esd


def _neutral(structure):
    """The structure with every site's charge removed (the CIF's Al3+, O2- scatter as ions in the refinement)."""
    return replace(structure, sites=tuple(replace(site, charge=0) for site in structure.sites))


def _two_phase_pattern(fraction: float, seed: int = 5):
    """Corundum and NaCl at weight fractions (fraction, 1 - fraction), each simulated on its own (Cu Kα1+2,
    neutral atoms, no f' f''), scaled by Hill-Howard, plus a background and Poisson noise."""
    corundum, nacl = _neutral(read_cif(CORUNDUM)), read_cif(NACL)  # simulate() scatters with neutral atoms
    nacl = replace(nacl, sites=tuple(replace(s, b_iso=1.0) for s in nacl.sites))
    radiation = parse_radiation("CuKa12")
    two_theta = np.arange(20.0, 100.0, 0.02)
    peaks = [simulate(s, two_theta, radiation, PROFILE).peaks for s in (corundum, nacl)]
    weights = np.array([cell_mass(s) * s.cell.volume for s in (corundum, nacl)])
    scales = np.array([fraction, 1.0 - fraction]) / weights
    y = peaks[0] * scales[0] + peaks[1] * scales[1]
    y = 2e4 * y / y.max() + 60.0
    observed = np.random.default_rng(seed).poisson(y).astype(float)
    return corundum, nacl, radiation, two_theta, observed


def test_shared_and_phase_cell_derivatives_match_central_differences():
    corundum, nacl, radiation, two_theta, y = _two_phase_pattern(0.6)
    pattern = ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)))
    model = RietveldModel(
        corundum, pattern, radiation, PROFILE, background_terms=3, phases=(SecondaryPhase("NaCl", nacl),)
    )
    x = model.x0.copy()
    fit = model.linear_fit(x)
    assert len(fit.phase_scales) == 1 and fit.phase_scales[0] > 0
    names = ("zero", "U", "W", "eta", "axial", "metric0", "NaCl:metric0", "NaCl:B(Na1)", "NaCl:B(Cl1)")
    free = np.array([model.layout.index(n) for n in names])
    analytic = model.scaled_derivatives(x, free, fit)

    def y_calc(vector):
        return model.peaks(vector) * fit.scale + model.phase_peaks(vector) @ fit.phase_scales

    for column, j in enumerate(free):
        h = 1e-6 * max(abs(x[j]), 1e-3)
        plus, minus = x.copy(), x.copy()
        plus[j] += h
        minus[j] -= h
        numeric = (y_calc(plus) - y_calc(minus)) / (2 * h)
        error = np.linalg.norm(numeric - analytic[:, column]) / np.linalg.norm(numeric)
        assert error < 1e-4, (names[column], error)
    # NaCl's cell and B move only NaCl's peaks; corundum's only corundum's
    own = model.peak_derivatives(x, free)
    assert not np.any(own[:, [names.index(n) for n in names if n.startswith("NaCl:")]])


def _config(tmp_path, refinement: dict, fraction: float = 0.7):
    corundum, nacl, _, two_theta, y = _two_phase_pattern(fraction)
    write_xye(tmp_path / "mix.xye", two_theta, y, np.sqrt(np.maximum(y, 1.0)))
    write_cif(corundum, tmp_path / "start.cif")
    start = replace(nacl, cell=replace(nacl.cell, a=5.637, b=5.637, c=5.637))  # 0.08 % off, B 1.0 -> 0.5
    start = replace(start, sites=tuple(replace(s, b_iso=0.5) for s in start.sites))
    (tmp_path / "phases").mkdir(exist_ok=True)
    write_cif(start, tmp_path / "phases" / "NaCl.cif")
    config = {
        "structure": {
            "name": "corundum",
            "cell": list(corundum.cell.parameters),
            "space_group": "R-3c",
            "sites": ["Al"],
        },
        "pattern": {
            "file": "mix.xye",
            "wavelength": "CuKa12",
            "background": {"terms": 3},
            "profile": profile_table(PROFILE),
        },
        "refinement": {"anomalous_dispersion": False, "preferred_orientation": "off", **refinement},
    }
    (tmp_path / "run.toml").write_text(toml_text(config, []), encoding="utf-8")
    arguments = ["refine", str(tmp_path / "run.toml"), str(tmp_path / "start.cif"), "--out", str(tmp_path / "out")]
    return arguments, nacl


def test_refine_two_phases_gives_back_the_weight_fractions_cells_and_b(tmp_path):
    arguments, nacl = _config(tmp_path, {"phases": ["phases/NaCl.cif"], "phase_b_iso": True})
    assert main(arguments) == 0
    summary = json.loads((tmp_path / "out" / "refinement.json").read_text())
    assert summary["figures_of_merit"]["chi2"] < 1.3
    (phase,) = summary["phases"]
    assert phase["name"] == "NaCl" and phase["source"].endswith("NaCl.cif")
    assert abs(phase["weight_fraction"] - 0.3) < max(4 * phase["weight_fraction_esd"], 2e-3)
    assert abs(summary["weight_fraction"] + phase["weight_fraction"] - 1.0) < 1e-12
    assert abs(phase["cell"][0] - nacl.cell.a) < 4 * phase["cell_esd"][0] + 1e-5
    assert any(p["name"] == "NaCl:metric0" for p in summary["parameters"])
    assert any(p["name"] == "scale(NaCl)" for p in summary["parameters"])
    assert [b["name"] for b in phase["b_iso"]] == ["B(Na1)", "B(Cl1)"]
    assert all(abs(b["value"] - 1.0) < 4 * b["esd"] + 0.02 for b in phase["b_iso"])  # simulated at B = 1
    # refined.cif: the main phase's mass % in the pdCIF item, the further phase in the header
    text = (tmp_path / "out" / "refined.cif").read_text()
    block = gemmi.cif.read_string(text).sole_block()
    percent, esd = cif_esd(block.find_value("_pd_phase_mass_%"))
    assert abs(percent - 70.0) < max(4 * esd, 0.2)
    assert "further phase NaCl:" in text and "wt% (Hill-Howard)" in text
    assert "further phase NaCl" in (tmp_path / "out" / "refinement.txt").read_text()


def test_refine_without_the_second_phase_fits_worse(tmp_path):
    arguments, _ = _config(tmp_path, {})
    assert main(arguments) == 0
    summary = json.loads((tmp_path / "out" / "refinement.json").read_text())
    assert summary["phases"] == [] and summary["weight_fraction"] is None
    assert summary["figures_of_merit"]["chi2"] > 10


def test_phases_key_errors_name_the_file_and_key(tmp_path, capsys):
    arguments, _ = _config(tmp_path, {"phases": ["phases/missing.cif"]})
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert "run.toml" in err and "[refinement] phases[0]" in err and "missing.cif" in err
    arguments, _ = _config(tmp_path, {"phases": "NaCl.cif"})
    assert main(arguments) == 2
    assert "[refinement] phases" in capsys.readouterr().err
    assert not (tmp_path / "out" / "refined.cif").exists()


def test_phases_round_trip_through_the_refinement_table(tmp_path):
    (tmp_path / "CaF2.cif").write_text(CAF2.read_text(), encoding="utf-8")
    settings = parse_refinement({"phases": ["CaF2.cif"]}, str(tmp_path / "run.toml"))
    (phase,) = settings.phases
    assert phase.name == "CaF2" and phase.structure.cell.a == 5.464617
    assert "phase_cell" in settings.groups and "phase_b_iso" not in settings.groups
    assert "phase_b_iso" in parse_refinement({"phases": ["CaF2.cif"], "phase_b_iso": True}, str(tmp_path / "r")).groups
    with pytest.raises(InputError, match=r"phase_b_iso.*b_iso on"):
        parse_refinement({"phases": ["CaF2.cif"], "phase_b_iso": True, "b_iso": "off"}, str(tmp_path / "r.toml"))
    again = parse_refinement(refinement_table(settings), str(tmp_path / "elsewhere.toml"))
    assert [p.source for p in again.phases] == [phase.source]
    held = parse_refinement({"phases": ["CaF2.cif"], "cell": False}, str(tmp_path / "run.toml"))
    assert "phase_cell" not in held.groups


def test_phase_names_must_be_distinct():
    nacl = read_cif(NACL)
    dummy = ObservedPattern(np.arange(20.0, 40.0, 0.05), np.ones(400), np.ones(400))
    with pytest.raises(InputError, match="same name"):
        RietveldModel(read_cif(CORUNDUM), dummy, parse_radiation("CuKa1"), PROFILE,
                      phases=(SecondaryPhase("NaCl", nacl), SecondaryPhase("NaCl", nacl)))  # fmt: skip
    with pytest.raises(InputError, match="phase name"):
        SecondaryPhase("Na Cl", nacl)


def test_a_phase_the_pattern_lacks_comes_out_at_zero(tmp_path):
    arguments, _ = _config(tmp_path, {"phases": ["phases/NaCl.cif"], "cell": False}, fraction=1.0)
    assert main(arguments) == 0
    summary = json.loads((tmp_path / "out" / "refinement.json").read_text())
    (phase,) = summary["phases"]
    assert abs(phase["weight_fraction"]) < 4 * phase["weight_fraction_esd"] + 1e-3
    assert not any(p["name"] == "NaCl:metric0" for p in summary["parameters"])  # cell = false holds it
    text = (tmp_path / "out" / "refinement.txt").read_text()
    assert ("negative scale" in text) == (phase["scale"] < 0)


def test_each_phase_has_its_own_lorentzian_with_the_tch_profile():
    """Corundum and NaCl simulated with the same Gaussian (instrument) but different Lorentzian widths (crystallite
    size and strain): with the Thompson-Cox-Hastings profile, each phase's own X, Y come back, the fractions are
    right, and the derivatives in NaCl's X and Y agree with central differences."""
    from gasolve.rietveld import RefinementSettings, refine

    corundum, nacl = _neutral(read_cif(CORUNDUM)), read_cif(NACL)  # simulate() scatters with neutral atoms
    nacl = replace(nacl, sites=tuple(replace(s, b_iso=1.0) for s in nacl.sites))
    radiation = parse_radiation("CuKa12")
    two_theta = np.arange(20.0, 120.0, 0.02)
    gaussian = (0.006, -0.003, 0.003)
    own = {"corundum": (0.06, 0.04), "NaCl": (0.015, 0.01)}
    truth = {n: PeakProfile(caglioti=gaussian, lorentzian=own[n], axial=0.02) for n in own}
    peaks = [simulate(s, two_theta, radiation, truth[n]).peaks for s, n in ((corundum, "corundum"), (nacl, "NaCl"))]
    weights = np.array([cell_mass(s) * s.cell.volume for s in (corundum, nacl)])
    scales = np.array([0.6, 0.4]) / weights
    y = peaks[0] * scales[0] + peaks[1] * scales[1]
    y = np.random.default_rng(9).poisson(5e4 * y / y.max() + 60.0).astype(float)
    pattern = ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)))
    start = PeakProfile(caglioti=gaussian, lorentzian=(0.03, 0.02), axial=0.02)
    phase = SecondaryPhase("NaCl", nacl)
    model = RietveldModel(corundum, pattern, radiation, start, background_terms=3, anomalous_dispersion=False,
                          phases=(phase,))  # fmt: skip
    x = model.x0.copy()
    fit = model.linear_fit(x)
    free = np.array([model.layout.index(n) for n in ("NaCl:X", "NaCl:Y", "X", "Y", "U")])
    analytic = model.scaled_derivatives(x, free, fit)

    def y_calc(vector):
        return model.peaks(vector) * fit.scale + model.phase_peaks(vector) @ fit.phase_scales

    for column, j in enumerate(free):
        # the best of three steps: one whose difference crosses a peak-window edge is far off (test_rietveld_shape)
        errors = []
        for h in (1e-6, 1e-7, 1e-8):
            plus, minus = x.copy(), x.copy()
            plus[j] += h
            minus[j] -= h
            numeric = (y_calc(plus) - y_calc(minus)) / (2 * h)
            errors.append(np.linalg.norm(numeric - analytic[:, column]) / np.linalg.norm(numeric))
        assert min(errors) < 1e-4, (model.layout.names[j], errors)
    settings = RefinementSettings(background_terms=3, preferred_orientation=None, anomalous_dispersion=False,
                                  phases=(phase,))  # fmt: skip
    result = refine(corundum, pattern, radiation, start, settings)
    (refined,) = result.phases
    lorentzian = {n: (v, e) for n, v, e in refined.lorentzian}
    assert abs(lorentzian["X"][0] - 0.015) < max(4 * lorentzian["X"][1], 0.002)
    assert abs(result.profile.lorentzian[0] - 0.06) < 0.004
    assert abs(refined.weight_fraction - 0.4) < max(4 * refined.weight_fraction_esd, 0.003)


def test_refine_takes_a_phase_from_the_command_line(tmp_path, capsys):
    arguments, _ = _config(tmp_path, {})
    assert main([*arguments, "--phase", str(tmp_path / "phases" / "NaCl.cif")]) == 0
    summary = json.loads((tmp_path / "out" / "refinement.json").read_text())
    (phase,) = summary["phases"]
    # NaCl's B held at the start's 0.5 Å² (simulated at 1.0): the fraction comes out 1.4 wt% low
    assert phase["name"] == "NaCl" and abs(phase["weight_fraction"] - 0.3) < 0.02
    assert main([*arguments, "--phase", str(tmp_path / "missing.cif")]) == 2
    err = capsys.readouterr().err
    assert "missing.cif" in err and "--phase" in err
