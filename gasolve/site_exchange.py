"""Elements exchanged between sites of equal multiplicity when the fit says so: a last step of a solution.

A hypothesis of the composition race fixes which element sits on which Wyckoff position. A run can put every atom
in its place and two elements on each other's sites; when those sites lie on different Wyckoff positions of the
same multiplicity, no run of that hypothesis can repair it. Li2TiCo2O5 (C2, every metal on 2a or 2b) ended with
Ti twice on 2b and Co three times on 2a and once on 2b, where the structure has Ti on 2a and 2b and Co twice on
each: χ² 1.245 against the noise level 1.06, one exchange from the truth. Refinement programs test a site's
scatterer the same way: put the other element there and refine.

:func:`exchange_elements` tries every exchange of the coordinates (and Wyckoff positions) of two sites of different
elements and equal multiplicity, ranks them by Rwp before refinement, refines the best :data:`SCREENED` and keeps
the best one when its Rwp after refinement is more than :data:`MIN_GAIN` below the model's; then again, at most
:data:`MAX_ROUNDS` times. Elements an X-ray pattern barely tells apart (atomic numbers within one,
:func:`gasolve.crystal.bond_valence.alike_pairs`) are left to bond valence, and H to the riding model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers

from gasolve.crystal.xray_visibility import undetermined

#: An exchange is kept when it lowers Rwp after refinement by more than this fraction.
MIN_GAIN = 0.01
#: Exchanges refined per round: the best by Rwp before refinement.
SCREENED = 4
#: Rounds of exchanges at most.
MAX_ROUNDS = 3


@dataclass(frozen=True)
class Exchanged:
    """The model after :func:`exchange_elements`.

    Attributes
    ----------
    frac : ndarray, shape (n_sites, 3)
        Coordinates of each site (the sites keep their elements; their coordinates and positions moved).
    labels : tuple of str
        Wyckoff label of each site.
    rwp : float
        After refinement.
    exchanges : tuple of (int, int)
        Site indices exchanged, in order.
    tried : int
        Exchanges refined.
    """

    frac: np.ndarray
    labels: tuple[str, ...]
    rwp: float
    exchanges: tuple[tuple[int, int], ...]
    tried: int


def candidate_pairs(elements: Sequence[str], multiplicity: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs of sites (i < j) whose exchange the pattern can judge: different elements more than one atomic
    number apart, neither H, equal multiplicity."""
    z = [atomic_numbers[str(e)] for e in elements]
    hidden = undetermined(list(elements))
    pairs = []
    for i in range(len(elements)):
        for j in range(i + 1, len(elements)):
            if elements[i] == elements[j] or multiplicity[i] != multiplicity[j]:
                continue
            if hidden[i] or hidden[j]:
                continue
            if abs(z[i] - z[j]) <= 1:
                continue
            pairs.append((i, j))
    return pairs


def exchange_elements(
    scorer_for: Callable[[tuple[str, ...]], object],
    refine: Callable[[object, np.ndarray], tuple[np.ndarray, float]],
    frac: np.ndarray,
    labels: Sequence[str],
    elements: Sequence[str],
    multiplicity: Sequence[int],
    rwp: float,
) -> Exchanged:
    """Exchange sites while the fit improves (module docstring).

    Parameters
    ----------
    scorer_for : callable
        Wyckoff labels (one per site) -> the model scorer that reads coordinates on those positions.
    refine : callable
        (scorer, frac (n_sites, 3)) -> (refined frac (n_sites, 3), Rwp after refinement).
    frac : ndarray, shape (n_sites, 3)
        The refined model.
    labels : sequence of str
        Wyckoff label of each site ("general" for every site of a run without Wyckoff positions).
    elements : sequence of str
    multiplicity : sequence of int
        Atoms each site puts in the cell.
    rwp : float
        The model's Rwp.

    Returns
    -------
    Exchanged
    """
    frac = np.array(frac, dtype=float)
    labels = tuple(labels)
    pairs = candidate_pairs(elements, multiplicity)
    done: list[tuple[int, int]] = []
    tried = 0
    for _ in range(MAX_ROUNDS):
        screened = []
        for i, j in pairs:
            order = np.arange(len(frac))
            order[[i, j]] = [j, i]
            swapped_labels = tuple(labels[k] for k in order)
            scorer = scorer_for(swapped_labels)
            swapped = scorer.project(frac[order][None])[0]
            screened.append((float(scorer.rwp(swapped[None])[0]), (i, j), swapped_labels, swapped, scorer))
        screened.sort(key=lambda item: item[0])
        best = None
        for _, pair, swapped_labels, swapped, scorer in screened[:SCREENED]:
            tried += 1
            refined, after = refine(scorer, swapped)
            if after < (1 - MIN_GAIN) * rwp and (best is None or after < best[0]):
                best = (after, pair, swapped_labels, refined)
        if best is None:
            break
        rwp, pair, labels, frac = best
        done.append(pair)
    return Exchanged(frac=frac, labels=labels, rwp=float(rwp), exchanges=tuple(done), tried=tried)
