"""`gasolve solve` falls back to another cell, then to P-1 and P1, when the race leaves the structure unsolved."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import gemmi
import numpy as np
import pytest
from test_composition_run import _matches

from gasolve.cli.main import main
from gasolve.crystal.cell import UnitCell
from gasolve.hypotheses.race import Lane, RaceState
from gasolve.indexing.lattice import same_lattice
from gasolve.structure_solution import (
    FALLBACK_CHI2_FACTOR,
    MISSED_SYMMETRY_SOURCE,
    CellChoice,
    better_attempt,
    fallback_cells,
    lower_symmetry_cell,
    needs_fallback,
)

REPO = Path(__file__).resolve().parents[1]


def _record(cell, bravais, m20, ranking=None):
    return {"cell": list(cell), "bravais": bravais, "m20": m20, "ranking": m20 if ranking is None else ranking}


def test_lower_symmetry_cell_is_gemmis_niggli_cell():
    """The reduced primitive cell of a C-centred monoclinic cell, as gemmi's Niggli reduction gives it."""
    cell = (7.19459, 4.79621, 20.90336, 90.0, 95.96575, 90.0)
    reduced = lower_symmetry_cell(CellChoice(UnitCell(*cell), "mC", "indexed"))
    gruber = gemmi.GruberVector(gemmi.UnitCell(*cell), "C")
    gruber.niggli_reduce()
    expected = gruber.get_cell().parameters
    assert reduced.bravais == "aP" and reduced.source == "lower symmetry of the mC cell"
    assert same_lattice(reduced.cell.parameters, expected, length_tol=1e-4, angle_tol=1e-3)
    assert reduced.cell.volume == pytest.approx(UnitCell(*cell).volume / 2, rel=1e-6)


def test_fallback_cells_skip_unsound_and_repeated_lattices():
    first = CellChoice(UnitCell(5.0, 5.0, 7.0, 90, 90, 120), "hP", "indexed")
    records = [
        _record(first.cell.parameters, "hP", 80.0),
        _record((5.0, 8.66025, 7.0, 90, 90, 90), "oC", 60.0),  # the same lattice in an orthohexagonal setting
        _record((4.0, 6.0, 9.0, 90, 90, 90), "oP", 8.0),  # not sound
        _record((7.35, 12.97, 7.50, 90, 90, 90), "oI", 40.0),
        _record((6.0, 6.5, 7.0, 90, 90, 90), "oP", 30.0),
    ]
    choice = replace(first, indexing={"candidates": records})
    cells = fallback_cells(choice)
    assert [c.bravais for c in cells] == ["oI", "aP"]  # a close call (ranking 40 against 80): the other cell first
    assert cells[0].source == "indexing candidate 4" and cells[0].cell.parameters[1] == pytest.approx(12.97)
    assert [c.bravais for c in fallback_cells(choice, n_cells=2)] == ["oI", "aP", "oP"]  # 30 < 0.5 x 80: after
    triclinic = CellChoice(UnitCell(5, 6, 7, 80, 85, 95), "aP", "given")
    assert fallback_cells(triclinic) == []


def _state(chi2, status, noise=1.0, rwp=0.05):
    from gasolve.hypotheses.hypothesis import Hypothesis

    lane = Lane(hypothesis=Hypothesis.__new__(Hypothesis), status=status, chi2=chi2, rwp=rwp)
    return RaceState(lanes=(lane,), noise_chi2=noise, stop="the evaluation budget is spent", winner=0)


def test_fallback_rule_and_choice():
    assert not needs_fallback(_state(3.0, "done"))  # confirmed: solved, whatever its χ²
    assert not needs_fallback(_state(FALLBACK_CHI2_FACTOR * 0.99, "dropped"))  # fits to the noise
    assert needs_fallback(_state(FALLBACK_CHI2_FACTOR * 1.01, "racing"))
    assert needs_fallback(replace(_state(1.0, "racing"), winner=None))
    old = _state(1.8, "racing", rwp=0.0476)
    assert better_attempt(_state(1.0, "racing", rwp=0.036), old)  # clearly better
    assert not better_attempt(_state(1.6, "racing", rwp=0.045), old)  # more coordinates, hardly better
    assert better_attempt(_state(1.6, "done", rwp=0.047), old)  # confirmed where the first was not
    assert not better_attempt(replace(old, winner=None), old)


