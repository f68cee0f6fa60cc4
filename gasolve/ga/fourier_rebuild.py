"""Heavy atoms first, light atoms from the difference Fourier map: the completion step of direct methods and
Patterson solutions, as a move of the search.

A stuck model most often has its heavy atoms right and some light ones wrong: measured on KBi2F7 (P1, 20 sites),
a run of 2·10⁶ evaluations ended with K and Bi within 0.02 Å and the F atoms scattered, at Rwp 0.0373 against the
truth's 0.0356. Bi carries 94 % of the scattering, so the phases of the Bi atoms alone are nearly right, and the
difference map (|F_obs| - |F_K|) exp(i φ_K) of the kept atoms K shows the missing atoms as its highest peaks
(Sim, Acta Cryst. 12 (1959) 813, on the phases of a partial structure). The relocation scan finds such atoms one at
a time with an Rwp evaluation per grid point and atom; the map finds all of them at once for the cost of one
Fourier synthesis.

:func:`rebuilt_models` returns, for each way of splitting the elements by scattering power (keep the heaviest
element, keep the two heaviest, ...), the model with every movable site of the lighter elements put on the highest
free peak of that split's difference map, and the model after :data:`CYCLES` - 1 more cycles of 2Fo-Fc maps; the
search then refines them like any offspring.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

from gasolve.ga.relocation import regular_grid
from gasolve.scoring.fourier import map_on_grid, observed_intensities, site_structure_factors
from gasolve.scoring.protocol import ModelScorer

#: Most grid points of a map; the grid coarsens to fit, as long as it stays finer than d_min / 2 (no aliasing).
MAX_GRID_POINTS = 2_000_000
#: Fourier cycles per split of the elements (:func:`rebuilt_models`).
CYCLES = 3


def map_cost(problem, spacing: float = 0.3) -> float:
    """One Fourier cycle charged in Rwp evaluations: the grid points over the sites, what the map would cost
    summed directly like Rwp (one orbit per grid point instead of per site), plus the partition's two. The FFT
    costs far less; the charge is an upper bound."""
    return float(len(regular_grid(problem.cell, spacing)[0])) / max(problem.n_sites, 1) + 2.0


def atomic_power(problem) -> np.ndarray:
    """Scattering power of one atom of each site (n_sites,): f0 at the lowest angle of the pattern, electrons.

    Per atom, not per site: ``problem.site_f`` carries the site's multiplicity, and a light element on a general
    position would otherwise outrank a heavier one on a special position."""
    from gasolve.diffraction.form_factors import form_factor

    stol2 = float(problem.reflections.stol2.min())
    return np.array([float(form_factor(element, np.array(stol2))) for element in problem.elements])


def map_grid(problem, spacing: float) -> tuple[np.ndarray, tuple[int, int, int]] | None:
    """The map grid at ``spacing`` Å, coarsened by 1.25 until it has at most :data:`MAX_GRID_POINTS` points:
    points (n, 3) and shape; None when it is then no finer than d_min / 2 (the map would alias)."""
    cell = problem.cell
    while np.prod(np.ceil(np.array([cell.a, cell.b, cell.c]) / spacing)) > MAX_GRID_POINTS:
        spacing *= 1.25
    if spacing >= 0.5 * float(problem.reflections.d_spacing.min()):
        return None
    return regular_grid(cell, spacing)


def peaks_of_map(problem, f_obs: np.ndarray, f_phased: np.ndarray, k: float, grid, shape) -> np.ndarray:
    """Grid points of the local maxima of the map (k |F_obs| - |F_phased|) exp(i φ_phased), highest first:
    k = 1 is the difference map of the atoms in ``f_phased``, k = 2 the 2Fo-Fc map of a whole model."""
    amplitude = np.abs(f_phased)
    phase = np.where(amplitude > 0, f_phased / np.where(amplitude > 0, amplitude, 1.0), 0.0)
    return grid[map_peaks(map_on_grid(problem, (k * f_obs - amplitude) * phase, shape), shape)]


def own_images_if_free(group, cell, point, heavy, occupied, min_distance: float, min_kept_distance: float):
    """The images (n_ops, 3) of an atom at ``point`` when it may go there: at least ``min_kept_distance`` Å from
    the kept atoms ``heavy`` and ``min_distance`` Å from the atoms placed (``occupied``) and from its own distinct
    images; None otherwise."""
    if closest_distance(cell, point, heavy) < min_kept_distance:
        return None
    if closest_distance(cell, point, occupied) < min_distance:
        return None
    own = images(group, point[None])[0]
    distinct = own[closest_distances(cell, point, own) > 1e-3]
    if closest_distance(cell, point, distinct) < min_distance:
        return None
    return own


def map_peaks(values: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Indices of the grid's local maxima above 0 (26 neighbours, periodic), highest first."""
    cube = values.reshape(shape)
    top = scipy.ndimage.maximum_filter(cube, size=3, mode="wrap")
    index = np.flatnonzero((cube == top).ravel() & (values > 0))
    return index[np.argsort(-values[index], kind="stable")]


def images(space_group, frac: np.ndarray) -> np.ndarray:
    """Every symmetry image (centring included) of points (n, 3), wrapped into [0, 1): shape (n, n_ops, 3)."""
    out = np.einsum("sab,nb->nsa", space_group.rotations, np.asarray(frac, float)) + space_group.translations[None]
    return out - np.floor(out)


def closest_distance(cell, point: np.ndarray, others: np.ndarray) -> float:
    """Shortest distance (Å) from ``point`` (3,) to ``others`` (m, 3), nearest lattice translation per axis."""
    return float(closest_distances(cell, point, others).min()) if len(others) else np.inf


