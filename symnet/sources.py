"""Where training structures come from: the Materials Project set and random crystals from PyXtal.

* :func:`read_mp_catalogue` / :func:`iter_mp_cifs`: the 36,737 Materials Project structures of
  ``shared/data/mp-structures`` (P1 CIFs as written by pymatgen, CC BY 4.0) with their space group found by spglib
  at symprec 0.1 (``index.csv``).
* :func:`random_crystal`: a random crystal of a given space group from PyXtal (Fredericks, Parrish, Sayre & Zhu,
  Comput. Phys. Commun. 261 (2021) 107810), the paper's suggested remedy for rare groups. Its composition is the
  element set of a randomly chosen real compound; each element occupies one or two Wyckoff positions drawn
  uniformly from the group's list, so special positions are as common as they are in the tables. The label is
  the space group spglib finds in the result (symprec 0.1, as for the Materials Project set).
"""

from __future__ import annotations

import csv
import gzip
import re
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gasolve.crystal import SpaceGroup, Structure, UnitCell
from gasolve.crystal.structure import Site

_ELEMENT = re.compile(r"([A-Z][a-z]?)")


@dataclass(frozen=True)
class CatalogueEntry:
    """One structure of a source.

    Attributes
    ----------
    source : str
        ``"mp"`` or ``"pyxtal"``.
    identifier : str
        Material id, or ``pyxtal-<group>-<n>``.
    formula : str
        Reduced formula.
    chemical_system : str
        Sorted element symbols joined by ``-`` (the composition key of the held-out-by-composition split).
    space_group : int
        1-230.
    """

    source: str
    identifier: str
    formula: str
    chemical_system: str
    space_group: int


def chemical_system(formula: str) -> str:
    """'Fe2O3' -> 'Fe-O'."""
    return "-".join(sorted(set(_ELEMENT.findall(formula))))


def read_mp_catalogue(index_csv: str | Path) -> list[CatalogueEntry]:
    """Entries of ``mp-structures/index.csv`` in file order."""
    entries = []
    with open(index_csv, newline="", encoding="utf-8") as stream:
        for row in csv.DictReader(stream):
            formula = row["reduced_formula"]
            entries.append(
                CatalogueEntry("mp", row["material_id"], formula, chemical_system(formula), int(row[list(row)[-1]]))
            )
    return entries


def iter_mp_cifs(structures_csv_gz: str | Path) -> Iterator[tuple[str, str]]:
    """(material_id, CIF text) of ``mp-structures/structures.csv.gz`` in file order."""
    csv.field_size_limit(1 << 30)
    with gzip.open(structures_csv_gz, "rt", encoding="utf-8", newline="") as stream:
        for row in csv.DictReader(stream):
            yield row["material_id"], row["cif"]


def structure_from_cell(cellpar: np.ndarray, symbols: list[str], scaled_positions: np.ndarray, name: str) -> Structure:
    """A P1 :class:`Structure` holding every atom of a cell (``cellpar`` a, b, c Å, α, β, γ degrees)."""
    sites = tuple(
        Site(f"{symbol}{i}", symbol, tuple(np.mod(position, 1.0)))
        for i, (symbol, position) in enumerate(zip(symbols, scaled_positions, strict=True))
    )
    return Structure(UnitCell(*map(float, cellpar)), SpaceGroup.from_symbol("P1"), sites, name=name)


def spglib_number(cellpar: np.ndarray, symbols: list[str], scaled_positions: np.ndarray, symprec: float = 0.1) -> int:
    """Space-group number found by spglib (0 if it finds none)."""
    import spglib
    from ase.geometry import cellpar_to_cell

    numbers = [_atomic_number(s) for s in symbols]
    found = spglib.get_symmetry_dataset((cellpar_to_cell(cellpar), scaled_positions, numbers), symprec=symprec)
    return int(found.number) if found is not None else 0


def _atomic_number(symbol: str) -> int:
    import gemmi

    return gemmi.Element(symbol).atomic_number


class _Timeout(BaseException):  # not Exception: PyXtal catches those internally
    pass


@contextmanager
def _time_limit(seconds: float):
    """Raise :class:`_Timeout` after ``seconds`` (SIGALRM; only in a process's main thread, else no limit)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def random_crystal(
    space_group: int,
    elements: list[str],
    rng: np.random.Generator,
    max_atoms: int = 120,
    attempts: int = 10,
    seconds: float = 3.0,
) -> tuple[Structure, int] | None:
    """A random crystal of ``space_group`` built from ``elements`` by PyXtal.

    Parameters
    ----------
    space_group : int
        1-230.
    elements : list of str
        Distinct element symbols.
    rng : numpy.random.Generator
        Draws the Wyckoff positions and PyXtal's random state.
    max_atoms : int
        Largest number of atoms in the conventional cell.
    attempts : int
        Compositions tried before giving up.
    seconds : float
        Time allowed to PyXtal for one composition (some compositions make it search for minutes).

    Returns
    -------
    (Structure, int) or None
        The P1 cell and the space group spglib finds in it; None when PyXtal found no crystal.
    """
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    group = Group(space_group)
    multiplicities = np.array([w.multiplicity for w in group.Wyckoff_positions])
    for _ in range(attempts):
        counts = [int(rng.choice(multiplicities, size=rng.integers(1, 3)).sum()) for _ in elements]
        if sum(counts) > max_atoms:
            continue
        crystal = pyxtal()
        try:
            with warnings.catch_warnings(), _time_limit(seconds):
                warnings.simplefilter("ignore")
                crystal.from_random(3, space_group, list(elements), counts, random_state=int(rng.integers(2**31)))
        except (Exception, _Timeout):  # PyXtal raises many types when a composition does not fit the group
            continue
        if not crystal.valid:
            continue
        atoms = crystal.to_ase()
        cellpar, symbols, positions = atoms.cell.cellpar(), atoms.get_chemical_symbols(), atoms.get_scaled_positions()
        try:
            structure = structure_from_cell(cellpar, symbols, positions, f"pyxtal-{space_group}")
        except ValueError:
            continue
        return structure, spglib_number(cellpar, symbols, positions)
    return None
