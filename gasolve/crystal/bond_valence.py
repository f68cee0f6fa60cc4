"""Which of two elements that scatter X-rays alike sits on which site, decided by bond valence.

O and F (8 and 9 electrons), N and O, Na and Mg, Mg and Al, Al and Si: an X-ray powder pattern barely tells them
apart, and a search that puts O where F belongs fits the pattern as well as the truth. In the broad benchmark,
VOF3 (P1, 20 sites) was solved with every atom in place to 0.03 Å but two O and two F exchanged, at χ² 0.99.
Crystallographers settle such questions by bond valence: an atom's bond valence sum, sum_j exp((R0_ij - d_ij) /
b), should equal its formal valence (Brown, *The Chemical Bond in Inorganic Chemistry*, 2002), and the global
instability index GII = sqrt(mean_i (|BVS_i| - |V_i|)²) over the atoms of the cell is smallest for the right
assignment (Salinas-Sanchez et al., *J. Solid State Chem.* 100 (1992) 201).

:func:`best_assignment` exchanges the elements of such pairs between sites on the same Wyckoff position (the
coordinates stay, the labels move) while the GII falls. R0 comes from Brese and O'Keeffe's parameters (*Acta
Cryst.* B47 (1991) 192) as pymatgen tabulates them (``pymatgen.analysis.bond_valence.BV_PARAMS``), with
b = 0.31 Å and the sign and pair rules of :func:`pymatgen.analysis.bond_valence.calculate_bv_sum`, which the
tests use as the reference. The formal valences are pymatgen's most probable charge-balanced oxidation states of
the composition (:meth:`pymatgen.core.Composition.oxi_state_guesses`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.xray_visibility import UNDETERMINED_ELEMENTS

#: Å: neighbours counted in a bond valence sum.
CUTOFF = 3.2
#: Å: Brese and O'Keeffe's b.
B = 0.31
#: Elements whose atomic numbers differ by at most this are "alike" for X-rays.
ALIKE = 1


@dataclass(frozen=True)
class Neighbours:
    """Every bond from an atom of the asymmetric unit within :data:`CUTOFF`: centre site, neighbour's site
    (asymmetric index) and distance (Å), flat arrays."""

    centre: np.ndarray
    other: np.ndarray
    distance: np.ndarray


def alike_pairs(elements: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of the present elements (not H) whose atomic numbers differ by at most :data:`ALIKE`."""
    from ase.data import atomic_numbers

    present = sorted({e for e in elements if e not in UNDETERMINED_ELEMENTS}, key=lambda e: atomic_numbers[e])
    return [
        (a, b)
        for i, a in enumerate(present)
        for b in present[i + 1 :]
        if abs(atomic_numbers[a] - atomic_numbers[b]) <= ALIKE
    ]


def neighbours(cell: UnitCell, space_group: SpaceGroup, frac: np.ndarray, cutoff: float = CUTOFF) -> Neighbours:
    """The bonds of each site's first image to every atom of the crystal within ``cutoff`` (pymatgen's
    neighbour list over the expanded cell)."""
    from pymatgen.core import Lattice, Structure

    orbits = [space_group.orbit(x, tol=1e-3) for x in np.asarray(frac, dtype=float)]
    owner = np.concatenate([np.full(len(o), i) for i, o in enumerate(orbits)])
    first = np.concatenate([[0], np.cumsum([len(o) for o in orbits])[:-1]])
    crystal = Structure(Lattice(cell.matrix), ["X0+"] * len(owner), np.concatenate(orbits))
    centre, other, _, distance = crystal.get_neighbor_list(cutoff, sites=[crystal[int(k)] for k in first])
    keep = distance > 1e-6
    return Neighbours(owner[first][centre[keep]], owner[other[keep]], distance[keep])


def _parameters(elements: Sequence[str]):
    from pymatgen.analysis.bond_valence import BV_PARAMS, ELECTRONEG  # ELECTRONEG: calculate_bv_sum's anions
    from pymatgen.core import Element

    known = [Element(e) in BV_PARAMS for e in elements]
    r = np.array([BV_PARAMS[Element(e)]["r"] if k else np.nan for e, k in zip(elements, known, strict=True)])
    c = np.array([BV_PARAMS[Element(e)]["c"] if k else np.nan for e, k in zip(elements, known, strict=True)])
    x = np.array([Element(e).X for e in elements])
    anion = np.array([Element(e) in ELECTRONEG for e in elements])
    return r, c, x, anion, np.array(known)


