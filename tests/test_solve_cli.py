"""`gasolve solve PATTERN --composition F`: every stage from a pattern simulated by pymatgen, judged from best.cif."""

from __future__ import annotations

import json

import pytest
from test_composition_run import _matches, _write_case

from gasolve.cli.main import main


def test_solve_with_cell_and_space_group_given(tmp_path, capsys):
    _, reference = _write_case(tmp_path / "case", "130_A3BC_tP5_99_bc_a_b")
    out = tmp_path / "out"
    argv = ["solve", str(tmp_path / "case" / "pattern.xye"), "--composition", "ZrPbO3", "--range", "5", "80"]
    argv += ["--wavelength", "CuKa1"]
    argv += ["--cell", "4.046", "4.046", "4.1394", "90", "90", "90", "--space-group", "P4mm"]
    argv += ["--out", str(out), "--scheduler", "synchronous", "--quiet", "--max-evaluations", "300000"]
    assert main([*argv, "--rietveld"]) == 0
    printed = capsys.readouterr().out
    assert "cell given: tP" in printed and "holohedral profile fit" in printed
    assert _matches(out / "best.cif", reference) <= 0.3
    assert _matches(out / "refined.cif", reference) <= 0.3  # the Rietveld-refined winner, read by pymatgen
    summary = json.loads((out / "summary.json").read_text())
    stages = summary["stages"]
    assert stages["cell"]["source"] == "given" and stages["space_groups"]["given"] is True
    assert stages["space_groups"]["raced"][0]["space_group"] == "P 4 m m"
    assert summary["composition"] == "ZrPbO3" and summary["hypotheses"]
    assert (out / "solution.toml").is_file() and (out / "lebail.json").is_file()
    assert summary["rietveld"]["rwp"] <= summary["rwp"] + 1e-3 and (out / "rietveld.png").stat().st_size > 0


def test_solve_refuses_bad_input(tmp_path, capsys):
    _write_case(tmp_path / "case", "130_A3BC_tP5_99_bc_a_b")
    pattern = str(tmp_path / "case" / "pattern.xye")
    cell = ["--cell", "4.046", "4.046", "4.1394", "90", "90", "90", "--space-group", "P4mm", "--wavelength", "CuKa1"]
    assert main(["solve", pattern, "--composition", "Zr(PbO3", *cell, "--out", str(tmp_path / "o1")]) == 2
    assert "composition" in capsys.readouterr().err
    assert main(["solve", str(tmp_path / "missing.xye"), "--composition", "ZrPbO3"]) == 2
    assert "missing.xye" in capsys.readouterr().err
    cubic = ["--cell", "4.046", "4.046", "4.1394", "90", "90", "90", "--space-group", "Pm-3m", "--wavelength", "1.5406"]
    assert main(["solve", pattern, "--composition", "ZrPbO3", *cubic, "--out", str(tmp_path / "o2")]) == 2
    assert "cell" in capsys.readouterr().err


@pytest.mark.slow
def test_solve_from_pattern_and_formula_alone(tmp_path, capsys):
    """Indexing, extinctions with the network prior, and the race: nothing but the pattern and the formula."""
    _, reference = _write_case(tmp_path / "case", "130_A3BC_tP5_99_bc_a_b")
    out = tmp_path / "out"
    argv = ["solve", str(tmp_path / "case" / "pattern.xye"), "--composition", "ZrPbO3", "--range", "5", "80"]
    argv += ["--wavelength", "CuKa1"]
    argv += ["--out", str(out), "--scheduler", "synchronous", "--quiet", "--max-evaluations", "600000"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"]["cell"]["bravais"] == "tP"
    assert any("P 4 m m" == g["space_group"] for g in summary["stages"]["space_groups"]["raced"])
    assert _matches(out / "best.cif", reference) <= 0.3


def test_alike_atoms_ordered_on_a_centred_lattice_are_solved_in_its_primitive_subgroup(tmp_path, capsys):
    """Hg3Bi (mp-981387, Cu3Au type, Pm-3m): Hg and Bi scatter alike, so the superstructure lines are too weak to
    see and the pattern looks face-centred; in the cF cell the formula fits no group. The blind benchmark exited 2."""
    import sys

    import numpy as np
    from conftest import data_path
    from pymatgen.core import Structure
    from test_composition_run import REPO

    sys.path.insert(0, str(REPO))
    from benchmarks.broad import simulate_pattern, write_xye

    reference = data_path("cif/mp/Hg3Bi_mp-981387.cif")
    two_theta, y = simulate_pattern(Structure.from_file(str(reference)), np.random.default_rng(0), fwhm=0.08)
    write_xye(tmp_path / "pattern.xye", two_theta, y, "Hg3Bi: pymatgen XRDCalculator CuKa1, pV 0.08, Poisson")
    out = tmp_path / "out"
    argv = ["solve", str(tmp_path / "pattern.xye"), "--composition", "Hg3Bi", "--wavelength", "CuKa1"]
    argv += ["--cell", *["4.759273"] * 3, "90", "90", "90", "--lattice", "cF", "--range", "5", "80"]
    argv += ["--out", str(out), "--scheduler", "synchronous", "--quiet", "--max-evaluations", "200000"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    groups = summary["stages"]["space_groups"]
    assert groups["raced"][0]["space_group"] == "P m -3 m"
    assert "F m -3 m" in groups["analysis"]["passed_over"] and groups["analysis"]["decentred"][0] == "P m -3 m"
    assert _matches(out / "best.cif", reference) <= 0.3
    assert Structure.from_file(str(out / "best.cif")).get_space_group_info()[1] == 221


def test_a_mistyped_formula_stops_before_the_indexing(tmp_path, capsys, monkeypatch):
    """Without --cell the formula is checked before indexing (minutes): exit 2, the key named, nothing indexed."""
    from gasolve.indexing import pattern as indexing

    _write_case(tmp_path / "case", "130_A3BC_tP5_99_bc_a_b")

    def never(*args, **kwargs):
        raise AssertionError("indexed before the formula was checked")

    monkeypatch.setattr(indexing, "index_pattern", never)
    argv = ["solve", str(tmp_path / "case" / "pattern.xye"), "--composition", "Zr(PbO3", "--wavelength", "CuKa1"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "--composition" in capsys.readouterr().err
