"""The relocation scan: grid, movable sites, the search for a misplaced atom, and its place in the GA loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gasolve.crystal import UnitCell
from gasolve.ga import multipop
from gasolve.ga.relocation import (
    best_relocations,
    movable_sites,
    regular_grid,
    relocatable_sites,
    relocated,
    scan_grid,
    scan_points,
    symmetric_grid,
)
from gasolve.ga.settings import GASettings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_grid_step_is_at_most_the_spacing_and_covers_the_cell():
    cell = UnitCell(6.6, 6.6, 9.9, 80.0, 71.0, 67.0)
    grid = scan_grid(np.random.default_rng(1), cell, 0.4)
    assert grid.shape == (17 * 17 * 25, 3)
    assert np.all((grid >= 0) & (grid < 1))
    for axis, length in enumerate((6.6, 6.6, 9.9)):
        values = np.unique(np.round(grid[:, axis], 12))
        steps = np.diff(np.concatenate([values, values[:1] + 1]))
        assert np.all(steps * length <= 0.4 + 1e-9)
    other = scan_grid(np.random.default_rng(2), cell, 0.4)
    assert not np.allclose(grid, other)  # the random shift moves the points


def test_movable_sites_skip_any_pinned_gene():
    fixed = np.zeros(12, dtype=bool)
    fixed[[0, 1, 2, 7]] = True  # site 0 the P1 anchor, site 2 has one pinned coordinate
    assert movable_sites(fixed).tolist() == [1, 3]


def test_relocatable_sites_add_special_positions_with_a_free_coordinate():
    held = np.zeros(15, dtype=bool)
    held[[0, 1, 2]] = True  # site 0 the P1 anchor
    position_fixed = np.zeros(15, dtype=bool)
    position_fixed[[3, 4, 5]] = True  # site 1 on a point (no free coordinate)
    position_fixed[8] = True  # site 2 on a plane (x, y, 0)
    position_fixed[[10, 11]] = True  # site 3 on a line (x, x, x): one slot carries x
    assert relocatable_sites(held, position_fixed).tolist() == [2, 3, 4]
    assert movable_sites(held | position_fixed).tolist() == [4]  # the scan before: three free genes only


def test_best_relocations_score_each_place_on_a_special_position_once():
    truth = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.0])  # site 1 on the plane z = 0

    def project(genomes):
        genomes = np.array(genomes, dtype=float)
        genomes[:, 5] = 0.0
        return genomes % 1.0

    def rwp_of(genomes):
        delta = genomes - truth
        delta -= np.round(delta)
        return np.sqrt((delta**2).sum(axis=1))

    grid = regular_grid(UnitCell(5, 5, 5, 90, 90, 90), 1.0)[0]  # 5 x 5 x 5 points
    start = truth.copy()
    start[3:5] = (truth[3:5] + 0.5) % 1
    candidates, spent = best_relocations(rwp_of, start, np.array([0, 1]), grid, top=1, project=project)
    assert spent == 125 + 25  # the general site on every point, the site on z = 0 on the 25 places of its plane
    assert np.all(candidates[:, 5] == 0.0)
    np.testing.assert_allclose(candidates[1, 3:5], [0.6, 0.4])


def test_best_relocations_find_the_misplaced_atom_of_a_toy_objective():
    truth = np.random.default_rng(3).random(12)
    start = truth.copy()
    start[6:9] = (truth[6:9] + 0.5) % 1  # site 2 half a cell away

    def rwp_of(genomes):
        delta = genomes - truth
        delta -= np.round(delta)
        return np.sqrt((delta**2).sum(axis=1))

    grid = scan_grid(np.random.default_rng(4), UnitCell(5, 5, 5, 90, 90, 90), 0.25)
    candidates, spent = best_relocations(rwp_of, start, np.array([0, 1, 2, 3]), grid, top=2)
    assert candidates.shape == (8, 12) and spent == 4 * len(grid)
    best = candidates[np.argmin(rwp_of(candidates))]
    np.testing.assert_allclose(np.delete(best, [6, 7, 8]), np.delete(start, [6, 7, 8]))
    delta = best[6:9] - truth[6:9]
    assert np.all(np.abs(delta - np.round(delta)) * 5 <= 0.125 + 1e-9)  # the grid point nearest the truth
    assert np.array_equal(relocated(start, 2, grid[:1])[0, 6:9], grid[0])


def _k4sno4_evaluator(settings):
    from gasolve.config import load_observed, load_run_config
    from gasolve.crystal import read_cif
    from gasolve.ga.memetic import Evaluator
    from gasolve.scoring.build import build_scorer

    config = load_run_config(EXAMPLES / "K4SnO4.toml")
    pattern = config.pattern
    scorer = build_scorer(
        config.structure, load_observed(config), pattern.radiation, pattern.profile, pattern.background_terms
    )
    return Evaluator(scorer, settings), read_cif(EXAMPLES / "K4SnO4.cif").frac


def test_scan_puts_a_far_oxygen_of_k4sno4_back_on_its_site():
    """The trap the scan is for: every atom right but one O, 3 Å off; the scan and refinement recover it."""
    settings = GASettings.from_flat(scan_spacing=0.5, scan_top=2, local_steps=40, scan_fourier=False)
    evaluate, truth = _k4sno4_evaluator(settings)
    trapped = truth.copy()
    trapped[7] = (truth[7] + np.array([0.0, 0.5, 0.0])) % 1  # O3 moved by b/2 = 3.3 Å
    before = evaluate.rwp(trapped.reshape(1, -1))[0]
    done = evaluate.relocation_scan(trapped.reshape(-1), np.random.default_rng(0))
    assert len(done.rwp) == 2 * 9
    group = evaluate.scorer.problem.space_group  # P-1: the 14 x 14 x 20 grid's 1,964 orbits are charged
    orbits = len(symmetric_grid(evaluate.scorer.problem.cell, 0.5, group.rotations, group.translations)[0])
    assert orbits == (14 * 14 * 20 + 8) // 2 and done.evaluations > 9 * orbits
    best = done.genomes[np.argmin(done.rwp)].reshape(-1, 3)
    assert done.rwp.min() < before - 0.05
    delta = best - truth
    delta -= np.round(delta)
    assert np.abs(delta).max() < 0.01


def test_scan_with_the_fourier_rebuild_offers_its_models_first_and_charges_them():
    """With scan_fourier (the default) the two splits' first- and last-cycle models lead the scan's candidates;
    every O of K4SnO4 thrown anywhere, the best candidate after refinement is the structure."""
    from gasolve.ga.fourier_rebuild import CYCLES, map_cost

    plain = GASettings.from_flat(scan_spacing=0.5, scan_top=2, local_steps=40, scan_fourier=False)
    settings = GASettings.from_flat(scan_spacing=0.5, scan_top=2, local_steps=40)
    assert settings.layout.scan_fourier
    evaluate, truth = _k4sno4_evaluator(settings)
    lost = truth.reshape(-1, 3).copy()
    lost[5:] = np.random.default_rng(1).random((4, 3))  # every O (sites 5-8) anywhere
    with_maps = evaluate.relocation_scan(lost.reshape(-1), np.random.default_rng(0))
    without = _k4sno4_evaluator(plain)[0].relocation_scan(lost.reshape(-1), np.random.default_rng(0))
    assert len(with_maps.rwp) == len(without.rwp) + 4  # 2 splits x (first, last cycle)
    charged = with_maps.evaluations - without.evaluations
    assert charged >= map_cost(evaluate.scorer.problem) * CYCLES * 2 - 1e-6  # the maps are charged, and their
    best = with_maps.genomes[np.argmin(with_maps.rwp)].reshape(-1, 3)  # refinement (as offspring)
    assert with_maps.rwp.min() < without.rwp.min()
    assert with_maps.rwp.min() < 0.04  # the truth's Rwp is 0.0382
    delta = best[:5] - truth.reshape(-1, 3)[:5]
    assert np.abs(delta - np.round(delta)).max() < 0.01


def test_stagnation_triggers_a_scan_and_its_models_join_the_worst_island():
    settings = GASettings.from_flat(islands=3, island_size=8, min_island_size=4, tournament_size=2, scan_after=2)
    rng = np.random.default_rng(0)
    batch = multipop.initial_batch(rng, settings, 6)
    fitness = np.arange(len(batch.genomes), dtype=float) + 1.0
    state = multipop.init(batch, batch.genomes, fitness, fitness, 24.0, settings)
    assert state.stagnant == 0 and state.scans == 0
    for _ in range(2):  # nothing better than the first best: stagnation grows
        offspring = multipop.ask(rng, state, settings)
        worse = np.full(len(offspring.genomes), 100.0)
        state = multipop.tell(offspring, offspring.genomes, worse, worse, 1.0, state, settings)
    assert state.stagnant == 2
    worst = int(np.argmax([isl.best_fitness for isl in state.islands]))
    scanned = rng.random((5, 6))
    values = np.array([0.5, 2, 3, 4, 5.0])
    after = multipop.inject(scanned, values, values, 99.0, state, settings)
    assert after.stagnant == 0 and after.scans == 1
    assert after.evaluations == state.evaluations + 99.0
    assert after.best_fitness == 0.5 and np.array_equal(after.best_genome, scanned[0])
    np.testing.assert_array_equal(after.islands[worst].population, scanned)
    for i in set(range(3)) - {worst}:
        assert after.islands[i] is state.islands[i]


@pytest.mark.parametrize("value", [-1, 1.5])
def test_scan_settings_are_validated(value):
    from gasolve.errors import InputError

    with pytest.raises(InputError, match="scan_after"):
        GASettings().replace(scan_after=value)


GROUPS = [  # (symbol, cell): every crystal system, centred, screw and glide groups, both rhombohedral settings
    ("P-1", (6.6, 6.6, 9.9, 80.2, 71.7, 67.3)),
    ("P2_1/c", (7.0, 8.0, 9.0, 90, 100, 90)),
    ("C2", (9.0, 5.0, 7.0, 90, 105, 90)),
    ("Pnma", (8.48, 5.398, 6.958, 90, 90, 90)),
    ("Fdd2", (11.0, 12.0, 6.0, 90, 90, 90)),
    ("I4_1/amd", (7.0, 7.0, 20.0, 90, 90, 90)),
    ("P4_32_12", (6.0, 6.0, 11.0, 90, 90, 90)),
    ("R-3", (13.0, 13.0, 28.0, 90, 90, 120)),
    ("R3:R", (7.0, 7.0, 7.0, 80, 80, 80)),
    ("P6_1", (7.0, 7.0, 15.0, 90, 90, 120)),
    ("P6_3mc", (5.0, 5.0, 8.0, 90, 90, 120)),
    ("Fm-3m", (10.0, 10.0, 10.0, 90, 90, 90)),
    ("Ia-3d", (12.0, 12.0, 12.0, 90, 90, 90)),
]


def _images(group, frac):
    """Every image of the points ``frac`` (n, 3) under the group's operators, shape (n_ops, n, 3), in [0, 1)."""
    return np.mod(np.einsum("sij,nj->sni", group.rotations.astype(float), frac) + group.translations[:, None], 1.0)


