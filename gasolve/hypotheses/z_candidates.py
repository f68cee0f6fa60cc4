"""Candidate Z (formula units per conventional cell) from the cell volume, the composition and the space group.

Rule. With v_e the mean volume an atom of element e takes in a crystal, the packing ratio of Z formula units is

    q(Z) = V_cell / (Z * sum_e n_e v_e),

and Z is a candidate when q(Z) lies in the window [q_low, q_high] seen in real structures and the Z formula units
can be put on the Wyckoff positions of the group (:func:`gasolve.hypotheses.assignments.count_assignments` > 0,
which also respects that a fixed point holds one atom). Candidates are ordered by |ln q(Z) - ln q_median|. This is
Hofmann's method (Acta Cryst. B58 (2002) 489, atomic volumes from the CSD for Z and density), with the volumes and
the window fitted to the inorganic structures of ../shared/data/mp-structures by ``benchmarks/z_window.py``
(non-negative least squares of V_cell = sum_e N_e v_e, relative residuals, 3-sigma outliers refitted; window =
0.5th and 99.5th percentiles of q on the fitting split). The fitted table ships as ``atomic_volumes.json``;
an element absent from it gets its ASE covalent-sphere volume times the median ratio of fitted to covalent
volume (stated in the file). The table's provenance and held-out figures are in the file and the commit.

An element alone packs unlike the compounds its v_e comes from (carbon: diamond at q = 0.62, graphite at 0.95),
so a single-element composition takes the window of the single-element structures of the same data
(``element_window``: their whole range, 0.61-6.52 over 138; 6 of the 34 held-out elemental structures lie outside
the compounds' window, none outside this one).

About 1 % of real structures lie outside the window (the dense nitride MgCN2, I-42d, at q = 0.70; MgSiO3 in the
ilmenite structure at 0.72; superhard BC2N, P-4m2, at 0.71 with Z = 1, where the window allows no Z at all).
When no Z inside it fits the multiplicities, the nearest Z on each side of the window that does fit is proposed
instead (at most two, flagged ``in_window`` False), down to the densest packing seen in the data (``q_min``) and
up to twice ``q_high``, so that the search races it rather than stopping; with ``beyond`` they are proposed after
the Z inside it in any case (the hypothesis list races them last).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError
from gasolve.hypotheses.assignments import count_assignments, wyckoff_slots

VOLUMES_FILE = "atomic_volumes.json"


@dataclass(frozen=True)
class ZCandidate:
    """One candidate Z.

    Attributes
    ----------
    z : int
    volume_ratio : float
        q(Z) = V_cell / (Z sum_e n_e v_e) (module docstring); 1 is the typical packing.
    n_assignments : int
        Wyckoff assignments of Z formula units (before the distance filter and normalizer merging).
    in_window : bool
        False for a Z outside the packing window, proposed because no Z inside it fits (module docstring).
    """

    z: int
    volume_ratio: float
    n_assignments: int
    in_window: bool = True


@dataclass(frozen=True)
class VolumeModel:
    """Atomic volumes (Å³) and the window of the packing ratio q, from ``atomic_volumes.json``."""

    volumes: Mapping[str, float]
    covalent_scale: float
    q_low: float
    q_median: float
    q_high: float
    q_min: float
    element_window: tuple[float, float, float] | None = None

    def window(self, composition: Mapping[str, int]) -> tuple[float, float, float]:
        """(q_low, q_median, q_high) for ``composition``: the elements' window for a single element."""
        if len(composition) == 1 and self.element_window is not None:
            return self.element_window
        return self.q_low, self.q_median, self.q_high

    def atomic_volume(self, element: str) -> float:
        """Volume (Å³) of one atom of ``element`` in a crystal."""
        if element in self.volumes:
            return self.volumes[element]
        from ase.data import atomic_numbers, covalent_radii

        if element not in atomic_numbers:
            raise InputError(f"unknown element {element!r}")
        return self.covalent_scale * 4.0 / 3.0 * math.pi * covalent_radii[atomic_numbers[element]] ** 3

    def formula_volume(self, composition: Mapping[str, int]) -> float:
        """sum_e n_e v_e (Å³) of one formula unit."""
        return sum(n * self.atomic_volume(element) for element, n in composition.items())


