"""The race's reserve: the prior's hypotheses after the first 24 enter only behind a stalled, unfitting survivor."""

from __future__ import annotations

from gasolve.config import StructureSpec
from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.hypotheses import race
from gasolve.hypotheses.assignments import Assignment, normalizer_canonicaliser
from gasolve.hypotheses.hypothesis import Hypothesis, hypotheses_with_reserve, list_hypotheses


def _hypothesis(tag: str, n_free: int = 2) -> Hypothesis:
    return Hypothesis(1, "wyckoff", (("X", tag),), n_free, 0.0)


def _outcome(target, rwp, chi2):
    class _Record:
        class state:
            evaluations = target

    return {"target": target, "record": _Record(), "rwp": rwp, "chi2": chi2, "finds": 0, "seconds": 1.0}


SETTINGS = race.RaceSettings(
    eta=3, first_cohort=1, reserve_cohort=2, stall_gain=0.01, evaluations_per_free=500, min_first_budget=1000
)


def _decided(gain_rwp: float, chi2: float) -> race.RaceState:
    """One regular hypothesis, three in reserve: its first rung, then a second that brings its Rwp to ``gain_rwp``."""
    state = race.start([_hypothesis("a")], 1.0, SETTINGS, reserve=[_hypothesis(t) for t in "bcd"])
    state = race.decide(race.tell(state, 0, _outcome(1000.0, 0.20, 25.0)), SETTINGS, 10**9)
    return race.decide(race.tell(state, 0, _outcome(3000.0, gain_rwp, chi2)), SETTINGS, 10**9)


def test_reserve_cohorts_follow_the_regular_ones_and_double():
    state = race.start(
        [_hypothesis(str(i)) for i in range(4)], 1.0, SETTINGS, reserve=[_hypothesis(t) for t in "pqrstuv"]
    )
    assert [lane.cohort for lane in state.lanes] == [0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4]
    assert state.first_reserve == 2
    assert race.reserve_counts(state) == {"held": 7, "entered": 0}
    assert len(race.table(state)) == 4  # reserve hypotheses that never ran are not listed
    assert race.start([_hypothesis("a")], 1.0, SETTINGS).first_reserve is None


def test_a_stalled_survivor_that_does_not_fit_lets_the_reserve_in():
    stalled = _decided(0.199, 25.0)  # 0.5 % lower after three times the evaluations
    assert stalled.stage == 1 and set(race.plan_rung(stalled, SETTINGS, 10**9)) == {1, 2}
    improving = _decided(0.15, 14.0)  # 25 % lower: its search is still going somewhere
    assert improving.stage == 0 and set(race.plan_rung(improving, SETTINGS, 10**9)) == {0}
    fitting = _decided(0.199, 1.2)  # fits to the noise: it goes on alone to be confirmed
    assert fitting.stage == 0
    assert race.plan_rung(fitting, SETTINGS, 10**9) == {0: 9000.0}


def test_without_a_reserve_the_last_survivor_goes_on_alone():
    state = race.start([_hypothesis("a")], 1.0, SETTINGS)
    state = race.decide(race.tell(state, 0, _outcome(1000.0, 0.20, 25.0)), SETTINGS, 10**9)
    state = race.decide(race.tell(state, 0, _outcome(3000.0, 0.20, 25.0)), SETTINGS, 10**9)
    assert state.stage == 0 and race.plan_rung(state, SETTINGS, 10**9) == {0: 9000.0}


def test_reserve_holds_the_true_assignment_the_first_24_miss():
    # Mg3BN3 (mp-28955, P6_3/mmc): Mg 4f 2b, B 2a, N 4e 2c; the prior ranks it about 92nd (the composition tune half)
    cell = UnitCell(3.564548, 3.564548, 16.160815, 90, 90, 120)
    group = SpaceGroup.from_symbol("P6_3/mmc")
    spec = StructureSpec("Mg3BN3", cell, group, (), (), composition=(("Mg", 3), ("B", 1), ("N", 3)))
    listed, reserve, _ = hypotheses_with_reserve(spec)
    assert listed == list_hypotheses(spec)[0]
    canonical = normalizer_canonicaliser(group, cell)

    def key(h):
        return canonical(Assignment(h.z, tuple(sorted(h.sites)), h.n_free))

    truth = canonical(Assignment(2, (("B", "2a"), ("Mg", "2b"), ("Mg", "4f"), ("N", "2c"), ("N", "4e")), 2))
    assert truth not in {key(h) for h in listed}
    assert truth in {key(h) for h in reserve}
    assert len(reserve) == 72 and not {key(h) for h in listed} & {key(h) for h in reserve}
    assert [h.log_prior for h in reserve] == sorted((h.log_prior for h in reserve), reverse=True)


def test_solve_reserve_continues_the_merged_order_of_several_groups():
    from gasolve.structure_solution import GroupChoice, solve_hypotheses, solve_reserve

    cell = UnitCell(3.564548, 3.564548, 16.160815, 90, 90, 120)
    base = StructureSpec(
        "Mg3BN3", cell, SpaceGroup.from_symbol("P6_3/mmc"), (), (), composition=(("Mg", 3), ("B", 1), ("N", 3))
    )
    groups = [
        GroupChoice(SpaceGroup.from_symbol(symbol), cell, posterior, symbol)
        for symbol, posterior in (("P6_3/mmc", 0.7), ("P-6m2", 0.3))
    ]
    listed, _ = solve_hypotheses(base, groups)
    reserve = solve_reserve(base, groups, listed, n=30)
    longer, _ = solve_hypotheses(base, groups, max_hypotheses=len(listed) + 30)
    assert len(reserve) == 30 and reserve == longer[len(listed) :]
    assert longer[: len(listed)] == listed  # listing further leaves the first ones as they were
    assert solve_reserve(base, groups, listed, n=30, merged=longer) == reserve  # listed once, the same reserve
    assert {h.base.space_group.number for h in reserve} == {187, 194}


def test_a_completion_that_waits_in_the_reserve_enters_now():
    """LiH2BrO (tune half): completions that matched reserve hypotheses were left out, as if those were in the race;
    the race then ended on another model (strict lost, 1.08 Å). A later regular cohort's hypothesis still waits."""
    offering = race.Lane(_hypothesis("a"), record=_outcome(1000.0, 0.1, 9.0)["record"], rwp=0.1, chi2=9.0)
    offering = race.replace(offering, status="racing", completions=(_hypothesis("r"), _hypothesis("c")))
    state = race.start([_hypothesis("a"), _hypothesis("c")], 1.0, SETTINGS, reserve=[_hypothesis("r")])
    state = race.replace(state, lanes=(offering, *state.lanes[1:]))
    admitted = race.admit_completions(state, SETTINGS, key=lambda h: h.sites)
    reserve = admitted.lanes[2]
    assert reserve.cohort == 0 and reserve.origin == 0 and 2 in admitted.alive()
    assert admitted.lanes[1].cohort == 1 and admitted.lanes[1].origin is None  # the regular cohort waits its turn
    assert len(admitted.lanes) == 3 and race.reserve_counts(admitted)["entered"] == 1
