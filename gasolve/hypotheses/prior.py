"""A learned prior over Wyckoff assignments: how often a Wyckoff pattern occurs for a space group and composition.

Issue 12, item 6. The prior is a three-level back-off frequency model learned from known structures
(``benchmarks/wyckoff_prior.py`` builds it from ../shared/data/mp-structures and writes the shipped file
``gasolve/hypotheses/data/wyckoff_prior.json.gz``):

1. the exact *element-anonymous pattern* per space group and stoichiometry: elements sorted by their count per
   formula unit, each with the sorted multiset of its Wyckoff labels (fluorite CaF2 in Fm-3m: ``1:2 -> 4a|8c``);
   elements of equal count are ordered by a per-element value stored in the prior (the shipped one uses
   pymatgen's Pauling electronegativity, which beat fully anonymous patterns on the validation split: the
   cation of SrTiO3 with 12 oxygen neighbours is told from the one with 6), else by their labels;
2. backing off to the multiset of Wyckoff labels of all sites per space group (whatever the elements);
3. backing off to a product of per-label frequencies per space group (one factor per independent site), with
   additive smoothing towards a uniform choice among the group's labels.

Interpolated (Dirichlet) smoothing joins the levels::

    p3(M) = prod_{l in M} (c(l | G) + gamma / L_G) / (N_G + gamma)
    p2(M) = (c(M | G) + beta p3(M)) / (N_G + beta)
    p1(A) = (c(A | G, S) + alpha p2(M(A))) / (N_{G,S} + alpha)

with G the space group, S the stoichiometry, M(A) the label multiset of pattern A, L_G the number of Wyckoff
positions of G. Only the order of the assignments of one composition, Z and group matters, so p1 is not
normalised over the assignments the enumerator can yield. Assignments equivalent under the Euclidean normalizer
of the group get the same score: patterns are canonicalised (the smallest over the label permutations the
normalizer induces in a generic cell of the crystal system, which the prior file stores per group), both when
counting and when scoring.

Candidates of one multiset: an unseen pattern backs off to its multiset's probability, which belongs to all the
patterns of that multiset together. :meth:`WyckoffPrior.window_scores` scores a list of candidate assignments with
the back-off mass of each multiset split evenly among the candidates that share it, so that a multiset with many
ways of handing its labels to the elements (18 mirror-plane sites of Fe3O2F4 in Pm, 17 candidates) does not crowd
out a rarer multiset with fewer. On the broad benchmark's tune sample it moved the true assignment up for 6
structures (Na2TbO3 8 -> 5, Li2TiO3 11 -> 6, La3BCCl3 10 -> 4) and down one place for 5.

Ordering: :func:`order_by_prior` scores the first ``window`` assignments of the lazy enumeration
(:func:`gasolve.hypotheses.enumerate_assignments`, fewest free parameters first), sorts them by the prior
(stable, so ties keep the default order) and then yields the rest in the default order. A best-first search
guided by the prior would need an admissible bound on the score of partial assignments, which the exact-pattern
level does not give (an unseen partial pattern can complete into a frequent one); the window is exact for the
cases with at most ``window`` distinct assignments (495 of 500 MP-20-like held-out structures with Z known, see
benchmarks/results/wyckoff_prior.json) and costs at most a few seconds of enumeration, little next to one GA run.
Beyond the window the order is the enumerator's, and the route of :func:`gasolve.hypotheses.choose_route` (general
positions + occupancy correction) is the better plan there anyway.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from gasolve.errors import InputError
from gasolve.hypotheses.assignments import Assignment

#: Format version of the prior file.
FORMAT = 1
#: The prior shipped with gasolve.
SHIPPED = "data/wyckoff_prior.json.gz"


@dataclass(frozen=True)
class Smoothing:
    """Pseudo-counts of the back-off levels (module docstring): alpha (exact pattern -> multiset), beta
    (multiset -> per-label product), gamma (per-label frequencies -> uniform over the group's labels)."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(f"smoothing {name} must be a positive number, got {value!r}")


def stoichiometry(composition: Mapping[str, int]) -> tuple[int, ...]:
    """Atom counts per formula unit, ascending, e.g. (1, 2) for TiO2 and (1, 1, 3) for SrTiO3."""
    return tuple(sorted(int(n) for n in composition.values()))


def stoichiometry_key(composition: Mapping[str, int]) -> str:
    return ":".join(map(str, stoichiometry(composition)))


def _pattern(
    composition: Mapping[str, int],
    sites: Iterable[tuple[str, str]],
    label_map: Mapping[str, str] | None,
    element_order: Mapping[str, float],
) -> tuple:
    per_element: dict[str, list[str]] = {element: [] for element in composition}
    for element, label in sites:
        per_element[element].append(label_map.get(label, label) if label_map else label)
    return tuple(
        sorted(
            (int(composition[e]), float(element_order.get(e, 0.0)), tuple(sorted(labels, key=_label_order)))
            for e, labels in per_element.items()
        )
    )


def _label_order(label: str) -> tuple[int, str]:
    digits = len(label) - len(label.lstrip("0123456789"))
    return int(label[:digits]), label[digits:]


def canonical_pattern(
    composition: Mapping[str, int],
    sites: Iterable[tuple[str, str]],
    label_maps: Sequence[Mapping[str, str]] = (),
    element_order: Mapping[str, float] | None = None,
) -> str:
    """The element-anonymous pattern of an assignment, canonical under the given label permutations.

    Parameters
    ----------
    composition : mapping of str to int
        Element -> atoms per formula unit.
    sites : iterable of (str, str)
        (element, Wyckoff label) of every independent site.
    label_maps : sequence of mappings
        Label permutations induced by the normalizer (identity implied).
    element_order : mapping of str to float, optional
        Orders elements of equal count (e.g. electronegativity: the cation of an AB compound first); without it,
        or for equal values, elements of equal count are ordered by their labels (fully anonymous).

    Returns
    -------
    str
        E.g. ``"4a|8c"`` for fluorite CaF2 in Fm-3m: one field per element in ascending count (equal counts
        sorted by labels), labels of an element joined by ``,``; the smallest string over the permutations.
    """
    sites = list(sites)
    missing = {e for e, _ in sites} - set(composition)
    if missing:
        raise InputError(f"sites name elements {sorted(missing)} that are not in the composition")
    order = element_order or {}
    candidates = [_pattern(composition, sites, m, order) for m in (None, *label_maps)]
    return min("|".join(",".join(labels) for _, _, labels in pattern) for pattern in candidates)


def multiset_of(pattern: str) -> str:
    """The sorted multiset of labels of a pattern string (level 2), e.g. ``"4a,8c"``."""
    labels = [label for field_ in pattern.split("|") for label in field_.split(",") if label]
    return ",".join(sorted(labels, key=_label_order))


@dataclass(frozen=True)
class WyckoffPrior:
    """Counts of the three levels, the smoothing, and the normalizer label maps per space group.

    Attributes
    ----------
    exact : dict
        ``"G/S"`` (space group number / stoichiometry key) -> {pattern: count}.
    multisets : dict
        ``"G"`` -> {label multiset: count}.
    labels : dict
        ``"G"`` -> {label: count over independent sites}.
    n_labels : dict
        ``"G"`` -> number of Wyckoff positions of the group (for the uniform floor of level 3).
    label_maps : dict
        ``"G"`` -> list of label permutations (non-identity) of the group's Euclidean normalizer in a generic cell.
    smoothing : Smoothing
    element_order : dict
        Element -> value ordering elements of equal count in the patterns (:func:`canonical_pattern`); empty for
        fully anonymous patterns.
    meta : dict
        Provenance (source, split, command).
    """

    exact: dict[str, dict[str, int]]
    multisets: dict[str, dict[str, int]]
    labels: dict[str, dict[str, int]]
    n_labels: dict[str, int]
    label_maps: dict[str, list[dict[str, str]]]
    smoothing: Smoothing = Smoothing()
    element_order: dict[str, float] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    # ----------------------------------------------------------------------------------------------------------
    # learning

    @classmethod
    def fit(
        cls,
        examples: Iterable[tuple[int, Mapping[str, int], Iterable[tuple[str, str]]]],
        label_maps: Mapping[int, Sequence[Mapping[str, str]]],
        n_labels: Mapping[int, int],
        smoothing: Smoothing = Smoothing(),
        element_order: Mapping[str, float] | None = None,
        meta: dict | None = None,
    ) -> WyckoffPrior:
        """Count the three levels over known structures.

        Parameters
        ----------
        examples : iterable of (int, mapping, iterable)
            (space group number, composition per formula unit, (element, Wyckoff label) of every independent
            site) per structure, in the standard setting.
        label_maps : mapping
            Space group number -> normalizer label permutations (:func:`generic_label_maps`).
        n_labels : mapping
            Space group number -> number of Wyckoff positions.
        smoothing : Smoothing
        element_order : mapping of str to float, optional
            See :func:`canonical_pattern`.
        meta : dict, optional
        """
        order = {str(k): float(v) for k, v in sorted((element_order or {}).items())}
        exact: dict[str, Counter] = {}
        multisets: dict[str, Counter] = {}
        labels: dict[str, Counter] = {}
        for number, composition, sites in examples:
            pattern = canonical_pattern(composition, sites, label_maps.get(number, ()), order)
            group = str(number)
            exact.setdefault(f"{group}/{stoichiometry_key(composition)}", Counter())[pattern] += 1
            multiset = multiset_of(pattern)
            multisets.setdefault(group, Counter())[multiset] += 1
            labels.setdefault(group, Counter()).update(multiset.split(","))
        return cls(
            exact={k: dict(v) for k, v in sorted(exact.items())},
            multisets={k: dict(v) for k, v in sorted(multisets.items())},
            labels={k: dict(v) for k, v in sorted(labels.items())},
            n_labels={str(k): int(v) for k, v in sorted(n_labels.items())},
            label_maps={str(k): [dict(m) for m in v] for k, v in sorted(label_maps.items()) if v},
            smoothing=smoothing,
            element_order=order,
            meta=dict(meta or {}),
        )

    def with_smoothing(self, smoothing: Smoothing) -> WyckoffPrior:
        return WyckoffPrior(
            self.exact,
            self.multisets,
            self.labels,
            self.n_labels,
            self.label_maps,
            smoothing,
            self.element_order,
            self.meta,
        )

    # ----------------------------------------------------------------------------------------------------------
    # scoring

    def pattern(self, space_group: int, composition: Mapping[str, int], sites: Iterable[tuple[str, str]]) -> str:
        """:func:`canonical_pattern` with this prior's label maps of ``space_group``."""
        maps = self.label_maps.get(str(int(space_group)), ())
        return canonical_pattern(composition, sites, maps, self.element_order)

    def log_score_pattern(self, space_group: int, stoichiometry_key_: str, pattern: str, n_sharing: int = 1) -> float:
        """ln p1 of a canonical pattern (module docstring); finite for any pattern.

        ``n_sharing``: how many candidate patterns share this pattern's label multiset. The back-off mass of the
        multiset (alpha p2) is then split evenly among them, so that a multiset with many ways of handing its
        labels to the elements does not count its whole probability once for each of them."""
        a, b, g = self.smoothing.alpha, self.smoothing.beta, self.smoothing.gamma
        group = str(int(space_group))
        multiset = multiset_of(pattern)
        label_counts = self.labels.get(group, {})
        n_sites_seen = sum(label_counts.values())
        n_positions = max(self.n_labels.get(group, 0), len(label_counts), 1)
        log_p3 = 0.0
        for label in multiset.split(","):
            log_p3 += math.log((label_counts.get(label, 0) + g / n_positions) / (n_sites_seen + g))
        multiset_counts = self.multisets.get(group, {})
        n_group = sum(multiset_counts.values())
        p2 = (multiset_counts.get(multiset, 0) + b * math.exp(log_p3)) / (n_group + b)
        exact_counts = self.exact.get(f"{group}/{stoichiometry_key_}", {})
        n_exact = sum(exact_counts.values())
        share = max(int(n_sharing), 1)
        p1 = (exact_counts.get(pattern, 0) + a * p2 / share) / (n_exact + a)
        if p1 > 0:
            return math.log(p1)
        # p3 underflowed (hundreds of sites): keep the order of the product in log space
        return math.log(a / (n_exact + a)) + math.log(b / (n_group + b)) + log_p3 - math.log(share)

    def window_scores(
        self, space_group: int, composition: Mapping[str, int], assignments: Sequence[Assignment]
    ) -> list[float]:
        """ln prior of each of a list of candidate assignments, the multiset back-off shared among the candidates
        of one multiset (``n_sharing`` of :meth:`log_score_pattern`).

        Parameters
        ----------
        space_group : int
        composition : mapping of str to int
        assignments : sequence of Assignment
            Distinct candidates (one per normalizer class), e.g. the window of :func:`order_by_prior`.

        Returns
        -------
        list of float
            One score per assignment, in order.
        """
        key = stoichiometry_key(composition)
        patterns = [self.pattern(space_group, composition, a.sites) for a in assignments]
        sharing = Counter(multiset_of(p) for p in set(patterns))
        return [self.log_score_pattern(space_group, key, p, sharing[multiset_of(p)]) for p in patterns]

    def label_costs(self, space_group: int, labels: Iterable[str]) -> dict[str, float]:
        """Minus the log of the level-3 factor of each label (module docstring): what one more independent site
        on that Wyckoff position costs in the per-label back-off, for the prior-ordered enumeration
        (``site_costs`` of :func:`gasolve.hypotheses.enumerate_assignments`).

        Parameters
        ----------
        space_group : int
            Space group number.
        labels : iterable of str
            The group's Wyckoff labels ("4a", ...).

        Returns
        -------
        dict of str to float
            Label -> cost > 0. Labels the prior never saw in the group get the smoothing's floor.
        """
        group = str(int(space_group))
        labels = list(labels)
        counts = self.labels.get(group, {})
        n_seen = sum(counts.values())
        n_positions = max(self.n_labels.get(group, 0), len(counts), len(labels), 1)
        g = self.smoothing.gamma
        return {label: -math.log((counts.get(label, 0) + g / n_positions) / (n_seen + g)) for label in labels}

    def log_score(self, space_group: int, composition: Mapping[str, int], assignment: Assignment) -> float:
        """ln prior of one assignment of ``composition`` in ``space_group`` (standard setting).

        Parameters
        ----------
        space_group : int
            Space group number.
        composition : mapping of str to int
            Element -> atoms per formula unit (as given to the enumerator).
        assignment : Assignment

        Returns
        -------
        float
            Finite; larger is more probable. Equal for normalizer-equivalent assignments.
        """
        pattern = self.pattern(space_group, composition, assignment.sites)
        return self.log_score_pattern(space_group, stoichiometry_key(composition), pattern)

    # ----------------------------------------------------------------------------------------------------------
    # file

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "smoothing": {"alpha": self.smoothing.alpha, "beta": self.smoothing.beta, "gamma": self.smoothing.gamma},
            "meta": self.meta,
            "element_order": self.element_order,
            "n_labels": self.n_labels,
            "label_maps": self.label_maps,
            "labels": self.labels,
            "multisets": self.multisets,
            "exact": self.exact,
        }

    @classmethod
    def from_json(cls, raw: dict, source: str = "prior") -> WyckoffPrior:
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise InputError(f"{source}: not a Wyckoff prior of format {FORMAT}")
        try:
            return cls(
                exact=raw["exact"],
                multisets=raw["multisets"],
                labels=raw["labels"],
                n_labels=raw["n_labels"],
                label_maps=raw["label_maps"],
                smoothing=Smoothing(**raw["smoothing"]),
                element_order=raw.get("element_order", {}),
                meta=raw.get("meta", {}),
            )
        except (KeyError, TypeError) as error:
            raise InputError(f"{source}: malformed Wyckoff prior ({error})") from error

    def save(self, path: str | Path) -> None:
        """Write gzipped compact JSON (deterministic: the same counts give the same bytes)."""
        text = json.dumps(self.to_json(), separators=(",", ":"), sort_keys=True, allow_nan=False)
        with open(path, "wb") as handle, gzip.GzipFile(filename="", fileobj=handle, mode="wb", mtime=0) as zipped:
            zipped.write(text.encode())


