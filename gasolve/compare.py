"""Comparison of a trial structure with a reference: is a GA model a solution, and which of its atoms sit in place?

Two descriptions of one crystal structure in the same cell and space group differ by an element of the
Euclidean normaliser of the group (International Tables Vol. A, ch. 3.5): an origin shift, possibly the
enantiomorph, possibly a change of axes that keeps the group and the cell's metric, combined with the group's
own operators, lattice translations and a renumbering of equal atoms. The comparison searches that set:

1. Both structures are expanded to the full cell. The alignment group is the set of operators common to the
   model and the reference, so a P1 model is compared with a P-1 reference as two P1 structures.
2. The alignments allowed are the maps x -> P x + s of the Euclidean normaliser of the alignment group in the
   reference's cell (:mod:`gasolve.crystal.normalizer`), one per coset of the group: for P-1 the 8 inversion
   centres, for P6_3/m also the mirror x <-> y, for P1 in a cubic cell all 48 orientations. Along polar
   directions (the common null space of all I - R; the whole space for P1) the shift is continuous. An axis
   change P is tried when it maps the cell onto one that the comparison accepts as the same cell (1 % in a, b,
   c and 1 degree in the angles, :func:`alignment_metric_tolerance`), not only onto itself: in a pseudo-cubic
   P1 cell (a, b, c within 0.007 Å) a search finds the structure in any of its axis orders, and a powder
   pattern barely tells them apart. StructureMatcher maps lattices the same way (within its ltol and
   angle_tol). Distances are measured in the reference cell, so the small strain such a P leaves is counted.
3. For each alignment, atoms of equal elements are paired one to one by the Hungarian method (Kuhn 1955;
   ``scipy.optimize.linear_sum_assignment``) on squared minimum-image distances in the metric of the cell
   (ITC Vol. B, 1.1). A continuous shift starts from superposing each model atom of the rarest element on one
   reference atom of that element and is refined by least squares alternating with re-pairing (iterative
   closest point, Besl & McKay 1992). The alignment with the smallest sum of squared distances wins.

Minimum images are searched among the 27 cells around the rounded fractional difference, which is exact for
reduced cells.

:func:`labels_within` labels the atoms of many models at once (training data for the selection network): the
same alignments, but each model site is measured to the nearest reference atom of its element instead of a
one-to-one partner, in vectorised NumPy.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg import null_space
from scipy.optimize import linear_sum_assignment

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.normalizer import Normalizer, distinct_shifts, normalizer_of_operators
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import Site, Structure, element_symbol
from gasolve.errors import InputError

#: Lattice translations to the 27 cells around (and including) the home cell, shape (27, 3).
_OFFSETS = np.array(list(itertools.product((-1.0, 0.0, 1.0), repeat=3)))
_ZERO_OFFSET = 13  # index of (0, 0, 0) in _OFFSETS
#: Denominator of the grid searched for discrete origin shifts (covers 1/2, 1/3, 1/4, 1/6, 1/8).
_GRID = 24
_EPS = 1e-6
#: Continuous shifts: candidates refined in compare_structures, refinement rounds in the batched labelling.
_N_REFINE = 8
_BATCH_ROUNDS = 10


@dataclass(frozen=True)
class Alignments:
    """Origin choices that keep a space-group description: x -> (-x if inverted else x) + shift + free @ u.

    Attributes
    ----------
    shifts : ndarray, shape (n_alignments, 3)
        Discrete origin shifts (fractional), one per coset; the zero shift comes first.
    inverted : ndarray, shape (n_alignments,), bool
        Whether the alignment inverts the model before shifting it.
    free_directions : ndarray, shape (3, n_free)
        Orthonormal basis (fractional coordinates) of the continuous shifts allowed on top of ``shifts``:
        the polar directions. Shape (3, 0) when the origin is fixed, (3, 3) for P1.
    """

    shifts: np.ndarray
    inverted: np.ndarray
    free_directions: np.ndarray

    @property
    def n_free(self) -> int:
        return self.free_directions.shape[1]


@dataclass(frozen=True)
class Comparison:
    """The best alignment of a model with a reference and the distances it leaves.

    Attributes
    ----------
    site_distances : ndarray, shape (n_reference_sites,), Å
        For each independent reference site, the largest distance from one of its images in the cell to the
        model atom paired with it. When the model has the reference's symmetry every image gives the same
        distance; taking the largest keeps a lower-symmetry (e.g. P1) model from passing with atoms misplaced.
    atom_distances : ndarray, shape (n_reference_atoms,), Å
        Distance of every reference atom of the expanded cell (order of ``reference.expand()``) to its partner.
    assignment : ndarray, shape (n_reference_sites,), int
        Index of the model's independent site paired with each reference site (with the image that sets the
        site's distance).
    origin_shift : ndarray, shape (3,)
        Fractional shift s of the alignment, in [0, 1): an aligned model atom is at ``transformation @ x + s``.
    inverted : bool
        Whether the alignment changes the hand (det of ``transformation`` is -1); ``transformation`` is then
        -I wherever the inversion represents the alignment's coset.
    max_distance : float
        Largest site distance (Å).
    rms_distance : float
        Root mean square of the site distances (Å).
    transformation : ndarray, shape (3, 3)
        Linear part P of the alignment (fractional basis): the identity, -I, or an axis change that keeps the
        group and the metric (e.g. x <-> y in P6_3/m). Defaults to -I if ``inverted`` else the identity.
    """

    site_distances: np.ndarray
    atom_distances: np.ndarray
    assignment: np.ndarray
    origin_shift: np.ndarray
    inverted: bool
    max_distance: float
    rms_distance: float
    transformation: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.transformation is None:
            object.__setattr__(self, "transformation", -np.eye(3) if self.inverted else np.eye(3))
        for name in ("site_distances", "atom_distances", "assignment", "origin_shift", "transformation"):
            array = np.array(getattr(self, name))
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def solved(self, tolerance: float = 0.3) -> bool:
        """True if every reference site has a model atom within ``tolerance`` (Å)."""
        return bool(self.max_distance <= tolerance)

    def n_within(self, tolerance: float = 0.3) -> int:
        """Number of reference sites with a model atom within ``tolerance`` (Å)."""
        return int(np.count_nonzero(self.site_distances <= tolerance))


def compare_structures(
    model: Structure,
    reference: Structure,
    *,
    allow_inversion: bool = True,
    length_tolerance: float = 0.01,
    angle_tolerance: float = 1.0,
) -> Comparison:
    """Align ``model`` with ``reference`` and measure how far each reference site is from its model atom.

    Parameters
    ----------
    model, reference : Structure
        Same cell (within the tolerances) and same number of atoms of each element per cell; the space groups
        may differ (e.g. a P1 model against a P-1 reference).
    allow_inversion : bool
        Also try alignments that change the hand where the alignment group allows them (the enantiomer of a
        chiral model).
    length_tolerance : float
        Largest relative difference of a, b, c.
    angle_tolerance : float
        Largest difference of alpha, beta, gamma (degrees).

    Returns
    -------
    Comparison
        Distances are in Å in the reference cell's metric. Axis changes are tried where they keep the reference
        cell's metric within the cell tolerances (:func:`alignment_metric_tolerance`).

    Raises
    ------
    InputError
        If the cells or the compositions per cell differ.
    """
    check_same_cell(model.cell, reference.cell, length_tolerance, angle_tolerance)
    if reference.n_sites == 0:
        raise InputError(f"the reference {reference.name} has no atoms")
    ref_elements, ref_frac, _, _, ref_site = reference.expand()
    mod_elements, mod_frac, _, _, mod_site = model.expand()
    _check_composition(mod_elements, ref_elements, model, reference)
    metric = reference.cell.metric
    ref_elements, mod_elements = np.array(ref_elements), np.array(mod_elements)
    groups = [
        (np.flatnonzero(ref_elements == element), np.flatnonzero(mod_elements == element))
        for element in sorted(set(ref_elements.tolist()))
    ]
    tolerance = alignment_metric_tolerance(length_tolerance, angle_tolerance)
    normalizer = _normalizer(model.space_group, reference.space_group, metric, allow_inversion, tolerance)
    best = None
    for linear, shift in _candidates(normalizer, ref_frac, mod_frac, groups, metric):
        fit = _fit(ref_frac, mod_frac, groups, metric, linear, shift, normalizer.free_directions)
        if best is None or fit[0] < best[0] - 1e-9:
            best = fit
    _, linear, shift, partner, d2 = best
    atom_distances = np.sqrt(d2)
    site_distances = np.zeros(reference.n_sites)
    assignment = np.zeros(reference.n_sites, dtype=int)
    for site in range(reference.n_sites):
        images = np.flatnonzero(ref_site == site)
        worst = images[np.argmax(atom_distances[images])]
        site_distances[site] = atom_distances[worst]
        assignment[site] = mod_site[partner[worst]]
    return Comparison(
        site_distances=site_distances,
        atom_distances=atom_distances,
        assignment=assignment,
        origin_shift=np.mod(shift, 1.0) % 1.0,  # the second modulo turns 1.0 from mod(-1e-17) into 0.0
        inverted=bool(np.linalg.det(linear) < 0),
        max_distance=float(site_distances.max()),
        rms_distance=float(np.sqrt(np.mean(site_distances**2))),
        transformation=linear,
    )


def aligned_model(model: Structure, comparison: Comparison) -> Structure:
    """The model moved by the alignment of ``comparison``.

    Returns
    -------
    Structure
        In the model's space group when the alignment maps its operators onto themselves, otherwise the whole
        cell in P1 (labels ``<site label>_<image>``).
    """
    linear, shift = comparison.transformation, comparison.origin_shift
    group = model.space_group
    if _normalises(group.rotations, group.translations, linear, shift):
        return model.with_frac(np.mod(model.frac @ linear.T + shift, 1.0))
    elements, frac, occupancy, b_iso, site_index = model.expand()
    image = Counter()
    sites = []
    for element, x, occ, b, index in zip(elements, frac, occupancy, b_iso, site_index, strict=True):
        image[index] += 1
        label = f"{model.sites[index].label}_{image[index]}"
        sites.append(Site(label, element, tuple(np.mod(linear @ x + shift, 1.0)), float(occ), float(b)))
    return replace(model, space_group=SpaceGroup.from_symbol("P1"), sites=tuple(sites), _cache={})


def check_same_cell(
    model_cell: UnitCell, reference_cell: UnitCell, length_tolerance: float = 0.01, angle_tolerance: float = 1.0
) -> None:
    """Raise :class:`InputError` unless the cells agree within the tolerances (relative lengths, degrees)."""
    lengths = np.array(model_cell.parameters[:3]) / np.array(reference_cell.parameters[:3]) - 1.0
    angles = np.array(model_cell.parameters[3:]) - np.array(reference_cell.parameters[3:])
    if np.any(np.abs(lengths) > length_tolerance) or np.any(np.abs(angles) > angle_tolerance):
        text = ", ".join(f"{x:g}" for x in model_cell.parameters)
        ref_text = ", ".join(f"{x:g}" for x in reference_cell.parameters)
        raise InputError(
            f"the model cell ({text}) differs from the reference cell ({ref_text}); structures can only be "
            f"compared in the same cell (within {100 * length_tolerance:g} % in a, b, c and {angle_tolerance:g}° "
            "in alpha, beta, gamma)"
        )


def check_reference_elements(
    model: Structure, reference: Structure, length_tolerance: float = 0.01, angle_tolerance: float = 1.0
) -> None:
    """Raise :class:`InputError` unless the cells agree and both structures hold the same elements.

    The check that remains before a search whose atoms per cell depend on where it puts them (the dynamical
    occupancy correction): :func:`compare_structures` would also require equal numbers of atoms per cell.
    """
    check_same_cell(model.cell, reference.cell, length_tolerance, angle_tolerance)
    ours, theirs = set(model.elements), set(reference.elements)
    if ours != theirs:
        raise InputError(
            f"the model {model.name} has the elements {' '.join(sorted(ours))} but the reference {reference.name} "
            f"has {' '.join(sorted(theirs))}"
        )


def common_operators(group_a: SpaceGroup, group_b: SpaceGroup) -> tuple[np.ndarray, np.ndarray]:
    """Operators that two space-group descriptions share (modulo lattice translations).

    Returns
    -------
    rotations : ndarray, shape (n_common, 3, 3), int
    translations : ndarray, shape (n_common, 3), in [0, 1)
    """
    keep = _common_indices(group_a, group_b)
    return group_a.rotations[keep], group_a.translations[keep]


@functools.lru_cache(maxsize=64)
def _common_indices(group_a: SpaceGroup, group_b: SpaceGroup) -> list[int]:
    keys_b = {_op_key(r, t) for r, t in zip(group_b.rotations, group_b.translations, strict=True)}
    return [
        i
        for i, (r, t) in enumerate(zip(group_a.rotations, group_a.translations, strict=True))
        if _op_key(r, t) in keys_b
    ]


def alignment_metric_tolerance(length_tolerance: float = 0.01, angle_tolerance: float = 1.0) -> float:
    """Metric tolerance (see :data:`gasolve.crystal.normalizer.METRIC_TOLERANCE`) of the axis changes a comparison
    tries: those that map the cell onto a cell :func:`check_same_cell` would accept as the same one.

    A relative change ``length_tolerance`` of a cell edge changes its diagonal entry of D^-1 G D^-1 by about
    twice that, and an angle change of ``angle_tolerance`` degrees the cosine off the diagonal by at most that
    angle in radians: 0.02 for the defaults (1 %, 1 degree), ten times the isometry tolerance.
    """
    return float(max(2.0 * length_tolerance, math.radians(angle_tolerance)))


def alignment_normalizer(
    model_group: SpaceGroup, reference_group: SpaceGroup, cell: UnitCell, allow_inversion: bool = True
) -> Normalizer:
    """The alignments that :func:`compare_structures` searches: the Euclidean normaliser of the operators common
    to both groups, in ``cell``'s metric (one operation per coset of the common group), with the axis changes
    that keep the metric within :func:`alignment_metric_tolerance`."""
    return _normalizer(model_group, reference_group, cell.metric, allow_inversion, alignment_metric_tolerance())


def _normalizer(
    model_group: SpaceGroup, reference_group: SpaceGroup, metric: np.ndarray, allow_inversion: bool, tolerance: float
):
    metric_key = tuple(np.round(np.asarray(metric, dtype=float).ravel(), 6).tolist())
    return _normalizer_cached(model_group, reference_group, metric_key, bool(allow_inversion), float(tolerance))


@functools.lru_cache(maxsize=64)
def _normalizer_cached(model_group, reference_group, metric_key, allow_inversion, tolerance) -> Normalizer:
    rotations, translations = common_operators(model_group, reference_group)
    metric = np.array(metric_key).reshape(3, 3)
    return normalizer_of_operators(
        rotations, translations, metric, allow_improper=allow_inversion, metric_tolerance=tolerance
    )


def origin_alignments(space_group: SpaceGroup, allow_inversion: bool = True) -> Alignments:
    """Origin shifts (and inversions) that map the operators of ``space_group`` onto themselves.

    These are the translation and inversion parts of the Euclidean normaliser (ITA Vol. A, ch. 3.5): for P-1
    the 8 inversion centres, for P1 a continuous shift plus inversion, for P2_1 4 shifts, a free shift along b
    and inversion. Inversion is listed only for non-centrosymmetric groups (otherwise it is already an
    operator combined with a shift). Axis changes need the cell: :func:`alignment_normalizer` has them and is
    what the comparisons search.
    """
    return _alignments(space_group.rotations, space_group.translations, allow_inversion)


def labels_within(
    population: np.ndarray,
    reference: Structure,
    space_group: SpaceGroup,
    cell: UnitCell,
    elements: list[str],
    radius: float = 0.3,
    *,
    allow_inversion: bool = True,
) -> np.ndarray:
    """Which atoms of many models lie within ``radius`` of a reference atom of their element.

    Returns ``site_distances_batch(...) <= radius``; see :func:`site_distances_batch`.

    Returns
    -------
    ndarray, shape (n_models, n_sites), bool
    """
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number (Å), got {radius}")
    distances = site_distances_batch(
        population, reference, space_group, cell, elements, allow_inversion=allow_inversion
    )
    return distances <= radius


def site_distances_batch(
    population: np.ndarray,
    reference: Structure,
    space_group: SpaceGroup,
    cell: UnitCell,
    elements: list[str],
    *,
    allow_inversion: bool = True,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Distance of each independent site of many models to the nearest reference atom of its element.

    Each model gets its own alignment from the same set as :func:`compare_structures`: the one with the smallest
    sum of squared site distances (with free directions, starts superposing each atom of the rarest element on a
    reference atom, refined by alternating nearest-atom search and least-squares shift). Unlike
    :func:`compare_structures`, atoms are not paired one to one: a site is in place when any reference atom of
    its element is close, which is what a per-atom label needs, and vectorised nearest-image searches replace
    the Hungarian method. 1000 K4SnO4 models take about 10 ms in P-1 and 40-80 ms in P1 (18 sites).

    Parameters
    ----------
    population : ndarray, shape (n_models, n_sites, 3)
        Fractional coordinates of the models' independent sites.
    reference : Structure
    space_group : SpaceGroup
        Space group of the models.
    cell : UnitCell
        Cell of the models; must match the reference's (1 % in lengths, 1° in angles).
    elements : list of str, length n_sites
    allow_inversion : bool
    chunk_size : int
        Models processed at once (memory grows linearly with it).

    Returns
    -------
    ndarray, shape (n_models, n_sites), Å
        Computed in single precision (about 1e-6 Å). For a site, the largest over its images when the
        alignment does not keep the models' space group, which happens only when the reference has fewer
        operators than the models.

    Raises
    ------
    ValueError
        If ``population`` has the wrong shape or holds non-finite numbers.
    InputError
        If the cells differ or an element of the models is absent from the reference (the number of atoms per
        cell is not checked, so models with atoms on special positions are accepted).
    """
    population = np.asarray(population, dtype=float)
    if population.ndim != 3 or population.shape[2] != 3 or population.shape[1] != len(elements):
        raise ValueError(f"population must have shape (n_models, n_sites={len(elements)}, 3), got {population.shape}")
    if not np.all(np.isfinite(population)):
        raise ValueError("population holds NaN or infinite coordinates")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    check_same_cell(cell, reference.cell)
    elements = [element_symbol(e) for e in elements]
    ref_elements, ref_frac, _, _, _ = reference.expand()
    missing = sorted(set(elements) - set(ref_elements))
    if missing:
        raise InputError(f"the reference {reference.name} has no {', '.join(missing)} atoms")
    rotations, _ = common_operators(space_group, reference.space_group)
    normalizer = _normalizer(
        space_group, reference.space_group, reference.cell.metric, allow_inversion, alignment_metric_tolerance()
    )
    if len(rotations) == space_group.n_ops:
        image_rot, image_tran = np.eye(3)[None], np.zeros((1, 3))
    else:
        image_rot, image_tran = space_group.rotations.astype(float), space_group.translations
    problem = _BatchProblem.build(
        reference, ref_elements, ref_frac, elements, normalizer, image_rot, image_tran, space_group
    )
    out = np.empty(population.shape[:2])
    for start in range(0, len(population), chunk_size):
        stop = min(start + chunk_size, len(population))
        out[start:stop] = problem.distances(population[start:stop])
    return out