@lru_cache(maxsize=1)
def volume_model() -> VolumeModel:
    """The shipped atomic volumes and window (``atomic_volumes.json`` beside this module)."""
    data = json.loads(resources.files("gasolve.hypotheses").joinpath(VOLUMES_FILE).read_text())
    window = data["window"]
    elements = data.get("element_window")
    return VolumeModel(
        {str(k): float(v) for k, v in data["volumes"].items()},
        float(data["covalent_scale"]),
        float(window["q_low"]),
        float(window["q_median"]),
        float(window["q_high"]),
        float(window["q_min"]),
        None if elements is None else tuple(float(elements[k]) for k in ("q_low", "q_median", "q_high")),
    )


def _volume(cell) -> float:
    volume = cell.volume if hasattr(cell, "volume") else float(cell)
    if not math.isfinite(volume) or volume <= 0:
        raise InputError(f"the cell volume must be a positive number of Å³, got {volume!r}")
    return volume


def z_candidates(
    composition: Mapping[str, int],
    cell,
    space_group: SpaceGroup | int | str,
    *,
    model: VolumeModel | None = None,
    key: str = "composition",
    beyond: bool = False,
) -> list[ZCandidate]:
    """Candidate Z, most plausible first (module docstring for the rule).

    Parameters
    ----------
    composition : mapping of str to int
        Element -> atoms per formula unit (e.g. from :func:`~gasolve.hypotheses.composition.parse_composition`).
    cell : UnitCell or float
        The conventional cell of ``space_group`` in its standard setting, or its volume (Å³).
    space_group : SpaceGroup, int or str
    model : VolumeModel, optional
        Defaults to the shipped :func:`volume_model`.
    key : str
        Config key named in error messages.
    beyond : bool
        Also propose the nearest fitting Z on each side of the window when some Z inside it fits (flagged
        ``in_window`` False, after every Z inside): dense high-pressure phases such as MgSiO3 in the ilmenite
        structure (q = 0.72) lie below the window.

    Returns
    -------
    list of ZCandidate
        Ordered by |ln q(Z) - ln q_median|, those inside the window first; never empty. Candidates outside the
        window only when none inside fits, or with ``beyond``.

    Raises
    ------
    InputError
        When no Z fits, saying why: the cell is too small for one formula unit, or no Z between the densest
        packing seen and twice the window's loosest fits the multiplicities of the group's Wyckoff positions.
    """
    model = model or volume_model()
    volume = _volume(cell)
    unit = model.formula_volume(composition)
    q_low, q_median, q_high = model.window(composition)
    z_low = max(1, math.ceil(volume / (unit * q_high) - 1e-9))
    z_high = math.floor(volume / (unit * q_low) + 1e-9)
    formula = "".join(f"{e}{n if n > 1 else ''}" for e, n in composition.items())
    if volume < unit * model.q_min:
        raise InputError(
            f"{key}: the cell ({volume:.1f} Å³) is too small for one formula unit of {formula} (needs at least "
            f"{unit * model.q_min:.1f} Å³: {unit:.1f} Å³ of atomic volumes x {model.q_min:.2f}, the densest "
            "packing seen in real structures)"
        )
    candidates = []
    for z in range(z_low, z_high + 1):
        n = count_assignments(composition, z, space_group)
        if n:
            candidates.append(ZCandidate(z, volume / (z * unit), n))
    if not candidates or beyond:
        candidates += _outside_window(composition, volume, unit, space_group, z_low, z_high, model)
    if not candidates:
        group = space_group if isinstance(space_group, SpaceGroup) else SpaceGroup.from_symbol(space_group)
        multiplicities = sorted({s.multiplicity for s in wyckoff_slots(group)})
        raise InputError(
            f"{key}: {formula} fits no Z in space group {group.symbol} with this cell: the volume "
            f"({volume:.1f} Å³) allows Z = {z_low}..{z_high} (packing ratio {q_low:.2f}-{q_high:.2f}; "
            f"Z = {_z_range_text(volume, unit, model)} at the densest and loosest packing accepted outside it), "
            f"but no such Z puts every element's atoms on Wyckoff positions of multiplicities "
            f"{', '.join(map(str, multiplicities))} (a fixed point holds one atom)"
        )
    return sorted(candidates, key=lambda c: (not c.in_window, abs(math.log(c.volume_ratio / q_median)), c.z))


