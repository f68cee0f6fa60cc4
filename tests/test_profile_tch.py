"""The Thompson-Cox-Hastings pseudo-Voigt (gasolve.diffraction.profile): its FWHM and shape against the Voigt
function it approximates (scipy.special.voigt_profile, an independent implementation), its limits, the
``[pattern.profile] lorentzian`` key, and a Le Bail fit that gives back the widths of a pattern simulated with it."""

from __future__ import annotations

import math
from pathlib import Path

import gemmi
import numpy as np
import pytest
import scipy.optimize
import scipy.special

from gasolve.config import load_run_config, profile_table
from gasolve.crystal.cif_io import read_cif
from gasolve.diffraction.profile import PeakProfile, pseudo_voigt, tch_combination
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern, write_xye
from gasolve.io.toml_file import toml_text
from gasolve.profile_fit import LeBailSettings, fit_lebail

DATA = Path(__file__).parent / "data"
CORUNDUM = DATA / "measured" / "corundum-SRM676a-lab-CuKa" / "corundum_COD1000017_copied_from_XRed.cif"
_SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def _voigt_fwhm(h_g: float, h_l: float) -> float:
    """FWHM of the Voigt convolution of a Gaussian and a Lorentzian of FWHMs h_g, h_l, by root finding on scipy's
    Voigt profile."""
    sigma, gamma = h_g * _SIGMA_PER_FWHM, h_l / 2.0
    peak = scipy.special.voigt_profile(0.0, sigma, gamma)
    half = scipy.optimize.brentq(
        lambda x: scipy.special.voigt_profile(x, sigma, gamma) - peak / 2, 1e-9, 5 * (h_g + h_l)
    )
    return 2.0 * half


@pytest.mark.parametrize("ratio", [0.05, 0.25, 0.5, 1.0, 2.0, 5.0])
def test_fwhm_and_shape_follow_the_voigt(ratio):
    h_g, h_l = 0.1, 0.1 * ratio
    h, eta = tch_combination(h_g, h_l)
    # the TCH FWHM is within 0.5 % of the Voigt's (0.01-0.42 % here, largest near H_L/H_G = 0.5)
    assert abs(h / _voigt_fwhm(h_g, h_l) - 1) < 5e-3
    x = np.linspace(-5 * h, 5 * h, 2001)
    voigt = scipy.special.voigt_profile(x, h_g * _SIGMA_PER_FWHM, h_l / 2.0)
    # the pseudo-Voigt of that H and η stays within about 1 % of the Voigt's peak height everywhere
    assert np.max(np.abs(pseudo_voigt(x, h, eta) - voigt)) < 0.015 * voigt.max()


def test_limits_are_the_pure_shapes():
    h, eta = tch_combination(0.1, 0.0)
    assert math.isclose(float(h), 0.1) and float(eta) == 0.0
    h, eta = tch_combination(0.0, 0.1)
    assert math.isclose(float(h), 0.1) and abs(float(eta) - 1.0) < 1e-4


def test_widths_follow_the_angle():
    profile = PeakProfile(caglioti=(0.01, -0.004, 0.003), lorentzian=(0.02, 0.03))
    two_theta = np.array([20.0, 60.0, 120.0])
    theta = np.radians(two_theta) / 2
    h_g = np.sqrt(0.01 * np.tan(theta) ** 2 - 0.004 * np.tan(theta) + 0.003)
    h_l = 0.02 / np.cos(theta) + 0.03 * np.tan(theta)
    h, eta = tch_combination(h_g, h_l)
    assert np.allclose(profile.fwhm(two_theta), h) and np.allclose(profile.eta_at(two_theta), eta)
    assert profile.tch and not PeakProfile().tch


def test_bad_lorentzian_is_refused():
    with pytest.raises(InputError, match="two numbers"):
        PeakProfile(lorentzian=(0.1,))
    with pytest.raises(InputError, match="negative width"):
        PeakProfile(lorentzian=(-0.05, 0.0)).fwhm(np.array([30.0]))


def _config(tmp_path: Path, profile: dict, **pattern) -> Path:
    write_xye(tmp_path / "p.xye", np.arange(10.0, 80.0, 0.05), np.ones(1400), np.ones(1400))
    config = {
        "structure": {"name": "x", "cell": [4.76, 4.76, 12.99, 90, 90, 120], "space_group": "R-3c", "sites": ["Al"]},
        "pattern": {"file": "p.xye", "wavelength": "CuKa12", "profile": profile, **pattern},
    }
    path = tmp_path / "run.toml"
    path.write_text(toml_text(config, []), encoding="utf-8")
    return path


def test_config_key_round_trips_and_is_checked(tmp_path):
    profile = load_run_config(_config(tmp_path, {"caglioti": [0.01, -0.004, 0.003], "lorentzian": [0.02, 0.03]}))
    profile = profile.pattern.profile
    assert profile.lorentzian == (0.02, 0.03) and profile.caglioti == (0.01, -0.004, 0.003)
    table = profile_table(profile)
    assert table["lorentzian"] == [0.02, 0.03] and "eta" not in table
    again = load_run_config(_config(tmp_path, table)).pattern.profile
    assert again == profile
    with pytest.raises(InputError, match=r"\[pattern.profile\] lorentzian.*not both"):
        load_run_config(_config(tmp_path, {"fwhm": 0.1, "eta": 0.5, "lorentzian": [0.02, 0.0]}))
    with pytest.raises(InputError, match=r"lorentzian.*2 numbers"):
        load_run_config(_config(tmp_path, {"fwhm": 0.1, "lorentzian": [0.02]}))
    with pytest.raises(InputError, match=r"lorentzian.*negative width"):
        load_run_config(_config(tmp_path, {"fwhm": 0.1, "lorentzian": [0.02, -0.1]}, range=[10.0, 79.0]))


