"""The learned Wyckoff prior (gasolve.hypotheses.prior): the shipped file, hand-checked structure types, invariance
under the normalizer, the ordering, and held-out structures (never counted) ranked better than the default order."""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path

from gasolve.crystal.cell import UnitCell
from gasolve.errors import InputError
from gasolve.hypotheses import deduplicate, enumerate_assignments, normalizer_canonicaliser
from gasolve.hypotheses.assignments import Assignment
from gasolve.hypotheses.prior import (
    Smoothing,
    WyckoffPrior,
    canonical_pattern,
    load_prior,
    multiset_of,
    order_by_prior,
)

PRIOR_FILE = Path(__file__).resolve().parents[1] / "gasolve" / "hypotheses" / "data" / "wyckoff_prior.json.gz"


def _strict(text: str) -> dict:
    def refuse(constant):
        raise ValueError(f"non-finite number {constant} in the prior file")

    return json.loads(text, parse_constant=refuse)


def _distinct(composition, z, number, cell):
    canonical = normalizer_canonicaliser(number, cell)
    return list(deduplicate(enumerate_assignments(composition, z, number, cell), canonical)), canonical


# --------------------------------------------------------------------------------------------------------------
# the shipped file


def test_shipped_prior_is_a_small_strict_json_file_with_the_counts_it_claims():
    assert PRIOR_FILE.stat().st_size < 3_000_000
    raw = _strict(gzip.decompress(PRIOR_FILE.read_bytes()).decode())
    prior = load_prior()
    assert raw["format"] == 1 and raw["exact"] == prior.exact
    n = raw["meta"]["n_structures"]
    assert n > 20_000  # 80 % of the 36,737 mp-structures
    # every counted structure gives one exact pattern, one multiset, and its labels
    assert sum(sum(c.values()) for c in prior.exact.values()) == n
    assert sum(sum(c.values()) for c in prior.multisets.values()) == n
    for group, counts in prior.multisets.items():
        labels = Counter()
        for multiset, count in counts.items():
            for label in multiset.split(","):
                labels[label] += count
        assert labels == prior.labels[group]
    smoothing = prior.smoothing
    assert all(math.isfinite(v) and v > 0 for v in (smoothing.alpha, smoothing.beta, smoothing.gamma))
    # Fm-3m: the shift (1/2, 1/2, 1/2) of its normalizer swaps 4a and 4b
    assert {"4a": "4b", "4b": "4a"}.items() <= prior.label_maps["225"][0].items()


def test_scores_are_finite_for_seen_unseen_and_absent_groups():
    prior = load_prior()
    cases = [
        ({"Na": 1, "Cl": 1}, 4, 225, UnitCell(5.64, 5.64, 5.64, 90, 90, 90)),
        ({"K": 4, "Sn": 1, "O": 4}, 2, 2, UnitCell(6.5, 6.9, 7.2, 80, 85, 70)),
        ({"Ba": 1, "Ti": 1, "O": 3}, 1, 99, UnitCell(4.0, 4.0, 4.1, 90, 90, 90)),
        ({"Si": 1, "O": 2}, 3, 154, UnitCell(4.9, 4.9, 5.4, 90, 90, 120)),
    ]
    for composition, z, number, cell in cases:
        assignments, _ = _distinct(composition, z, number, cell)
        assert assignments
        scores = [prior.log_score(number, composition, a) for a in assignments]
        assert np.all(np.isfinite(scores)) and max(scores) <= 0
    # a space group the prior never saw (or a stoichiometry it never saw) still gets finite, ordered scores
    empty = WyckoffPrior({}, {}, {}, {}, {})
    assert math.isfinite(empty.log_score(225, {"Na": 1, "Cl": 1}, Assignment(4, (("Cl", "4b"), ("Na", "4a")), 0)))


def test_normalizer_equivalent_assignments_score_the_same():
    prior = load_prior()
    na_4a = Assignment(4, (("Na", "4a"), ("Cl", "4b")), 0)
    na_4b = Assignment(4, (("Na", "4b"), ("Cl", "4a")), 0)
    composition = {"Na": 1, "Cl": 1}
    assert prior.pattern(225, composition, na_4a.sites) == prior.pattern(225, composition, na_4b.sites)
    assert prior.log_score(225, composition, na_4a) == prior.log_score(225, composition, na_4b)


