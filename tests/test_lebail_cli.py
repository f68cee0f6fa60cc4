"""`gasolve lebail` and `gasolve run` without a profile or with Wyckoff positions: outputs, solutions, bad input."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import gemmi
import numpy as np
import pytest
from conftest import read_image, strict_json

from gasolve.cli.main import main
from gasolve.config import load_run_config
from gasolve.crystal import read_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.io.patterns import counting_sigma, format_xye

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROFILE = PeakProfile(caglioti=(0.02, -0.015, 0.012), eta=0.55, eta_slope=0.002, zero=-0.03)

CONFIG = """\
[structure]
name = "PbSO4"
cell = [8.47, 5.405, 6.955, 90, 90, 90]
space_group = "Pnma"
sites = ["Pb", "S", "O", "O", "O"]
wyckoff = ["4c", "4c", "4c", "4c", "8d"]

[pattern]
file = "PbSO4.xye"
wavelength = "CuKa12"

[pattern.background]
terms = 4

[ga]
seed = 3
max_evaluations = 300000

[reference]
cif = "PbSO4.cif"

[output]
dir = "out"
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """PbSO4 simulated from the published structure (Cu Kα1+2, 10-70°, Poisson noise) and its CIF."""
    folder = tmp_path_factory.mktemp("pbso4")
    shutil.copy(EXAMPLES / "PbSO4.cif", folder / "PbSO4.cif")
    structure = read_cif(folder / "PbSO4.cif")
    two_theta = np.round(np.arange(10.0, 70.0 + 1e-9, 0.02), 10)
    sim = simulate(structure, two_theta, parse_radiation("CuKa12"), PROFILE, np.array([200.0, -50.0, 20.0]))
    expected = 20000.0 * sim.peaks / sim.peaks.max() + sim.background
    y = np.random.default_rng(11).poisson(expected).astype(float)
    (folder / "PbSO4.xye").write_text(format_xye(two_theta, y, counting_sigma(y)), encoding="utf-8")
    (folder / "PbSO4.toml").write_text(CONFIG, encoding="utf-8")
    return folder


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lebail_writes_a_fragment_that_completes_the_config(folder, tmp_path, capsys):
    code, out, err = run(["lebail", folder / "PbSO4.toml", "--out", tmp_path], capsys)
    assert code == 0, err
    assert "Rwp" in out
    fragment = tomllib.loads((tmp_path / "lebail.toml").read_text(encoding="utf-8"))
    np.testing.assert_allclose(fragment["structure"]["cell"][:3], [8.482, 5.398, 6.958], atol=2e-3)
    assert fragment["pattern"]["profile"]["zero"] == pytest.approx(-0.03, abs=0.01)
    summary = strict_json(tmp_path / "lebail.json")
    assert summary["rwp"] < 1.1 * summary["rexp"]
    read_image(tmp_path / "lebail_fit.png")
    # The fragment pasted into the config gives a complete run config.
    text = (folder / "PbSO4.toml").read_text().replace("cell = [8.47, 5.405, 6.955, 90, 90, 90]\n", "")
    text = text.replace("[structure]\n", f"[structure]\ncell = {fragment['structure']['cell']}\n")
    profile = "".join(f"{key} = {json.dumps(value)}\n" for key, value in fragment["pattern"]["profile"].items())
    text = text.replace("[pattern.background]", f"[pattern.profile]\n{profile}\n[pattern.background]")
    (folder / "completed.toml").write_text(text, encoding="utf-8")
    completed = load_run_config(folder / "completed.toml")
    assert completed.pattern.profile.caglioti == pytest.approx(tuple(fragment["pattern"]["profile"]["caglioti"]))


