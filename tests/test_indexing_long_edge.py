"""Cell edges beyond 20 Å (gasolve.indexing.dichotomy.edge_limit): the longest edge searched follows the crystal
system, the lines and the volume limit, and a hexagonal cell with c = 27.2 Å is found from its simulated pattern."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path

from gasolve.crystal.cif_io import parse_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.indexing.dichotomy import DichotomySettings, edge_limit
from gasolve.indexing.pattern import IndexingSettings, index_pattern
from gasolve.indexing.solutions import index_lines
from gasolve.io.patterns import ObservedPattern, counting_sigma

CUKA1 = parse_radiation("CuKa1")


def test_edge_limit_hand_checked():
    q = np.array([1 / 13.6**2, 0.1])  # first line at d = 13.6 Å
    # Hexagonal: 6 d = 81.6 Å, below 1500 / 2² = 375 Å; tetragonal 4 d = 54.4 Å.
    assert edge_limit("hexagonal", q, 1500.0, 2.0) == pytest.approx(81.6)
    assert edge_limit("tetragonal", q, 1500.0, 2.0) == pytest.approx(54.4)
    # Monoclinic: 2 d / sin 125° = 27.2 / 0.819152 = 33.205 Å.
    assert edge_limit("monoclinic", q, 1500.0, 2.0, 125.0) == pytest.approx(33.205, rel=1e-4)
    # A small volume limit binds instead: 100 / 2² = 25 Å; short lines leave the former 20 Å as the floor.
    assert edge_limit("hexagonal", q, 100.0, 2.0) == pytest.approx(25.0)
    assert edge_limit("monoclinic", np.array([1 / 4.0**2]), 1500.0, 2.0, 125.0) == pytest.approx(20.0)


@pytest.fixture(scope="module")
def tase2():
    """2H-type TaSe2 polytype mp-501 (P6_3/mmc, a = 3.488, c = 27.248 Å, from ../shared/data/mp-structures),
    simulated with Cu Kα1, 5-80°, Poisson counts."""
    import pandas as pd

    table = pd.read_csv(data_path("mp-structures/structures.csv.gz"))
    structure = parse_cif(table.loc[table.material_id == "mp-501", "cif"].iloc[0], "mp-501")
    two_theta = np.round(np.arange(5.0, 80.0 + 1e-9, 0.01), 10)
    sim = simulate(structure, two_theta, CUKA1, PeakProfile.constant_fwhm(0.07, eta=0.5), np.array([100.0]))
    scale = 30000.0 / sim.peaks.max()
    y = np.random.default_rng(7).poisson(scale * sim.peaks + sim.background).astype(float)
    return ObservedPattern(two_theta, y, counting_sigma(y), "TaSe2-mp-501")


def test_a_27_angstrom_edge_is_found_and_the_old_20_angstrom_limit_missed_it(tase2):
    settings = IndexingSettings(systems=("hexagonal",), n_pawley=0, retry_unindexed=0)
    result = index_pattern(tase2, CUKA1, settings)
    best = result.candidates[0].solution
    assert best.bravais == "hP"
    assert best.cell[0] == pytest.approx(3.488, rel=0.002) and best.cell[2] == pytest.approx(27.248, rel=0.002)
    assert best.m20 > 20
    # The same lines with edges limited to 20 Å, as before: no cell with the 27 Å axis.
    q = (2 * np.sin(np.radians(result.two_theta) / 2) / CUKA1.primary) ** 2
    q_tol = 2 * np.sin(np.radians(result.two_theta)) / CUKA1.primary**2 * np.radians(0.02)
    old = index_lines(q, q_tol, DichotomySettings(max_length=20.0, max_unindexed=1), systems=("hexagonal",))
    assert not any(s.cell[2] > 25 for s in old)
    new = index_lines(q, q_tol, DichotomySettings(max_unindexed=1), systems=("hexagonal",))
    assert any(abs(s.cell[2] - 27.248) < 0.1 for s in new)
