"""Kβ satellites only where the pattern shows Kβ (gasolve.indexing.kbeta.kbeta_ratio): a reflection of the sample's
own at the Kβ position of a stronger line is no satellite in a pattern without Kβ, the ratio of a filtered tube is
measured, and a line wrongly taken for a satellite cannot cost the cell (gasolve.indexing.pattern.index_pattern)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gasolve.crystal.cif_io import read_cif
from gasolve.diffraction.profile import PeakProfile, pseudo_voigt
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import Radiation, parse_radiation
from gasolve.indexing import pattern as indexing_pattern
from gasolve.indexing.kbeta import KBetaSettings, kbeta_position, kbeta_ratio, kbeta_wavelength
from gasolve.indexing.pattern import IndexingSettings, index_pattern
from gasolve.indexing.peaks import PeakSearchSettings, PeakSet, search_peaks, snip_background
from gasolve.io.patterns import ObservedPattern, counting_sigma

CUKA1 = parse_radiation("CuKa1")
QUARTZ = "tests/data/cif/pyxtal-database/lt_quartz.cif"
FWHM = 0.08
OLD_RULE = PeakSearchSettings(kbeta=KBetaSettings(max_ratio=0.3, evidence=0.0))


def _quartz(kbeta: float, coincidence: float = 0.0, seed: int = 5) -> tuple[ObservedPattern, float]:
    """Simulated α-quartz, Cu Kα1 (+ Kβ at ``kbeta`` of Kα1, pymatgen's Cu Kβ1 λ), 2·10⁵ counts at the strongest
    point, plus a line of the sample's own (``coincidence`` times the strongest line) at the strongest line's Kβ
    position; and that position (degrees)."""
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    lines = [(CUKA1.primary, 1.0)] + ([(float(WAVELENGTHS["CuKb1"]), kbeta)] if kbeta > 0 else [])
    radiation = Radiation(tuple(lines), "CuKa1+Kb")
    profile = PeakProfile.constant_fwhm(FWHM, eta=0.5)
    two_theta = np.round(np.arange(15.0, 90.0 + 1e-9, 0.01), 10)
    sim = simulate(read_cif(QUARTZ), two_theta, radiation, profile, np.array([200.0]))
    scale = 2e5 / sim.peaks.max()
    strongest = float(two_theta[np.argmax(sim.peaks)])
    position = float(kbeta_position(np.array([strongest]), CUKA1.primary, kbeta_wavelength(CUKA1))[0])
    line = pseudo_voigt(two_theta - position, FWHM, 0.5) / pseudo_voigt(0.0, FWHM, 0.5)
    y = scale * sim.peaks + 2e5 * coincidence * line + sim.background
    y = np.random.default_rng(seed).poisson(y).astype(float)
    return ObservedPattern(two_theta, y, counting_sigma(y), "quartz"), position


def _net(pattern: ObservedPattern) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    net = pattern.y_obs - snip_background(pattern.y_obs, 150)
    return pattern.two_theta, net, pattern.sigma


def test_a_reflection_at_the_kbeta_position_of_the_strongest_line_is_no_satellite_without_kbeta():
    pattern, position = _quartz(kbeta=0.0, coincidence=0.02)
    old = search_peaks(pattern, CUKA1, OLD_RULE)
    # The position and intensity rule alone takes it for the strongest line's satellite ...
    assert np.isclose(old.two_theta[old.kbeta], position, atol=0.02).any()
    # ... the pattern shows no Kβ at its other strong lines, so nothing is flagged.
    new = search_peaks(pattern, CUKA1)
    assert not new.kbeta.any()
    np.testing.assert_array_equal(new.two_theta, old.two_theta)
    estimate = kbeta_ratio(new, CUKA1, _net(pattern))
    assert estimate.n_parents >= 4 and estimate.significance < 3.0
    assert abs(estimate.ratio) < 0.002


@pytest.mark.parametrize("ratio", [0.005, 0.2])
def test_the_kbeta_ratio_of_a_filtered_and_an_unfiltered_tube_is_measured(ratio):
    pattern, _ = _quartz(kbeta=ratio)
    peaks = search_peaks(pattern, CUKA1, PeakSearchSettings(kbeta=None))
    estimate = kbeta_ratio(peaks, CUKA1, _net(pattern))
    assert estimate.significance > 5.0
    # The Lorentz-polarisation factor is larger at the lower Kβ angle: the measured ratio exceeds the emitted one,
    # by tens of per cent, not by factors.
    assert ratio < estimate.ratio < 1.6 * ratio
    flagged = search_peaks(pattern, CUKA1)
    assert flagged.kbeta.sum() >= (1 if ratio < 0.1 else 5)


def test_a_line_wrongly_taken_for_kbeta_cannot_cost_the_cell(monkeypatch):
    """Nine lines of a cubic F cell (a = 5.64 Å), two of them (111 and 200) flagged as Kβ: the seven lines left are
    too few for a search of every system (a cI cell indexes those seven alone), so the lines are indexed with
    them in, and the cF cell comes back with a note."""
    a = 5.64
    hkl = [(1, 1, 1), (2, 0, 0), (2, 2, 0), (3, 1, 1), (2, 2, 2), (4, 0, 0), (3, 3, 1), (4, 2, 0), (4, 2, 2)]
    d = a / np.sqrt([h * h + k * k + m * m for h, k, m in hkl])
    two_theta = 2 * np.degrees(np.arcsin(CUKA1.primary / (2 * d)))
    kbeta_of = np.full(len(d), np.nan)
    kbeta_of[:2] = two_theta[2]  # wrongly: these are reflections of their own
    peaks = PeakSet(two_theta, np.full(len(d), 0.002), np.full(len(d), 100.0), np.full(len(d), 0.08), kbeta_of)
    monkeypatch.setattr(indexing_pattern, "search_peaks", lambda *args, **kwargs: peaks)
    settings = IndexingSettings(systems=("cubic",), n_pawley=0, retry_unindexed=0)
    pattern = ObservedPattern(np.linspace(10.0, 90.0, 100), np.ones(100), np.ones(100), "cubic")
    result = index_pattern(pattern, CUKA1, settings)
    best = result.candidates[0].solution
    assert best.bravais == "cF" and best.cell[0] == pytest.approx(a, abs=1e-3)
    assert best.n_indexed == best.n_lines == 9
    assert any(
        note.startswith("only 7 lines besides the 2 taken for Kβ: indexed with them in") for note in result.notes
    )
    assert math.isclose(float(result.two_theta[0]), float(two_theta[0]))
