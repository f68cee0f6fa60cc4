"""The Pawley check reorders the leading cells, but does not let a better fit overrule a far higher ranking figure.

Cs2KVF6 (cF, 3 impurity lines) in the indexing benchmark: an mP cell that also indexes the impurity lines (ranking
33, Pawley Rwp 0.049) went before the true cF cell (ranking 374, Rwp 0.061).
"""

from __future__ import annotations

from dataclasses import dataclass

from gasolve.indexing.pattern import IndexingSettings, _worse_fits_behind


@dataclass
class _Solution:
    ranking: float


@dataclass
class _Cell:
    name: str
    ranking: float
    pawley_rwp: float

    @property
    def solution(self) -> _Solution:
        return _Solution(self.ranking)


def _order(cells, settings=None):
    settings = settings or IndexingSettings()
    return [c.name for c in _worse_fits_behind(cells, settings.pawley_margin, settings.pawley_ranking_factor)]


def test_a_far_higher_ranking_keeps_its_place_against_a_better_fit():
    cells = [_Cell("cF", 374.3, 0.0609), _Cell("oI", 135.7, 0.0608), _Cell("mP", 33.3, 0.0487)]
    assert _order(cells) == ["cF", "oI", "mP"]


def test_a_clearly_worse_fit_of_comparable_ranking_drops_behind():
    cells = [_Cell("tP", 60.0, 0.101), _Cell("cI", 40.0, 0.062)]
    assert _order(cells) == ["cI", "tP"]


def test_fits_within_the_margin_keep_the_ranking_order():
    cells = [_Cell("hR", 136.0, 0.050), _Cell("mC", 120.0, 0.045)]
    assert _order(cells) == ["hR", "mC"]


def test_the_factor_decides_between_the_two():
    cells = [_Cell("cF", 374.3, 0.0609), _Cell("mP", 33.3, 0.0487)]
    strict = IndexingSettings(pawley_ranking_factor=20.0)
    assert _order(cells, strict) == ["mP", "cF"]