@pytest.mark.parametrize(("symbol", "parameters"), GROUPS)
def test_symmetric_grid_keeps_one_point_of_every_orbit_of_the_whole_grid(symbol, parameters):
    """The kept points' images are the whole grid, point for point, and no two kept points are equivalent; the
    scan then scores about 1/n_ops of the grid."""
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.ga.relocation import regular_grid

    group = SpaceGroup.from_symbol(symbol)
    cell = UnitCell(*parameters)
    kept, counts = symmetric_grid(cell, 0.4, group.rotations, group.translations)
    n = np.array(counts)
    assert np.all(n * 0.4 >= np.array([cell.a, cell.b, cell.c]) - 1e-9)  # the step is at most the spacing
    index = np.rint(_images(group, kept) * n).astype(int) % n  # (n_ops, n_kept, 3), on the grid
    assert np.allclose(_images(group, kept) * n, np.rint(_images(group, kept) * n), atol=1e-6)
    linear = (index[..., 0] * n[1] + index[..., 1]) * n[2] + index[..., 2]
    assert len(np.unique(linear)) == n.prod()  # together the orbits are the whole grid
    orbit_sizes = [len(np.unique(linear[:, k])) for k in range(len(kept))]
    assert sum(orbit_sizes) == n.prod()  # and no point is in two orbits: one representative each
    full = len(regular_grid(cell, 0.4)[0])
    assert len(kept) < 2.2 * full / len(group.rotations) + 10  # the short orbits of special positions add some


