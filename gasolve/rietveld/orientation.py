"""March-Dollase preferred orientation (W. A. Dollase, J. Appl. Cryst. 19 (1986) 267), summed over the
symmetry-equivalent reflections of each multiplicity as GSAS does.

For a reflection h, with α_j the angle between its j-th equivalent and the orientation direction p (a reciprocal
lattice vector [h k l], i.e. the normal of the planes (hkl)),

    P(h) = (1/m) Σ_j (r² cos²α_j + sin²α_j / r)^(-3/2)

r < 1: platelets with p along the specimen normal (reflections along p enhanced), r > 1: needles, r = 1: random.
The mean over the equivalents equals the mean over the Laue group's rotations (each equivalent appears equally
often in the orbit), so the sum runs over the point-group rotations h R; cos² is the same for h and -h.
"""

from __future__ import annotations

import numpy as np

from gasolve.crystal.spacegroup import SpaceGroup

#: The low-index directions the refinement tries when asked to choose ("auto").
LOW_INDEX_DIRECTIONS = ((0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 1))


def point_rotations(space_group: SpaceGroup) -> np.ndarray:
    """The distinct rotation parts of the group's operators, shape (n_rot, 3, 3), int."""
    return np.unique(np.asarray(space_group.primitive_rotations), axis=0)


def equivalent_reflections(space_group: SpaceGroup, hkl: np.ndarray) -> np.ndarray:
    """h R for every rotation R of the point group: shape (n_rot, n_refl, 3), float (row vectors h R)."""
    return np.einsum("ki,sij->skj", np.asarray(hkl, dtype=float), point_rotations(space_group).astype(float))


def cos2_to_direction(equivalents: np.ndarray, direction, reciprocal_metric: np.ndarray) -> np.ndarray:
    """cos²α between each equivalent (n_rot, n_refl, 3) and ``direction`` (3,), with the reciprocal metric G*:
    cos α = h G* p / (|h| |p|). Shape (n_rot, n_refl)."""
    p = np.asarray(direction, dtype=float)
    gp = reciprocal_metric @ p
    dot = equivalents @ gp
    hh = np.einsum("ski,ij,skj->sk", equivalents, reciprocal_metric, equivalents)
    return np.clip(dot**2 / (np.maximum(hh, 1e-300) * float(p @ gp)), 0.0, 1.0)


def march_dollase(cos2: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """The correction P (n_refl,) and ∂P/∂r from cos² (n_rot, n_refl), mean over the rotations."""
    base = r * r * cos2 + (1.0 - cos2) / r
    value = base**-1.5
    derivative = -1.5 * base**-2.5 * (2.0 * r * cos2 - (1.0 - cos2) / (r * r))
    return value.mean(axis=0), derivative.mean(axis=0)


def distinct_directions(space_group: SpaceGroup, candidates=LOW_INDEX_DIRECTIONS) -> list[tuple[int, int, int]]:
    """The candidates that are not equivalent under the Laue group (p ~ ±p R, R acting on reciprocal vectors as
    row vectors), first of each class kept, in the given order."""
    rotations = point_rotations(space_group)
    kept: list[tuple[int, int, int]] = []
    images: list[np.ndarray] = []
    for candidate in candidates:
        p = np.array(candidate)
        if any(np.any(_parallel(image, p)) for image in images):
            continue
        kept.append(tuple(int(i) for i in candidate))
        images.append(np.einsum("i,sij->sj", p, rotations))
    return kept


def _parallel(images: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Rows of ``images`` equal to ±p."""
    return np.all(images == p, axis=1) | np.all(images == -p, axis=1)