def _place(site_map, site: int, peak: np.ndarray, space_group, cell, tolerance: float = 0.5):
    """Genome slots (3,) putting ``site`` on the image of ``peak`` nearest its Wyckoff position, or None when no
    image is within ``tolerance`` Å of the position."""
    if site_map is None:
        return peak
    matrix, offset = site_map.matrix[site], site_map.offset[site]
    best, best_distance = None, tolerance
    for image in images(space_group, peak[None])[0]:
        placed = matrix @ image + offset
        distance = closest_distance(cell, image, placed[None])
        if distance < best_distance:
            best, best_distance = image, distance
    return best


def rebuilt_models(
    scorer: ModelScorer,
    genome: np.ndarray,
    movable: np.ndarray,
    spacing: float = 0.3,
    min_distance: float = 1.1,
    min_kept_distance: float = 1.5,
    cycles: int = CYCLES,
) -> np.ndarray:
    """Models with the light atoms of ``genome`` moved onto the peaks of difference maps (module docstring).

    Parameters
    ----------
    scorer : ModelScorer
    genome : ndarray, shape (3 n_sites,)
    movable : ndarray, shape (k,), int
        Sites that may move (general positions and special ones with free coordinates, not the origin anchor).
    spacing : float
        Map grid spacing (Å); coarsened to at most :data:`MAX_GRID_POINTS` points (no map when that is no longer
        finer than d_min / 2).
    min_distance : float
        A peak closer than this (Å) to a light atom already placed, or to its own symmetry images, is not used.
    min_kept_distance : float
        A peak closer than this (Å) to a kept (heavier) atom is not used: the ripples of the heavy atoms' model
        errors lie there, and no bond to them is that short.
    cycles : int
        Fourier cycles: the first places the light atoms on the difference map of the heavier ones; each further
        one re-places them on the 2Fo-Fc map of the rebuilt model (the partition of overlapping reflections, and
        so |F_obs|, improves with the model). The models after the first and after the last cycle are returned:
        recycling brought every O of K4SnO4 from random places to within 0.45 Å, but on KBi2F7 (P1, c = 21 Å,
        heavy overlap) the first map's model refined better.

    Returns
    -------
    ndarray, shape (2 n_splits, 3 n_sites)
        Two models (first and last cycle) per split of the elements (at most n_elements - 1 splits), unprojected
        genomes; empty when the structure has one element, nothing to move, or a cell too large for the map.
    """
    problem = scorer.problem
    n_sites = problem.n_sites
    genome = np.asarray(genome, dtype=float)
    frac = scorer.project(genome.reshape(1, n_sites, 3))[0]
    on_grid = map_grid(problem, spacing)
    if on_grid is None:
        return np.empty((0, genome.size))
    grid, shape = on_grid
    elements = np.array(problem.elements)
    power = atomic_power(problem)
    by_element = {e: power[elements == e].max() for e in set(problem.elements)}
    order = sorted(by_element, key=lambda e: -by_element[e])
    movable_mask = np.zeros(n_sites, dtype=bool)
    movable_mask[np.asarray(movable, dtype=int)] = True
    peak_matrix = problem.peak_matrix.to_sparse().tocsr()  # once for every cycle's partition
    models = []
    for k in range(1, len(order)):
        light = np.isin(elements, order[k:]) & movable_mask
        if not light.any():
            continue
        new, model = genome.copy(), frac
        for cycle in range(cycles):
            site_f = site_structure_factors(problem, model)
            intensity = scorer.intensities(model[None])[0]
            fit = scorer.profiles(model[None])
            observed = observed_intensities(problem, intensity, fit.difference[0], float(fit.scale[0]), peak_matrix)
            f_obs = np.sqrt(observed)
            if cycle == 0:  # the heavier atoms' phases, the lighter atoms left out: a difference map
                peaks = peaks_of_map(problem, f_obs, site_f[~light].sum(axis=0), 1.0, grid, shape)
            else:  # the whole rebuilt model's phases: 2Fo - Fc, which shows what the model still lacks
                peaks = peaks_of_map(problem, f_obs, site_f.sum(axis=0), 2.0, grid, shape)
            new = _place_on_peaks(scorer, genome, model, light, peaks, power, min_distance, min_kept_distance)
            model = scorer.project(new.reshape(1, n_sites, 3))[0]
            if cycle in (0, cycles - 1):
                models.append(new)
    return np.array(models).reshape(-1, genome.size)


def _place_on_peaks(scorer, genome, model, light, peaks, power, min_distance, min_kept_distance) -> np.ndarray:
    """``genome`` with every ``light`` site, heaviest first, on the highest free peak its Wyckoff position admits."""
    problem = scorer.problem
    cell, group, site_map = problem.cell, problem.space_group, scorer.site_map
    heavy = images(group, model[~light]).reshape(-1, 3)
    occupied = np.empty((0, 3))
    new = np.array(genome, dtype=float)
    used = np.zeros(len(peaks), dtype=bool)
    for site in sorted(np.flatnonzero(light), key=lambda j: -power[j]):
        for p, peak in enumerate(peaks):
            if used[p]:
                continue
            slots = _place(site_map, site, peak, group, cell)
            if slots is None:
                continue
            position = slots if site_map is None else site_map.matrix[site] @ slots + site_map.offset[site]
            own = own_images_if_free(group, cell, position, heavy, occupied, min_distance, min_kept_distance)
            if own is None:
                continue
            used[p] = True
            new[3 * site : 3 * site + 3] = slots
            occupied = np.concatenate([occupied, own])
            break
    return new


def closest_distances(cell, point: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Distances (Å) from ``point`` (3,) to each of ``others`` (m, 3), nearest lattice translation per axis."""
    delta = others - point
    delta -= np.round(delta)
    return np.sqrt(np.einsum("ni,ij,nj->n", delta, cell.metric, delta))
