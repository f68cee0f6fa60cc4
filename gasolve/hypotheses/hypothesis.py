"""Structure hypotheses of a composition: Z and the Wyckoff positions of every independent site.

:func:`list_hypotheses` turns ``[structure] composition`` (and ``z`` if given) into the hypotheses the race tries
(:mod:`gasolve.hypotheses.race`), most probable first:

* Z: the given one, else the candidates of :func:`~gasolve.hypotheses.z_candidates.z_candidates` (volume per
  formula unit within the window of the shipped atomic-volume model, and multiplicities that fit).
* For every Z, the route of :func:`~gasolve.hypotheses.assignments.choose_route`: Wyckoff assignments are listed
  lazily, normalizer-equivalent ones once, in two windows of ``window`` each (fewest free parameters first, and
  cheapest first under the prior's per-label costs, which reaches the common arrangements with most sites on the
  general position), and ordered by the learned prior (:func:`~gasolve.hypotheses.prior.order_by_prior`). Above
  ``max_assignments`` assignments, a "general" hypothesis also puts every atom on the general position
  (ceil(atoms per cell / general multiplicity) sites per element) with the dynamical occupancy correction, which
  lets the search put sites on special positions itself (FOX's approach); the best assignments by the prior are
  still raced beside it. When the atoms of every element fill general positions exactly, the general hypothesis is
  the all-general assignment (the most common one in low symmetry, e.g. every atom on 2i in P-1) and takes that
  assignment's prior score. Otherwise it ranks after every Wyckoff one.
* All hypotheses of all Z are merged by the prior's score (the prior scores whole Wyckoff patterns, which carry
  Z through their multiplicities, so the scores of different Z compare) and the first ``max_hypotheses`` kept.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from gasolve.config import StructureSpec
from gasolve.hypotheses.assignments import (
    Assignment,
    choose_route,
    deduplicate,
    enumerate_assignments,
    normalizer_canonicaliser,
    wyckoff_slots,
)
from gasolve.hypotheses.prior import load_prior
from gasolve.hypotheses.z_candidates import z_candidates

#: Hypotheses entered in the race at most (the prior ranks the true assignment in its top 10 for 97 % of held-out
#: structures, benchmarks/results/wyckoff_prior.json).
MAX_HYPOTHESES = 24
#: Log prior added to the hypotheses of a Z outside the packing window when a Z inside it fits (about 1 % of real
#: structures pack outside it, :mod:`~gasolve.hypotheses.z_candidates`): large enough to rank them after every
#: hypothesis of a Z inside, so they fill only the places the others leave. A penalty of ln 0.01 let the prior's
#: favourite patterns of the outer Z push the true assignment down for 14 of the 202 tune structures.
OUTSIDE_LOG_PENALTY = -1000.0
#: Hypotheses after the first MAX_HYPOTHESES held in reserve (:mod:`gasolve.hypotheses.race`): the prior ranks the
#: true assignment beyond 24th for about 2 % of structures (Mg3BN3 92nd, KLi2Mn2O4 49th).
RESERVE_HYPOTHESES = 72
#: Above this many Wyckoff assignments for one Z, the general-position hypothesis joins the race.
MAX_ASSIGNMENTS = 1000
#: Assignments read from the lazy enumeration and ordered by the prior, per Z.
PRIOR_WINDOW = 2000


@dataclass(frozen=True)
class Hypothesis:
    """One way to fill the cell with the composition.

    Attributes
    ----------
    z : int
        Formula units per conventional cell.
    route : str
        "wyckoff": every site on a given Wyckoff position; "general": every site on the general position, with the
        dynamical occupancy correction.
    sites : tuple of (str, str)
        (element, Wyckoff label) of each independent site.
    n_free : int
        Free coordinates.
    log_prior : float
        The prior's log score (higher is more probable); for the general route that of the all-general assignment
        where the atoms fill general positions exactly, else -inf.
    base : StructureSpec or None
        The composition spec (cell and space group) the hypothesis belongs to, when hypotheses of several space
        groups race together (``gasolve solve``); None: the spec given to :meth:`structure`.
    in_window : bool
        False for a Z outside the packing window while a Z inside it fits (:data:`OUTSIDE_LOG_PENALTY`): the race
        ranks it behind those of a Z inside unless it fits significantly better
        (:func:`gasolve.hypotheses.race.parsimony_factors`).
    """

    z: int
    route: str
    sites: tuple[tuple[str, str], ...]
    n_free: int
    log_prior: float
    base: StructureSpec | None = None
    in_window: bool = True

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(element for element, _ in self.sites)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for _, label in self.sites)

    def atoms_per_cell(self, base: StructureSpec) -> dict[str, int]:
        """Atoms of each element in the conventional cell: the composition of ``base`` (the hypothesis's own
        :attr:`base` when it has one) times Z."""
        spec = self.base if self.base is not None else base
        return {element: n * self.z for element, n in spec.composition}

    def describe(self) -> str:
        """E.g. "Z=4 Pb: 4c, S: 4c, O: 2x4c 8d" or "Z=4 general: Pb, S, O, O, O (occupancy correction)"."""
        group = "" if self.base is None else f"{self.base.space_group.symbol} "
        if self.route == "general":
            return f"{group}Z={self.z} general: {', '.join(self.elements)} (occupancy correction)"
        return group + str(Assignment(self.z, self.sites, self.n_free))

    def structure(self, base: StructureSpec) -> StructureSpec:
        """``base`` (a composition spec; the hypothesis's own :attr:`base` when it has one) with this hypothesis's
        sites: a plain ``sites`` spec for the pipeline."""
        base = self.base if self.base is not None else base
        b_iso = (base.b_iso[0],) * len(self.sites)
        if self.route == "general":
            return replace(
                base, sites=self.elements, b_iso=b_iso, wyckoff=None, occupancy_correction=True, composition=None
            )
        return replace(base, sites=self.elements, b_iso=b_iso, wyckoff=self.labels, composition=None)


def _general(counts: dict[str, int], z: int, space_group, prior) -> Hypothesis:
    """Every atom on the general position: ceil(atoms per cell / multiplicity) sites per element. Its log prior is
    that of the all-general assignment where every element fills general positions exactly, else -inf."""
    general = wyckoff_slots(space_group)[0]
    sites = tuple(
        (element, general.label)
        for element, n in counts.items()
        for _ in range(math.ceil(n * z / general.multiplicity))
    )
    score = -math.inf
    if all(n * z % general.multiplicity == 0 for n in counts.values()):
        score = prior.log_score(space_group.number, counts, Assignment(z, sites, 3 * len(sites)))
    return Hypothesis(z, "general", sites, 3 * len(sites), score)


def list_hypotheses(
    spec: StructureSpec,
    *,
    max_hypotheses: int = MAX_HYPOTHESES,
    max_assignments: int = MAX_ASSIGNMENTS,
    window: int = PRIOR_WINDOW,
) -> tuple[list[Hypothesis], list[dict]]:
    """The hypotheses of a composition spec, most probable first (module docstring).

    Returns
    -------
    hypotheses : list of Hypothesis
        At most ``max_hypotheses``.
    routes : list of dict
        Per Z: ``z``, ``volume_ratio`` (cell volume / (Z x formula volume)), ``in_window`` (False for a Z proposed
        outside the packing window, see :mod:`~gasolve.hypotheses.z_candidates`), ``route``, ``n_assignments``
        (counted, before merging normalizer-equivalent ones) and ``reason``, for the user.
    """
    found, routes = _scored(spec, max_hypotheses, max_assignments, window)
    return _first(found, max_hypotheses), routes


def hypotheses_with_reserve(
    spec: StructureSpec, n: int = RESERVE_HYPOTHESES
) -> tuple[list[Hypothesis], list[Hypothesis], list[dict]]:
    """:func:`list_hypotheses`' hypotheses and the prior's next ``n`` after them, most probable first, held in
    reserve by the race (:mod:`gasolve.hypotheses.race`), from one enumeration.

    Returns
    -------
    listed : list of Hypothesis
        As :func:`list_hypotheses` gives them.
    reserve : list of Hypothesis
        At most ``n``, none of them in ``listed``.
    routes : list of dict
        As :func:`list_hypotheses` gives them.
    """
    found, routes = _scored(spec, MAX_HYPOTHESES + max(n, 0), MAX_ASSIGNMENTS, PRIOR_WINDOW)
    listed = _first(found, MAX_HYPOTHESES)
    if n <= 0:
        return listed, [], routes
    seen = {(h.z, h.route, tuple(sorted(h.sites))) for h in listed}
    more = _first(found, len(listed) + n)
    return listed, [h for h in more if (h.z, h.route, tuple(sorted(h.sites))) not in seen][:n], routes


def _first(found: list[Hypothesis], max_hypotheses: int) -> list[Hypothesis]:
    """The first ``max_hypotheses`` of :func:`_scored`'s hypotheses: every general one, the best Wyckoff ones."""
    n_wyckoff = max_hypotheses - sum(h.route == "general" for h in found)
    kept = {id(h) for h in [h for h in found if h.route == "wyckoff"][:n_wyckoff]}
    return [h for h in found if h.route == "general" or id(h) in kept]


def _scored(spec: StructureSpec, per_z: int, max_assignments: int, window: int) -> tuple[list[Hypothesis], list]:
    """Every Z's best ``per_z`` Wyckoff hypotheses by the prior and its general one, most probable first, and the
    routes (:func:`list_hypotheses`). A global first k <= ``per_z`` is the same whatever ``per_z``."""
    counts = dict(spec.composition)
    group, cell = spec.space_group, spec.cell
    if spec.z is not None:
        zs = [(spec.z, cell.volume / (spec.z * _formula_volume(counts)), True)]
    else:
        zs = [(c.z, c.volume_ratio, c.in_window) for c in z_candidates(counts, cell, group, beyond=True)]
    any_inside = any(inside for _, _, inside in zs)
    prior = load_prior()
    canonical = normalizer_canonicaliser(group, cell)
    found: list[Hypothesis] = []
    routes = []
    for z, ratio, in_window in zs:
        penalised = any_inside and not in_window
        penalty = OUTSIDE_LOG_PENALTY if penalised else 0.0
        route = choose_route(counts, z, group, max_assignments)
        outside = ""
        if not in_window:
            outside = "outside the usual packing window (" + (
                "about 1 % of structures; raced after every hypothesis of the Z inside it); "
                if any_inside
                else "no Z inside it fits the multiplicities); "
            )
        routes.append(
            {
                "z": z,
                "volume_ratio": ratio,
                "route": route.name,
                "n_assignments": route.n_assignments,
                "in_window": in_window,
                "reason": outside + route.reason,
            }
        )
        head = _prior_window(counts, z, group, cell, canonical, prior, window)
        scores = prior.window_scores(group.number, counts, head)
        for i in sorted(range(len(head)), key=lambda i: -scores[i])[:per_z]:
            found.append(
                Hypothesis(z, "wyckoff", head[i].sites, head[i].n_free, scores[i] + penalty, in_window=not penalised)
            )
        if route.name == "general":
            general = _general(counts, z, group, prior)
            general = replace(general, log_prior=general.log_prior + penalty, in_window=not penalised)
            if math.isfinite(general.log_prior):  # the same assignment listed as a Wyckoff one: race it once
                same = sorted(general.sites)
                found = [h for h in found if not (h.z == z and h.route == "wyckoff" and sorted(h.sites) == same)]
            found.append(general)
    found.sort(key=lambda h: -h.log_prior)  # stable; a general hypothesis without a prior score (-inf) comes last
    return found, routes


def _prior_window(counts, z, group, cell, canonical, prior, window: int) -> list[Assignment]:
    """The assignments the prior orders: the first ``window`` of the default enumeration (fewest free parameters
    first) and the first ``window`` of the enumeration by per-label cost (:meth:`WyckoffPrior.label_costs`), one
    per normalizer class. The first holds the rare, highly special arrangements whose exact pattern the prior
    knows; the second reaches the common ones (most sites on the general position) that lie beyond any window of
    the first when there are many assignments."""
    costs = prior.label_costs(group.number, [slot.label for slot in wyckoff_slots(group)])
    first = list(itertools.islice(deduplicate(enumerate_assignments(counts, z, group, cell), canonical), window))
    by_cost = enumerate_assignments(counts, z, group, cell, site_costs=costs)
    return list(itertools.islice(deduplicate(itertools.chain(first, by_cost), canonical), len(first) + window))


def _formula_volume(counts: dict[str, int]) -> float:
    from gasolve.hypotheses.z_candidates import volume_model

    return volume_model().formula_volume(counts)
