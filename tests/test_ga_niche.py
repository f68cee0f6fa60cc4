"""Clearing in survivor selection (gasolve.ga.multipop.Niche): the model distance, the survivors, the size rule."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.crystal import SpaceGroup, UnitCell
from gasolve.errors import InputError
from gasolve.ga import multipop
from gasolve.ga.memetic import search_niche
from gasolve.ga.multipop import Niche, niche_distance
from gasolve.ga.operators import nearest_image
from gasolve.ga.settings import GASettings

#: P2 (2-fold axis along b): x, y, z and -x, y, -z.
ROTATIONS = np.array([np.eye(3), np.diag([-1.0, 1.0, -1.0])])
TRANSLATIONS = np.zeros((2, 3))
CUBIC = UnitCell.from_parameters((10.0, 10.0, 10.0, 90.0, 90.0, 90.0))


def _niche(elements=(0, 1, 1, 1), radius=0.5):
    return Niche(radius, CUBIC.metric, ROTATIONS, TRANSLATIONS, np.array(elements))


def _model():
    return np.array([[0.10, 0.20, 0.30], [0.40, 0.15, 0.60], [0.70, 0.55, 0.20], [0.25, 0.80, 0.85]])


def test_models_that_differ_by_labels_or_orbit_images_are_one_model():
    niche, model = _niche(), _model()
    exchanged = model[[0, 2, 1, 3]]  # two sites of the same element swapped
    imaged = model.copy()
    imaged[3] = ROTATIONS[1] @ imaged[3] + [1.0, 0.0, 2.0]  # another atom of site 3's orbit, in another cell
    distances = niche_distance(model.ravel(), np.stack([model.ravel(), exchanged.ravel(), imaged.ravel()]), niche)
    np.testing.assert_allclose(distances, 0.0, atol=1e-12)


def test_one_displaced_atom_gives_its_displacement_over_the_root_of_the_site_count():
    niche, model = _niche(elements=(0, 1, 2, 3)), _model()
    moved = model.copy()
    moved[2, 0] += 0.1  # 1 Å along a; every site its own element, so no other atom is nearer
    assert niche_distance(model.ravel(), moved.ravel()[None], niche)[0] == pytest.approx(1.0 / 2.0)
    swapped = model[[1, 0, 2, 3]]  # sites of different elements swapped: a different model
    assert niche_distance(model.ravel(), swapped.ravel()[None], niche)[0] > 1.0


def test_clearing_keeps_one_model_of_each_niche_and_the_fitter():
    rng = np.random.default_rng(3)
    model = _model().ravel()
    clones = model + rng.normal(0.0, 0.002, (5, 12))  # 0.02 Å off: the same local minimum
    others = rng.random((3, 12))
    genomes = np.concatenate([clones, others])
    fitness = np.array([0.30, 0.10, 0.20, 0.25, 0.15, 0.50, 0.40, 0.60])
    plain = multipop._survivors(genomes, fitness, fitness, 8, 1e-6)
    assert len(plain[0]) == 8
    kept, kept_fitness, _ = multipop._survivors(genomes, fitness, fitness, 8, 1e-6, _niche())
    np.testing.assert_array_equal(kept_fitness, [0.10, 0.40, 0.50, 0.60])  # the best clone and the three others
    for i in range(len(kept)):
        assert np.all(np.delete(niche_distance(kept[i], kept, _niche()), i) >= 0.5)


def _settings(**changes):
    values = dict(islands=2, island_size=8, min_island_size=4, seed=0, migration_interval=1, niche_radius=1.0)
    return GASettings.from_flat({**values, **changes})


def test_tell_keeps_islands_free_of_clones_under_clearing():
    settings = _settings()
    niche = Niche(1.0, CUBIC.metric, ROTATIONS[:1], TRANSLATIONS[:1], np.arange(2))
    rng = np.random.default_rng(5)
    target = np.array([0.3, 0.3, 0.3, 0.7, 0.6, 0.2])

    def objective(genomes):
        return np.sum((nearest_image(target, genomes) - target) ** 2, axis=1)

    batch = multipop.initial_batch(rng, settings, 6)
    fitness = objective(batch.genomes)
    state = multipop.init(batch, batch.genomes, fitness, fitness, len(fitness), settings, niche)
    plain = multipop.init(batch, batch.genomes, fitness, fitness, len(fitness), settings)
    for _ in range(30):
        offspring = multipop.ask(rng, state, settings)
        values = objective(offspring.genomes)
        state = multipop.tell(offspring, offspring.genomes, values, values, len(values), state, settings, niche)
        offspring = multipop.ask(rng, plain, settings)
        values = objective(offspring.genomes)
        plain = multipop.tell(offspring, offspring.genomes, values, values, len(values), plain, settings)
    for island in state.islands:
        for i in range(len(island.population)):
            others = np.delete(island.population, i, axis=0)
            assert niche_distance(island.population[i], others, niche).min() >= 1.0
    # Without clearing the islands end as clouds around the optimum: most members within the radius of the best.
    crowded = [niche_distance(isl.population[0], isl.population[1:], niche) < 1.0 for isl in plain.islands]
    assert sum(int(c.sum()) for c in crowded) > len(plain.islands)


class _Problem:
    def __init__(self, n_sites):
        self.n_sites = n_sites
        self.elements = ("V",) + ("O",) * (n_sites - 1)
        self.cell = CUBIC
        self.space_group = SpaceGroup.from_symbol(19)


def test_clearing_applies_from_niche_min_sites_on():
    settings = GASettings()
    assert settings.layout.niche_min_sites == 12
    assert search_niche(settings, _Problem(11)) is None
    niche = search_niche(settings, _Problem(12))
    assert niche is not None and niche.radius == settings.rates.niche_radius
    assert niche.rotations.shape == (4, 3, 3) and list(niche.elements) == [1] + [0] * 11
    assert search_niche(settings.replace(niche_min_sites=0), _Problem(40)) is None


@pytest.mark.parametrize("key, value", [("niche_radius", 0.0), ("niche_radius", -1.0), ("niche_min_sites", -1)])
def test_bad_niche_settings_are_refused(key, value):
    with pytest.raises(InputError, match=key):
        GASettings.from_flat({key: value})


def test_niche_refuses_bad_shapes():
    with pytest.raises(ValueError, match="radius"):
        Niche(0.0, CUBIC.metric, ROTATIONS, TRANSLATIONS, np.arange(4))
    with pytest.raises(ValueError, match="metric"):
        Niche(0.5, np.eye(2), ROTATIONS, TRANSLATIONS, np.arange(4))
    with pytest.raises(ValueError, match="translations"):
        Niche(0.5, CUBIC.metric, ROTATIONS, TRANSLATIONS[:1], np.arange(4))
    niche = _niche()
    with pytest.raises(ValueError):
        niche.metric[0, 0] = 1.0


def test_members_of_an_island_are_not_compared_again_and_the_result_is_the_same(monkeypatch):
    settings = _settings(migration_interval=2)
    niche = Niche(1.0, CUBIC.metric, ROTATIONS[:1], TRANSLATIONS[:1], np.arange(2))
    target = np.array([0.3, 0.3, 0.3, 0.7, 0.6, 0.2])

    def objective(genomes):
        return np.sum((nearest_image(target, genomes) - target) ** 2, axis=1)

    def run():
        rng = np.random.default_rng(11)
        batch = multipop.initial_batch(rng, settings, 6)
        fitness = objective(batch.genomes)
        state = multipop.init(batch, batch.genomes, fitness, fitness, len(fitness), settings, niche)
        for _ in range(15):
            offspring = multipop.ask(rng, state, settings)
            values = objective(offspring.genomes)
            state = multipop.tell(offspring, offspring.genomes, values, values, len(values), state, settings, niche)
        return state

    calls = []
    distance = multipop.niche_distance
    monkeypatch.setattr(multipop, "niche_distance", lambda *a: calls.append(len(a[1])) or distance(*a))
    fast = run()
    compared_fast = sum(calls)
    original = multipop._survivors
    monkeypatch.setattr(multipop, "_survivors", lambda *a, cleared=0: original(*a))  # compare every pair
    calls.clear()
    slow = run()
    assert sum(calls) > compared_fast
    for a, b in zip(fast.islands, slow.islands, strict=True):
        np.testing.assert_array_equal(a.population, b.population)
        np.testing.assert_array_equal(a.fitness, b.fitness)