# --- alignment group ------------------------------------------------------------------------------------------


def _op_key(rotation: np.ndarray, translation: np.ndarray) -> tuple:
    t = np.round(np.mod(translation, 1.0) * 1e6).astype(np.int64) % 1_000_000
    return (*np.asarray(rotation, dtype=np.int64).ravel().tolist(), *t.tolist())


def _alignments(rotations: np.ndarray, translations: np.ndarray, allow_inversion: bool) -> Alignments:
    key = tuple(sorted(_op_key(r, t) for r, t in zip(rotations, translations, strict=True)))
    return _alignments_cached(key, bool(allow_inversion))


@functools.lru_cache(maxsize=64)
def _alignments_cached(key: tuple, allow_inversion: bool) -> Alignments:
    ops = np.array(key, dtype=float)
    rotations = ops[:, :9].reshape(-1, 3, 3)
    translations = ops[:, 9:] / 1e6
    identity = np.all(rotations == np.eye(3), axis=(1, 2))
    centring = translations[identity]
    _, first = np.unique(rotations.reshape(-1, 9), axis=0, return_index=True)
    reduced = np.eye(3) - rotations[first]
    coset_translations = translations[first]
    free = null_space(reduced.reshape(-1, 3), rcond=1e-8)
    grid = np.array(list(itertools.product(range(_GRID), repeat=3)), dtype=float) / _GRID
    centrosymmetric = bool(np.any(np.all(rotations == -np.eye(3), axis=(1, 2))))
    shifts, inverted = [], []
    for invert in (False, True) if allow_inversion and not centrosymmetric else (False,):
        # (I,s) and (-I,s) conjugate (R,t) to (R, t + (I-R)s) and (R, (I-R)s - t); that must be (R, t + c).
        keep = np.ones(len(grid), dtype=bool)
        for reduced_r, t in zip(reduced, coset_translations, strict=True):
            residual = grid @ reduced_r.T - (2.0 * t if invert else 0.0)
            diff = residual[:, None, :] - centring[None, :, :]
            keep &= np.any(np.all(np.abs(diff - np.round(diff)) < _EPS, axis=2), axis=1)
        for shift in distinct_shifts(grid[keep], centring, free):
            shifts.append(shift)
            inverted.append(invert)
    result = Alignments(
        shifts=np.array(shifts).reshape(-1, 3), inverted=np.array(inverted, dtype=bool), free_directions=free
    )
    for array in (result.shifts, result.inverted, result.free_directions):
        array.setflags(write=False)
    return result


