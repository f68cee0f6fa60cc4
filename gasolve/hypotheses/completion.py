"""New hypotheses from the difference Fourier map of a run's heavy atoms: the completion step of a structure
solution, at the level of Wyckoff assignments.

The race (:mod:`gasolve.hypotheses.race`) tries the Wyckoff assignments the learned prior ranks highest, at most
:data:`~gasolve.hypotheses.hypothesis.MAX_HYPOTHESES` of them. In the broad benchmark, the runs that failed most
often had the heavy atoms right and the light ones on the wrong Wyckoff positions, because the true assignment
of the light atoms was not among those raced (Ba2TiO4, P4/mmm: Ba and Ti placed, O raced on 4i, 4l and 2h + 2g,
never on its true 2e + 2h; Cs2LiF3, Cmcm: F on 8f + 4b instead of 2 x 4c + 4a; Ce3SiPt5, Imma: Si on 4a instead of
4e). A crystallographer completes such a model from the difference Fourier map of the atoms that are right, and
reads the light atoms' Wyckoff positions off the positions of its peaks.

:func:`completed_assignments` does that for a run's best model. For each split of the elements by scattering power
(keep the heaviest element, the two heaviest, ...), it keeps the heavier elements' sites as they are, computes the
difference map (|F_obs| - |F_K|) exp(i φ_K) of the kept atoms K (:mod:`gasolve.ga.fourier_rebuild` gives the
map's details and its reference), and puts the lighter atoms on its highest peaks: each peak is taken to the most
special Wyckoff position within :data:`SNAP_DISTANCE` of it (an atom that close to a mirror, axis or centre would
be closer than :data:`MIN_DISTANCE` to its own image, which no structure has), heavier light elements take the
higher peaks, and a peak is used only when its multiplicity still fits the element's count and it lies at least
:data:`MIN_KEPT_DISTANCE` from the kept atoms and :data:`MIN_DISTANCE` from the light atoms placed. A split that
places every light atom gives a new assignment, which the race then tries like any other.

A run of the general route (every site on the general position, with the dynamical occupancy correction) cannot
hold an element split over several special positions, or a count that is not a multiple of the general
multiplicity: Li2MoO3 (P-1, Li on 2i + 1e + 1f) ended with Li on 2i and 1f, one Li short, at χ² 1.39 against the
noise level 1.01. A Wyckoff run can lose atoms too: in Li4V5O9F (Cm) a Li site on 4b settled on the mirror, where
it is two atoms, not four (best.cif held Li6, χ² 1.02: Li scatters little). :func:`settled_sites` reads the
Wyckoff position each site of a model settled on; the kept elements keep those positions, and the atoms they lack
are placed from the map like the lighter elements (heavier ones on the higher peaks). Keeping every element and
placing only what is missing is one more split. :func:`holds_composition` says whether a model holds the
composition at all; the race (:mod:`gasolve.hypotheses.race`) does not stop on one that does not.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.wyckoff import SiteMap, wyckoff_positions
from gasolve.ga.fourier_rebuild import (
    atomic_power,
    closest_distance,
    images,
    map_grid,
    own_images_if_free,
    peaks_of_map,
)
from gasolve.scoring.fourier import observed_intensities, site_structure_factors

#: Å: a peak this close to a Wyckoff position of higher symmetry is put on it.
SNAP_DISTANCE = 0.55
#: Å: light atoms (and a light atom and its images) at least this far apart.
MIN_DISTANCE = 1.1
#: Å: a peak closer than this to a kept atom is the kept atom's own ripple, not an atom.
MIN_KEPT_DISTANCE = 1.5
#: Map grid spacing (Å).
SPACING = 0.3
#: Peaks read per atom to place, at most.
PEAKS_PER_ATOM = 6
#: Å: two atoms of a model closer than this are one atom counted twice (:func:`holds_composition`).
COINCIDENT = 0.5
#: Å: a site this close to a more special position sits on it (:func:`settled_sites`).
SETTLE_DISTANCE = COINCIDENT / 2


@lru_cache(maxsize=64)
def _position_maps(hall: str) -> tuple:
    """(label, multiplicity, SiteMap, table index) of every Wyckoff position, most special first."""
    group = SpaceGroup.from_hall(hall)
    positions = list(enumerate(wyckoff_positions(group)))
    positions.sort(key=lambda item: (item[1].multiplicity, -item[0]))
    return tuple((p.label, p.multiplicity, SiteMap.from_labels(group, [p.label]), i) for i, p in positions)


def snap_to_wyckoff(space_group: SpaceGroup, cell, point: np.ndarray, tolerance: float = SNAP_DISTANCE):
    """The most special Wyckoff position within ``tolerance`` Å of ``point`` (3,) and the point on it.

    Returns
    -------
    (str, int, ndarray (3,))
        Label, multiplicity and the fractional coordinates of the position's representative nearest an image of
        ``point``. The general position always qualifies (distance 0).
    """
    orbit = images(space_group, np.asarray(point, dtype=float)[None])[0]
    for label, multiplicity, site_map, _ in _position_maps(space_group.hall):
        projected = site_map.project(orbit[:, None, :])[:, 0, :]
        delta = projected - orbit
        delta -= np.round(delta)
        distances = np.sqrt(np.einsum("ni,ij,nj->n", delta, cell.metric, delta))
        best = int(np.argmin(distances))
        if distances[best] <= tolerance:
            return label, multiplicity, projected[best]
    raise AssertionError("the general position holds every point")  # pragma: no cover


def _multiplicity(label: str) -> int:
    return int("".join(c for c in label if c.isdigit()))


def settled_sites(scorer, genome: np.ndarray) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    """The Wyckoff positions the sites of a model settled on.

    A general-route site (occupancy correction) may have settled on a special position; so may a site of a
    Wyckoff run whose position has free coordinates (a 4b site on the mirror of Cm holds 2 atoms, not 4). A site
    within :data:`SETTLE_DISTANCE` of a more special position (closer than :data:`COINCIDENT` to its own image
    across it) is taken to sit on it.

    Parameters
    ----------
    scorer : ModelScorer
    genome : ndarray, shape (3 n_sites,)

    Returns
    -------
    labels : tuple of str
        Wyckoff label of each site's position.
    frac : ndarray, shape (n_sites, 3)
        Each site on that position.
    multiplicity : ndarray, shape (n_sites,), int
    occupancy : ndarray, shape (n_sites,)
        As the scorer counts the site: multiplicity x occupancy atoms, the scored multiplicity times the dynamical
        occupancy factor (1 without the correction) at most.
    """
    problem = scorer.problem
    frac = scorer.project(np.asarray(genome, dtype=float).reshape(1, problem.n_sites, 3))[0]
    correction = np.ones(len(frac)) if problem.overlap is None else problem.overlap.factors(frac[None])[0][0]
    snapped = [snap_to_wyckoff(problem.space_group, problem.cell, x, SETTLE_DISTANCE) for x in frac]
    labels = tuple(label for label, _, _ in snapped)
    multiplicity = np.array([m for _, m, _ in snapped], dtype=int)
    points = np.array([point for _, _, point in snapped])
    occupancy = np.minimum(_scored_multiplicity(scorer) * correction / multiplicity, 1.0)
    return labels, points - np.floor(points), multiplicity, occupancy


def _scored_multiplicity(scorer) -> np.ndarray:
    """Multiplicity each site was scored with (n_sites,): its Wyckoff position's, or the general one's."""
    site_map = getattr(scorer, "site_map", None)
    if site_map is None:
        return np.full(scorer.problem.n_sites, scorer.problem.space_group.n_ops)
    return np.asarray(site_map.multiplicity)


def model_counts(scorer, genome: np.ndarray) -> dict[str, float]:
    """Atoms per cell of each element in a model, its sites on the positions they settled on (:func:`settled_sites`)."""
    _, _, multiplicity, occupancy = settled_sites(scorer, genome)
    counts: dict[str, float] = {}
    for element, n in zip(scorer.problem.elements, multiplicity * occupancy, strict=True):
        counts[str(element)] = counts.get(str(element), 0.0) + float(n)
    return counts


def shortest_distance(scorer, genome: np.ndarray) -> float:
    """Shortest distance (Å) between two atoms of a model's cell (distinct images of its sites)."""
    return closest_pair(scorer, genome)[2]


