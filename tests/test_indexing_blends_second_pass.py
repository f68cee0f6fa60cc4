"""Blended lines in the second pass (IndexingSettings.retry_blends, ``gasolve index --widen-blends``): a monoclinic
pattern whose first lines blend reflections is indexed only with their tolerance widened."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gasolve.diffraction.wavelength import parse_radiation
from gasolve.indexing.pattern import IndexingSettings, index_pattern
from tests.test_indexing_subcells import _benchmark_pattern

#: The conditions benchmarks/indexing.py drew for LiLa2SbO6 (mp-6674, P2_1/c) in its report half (n = 350,
#: seed 0): Kα1+Kα2, one impurity line below every reflection; three of its first 20 lines blend reflections and lie
#: 0.035-0.091° from the nearer one.
LILA2SBO6 = {
    "fwhm0": 0.13123964233907542,
    "fwhm_growth": 0.6535143236545871,
    "eta": 0.7307385298114477,
    "doublet": True,
    "zero": 0.014555489759332005,
    "impurities": [[13.692925353245883, 0.029159921724664042]],
    "peak_counts": 7059.129502963862,
}
#: Its cell (Å, degrees), as the indexing sets it: c' = a + c of the reference setting (5.659, 5.837, 9.814, β 124.8°).
CELL = (5.659, 5.837, 8.058)


@pytest.mark.slow  # two monoclinic searches of a pattern that indexes nowhere in the first pass: minutes
def test_blended_lines_widened_in_the_second_pass_find_the_cell():
    pattern = _benchmark_pattern("LiLa2SbO6_mp-6674.cif", LILA2SBO6)
    radiation = parse_radiation("CuKa12")
    settings = IndexingSettings(systems=("cubic", "tetragonal", "hexagonal", "orthorhombic", "monoclinic"))
    widened = index_pattern(pattern, radiation, replace(settings, retry_blends=True))
    first = widened.candidates[0]
    assert first.solution.bravais == "mP"
    assert sorted(first.pawley_cell[:3]) == pytest.approx(sorted(CELL), rel=0.003)
    assert any("blended lines widened" in note for note in widened.notes)
    plain = index_pattern(pattern, radiation, settings)  # the default: no cell, or not this one
    assert not plain.candidates or not (
        plain.candidates[0].solution.bravais == "mP"
        and sorted(plain.candidates[0].solution.cell[:3]) == pytest.approx(sorted(CELL), rel=0.003)
    )
