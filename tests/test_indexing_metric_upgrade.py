"""A lower-symmetry solution whose metric is within 0.25 % of a higher lattice is taken in that lattice when its
lines still index (pseudo-cubic Ce2USe4, tI, came out of the orthorhombic search as oI)."""

from __future__ import annotations

import numpy as np

from gasolve.indexing.lattice import calculated_q, primitive_basis
from gasolve.indexing.solutions import metric_upgrade

TRUE_CELL = (8.8733, 8.8733, 8.8323, 90.0, 90.0, 90.0)  # Ce2USe4, I-42d
DRIFTED = (8.835191, 8.865621, 8.874999, 90.0, 90.0, 90.0)  # the oI cell the orthorhombic search returned


def _lines(n: int = 20):
    q = calculated_q(TRUE_CELL, "tI", 0.4)[:n]
    return q, np.full(len(q), 1e-4), np.ones(len(q), dtype=bool)  # about 0.01° in 2θ at 30° (Cu)


def test_an_orthorhombic_cell_near_tetragonal_is_upgraded_and_refitted():
    q_obs, q_tol, indexed = _lines()
    upgraded = metric_upgrade(primitive_basis(DRIFTED, "I"), "orthorhombic", q_obs, q_tol, indexed)
    assert upgraded is not None
    bravais, system, cell = upgraded
    assert (bravais, system) == ("tI", "tetragonal")
    a, b, c = sorted(cell[:3])[::-1]
    assert abs(a - 8.8733) < 2e-3 and abs(b - 8.8733) < 2e-3 and abs(c - 8.8323) < 2e-3


def test_a_genuinely_orthorhombic_cell_stays():
    cell = (8.70, 8.80, 8.95, 90.0, 90.0, 90.0)  # edges 1-3 % apart: beyond the tolerance
    q = calculated_q(cell, "oI", 0.4)[:20]
    assert (
        metric_upgrade(primitive_basis(cell, "I"), "orthorhombic", q, np.full(len(q), 2e-5), np.ones(len(q), bool))
        is None
    )


def test_lines_the_higher_lattice_cannot_index_keep_the_lower_one():
    # An orthorhombic cell 0.2 % from tetragonal, but with lines that only its own metric places.
    cell = (8.855, 8.873, 8.832, 90.0, 90.0, 90.0)
    q = calculated_q(cell, "oI", 0.4)[:24]
    tol = np.full(len(q), 2e-6)  # tight: the split lines are told apart
    assert metric_upgrade(primitive_basis(cell, "I"), "orthorhombic", q, tol, np.ones(len(q), bool)) is None
