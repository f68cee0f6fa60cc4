"""Kβ satellites (gasolve.indexing.kbeta): λ_Kβ of the laboratory anodes, the flags of the peak search on a
simulated Cu pattern with Kβ lines added, the indexing that leaves them out, and the measured corundum pattern."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import data_path

from gasolve.crystal.cif_io import read_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import Radiation, parse_radiation
from gasolve.errors import InputError
from gasolve.indexing.kbeta import KBetaSettings, check_kbeta, kbeta_position, kbeta_wavelength
from gasolve.indexing.pattern import IndexingSettings, index_pattern
from gasolve.indexing.peaks import PeakSearchSettings, PeakSet, search_peaks
from gasolve.io.patterns import ObservedPattern, counting_sigma

CUKA12 = parse_radiation("CuKa12")
QUARTZ = "tests/data/cif/pyxtal-database/lt_quartz.cif"


def _pymatgen_line(name: str) -> float:
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    return float(WAVELENGTHS[name])


@pytest.mark.parametrize(
    ("spec", "line", "rel"), [("CuKa12", "CuKb1", 1e-4), ("CuKa1", "CuKb1", 1e-4), ("MoKa12", "MoKb1", 6e-4)]
)
def test_kbeta_wavelength_of_laboratory_anodes_agrees_with_pymatgens_table(spec, line, rel):
    # xraydb's energies, scaled to the radiation's own Kα1, against pymatgen's (Bearden's) Kβ1. Mo's Kβ3 lies 18 eV
    # below its Kβ1 with half its intensity, so the weighted line is 3e-4 longer than Kβ1 (Cu's: 2 eV, 1e-4).
    assert kbeta_wavelength(parse_radiation(spec)) == pytest.approx(_pymatgen_line(line), rel=rel)


def test_no_kbeta_for_a_synchrotron_wavelength():
    assert kbeta_wavelength(parse_radiation(0.413909)) is None
    assert kbeta_wavelength(parse_radiation(1.0)) is None


def test_kbeta_position_hand_checked():
    # d = 2 Å: Cu Kα1 at 2θ = 2 asin(1.540598 / 4) = 45.3035°, Kβ (1.39222 Å) at 2 asin(0.348055) = 40.7368°.
    two_theta = 2 * math.degrees(math.asin(1.540598 / 4))
    assert kbeta_position(np.array([two_theta]), 1.540598, 1.39222)[0] == pytest.approx(40.7368, abs=2e-4)


@pytest.fixture(scope="module")
def quartz_with_kbeta():
    """α-quartz (P3_221, the CIF's a = 5.028, c = 5.519 Å) with Cu Kα1 + Kα2 (0.5) + Kβ (0.2 of Kα1, pymatgen's
    Cu Kβ1 λ, not the one under test), a zero shift of 0.03°, Poisson counts; and the reflections' Kα1 and Kβ
    positions."""
    structure = read_cif(QUARTZ)
    (alpha1, _), (alpha2, weight2) = CUKA12.lines
    radiation = Radiation(((alpha1, 1.0), (alpha2, weight2), (_pymatgen_line("CuKb1"), 0.2)), "CuKa12+Kb")
    profile = PeakProfile.constant_fwhm(0.08, eta=0.5, zero=0.03)
    two_theta = np.round(np.arange(15.0, 90.0 + 1e-9, 0.01), 10)
    sim = simulate(structure, two_theta, radiation, profile, np.array([200.0]))
    scale = 40000.0 / sim.peaks.max()
    y = np.random.default_rng(3).poisson(scale * sim.peaks + sim.background).astype(float)
    pattern = ObservedPattern(two_theta, y, counting_sigma(y), "quartz+Kbeta")
    alpha = sim.reflections.two_theta(alpha1, profile.zero)
    beta = sim.reflections.two_theta(_pymatgen_line("CuKb1"), profile.zero)
    return pattern, alpha, beta


def test_peak_search_flags_exactly_the_kbeta_lines_of_a_simulated_pattern(quartz_with_kbeta):
    pattern, alpha, beta = quartz_with_kbeta
    peaks = search_peaks(pattern, CUKA12)
    assert peaks.n_peaks >= 30
    # A found line is a satellite when it lies on a reflection's Kβ position and on no Kα1 position; it can be
    # recognised when that reflection's Kα1 line is in the pattern (below 90°) too.
    distance = np.abs(peaks.two_theta[:, None] - beta[None, :])
    on_beta = distance.min(axis=1) < 0.04
    on_alpha = np.abs(peaks.two_theta[:, None] - alpha[None, :]).min(axis=1) < 0.04
    parent_inside = alpha[np.argmin(distance, axis=1)] < pattern.two_theta[-1] - 0.2
    satellites = on_beta & ~on_alpha & parent_inside
    assert satellites.sum() >= 3  # the Kβ of 100, 101 and 112 at least
    np.testing.assert_array_equal(peaks.kbeta, satellites)
    # Each flag names its parent: the Kα1 line of the same reflection.
    for position, parent in zip(peaks.two_theta[peaks.kbeta], peaks.kbeta_of[peaks.kbeta], strict=True):
        k = np.argmin(np.abs(beta - position))
        assert parent == pytest.approx(alpha[k], abs=0.02)
    # Turned off, nothing is flagged; the lines themselves are the same.
    plain = search_peaks(pattern, CUKA12, PeakSearchSettings(kbeta=None))
    assert not plain.kbeta.any()
    np.testing.assert_array_equal(plain.two_theta, peaks.two_theta)


def test_a_stronger_line_is_never_taken_for_a_satellite():
    # Two lines: the weaker at the stronger's Kβ position. Flagged when it is under 0.3 times the other, not above.
    radiation = parse_radiation("CuKa1")
    parent = 45.3035
    position = float(kbeta_position(np.array([parent]), radiation.primary, kbeta_wavelength(radiation))[0])
    for ratio, flagged in ((0.1, True), (0.29, True), (0.5, False)):
        peaks = PeakSet(
            np.array([position, parent]), np.array([0.002, 0.001]), np.array([ratio, 1.0]), np.array([0.08, 0.08])
        )
        from gasolve.indexing.kbeta import flag_kbeta

        assert bool(flag_kbeta(peaks, radiation).kbeta[0]) is flagged
        assert not flag_kbeta(peaks, radiation).kbeta[1]
    with pytest.raises(InputError, match="max_ratio"):
        KBetaSettings(max_ratio=0.0)


def test_indexing_leaves_the_satellites_out(quartz_with_kbeta):
    """With no unindexed line allowed, the hexagonal search finds quartz only once its Kβ lines are left out."""
    pattern, _, _ = quartz_with_kbeta
    settings = IndexingSettings(
        systems=("hexagonal",), max_unindexed=0, retry_unindexed=0, n_pawley=1, max_volume=400.0
    )
    result = index_pattern(pattern, CUKA12, settings)
    best = result.candidates[0]
    assert best.solution.bravais == "hP"
    a, _, c = best.solution.cell[:3]
    assert a == pytest.approx(5.0278, rel=0.003) and c == pytest.approx(5.5189, rel=0.003)
    assert best.solution.n_indexed == best.solution.n_lines == 20
    assert len(result.kbeta) >= 3 and all(line.as_kbeta for line in result.kbeta)
    assert not np.isin(result.two_theta, [line.two_theta for line in result.kbeta]).any()
    # The same search with the satellites among the lines finds nothing that indexes them all.
    plain = IndexingSettings(
        systems=("hexagonal",),
        max_unindexed=0,
        retry_unindexed=0,
        n_pawley=0,
        max_volume=400.0,
        peak_search=PeakSearchSettings(kbeta=None),
    )
    found = index_pattern(pattern, CUKA12, plain).candidates
    assert not any(c.solution.bravais == "hP" and abs(c.solution.cell[0] - 5.028) < 0.03 for c in found)


def test_check_reports_a_line_the_cell_does_not_index_as_kbeta():
    radiation = parse_radiation("CuKa1")
    # A cubic cell a = 4 Å: 200 at d = 2 Å. A line at its Kβ position is indexed as Kβ; one 0.5° off is not.
    parent = 2 * math.degrees(math.asin(radiation.primary / 4))
    beta = float(kbeta_position(np.array([parent]), radiation.primary, kbeta_wavelength(radiation))[0])
    peaks = PeakSet(
        np.array([beta, beta - 0.5, parent]),
        np.full(3, 0.002),
        np.array([0.1, 0.1, 1.0]),
        np.full(3, 0.08),
        kbeta_of=np.array([parent, parent, np.nan]),
    )
    lines = check_kbeta(peaks, radiation, (4.0, 4.0, 4.0, 90, 90, 90), "cP")
    assert [line.as_kbeta for line in lines] == [False, True]  # sorted by 2θ: the line 0.5° off comes first
    assert lines[1].as_dict()["parent_two_theta"] == pytest.approx(parent, abs=1e-5)


@pytest.mark.slow
def test_measured_corundum_indexes_with_the_default_settings():
    """NIST SRM 676a corundum (R-3c, a = 4.75919, c = 12.99183 Å certified), lab Cu Kα1+Kα2: two Cu Kβ lines
    (of 024 and 116) among its first 20 made it a miss with one unindexed line allowed; now hR first, the lines
    taken for Kβ and indexed as Kβ by the cell (about 20 s). The third, of 113 (38.99°, 0.06° wide at 0.016°
    steps), is found since a line narrower than half the typical width is dropped only when it is also at most
    3 steps wide."""
    from gasolve.io.patterns import read_pattern

    pattern = read_pattern(data_path("measured/corundum-SRM676a-lab-CuKa/row_Cu_676a.xy"))
    result = index_pattern(pattern, CUKA12)
    best = result.candidates[0]
    assert best.solution.bravais == "hR"
    a, _, c = best.pawley_cell[:3]
    assert a == pytest.approx(4.75919, abs=0.003) and c == pytest.approx(12.99183, abs=0.008)
    assert best.solution.m20 > 100
    satellites = sorted(round(line.two_theta, 1) for line in result.kbeta)
    assert satellites == [39.0, 47.1, 51.5]
    assert all(line.as_kbeta for line in result.kbeta)
