"""GA building blocks: operator invariants, selection, batched L-BFGS, ask/tell bookkeeping, anti-bump, origin."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gasolve.crystal import SpaceGroup, UnitCell
from gasolve.errors import InputError
from gasolve.ga import multipop
from gasolve.ga.antibump import AntiBump
from gasolve.ga.local import lbfgs
from gasolve.ga.memetic import origin_fixing_genes
from gasolve.ga.operators import CROSSOVERS, MUTATIONS, SELECTIONS, nearest_image, wrap
from gasolve.ga.settings import GASettings


@pytest.mark.parametrize("name", sorted(CROSSOVERS))
def test_crossovers_keep_shape_bounds_and_mix_parents(name):
    rng = np.random.default_rng(0)
    a, b = rng.random((64, 9)), rng.random((64, 9))
    child = CROSSOVERS[name](rng, a, b, eta=2.0, alpha=0.3)
    assert child.shape == a.shape and np.all(np.isfinite(child))
    assert np.all((child >= 0) & (child < 1))
    # Children of identical parents are those parents (every operator here is a mixing operator).
    same = CROSSOVERS[name](rng, a, a.copy(), eta=2.0, alpha=0.3)
    np.testing.assert_allclose(same, a, atol=1e-12)


def test_crossover_takes_the_short_way_round_the_circle():
    rng = np.random.default_rng(1)
    a, b = np.full((200, 3), 0.98), np.full((200, 3), 0.02)
    child = CROSSOVERS["arithmetic"](rng, a, b)
    distance = np.abs(nearest_image(np.zeros_like(child), child))
    assert np.all(distance <= 0.0200001)  # between 0.98 and 1.02, never near 0.5


def test_atom_wise_uniform_crossover_keeps_atoms_whole():
    rng = np.random.default_rng(2)
    a, b = np.zeros((50, 9)), np.full((50, 9), 0.5)
    child = CROSSOVERS["uniform"](rng, a, b).reshape(50, 3, 3)
    assert np.all(np.ptp(child, axis=2) == 0)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_mutations_change_every_child_and_stay_in_bounds(name):
    rng = np.random.default_rng(3)
    x = rng.random((100, 27))
    y = MUTATIONS[name](rng, x, rate=0.05, sigma=0.05, eta=20.0)
    assert y.shape == x.shape and np.all((y >= 0) & (y < 1))
    assert np.all(np.any(y != x, axis=1))
    assert np.mean(y != x) < 0.2


@pytest.mark.parametrize("name", sorted(SELECTIONS))
def test_selection_prefers_low_fitness(name):
    rng = np.random.default_rng(4)
    fitness = np.arange(20.0)
    chosen = SELECTIONS[name](rng, fitness, 5000, size=3)
    assert chosen.min() >= 0 and chosen.max() < 20
    assert np.mean(chosen < 5) > 0.4 and np.mean(chosen >= 15) < 0.1


def test_wrap_and_nearest_image():
    np.testing.assert_allclose(wrap(np.array([-0.25, 1.25, 0.5])), [0.75, 0.25, 0.5])
    np.testing.assert_allclose(nearest_image(np.array([0.9]), np.array([0.1])), [1.1])


def test_batched_lbfgs_minimises_an_ill_conditioned_quadratic_from_many_starts():
    rng = np.random.default_rng(5)
    scales = np.array([1.0, 10.0, 100.0, 0.5])
    centres = rng.random(4)

    def objective(x):
        d = x - centres
        return 0.5 * np.sum(scales * d * d, axis=1), scales * d

    result = lbfgs(objective, rng.random((8, 4)), steps=60, max_step=0.5)
    np.testing.assert_allclose(result.x, np.broadcast_to(centres, (8, 4)), atol=1e-5)
    assert result.gradient_calls >= 8 * 10


def _toy_settings(**kw):
    return GASettings.from_flat(
        island_size=8,
        min_island_size=4,
        islands=3,
        tournament_size=2,
        migration_interval=2,
        reallocation_interval=3,
        stagnation_generations=4,
        **kw,
    )


def _toy_objective(genomes):
    return np.sum(np.sin(np.pi * nearest_image(np.full_like(genomes, 0.3), genomes) - 0.3 * np.pi) ** 2, axis=1)


def _run_toy(seed, generations=40):
    settings = _toy_settings(seed=seed)
    rng = np.random.default_rng(seed)
    batch = multipop.initial_batch(rng, settings, 6)
    fitness = _toy_objective(batch.genomes)
    state = multipop.init(batch, batch.genomes, fitness, fitness, len(fitness), settings)
    for _ in range(generations):
        batch = multipop.ask(rng, state, settings)
        fitness = _toy_objective(batch.genomes)
        state = multipop.tell(batch, batch.genomes, fitness, fitness, len(fitness), state, settings)
    return state


def test_ask_tell_finds_the_optimum_of_a_toy_problem_and_is_reproducible():
    state = _run_toy(7)
    assert state.best_fitness < 0.05
    assert state.generation == 40
    assert sum(isl.target_size for isl in state.islands) == 3 * 8  # reallocation moves, never creates
    for island in state.islands:
        assert island.crossover_probability.sum() == pytest.approx(1.0)
        assert np.all(np.diff(island.fitness) > 0)  # sorted, no duplicates
    again = _run_toy(7)
    np.testing.assert_array_equal(state.best_genome, again.best_genome)
    assert _run_toy(8).best_fitness != state.best_fitness


def test_tell_treats_nan_as_worst_and_keeps_state_immutable():
    settings = _toy_settings(seed=0)
    rng = np.random.default_rng(0)
    batch = multipop.initial_batch(rng, settings, 6)
    fitness = _toy_objective(batch.genomes)
    fitness[0] = np.nan
    state = multipop.init(batch, batch.genomes, fitness, fitness, 24, settings)
    assert np.isfinite(state.best_fitness)
    with pytest.raises(ValueError):
        state.islands[0].population[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.generation = 3


def test_survivor_selection_keeps_each_islands_best_without_an_elite_count():
    # (μ+λ) truncation: offspring that are all worse (or NaN) leave every island's members exactly as they were,
    # which is why GASettings has no ``elite``; one better child enters and pushes out the island's worst only.
    settings = _toy_settings(seed=0, migration_size=0, reallocation_share=0)
    rng = np.random.default_rng(0)
    batch = multipop.initial_batch(rng, settings, 6)
    fitness = _toy_objective(batch.genomes)
    state = multipop.init(batch, batch.genomes, fitness, fitness, len(fitness), settings)
    offspring = multipop.ask(rng, state, settings)
    worse = np.full(len(offspring.genomes), 10.0)
    worse[::3] = np.nan
    after = multipop.tell(offspring, offspring.genomes, worse, worse, len(worse), state, settings)
    for before, now in zip(state.islands, after.islands, strict=True):
        np.testing.assert_array_equal(now.population, before.population)
        np.testing.assert_array_equal(now.fitness, before.fitness)
    better = worse.copy()
    child = int(np.flatnonzero(offspring.island == 1)[0])
    better[child] = -1.0
    after = multipop.tell(offspring, offspring.genomes, better, better, len(better), state, settings)
    island, old = after.islands[1], state.islands[1]
    assert island.fitness[0] == -1.0
    np.testing.assert_array_equal(island.population[0], offspring.genomes[child])
    np.testing.assert_array_equal(island.fitness[1:], old.fitness[:-1])


def test_settings_are_validated():
    with pytest.raises(InputError, match="island_size"):
        GASettings.from_flat(island_size=2)
    with pytest.raises(InputError, match="crossovers"):
        GASettings.from_flat(crossovers=("nope",))
    assert GASettings.from_flat(seed=0).budget.seed == 0


def test_antibump_known_distances():
    cell = UnitCell(10, 10, 10, 90, 90, 90)
    bump = AntiBump(cell, SpaceGroup.from_symbol("P1"), 2, distance=2.0)
    close = np.array([[0.0, 0, 0, 0.1, 0, 0]])  # 1 Å apart
    far = np.array([[0.0, 0, 0, 0.5, 0, 0]])
    np.testing.assert_allclose(bump(close), [(1 - 1.0 / 2.0) ** 2])
    np.testing.assert_allclose(bump(far), [0.0])
    across = np.array([[0.02, 0, 0, 0.98, 0, 0]])  # 0.4 Å apart through the cell face
    np.testing.assert_allclose(bump(across), [(1 - 0.4 / 2.0) ** 2])


def test_origin_fixing_pins_the_heaviest_site_along_polar_axes():
    elements = ["O", "Sn", "K"]
    assert not origin_fixing_genes(SpaceGroup.from_symbol("P-1"), elements).any()
    np.testing.assert_array_equal(
        np.flatnonzero(origin_fixing_genes(SpaceGroup.from_symbol("P1"), elements)), [3, 4, 5]
    )
    np.testing.assert_array_equal(np.flatnonzero(origin_fixing_genes(SpaceGroup.from_symbol("P21"), elements)), [4])
    assert not origin_fixing_genes(SpaceGroup.from_symbol("P21/c"), elements).any()