def closest_pair(
    scorer, genome: np.ndarray, *, settle: bool = True, other_sites: bool = False, leave_out: np.ndarray | None = None
):
    """(site i, site j, distance Å) of the two closest atoms of a model's cell; (-1, -1, inf) when there is no pair.

    Parameters
    ----------
    scorer : ModelScorer
    genome : ndarray, shape (3 n_sites,)
    settle : bool
        Sites on the positions they settled on (:func:`settled_sites`, which needs the standard setting of the
        group); else as the scorer projects them.
    other_sites : bool
        Only pairs of atoms of two different sites (else two images of one site count as well, i == j).
    leave_out : ndarray, shape (n_sites,), bool, optional
        Sites whose atoms are in no pair.
    """
    from gasolve.ga.fourier_rebuild import closest_distances

    problem = scorer.problem
    if settle:
        _, frac, _, _ = settled_sites(scorer, genome)
    else:
        frac = scorer.project(np.asarray(genome, dtype=float).reshape(1, problem.n_sites, 3))[0]
    kept = np.ones(len(frac), dtype=bool) if leave_out is None else ~np.asarray(leave_out, dtype=bool)
    orbits = [problem.space_group.orbit(x) if keep else np.zeros((0, 3)) for x, keep in zip(frac, kept, strict=True)]
    atoms = np.concatenate(orbits)
    owner = np.concatenate([np.full(len(orbit), k, dtype=int) for k, orbit in enumerate(orbits)])
    best = (-1, -1, np.inf)
    for i in range(len(atoms) - 1):
        distances = closest_distances(problem.cell, atoms[i], atoms[i + 1 :])
        if other_sites:
            distances = np.where(owner[i + 1 :] == owner[i], np.inf, distances)
        k = int(np.argmin(distances))
        if distances[k] < best[2]:
            best = (int(owner[i]), int(owner[i + 1 + k]), float(distances[k]))
    return best


