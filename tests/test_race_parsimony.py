"""The race ranks hypotheses of different numbers of free coordinates by Hamilton's R-factor ratio test."""

from __future__ import annotations

import pytest

from gasolve.hypotheses import race
from gasolve.hypotheses.hypothesis import Hypothesis
from gasolve.missed_symmetry import hamilton_ratio

SETTINGS = race.RaceSettings(eta=3, first_cohort=2, evaluations_per_free=500, min_first_budget=1000)


def _hypothesis(z: int, n_free: int) -> Hypothesis:
    return Hypothesis(z, "wyckoff", (("X", f"{z}a"),), n_free, 0.0)


def _outcome(target, rwp, chi2=2.0):
    class _Record:
        class state:
            evaluations = target

    return {"target": target, "record": _Record(), "rwp": rwp, "chi2": chi2, "finds": 0, "seconds": 1.0}


def _first_rung(observations: int, rwp_simple: float, rwp_rich: float) -> race.RaceState:
    """LiCo(CO3)2's race: Z = 4 with 30 free coordinates against Z = 8 with 60, one rung each."""
    state = race.start([_hypothesis(4, 30), _hypothesis(8, 60)], 1.0, SETTINGS, observations=observations)
    state = race.tell(state, 0, _outcome(15000.0, rwp_simple))
    state = race.tell(state, 1, _outcome(30000.0, rwp_rich))
    return race.decide(state, SETTINGS, 10**9)


def test_the_simpler_hypothesis_within_hamiltons_ratio_goes_on():
    state = _first_rung(400, 0.0544, 0.0517)  # 5.2 % worse, the ratio for 30 coordinates is 6.4 %
    assert [lane.status for lane in state.lanes] == ["racing", "dropped"]


def test_a_richer_hypothesis_that_fits_significantly_better_goes_on():
    state = _first_rung(400, 0.0600, 0.0517)  # 16 % worse: significant
    assert [lane.status for lane in state.lanes] == ["dropped", "racing"]


def test_without_observations_the_bare_rwp_decides():
    state = _first_rung(0, 0.0544, 0.0517)
    assert [lane.status for lane in state.lanes] == ["dropped", "racing"]


def test_the_factors_are_hamiltons_ratio_against_the_richest():
    state = race.start([_hypothesis(1, 3), _hypothesis(2, 6), _hypothesis(4, 6)], 1.0, SETTINGS, observations=100)
    factors = race.parsimony_factors(state, [0, 1, 2])
    assert factors[1] == factors[2] == 1.0
    assert factors[0] == pytest.approx(1 / hamilton_ratio(3, 100, 6))
    assert 1 / factors[0] == pytest.approx(1.045, abs=0.005)  # b = 3 against 94 degrees of freedom, α = 5 %