def test_canonical_pattern_orders_elements_by_count_then_element_order():
    # TiO2: Ti (1 per formula unit) before O (2); label lists sorted by multiplicity
    assert canonical_pattern({"O": 2, "Ti": 1}, [("O", "4f"), ("Ti", "2a")]) == "2a|4f"
    assert canonical_pattern({"A": 1, "B": 1}, [("A", "4b"), ("B", "4a")]) == "4a|4b"  # anonymous: sorted
    order = {"A": 2.0, "B": 1.0}  # B first within equal counts
    assert canonical_pattern({"A": 1, "B": 1}, [("A", "4a"), ("B", "4b")], (), order) == "4b|4a"
    assert canonical_pattern({"A": 1, "B": 1}, [("A", "4a"), ("B", "4b")], [{"4a": "4b", "4b": "4a"}], order) == (
        "4a|4b"
    )
    assert multiset_of("2a|4f,4f,12k") == "2a,4f,4f,12k"
    with pytest.raises(InputError, match="not in the composition"):
        canonical_pattern({"Na": 1}, [("Cl", "4a")])


# --------------------------------------------------------------------------------------------------------------
# hand-checked structure types


@pytest.mark.parametrize(
    ("composition", "z", "number", "cell", "expected"),
    [
        # rock salt: Na 4a, Cl 4b (the only class once 4a <-> 4b is merged, and it must come first)
        ({"Na": 1, "Cl": 1}, 4, 225, UnitCell(5.64, 5.64, 5.64, 90, 90, 90), {("Na", "4a"), ("Cl", "4b")}),
        # fluorite CaF2: Ca 4a, F 8c
        ({"Ca": 1, "F": 2}, 4, 225, UnitCell(5.46, 5.46, 5.46, 90, 90, 90), {("Ca", "4a"), ("F", "8c")}),
        # rutile TiO2 (P4_2/mnm): Ti 2a, O 4f, among 2a/2b for Ti and 4c/4d/4e/4f/4g or two fixed points for O
        ({"Ti": 1, "O": 2}, 2, 136, UnitCell(4.594, 4.594, 2.959, 90, 90, 90), {("Ti", "2a"), ("O", "4f")}),
        # cubic perovskite SrTiO3 (Pm-3m): Sr 1a (12 O), Ti 1b (6 O), O 3c; told apart only by the element order
        (
            {"Sr": 1, "Ti": 1, "O": 3},
            1,
            221,
            UnitCell(3.905, 3.905, 3.905, 90, 90, 90),
            {("Sr", "1a"), ("Ti", "1b"), ("O", "3c")},
        ),
        # wurtzite ZnO (P6_3mc): Zn 2b, O 2b
        ({"Zn": 1, "O": 1}, 2, 186, UnitCell(3.25, 3.25, 5.21, 90, 90, 120), {("Zn", "2b"), ("O", "2b")}),
    ],
)
def test_known_structure_types_rank_first(composition, z, number, cell, expected):
    assignments, canonical = _distinct(composition, z, number, cell)
    first = next(iter(order_by_prior(assignments, composition, number)))
    assert len(assignments) >= (1 if number == 225 else 2)  # a real choice outside Fm-3m
    assert canonical(first) == canonical(Assignment(z, tuple(sorted(expected)), 0)), str(first)


# --------------------------------------------------------------------------------------------------------------
# ordering


def test_order_by_prior_permutes_the_window_and_keeps_the_rest_in_order():
    composition, z, number, cell = {"Mg": 2, "Si": 1, "O": 4}, 4, 62, UnitCell(10.2, 6.0, 4.75, 90, 90, 90)
    assignments, _ = _distinct(composition, z, number, cell)
    assert len(assignments) > 20
    prior = load_prior()
    ordered = list(order_by_prior(iter(assignments), composition, number, prior))
    assert sorted(map(str, ordered)) == sorted(map(str, assignments))
    scores = prior.window_scores(number, composition, ordered)
    assert scores == sorted(scores, reverse=True)
    windowed = list(order_by_prior(iter(assignments), composition, number, prior, window=3))
    assert windowed[3:] == assignments[3:]
    assert sorted(map(str, windowed[:3])) == sorted(map(str, assignments[:3]))
    with pytest.raises(InputError, match="window"):
        next(order_by_prior(assignments, composition, number, prior, window=0))


