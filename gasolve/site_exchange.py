"""Elements exchanged between sites of equal multiplicity when the fit says so: a last step of a solution.

A hypothesis of the composition race fixes which element sits on which Wyckoff position. A run can put every atom
in its place and two elements on each other's sites; when those sites lie on different Wyckoff positions of the
same multiplicity, no run of that hypothesis can repair it. Li2TiCo2O5 (C2, every metal on 2a or 2b) ended with
Ti twice on 2b and Co three times on 2a and once on 2b, where the structure has Ti on 2a and 2b and Co twice on
each: χ² 1.245 against the noise level 1.06, one exchange from the truth. Refinement programs test a site's
scatterer the same way: put the other element there and refine.

:func:`exchange_elements` tries every exchange of the coordinates (and Wyckoff positions) of two sites of different
elements and equal multiplicity, and every move of a site on a position without free coordinates to another such
position of the same multiplicity that no other fixed site holds. Na2Cu2Si4O11 (P-1) ended with one O on the
inversion centre 1c instead of 1b, and no run of that hypothesis can move it. The moves are ranked by Rwp before
refinement, the best :data:`SCREENED` refined, and the best one kept when its Rwp after refinement is more than
:data:`MIN_GAIN` below the model's; then again, at most :data:`MAX_ROUNDS` times. Elements an X-ray pattern barely
tells apart (atomic numbers within one, :func:`gasolve.crystal.bond_valence.alike_pairs`) are left to bond
valence, and H to the riding model.
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
    moves : tuple of (int, str, str)
        Site index, the fixed position it left and the one it took, in order.
    tried : int
        Exchanges refined.
    """

    frac: np.ndarray
    labels: tuple[str, ...]
    rwp: float
    exchanges: tuple[tuple[int, int], ...]
    tried: int
    moves: tuple[tuple[int, str, str], ...] = ()


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
    fixed_positions: dict[int, list[str]] | None = None,
) -> Exchanged:
    """Exchange and move sites while the fit improves (module docstring).

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
    fixed_positions : dict of int to list of str, optional
        Multiplicity -> the labels of the group's positions without free coordinates (no moves without it).

    Returns
    -------
    Exchanged
    """
    frac = np.array(frac, dtype=float)
    labels = tuple(labels)
    fixed_positions = fixed_positions or {}
    pairs = candidate_pairs(elements, multiplicity)
    exchanges: list[tuple[int, int]] = []
    moves: list[tuple[int, str, str]] = []
    tried = 0
    for _ in range(MAX_ROUNDS):
        screened = []
        for move, new_labels, order in _moves(labels, multiplicity, pairs, fixed_positions):
            scorer = scorer_for(new_labels)
            moved = scorer.project(frac[order][None])[0]
            screened.append((float(scorer.rwp(moved[None])[0]), move, new_labels, moved, scorer))
        screened.sort(key=lambda item: item[0])
        best = None
        for _, move, new_labels, moved, scorer in screened[:SCREENED]:
            tried += 1
            refined, after = refine(scorer, moved)
            if after < (1 - MIN_GAIN) * rwp and (best is None or after < best[0]):
                best = (after, move, new_labels, refined)
        if best is None:
            break
        rwp, move, new_labels, frac = best
        if isinstance(move[1], str):  # (site, the fixed position it takes)
            moves.append((move[0], labels[move[0]], move[1]))
        else:  # (site, site)
            exchanges.append(move)
        labels = new_labels
    return Exchanged(
        frac=frac, labels=labels, rwp=float(rwp), exchanges=tuple(exchanges), tried=tried, moves=tuple(moves)
    )


def _moves(labels, multiplicity, pairs, fixed_positions):
    """(move, new labels, coordinate order) of every exchange ((i, j)) and every move of a fixed site to a free
    fixed position of its multiplicity ((i, label))."""
    identity = np.arange(len(labels))
    for i, j in pairs:
        order = identity.copy()
        order[[i, j]] = [j, i]
        yield (i, j), tuple(labels[k] for k in order), order
    held = {label for i, label in enumerate(labels) if label in fixed_positions.get(multiplicity[i], ())}
    for i, label in enumerate(labels):
        if label not in fixed_positions.get(multiplicity[i], ()):
            continue
        for other in fixed_positions[multiplicity[i]]:
            if other not in held:
                yield (i, other), (*labels[:i], other, *labels[i + 1 :]), identity