def bond_valence_sums(elements: Sequence[str], bonds: Neighbours) -> np.ndarray:
    """Bond valence sum of each site (v.u.; positive for a cation, negative for an anion), shape (n_sites,).

    A bond counts when one of its atoms is an anion and the two elements differ, as in pymatgen; a site or
    neighbour of an element without parameters contributes nothing."""
    elements = list(elements)
    symbols = np.array(elements)
    r, c, x, anion, known = _parameters(elements)
    i, j, d = bonds.centre, bonds.other, bonds.distance
    counted = known[i] & known[j] & (anion[i] | anion[j]) & (symbols[i] != symbols[j])
    i, j, d = i[counted], j[counted], d[counted]
    r0 = r[i] + r[j] - r[i] * r[j] * (np.sqrt(c[i]) - np.sqrt(c[j])) ** 2 / (c[i] * r[i] + c[j] * r[j])
    valence = np.exp((r0 - d) / B) * np.where(x[i] < x[j], 1.0, -1.0)
    return np.bincount(i, weights=valence, minlength=len(elements))


def oxidation_states(elements: Sequence[str], multiplicity: Sequence[int]) -> np.ndarray | None:
    """Signed oxidation state of each site from the cell's composition (pymatgen's most probable charge-balanced
    guess), or None when none is charge-balanced."""
    from pymatgen.core import Composition

    counts: dict[str, float] = {}
    for element, m in zip(elements, multiplicity, strict=True):
        counts[element] = counts.get(element, 0) + float(m)
    try:
        guesses = Composition(counts).oxi_state_guesses(max_sites=-1)
    except ValueError:
        return None
    if not guesses:
        return None
    return np.array([float(guesses[0][e]) for e in elements])


def formal_valences(elements: Sequence[str], multiplicity: Sequence[int]) -> np.ndarray | None:
    """|oxidation state| of each site from the cell's composition, or None when none is charge-balanced."""
    states = oxidation_states(elements, multiplicity)
    return None if states is None else np.abs(states)


def global_instability(bvs: np.ndarray, valences: np.ndarray, multiplicity: np.ndarray) -> float:
    """GII (v.u.): sqrt of the mean over the atoms of the cell of (|BVS| - |V|)²."""
    weights = np.asarray(multiplicity, dtype=float)
    return float(np.sqrt(np.sum(weights * (np.abs(bvs) - valences) ** 2) / weights.sum()))


@dataclass(frozen=True)
class Reassignment:
    """The outcome of :func:`best_assignment`.

    Attributes
    ----------
    permutation : ndarray, shape (n_sites,), int
        Site k takes the coordinates the search gave site ``permutation[k]`` (the identity when nothing moved).
    gii_before, gii_after : float
        Global instability index (v.u.) of the model as found and as reassigned.
    swaps : tuple of (int, int)
        The exchanges of one site for one on the same Wyckoff position, in order (empty after a group exchange).
    assigned : tuple of str
        The element of each site after all exchanges (coordinates as the search gave them).
    regroups : tuple of (tuple of int, tuple of int)
        The group exchanges made (``groups=True``), in order: the sites that took the second element of an alike
        pair, and those that took the first.
    """

    permutation: np.ndarray
    gii_before: float
    gii_after: float
    swaps: tuple[tuple[int, int], ...]
    assigned: tuple[str, ...] = ()
    regroups: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = ()

    @property
    def regrouped(self) -> bool:
        """Whether some sites changed element in a way no permutation of coordinates among sites of one Wyckoff
        position gives (a group exchange): the model's list of sites then changes."""
        return bool(self.regroups)