def holds_composition(scorer, genome: np.ndarray, counts: dict[str, int]) -> bool:
    """Whether a model has exactly ``counts`` atoms per cell of every element, none two closer than
    :data:`COINCIDENT` Å (two atoms that close are one atom counted twice, which no ordered structure has), and no
    two atoms other than H closer than real structures put their elements
    (:func:`gasolve.hypotheses.short_contacts.tightest_contact`: such a model, however well it fits, has an atom
    where none can be, and its completions are tried)."""
    from gasolve.crystal.xray_visibility import undetermined
    from gasolve.hypotheses.short_contacts import model_contact

    found = model_counts(scorer, genome)
    if set(found) != set(counts) or any(abs(found[e] - counts[e]) > 1e-6 for e in counts):
        return False
    if shortest_distance(scorer, genome) < COINCIDENT:
        return False
    return model_contact(scorer, genome, undetermined(scorer.problem.elements)) is None


def _kept_sites(scorer, genome, sites):
    """(labels, frac (n_sites, 3), weight (n_sites,)) of the model's sites on the positions they settled on
    (:func:`settled_sites`), weighted by settled / scored multiplicity (site_f carries the scored one); a site
    on top of an earlier one of its element (closer than MIN_DISTANCE) weighted 0 (dropped)."""
    problem = scorer.problem
    labels, frac, multiplicity, _ = settled_sites(scorer, genome)
    weight = multiplicity / _scored_multiplicity(scorer)
    group, cell = problem.space_group, problem.cell
    elements = [element for element, _ in sites]
    for i in range(len(frac)):
        earlier = [j for j in range(i) if elements[j] == elements[i] and weight[j] > 0]
        if earlier and closest_distance(cell, frac[i], images(group, frac[earlier]).reshape(-1, 3)) < MIN_DISTANCE:
            weight[i] = 0.0
    return list(labels), frac, weight


