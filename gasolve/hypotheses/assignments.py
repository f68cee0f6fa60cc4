"""Wyckoff assignments: every way to put Z formula units on the Wyckoff positions of a space group.

An assignment gives each element a multiset of Wyckoff positions whose multiplicities add up to its number of
atoms in the conventional cell. A position without free coordinates (a fixed point such as 4a of Fm-3m) holds at
most one atom, across all elements; a position with free coordinates may carry any number of independent sites.
The Wyckoff tables are PyXtal's (via :func:`gasolve.crystal.wyckoff.wyckoff_positions`).

The number of assignments grows combinatorially in low symmetry (issue 12 quotes a median of 34.5 with Z known on
MP-20 and some above 10^5), so nothing here builds the product:

* :func:`count_assignments` counts them by dynamic programming: per element, the ways to fill what the fixed
  points leave with the free positions (coin-change counts), combined across elements over how many fixed points
  of each multiplicity every element takes (multinomial factors). It ignores the distance filter, so it is an upper
  bound on what :func:`enumerate_assignments` yields, and exact without a cell.
* :func:`enumerate_assignments` is a generator, an A* best-first search over partial assignments (element by
  element, Wyckoff position by position, with two moves: one more site on this position, or go to the next
  position). Assignments come out in order of increasing free parameters, then fewer independent sites. The
  heuristic is exact (without the distance filter): fixed points of one multiplicity are interchangeable for the
  cost, so the cheapest completion depends only on how many of each multiplicity are still free, and a small DP
  over that vector gives it. Every partial assignment on the heap can therefore be completed, nothing is explored
  in vain, and ties pop last-in first-out so that the search dives instead of widening: the first assignments of
  a case with 10^25 of them come in milliseconds. Fixed atoms closer than ``min_distance_factor`` x (sum of ASE
  covalent radii) are dropped during the search: only pairs of atoms on fixed points can be checked before the
  coordinates are known. So are lines and planes of special positions that hold more atoms than fit on them
  (:mod:`gasolve.hypotheses.crowding`); with either filter the heuristic is a lower bound, so the order holds.
* :func:`choose_route` says whether to race the assignments or to put every atom on the general position and
  let the dynamical occupancy correction find the special positions.

Equivalence under the Euclidean normalizer of the group: :func:`deduplicate` takes a canonicalisation callable and
keeps the first assignment of every class; :func:`letter_map` turns one affine normalizer operation (P, p) into the
permutation of Wyckoff labels it induces, :func:`canonicaliser` builds the callable from such permutations, and
:func:`normalizer_canonicaliser` from the normalizer of :mod:`gasolve.crystal.normalizer` for the actual cell.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError

#: Cost weight of one free parameter against one independent site: free parameters decide the order, sites
#: break ties (more than any number of sites a cell can hold).
_PER_FREE = 1 << 20
_INFEASIBLE = math.inf


@dataclass(frozen=True)
class WyckoffSlot:
    """One Wyckoff position, as the enumeration sees it.

    Attributes
    ----------
    index : int
        Position in PyXtal's table (0 = general position).
    letter : str
    multiplicity : int
        Positions per conventional cell.
    n_free : int
        Free coordinates of a site on it (0 for a fixed point).
    """

    index: int
    letter: str
    multiplicity: int
    n_free: int

    @property
    def label(self) -> str:
        return f"{self.multiplicity}{self.letter}"

    @property
    def fixed(self) -> bool:
        return self.n_free == 0


@dataclass(frozen=True)
class Assignment:
    """Atoms of Z formula units on Wyckoff positions.

    Attributes
    ----------
    z : int
        Formula units per conventional cell.
    sites : tuple of (str, str)
        (element, Wyckoff label) of every independent site; elements in composition order, positions in the order
        of the Wyckoff table (general first).
    n_free : int
        Free coordinates of the asymmetric unit.
    """

    z: int
    sites: tuple[tuple[str, str], ...]
    n_free: int

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    def labels(self, element: str) -> tuple[str, ...]:
        """Wyckoff labels of the sites of ``element``."""
        return tuple(label for symbol, label in self.sites if symbol == element)

    def __str__(self) -> str:
        parts = []
        for element in dict.fromkeys(symbol for symbol, _ in self.sites):
            labels = self.labels(element)
            counted = [f"{n}x{label}" if n > 1 else label for label, n in _runs(labels)]
            parts.append(f"{element}: {' '.join(counted)}")
        return f"Z={self.z} " + ", ".join(parts)


def _runs(labels: tuple[str, ...]) -> list[tuple[str, int]]:
    return [(label, len(list(group))) for label, group in itertools.groupby(labels)]


def _as_space_group(space_group: SpaceGroup | int | str) -> SpaceGroup:
    return space_group if isinstance(space_group, SpaceGroup) else SpaceGroup.from_symbol(space_group)


@lru_cache(maxsize=256)
def _positions(number: int, hall: str) -> tuple:
    from gasolve.crystal.wyckoff import wyckoff_positions

    return tuple(wyckoff_positions(SpaceGroup.from_hall(hall)))


@lru_cache(maxsize=256)
def _slots(number: int, hall: str) -> tuple[WyckoffSlot, ...]:
    positions = _positions(number, hall)
    return tuple(WyckoffSlot(i, p.letter, p.multiplicity, len(p.free_parameters)) for i, p in enumerate(positions))


def wyckoff_slots(space_group: SpaceGroup | int | str) -> tuple[WyckoffSlot, ...]:
    """The Wyckoff positions of ``space_group`` (standard setting), general position first.

    Raises
    ------
    InputError
        When the group is given in a setting PyXtal does not tabulate.
    """
    group = _as_space_group(space_group)
    return _slots(group.number, group.hall)


def _cell_counts(composition: Mapping[str, int], z: int) -> list[tuple[str, int]]:
    if isinstance(z, bool) or not isinstance(z, int | np.integer) or z < 1:
        raise InputError(f"z must be a positive integer, got {z!r}")
    counts = [(str(element), int(n) * int(z)) for element, n in composition.items()]
    if not counts or any(n < 1 for _, n in counts):
        raise InputError(f"a composition needs positive element counts, got {dict(composition)!r}")
    return counts


# --------------------------------------------------------------------------------------------------------------
# Counting


def _free_fill_counts(slots: Iterable[WyckoffSlot], n_atoms: int) -> list[int]:
    """ways[t] = number of multisets of free (repeatable) positions whose multiplicities sum to t."""
    ways = [1] + [0] * n_atoms
    for slot in slots:
        if slot.fixed:
            continue
        for t in range(slot.multiplicity, n_atoms + 1):
            ways[t] += ways[t - slot.multiplicity]
    return ways


def count_assignments(composition: Mapping[str, int], z: int, space_group: SpaceGroup | int | str) -> int:
    """Number of Wyckoff assignments of Z formula units, without listing them.

    Parameters
    ----------
    composition : mapping of str to int
        Element -> atoms per formula unit.
    z : int
        Formula units per conventional cell.
    space_group : SpaceGroup, int or str

    Returns
    -------
    int
        Exact number of assignments before the distance filter of :func:`enumerate_assignments` (so an upper
        bound on what it yields when a cell is given). Assignments equivalent under the Euclidean normalizer are
        counted separately.
    """
    counts = _cell_counts(composition, z)
    slots = wyckoff_slots(space_group)
    multiplicities = sorted({s.multiplicity for s in slots if s.fixed})
    available = [sum(1 for s in slots if s.fixed and s.multiplicity == m) for m in multiplicities]
    # state: fixed points of each multiplicity already taken -> number of ways so far
    states: dict[tuple[int, ...], int] = {tuple(0 for _ in multiplicities): 1}
    for _, n_atoms in counts:
        free_ways = _free_fill_counts(slots, n_atoms)
        following: dict[tuple[int, ...], int] = {}
        for used, ways_so_far in states.items():
            left = [a - u for a, u in zip(available, used, strict=True)]
            for taken in itertools.product(*(range(k + 1) for k in left)):
                on_fixed = sum(t * m for t, m in zip(taken, multiplicities, strict=True))
                if on_fixed > n_atoms or free_ways[n_atoms - on_fixed] == 0:
                    continue
                ways = free_ways[n_atoms - on_fixed]
                for k, t in zip(left, taken, strict=True):
                    ways *= math.comb(k, t)
                key = tuple(u + t for u, t in zip(used, taken, strict=True))
                following[key] = following.get(key, 0) + ways_so_far * ways
        states = following
    return sum(states.values())


# --------------------------------------------------------------------------------------------------------------
# Distances between fixed points


def _fixed_point_distances(space_group: SpaceGroup, slots: tuple[WyckoffSlot, ...], cell: UnitCell) -> np.ndarray:
    """Shortest distance (Å) between an atom on fixed point i and one on fixed point j (i == j: two images of
    the same point), shape (n_slots, n_slots); inf for pairs that are not both fixed."""
    positions = _positions(space_group.number, space_group.hall)
    orbits = {}
    for slot in slots:
        if slot.fixed:
            orbit = space_group.orbit(positions[slot.index].offset)
            if len(orbit) != slot.multiplicity:  # the tables and the operators disagree: a bug, not user input
                raise RuntimeError(f"orbit of {slot.label} in {space_group.symbol} has {len(orbit)} points")
            orbits[slot.index] = orbit
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    basis = cell.matrix
    distances = np.full((len(slots), len(slots)), np.inf)
    for i, j in itertools.combinations_with_replacement(sorted(orbits), 2):
        delta = orbits[i][:, None, :] - orbits[j][None, :, :]
        delta = delta - np.round(delta)
        images = (delta[:, :, None, :] + shifts[None, None, :, :]) @ basis
        lengths = np.linalg.norm(images, axis=-1)
        if i == j:
            lengths = np.where(lengths < 1e-6, np.inf, lengths)
        distances[i, j] = distances[j, i] = float(lengths.min())
    return distances


def _crowding_steps(
    group: SpaceGroup, slots: tuple[WyckoffSlot, ...], cell: UnitCell, elements: list[str]
) -> tuple[list, list]:
    """Per slot: the crowding one site of each element adds to its line or plane (None for fixed points and the
    general position), and the largest crowding allowed (:mod:`gasolve.hypotheses.crowding`)."""
    from gasolve.hypotheses.crowding import MAX_CROWDING, footprint, position_loci

    loci = position_loci(group, cell)
    steps, limits = [], []
    for slot in slots:
        here = loci.get(slot.label)
        if here is None:
            steps.append(None)
            limits.append(math.inf)
            continue
        steps.append([here.per_site * footprint(e, here.dimension) / here.measure for e in elements])
        limits.append(MAX_CROWDING[here.dimension])
    return steps, limits


# --------------------------------------------------------------------------------------------------------------
# Enumeration


def _default_steps(slots: tuple[WyckoffSlot, ...]) -> tuple[float, ...]:
    """Cost of one site on each position in the default order: free parameters, then sites (``_PER_FREE``)."""
    return tuple(float(slot.n_free * _PER_FREE + 1) for slot in slots)


def _free_costs(slots: tuple[WyckoffSlot, ...], n_atoms: int, steps: tuple[float, ...]) -> list[list[float]]:
    """cost[j][t]: cheapest way (``steps[i]`` per site on position i) to place t atoms on the free positions
    j, j+1, ... alone; inf where impossible. Shape (n_slots + 1, n_atoms + 1)."""
    n_slots = len(slots)
    cost = [[_INFEASIBLE] * (n_atoms + 1) for _ in range(n_slots + 1)]
    cost[n_slots][0] = 0
    for j in range(n_slots - 1, -1, -1):
        slot, row, after = slots[j], cost[j], cost[j + 1]
        step, m = steps[j], slot.multiplicity
        for t in range(n_atoms + 1):
            row[t] = after[t]
            if not slot.fixed and t >= m:
                row[t] = min(row[t], row[t - m] + step)
    return cost


class _Heuristic:
    """Cheapest completion of a partial assignment, ignoring the distance filter.

    Fixed points of equal multiplicity are interchangeable for the default cost (each is one site, no free
    parameter), so what is left for the remaining elements depends only on how many fixed points of each
    multiplicity are still free: ``later(e, free)`` is the cheapest way to place elements e, e+1, ... given that
    vector (a small DP over how many fixed points each element takes), and ``current`` adds the element being
    placed, which may only use positions from j on. With per-position costs (``steps``) a fixed point of a class
    is charged the cheapest cost of its class: the bound is then a lower one (admissible, so the search still
    yields in order of cost), exact when the fixed points of each multiplicity cost alike.
    """

    def __init__(self, slots: tuple[WyckoffSlot, ...], n_atoms: list[int], steps: tuple[float, ...]):
        self.n_atoms = n_atoms
        self.multiplicities = sorted({s.multiplicity for s in slots if s.fixed})
        self.class_of = {s.index: self.multiplicities.index(s.multiplicity) for s in slots if s.fixed}
        self.fixed_cost = [
            min(steps[s.index] for s in slots if s.fixed and s.multiplicity == m) for m in self.multiplicities
        ]
        self.free_costs = [_free_costs(slots, n, steps) for n in n_atoms]
        self._later: dict = {}
        self._current: dict = {}

    def _best(self, e: int, j: int, r: int, takeable: tuple[int, ...], free: tuple[int, ...]) -> float:
        best = _INFEASIBLE
        costs = self.free_costs[e][j]
        for taken in itertools.product(*(range(k + 1) for k in takeable)):
            on_fixed = sum(t * m for t, m in zip(taken, self.multiplicities, strict=True))
            if on_fixed > r or costs[r - on_fixed] == _INFEASIBLE:
                continue
            left = tuple(f - t for f, t in zip(free, taken, strict=True))
            on_points = sum(t * c for t, c in zip(taken, self.fixed_cost, strict=True))
            total = on_points + costs[r - on_fixed] + self.later(e + 1, left)
            best = min(best, total)
        return best

    def later(self, e: int, free: tuple[int, ...]) -> float:
        if e == len(self.n_atoms):
            return 0
        key = (e, free)
        if key not in self._later:
            self._later[key] = self._best(e, 0, self.n_atoms[e], free, free)
        return self._later[key]

    def current(self, e: int, j: int, r: int, takeable: tuple[int, ...], free: tuple[int, ...]) -> float:
        key = (e, j, r, takeable, free)
        if key not in self._current:
            self._current[key] = self._best(e, j, r, takeable, free)
        return self._current[key]


def enumerate_assignments(
    composition: Mapping[str, int],
    z: int,
    space_group: SpaceGroup | int | str,
    cell: UnitCell | None = None,
    *,
    min_distance_factor: float = 0.5,
    site_costs: Mapping[str, float] | None = None,
) -> Iterator[Assignment]:
    """Every Wyckoff assignment of Z formula units, lazily, fewest free parameters first (module docstring), or
    cheapest first under per-position costs.

    Parameters
    ----------
    composition : mapping of str to int
        Element -> atoms per formula unit.
    z : int
        Formula units per conventional cell.
    space_group : SpaceGroup, int or str
        In the standard setting PyXtal tabulates.
    cell : UnitCell, optional
        When given, assignments that put two atoms on fixed points closer than ``min_distance_factor`` times the
        sum of their covalent radii (ASE's :data:`ase.data.covalent_radii`, Å) are dropped, and so are those that
        crowd a line or plane of special positions (:func:`gasolve.hypotheses.crowding.too_crowded`).
    min_distance_factor : float
    site_costs : mapping of str to float, optional
        Cost (>= 0) of one independent site on each Wyckoff label, e.g. minus the log frequency of the label
        (:meth:`gasolve.hypotheses.prior.WyckoffPrior.label_costs`); assignments then come out in order of
        increasing total cost. Labels left out cost the largest given cost. Default: free parameters, then sites.

    Yields
    ------
    Assignment
        In order of increasing ``n_free``, then ``n_sites`` (or of total ``site_costs``); each assignment once
        (normalizer-equivalent ones are all yielded; see :func:`deduplicate`).
    """
    counts = _cell_counts(composition, z)
    group = _as_space_group(space_group)
    slots = wyckoff_slots(group)
    if site_costs is None:
        steps = _default_steps(slots)
    else:
        given = {str(k): float(v) for k, v in site_costs.items()}
        if any(not math.isfinite(v) or v < 0 for v in given.values()):
            raise InputError(f"site costs must be finite and >= 0, got {dict(site_costs)!r}")
        missing = max(given.values(), default=1.0)
        steps = tuple(given.get(slot.label, missing) for slot in slots)
    return _search(counts, int(z), group, slots, cell, float(min_distance_factor), steps)


def _search(
    counts: list[tuple[str, int]],
    z: int,
    group: SpaceGroup,
    slots: tuple[WyckoffSlot, ...],
    cell: UnitCell | None,
    min_distance_factor: float,
    steps: tuple[float, ...],
) -> Iterator[Assignment]:
    elements = [element for element, _ in counts]
    n_elements, n_slots = len(counts), len(slots)
    heuristic = _Heuristic(slots, [n for _, n in counts], steps)
    n_classes = len(heuristic.multiplicities)
    fixed_after = [[i for i in range(j, n_slots) if slots[i].fixed] for j in range(n_slots + 1)]

    too_close = crowd_steps = crowd_limits = None
    if cell is not None:
        from ase.data import atomic_numbers, covalent_radii

        distances = _fixed_point_distances(group, slots, cell)
        radii = np.array([covalent_radii[atomic_numbers[e]] for e in elements])
        limit = min_distance_factor * (radii[:, None] + radii[None, :])
        too_close = distances[:, :, None, None] < limit[None, None, :, :]  # [slot_i, slot_j, elem_a, elem_b]
        crowd_steps, crowd_limits = _crowding_steps(group, slots, cell, elements)

    # Ties (equal cost) pop last-in first-out, so the search dives to a complete assignment instead of widening
    # a front of equally cheap partial ones.
    heap: list = []
    tiebreak = itertools.count(0, -1)

    def push(
        g: int, e: int, j: int, r: int, used: int, free: tuple, owners: tuple, chain: tuple | None, loads: tuple
    ) -> None:
        if r == 0:  # this element is placed; start the next one
            e, j = e + 1, 0
            if e == n_elements:
                heapq.heappush(heap, (g, next(tiebreak), g, e, j, 0, used, free, owners, chain, loads))
                return
            r = heuristic.n_atoms[e]
        takeable = [0] * n_classes
        for i in fixed_after[j]:
            if not used >> i & 1:
                takeable[heuristic.class_of[i]] += 1
        h = heuristic.current(e, j, r, tuple(takeable), free)
        if h != _INFEASIBLE:
            heapq.heappush(heap, (g + h, next(tiebreak), g, e, j, r, used, free, owners, chain, loads))

    all_fixed = [0] * n_classes
    for i in fixed_after[0]:
        all_fixed[heuristic.class_of[i]] += 1
    push(0, 0, 0, heuristic.n_atoms[0], 0, tuple(all_fixed), (), None, (0.0,) * n_slots)
    while heap:
        _, _, g, e, j, r, used, free, owners, chain, loads = heapq.heappop(heap)
        if e == n_elements:
            sites = []
            while chain is not None:
                chain, (element_index, slot_index) = chain
                sites.append((element_index, slot_index))
            sites.sort()
            n_free = sum(slots[s].n_free for _, s in sites)
            yield Assignment(z, tuple((elements[a], slots[s].label) for a, s in sites), n_free)
            continue
        slot = slots[j]
        # move 1: no (more) sites of this element on position j
        push(g, e, j + 1, r, used, free, owners, chain, loads)
        # move 2: one more site of this element on position j
        if slot.multiplicity > r:
            continue
        step = steps[j]
        if not slot.fixed:
            if crowd_steps is not None and crowd_steps[j] is not None:
                load = loads[j] + crowd_steps[j][e]
                if load > crowd_limits[j]:  # the line or plane cannot hold another atom of this element
                    continue
                loads = (*loads[:j], load, *loads[j + 1 :])
            push(g + step, e, j, r - slot.multiplicity, used, free, owners, (chain, (e, j)), loads)
            continue
        if used >> j & 1:
            continue
        if too_close is not None and (
            too_close[j, j, e, e] or any(too_close[j, other_slot, e, other] for other_slot, other in owners)
        ):
            continue
        left = list(free)
        left[heuristic.class_of[j]] -= 1
        chain = (chain, (e, j))
        push(g + step, e, j + 1, r - slot.multiplicity, used | 1 << j, tuple(left), (*owners, (j, e)), chain, loads)


@dataclass(frozen=True)
class Route:
    """How the hypotheses of one Z are searched.

    Attributes
    ----------
    name : str
        "wyckoff": race the Wyckoff assignments; "general": every atom on the general position, with the dynamical
        occupancy correction finding special positions (FOX's), because there are too many assignments.
    n_assignments : int
        :func:`count_assignments`.
    reason : str
        One sentence for the user.
    """

    name: str
    n_assignments: int
    reason: str


def choose_route(
    composition: Mapping[str, int], z: int, space_group: SpaceGroup | int | str, max_assignments: int = 1000
) -> Route:
    """The "wyckoff" route when Z formula units have at most ``max_assignments`` Wyckoff assignments, else
    "general" (:class:`Route`)."""
    n = count_assignments(composition, z, space_group)
    if n <= max_assignments:
        return Route("wyckoff", n, f"{n} Wyckoff assignments for Z = {z} (at most {max_assignments}): each is tried")
    return Route(
        "general",
        n,
        f"{n:.3g} Wyckoff assignments for Z = {z} (more than {max_assignments}): every atom starts on the general "
        "position and the occupancy correction finds the special positions",
    )


def deduplicate(
    assignments: Iterable[Assignment], canonicalise: Callable[[Assignment], Hashable]
) -> Iterator[Assignment]:
    """Keep the first assignment of every class that ``canonicalise`` maps to the same key.

    Parameters
    ----------
    assignments : iterable of Assignment
        E.g. :func:`enumerate_assignments`; consumed lazily.
    canonicalise : callable
        Assignment -> hashable key, equal for assignments equivalent under the Euclidean normalizer of the group
        (for instance the lexicographically smallest relabelling of the Wyckoff letters over its affine
        operations).

    Yields
    ------
    Assignment
    """
    seen: set[Hashable] = set()
    for assignment in assignments:
        key = canonicalise(assignment)
        if key not in seen:
            seen.add(key)
            yield assignment


#: Lattice translations tried when testing whether a point lies on a Wyckoff position ((x, 2x, z) needs +-2).
_LATTICE_SHIFTS = np.array(list(itertools.product((-2, -1, 0, 1, 2), repeat=3)), dtype=float)


def _on_position(point: np.ndarray, matrix: np.ndarray, offset: np.ndarray, group: SpaceGroup) -> bool:
    """Whether ``point`` (fractional) lies on the Wyckoff position frac = M p + t, i.e. some image g(point) minus t
    lies in the column space of M up to a lattice translation."""
    projector = np.eye(3) - matrix @ np.linalg.pinv(matrix)
    images = np.einsum("sij,j->si", group.rotations, point) + group.translations
    delta = images - offset
    delta = delta - np.round(delta)
    residual = (delta[None, :, :] - _LATTICE_SHIFTS[:, None, :]) @ projector.T
    return bool(np.any(np.all(np.abs(residual) < 1e-6, axis=2)))


def letter_map(space_group: SpaceGroup | int | str, rotation: np.ndarray, translation: np.ndarray) -> dict[str, str]:
    """The permutation of Wyckoff labels induced by an affine normalizer operation x -> P x + p.

    A generic point of each position is mapped and the position it lands on is identified (same multiplicity and
    number of free coordinates, point on its affine subspace up to a group operation and a lattice translation).

    Parameters
    ----------
    space_group : SpaceGroup, int or str
    rotation : ndarray, shape (3, 3)
        P, acting on fractional coordinates (columns).
    translation : ndarray, shape (3,)
        p.

    Returns
    -------
    dict of str to str
        Label -> label (e.g. {"4a": "4b", "4b": "4a", ...}).

    Raises
    ------
    ValueError
        When the operation does not map the Wyckoff positions onto one another (not in the normalizer).
    """
    group = _as_space_group(space_group)
    positions = _positions(group.number, group.hall)
    slots = wyckoff_slots(group)
    rotation, translation = np.asarray(rotation, float), np.asarray(translation, float)
    generic = np.array([0.1234567, 0.2718281, 0.3141592])
    mapping = {}
    for slot, position in zip(slots, positions, strict=True):
        image = rotation @ position.coordinates(generic) + translation
        matches = [
            other.label
            for other, target in zip(slots, positions, strict=True)
            if (other.multiplicity, other.n_free) == (slot.multiplicity, slot.n_free)
            and _on_position(image, target.matrix, target.offset, group)
        ]
        if len(matches) != 1:
            raise ValueError(f"x -> P x + p does not map {slot.label} of {group.symbol} onto one Wyckoff position")
        mapping[slot.label] = matches[0]
    if sorted(mapping.values()) != sorted(mapping):
        raise ValueError(f"x -> P x + p does not permute the Wyckoff positions of {group.symbol}")
    return mapping


def canonicaliser(maps: Iterable[Mapping[str, str]]) -> Callable[[Assignment], tuple]:
    """A canonicalisation for :func:`deduplicate` from the label permutations of the normalizer's operations
    (e.g. :func:`letter_map` of each coset representative; the identity is added): the smallest relabelled,
    sorted site list."""
    maps = [dict(m) for m in maps]

    def canonical(assignment: Assignment) -> tuple:
        own = tuple(sorted(assignment.sites))
        relabelled = (tuple(sorted((e, m.get(label, label)) for e, label in assignment.sites)) for m in maps)
        return min(own, *relabelled) if maps else own

    return canonical


def normalizer_canonicaliser(space_group: SpaceGroup | int | str, cell: UnitCell) -> Callable[[Assignment], tuple]:
    """:func:`canonicaliser` from the Euclidean normalizer of ``space_group`` in ``cell``
    (:func:`gasolve.crystal.normalizer.euclidean_normalizer`; the continuous shifts of polar groups move no
    Wyckoff position onto another, so its discrete coset representatives suffice)."""
    from gasolve.crystal.normalizer import euclidean_normalizer

    group = _as_space_group(space_group)
    normalizer = euclidean_normalizer(group, cell)
    return canonicaliser(letter_map(group, p, s) for p, s in zip(normalizer.linear, normalizer.shifts, strict=True))
