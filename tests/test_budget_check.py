"""The budget check at the start of a run (gasolve.ga.budget_check): a budget below one search epoch and the start
of a second cannot confirm a model, and the run says so with the budget it would need."""

from __future__ import annotations

import pytest

from gasolve.crystal import UnitCell
from gasolve.ga.budget_check import budget_warning, epoch_cost
from gasolve.ga.relocation import regular_grid
from gasolve.ga.settings import GASettings

K4SNO4_CELL = UnitCell(6.600678, 6.608855, 9.914304, 80.24692, 71.67501, 67.32549)


def test_an_epoch_is_its_generations_and_a_scan_of_every_movable_atom_over_the_grid():
    settings = GASettings()
    cost = epoch_cost(settings, K4SNO4_CELL, 9)
    per_model = 1 + (25 + 4) * 2.6  # one score and the L-BFGS steps with their line searches, gradient cost 2.6
    assert cost.generation == pytest.approx(72 * per_model)  # 6 islands of 12, one offspring each
    points = len(regular_grid(K4SNO4_CELL, 0.4)[0])
    assert cost.grid_points == points == 17 * 17 * 25
    assert cost.scan == pytest.approx(9 * (points + 3 * per_model))
    assert cost.epoch == pytest.approx(20 * cost.generation + cost.scan)
    assert cost.needed() == pytest.approx(cost.epoch + 3 * cost.generation)
    measured = epoch_cost(settings, K4SNO4_CELL, 9, generation=4_979.0, maps=1_000.0)
    assert measured.generation == 4_979.0 and measured.scan == pytest.approx(cost.scan + 1_000.0)
    assert epoch_cost(settings.replace(scan_after=0), K4SNO4_CELL, 9).scan == 0.0


def test_a_large_cell_with_many_atoms_is_told_the_budget_it_needs():
    settings = GASettings()
    assert budget_warning(settings, epoch_cost(settings, K4SNO4_CELL, 9)) is None  # K4SnO4: 2e6 is plenty
    big = UnitCell(20.0, 20.0, 30.0, 90.0, 90.0, 120.0)  # 40 atoms over a grid of 50 x 50 x 75 points
    cost = epoch_cost(settings, big, 40)
    warning = budget_warning(settings, cost)
    assert cost.needed() > settings.budget.max_evaluations
    assert f"{settings.budget.max_evaluations:,}" in warning and f"{cost.needed():,.0f}" in warning
    assert "40 sites over 187,500 grid points" in warning
    assert budget_warning(settings.replace(max_evaluations=int(cost.needed()) + 1), cost) is None


def test_the_scan_is_costed_over_one_point_per_orbit_of_the_group():
    """With the space group the scan costs its grid's orbits (gasolve.ga.relocation.symmetric_grid): about 1/18 of
    the cell's grid in R-3, so the 40-site R-3 case needs far less than over the whole cell."""
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.ga.relocation import symmetric_grid

    settings = GASettings()
    big = UnitCell(20.0, 20.0, 30.0, 90.0, 90.0, 120.0)
    group = SpaceGroup.from_symbol("R-3")
    whole = epoch_cost(settings, big, 40)
    orbits = epoch_cost(settings, big, 40, space_group=group)
    assert orbits.grid_points == len(symmetric_grid(big, 0.4, group.rotations, group.translations)[0])
    assert whole.grid_points / 19 < orbits.grid_points < whole.grid_points / 15
    assert orbits.needed() < 0.2 * whole.needed()