@pytest.mark.parametrize(("symbol", "parameters"), GROUPS)
def test_every_place_in_the_cell_is_near_an_image_of_a_scanned_point(symbol, parameters):
    """With the random shift the scanned points' images leave no place farther than the whole-cell grid does
    (its worst case, half a cell diagonal of 0.4 Å steps: 0.35 Å; with the shift up to 0.42 Å)."""
    from scipy.spatial import cKDTree

    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.ga.relocation import scan_points

    group = SpaceGroup.from_symbol(symbol)
    cell = UnitCell(*parameters)
    rng = np.random.default_rng(5)
    points = scan_points(rng, symmetric_grid(cell, 0.4, group.rotations, group.translations))
    images = _images(group, points).reshape(-1, 3)
    lattice = np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij")).reshape(3, -1).T
    matrix = cell.matrix
    tree = cKDTree(((images[None] + lattice[:, None]).reshape(-1, 3)) @ matrix)
    distance, _ = tree.query(rng.random((5_000, 3)) @ matrix)
    assert distance.max() < 0.42, distance.max()


@pytest.fixture(scope="module")
def pbso4(pbso4_on_wyckoff):
    """PbSO4 (Pnma, published coordinates) on a pattern pymatgen simulates: Pb, S, O1, O2 on 4c, O3 on 8d."""
    setup, truth = pbso4_on_wyckoff
    return setup, truth.frac


