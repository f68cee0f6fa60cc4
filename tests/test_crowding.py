"""Crowding of atoms on the lines and planes of special positions (gasolve/hypotheses/crowding.py)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.wyckoff import wyckoff_positions
from gasolve.hypotheses import enumerate_assignments, parse_composition
from gasolve.hypotheses.crowding import MAX_CROWDING, crowding, locus, position_loci, too_crowded
from tests import naive

DATA = Path(__file__).parent / "data" / "cif"

#: Groups of every crystal family, with lines along rotation axes and planes of mirrors in several orientations
#: (hexagonal x,2x,z; cubic x,x,z; rhombohedral on hexagonal axes), on cells of their own metric.
GROUPS = [
    ("Pm", (4.76, 9.48, 4.79, 90, 91.2, 90)),
    ("P2_1/m", (5.1, 6.3, 7.2, 90, 103.0, 90)),
    ("Cmcm", (3.9, 11.2, 7.4, 90, 90, 90)),
    ("Pnma", (8.5, 5.4, 7.0, 90, 90, 90)),
    ("P4/mmm", (4.1, 4.1, 6.3, 90, 90, 90)),
    ("I4/mcm", (6.0, 6.0, 9.1, 90, 90, 90)),
    ("R-3m", (5.0, 5.0, 13.9, 90, 90, 120)),
    ("P6_3/mmc", (5.4, 5.4, 8.1, 90, 90, 120)),
    ("P-6m2", (4.3, 4.3, 5.2, 90, 90, 120)),
    ("Fm-3m", (7.7, 7.7, 7.7, 90, 90, 90)),
    ("Ia-3d", (12.0, 12.0, 12.0, 90, 90, 90)),
]


@pytest.mark.parametrize(("symbol", "parameters"), GROUPS)
def test_loci_agree_with_brute_force(symbol, parameters):
    group = SpaceGroup.from_symbol(symbol)
    cell = UnitCell.from_parameters(parameters)
    checked = 0
    for position in wyckoff_positions(group):
        expected = naive.wyckoff_locus(parameters, group.hall, position.matrix, position.offset)
        found = locus(position, group, cell)
        if expected is None:
            assert found is None
            continue
        assert found.dimension == len(position.free_parameters)
        assert (found.per_site, found.measure) == pytest.approx(expected, rel=1e-9), position.label
        checked += 1
    assert checked > 0


def test_pm_mirror_planes_by_hand():
    """Pm, 1a (x, 0, z): one atom per site on the plane y = 0, whose 2D cell is a x c sin(beta)."""
    parameters = (4.757761, 9.477822, 4.789148, 90.0, 91.18237, 90.0)
    loci = position_loci(SpaceGroup.from_symbol("Pm"), UnitCell.from_parameters(parameters))
    a, _, c, _, beta, _ = parameters
    assert set(loci) == {"1a", "1b"}
    assert loci["1a"].per_site == 1 and loci["1a"].dimension == 2
    assert loci["1a"].measure == pytest.approx(a * c * np.sin(np.radians(beta)))


#: Fe3(OF2)2 (mp-773751, Pm, Z = 2): its true assignment, and the one the prior ranked first before the
#: crowding check (every atom on the mirror planes: 8 atoms on y = 0 of a 4.8 x 4.8 A cell).
FE_CELL = (4.757761, 9.477822, 4.789148, 90.0, 91.18237, 90.0)
FE_TRUE = [("Fe", "2c"), ("Fe", "2c"), ("Fe", "1b"), ("Fe", "1a"), ("O", "2c"), ("O", "2c")] + [
    ("F", label) for label in ("2c", "2c", "1b", "1b", "1a", "1a")
]
FE_FLAT = (
    [("Fe", "1b")] * 5
    + [("Fe", "1a"), ("O", "2c"), ("O", "1a"), ("O", "1a"), ("F", "2c"), ("F", "1b")]
    + [("F", "1a")] * 5
)


def test_flat_assignment_is_refused_and_the_true_one_kept():
    loci = position_loci(SpaceGroup.from_symbol("Pm"), UnitCell.from_parameters(FE_CELL))
    assert not too_crowded(FE_TRUE, loci)
    assert max(crowding(FE_TRUE, loci).values()) < 0.8
    assert too_crowded(FE_FLAT, loci)
    assert crowding(FE_FLAT, loci)["1a"] > MAX_CROWDING[2]


def test_enumeration_drops_crowded_assignments_only():
    group, cell = SpaceGroup.from_symbol("Pm"), UnitCell.from_parameters(FE_CELL)
    composition = parse_composition("Fe3(OF2)2")
    loci = position_loci(group, cell)
    with_cell = [a.sites for a in itertools.islice(enumerate_assignments(composition, 2, group, cell), 5000)]
    without = [a.sites for a in itertools.islice(enumerate_assignments(composition, 2, group), 5000)]
    assert all(not too_crowded(sites, loci) for sites in with_cell)
    kept = set(with_cell)
    # without a cell there is no check; with it exactly the crowded ones (and fixed points too close) go
    assert len(kept) < len(without)
    assert all(too_crowded(sites, loci) for sites in without if sites not in kept)
    assert any(sorted(sites) == sorted(FE_TRUE) for sites in kept)


@pytest.mark.parametrize(
    "path", sorted(p for p in DATA.glob("*/*.cif") if p.parent.name in ("aflow-prototypes", "mp", "pyxtal-database"))
)
def test_real_structures_are_not_crowded(path):
    """The true assignment of every shipped structure passes (spglib's Wyckoff letters, standard cell)."""
    pymatgen = pytest.importorskip("pymatgen.core")
    from benchmarks.z_window import true_assignment

    structure = pymatgen.Structure.from_file(path)
    number, parameters, sites, _ = true_assignment(structure)
    loci = position_loci(SpaceGroup.from_symbol(int(number)), UnitCell.from_parameters(parameters))
    listed = [(e, label) for (e, label), count in sites.items() for _ in range(count)]
    assert not too_crowded(listed, loci), crowding(listed, loci)