def _normalises(rotations: np.ndarray, translations: np.ndarray, linear: np.ndarray, shift: np.ndarray) -> bool:
    """True if x -> linear @ x + shift maps the operator set onto itself."""
    keys = {_op_key(r, t) for r, t in zip(rotations, translations, strict=True)}
    inverse = np.linalg.inv(linear)
    for r, t in zip(rotations, translations, strict=True):
        image = linear @ r @ inverse
        if np.any(np.abs(image - np.round(image)) > _EPS):
            return False
        moved = (np.eye(3) - image) @ shift + linear @ t
        if _op_key(np.round(image), moved) not in keys:
            return False
    return True


# --- one-to-one comparison ------------------------------------------------------------------------------------


def _check_composition(mod_elements: list[str], ref_elements: list[str], model: Structure, reference: Structure):
    mod_count, ref_count = Counter(mod_elements), Counter(ref_elements)
    if mod_count != ref_count:

        def text(count: Counter) -> str:
            return " ".join(f"{element}{count[element]}" for element in sorted(count))

        raise InputError(
            f"the model {model.name} has {text(mod_count)} per cell but the reference {reference.name} has "
            f"{text(ref_count)}; only structures with the same atoms per cell can be compared"
        )


def _min_image(delta: np.ndarray, metric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shortest lattice-equivalent vectors of fractional differences ``delta`` (..., 3) and their squared lengths."""
    delta = delta - np.round(delta)
    trial = delta[..., None, :] + _OFFSETS
    cart = trial @ np.linalg.cholesky(metric)  # |x|^2 = x^T G x = |L^T x|^2 with G = L L^T
    d2 = np.einsum("...i,...i->...", cart, cart).reshape(-1, len(_OFFSETS))
    best = np.argmin(d2, axis=-1)
    rows = np.arange(len(d2))
    vector = trial.reshape(-1, len(_OFFSETS), 3)[rows, best].reshape(delta.shape)
    return vector, d2[rows, best].reshape(delta.shape[:-1])


def _pair(ref_frac, aligned, groups, metric):
    """Hungarian pairing per element: partner model atom, displacement model - reference, squared distance."""
    partner = np.zeros(len(ref_frac), dtype=int)
    displacement = np.zeros((len(ref_frac), 3))
    d2 = np.zeros(len(ref_frac))
    # One minimum-image search over the blocks of all elements (the per-call overhead dominates small cells).
    blocks = [
        (aligned[mod_index][None, :, :] - ref_frac[ref_index][:, None, :]).reshape(-1, 3)
        for ref_index, mod_index in groups
    ]
    all_vectors, all_lengths = _min_image(np.concatenate(blocks), metric)
    start = 0
    for ref_index, mod_index in groups:
        size = len(ref_index) * len(mod_index)
        vectors = all_vectors[start : start + size].reshape(len(ref_index), len(mod_index), 3)
        lengths = all_lengths[start : start + size].reshape(len(ref_index), len(mod_index))
        start += size
        rows, cols = linear_sum_assignment(lengths)
        partner[ref_index[rows]] = mod_index[cols]
        displacement[ref_index[rows]] = vectors[rows, cols]
        d2[ref_index[rows]] = lengths[rows, cols]
    return partner, displacement, d2


def _along_free(vectors: np.ndarray, metric: np.ndarray, free: np.ndarray, projector: np.ndarray) -> np.ndarray:
    """Component along the free directions of the lattice-equivalent of each vector that lies closest to them.

    A superposing shift runs along the free (polar) directions, so the lattice translation to add to a
    difference is the one that leaves the least of it across them: the minimum image, unless a neighbouring
    translation does better (an oblique polar axis, such as [111] of R3:R, where a cell edge has a third of a
    period along it).

    Parameters
    ----------
    vectors : ndarray, shape (..., 3)
        Minimum-image fractional differences.
    metric : ndarray, shape (3, 3)
    free : ndarray, shape (3, n_free)
    projector : ndarray, shape (n_free, 3)
        Least-squares coefficients along ``free`` of a fractional vector.

    Returns
    -------
    ndarray, shape (..., 3)
        Fractional, along the free directions.
    """
    trial = vectors[..., None, :] + _OFFSETS  # (..., 27, 3)
    along = trial @ projector.T  # (..., 27, n_free)
    across = trial - along @ free.T
    across2 = np.einsum("...ki,ij,...kj->...k", across, metric, across)
    better = across2.min(axis=-1) < across2[..., _ZERO_OFFSET] - _EPS
    choice = np.where(better, across2.argmin(axis=-1), _ZERO_OFFSET)
    chosen = np.take_along_axis(along, choice[..., None, None], axis=-2)[..., 0, :]
    return chosen @ free.T


def _candidates(normalizer: Normalizer, ref_frac, mod_frac, groups, metric):
    """Starting alignments: every discrete one; with free directions, each superposing a rarest-element pair."""
    if normalizer.n_free == 0:
        return list(zip(normalizer.linear, normalizer.shifts, strict=True))
    free = normalizer.free_directions
    projector = np.linalg.solve(free.T @ metric @ free, free.T @ metric)
    ref_index, mod_index = min(groups, key=lambda group: len(group[0]))
    anchor = ref_frac[ref_index[0]]
    spacing = float((1.0 / np.sqrt(np.diag(np.linalg.inv(metric)))).min())
    starts = []
    for linear, shift in zip(normalizer.linear, normalizer.shifts, strict=True):
        moved = mod_frac @ linear.T
        vectors, _ = _min_image(moved[mod_index] + shift - anchor, metric)
        shifts = shift - _along_free(vectors, metric, free, projector)  # (n_starts, 3)
        # Score every start at once: squared distance of each model atom to its nearest reference atom.
        score = np.zeros(len(shifts))
        for r_index, m_index in groups:
            points = (moved[m_index][None, :, :] + shifts[:, None, :]).reshape(-1, 3)
            d2, _ = _nearest(points, ref_frac[r_index], metric, spacing, want_vector=False)
            score += d2.reshape(len(shifts), -1).sum(axis=1)
        starts.extend((float(value), linear, start) for value, start in zip(score, shifts, strict=True))
    # Refine the most promising starts, in enumeration order so that ties keep the plain, unshifted choice.
    keep = sorted(np.argsort([score for score, _, _ in starts], kind="stable")[:_N_REFINE])
    return [starts[i][1:] for i in keep]


def _fit(ref_frac, mod_frac, groups, metric, linear, shift, free, max_rounds: int = 50):
    """Pair atoms for one alignment; with free directions, alternate least-squares shift and re-pairing."""
    moved = mod_frac @ np.asarray(linear).T
    shift = np.array(shift, dtype=float)
    partner, displacement, d2 = _pair(ref_frac, moved + shift, groups, metric)
    if free.shape[1]:
        normal = free.T @ metric @ free
        for _ in range(max_rounds):
            step = -free @ np.linalg.solve(normal, free.T @ metric @ displacement.mean(axis=0))
            if step @ metric @ step < 1e-24:
                break
            shift = shift + step
            partner, displacement, d2 = _pair(ref_frac, moved + shift, groups, metric)
    return float(d2.sum()), linear, shift, partner, d2


# --- batched per-site distances -------------------------------------------------------------------------------


def _nearest(points: np.ndarray, atoms: np.ndarray, metric: np.ndarray, spacing: float, want_vector: bool):
    """Nearest image of any of ``atoms`` to each of ``points`` (both fractional).

    Let v be a rounded fractional difference (components in [-1/2, 1/2]) and B the shortest rounded distance of
    a point. A shorter image w = v - n has |w_i| <= |w| |a*_i| < B / ``spacing`` (the smallest interplanar
    spacing of the cell faces). So rounding is exact when B < spacing / 2, the 8 images with n_i in
    {0, sign v_i} suffice when B < spacing, and the 27 neighbouring cells are searched otherwise.

    Returns
    -------
    d2 : ndarray, shape (n_points,), Å²
    vector : ndarray, shape (n_points, 3), fractional, or None
        Shortest vector from the point to its nearest atom, when ``want_vector``.
    """
    # One (n_points, n_atoms) array per axis, single precision (about 1e-6 Å) and the quadratic form of the
    # metric written out: memory-bound, so several times faster than (n_points, n_atoms, 3) arrays in double.
    g = metric.astype(np.float32)

    def squared(dx, dy, dz):
        d2 = dx * (g[0, 0] * dx + 2.0 * g[0, 1] * dy + 2.0 * g[0, 2] * dz)
        d2 += dy * (g[1, 1] * dy + 2.0 * g[1, 2] * dz)
        d2 += g[2, 2] * dz * dz
        return d2

    delta = [atoms[None, :, axis].astype(np.float32) - points[:, None, axis].astype(np.float32) for axis in range(3)]
    for d in delta:
        np.subtract(d, np.rint(d), out=d)
    d2 = squared(*delta)
    index = np.argmin(d2, axis=1)
    rows = np.arange(len(points))
    best = d2[rows, index].astype(float)
    vector = np.stack([d[rows, index] for d in delta], axis=1).astype(float) if want_vector else None
    middle = np.flatnonzero((best >= (0.5 * spacing) ** 2) & (best < spacing**2))
    if len(middle):
        sub = [d[middle] for d in delta]
        signs = [np.sign(d) for d in sub]
        corners = np.stack(
            [
                squared(*(d - c * s for d, c, s in zip(sub, corner, signs, strict=True)))
                for corner in itertools.product((0.0, 1.0), repeat=3)
            ],
            axis=1,
        ).reshape(len(middle), -1)
        flat = np.argmin(corners, axis=1)
        best[middle] = corners[np.arange(len(middle)), flat]
        if want_vector:
            corner = np.array(list(itertools.product((0.0, 1.0), repeat=3)))[flat // len(atoms)]
            atom = flat % len(atoms)
            vector[middle] = np.stack(
                [
                    d[np.arange(len(middle)), atom] - corner[:, axis] * s[np.arange(len(middle)), atom]
                    for axis, (d, s) in enumerate(zip(sub, signs, strict=True))
                ],
                axis=1,
            )
    far = np.flatnonzero(best >= spacing**2)
    if len(far):
        far_vector, far_d2 = _min_image(atoms[None, :, :] - points[far][:, None, :], metric)
        index = np.argmin(far_d2, axis=1)
        best[far] = far_d2[np.arange(len(far)), index]
        if want_vector:
            vector[far] = far_vector[np.arange(len(far)), index]
    return np.maximum(best, 0.0), vector


@dataclass(frozen=True)
class _BatchProblem:
    """Everything fixed by the reference, the models' elements and the alignment set, built once."""

    metric: np.ndarray  # (3, 3) Å²
    spacing: float  # Å, smallest interplanar spacing of the cell faces, see _nearest
    site_groups: list  # per element: (site indices, reference atoms of the element (n_atoms, 3) fractional)
    linear: np.ndarray  # (n_alignments, 3, 3)
    shifts: np.ndarray  # (n_alignments, 3)
    free: np.ndarray  # (3, n_free)
    image_rot: np.ndarray  # (n_images, 3, 3)
    image_tran: np.ndarray  # (n_images, 3)
    orbit_rot: np.ndarray  # (n_ops, 3, 3) the models' operators
    orbit_tran: np.ndarray  # (n_ops, 3)
    rare_sites: np.ndarray  # site indices of the rarest element
    anchor: np.ndarray  # (3,) a reference atom of that element

    @classmethod
    def build(cls, reference, ref_elements, ref_frac, elements, normalizer, image_rot, image_tran, space_group):
        ref_elements = np.array(ref_elements)
        elements = np.array(elements)
        names = sorted(set(elements.tolist()))
        site_groups = [(np.flatnonzero(elements == e), ref_frac[ref_elements == e]) for e in names]
        rare = min(names, key=lambda e: np.count_nonzero(ref_elements == e))
        spacing = 1.0 / np.sqrt(np.diag(reference.cell.reciprocal_metric))
        return cls(
            metric=reference.cell.metric,
            spacing=float(spacing.min()),
            site_groups=site_groups,
            linear=np.asarray(normalizer.linear),
            shifts=np.asarray(normalizer.shifts),
            free=np.asarray(normalizer.free_directions),
            image_rot=image_rot,
            image_tran=image_tran,
            orbit_rot=space_group.rotations.astype(float),
            orbit_tran=np.asarray(space_group.translations, dtype=float),
            rare_sites=np.flatnonzero(elements == rare),
            anchor=ref_frac[np.flatnonzero(ref_elements == rare)[0]],
        )

    def nearest(self, images: np.ndarray, linear: np.ndarray, shifts: np.ndarray, want_vector: bool = False):
        """Squared distance and fractional vector to the nearest reference atom of the same element.

        images (n, n_sites, n_images, 3), linear (n_cand, 3, 3), shifts (n, n_cand, 3) ->
        d2 (n, n_cand, n_sites, n_images), Å², and vector (n, n_cand, n_sites, n_images, 3) or None.
        """
        aligned = np.empty((len(images), len(linear), *images.shape[1:]))  # (m, c, s, n, 3), contiguous
        for c, matrix in enumerate(linear):
            np.add(images @ matrix.T, shifts[:, c, None, None, :], out=aligned[:, c])
        d2 = np.empty(aligned.shape[:-1])
        vector = np.empty(aligned.shape) if want_vector else None
        for sites, atoms in self.site_groups:
            points = aligned[:, :, sites]
            group_d2, group_vector = _nearest(points.reshape(-1, 3), atoms, self.metric, self.spacing, want_vector)
            d2[:, :, sites] = group_d2.reshape(points.shape[:-1])
            if want_vector:
                vector[:, :, sites] = group_vector.reshape(points.shape)
        return d2, vector

    def distances(self, population: np.ndarray) -> np.ndarray:
        n_models = len(population)
        images = np.einsum("kij,msj->mski", self.image_rot, population) + self.image_tran
        linear, shifts = self.linear, np.broadcast_to(self.shifts, (n_models, *self.shifts.shape))
        if self.free.shape[1]:
            # Superpose every model atom of the rarest element on one reference atom of that element, then
            # alternate nearest-atom search and least-squares shift along the free directions.
            # Every image of the rare sites under the models' own operators: the superposing shift along an
            # oblique polar axis may reach the anchor only from another image of the site (R3:R).
            rare = np.einsum("kij,msj->mski", self.orbit_rot, population[:, self.rare_sites]) + self.orbit_tran
            rare = rare.reshape(n_models, -1, 3)
            moved = np.einsum("cij,maj->mcai", linear, rare) + self.shifts[None, :, None, :] - self.anchor
            vectors, _ = _min_image(moved, self.metric)
            projector = np.linalg.solve(self.free.T @ self.metric @ self.free, self.free.T @ self.metric)
            shifts = self.shifts[None, :, None, :] - _along_free(vectors, self.metric, self.free, projector)
            linear = np.repeat(linear, rare.shape[1], axis=0)
            shifts = shifts.reshape(n_models, len(linear), 3).copy()
            active = np.arange(n_models)
            for _ in range(_BATCH_ROUNDS):
                _, vector = self.nearest(images[active], linear, shifts[active], want_vector=True)
                step = (vector.mean(axis=(2, 3)) @ projector.T) @ self.free.T
                shifts[active] += step
                moved = np.einsum("mci,ij,mcj->mc", step, self.metric, step).max(axis=1) > 1e-12
                active = active[moved]
                if not len(active):
                    break
        d2, _ = self.nearest(images, linear, shifts)
        site_d2 = d2.max(axis=3)
        best = np.argmin(site_d2.sum(axis=2), axis=1)
        return np.sqrt(site_d2[np.arange(n_models), best])