def test_an_atom_on_any_image_of_its_place_gives_the_same_rwp(pbso4):
    """Why one orbit point suffices: O3 (8d) put at x or at any of its 8 images R x + t gives one Rwp."""
    setup, frac = pbso4
    group = setup.scorer.problem.space_group
    place = np.array([0.31, 0.17, 0.62])
    models = np.repeat(frac.reshape(1, -1, 3), len(group.rotations), axis=0)
    models[:, 4] = _images(group, place[None])[:, 0]
    rwp = setup.scorer.rwp(setup.scorer.project(models.reshape(len(models), -1)).reshape(models.shape))
    assert np.ptp(rwp) < 1e-12 * rwp[0] + 1e-14 and rwp[0] > 0.1


def test_scan_over_the_orbits_puts_a_far_oxygen_of_pbso4_back_and_charges_one_point_per_orbit(pbso4):
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.ga.relocation import regular_grid
    from gasolve.solve import build_evaluator

    setup, truth = pbso4
    settings = GASettings.from_flat(scan_spacing=0.4, scan_top=2, local_steps=40, scan_fourier=False)
    evaluate = build_evaluator(setup.scorer, settings)
    assert list(evaluate.movable) == [4]  # O3, the one site on the general position
    assert list(evaluate.relocatable) == [0, 1, 2, 3, 4]  # and Pb, S, O1, O2 on the mirror plane (4c)
    trapped = truth.copy()
    trapped[4] = (truth[4] + np.array([0.3, 0.0, 0.35])) % 1  # 3.5 Å off
    done = evaluate.relocation_scan(trapped.reshape(-1), np.random.default_rng(0))
    group: SpaceGroup = setup.scorer.problem.space_group
    points = len(symmetric_grid(setup.scorer.problem.cell, 0.4, group.rotations, group.translations)[0])
    assert points < len(regular_grid(setup.scorer.problem.cell, 0.4)[0]) / 6  # Pnma has 8 operators
    grid = scan_points(np.random.default_rng(0), evaluate._orbits)  # the scan's own points
    places = sum(  # the mirror-plane sites: each distinct place of its plane once
        len(
            np.unique(
                np.round(evaluate.project(relocated(trapped.reshape(-1), s, grid))[:, 3 * s : 3 * s + 3], 9) % 1, axis=0
            )
        )
        for s in range(4)
    )
    assert places < 4 * points / 2
    # O3 on one point per orbit, the others on their places, then 2 refinements per site
    assert points + places <= done.evaluations <= points + places + 10 * (1 + 2.6 * 200)
    best = done.genomes[np.argmin(done.rwp)].reshape(-1, 3)
    offsets = _images(group, best[4][None])[:, 0] - truth[4]  # O3 may come back on any image of its place
    offsets -= np.round(offsets)
    assert np.abs(offsets).max(axis=1).min() < 0.005