def load_prior(path: str | Path | None = None) -> WyckoffPrior:
    """The prior from ``path`` (gzipped JSON from :meth:`WyckoffPrior.save`), or the shipped one."""
    if path is None:
        return _shipped()
    try:
        with gzip.open(path, "rt") as handle:
            raw = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read a Wyckoff prior ({error})") from error
    return WyckoffPrior.from_json(raw, str(path))


@lru_cache(maxsize=1)
def _shipped() -> WyckoffPrior:
    resource = resources.files("gasolve.hypotheses").joinpath(SHIPPED)
    with resource.open("rb") as handle, gzip.GzipFile(fileobj=handle) as zipped:
        return WyckoffPrior.from_json(json.loads(zipped.read()), f"gasolve/hypotheses/{SHIPPED}")


def generic_label_maps(number: int) -> list[dict[str, str]]:
    """Label permutations (identity left out) induced by the Euclidean normalizer of space group ``number`` in a
    generic cell of its crystal system (no metric coincidences: a != b != c where the system allows it)."""
    from gasolve.crystal.cell import UnitCell
    from gasolve.crystal.normalizer import euclidean_normalizer
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.hypotheses.assignments import letter_map

    group = SpaceGroup.from_symbol(int(number))
    if number <= 2:
        cell = UnitCell(5.13, 6.37, 7.71, 81.3, 97.1, 103.7)
    elif number <= 15:
        cell = UnitCell(5.13, 6.37, 7.71, 90, 97.1, 90)
    elif number <= 74:
        cell = UnitCell(5.13, 6.37, 7.71, 90, 90, 90)
    elif number <= 142:
        cell = UnitCell(5.13, 5.13, 7.71, 90, 90, 90)
    elif number <= 194:
        cell = UnitCell(5.13, 5.13, 7.71, 90, 90, 120)
    else:
        cell = UnitCell(5.13, 5.13, 5.13, 90, 90, 90)
    normalizer = euclidean_normalizer(group, cell)
    maps = []
    for p, s in zip(normalizer.linear, normalizer.shifts, strict=True):
        mapping = {k: v for k, v in letter_map(group, p, s).items() if k != v}
        if mapping and mapping not in maps:
            maps.append(mapping)
    return maps


def order_by_prior(
    assignments: Iterable[Assignment],
    composition: Mapping[str, int],
    space_group: int,
    prior: WyckoffPrior | None = None,
    *,
    window: int = 20_000,
) -> Iterator[Assignment]:
    """Assignments most probable first under the prior, lazily beyond a window (module docstring).

    Parameters
    ----------
    assignments : iterable of Assignment
        Typically ``deduplicate(enumerate_assignments(...), normalizer_canonicaliser(...))``, fewest free
        parameters first.
    composition : mapping of str to int
        The composition given to the enumerator.
    space_group : int
        Space group number.
    prior : WyckoffPrior, optional
        The shipped prior by default.
    window : int
        How many assignments are read and sorted before the rest follows in the given order.

    Yields
    ------
    Assignment
        The first ``window`` assignments by decreasing prior (ties in the given order), then the rest unsorted.
    """
    if window < 1:
        raise InputError(f"window must be a positive number of assignments, got {window!r}")
    prior = prior if prior is not None else load_prior()
    iterator = iter(assignments)
    head = list(itertools.islice(iterator, window))
    scores = prior.window_scores(space_group, composition, head)
    order = sorted(range(len(head)), key=lambda i: -scores[i])
    for i in order:
        yield head[i]
    yield from iterator
