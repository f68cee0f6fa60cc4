"""space_group_candidates passes over groups the formula cannot fill (gasolve solve raced nothing when the
leading group admitted no Z, though the next groups did)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.hypotheses import parse_composition
from gasolve.structure_solution import composition_fits, space_group_candidates

CELL = UnitCell(5.9, 5.9, 13.5, 90, 90, 90)
FORMULA = parse_composition("AgH4WS4N")


@dataclass
class _Score:
    group: SpaceGroup
    posterior: float


@dataclass
class _Analysis:
    space_groups: tuple

    def as_dict(self) -> dict:
        return {"ranked_space_groups": [s.group.symbol for s in self.space_groups]}


@dataclass
class _Fit:
    cell: UnitCell


@pytest.fixture
def ranked(monkeypatch):
    scores = tuple(
        _Score(SpaceGroup.from_symbol(symbol), p) for symbol, p in (("I4_1/amd", 0.97), ("I-4", 0.02), ("I4/m", 0.01))
    )
    monkeypatch.setattr("gasolve.indexing.extinctions.analyse_fit", lambda fit, bravais, prior: _Analysis(scores))
    return scores


def test_composition_fits_tells_groups_with_and_without_a_z():
    fits = composition_fits(FORMULA)
    assert not fits(SpaceGroup.from_symbol("I4_1/amd"), CELL)  # 1 Ag per formula unit: no site of I4_1/amd
    assert fits(SpaceGroup.from_symbol("I-4"), CELL)
    assert not composition_fits(FORMULA, z=1)(SpaceGroup.from_symbol("I-4"), CELL)  # 1 Ag: no 1-fold site in I
    assert composition_fits(FORMULA, z=2)(SpaceGroup.from_symbol("I-4"), CELL)


def test_refused_leading_group_gives_way_to_the_next(ranked):
    groups, evidence = space_group_candidates(_Fit(CELL), "tI", n=2, admits=composition_fits(FORMULA))
    assert [g.space_group.number for g in groups] == [82, 87]
    assert len(evidence["passed_over"]) == 1


def test_without_a_test_every_group_counts(ranked):
    groups, evidence = space_group_candidates(_Fit(CELL), "tI", n=2)
    assert [g.space_group.number for g in groups] == [141, 82]
    assert "passed_over" not in evidence


def test_no_group_admitted_gives_an_empty_choice(ranked):
    groups, evidence = space_group_candidates(_Fit(CELL), "tI", admits=lambda group, cell: False)
    assert groups == []
    assert len(evidence["passed_over"]) == 3


def test_composition_fits_refuses_an_indexed_cell_denser_than_the_window():
    # BC2N's 24.3 Å³ cell holds one formula unit only at packing 0.71, below the window's 0.78: a cell given by the
    # user is raced there (z_candidates), an indexed one is taken for a subcell and passed over.
    cell = UnitCell(2.568581, 2.568581, 3.675626, 90, 90, 90)
    group = SpaceGroup.from_symbol("P-4m2")
    assert not composition_fits({"B": 1, "C": 2, "N": 1})(group, cell)
    assert composition_fits({"B": 1, "C": 2, "N": 1})(group, UnitCell(2.7, 2.7, 3.9, 90, 90, 90))