def _outer_z_limits(volume: float, unit: float, model: VolumeModel) -> tuple[int, int]:
    """Z range between twice the window's loosest packing and the densest packing seen (``q_min``)."""
    low = max(1, math.ceil(volume / (unit * 2.0 * model.q_high) - 1e-9))
    return low, math.floor(volume / (unit * model.q_min) + 1e-9)


def _z_range_text(volume: float, unit: float, model: VolumeModel) -> str:
    low, high = _outer_z_limits(volume, unit, model)
    return f"{low}..{high}" if high >= low else "none"


def _outside_window(
    composition: Mapping[str, int],
    volume: float,
    unit: float,
    space_group,
    z_low: int,
    z_high: int,
    model: VolumeModel,
) -> list[ZCandidate]:
    """The nearest fitting Z below and above the window (module docstring), flagged ``in_window`` False."""
    outer_low, outer_high = _outer_z_limits(volume, unit, model)
    found = []
    for zs in (range(z_low - 1, outer_low - 1, -1), range(z_high + 1, outer_high + 1)):
        for z in zs:
            n = count_assignments(composition, z, space_group)
            if n:
                found.append(ZCandidate(z, volume / (z * unit), n, in_window=False))
                break
    return found


def check_z(
    composition: Mapping[str, int],
    z: int,
    cell,
    space_group: SpaceGroup | int | str,
    *,
    model: VolumeModel | None = None,
    key: str = "z",
) -> ZCandidate:
    """Check a Z given by the user: it must fit the multiplicities, and the cell must hold Z formula units.

    The volume test uses the smallest packing ratio seen in the fitting data (``q_min``), not the window, so that
    a dense phase the window would not propose is still accepted when asked for.

    Raises
    ------
    InputError
        Naming ``key`` and why Z cannot fit.
    """
    if isinstance(z, bool) or not isinstance(z, int) or z < 1:
        raise InputError(f"{key} must be a positive integer (formula units per conventional cell), got {z!r}")
    model = model or volume_model()
    volume = _volume(cell)
    ratio = volume / (z * model.formula_volume(composition))
    formula = "".join(f"{e}{n if n > 1 else ''}" for e, n in composition.items())
    if ratio < model.q_min:
        raise InputError(
            f"{key} = {z}: the cell ({volume:.1f} Å³) is too small for {z} formula units of {formula} (packing "
            f"ratio {ratio:.2f}, below {model.q_min:.2f}, the densest seen in the fitting data)"
        )
    n = count_assignments(composition, z, space_group)
    if n == 0:
        group = space_group if isinstance(space_group, SpaceGroup) else SpaceGroup.from_symbol(space_group)
        multiplicities = sorted({s.multiplicity for s in wyckoff_slots(group)})
        raise InputError(
            f"{key} = {z}: the {z} formula units of {formula} cannot be put on the Wyckoff positions of "
            f"{group.symbol} (multiplicities {', '.join(map(str, multiplicities))}; a fixed point holds one atom)"
        )
    return ZCandidate(z, ratio, n)
