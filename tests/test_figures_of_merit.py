"""de Wolff's M_N and Smith & Snyder's F_N: hand-computed cases, a loop-by-loop reference on random lattices, and the
measured PbSO4 lines against the right and a wrong cell."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import data_path

from gasolve.crystal import SpaceGroup, UnitCell
from gasolve.diffraction.reflections import generate_reflections
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.errors import InputError
from gasolve.indexing.figures_of_merit import (
    de_wolff_m,
    distinct_q,
    q_from_two_theta,
    smith_snyder_f,
    two_theta_from_q,
)

LAMBDA = 1.5406


def cubic_p_q(a: float, n_max: int = 40) -> np.ndarray:
    """Q = (h² + k² + l²) / a² of a primitive cubic lattice, every hkl (duplicates kept on purpose)."""
    r = range(-4, 5)
    return np.array(
        [(h * h + k * k + l_ * l_) / a**2 for h in r for k in r for l_ in r if 0 < h * h + k * k + l_ * l_ <= n_max]
    )


def test_de_wolff_by_hand():
    # Cubic P, a = 4 Å: Q = N/16 for N = h²+k²+l² = 1, 2, 3, 4, 5, 6, 8, ... (7 cannot be a sum of three squares).
    # Observed: 0.0626, 0.1248, 0.1876, 0.2500, 0.3124 against 0.0625, 0.125, 0.1875, 0.25, 0.3125:
    # |ε| = 1, 2, 1, 0, 1 (×1e-4), ⟨ε⟩ = 1.0e-4. Q5 = 0.3124 is just below 5/16 = 0.3125, so N5 = 4 (N = 1..4).
    # M5 = 0.3124 / (2 · 1.0e-4 · 4) = 390.5.
    q_obs = np.array([0.1248, 0.0626, 0.1876, 0.25, 0.3124])  # any order
    m = de_wolff_m(q_obs, cubic_p_q(4.0), n_lines=20)
    assert (m.n_lines, m.n_indexed, m.n_calculated) == (5, 5, 4)
    assert m.q_last == 0.3124
    assert m.mean_discrepancy == pytest.approx(1.0e-4, rel=1e-9)
    assert m.value == pytest.approx(390.5, rel=1e-9)
    # First three lines only: ⟨ε⟩ = 4e-4 / 3, Q3 = 0.1876, N3 = 3 (0.0625, 0.125, 0.1875): M3 = 0.1876 / (8e-4) = 234.5.
    assert de_wolff_m(q_obs, cubic_p_q(4.0), n_lines=3).value == pytest.approx(234.5, rel=1e-9)
    # Leaving the 2nd line out (an impurity): ⟨ε⟩ = 3e-4 / 4 = 7.5e-5, M5 = 0.3124 / (2 · 7.5e-5 · 4) = 520.67.
    m = de_wolff_m(q_obs, cubic_p_q(4.0), indexed=np.array([False, True, True, True, True]))
    assert m.n_indexed == 4 and m.value == pytest.approx(0.3124 / (2 * 7.5e-5 * 4), rel=1e-9)
    # Exact agreement: M = inf, not a division error.
    assert de_wolff_m(np.array([1, 2, 3]) / 16.0, cubic_p_q(4.0)).value == math.inf


def test_smith_snyder_by_hand():
    # Calculated lines at 2θ = 20, 30, 35, 40, 45, 50, 50.03 (built through Q and back), observed 20.01, 29.98,
    # 40.00, 45.02, 50.01: |Δ2θ| = 0.01, 0.02, 0, 0.02, 0.01, ⟨|Δ2θ|⟩ = 0.012; the lines up to 50.01 are the six up
    # to 50 (35 is not observed, 50.03 lies beyond): F5 = 5 / (0.012 · 6) = 69.44.
    calc_two_theta = np.array([20.0, 30.0, 35.0, 40.0, 45.0, 50.0, 50.03])
    q_calc = q_from_two_theta(calc_two_theta, LAMBDA)
    observed = np.array([20.01, 29.98, 40.00, 45.02, 50.01])
    f = smith_snyder_f(observed, np.concatenate([q_calc, q_calc[:3]]), LAMBDA)  # duplicates count once
    assert (f.n_lines, f.n_possible) == (5, 6)
    assert f.mean_discrepancy == pytest.approx(0.012, abs=1e-9)
    assert f.value == pytest.approx(5 / (0.012 * 6), rel=1e-6)
    assert str(f) == "F5 = 69.4(0.0120, 6)"
    # A zero shift of +0.01°: observed Bragg angles 20.00, 29.97, 39.99, 45.01, 50.00: |Δ| = 0, .03, .01, .01, 0,
    # ⟨|Δ|⟩ = 0.01, N_poss = 6 (up to 50.00, the last line counted though it equals 2θ_N up to rounding):
    # F5 = 5 / (0.01 · 6) = 83.33.
    assert smith_snyder_f(observed, q_calc, LAMBDA, zero=0.01).value == pytest.approx(5 / 0.06, rel=1e-6)
    # N = 3: 20.01, 29.98, 40.00, ⟨|Δ|⟩ = 0.01, lines up to 40.00: 20, 30, 35, 40: F3 = 3 / (0.01 · 4) = 75.
    assert smith_snyder_f(observed, q_calc, LAMBDA, n_lines=3).value == pytest.approx(75.0, rel=1e-6)


def test_q_and_two_theta_conversions_by_hand():
    # 2θ = 60°: Q = (2 sin 30° / λ)² = 1/λ² = 0.421328 Å⁻²; back to 60°. Q beyond 4/λ² has no angle.
    assert q_from_two_theta(np.array([60.0]), LAMBDA)[0] == pytest.approx(0.421328, rel=1e-5)
    assert two_theta_from_q(np.array([1 / LAMBDA**2]), LAMBDA)[0] == pytest.approx(60.0, abs=1e-9)
    assert q_from_two_theta(np.array([60.5]), LAMBDA, zero=0.5)[0] == pytest.approx(1 / LAMBDA**2)
    assert np.isnan(two_theta_from_q(np.array([4.01 / LAMBDA**2]), LAMBDA)[0])
    np.testing.assert_array_equal(distinct_q(np.array([0.2, 0.1, 0.1 * (1 + 1e-9), 0.3])), [0.1, 0.2, 0.3])


def naive_m(q_obs, q_calc, n):
    """de Wolff's M_N written out: sort, nearest calculated line by a full scan, count the distinct Q ≤ Q_N."""
    q_obs = sorted(q_obs)[:n]
    unique = []
    for q in sorted(q_calc):
        if not unique or q - unique[-1] > 1e-7 * q:
            unique.append(q)
    epsilon = sum(min(abs(q - c) for c in unique) for q in q_obs) / len(q_obs)
    n_calc = sum(1 for c in unique if c <= q_obs[-1])
    return q_obs[-1] / (2 * epsilon * n_calc)


