"""The cell `gasolve solve` starts from (gasolve.structure_solution.find_cell) is the one the indexing benchmark
measures: the same settings, so that nested cells are compared by their Pawley fits."""

from __future__ import annotations

import pytest


def test_find_cell_and_classify_index_with_the_benchmarked_settings(monkeypatch):
    """find_cell and index_and_rank call index_pattern with the default IndexingSettings (three Pawley checks),
    as benchmarks/indexing.py and `gasolve index` do; with one check, nested cells are never compared."""
    from gasolve.diffraction import noise
    from gasolve.indexing import extinctions, pattern
    from gasolve.indexing.pattern import IndexingSettings
    from gasolve.structure_solution import find_cell

    seen = []

    def recording(observed, radiation, settings):
        seen.append(settings)
        raise RuntimeError("stop here")

    monkeypatch.setattr(pattern, "index_pattern", recording)
    monkeypatch.setattr(noise, "calibrated_pattern", lambda observed: (observed, noise.NoiseModel()))
    for call in (lambda: find_cell(None, None), lambda: extinctions.index_and_rank(_Pattern(), None)):
        with pytest.raises(RuntimeError, match="stop here"):
            call()
    assert seen == [IndexingSettings(), IndexingSettings()]
    assert seen[0].n_pawley == 3


class _Pattern:
    """Just enough of an ObservedPattern for index_and_rank to reach the indexing with calibration off."""

    sigma = None


@pytest.mark.slow
def test_a_pseudo_centred_primitive_cell_is_the_one_solve_starts_from(tmp_path):
    """Te(HO2)2 (mp-625526, Pc), the pattern of the blind benchmark's report half: its Te atoms at y ≈ 1/4 make
    the reflections that break a C-centring weak, and the C-centred cell of the same metric has the higher M20
    (1,494 against 462); the Pawley fit of the primitive cell finds intensity at its extra reflections, so it goes
    first. With one Pawley check the mC cell was kept and the structure solved wrong in Cm. About 90 s."""
    from gasolve.diffraction.noise import calibrated_pattern
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.io.patterns import read_pattern
    from gasolve.structure_solution import find_cell
    from tests.simulated import blind_benchmark_case

    path, _ = blind_benchmark_case("TeH2O4", "mp-625526", "Te(HO2)2", False, tmp_path)
    observed, _ = calibrated_pattern(read_pattern(path).restrict(5.0, 80.0))
    choice = find_cell(observed, parse_radiation("CuKa1"))
    assert choice.bravais == "mP"
    assert choice.cell.parameters == pytest.approx((5.2657, 4.9705, 5.9492, 90.0, 112.279, 90.0), abs=2e-3)
    assert any("weak superstructure reflections, the supercell goes first" in note for note in choice.indexing["notes"])
