"""Zero shift from the orders of one reflection (gasolve.indexing.zero.order_zeros)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gasolve.indexing.pattern import zero_grid
from gasolve.indexing.zero import order_zeros

WAVELENGTH = 1.540598


def _triclinic_lines(zero: float) -> np.ndarray:
    """The first 20 distinct lines of a triclinic cell (4.1, 5.2, 6.3 Å, 82, 86, 97°), shifted by ``zero``."""
    from gasolve.crystal.cell import UnitCell

    g_star = np.linalg.inv(UnitCell(4.1, 5.2, 6.3, 82.0, 86.0, 97.0).metric)
    r = np.arange(-4, 5)
    hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    q = np.einsum("ni,ij,nj->n", hkl, g_star, hkl)
    q = np.unique(np.round(q[q > 0], 8))[:20]
    return 2 * np.degrees(np.arcsin(WAVELENGTH * np.sqrt(q) / 2)) + zero


@pytest.mark.parametrize("zero", [-0.08, 0.0, 0.12])
def test_the_zero_of_a_shifted_triclinic_line_list_comes_first(zero):
    grid = zero_grid(0.04, 0.12)
    ordered, support = order_zeros(_triclinic_lines(zero), grid)
    assert ordered[0] == pytest.approx(zero)
    assert support[0] > support[1]
    assert sorted(ordered) == sorted(grid)


def test_hand_checked_pair():
    # 2θ(h) = 20° and 2θ(2h) where sin θ doubles, both shifted by +0.1°: the pair alone says +0.1°.
    first = 20.0
    second = 2 * math.degrees(math.asin(2 * math.sin(math.radians(first / 2))))
    ordered, support = order_zeros(np.array([first, second]) + 0.1, np.array([0.0, 0.1, -0.1]), orders=(2,))
    assert ordered[0] == pytest.approx(0.1) and list(support) == [1, 0, 0]