def completed_assignments(
    scorer, genome: np.ndarray, sites: tuple[tuple[str, str], ...], z: int, counts: dict[str, int] | None = None
) -> list[tuple]:
    """Wyckoff assignments completed from the difference maps of the heavier atoms of a model (module docstring).

    Parameters
    ----------
    scorer : ModelScorer
        Of the hypothesis the model belongs to (its sites in the order of ``sites``).
    genome : ndarray, shape (3 n_sites,)
        The model (the run's best).
    sites : tuple of (str, str)
        (element, Wyckoff label) of every site of the hypothesis.
    z : int
        Formula units per cell (the completion keeps it).
    counts : dict of str to int, optional
        Atoms per cell of each element (needed for a general-route run, whose sites do not fix them; default: those
        of ``sites``). The model's sites are read on the positions they settled on (:func:`settled_sites`), and
        the atoms the kept elements then lack are placed from the map too.

    Returns
    -------
    list of tuple of (str, str)
        One site list per split that placed every light atom (heavy sites first, as in ``sites``, then the light
        ones), without repeats; empty when the cell is too large for a map or nothing could be completed.
    """
    problem = scorer.problem
    cell, group = problem.cell, problem.space_group
    on_grid = map_grid(problem, SPACING)
    if on_grid is None:
        return []
    grid, shape = on_grid
    labels, frac, weight = _kept_sites(scorer, genome, sites)
    elements = np.array([str(element) for element, _ in sites])
    multiplicity = np.array([_multiplicity(label) for label in labels]) * (weight > 0)
    if counts is None:
        counts = {}
        for element, label in sites:
            counts[element] = counts.get(element, 0) + _multiplicity(label)
    power = atomic_power(problem)
    by_element = {e: float(power[elements == e].max()) for e in counts}
    order = sorted(counts, key=lambda e: -by_element[e])
    site_f = site_structure_factors(problem, frac) * weight[:, None]
    fit = scorer.profiles(frac[None])
    observed = observed_intensities(
        problem, scorer.intensities(frac[None])[0], fit.difference[0], float(fit.scale[0]), None
    )
    f_obs = np.sqrt(observed)
    found: list[tuple] = []
    for k in range(1, len(order) + 1):
        kept = np.isin(elements, order[:k]) & (weight > 0)
        have = {e: int(multiplicity[kept & (elements == e)].sum()) for e in order[:k]}
        if any(have[e] > counts[e] for e in have):
            continue
        needed = {e: counts[e] - have.get(e, 0) for e in order if counts[e] - have.get(e, 0) > 0}
        if not needed:
            continue
        peaks = peaks_of_map(problem, f_obs, site_f[kept].sum(axis=0), 1.0, grid, shape)
        light = _place_light(group, cell, frac[kept], peaks, needed)
        if light is None:
            continue
        heavy_sites = tuple((str(e), label) for e, label, keep in zip(elements, labels, kept, strict=True) if keep)
        completed = tuple(sorted(heavy_sites + light, key=lambda s: list(counts).index(s[0])))  # composition order
        if _key(completed) not in {_key(c) for c in found} and _key(completed) != _key(sites):
            found.append(completed)
    return found


def _key(sites) -> tuple:
    return tuple(sorted(sites))