def test_lebail_gives_back_the_widths_of_a_tch_pattern():
    """Corundum simulated with a TCH profile (Cu Kα1+2, Poisson noise): the Le Bail fit with shape="tch" gives
    back H_G and H_L within 2 % over the range, and fits to χ² near 1 (1.04); the one-width pseudo-Voigt fits
    worse (1.29)."""
    truth = PeakProfile(caglioti=(0.008, -0.004, 0.004), lorentzian=(0.03, 0.04))
    structure = read_cif(CORUNDUM)
    radiation = parse_radiation("CuKa12")
    two_theta = np.arange(20.0, 120.0, 0.02)
    sim = simulate(structure, two_theta, radiation, truth, np.array([80.0, -10.0]))
    y = np.random.default_rng(7).poisson(3e5 * sim.peaks / sim.peaks.max() + sim.background).astype(float)
    pattern = ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)))
    tch = fit_lebail(pattern, structure.cell, structure.space_group, radiation, LeBailSettings(3, "off", shape="tch"))
    one_width = fit_lebail(pattern, structure.cell, structure.space_group, radiation, LeBailSettings(3, "off"))
    grid = np.linspace(25.0, 115.0, 10)
    assert np.allclose(tch.profile.gaussian_fwhm(grid), truth.gaussian_fwhm(grid), rtol=0.02)
    assert np.allclose(tch.profile.lorentzian_fwhm(grid), truth.lorentzian_fwhm(grid), rtol=0.02)
    assert tch.metrics.chi2 < 1.1 < one_width.metrics.chi2


def _pbso4_folder(tmp_path: Path, peak_shape: str | None, profile: dict | None = None) -> Path:
    """PbSO4 simulated with a TCH profile (Cu Kα1+2, 10-70°, Poisson noise), its CIF and a config."""
    import shutil

    from gasolve.io.patterns import counting_sigma, format_xye

    examples = Path(__file__).resolve().parents[1] / "examples"
    shutil.copy(examples / "PbSO4.cif", tmp_path / "PbSO4.cif")
    structure = read_cif(tmp_path / "PbSO4.cif")
    truth = PeakProfile(caglioti=(0.01, -0.006, 0.006), lorentzian=(0.04, 0.05), zero=-0.02)
    two_theta = np.round(np.arange(10.0, 70.0 + 1e-9, 0.02), 10)
    sim = simulate(structure, two_theta, parse_radiation("CuKa12"), truth, np.array([200.0, -50.0, 20.0]))
    y = np.random.default_rng(11).poisson(2e4 * sim.peaks / sim.peaks.max() + sim.background).astype(float)
    (tmp_path / "PbSO4.xye").write_text(format_xye(two_theta, y, counting_sigma(y)), encoding="utf-8")
    pattern = {"file": "PbSO4.xye", "wavelength": "CuKa12", "background": {"terms": 4}}
    if peak_shape is not None:
        pattern["peak_shape"] = peak_shape
    if profile is not None:
        pattern["profile"] = profile
    config = {
        "structure": {"name": "PbSO4", "cell": list(structure.cell.parameters), "space_group": "Pnma",
                      "sites": ["Pb", "S", "O", "O", "O"]},
        "pattern": pattern,
        "refinement": {"anomalous_dispersion": False, "preferred_orientation": "off"},
    }  # fmt: skip
    (tmp_path / "PbSO4.toml").write_text(toml_text(config, []), encoding="utf-8")
    return tmp_path


def test_lebail_and_refine_with_the_tch_shape(tmp_path, capsys):
    import json
    import tomllib

    from gasolve.cli.main import main

    folder = _pbso4_folder(tmp_path, "tch")
    assert main(["lebail", str(folder / "PbSO4.toml"), "--out", str(folder / "lebail")]) == 0
    assert "X Y" in capsys.readouterr().out
    fragment = tomllib.loads((folder / "lebail" / "lebail.toml").read_text(encoding="utf-8"))
    x, y = fragment["pattern"]["profile"]["lorentzian"]
    assert abs(x - 0.04) < 0.01 and abs(y - 0.05) < 0.015 and "eta" not in fragment["pattern"]["profile"]
    # gasolve refine without [pattern.profile]: the Le Bail fit of peak_shape "tch", then X and Y refined
    code = main(["refine", str(folder / "PbSO4.toml"), str(folder / "PbSO4.cif"), "--out", str(folder / "out")])
    assert code == 0
    summary = json.loads((folder / "out" / "refinement.json").read_text())
    names = {p["name"] for p in summary["parameters"]}
    assert {"X", "Y", "U", "V", "W"} <= names and "eta" not in names
    block = gemmi.cif.read(str(folder / "out" / "refined.cif")).sole_block()
    assert "Thompson-Cox-Hastings" in block.find_value("_pd_proc_ls_profile_function")
    assert summary["figures_of_merit"]["chi2"] < 1.3


def test_peak_shape_key_is_checked(tmp_path, capsys):
    from gasolve.cli.main import main

    folder = _pbso4_folder(tmp_path, "voigt")
    assert main(["lebail", str(folder / "PbSO4.toml")]) == 2
    err = capsys.readouterr().err
    assert "PbSO4.toml" in err and "[pattern] peak_shape" in err and '"tch"' in err
    folder = _pbso4_folder(tmp_path, "tch", {"fwhm": 0.1, "eta": 0.5})
    assert main(["lebail", str(folder / "PbSO4.toml")]) == 2
    assert "peak_shape" in capsys.readouterr().err
