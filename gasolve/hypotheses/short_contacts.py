"""Contacts shorter than real structures have: two atoms of a model closer than their element pair ever is.

The table ``shortest_distances.json`` holds, per element pair, a floor: the 0.2 % quantile, over 12,000 Materials
Project structures (the learned prior's training split, never drawn by the benchmarks), of each structure's
shortest distance between atoms of the two elements (``benchmarks/shortest_distances.py`` writes it and states
its provenance in the file). F-F, for one: 99.8 % of the 1,028 fluorides of the sample have no two F atoms closer
than 2.18 Å (O-O: 1.32 Å, peroxides and superoxides included), while a wrong P1 model of KBi2F7 that fitted its
simulated pattern to the noise (χ² 1.03 against a noise level of 1.04, found twice) had F-F contacts of 1.59 and
1.85 Å: the pattern barely sees one F among Bi and K, the chemistry does. A model with a pair closer than
:data:`FLOOR_FACTOR` times its floor is not called convincing. Of 4,000 real structures of the held-out split,
none has such a pair (70 have one below the floor itself, 9 below 0.95 of it).

Pairs seen in fewer than the table's ``min_structures`` structures have no floor; H is left out by the caller
(an X-ray pattern does not locate it).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

TABLE_FILE = "shortest_distances.json"

#: A pair closer than this times its floor is implausible.
FLOOR_FACTOR = 0.85

_SHIFTS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)


@lru_cache(maxsize=1)
def load_table() -> dict[str, dict]:
    """Pair ('F-O', symbols in alphabetical order) -> {"floor": Å, "structures", "min", "median"}."""
    text = resources.files("gasolve.hypotheses").joinpath(TABLE_FILE).read_text()
    return json.loads(text)["pairs"]


def floor(a: str, b: str) -> float | None:
    """The floor (Å) of the element pair, or None when the table has none."""
    entry = load_table().get("-".join(sorted((a, b))))
    return None if entry is None else float(entry["floor"])


@dataclass(frozen=True)
class ShortContact:
    """The tightest contact of a model against its pair's floor."""

    site_i: int
    site_j: int
    distance: float
    floor: float
    structures: int

    def describe(self, labels, elements) -> str:
        """'F8 and F17 are 1.59 Å apart (F-F: no closer than 2.18 Å in 99.8 % of 1,028 known structures)'."""
        pair = "-".join(sorted((str(elements[self.site_i]), str(elements[self.site_j]))))
        return (
            f"{labels[self.site_i]} and {labels[self.site_j]} are {self.distance:.2f} Å apart ({pair}: no closer "
            f"than {self.floor:.2f} Å in 99.8 % of {self.structures:,} known structures)"
        )


def tightest_contact(cell, orbits: list[np.ndarray], elements, leave_out=None) -> ShortContact | None:
    """The pair of atoms of two different sites whose distance is smallest against its pair's floor, if that is
    below :data:`FLOOR_FACTOR`; None otherwise.

    Parameters
    ----------
    cell : UnitCell
        Its ``metric`` (3, 3), Å².
    orbits : list of ndarray, shape (m_k, 3)
        Fractional coordinates of the atoms of each site in the cell.
    elements : sequence of str
        Element of each site.
    leave_out : ndarray, shape (n_sites,), bool, optional
        Sites in no pair (H, shared places).
    """
    table = load_table()
    kept = np.ones(len(orbits), dtype=bool) if leave_out is None else ~np.asarray(leave_out, dtype=bool)
    worst, found = FLOOR_FACTOR, None
    for i, j in itertools.combinations(range(len(orbits)), 2):
        if not (kept[i] and kept[j]):
            continue
        entry = table.get("-".join(sorted((str(elements[i]), str(elements[j])))))
        if entry is None or len(orbits[i]) == 0 or len(orbits[j]) == 0:
            continue
        delta = orbits[j][None, :, :] - orbits[i][:, None, :]
        delta -= np.round(delta)
        shifted = delta[:, :, None, :] + _SHIFTS[None, None, :, :]
        distance = float(np.sqrt(np.einsum("...i,ij,...j->...", shifted, cell.metric, shifted).min()))
        ratio = distance / entry["floor"]
        if ratio < worst:
            worst = ratio
            found = ShortContact(i, j, distance, float(entry["floor"]), int(entry["structures"]))
    return found


def model_contact(scorer, genome: np.ndarray, leave_out=None) -> ShortContact | None:
    """:func:`tightest_contact` of a scored model.

    Parameters
    ----------
    scorer : ModelScorer
    genome : ndarray, shape (3 n_sites,) or (n_sites, 3)
        Fractional coordinates of the sites, as the scorer projects them.
    leave_out : ndarray, shape (n_sites,), bool, optional
    """
    problem = scorer.problem
    frac = scorer.project(np.asarray(genome, dtype=float).reshape(1, problem.n_sites, 3))[0]
    orbits = [problem.space_group.orbit(x) for x in frac]
    return tightest_contact(problem.cell, orbits, problem.elements, leave_out)
