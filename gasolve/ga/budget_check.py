"""Whether a run's budget can do what the search needs: finish one search epoch and start another, so that the best
model can be found twice.

An epoch of the search (:mod:`gasolve.ga.memetic`) is at least ``scan_after`` generations without a new best
followed by a relocation scan of the best model; after ``restart_after_scans`` scans that find nothing better, the
islands restart from random models and a new, independent epoch begins. A model counts as confirmed when two
epochs, the current one included, end on it (:func:`gasolve.pipeline.independent_finds`), so a budget below one
epoch, the restart's population and one generation of it cannot confirm anything: a lower bound, so the warning
is never wrong when it is given (a search that keeps improving takes longer than ``scan_after`` generations).

The cost of an epoch grows with the cell and the number of atoms, because the scan moves every atom on a general
position over one point of each orbit of a grid through the cell (:func:`gasolve.ga.relocation.symmetric_grid`). On
Hf3Tl10Mo12PbO48 (R-3, 16 sites, a 0.4 Å grid of 77,600 points in the cell) a scan over the whole grid cost about
10⁶ evaluations, and a run of 2·10⁶ evaluations reached its first scan at 1.8·10⁶; over the orbits it costs about a
sixteenth of that.

:func:`epoch_cost` estimates one epoch from the cost of a generation (best measured: a run passes the evaluations
of its initial population, which is scored and refined as a generation is), the cell and the atoms the scan moves,
and the Fourier maps of the scan. Without a measured generation it counts :data:`GRADIENT_CALLS_OVER_STEPS` more
gradient calls than L-BFGS steps per refined offspring (line-search calls): 5,500 evaluations per generation on the
default layout (72 offspring, 25 steps, gradient cost 2.6), as measured on KBi2F7, RbBiF4 and Hf3Tl10Mo12PbO48,
an upper bound for small problems whose local searches converge in fewer steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from gasolve.crystal import UnitCell
from gasolve.ga.relocation import regular_grid, symmetric_grid
from gasolve.ga.settings import GASettings

#: Gradient calls per refined offspring beyond ``local_steps`` (the line searches of L-BFGS).
GRADIENT_CALLS_OVER_STEPS = 4


@dataclass(frozen=True)
class EpochCost:
    """The estimated cost of one search epoch, in Rwp evaluations.

    Attributes
    ----------
    generation : float
        One generation: every offspring scored, the ``local_fraction`` refined.
    scan : float
        One relocation scan: every movable atom on every grid point, and its best places refined.
    grid_points : int
    scanned_sites : int
    generations : int
        Generations of an epoch before its scan (``scan_after``).
    """

    generation: float
    scan: float
    grid_points: int
    scanned_sites: int
    generations: int

    @property
    def epoch(self) -> float:
        return self.generations * self.generation + self.scan

    def needed(self) -> float:
        """Evaluations of the initial population, one epoch, the restart's population and one generation of it."""
        return self.epoch + 3 * self.generation


def epoch_cost(
    settings: GASettings,
    cell: UnitCell,
    scanned_sites: int,
    generation: float | None = None,
    maps: float = 0.0,
    space_group=None,
) -> EpochCost:
    """Estimate one epoch of the search.

    Parameters
    ----------
    settings : GASettings
    cell : UnitCell
        The cell the scan's grid goes through.
    scanned_sites : int
        Sites the relocation scan moves (those with three free coordinates,
        :func:`gasolve.ga.relocation.movable_sites`).
    generation : float, optional
        Evaluations of one generation as measured (the initial population's); estimated from the settings when
        not given.
    maps : float
        Evaluations the scan's Fourier maps are charged (:func:`gasolve.ga.fourier_rebuild.map_cost` per cycle).
    space_group : SpaceGroup, optional
        The scan covers one point of each orbit of its grid (:func:`gasolve.ga.relocation.symmetric_grid`); the
        whole cell's grid when not given.

    Returns
    -------
    EpochCost
    """
    layout, rates = settings.layout, settings.rates
    offspring = layout.islands * layout.island_size * layout.offspring_fraction
    refine = 0.0 if layout.local_steps == 0 else (layout.local_steps + GRADIENT_CALLS_OVER_STEPS) * rates.gradient_cost
    per_model = 1.0 + rates.local_fraction * refine
    points = scan_grid_points(cell, rates.scan_spacing, space_group) if layout.scan_after else 0
    scan = scanned_sites * (points + layout.scan_top * per_model) + maps if layout.scan_after else 0.0
    generations = layout.scan_after if layout.scan_after else layout.stagnation_generations
    measured = offspring * per_model if generation is None else float(generation)
    return EpochCost(measured, scan, points, scanned_sites, generations)


def scan_grid_points(cell: UnitCell, spacing: float, space_group=None) -> int:
    """Grid points one relocation scan scores per site: one per orbit of the group's grid
    (:func:`gasolve.ga.relocation.symmetric_grid`) when ``space_group`` is given, else the whole cell's grid."""
    if space_group is None:
        return len(regular_grid(cell, spacing)[0])
    return len(symmetric_grid(cell, spacing, space_group.rotations, space_group.translations)[0])


def budget_warning(settings: GASettings, cost: EpochCost) -> str | None:
    """The warning for a budget below :meth:`EpochCost.needed`, or None when it is enough."""
    needed = cost.needed()
    budget = settings.budget.max_evaluations
    if budget >= needed:
        return None
    scan = (
        f" and a relocation scan of {cost.scanned_sites} sites over {cost.grid_points:,} grid points "
        f"(~{cost.scan:,.0f})"
        if cost.scan
        else ""
    )
    return (
        f"[ga] max_evaluations = {budget:,} is below the ~{needed:,.0f} evaluations that one search epoch and the "
        f"start of a second take for this problem (an epoch: at least {cost.generations} generations of "
        f"~{cost.generation:,.0f}{scan}): the run cannot find its best model twice, so it cannot confirm it. Raise "
        f"max_evaluations to more than {needed:,.0f}"
    )
