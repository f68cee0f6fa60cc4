"""`gasolve index`: the measured PbSO4 pattern indexed from its lines alone, read back from the JSON it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gasolve.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_pbso4_lines_index_to_the_published_cell_without_the_pawley_check():
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.indexing.pattern import IndexingSettings, index_pattern
    from gasolve.io.patterns import read_pattern

    result = index_pattern(
        read_pattern(EXAMPLES / "PbSO4.xra"), parse_radiation("CuKa12"), IndexingSettings(n_pawley=0)
    )
    best = result.candidates[0]
    assert best.solution.bravais == "oP" and best.solution.m20 > 20
    np.testing.assert_allclose(sorted(best.solution.cell[:3]), [5.400051, 6.961979, 8.482371], atol=5e-3)
    assert any("not searched" in note for note in result.notes)  # the convincing oP cell ends the search
    assert any(note.startswith("triclinic not searched") for note in result.notes)


@pytest.mark.slow
def test_pbso4_measured_pattern_indexes_to_its_published_cell(tmp_path, capsys):
    out = tmp_path / "index.json"
    code = main(["index", str(EXAMPLES / "PbSO4.xra"), "--wavelength", "CuKa12", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = _strict(out.read_text())
    best = document["candidates"][0]
    # GSAS refinement of the same data (Hill 1992): 8.482371, 5.400051, 6.961979 Å, Pnma
    assert best["bravais"] == "oP" and best["crystal_system"] == "orthorhombic"
    np.testing.assert_allclose(sorted(best["cell"][:3]), [5.400051, 6.961979, 8.482371], atol=3e-3)
    np.testing.assert_allclose(best["cell"][3:], 90.0)
    assert best["m20"] > 20 and best["n_indexed"] >= best["n_lines"] - 1 and best["pawley_rwp"] < 0.15
    assert len(document["lines_two_theta"]) == best["n_lines"] == 20
    # No line among the 20 used is taken for a Kβ satellite; two lines above 100° sit near Kβ positions of stronger
    # ones (coincidences in a crowded pattern), and the check says the cell indexes them as Kα lines too.
    assert all(line["two_theta"] > max(document["lines_two_theta"]) for line in document["kbeta_lines"])
    assert all(line["indexed_as_kalpha"] for line in document["kbeta_lines"])
    assert best["m20_penalised"] <= best["m20"]
    assert "oP" in captured.out.splitlines()[2]


def test_missing_wavelength_and_too_few_lines_exit_2(tmp_path, capsys):
    assert main(["index", str(EXAMPLES / "PbSO4.xra")]) == 2  # its title says "Cu Ka", which is no wavelength
    err = capsys.readouterr().err
    assert "PbSO4.xra" in err and "states no wavelength" in err and "--wavelength" in err
    assert len(err.strip().splitlines()) == 1
    code = main(["index", str(EXAMPLES / "PbSO4.xra"), "--wavelength", "CuKa12", "--range", "15", "25"])
    err = capsys.readouterr().err
    assert code == 2 and "lines found; indexing needs at least 5" in err and len(err.strip().splitlines()) == 1
    code = main(["index", str(EXAMPLES / "PbSO4.xra"), "--wavelength", "CuKa12", "--retry-impurities", "10"])
    err = capsys.readouterr().err
    assert code == 2 and "--retry-impurities must be between 0 and 9" in err
