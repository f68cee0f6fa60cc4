"""Crowding of atoms on the lines and planes of special positions: a Wyckoff assignment that cannot fit.

A site on a position with one free coordinate lies on a line (a rotation axis: (0, 0, z) in P4/mmm), one with two
on a plane (a mirror: (x, 0, z) in Pm). The locus of one Wyckoff position is a set of such lines or planes, all
alike by symmetry. Every line repeats with a lattice period along it (length ``L``, Å) and every plane with a 2D
lattice cell (area ``A`` = V / d_hkl, Å², hkl its Miller indices); an independent site on the position puts
``k`` atoms on each of them per period (``k`` = the points of one orbit that lie on one line or plane, modulo the
lattice). Atoms of an element take about ``v^(1/3)`` Å of a line and ``v^(2/3)`` Å² of a plane, ``v`` its volume
in crystals (:mod:`gasolve.hypotheses.z_candidates`' fitted atomic volumes). The crowding of a position is

    line:  sum over its sites of k v^(1/3) / L        plane:  sum over its sites of k v^(2/3) / A

about 1 when its atoms touch like cubes of their volume, and an assignment whose crowding exceeds what real
structures show (:data:`MAX_CROWDING`, measured on the Materials Project structures) cannot be a crystal: in Pm
with b = 9.5 Å, eight atoms of Fe3(OF2)2 on the mirror plane y = 0 of a 4.8 x 4.8 Å cell (crowding 2.3). Only atoms
of the position itself are counted (not those on lines or points inside a plane), so the check is lenient.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import reduce

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup

#: Largest crowding kept, per locus dimension (1 line, 2 plane): 1.25 times the largest of the true assignments
#: of 12,000 Materials Project structures of the tune split (lines 1.557, Na(CoO2)3 6c of R32; planes 1.204,
#: Sc(BC)2 4h of Pbam; 99.9th percentiles 1.20 and 1.08), rounded (benchmarks/crowding.py).
MAX_CROWDING = {1: 2.0, 2: 1.5}

#: A generic point of a locus: parameters unlikely to put it on a locus of lower dimension.
_GENERIC = np.array([0.1370, 0.2890, 0.4130])
_SHIFTS = np.array(list(itertools.product((-2, -1, 0, 1, 2), repeat=3)), dtype=float)


@dataclass(frozen=True)
class Locus:
    """The line or plane on which a Wyckoff position's sites lie.

    Attributes
    ----------
    dimension : int
        1 (line) or 2 (plane).
    per_site : int
        Atoms one independent site puts on one line or plane, per lattice period of it.
    measure : float
        Period length (Å, line) or 2D cell area (Å², plane).
    """

    dimension: int
    per_site: int
    measure: float


def _primitive(vector: np.ndarray) -> np.ndarray:
    integer = np.rint(vector).astype(int)
    if not np.allclose(integer, vector, atol=1e-6) or not integer.any():
        raise RuntimeError(f"locus direction {vector} is not an integer vector")  # tables are integral: a bug
    divisor = reduce(math.gcd, (abs(int(v)) for v in integer))
    return integer // divisor


def _on_line(points: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Which of ``points`` (n, 3) lie on the line origin + s direction modulo the lattice."""
    delta = points - origin
    delta = delta - np.round(delta)
    images = delta[:, None, :] + _SHIFTS[None, :, :]
    cross = np.cross(images, direction.astype(float))
    return (np.abs(cross) < 1e-6).all(axis=2).any(axis=1)


def locus(position, space_group: SpaceGroup, cell: UnitCell) -> Locus | None:
    """The line or plane of one Wyckoff position (:class:`gasolve.crystal.wyckoff.WyckoffPosition`); None for a
    fixed point or the general position."""
    columns = [position.matrix[:, j] for j in position.free_parameters]
    if len(columns) not in (1, 2):
        return None
    point = position.coordinates(_GENERIC)
    orbit = space_group.orbit(point)
    if len(columns) == 1:
        direction = _primitive(columns[0])
        per_site = int(_on_line(orbit, point, direction).sum())
        return Locus(1, per_site, float(np.linalg.norm(direction @ cell.matrix)))
    normal = _primitive(np.cross(columns[0], columns[1]))
    offsets = (orbit - point) @ normal
    per_site = int((np.abs(offsets - np.round(offsets)) < 1e-6).sum())
    spacing = 1.0 / math.sqrt(float(normal @ cell.reciprocal_metric @ normal))  # d_hkl, Å
    return Locus(2, per_site, cell.volume / spacing)


def position_loci(space_group: SpaceGroup, cell: UnitCell) -> dict[str, Locus]:
    """Wyckoff label -> :class:`Locus` for every position with one or two free coordinates."""
    from gasolve.crystal.wyckoff import wyckoff_positions

    found = {}
    for position in wyckoff_positions(space_group):
        here = locus(position, space_group, cell)
        if here is not None:
            found[position.label] = here
    return found


def footprint(element: str, dimension: int) -> float:
    """v^(1/3) (Å) or v^(2/3) (Å²) of ``element``'s atomic volume v."""
    from gasolve.hypotheses.z_candidates import volume_model

    return volume_model().atomic_volume(element) ** (dimension / 3.0)


def crowding(sites: Iterable[tuple[str, str]], loci: Mapping[str, Locus]) -> dict[str, float]:
    """Crowding (module docstring) of every line or plane position that ``sites`` use.

    Parameters
    ----------
    sites : iterable of (str, str)
        (element, Wyckoff label) of each independent site.
    loci : mapping
        :func:`position_loci` of the group and cell.

    Returns
    -------
    dict
        Wyckoff label -> crowding (dimensionless), for the labels with a locus.
    """
    load: dict[str, float] = {}
    for element, label in sites:
        here = loci.get(label)
        if here is not None:
            load[label] = load.get(label, 0.0) + here.per_site * footprint(element, here.dimension) / here.measure
    return load


def too_crowded(sites: Iterable[tuple[str, str]], loci: Mapping[str, Locus]) -> bool:
    """Whether any line or plane of ``sites`` is more crowded than :data:`MAX_CROWDING` allows."""
    return any(value > MAX_CROWDING[loci[label].dimension] for label, value in crowding(sites, loci).items())
