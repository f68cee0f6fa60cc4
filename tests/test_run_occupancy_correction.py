"""`gasolve run` with every site general and the occupancy correction: PbSO4 solved from its simulated pattern, the
sites on the mirror reported, snapped and written with their multiplicity."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import gemmi
import numpy as np
import pytest
from conftest import strict_json
from pymatgen.io.cif import CifParser

from gasolve.cli.main import main
from gasolve.crystal import read_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CONFIG = """\
[structure]
name = "PbSO4-general"
cell = [8.48, 5.398, 6.958, 90.0, 90.0, 90.0]
space_group = "Pnma"
sites = ["Pb", "S", "O", "O", "O"]
b_iso = 1.0
occupancy_correction = true

[pattern]
file = "PbSO4.xye"
wavelength = "CuKa1"

[pattern.profile]
caglioti = [0.004, -0.002, 0.003]
eta = 0.4

[pattern.background]
terms = 3

[ga]
seed = 2
max_evaluations = 300000

[reference]
cif = "PbSO4.cif"

[output]
dir = "out"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(EXAMPLES / "PbSO4.cif", tmp_path)
    structure = read_cif(EXAMPLES / "PbSO4.cif").with_b_iso(1.0)
    two_theta = np.round(np.arange(10.0, 60.0 + 1e-9, 0.02), 10)
    pattern = simulate(
        structure, two_theta, parse_radiation("CuKa1"), PeakProfile(caglioti=(0.004, -0.002, 0.003), eta=0.4)
    )
    y = 2e4 * pattern.peaks / pattern.peaks.max() + 200.0
    y = np.random.default_rng(0).poisson(y).astype(float)
    np.savetxt(tmp_path / "PbSO4.xye", np.column_stack([two_theta, y, np.sqrt(y)]))
    (tmp_path / "run.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def test_run_with_general_sites_finds_the_mirror_and_writes_wyckoff_sites(folder, capsys):
    code = main(["run", str(folder / "run.toml"), "--stop-when-solved", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = strict_json(folder / "out" / "summary.json")
    assert summary["solved"] is True
    assert summary["max_site_distance"] < 0.1
    special = [(site["site"], site["wyckoff"], site["multiplicity"]) for site in summary["special_positions"]]
    assert special[:2] == [("Pb1", "4c", 4), ("S1", "4c", 4)]  # the three O are interchangeable: two on the mirror
    oxygens = special[2:]
    assert len(oxygens) == 2 and all(name.startswith("O") and (label, n) == ("4c", 4) for name, label, n in oxygens)
    assert "sites on special positions: Pb1 4c (x4), S1 4c (x4), O" in captured.out
    cif = folder / "out" / "best.cif"
    block = gemmi.cif.read(str(cif)).sole_block()
    letters = list(block.find_loop("_atom_site_Wyckoff_symbol"))
    assert letters[:2] == ["c", "c"] and sorted(letters[2:]) == ["c", "c", "d"]
    assert sorted(block.find_loop("_atom_site_symmetry_multiplicity")) == ["4", "4", "4", "4", "8"]
    assert [float(v) for v in block.find_loop("_atom_site_occupancy")] == [1.0] * 5
    y = [float(v.split("(")[0]) for v, letter in zip(block.find_loop("_atom_site_fract_y"), letters, strict=True)]
    np.testing.assert_allclose([v for v, letter in zip(y, letters, strict=True) if letter == "c"], 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = CifParser(cif).parse_structures(primitive=False)[0]
    assert parsed.composition.reduced_formula == "PbSO4" and len(parsed) == 24
    config = (folder / "out" / "config.toml").read_text()
    assert "occupancy_correction = true" in config and "overlap_radius = 0.8" in config


def test_run_refuses_a_reference_with_other_elements(folder, capsys):
    text = (folder / "run.toml").read_text().replace('"Pb", "S"', '"Ba", "S"')
    (folder / "bad.toml").write_text(text, encoding="utf-8")
    code = main(["run", str(folder / "bad.toml"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "[reference] cif" in err and "Ba O S" in err and "O Pb S" in err
    assert not (folder / "out").exists()


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("occupancy_correction = true", "occupancy_correction = 1", "expected true or false"),
        ("occupancy_correction = true", "overlap_radius = 0.5", "no effect without occupancy_correction = true"),
        ("occupancy_correction = true", "occupancy_correction = true\noverlap_radius = 3.0", "overlap_radius"),
    ],
)
def test_bad_correction_settings_exit_2_with_one_line(folder, capsys, old, new, fragment):
    (folder / "bad.toml").write_text((folder / "run.toml").read_text().replace(old, new), encoding="utf-8")
    code = main(["run", str(folder / "bad.toml"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err and "[structure]" in err and len(err.strip().splitlines()) == 1
    assert not (folder / "out").exists()