def _place_light(group, cell, kept: np.ndarray, peaks: np.ndarray, needed: dict[str, int]):
    """(element, label) of light sites on the highest fitting peaks, or None when some atoms stay unplaced."""
    heavy = images(group, kept).reshape(-1, 3)
    left = dict(needed)  # heavier light elements first (dict order)
    placed = np.empty((0, 3))
    light: list[tuple[str, str]] = []
    budget = PEAKS_PER_ATOM * sum(needed.values()) + 20
    for peak in peaks[:budget]:
        if not any(left.values()):
            break
        if closest_distance(cell, peak, heavy) < MIN_KEPT_DISTANCE:
            continue
        label, multiplicity, point = snap_to_wyckoff(group, cell, peak)
        element = next((e for e, n in left.items() if n >= multiplicity), None)
        if element is None:
            continue
        own = own_images_if_free(group, cell, point, heavy, placed, MIN_DISTANCE, MIN_KEPT_DISTANCE)
        if own is None:
            continue
        left[element] -= multiplicity
        placed = np.concatenate([placed, own])
        light.append((element, label))
    if any(left.values()):
        return None
    table = {label: index for label, _, _, index in _position_maps(group.hall)}
    return tuple(sorted(light, key=lambda s: (list(needed).index(s[0]), table[s[1]])))


def completion_hypotheses(scorer, genome: np.ndarray, hypothesis, counts: dict[str, int] | None = None) -> tuple:
    """:func:`completed_assignments` of a hypothesis's best model, as new Wyckoff hypotheses of the same Z.

    Parameters
    ----------
    scorer : ModelScorer
        Of ``hypothesis``'s run.
    genome : ndarray, shape (3 n_sites,)
    hypothesis : Hypothesis
    counts : dict of str to int, optional
        Atoms per cell of each element; needed for a general-route hypothesis (nothing is returned without it),
        else those of its sites.

    Returns
    -------
    tuple of Hypothesis
        With the prior's log score and ``hypothesis.base``.
    """
    from gasolve.hypotheses.assignments import Assignment, wyckoff_slots
    from gasolve.hypotheses.hypothesis import Hypothesis
    from gasolve.hypotheses.prior import load_prior

    if counts is None:
        if hypothesis.route == "general":
            return ()
        counts = {}
        for element, label in hypothesis.sites:
            counts[element] = counts.get(element, 0) + _multiplicity(label)
    group = scorer.problem.space_group
    free = {slot.label: slot.n_free for slot in wyckoff_slots(group)}
    composition = {element: n // hypothesis.z for element, n in counts.items()}
    prior = load_prior()
    out = []
    for sites in completed_assignments(scorer, genome, hypothesis.sites, hypothesis.z, counts):
        n_free = sum(free[label] for _, label in sites)
        score = prior.log_score(group.number, composition, Assignment(hypothesis.z, sites, n_free))
        inside = hypothesis.in_window
        out.append(Hypothesis(hypothesis.z, "wyckoff", sites, n_free, score, base=hypothesis.base, in_window=inside))
    return tuple(out)


def hypothesis_key(hypothesis, base) -> tuple:
    """What two hypotheses share when they are the same structure (Z, space group, and the assignment up to the
    Euclidean normalizer of the group in its cell); ``base``: the composition spec when the hypothesis has none."""
    from gasolve.hypotheses.assignments import Assignment

    spec = hypothesis.base if hypothesis.base is not None else base
    cell = spec.cell
    canonical = _canonicaliser(spec.space_group.hall, (cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma))
    assignment = Assignment(hypothesis.z, hypothesis.sites, hypothesis.n_free)
    return (spec.space_group.hall, hypothesis.route, hypothesis.z, canonical(assignment))


@lru_cache(maxsize=16)
def _canonicaliser(hall: str, cell: tuple):
    from gasolve.crystal.cell import UnitCell
    from gasolve.hypotheses.assignments import normalizer_canonicaliser

    return normalizer_canonicaliser(SpaceGroup.from_hall(hall), UnitCell(*cell))
