"""Riding hydrogens: H (and D) sites that move with the atom they are bonded to, as refinement programs constrain
them (SHELXL's AFIX/HFIX, GSAS-II's riding constraints, TOPAS's rigid bodies).

X-rays barely see hydrogen (one electron, most of it in the bond), so free H coordinates wander and their B runs
off. In the riding model an H site is its parent's position plus a fixed offset: x_H = R x_p + t + n + s u, with
(R, t) the symmetry operator and n the lattice translation that bring the parent's image nearest to the H in the
starting model, u the fractional offset of the starting model and s = |u|_0 / |u|_G the factor that keeps the
bond length at its starting value in Å on the current cell (metric G). With the cell as started s = 1 and the
offset is a fixed Cartesian vector; on a refined cell the offset keeps its length and its direction in the
crystal's axes, so that an H on a special position stays on it exactly (a Cartesian vector would not in every
setting). The H coordinates are not parameters; ∂x_H/∂x_p = R, so the parent's derivative picks up R^T ∂I/∂x_H
(the chain rule) and the parent's refinement sees the H scattering.

Uiso(H) = 1.2 Ueq of the parent, 1.5 for O-H and for groups of three or more H on one parent (methyl, NH3+, NH4+),
the SHELXL convention (Sheldrick, Acta Cryst. C71 (2015) 3, AFIX m = 13/33/137/147 and HFIX): B(H) is that factor
times B(parent), constrained, not refined.

Parent: the nearest non-H atom through symmetry and periodic images, when it is a non-metal within
:data:`BOND_TOLERANCE` times the sum of the covalent radii (gemmi's table); or the site named in
``hydrogen_parents``. An H without a parent (a metal hydride) is held where it is, its B as given. The Wyckoff
constraints of both are respected: when the parent's free moves, carried by R, or the offset leave the H's
position (an H on a special position whose parent is general, such as an H on an inversion centre between two O),
the H is held fixed and the reason given; its B still rides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import gemmi
import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError

#: A non-H atom is an H's parent when it is within this factor of the sum of their covalent radii.
BOND_TOLERANCE = 1.25
#: Uiso(H) / Ueq(parent): the SHELXL defaults.
U_RATIO = 1.2
#: ... for O-H and for three or more H on one parent (methyl, NH3+).
U_RATIO_ROTOR = 1.5
#: The ``[refinement] hydrogens`` choices.
HYDROGEN_MODES = ("riding", "fixed", "free")
#: Residual (fractional units) below which a direction counts as inside a Wyckoff position's span.
_SPAN_TOLERANCE = 1e-6


def is_hydrogen(element: str) -> bool:
    """H or D."""
    return gemmi.Element(element).atomic_number == 1


@dataclass(frozen=True)
class RidingHydrogen:
    """How one independent H site is constrained.

    Attributes
    ----------
    site : int
        Index of the H site.
    status : {"riding", "fixed", "free"}
        "riding": position and B follow the parent; "fixed": position held as started (B rides when there is a
        parent, else is held too); "free": refined like any atom.
    parent : int or None
        Index of the parent site.
    rotation : ndarray, shape (3, 3)
        R of the parent's image (fractional).
    translation : ndarray, shape (3,)
        t + n of the parent's image (fractional).
    offset : ndarray, shape (3,)
        u, the H minus the parent's image in the starting model (fractional).
    length : float
        The bond length |u| (Å) in the starting model, kept on any cell.
    u_ratio : float
        Uiso(H) / Ueq(parent) (0 when B is not constrained).
    reason : str
        Why the H is held fixed or free ("" when riding).
    """

    site: int
    status: str
    parent: int | None = None
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3), repr=False)
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3), repr=False)
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3), repr=False)
    length: float = 0.0
    u_ratio: float = 0.0
    reason: str = ""

    @property
    def rides(self) -> bool:
        return self.status == "riding"

    @property
    def b_constrained(self) -> bool:
        """Whether B(H) is u_ratio times B(parent)."""
        return self.status in ("riding", "fixed") and self.parent is not None and self.u_ratio > 0


def _nearest_image(cell: UnitCell, space_group: SpaceGroup, x_h: np.ndarray, x_p: np.ndarray):
    """Distance (Å), R, t + n and image of the image of ``x_p`` nearest to ``x_h``."""
    images = np.einsum("sij,j->si", space_group.rotations, x_p) + space_group.translations
    shifts = -np.round(images - x_h)
    images = images + shifts
    distances = cell.distance(images, x_h)
    best = int(np.argmin(distances))
    translation = space_group.translations[best] + shifts[best]
    return float(distances[best]), space_group.rotations[best].astype(float), translation, images[best]


def _outside(matrix: np.ndarray, vectors: np.ndarray) -> float:
    """Largest residual of ``vectors`` (3, k) off the column space of a Wyckoff ``matrix`` (3, 3)."""
    projector = matrix @ np.linalg.pinv(matrix)
    return float(np.max(np.abs(vectors - projector @ vectors), initial=0.0))


def find_riding(
    cell: UnitCell,
    space_group: SpaceGroup,
    frac: np.ndarray,
    elements: Sequence[str],
    labels: Sequence[str],
    site_matrices: np.ndarray,
    mode: str = "riding",
    parents: Mapping[str, str] | None = None,
) -> tuple[RidingHydrogen, ...]:
    """The constraint on every H site of a starting model (module docstring).

    Parameters
    ----------
    cell : UnitCell
    space_group : SpaceGroup
    frac : ndarray, shape (n_sites, 3)
        Starting coordinates, special positions settled.
    elements, labels : sequence of str, length n_sites
    site_matrices : ndarray, shape (n_sites, 3, 3)
        Each site's Wyckoff map (frac = matrix @ genome + offset): its free directions.
    mode : {"riding", "fixed", "free"}
    parents : mapping of str to str, optional
        H label -> parent label, overriding the nearest atom.

    Returns
    -------
    tuple of RidingHydrogen
        One per H site, in site order.

    Raises
    ------
    InputError
        An unknown mode; a ``parents`` entry naming a label the model lacks, a non-H site, or an H parent.
    """
    if mode not in HYDROGEN_MODES:
        raise InputError(f"[refinement] hydrogens must be one of {', '.join(map(repr, HYDROGEN_MODES))}, got {mode!r}")
    frac = np.asarray(frac, dtype=float)
    hydrogen = np.array([is_hydrogen(e) for e in elements], dtype=bool)
    index = {label: i for i, label in enumerate(labels)}
    given: dict[int, int] = {}
    for h_label, p_label in (parents or {}).items():
        for label in (h_label, p_label):
            if label not in index:
                raise InputError(f"[refinement] hydrogen_parents: no site {label!r}; the sites: {', '.join(labels)}")
        if not hydrogen[index[h_label]]:
            raise InputError(f"[refinement] hydrogen_parents: {h_label} is not an H site")
        if hydrogen[index[p_label]]:
            raise InputError(f"[refinement] hydrogen_parents: the parent of {h_label}, {p_label}, is an H site")
        given[index[h_label]] = index[p_label]
    if mode == "free" or not hydrogen.any():
        return tuple(RidingHydrogen(int(h), "free") for h in np.flatnonzero(hydrogen))

    found: dict[int, tuple] = {}
    for h in np.flatnonzero(hydrogen):
        candidates = [given[h]] if h in given else [j for j in range(len(frac)) if not hydrogen[j]]
        best = None
        for j in candidates:
            image = _nearest_image(cell, space_group, frac[h], frac[j])
            if best is None or image[0] < best[1][0]:
                best = (j, image)
        found[int(h)] = best
    # H per parent atom, images included: a parent carrying three or more (CH3, NH3+) is a rotor
    carried = {j: 0 for j in range(len(frac))}
    for h, best in found.items():
        if best is not None:
            carried[best[0]] += len(space_group.orbit(frac[h], tol=1e-3))
    records = []
    for h, best in found.items():
        if best is None:
            records.append(RidingHydrogen(h, "fixed", reason="no non-H atom to ride on"))
            continue
        p, (distance, rotation, translation, image) = best
        parent_element = gemmi.Element(elements[p])
        limit = BOND_TOLERANCE * (gemmi.Element(elements[h]).covalent_r + parent_element.covalent_r)
        if h not in given and (parent_element.is_metal or distance > limit):
            why = "a metal" if parent_element.is_metal else f"{distance:.2f} Å away (bonded: below {limit:.2f} Å)"
            records.append(
                RidingHydrogen(h, "fixed", reason=f"no covalent parent: its nearest atom, {labels[p]}, is {why}")
            )
            continue
        per_parent = carried[p] / len(space_group.orbit(frac[p], tol=1e-3))
        ratio = U_RATIO_ROTOR if parent_element.name == "O" or per_parent >= 3 - 1e-9 else U_RATIO
        offset = frac[h] - image
        common = dict(
            parent=p, rotation=rotation, translation=translation, offset=offset, length=distance, u_ratio=ratio
        )
        if mode == "fixed":
            records.append(RidingHydrogen(h, "fixed", reason='[refinement] hydrogens = "fixed"', **common))
            continue
        moves = rotation @ site_matrices[p]
        if _outside(site_matrices[h], np.column_stack([moves, offset])) > _SPAN_TOLERANCE:
            reason = (
                f"its Wyckoff position does not let it follow {labels[p]} (the parent's free moves or the offset "
                "leave the H's special position): held fixed"
            )
            records.append(RidingHydrogen(h, "fixed", reason=reason, **common))
            continue
        records.append(RidingHydrogen(h, "riding", **common))
    return tuple(records)


def ride(frac: np.ndarray, metric: np.ndarray, hydrogens: Sequence[RidingHydrogen]) -> np.ndarray:
    """Coordinates with every riding H put on its parent: x_H = R x_p + t + s u (module docstring).

    Parameters
    ----------
    frac : ndarray, shape (n_sites, 3)
        Coordinates with the parents' current positions.
    metric : ndarray, shape (3, 3)
        Metric tensor G of the current cell (Å²).
    hydrogens : sequence of RidingHydrogen

    Returns
    -------
    ndarray, shape (n_sites, 3)
        A copy, the riding H replaced.
    """
    out = np.array(frac, dtype=float, copy=True)
    for rider in hydrogens:
        if not rider.rides:
            continue
        u = rider.offset
        scale = rider.length / float(np.sqrt(u @ metric @ u)) if rider.length > 0 else 1.0
        out[rider.site] = rider.rotation @ out[rider.parent] + rider.translation + scale * u
    return out


def carry_derivatives(d_frac: np.ndarray, hydrogens: Sequence[RidingHydrogen]) -> np.ndarray:
    """Add each riding H's coordinate derivatives to its parent's (chain rule, ∂x_H/∂x_p = R) and zero the H's.

    Parameters
    ----------
    d_frac : ndarray, shape (n_sites, 3, ...)
        ∂/∂frac of any quantity, per site and axis.
    hydrogens : sequence of RidingHydrogen

    Returns
    -------
    ndarray, same shape
    """
    out = np.array(d_frac, copy=True)
    for rider in hydrogens:
        if rider.rides:
            out[rider.parent] += np.einsum("ba,b...->a...", rider.rotation, out[rider.site])
            out[rider.site] = 0.0
    return out


def describe(rider: RidingHydrogen, labels: Sequence[str]) -> str:
    """One line for the report: 'H1 rides on O1 (0.970 Å), Uiso = 1.5 Ueq(O1)' or why it does not."""
    label = labels[rider.site]
    parent = labels[rider.parent] if rider.parent is not None else None
    u = f", Uiso = {rider.u_ratio:g} Ueq({parent})" if rider.b_constrained else ""
    if rider.rides:
        return f"{label} rides on {parent} ({rider.length:.3f} Å){u}"
    if rider.status == "fixed":
        return f"{label} held fixed{u}: {rider.reason}"
    return f"{label} refined freely (coordinates and B)"