def test_window_scores_share_the_multiset_back_off_among_its_patterns():
    from gasolve.hypotheses.prior import multiset_of

    prior = load_prior()
    composition, z, number, cell = {"Fe": 3, "O": 2, "F": 4}, 2, 6, UnitCell(4.76, 9.48, 4.79, 90, 91.2, 90)
    assignments, _ = _distinct(composition, z, number, cell)
    window = assignments[:300]
    patterns = [prior.pattern(number, composition, a.sites) for a in window]
    sharing = Counter(multiset_of(p) for p in set(patterns))
    assert max(sharing.values()) > 1  # Pm: many ways to hand mirror-plane sites to the elements
    shared = prior.window_scores(number, composition, window)
    alone = [prior.log_score(number, composition, a) for a in window]
    for pattern, s, a in zip(patterns, shared, alone, strict=True):
        if sharing[multiset_of(pattern)] == 1:
            assert s == pytest.approx(a)
        else:
            assert s < a
    key = "1:1"  # no exact counts for this stoichiometry in Pm: the back-off alone, split n ways
    for n in (1, 2, 5):
        assert prior.log_score_pattern(number, key, "1a|1b", n) == pytest.approx(
            prior.log_score_pattern(number, key, "1a|1b") - math.log(n)
        )


def test_bad_prior_file_and_smoothing_are_refused(tmp_path):
    path = tmp_path / "prior.json.gz"
    path.write_bytes(gzip.compress(b'{"format": 99}'))
    with pytest.raises(InputError, match="not a Wyckoff prior"):
        load_prior(path)
    (tmp_path / "plain.json.gz").write_text("not gzip")
    with pytest.raises(InputError, match="cannot read"):
        load_prior(tmp_path / "plain.json.gz")
    with pytest.raises(InputError, match="alpha"):
        Smoothing(alpha=0.0)


def test_save_and_load_round_trip(tmp_path):
    prior = WyckoffPrior.fit(
        [
            (225, {"Na": 1, "Cl": 1}, [("Na", "4a"), ("Cl", "4b")]),
            (225, {"Cs": 1, "Cl": 1}, [("Cs", "4b"), ("Cl", "4a")]),
        ],
        {225: [{"4a": "4b", "4b": "4a"}]},
        {225: 12},
        Smoothing(0.5, 2.0, 1.0),
    )
    assert prior.exact == {"225/1:1": {"4a|4b": 2}}
    prior.save(tmp_path / "p.json.gz")
    again = load_prior(tmp_path / "p.json.gz")
    assert again == prior
    prior.save(tmp_path / "q.json.gz")  # deterministic bytes
    assert (tmp_path / "p.json.gz").read_bytes() == (tmp_path / "q.json.gz").read_bytes()


# --------------------------------------------------------------------------------------------------------------
# held-out structures


def test_prior_order_beats_the_default_order_on_held_out_structures():
    sample = json.loads(data_path("derived/wyckoff_prior_heldout.json").read_text())["structures"]
    assert len(sample) >= 20
    prior = load_prior()
    ranks_prior, ranks_default, n_distinct = [], [], []
    for entry in sample:
        assert zlib.crc32(entry["material_id"].encode()) % 5 == 0  # the held-out split, never counted
        composition, z, number = entry["composition"], entry["z"], entry["space_group"]
        cell = UnitCell(*entry["cell"])
        assignments, canonical = _distinct(composition, z, number, cell)
        truth = canonical(Assignment(z, tuple(sorted((e, lab) for e, lab, n in entry["sites"] for _ in range(n))), 0))
        keys = [canonical(a) for a in assignments]
        ordered = [canonical(a) for a in order_by_prior(assignments, composition, number, prior)]
        ranks_default.append(keys.index(truth) + 1)
        ranks_prior.append(ordered.index(truth) + 1)
        n_distinct.append(len(assignments))
    ranks_prior, ranks_default = np.array(ranks_prior, float), np.array(ranks_default, float)
    uniform = (np.array(n_distinct, float) + 1) / 2
    assert np.mean(ranks_prior == 1) >= 0.5 > np.mean(ranks_default == 1)
    assert np.mean(ranks_prior <= 10) >= 0.9
    assert np.exp(np.mean(np.log(ranks_default) - np.log(ranks_prior))) > 2.0
    assert np.exp(np.mean(np.log(uniform) - np.log(ranks_prior))) > 2.0
