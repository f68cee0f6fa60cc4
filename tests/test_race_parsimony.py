"""The race ranks a Z outside the packing window against those inside by Hamilton's R-factor ratio test."""

from __future__ import annotations

from pathlib import Path

import pytest

from gasolve.hypotheses import race
from gasolve.hypotheses.hypothesis import Hypothesis
from gasolve.missed_symmetry import hamilton_ratio

SETTINGS = race.RaceSettings(eta=3, first_cohort=2, evaluations_per_free=500, min_first_budget=1000)


def _hypothesis(z: int, n_free: int, in_window: bool = True) -> Hypothesis:
    return Hypothesis(z, "wyckoff", (("X", f"{z}a"),), n_free, 0.0, in_window=in_window)


def _outcome(target, rwp, chi2=2.0):
    class _Record:
        class state:
            evaluations = target

    return {"target": target, "record": _Record(), "rwp": rwp, "chi2": chi2, "finds": 0, "seconds": 1.0}


def _first_rung(observations: int, rwp_simple: float, rwp_rich: float) -> race.RaceState:
    """LiCo(CO3)2's race: Z = 4 with 30 free coordinates against Z = 8 (outside the window) with 60, one rung each."""
    hypotheses = [_hypothesis(4, 30), _hypothesis(8, 60, in_window=False)]
    state = race.start(hypotheses, 1.0, SETTINGS, observations=observations)
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


def test_a_richer_assignment_of_one_z_inside_the_window_is_ranked_by_its_bare_rwp():
    """Ba2SmNbO6 (Fm-3m): O on 24e (one free coordinate) at Rwp 0.0403 is the truth, 24d (none) at 0.0439."""
    state = race.start([_hypothesis(4, 0), _hypothesis(4, 1)], 1.0, SETTINGS, observations=20)
    state = race.tell(state, 0, _outcome(10000.0, 0.0439))
    state = race.tell(state, 1, _outcome(10000.0, 0.0403))
    state = race.decide(state, SETTINGS, 10**9)
    assert [lane.status for lane in state.lanes] == ["dropped", "racing"]


def test_the_factors_weigh_only_a_z_outside_the_window_against_the_simplest_inside():
    hypotheses = [_hypothesis(1, 3), _hypothesis(2, 6), _hypothesis(4, 12, in_window=False)]
    state = race.start(hypotheses, 1.0, SETTINGS, observations=100)
    factors = race.parsimony_factors(state, [0, 1, 2])
    assert factors[0] == factors[1] == 1.0
    assert factors[2] == pytest.approx(hamilton_ratio(9, 100, 12))
    assert 1.05 < factors[2] < 1.15  # b = 9 against 88 degrees of freedom, α = 5 %
    assert race.parsimony_factors(state, [2]) == {2: 1.0}  # nothing inside the window to weigh it against


def test_the_hypotheses_of_a_z_outside_the_window_say_so():
    """LiCo(CO3)2 in Cc: Z = 4 packs at q = 1.29, Z = 8 at 0.65 (below the window, raced after Z = 4's)."""
    from gasolve.config import StructureSpec
    from gasolve.crystal.cell import UnitCell
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.hypotheses.hypothesis import list_hypotheses

    cell = UnitCell(5.477444, 10.940442, 8.345036, 90, 106.682598, 90)
    composition = (("Li", 1), ("Co", 1), ("C", 2), ("O", 6))
    spec = StructureSpec("LiCo(CO3)2", cell, SpaceGroup.from_symbol("Cc"), (), (), composition=composition)
    hypotheses, _ = list_hypotheses(spec)
    assert {(h.z, h.in_window) for h in hypotheses} == {(4, True), (8, False)}
    assert hypotheses[0].z == 4


def test_the_race_observations_are_the_reflections_with_profile_points():
    """Hamilton's n: the columns of the peak matrix with a point of the profile, counted as the dense matrix shows."""
    import numpy as np

    from gasolve import pipeline
    from gasolve.config import load_run_config
    from gasolve.scoring.noise_floor import reflections_seen

    problem = pipeline.prepare(load_run_config(Path(__file__).parents[1] / "examples" / "K4SnO4.toml")).scorer.problem
    dense = np.asarray(problem.peak_matrix.to_sparse().todense())
    assert reflections_seen(problem) == int(np.count_nonzero(np.abs(dense).sum(axis=0) > 0)) > 100


@pytest.mark.parametrize(("rwp_rich", "simple_status"), [(0.0357, "racing"), (0.0340, "dropped")])
def test_a_simpler_hypothesis_that_fits_as_well_is_not_dropped_behind_a_richer_one(rwp_rich, simple_status):
    """ReC2 (P-6m2, 1 free coordinate, Rwp 0.0359) behind a P3m1 assignment (3 free, 0.0357, C misplaced): the
    cut keeps one of two, but the simpler one stays while the richer does not fit 3 % better (richer_margin);
    at 0.0340 (5 % better) it is dropped."""
    state = race.start([_hypothesis(1, 1), _hypothesis(1, 3)], 1.0, SETTINGS, observations=30)
    state = race.tell(state, 0, _outcome(10000.0, 0.0359))
    state = race.tell(state, 1, _outcome(10000.0, rwp_rich))
    state = race.decide(state, SETTINGS, 10**9)
    assert [lane.status for lane in state.lanes] == [simple_status, "racing"]
