"""A monoclinic volume sub-shell whose dichotomy runs into the box limit before any solution is searched again as
two halves (down to ``MONOCLINIC_MIN_SHELL_WIDTH``), so that a cell just past the limit is not lost with it."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.indexing import solutions
from gasolve.indexing.dichotomy import DichotomySettings, surviving_boxes
from gasolve.indexing.figures_of_merit import q_from_two_theta
from gasolve.indexing.lattice import niggli_cell, primitive_basis, same_lattice
from gasolve.indexing.solutions import MONOCLINIC_MIN_SHELL_WIDTH, index_lines, search_system

#: Cu Kα1 (Å), the primary line of the pattern the lines below come from.
WAVELENGTH = 1.5405981
#: The first 20 lines of the peak search on the blind benchmark's simulated Cs2Sr2O3 pattern (mp-753801, P2_1/c,
#: Cu Kα1+Kα2, zero +0.010°; benchmarks/broad.py, seed 0), degrees 2θ. Their esds are all below 0.02°/3, so the
#: tolerance is the 0.02° floor. Two lines are blends (26.661°: 002 with 11-2 0.10° above; 27.485°: 200 with 21-1
#: 0.09° below), 0.012° and 0.011° from the stronger reflection.
TWO_THETA = np.array(
    [18.0624, 25.8425, 26.6607, 27.2071, 27.4853, 27.7137, 28.6530, 29.2200, 30.0002, 33.1816,
     33.9149, 35.1974, 36.5907, 37.4827, 38.3437, 39.5695, 40.2025, 42.9547, 43.8454, 44.9394]
)  # fmt: skip
#: The reference cell (Materials Project, P2_1/c), Å and degrees.
CELL = (7.22712, 7.515486, 7.452752, 90.0, 116.198463, 90.0)


def _lines() -> tuple[np.ndarray, np.ndarray]:
    # The tolerance as PeakSet.q_values gives it: |dQ/d(2θ)| times 0.02°.
    q = q_from_two_theta(TWO_THETA, WAVELENGTH)
    q_tol = 2.0 * np.sin(np.radians(TWO_THETA)) / WAVELENGTH**2 * np.radians(0.02)
    return q, q_tol


def test_a_cell_in_an_overflowing_sub_shell_is_found(monkeypatch):
    # At the grid's zero 0 the 300-400 Å³ sub-shell holding the cell (363 Å³) runs just past the box limit at
    # level 3 (2,031,225 boxes from these lines); its halves do not, and the upper one gives the cell. Before the
    # halving, that overflow with no solution yet ended the monoclinic search (a RuntimeError here; in
    # index_pattern, the search at every zero shift, and `gasolve solve` exited 2).
    searched = {}

    def recorded(system, q_obs, q_tol, settings, volume_shell=None, budget=None):
        try:
            lo, hi = surviving_boxes(system, q_obs, q_tol, settings, volume_shell=volume_shell, budget=budget)
        except RuntimeError:
            searched[volume_shell] = None
            raise
        searched[volume_shell] = len(lo)
        return lo, hi

    monkeypatch.setattr(solutions, "surviving_boxes", recorded)
    q, q_tol = _lines()
    found = index_lines(q, q_tol, DichotomySettings(max_unindexed=1, max_volume=400.0), systems=("monoclinic",))
    assert searched[(300.0, 400.0)] is None and searched[(300.0, 350.0)] is not None and searched[(350.0, 400.0)]
    assert found
    best = found[0]
    assert best.bravais == "mP" and best.n_indexed == best.n_lines == 20 and best.m20 > 20
    assert same_lattice(best.niggli, niggli_cell(primitive_basis(CELL, "P")), length_tol=0.005, angle_tol=0.3)


def test_halving_stops_at_the_narrowest_shell(monkeypatch):
    # A pattern whose boxes overflow everywhere (a triclinic lattice's lines in the monoclinic search) still ends
    # in an overflow, at the first sub-shell halved down to the narrowest width, and says where.
    shells = []

    def overflowing(system, q_obs, q_tol, settings, volume_shell=None, budget=None):
        shells.append(volume_shell)
        raise RuntimeError(f"{system}: 2000001 boxes survive at level 3")

    monkeypatch.setattr(solutions, "surviving_boxes", overflowing)
    q, q_tol = _lines()
    with pytest.raises(RuntimeError, match=r"boxes survive at level 3 \(in the shell 0-25 Å³\)"):
        search_system("monoclinic", q, q_tol, DichotomySettings(max_unindexed=1))
    assert shells == [(0.0, 100.0), (0.0, 50.0), (0.0, 25.0)]
    assert MONOCLINIC_MIN_SHELL_WIDTH == 25.0
    # Other systems are not halved: their overflow is raised as it comes.
    shells.clear()
    with pytest.raises(RuntimeError, match="boxes survive"):
        search_system("orthorhombic", q, q_tol, DichotomySettings(max_unindexed=1))
    assert shells == [(0.0, 400.0)]


def test_the_search_still_ends_with_the_sub_shell_that_overflowed(monkeypatch):
    # Its halves are searched, but not the larger sub-shells, which would overflow further (a triclinic lattice's
    # lines, the blind benchmark's LiV5O10, went from 600 to 975 Å³ without this end: 63 s of CPU instead of 7).
    shells = []

    def first_overflows(system, q_obs, q_tol, settings, volume_shell=None, budget=None):
        shells.append(volume_shell)
        if volume_shell == (0.0, 100.0):
            raise RuntimeError(f"{system}: 2000001 boxes survive at level 3")
        return np.zeros((0, 4)), np.zeros((0, 4))

    monkeypatch.setattr(solutions, "surviving_boxes", first_overflows)
    q, q_tol = _lines()
    with pytest.raises(RuntimeError, match=r"level 3 \(in the shell 0-100 Å³\)"):
        search_system("monoclinic", q, q_tol, DichotomySettings(max_unindexed=1))
    assert shells == [(0.0, 100.0), (0.0, 50.0), (50.0, 100.0)]