def test_run_without_profile_fits_it_then_solves_on_wyckoff_positions(folder, tmp_path, capsys):
    code, _, err = run(["run", folder / "PbSO4.toml", "--out", tmp_path, "--quiet", "--stop-when-solved"], capsys)
    assert code == 0, err
    summary = strict_json(tmp_path / "summary.json")
    assert summary["solved"] and summary["max_site_distance"] < 0.1
    assert summary["rwp"] < 1.1 * summary["rexp"] and summary["r_bragg"] < 0.05
    read_image(tmp_path / "lebail_fit.png")
    read_image(tmp_path / "fit.png")
    best = read_cif(tmp_path / "best.cif")
    np.testing.assert_allclose(best.frac[:4, 1] % 0.5, 0.25)  # the mirror sites stayed on the mirror
    esd = np.array(summary["coordinate_esd"])
    assert np.all(esd[:4, 1] == 0) and np.all((esd[:, [0, 2]] > 0) & (esd[:, [0, 2]] < 0.01))
    assert best.formula() == "Pb4 S4 O16"
    # best.cif read back by gemmi: the fitted cell, Pnma, the summary's coordinates, y = 1/4 on the mirror
    small = gemmi.read_small_structure(str(tmp_path / "best.cif"))
    assert small.spacegroup.hm == "P n m a"
    fitted = tomllib.loads((tmp_path / "lebail.toml").read_text(encoding="utf-8"))["structure"]["cell"]
    cell = small.cell
    np.testing.assert_allclose([cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma], fitted, atol=1e-5)
    assert [site.type_symbol for site in small.sites] == ["Pb", "S", "O", "O", "O"]
    frac = np.array([list(site.fract) for site in small.sites])
    expected = np.array([[site["x"], site["y"], site["z"]] for site in summary["sites"]])
    np.testing.assert_allclose(frac, expected, atol=6e-6)
    assert np.all(np.isin(frac[:4, 1], [0.25, 0.75]))  # written as exactly 1/4 or 3/4
    assert len(small.get_all_unit_cell_sites()) == 24
    resolved = load_run_config(tmp_path / "config.toml")  # the fitted profile is written into the resolved config
    assert resolved.pattern.profile is not None and resolved.structure.wyckoff == ("4c",) * 4 + ("8d",)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"4c", "4c", "4c", "4c", "8d"', '"4c", "4c", "4c", "4e", "8d"', "no Wyckoff position '4e'"),
        ('"4c", "4c", "4c", "4c", "8d"', '"4c", "4c", "4c", "8d"', "one Wyckoff position per site"),
        # a cell 2 % off: the fit either diverges or ends no better than the background (which depends on the
        # numerical libraries' versions); either way one message names the profile fit
        ("[8.47, 5.405, 6.955, 90, 90, 90]", "[8.6, 5.5, 7.1, 90, 90, 90]", "the profile fit "),
        ("[8.47, 5.405, 6.955, 90, 90, 90]", "[8.47, 5.405, 6.955, 90, 91, 90]", "contradicts space group P n m a"),
    ],
)
def test_bad_input_exits_2_with_one_line(folder, tmp_path, capsys, old, new, message):
    text = (folder / "PbSO4.toml").read_text()
    assert text.count(old) == 1
    (folder / "bad.toml").write_text(text.replace(old, new), encoding="utf-8")
    code, _, err = run(["lebail", folder / "bad.toml", "--out", tmp_path], capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_pbso4_example_solves_from_the_measured_pattern(tmp_path, capsys):
    code, _, err = run(["run", EXAMPLES / "PbSO4.toml", "--out", tmp_path, "--quiet", "--stop-when-solved"], capsys)
    assert code == 0, err
    summary = strict_json(tmp_path / "summary.json")
    assert summary["solved"] and summary["max_site_distance"] < 0.3
    lebail = strict_json(tmp_path / "lebail.json")
    # GSAS refinement of the same data (Hill 1992); measured differences 4-7e-4 Å (different asymmetry models)
    np.testing.assert_allclose(lebail["cell"][:3], [8.482371, 5.400051, 6.961979], atol=1e-3)