def naive_f(two_theta_obs, q_calc, wavelength, n):
    """Smith & Snyder's F_N written out with the same steps."""
    observed = sorted(two_theta_obs)[:n]
    angles = sorted({round(2 * math.degrees(math.asin(wavelength * math.sqrt(q) / 2)), 9) for q in q_calc})
    mean = sum(min(abs(t - c) for c in angles) for t in observed) / len(observed)
    n_possible = sum(1 for c in angles if c <= observed[-1])
    return len(observed) / (mean * n_possible)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_figures_equal_the_loop_reference_on_random_orthorhombic_lattices(seed):
    rng = np.random.default_rng(seed)
    cell = UnitCell(*rng.uniform(4.0, 12.0, 3), 90, 90, 90)
    group = SpaceGroup.from_symbol(["Pmmm", "Immm", "Fmmm"][seed])
    q_calc = 1.0 / generate_reflections(cell, group, 1.2).d_spacing ** 2
    # Twenty-five "observed" lines: calculated ones with errors of a few 1e-4 Å⁻², in random order.
    q_obs = rng.permutation(rng.choice(q_calc[:40], 25, replace=False) + rng.normal(0, 2e-4, 25))
    assert de_wolff_m(q_obs, q_calc).value == pytest.approx(naive_m(q_obs, q_calc, 20), rel=1e-9)
    two_theta = two_theta_from_q(q_obs, LAMBDA)
    assert smith_snyder_f(two_theta, q_calc, LAMBDA, n_lines=30).value == pytest.approx(
        naive_f(two_theta, q_calc, LAMBDA, 30), rel=1e-6
    )


def test_measured_pbso4_right_cell_scores_far_above_a_wrong_one():
    from gasolve.indexing.peaks import search_peaks
    from gasolve.io.patterns import read_pattern

    radiation = parse_radiation("CuKa12")
    peaks = search_peaks(read_pattern(data_path("measured/PbSO4-lab-CuKa/PBSO4.XRA")), radiation)
    zero = -0.034  # the common zero of tests/test_indexing_peaks.py's comparison
    q_obs, _ = peaks.q_values(radiation.primary, zero=zero)

    def figures(a, b, c):
        q_calc = (
            1.0
            / generate_reflections(UnitCell(a, b, c, 90, 90, 90), SpaceGroup.from_symbol("Pmmm"), 1.0).d_spacing ** 2
        )
        return de_wolff_m(q_obs, q_calc), smith_snyder_f(peaks.two_theta, q_calc, radiation.primary, 30, zero)

    right_m, right_f = figures(8.482, 5.400, 6.962)
    wrong_m, wrong_f = figures(8.482 * 1.01, 5.400, 6.962 * 0.99)
    # Indexing programs call M20 > 20 sound; a cell 1 % off in two axes falls far below (its lines drift away).
    assert right_m.value > 30 and right_f.value > 20, (right_m, right_f)
    assert wrong_m.value < right_m.value / 3 and wrong_f.value < right_f.value / 3
    # A supercell (a doubled) indexes the same lines equally well but offers twice the calculated lines: M20 and F30
    # about halve. (A figure without N20, such as GSAS-II's calc_M20, would not tell the two apart.)
    double_m, double_f = figures(2 * 8.482, 5.400, 6.962)
    assert double_m.mean_discrepancy <= right_m.mean_discrepancy * (1 + 1e-9)  # its lines include the cell's
    assert 0.4 < double_m.value / right_m.value < 0.65 and 0.4 < double_f.value / right_f.value < 0.65
    assert right_m.n_lines == 20 and right_f.n_lines == 30


def test_bad_input():
    with pytest.raises(InputError, match="no observed lines"):
        de_wolff_m(np.zeros(0), np.array([0.1]))
    with pytest.raises(InputError, match="no calculated lines"):
        de_wolff_m(np.array([0.1]), np.zeros(0))
    with pytest.raises(InputError, match="positive"):
        de_wolff_m(np.array([0.1, -0.2]), np.array([0.1]))
    with pytest.raises(InputError, match="no indexed line"):
        de_wolff_m(np.array([0.1]), np.array([0.1]), indexed=np.array([False]))
    with pytest.raises(ValueError, match="indexed has 2 entries"):
        de_wolff_m(np.array([0.1]), np.array([0.1]), indexed=np.array([True, True]))
    with pytest.raises(InputError, match="wavelength"):
        smith_snyder_f(np.array([20.0]), np.array([0.1]), 0.0)
    with pytest.raises(InputError, match="below 180"):
        smith_snyder_f(np.array([20.0]), np.array([10.0]), LAMBDA)
