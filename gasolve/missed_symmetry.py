"""Missed symmetry of a solved model: its atoms repeat in a smaller cell, or obey a larger space group.

Indexing can prefer a supercell: impurity lines, or a few lines of a light-atom superstructure that is not there,
are then indexed as well, and the supercell wins on the number of lines it explains. A search in that cell still
finds the structure, but with twice the free coordinates; the surplus fits the noise and breaks the small cell's
periodicity by a few tenths of an ångström. In the same way a race can end in a subgroup of the true group (a
polar Pna2_1 model of a Pnma structure, P2_1 for P2_1/m): it fits as well, with more free coordinates. A
crystallographer checks a solution for missed symmetry (PLATON's ADDSYM: Le Page, J. Appl. Cryst. 21 (1988)
983-984; Spek, Acta Cryst. D65 (2009) 148-155) and refines in the higher symmetry when the fit holds; so does
:mod:`gasolve.cli.solve`, with the symmetry found by spglib (Togo & Tanaka, arXiv:1808.01590) at a tolerance of a
few tenths of an ångström and the fit judged by Hamilton's R-factor ratio test (Hamilton, Acta Cryst. 18 (1965)
502-510).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.stats
import spglib

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import bravais_symbol
from gasolve.crystal.structure import Structure
from gasolve.indexing.lattice import cell_parameters

#: Tolerances (Å, spglib's symprec: a Cartesian distance) tried from the smallest: the first that shows more
#: symmetry is taken. A search in a supercell broke the small cell's periodicity by 0.2-0.3 Å (LiSm2IrO6,
#: P2_1/c searched in a doubled cell); a false subcell at the largest tolerance costs one attempt, and Hamilton's
#: test rejects it.
TOLERANCES = (0.1, 0.2, 0.3, 0.4)
#: Tolerance (Å) at which spglib must be able to read the model (atoms on top of each other it cannot).
TIGHT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class MissedSymmetry:
    """Symmetry that a model's atoms have beyond its space group, within a tolerance.

    Attributes
    ----------
    kind : str
        "subcell" (the atoms repeat in a smaller primitive cell) or "supergroup" (the same primitive cell, more
        symmetry operations).
    cell : UnitCell
        Conventional standard cell of the symmetrised model (spglib's standardisation; an A-centred one with its
        axes permuted to the C-centred cell that ``bravais`` oC means).
    bravais : str
        Its Bravais lattice (aP, mP, mC, ..., cF).
    space_group : int
        The space group number spglib finds at ``tolerance``.
    symbol : str
        Its Hermann-Mauguin symbol.
    tolerance : float
        The tolerance (Å) at which it was found.
    primitive_atoms, model_primitive_atoms : int
        Atoms in the primitive cell of the symmetrised model and of the model itself (the cell's atoms over its
        group's centring translations).
    operations, model_operations : int
        Symmetry operations (centring translations included) that map the model's cell onto itself at
        ``tolerance``, and those of the model's own space group.
    sites : tuple of (str, str)
        The symmetrised model's independent sites, (element, Wyckoff label such as "4e") in ``cell`` and the
        group's standard setting: the hypothesis that the model already is.
    """

    kind: str
    cell: UnitCell
    bravais: str
    space_group: int
    symbol: str
    tolerance: float
    primitive_atoms: int
    model_primitive_atoms: int
    operations: int
    model_operations: int
    sites: tuple[tuple[str, str], ...] = ()


def _spglib_cell(structure: Structure) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from pymatgen.core.periodic_table import Element

    elements, frac, *_ = structure.expand()
    numbers = np.array([Element(e).Z for e in elements], dtype=int)
    return structure.cell.matrix, np.asarray(frac, dtype=float), numbers


def _c_centred(lattice: np.ndarray, symbol: str) -> np.ndarray:
    """The lattice vectors (rows, Å) of an A-centred standard cell (spglib's Amm2, Aem2, Ama2, Aea2) permuted
    cyclically, (a, b, c) -> (b, c, a), to the C-centred cell that an oC lattice means here; others as given."""
    return lattice[[1, 2, 0]] if symbol.startswith("A") else lattice


def _wyckoff_sites(conventional, tolerance: float) -> tuple[tuple[str, str], ...]:
    """(element, Wyckoff label) of each orbit of spglib's standardised (symmetrised) conventional cell."""
    from pymatgen.core.periodic_table import Element

    dataset = spglib.get_symmetry_dataset(conventional, symprec=tolerance)
    if dataset is None:
        return ()
    orbits = np.asarray(dataset.equivalent_atoms)
    numbers = np.asarray(conventional[2])
    sites = []
    for representative in np.unique(orbits):
        multiplicity = int(np.count_nonzero(orbits == representative))
        sites.append(
            (Element.from_Z(int(numbers[representative])).symbol, f"{multiplicity}{dataset.wyckoffs[representative]}")
        )
    return tuple(sorted(sites))


def missed_symmetry(structure: Structure, tolerances: tuple[float, ...] = TOLERANCES) -> MissedSymmetry | None:
    """The symmetry that the atoms of ``structure`` have beyond its own within a tolerance, or None.

    Parameters
    ----------
    structure : Structure
        A solved model (any space group; its atoms are expanded to the cell).
    tolerances : tuple of float
        Tolerances (Å) tried in increasing order.

    Returns
    -------
    MissedSymmetry or None
        At the smallest tolerance at which more symmetry operations map the model's cell onto itself than its
        space group has: a "subcell" when they include translations that make the primitive cell smaller, else a
        "supergroup". None when no tolerance finds more.

    Notes
    -----
    The baseline is the model's space group, not the symmetry spglib reads at a tight tolerance: a model of a
    polar subgroup whose refinement put its atoms exactly on the centric positions (rutile's P4_2nm model with
    O at z = 0) has the supergroup's symmetry to the last digit, and is the plainest case of a missed one.
    """
    cell = _spglib_cell(structure)
    with warnings.catch_warnings():  # spglib 2.x warns about its legacy error handling on every call
        warnings.simplefilter("ignore")
        if spglib.get_symmetry_dataset(cell, symprec=TIGHT_TOLERANCE) is None:  # atoms on top of each other
            return None
        model_operations = structure.space_group.n_ops
        model_atoms = len(cell[2]) // len(structure.space_group.centring)
        for tolerance in tolerances:
            dataset = spglib.get_symmetry_dataset(cell, symprec=tolerance)
            if dataset is None or len(dataset.rotations) <= model_operations:
                continue
            primitive = spglib.standardize_cell(cell, to_primitive=True, symprec=tolerance)
            conventional = spglib.standardize_cell(cell, to_primitive=False, symprec=tolerance)
            if primitive is None or conventional is None:
                continue
            return MissedSymmetry(
                kind="subcell" if len(primitive[2]) < model_atoms else "supergroup",
                sites=_wyckoff_sites(conventional, tolerance),
                cell=UnitCell(*cell_parameters(_c_centred(np.asarray(conventional[0]), str(dataset.international)))),
                bravais=bravais_symbol(int(dataset.number)),
                space_group=int(dataset.number),
                symbol=str(dataset.international),
                tolerance=float(tolerance),
                primitive_atoms=len(primitive[2]),
                model_primitive_atoms=model_atoms,
                operations=len(dataset.rotations),
                model_operations=model_operations,
            )
    return None


def hamilton_ratio(restrictions: int, observations: int, parameters: int, alpha: float = 0.05) -> float:
    """Hamilton's critical ratio R(b, n - m, α) of weighted R factors (Hamilton 1965).

    A restricted model (``restrictions`` = b fewer parameters) is rejected at significance α when its Rwp exceeds
    the unrestricted model's by more than this ratio: R = √(b F(b, n - m; 1 - α) / (n - m) + 1).

    Parameters
    ----------
    restrictions : int
        b, parameters the restricted model lacks (≥ 1).
    observations : int
        n, observations (profile points).
    parameters : int
        m, parameters of the unrestricted model.
    alpha : float
        Significance level.

    Returns
    -------
    float
        The critical ratio (> 1).
    """
    b = max(int(restrictions), 1)
    freedom = max(int(observations) - int(parameters), 1)
    return math.sqrt(b * float(scipy.stats.f.ppf(1.0 - alpha, b, freedom)) / freedom + 1.0)
