"""benchmarks/indexing.py: lattice judging, the simulated patterns, one indexed pattern end to end, resume."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import indexing  # noqa: E402


def test_same_lattice_any_setting_but_not_a_scaled_or_super_cell():
    # cF a = 5.64 Å and its primitive rhombohedral cell a/√2, 60°, given as aP: the same point lattice
    primitive = [5.64 / np.sqrt(2)] * 3 + [60.0] * 3
    assert indexing.same_lattice(primitive, "aP", [5.64] * 3 + [90.0] * 3, "F")
    assert indexing.same_lattice([5.64] * 3 + [90.0] * 3, "cF", primitive, "P")
    assert not indexing.same_lattice([5.64 * 1.015] * 3 + [90.0] * 3, "cF", [5.64] * 3 + [90.0] * 3, "F")
    assert not indexing.same_lattice([5.64] * 3 + [90.0] * 3, "cP", [5.64] * 3 + [90.0] * 3, "F")  # 4x volume
    # monoclinic, a and c swapped (β unchanged): the same lattice; β off by 1.5°: not
    assert indexing.same_lattice([7.1, 5.2, 6.3, 90, 104.0, 90], "mP", [6.3, 5.2, 7.1, 90, 104.0, 90], "P")
    assert not indexing.same_lattice([7.1, 5.2, 6.3, 90, 105.5, 90], "mP", [6.3, 5.2, 7.1, 90, 104.0, 90], "P")


def _nacl_entry() -> dict:
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_file(data_path("cif/pyxtal-database/NaCl.cif"))
    entry = indexing.broad._entry("test", "test:NaCl", structure, None)
    entry["half"] = "report"
    return entry


def test_selection_takes_the_systems_in_turn():
    entries = [{"crystal_system": s, "half": h, "i": i} for s in ("cubic", "triclinic") for i in range(3) for h in "ab"]
    for entry in entries:
        entry["half"] = "report" if entry["half"] == "a" else "tune"
    chosen = indexing.select(entries, "report", 2)
    assert [(e["crystal_system"], e["i"]) for e in chosen] == [
        ("triclinic", 0),
        ("cubic", 0),
        ("triclinic", 1),
        ("cubic", 1),
    ]
    assert len(indexing.select(entries, "all", None)) == 12


def test_simulated_patterns_are_seeded_and_state_their_wavelength(tmp_path):
    from gasolve.io.patterns import read_pattern

    entry = _nacl_entry()
    path, conditions = indexing.write_pattern(entry, tmp_path / "a", seed=3)
    again, same = indexing.write_pattern(entry, tmp_path / "b", seed=3)
    assert path.read_text() == again.read_text() and conditions == same
    pattern = read_pattern(path)
    assert pattern.radiation.name == conditions["wavelength"] and pattern.n_points == 3751
    assert 0 <= len(conditions["impurities"]) <= indexing.MAX_IMPURITIES
    assert abs(conditions["zero"]) <= indexing.ZERO_RANGE
    # the strongest NaCl line (200, 2θ ≈ 31.7° for a = 5.64 Å) sits where pymatgen puts it, shifted by the zero
    near = (pattern.two_theta > 30.5) & (pattern.two_theta < 33.0)
    peak = pattern.two_theta[near][np.argmax(pattern.y_obs[near])]
    assert abs(peak - conditions["zero"] - 31.70) < 0.05
    other = [indexing.draw_conditions(np.random.default_rng(s)) for s in range(40)]
    assert {c["doublet"] for c in other} == {True, False} and {len(c["impurities"]) for c in other} == {0, 1, 2, 3}


def test_one_pattern_indexed_judged_and_resumed(tmp_path):
    entry = _nacl_entry()
    path = tmp_path / "indexing.json"
    kwargs = {"work": tmp_path, "seed": 0, "prior": "uniform", "json_path": path, "scheduler": "synchronous"}
    result = indexing.run_benchmark([entry], **kwargs)
    row = result["rows"][0]
    assert row["lattice_first"] and row["bravais_first"] and row["first_bravais"] == "cF", row
    # NaCl has 9 lines in 5-80°: too few for a sound figure of merit (classify's rule), so no extinction ranking
    assert row["n_lines_found"] < indexing.MIN_LINES and not row["sound"] and row["sg_rank_extinctions"] is None
    assert result["summary"]["report"]["by_system"]["cubic"]["lattice_first"] == 1.0
    # the same first cell judged against a reference 2 % larger is a miss: the judging can fail
    scaled = [x * 1.02 for x in entry["cell"][:3]] + [90.0] * 3
    assert not indexing.same_lattice(row["candidates"][0]["cell"], row["candidates"][0]["bravais"], scaled, "F")
    resumed = indexing.run_benchmark([entry], **{**kwargs, "resume": True})  # nothing left to run
    assert len(resumed["sessions"]) == 2 and resumed["sessions"][1]["rows_before"] == 1
    assert json.loads(path.read_text())["rows"] == [row]
    indexing.plot(resumed, tmp_path / "indexing.png")
    assert (tmp_path / "indexing.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="--resume"):
        indexing.run_benchmark([entry], **{**kwargs, "resume": True, "prior": "network"})
