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


def completed_assignments(scorer, genome: np.ndarray, sites: tuple[tuple[str, str], ...], z: int) -> list[tuple]:
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

    Returns
    -------
    list of tuple of (str, str)
        One site list per split that placed every light atom (heavy sites first, as in ``sites``, then the light
        ones), without repeats; empty when the cell is too large for a map or nothing could be completed.
    """
    problem = scorer.problem
    cell, group = problem.cell, problem.space_group
    n_sites = problem.n_sites
    on_grid = map_grid(problem, SPACING)
    if on_grid is None:
        return []
    grid, shape = on_grid
    frac = scorer.project(np.asarray(genome, dtype=float).reshape(1, n_sites, 3))[0]
    elements = np.array([str(element) for element, _ in sites])
    multiplicity = np.array([int("".join(c for c in label if c.isdigit())) for _, label in sites])
    counts = {str(e): int(multiplicity[elements == e].sum()) for e in dict.fromkeys(elements)}
    power = atomic_power(problem)
    by_element = {e: float(power[elements == e].max()) for e in counts}
    order = sorted(counts, key=lambda e: -by_element[e])
    site_f = site_structure_factors(problem, frac)
    fit = scorer.profiles(frac[None])
    observed = observed_intensities(
        problem, scorer.intensities(frac[None])[0], fit.difference[0], float(fit.scale[0]), None
    )
    f_obs = np.sqrt(observed)
    found: list[tuple] = []
    for k in range(1, len(order)):
        kept = np.isin(elements, order[:k])
        peaks = peaks_of_map(problem, f_obs, site_f[kept].sum(axis=0), 1.0, grid, shape)
        light = _place_light(group, cell, frac[kept], peaks, {e: counts[e] for e in order[k:]})
        if light is None:
            continue
        heavy_sites = tuple(s for s, keep in zip(sites, kept, strict=True) if keep)
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


def completion_hypotheses(scorer, genome: np.ndarray, hypothesis) -> tuple:
    """:func:`completed_assignments` of a Wyckoff hypothesis's best model, as new hypotheses of the same Z.

    Parameters
    ----------
    scorer : ModelScorer
        Of ``hypothesis``'s run.
    genome : ndarray, shape (3 n_sites,)
    hypothesis : Hypothesis
        Route "wyckoff" (a general-route run has no Wyckoff positions to complete: nothing is returned).

    Returns
    -------
    tuple of Hypothesis
        With the prior's log score and ``hypothesis.base``.
    """
    from gasolve.hypotheses.assignments import Assignment, wyckoff_slots
    from gasolve.hypotheses.hypothesis import Hypothesis
    from gasolve.hypotheses.prior import load_prior

    if hypothesis.route != "wyckoff":
        return ()
    group = scorer.problem.space_group
    free = {slot.label: slot.n_free for slot in wyckoff_slots(group)}
    totals: dict[str, int] = {}
    for element, label in hypothesis.sites:
        totals[element] = totals.get(element, 0) + int("".join(c for c in label if c.isdigit()))
    composition = {element: n // hypothesis.z for element, n in totals.items()}
    prior = load_prior()
    out = []
    for sites in completed_assignments(scorer, genome, hypothesis.sites, hypothesis.z):
        n_free = sum(free[label] for _, label in sites)
        score = prior.log_score(group.number, composition, Assignment(hypothesis.z, sites, n_free))
        out.append(Hypothesis(hypothesis.z, "wyckoff", sites, n_free, score, base=hypothesis.base))
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