def _write_triclinic_case(folder: Path) -> Path:
    """BaTiO2 in P-1 on a metrically tetragonal cell (a = b, right angles): the atoms break the lattice's symmetry."""
    sys.path.insert(0, str(REPO))
    from pymatgen.core import Lattice, Structure

    from benchmarks.broad import simulate_pattern, write_xye

    lattice = Lattice.from_parameters(4.1, 4.1, 5.6, 90, 90, 90)
    species = ["Ba", "Ti", "O", "O"]
    coords = [[0, 0, 0], [0.5, 0.5, 0.5], [0.15, 0.25, 0.40], [-0.15, -0.25, -0.40]]  # Ti-O 1.85, Ba-O 2.54 Å
    reference = Structure(lattice, species, coords)
    two_theta, y = simulate_pattern(reference, np.random.default_rng(0), fwhm=0.09)
    folder.mkdir(parents=True, exist_ok=True)
    write_xye(folder / "pattern.xye", two_theta, y, "BaTiO2 (P-1, tetragonal metric): pymatgen CuKa1, Poisson")
    reference.to(filename=str(folder / "reference.cif"))
    return folder / "pattern.xye"


def test_solve_falls_back_to_lower_symmetry(tmp_path, capsys):
    """Given the tetragonal-looking cell, the tetragonal groups do not fit; P-1 in the reduced cell does, and the
    file written is the triclinic model (judged from best.cif by pymatgen)."""
    pattern = _write_triclinic_case(tmp_path / "case")
    out = tmp_path / "out"
    argv = ["solve", str(pattern), "--composition", "BaTiO2", "--range", "5", "80", "--wavelength", "CuKa1"]
    argv += ["--cell", "4.1", "4.1", "5.6", "90", "90", "90", "--no-network", "--z", "1"]
    argv += ["--out", str(out), "--scheduler", "synchronous", "--quiet", "--max-evaluations", "200000"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "cell given: tP" in printed and "trying the lower symmetry of the tP cell" in printed
    summary = json.loads((out / "summary.json").read_text())
    attempts = summary["stages"]["attempts"]
    assert not attempts[0]["kept"] and attempts[1]["kept"]
    # The reference is P-1: it wins the aP race, or P1 wins and its model, within 0.3 Å of P-1, has P-1 raced
    # alone after it (gasolve.missed_symmetry), kept only if Hamilton's test allows.
    groups = {"P -1", "P-1"}
    found = attempts[1]["missed_symmetry"]
    assert summary["space_group"] in groups or (
        found["kind"] == "supergroup" and set(attempts[2]["space_groups"]) <= groups
    )
    assert all(a["cell"]["source"] == MISSED_SYMMETRY_SOURCE for a in attempts[2:])
    assert attempts[0]["chi2"] > FALLBACK_CHI2_FACTOR * attempts[0]["noise_chi2"]
    assert set(attempts[1]["space_groups"]) <= {"P -1", "P 1", "P-1", "P1"}
    assert summary["stages"]["cell"]["bravais"] == "aP"
    assert _matches(out / "best.cif", tmp_path / "case" / "reference.cif") <= 0.3
    # One checkpoint holds both attempts: a resumed run goes on from the last and keeps the same choice.
    assert main([*argv, "--resume"]) == 0
    resumed = json.loads((out / "summary.json").read_text())
    assert [a["kept"] for a in resumed["stages"]["attempts"]] == [a["kept"] for a in attempts]
    assert _matches(out / "best.cif", tmp_path / "case" / "reference.cif") <= 0.3
