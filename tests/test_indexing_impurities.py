"""Impurity lines (gasolve.indexing.pattern, the second pass): a pattern with three foreign lines among its first
twenty is indexed once a second pass allows three unindexed lines, and the ranking counts them against M20."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.crystal.cif_io import read_cif
from gasolve.diffraction.profile import PeakProfile, pseudo_voigt
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.indexing.figures_of_merit import de_wolff_m
from gasolve.indexing.pattern import IndexingSettings, index_pattern
from gasolve.io.patterns import ObservedPattern, counting_sigma

CUKA1 = parse_radiation("CuKa1")
#: Foreign lines (2θ in degrees, height relative to the strongest NaCl line), away from every NaCl line.
IMPURITIES = ((38.0, 0.05), (61.0, 0.04), (80.0, 0.05))


@pytest.fixture(scope="module")
def nacl_with_impurities():
    """Rock salt (Fm-3m, a = 5.64167 Å) with Cu Kα1, 20-125°, and three impurity lines of the same shape."""
    structure = read_cif("tests/data/cif/pyxtal-database/NaCl.cif")
    two_theta = np.round(np.arange(20.0, 125.0 + 1e-9, 0.01), 10)
    sim = simulate(structure, two_theta, CUKA1, PeakProfile.constant_fwhm(0.08, eta=0.5), np.array([100.0]))
    peaks = sim.peaks / sim.peaks.max()
    shape = pseudo_voigt(two_theta[:, None] - np.array([p for p, _ in IMPURITIES])[None, :], 0.08, 0.5)
    peaks = peaks + (shape / shape.max(axis=0)) @ np.array([h for _, h in IMPURITIES])
    y = np.random.default_rng(4).poisson(20000.0 * peaks + sim.background).astype(float)
    return ObservedPattern(two_theta, y, counting_sigma(y), "NaCl+3 impurities")


def test_three_impurity_lines_need_the_second_pass(nacl_with_impurities):
    systems = ("cubic", "tetragonal", "hexagonal")
    result = index_pattern(nacl_with_impurities, CUKA1, IndexingSettings(systems=systems, n_pawley=0))
    best = result.candidates[0].solution
    assert best.bravais == "cF" and best.cell[0] == pytest.approx(5.64167, rel=0.001)
    assert best.n_lines - best.n_indexed == 3
    assert best.m20 > 20 and best.merit < best.m20  # the three unindexed lines count against the ranking figure
    assert any(note.startswith("second pass allowing 3 unindexed lines (cubic,") for note in result.notes)
    # Without the second pass (as before) the cubic cell is not found at all.
    before = index_pattern(
        nacl_with_impurities, CUKA1, IndexingSettings(systems=systems, n_pawley=0, retry_unindexed=0)
    )
    assert not any(c.solution.bravais == "cF" for c in before.candidates)


def test_unindexed_lines_counted_at_their_tolerance_hand_checked():
    # Four lines, calculated at 1, 2, 3, 4 (arbitrary Q units): errors 0.01, 0, 0.02, and one unindexed line.
    q_obs = np.array([1.01, 2.0, 3.02, 3.5])
    q_calc = np.array([1.0, 2.0, 3.0, 4.0])
    indexed = np.array([True, True, True, False])
    # de Wolff: Q_N / (2 <eps> N_N) over the indexed lines: 3.5 / (2 · 0.01 · 3) = 58.33.
    assert de_wolff_m(q_obs, q_calc, indexed=indexed).value == pytest.approx(58.333, rel=1e-4)
    # With the unindexed line at its tolerance 0.05: <eps> = (0.01 + 0 + 0.02 + 0.05) / 4 = 0.02, M = 29.17.
    tolerance = np.full(4, 0.05)
    assert de_wolff_m(q_obs, q_calc, indexed=indexed, unindexed_error=tolerance).value == pytest.approx(
        29.1667, rel=1e-4
    )
    # Every line indexed: the tolerance plays no part.
    every = de_wolff_m(q_obs[:3], q_calc, indexed=np.ones(3, bool), unindexed_error=np.full(3, 9.0))
    assert every.value == pytest.approx(de_wolff_m(q_obs[:3], q_calc).value)
