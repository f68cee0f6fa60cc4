"""Which atoms an X-ray pattern locates, and how much of the scattering the located ones carry.

Hydrogen has one electron, and in a bond it is shifted towards its neighbour; beside heavier atoms it scatters
almost nothing (0.02 % of the scattering power of LuHO2, 0.03 % of Te(HO2)2). Refinement programs do not locate
it from X-ray powder data: they place it by geometry on its neighbour (the riding model, e.g. Sheldrick, Acta
Cryst. C71 (2015) 3, for SHELXL's HFIX) or take it from neutron data. A model that fits a pattern to its noise and
is found again and again is therefore evidence for the positions of its other atoms only: a search ends at the
same heavy atoms with its H atoms anywhere. :func:`undetermined` names the atoms a run cannot claim, and
:func:`scattering_shares` how much of the scattering power (Σ multiplicity x occupancy x Z², the forward
scattering f(0) = Z of each atom squared) each site carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import gemmi
import numpy as np

from gasolve.crystal.structure import Structure

#: Elements whose positions an X-ray pattern does not determine: hydrogen and deuterium (gemmi's "D").
UNDETERMINED_ELEMENTS = ("H", "D")


def undetermined(elements: Sequence[str]) -> np.ndarray:
    """Which sites (by element symbol) an X-ray pattern does not locate, shape (n_sites,), bool.

    Every site when all are H (then there is nothing better to claim).
    """
    flags = np.array([gemmi.Element(e).name in UNDETERMINED_ELEMENTS for e in elements], dtype=bool)
    return flags if not flags.all() else np.zeros_like(flags)


def scattering_shares(elements: Sequence[str], multiplicities: Sequence[float]) -> np.ndarray:
    """Each site's share of the cell's scattering power, shape (n_sites,), summing to 1.

    Parameters
    ----------
    elements : sequence of str, length n_sites
    multiplicities : sequence of float, length n_sites
        Atoms each site puts in the cell (multiplicity x occupancy).
    """
    power = np.array([gemmi.Element(e).atomic_number ** 2 for e in elements], dtype=float)
    power *= np.asarray(multiplicities, dtype=float)
    total = power.sum()
    return power / total if total > 0 else np.full(len(power), 1.0 / max(len(power), 1))


def determined_share(elements: Sequence[str], multiplicities: Sequence[float]) -> float:
    """The share of the scattering power carried by the sites an X-ray pattern locates (1 without H)."""
    hidden = undetermined(elements)
    if not hidden.any():
        return 1.0
    return float(scattering_shares(elements, multiplicities)[~hidden].sum())


def without_undetermined(structure: Structure) -> Structure:
    """``structure`` without its :func:`undetermined` sites (unchanged when it has none)."""
    keep = ~undetermined(structure.elements)
    if keep.all():
        return structure
    return replace(structure, sites=tuple(site for site, k in zip(structure.sites, keep, strict=True) if k), _cache={})
