"""The ``[refinement]`` table of a run config (gasolve.rietveld.settings): read into RefinementSettings, written
back by the resolved config (read again equal), and bad keys named with file, table and key (exit 2)."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from gasolve.cli.main import main
from gasolve.config import load_run_config, resolved_toml
from gasolve.errors import InputError
from gasolve.rietveld import RefinementSettings, Restraint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TABLE = """
[refinement]
cell = false
b_iso = "element"
preferred_orientation = [0, 1, 0]
max_iterations = 12
restraints = [
    {atoms = ["S1", "O1"], distance = 1.47, sigma = 0.01},
    {atoms = ["O1", "S1", "O2"], angle = 109.5, sigma = 1.5},
]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    for suffix in (".toml", ".xye", ".cif"):
        shutil.copy(EXAMPLES / f"K4SnO4{suffix}", tmp_path)
    return tmp_path / "K4SnO4.toml"


def test_defaults_refine_everything(config_file):
    settings = load_run_config(config_file).refinement
    assert settings == RefinementSettings()
    everything = {"cell", "zero", "profile", "preferred_orientation", "coordinates", "b_iso"}
    further = {"phase_cell", "phase_profile"}  # a further phase's B is held unless phase_b_iso = true
    assert set(settings.groups) == everything | {"surface_roughness", "absorption", "u_aniso"} | further
    # the corrections, anisotropic U and further phases are off until given
    assert set(settings.refined_groups) == everything
    assert settings.po_direction == "auto" and settings.b_per == "site" and settings.restraints == ()
    assert "[refinement]" not in resolved_toml(load_run_config(config_file))


def test_table_is_read_and_round_trips(config_file, tmp_path):
    config_file.write_text(config_file.read_text() + TABLE)
    settings = load_run_config(config_file).refinement
    assert "cell" not in settings.groups and "b_iso" in settings.groups and settings.b_per == "element"
    assert settings.po_direction == (0, 1, 0) and settings.max_iterations == 12
    assert settings.restraints == (
        Restraint(("S1", "O1"), 1.47, 0.01),
        Restraint(("O1", "S1", "O2"), 109.5, 1.5),
    )
    assert [r.kind for r in settings.restraints] == ["distance", "angle"]
    text = resolved_toml(load_run_config(config_file))
    assert tomllib.loads(text)["refinement"]["preferred_orientation"] == [0, 1, 0]
    again = tmp_path / "again.toml"
    again.write_text(text)
    assert load_run_config(again).refinement == settings


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("texture = true", "[refinement] texture: unknown key"),
        ('b_iso = "atom"', "[refinement] b_iso: expected one of 'site', 'element', 'off'"),
        ("cell = 1", "[refinement] cell: expected true or false"),
        ("preferred_orientation = [1, 0]", "[refinement] preferred_orientation: expected"),
        ("preferred_orientation = [0, 0, 0]", "not a lattice direction"),
        ('preferred_orientation = "yes"', "[refinement] preferred_orientation"),
        ("max_iterations = 0", "[refinement] max_iterations: expected a positive integer"),
        ('restraints = [{atoms = ["S1"], distance = 1.5, sigma = 0.1}]', "restraints[0].atoms: expected 2"),
        ('restraints = [{atoms = ["S1", "O1"], distance = 1.5, sigma = 0}]', "restraints[0]: a restraint's sigma"),
        ('restraints = [{atoms = ["S1", "O1"], angle = 90, sigma = 1}]', "restraints[0].angle: 2 atoms make"),
        ('restraints = [{atoms = ["S1", "O1"], length = 1.5, sigma = 1}]', "restraints[0].length: unknown key"),
    ],
)
def test_bad_refinement_table_names_file_and_key(config_file, fragment, expected, capsys):
    config_file.write_text(config_file.read_text() + "\n[refinement]\n" + fragment + "\n")
    with pytest.raises(InputError) as error:
        load_run_config(config_file)
    assert "K4SnO4.toml" in str(error.value) and expected in str(error.value)
    assert main(["refine", str(config_file), str(EXAMPLES / "K4SnO4.cif")]) == 2
    assert expected in capsys.readouterr().err
