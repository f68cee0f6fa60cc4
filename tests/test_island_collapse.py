"""benchmarks.island_collapse: the spread of an island and the command line."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import island_collapse


def test_spread_is_zero_for_copies_and_large_for_random_models():
    best = np.array([0.1, 0.2, 0.95])
    assert island_collapse.spread(np.stack([best] * 5)) == 0.0
    steps = np.array([[0.0, 0.0, 0.0], [0.0, 0.01, 0.0], [0.0, 0.0, 0.1]])  # 0.95 + 0.1 wraps to 0.05: 0.1 off
    near = best + steps
    assert island_collapse.spread(near) == pytest.approx(0.055)
    assert island_collapse.spread(np.random.default_rng(0).random((200, 30))) > 0.4


def test_ga_changes_are_parsed_as_toml_values():
    args = island_collapse.parse_args(["case", "--json", "x.json", "--ga", "niche_min_sites=0", "--ga", "x=0.5"])
    assert args.ga == {"niche_min_sites": 0, "x": 0.5}
    with pytest.raises(SystemExit):
        island_collapse.parse_args(["case", "--json", "x.json", "--ga", "niche_min_sites"])