def best_assignment(
    cell: UnitCell,
    space_group: SpaceGroup,
    frac: np.ndarray,
    elements: Sequence[str],
    labels: Sequence[str],
    multiplicity: Sequence[int],
    max_swaps: int = 50,
    groups: bool = False,
) -> Reassignment | None:
    """Exchange alike elements between sites of the same Wyckoff position while the GII falls (steepest descent
    over single exchanges). None when there is nothing to decide: no alike pair, or no charge-balanced valences.

    With ``groups``, an exchange may also take one or two sites of one element for one or two of the other that
    hold as many atoms in the cell, on any Wyckoff positions (two O on 1a for one F on 2c in Pm: a search that
    gave O and F the wrong positions cannot swap them site for site). The element of each site then changes
    (:attr:`Reassignment.assigned`) and the model needs a scorer of its own.

    Parameters
    ----------
    cell, space_group
    frac : ndarray, shape (n_sites, 3)
    elements, labels : sequence of str
        Element and Wyckoff label of each site (the labels decide which sites may exchange).
    multiplicity : sequence of int
        Atoms of each site in the cell.
    max_swaps : int
        Exchanges made at most.
    groups : bool
        Allow group exchanges (above).

    Returns
    -------
    Reassignment or None
    """
    pairs = alike_pairs(elements)
    if not pairs:
        return None
    multiplicity = np.asarray(multiplicity, dtype=int)
    valences = formal_valences(elements, multiplicity)
    if valences is None:
        return None
    valence_of = dict(zip(elements, valences, strict=True))
    bonds = neighbours(cell, space_group, frac)
    current = list(elements)

    def gii(assigned: list[str]) -> float:
        return global_instability(
            bond_valence_sums(assigned, bonds), np.array([valence_of[e] for e in assigned]), multiplicity
        )

    before = value = gii(current)
    moves: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    for _ in range(max_swaps):
        best, best_value = None, value - 1e-6
        for first, second in _exchanges(current, labels, multiplicity, pairs, groups):
            trial = _exchanged(current, first, second)
            trial_value = gii(trial)
            if trial_value < best_value:
                best, best_value = (first, second), trial_value
        if best is None:
            break
        current = _exchanged(current, *best)
        moves.append(best)
        value = best_value
    if any(len(a) != 1 or len(b) != 1 or labels[a[0]] != labels[b[0]] for a, b in moves):
        # the sites keep their coordinates and change element; every exchange made is a regroup then
        return Reassignment(np.arange(len(elements)), before, value, (), tuple(current), tuple(moves))
    # site k now holds current[k]; the pipeline keeps the elements per site and moves the coordinates instead
    permutation = _coordinates_for(list(elements), current, labels)
    return Reassignment(permutation, before, value, tuple((a[0], b[0]) for a, b in moves), tuple(current))


#: Exchanges of two sites for two are left out when an element pair has more than this many of them (the GII trials
#: of one step grow as n_a² n_b²: 20 O and 10 F sites would make 8,550 of them, about 1.5 s a step).
MAX_PAIR_EXCHANGES = 2000


def _exchanges(current: list[str], labels: Sequence[str], multiplicity: np.ndarray, pairs, groups: bool):
    """(sites of one element, sites of the other) for every exchange :func:`best_assignment` may make: one site for
    one on the same Wyckoff position; with ``groups`` also up to two for up to two holding as many atoms (two for
    two only up to :data:`MAX_PAIR_EXCHANGES` of them per element pair)."""
    for a, b in pairs:
        of_a = [k for k, e in enumerate(current) if e == a]
        of_b = [k for k, e in enumerate(current) if e == b]
        sizes = [(1, 1)]
        if groups:
            sizes += [(1, 2), (2, 1)]
            if math.comb(len(of_a), 2) * math.comb(len(of_b), 2) <= MAX_PAIR_EXCHANGES:
                sizes.append((2, 2))
        for n_a, n_b in sizes:
            for first in itertools.combinations(of_a, n_a):
                atoms = int(multiplicity[list(first)].sum())
                for second in itertools.combinations(of_b, n_b):
                    if int(multiplicity[list(second)].sum()) != atoms:
                        continue
                    if n_a == n_b == 1 and labels[first[0]] != labels[second[0]] and not groups:
                        continue
                    yield first, second


def _exchanged(current: list[str], first: tuple[int, ...], second: tuple[int, ...]) -> list[str]:
    """``current`` with the elements of the sites ``first`` and ``second`` exchanged."""
    a, b = current[first[0]], current[second[0]]
    trial = list(current)
    for k in first:
        trial[k] = b
    for k in second:
        trial[k] = a
    return trial


def _coordinates_for(elements: list[str], assigned: list[str], labels: Sequence[str]) -> np.ndarray:
    """permutation p with elements[k] == assigned[p[k]] and labels[k] == labels[p[k]] (each position once)."""
    free = list(range(len(elements)))
    permutation = np.empty(len(elements), dtype=int)
    for k, element in enumerate(elements):  # a site keeps its own coordinates when they still hold its element
        if assigned[k] == element:
            permutation[k] = k
            free.remove(k)
    for k, element in enumerate(elements):
        if assigned[k] != element:
            p = next(q for q in free if assigned[q] == element and labels[q] == labels[k])
            permutation[k] = p
            free.remove(p)
    return permutation
