"""The floating origin of polar groups: directions in all 530 settings of spglib, and the slots that hold it."""

from __future__ import annotations

import numpy as np
import pytest
import spglib

from gasolve.crystal.origin import held_coordinates, origin_fixing_slots, polar_directions
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.wyckoff import SiteMap

# International Tables Vol. A, Table 10.2.1.3 (polar crystal classes) and the dimension of the subspace a polar
# direction spans: three in 1, the mirror plane in m, one axis in the others. Every other class has none.
POLAR_CLASSES = {"1": 3, "m": 2, "2": 1, "mm2": 1, "4": 1, "4mm": 1, "3": 1, "3m": 1, "6": 1, "6mm": 1}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_polar_directions_in_every_setting_match_the_polar_classes():
    for hall in range(1, 531):
        kind = spglib.get_spacegroup_type(hall)
        group = SpaceGroup.from_symbol(f"Hall: {kind.hall_symbol}")
        directions = polar_directions(group)
        assert len(directions) == POLAR_CLASSES.get(kind.pointgroup_international, 0), (hall, kind.hall_symbol)
        rotations = spglib.get_symmetry_from_database(hall)["rotations"]
        for direction in directions:  # invariant under every rotation of spglib's table
            np.testing.assert_allclose(
                np.einsum("sij,j->si", rotations, direction), np.tile(direction, (len(rotations), 1)), atol=1e-9
            )


@pytest.mark.parametrize(
    ("symbol", "directions"),
    [
        ("P6_3mc", [[0, 0, 1]]),
        ("Cm", [[1, 0, 0], [0, 0, 1]]),
        ("P 1 1 m", [[1, 0, 0], [0, 1, 0]]),
        ("P2_1", [[0, 1, 0]]),
        ("R3:R", [[1, 1, 1]]),
        ("R3m:R", [[1, 1, 1]]),
        ("R3m:H", [[0, 0, 1]]),
        ("P1", np.eye(3).tolist()),
        ("P-1", []),
        ("Fdd2", [[0, 0, 1]]),
    ],
)
def test_known_polar_directions(symbol, directions):
    np.testing.assert_array_equal(polar_directions(SpaceGroup.from_symbol(symbol)), np.reshape(directions, (-1, 3)))


def test_the_heaviest_site_holds_the_origin_through_its_wyckoff_position():
    group = SpaceGroup.from_symbol("R3m")  # hexagonal axes: polar along c
    site_map = SiteMap.from_labels(group, ["18c", "3a", "9b"])
    slots = origin_fixing_slots(group, ["O", "Bi", "O"], site_map.matrix)
    np.testing.assert_array_equal(np.flatnonzero(slots), [5])  # Bi z of (0, 0, z)
    np.testing.assert_array_equal(held_coordinates(slots, site_map.matrix), [[0, 0, 0], [0, 0, 1], [0, 0, 0]])
    rhombohedral = SpaceGroup.from_symbol("R3:R")
    slots = origin_fixing_slots(rhombohedral, ["O", "Pb"])
    np.testing.assert_array_equal(np.flatnonzero(slots), [3])  # one coordinate of Pb pins the shift along [111]
    assert not origin_fixing_slots(SpaceGroup.from_symbol("Pnma"), ["Pb", "O"]).any()


def test_holding_the_slots_removes_every_continuous_shift():
    """Shifting all sites along a polar direction must move a held coordinate, in every polar group."""
    rng = np.random.default_rng(0)
    for symbol in ("P1", "P2_1", "Cm", "Pmn2_1", "I4", "P4mm", "P3", "R3:R", "R3m:R", "P6_3", "P6_3mc", "Fdd2"):
        group = SpaceGroup.from_symbol(symbol)
        slots = origin_fixing_slots(group, ["O", "Ba", "S"]).reshape(3, 3)
        for direction in polar_directions(group):
            shift = np.tile(direction * rng.uniform(0.1, 0.4), (3, 1))
            assert np.any(np.abs(shift[slots]) > 1e-9), symbol
        moves = np.zeros((len(polar_directions(group)), 9))  # independent: the held slots determine every shift
        for k, direction in enumerate(polar_directions(group)):
            moves[k] = np.tile(direction, 3)
        assert np.linalg.matrix_rank(moves[:, slots.ravel()]) == len(moves), symbol
