"""Site weights of the clearing distance (gasolve.ga.multipop.Niche.weights, gasolve.ga.memetic.niche_weights):
models that differ only in their H atoms are one niche; without H nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.crystal import SpaceGroup, UnitCell
from gasolve.ga import multipop
from gasolve.ga.memetic import niche_weights, search_niche
from gasolve.ga.multipop import Niche, niche_distance
from gasolve.ga.settings import GASettings

#: P2 (2-fold axis along b): x, y, z and -x, y, -z.
ROTATIONS = np.array([np.eye(3), np.diag([-1.0, 1.0, -1.0])])
TRANSLATIONS = np.zeros((2, 3))
CUBIC = UnitCell.from_parameters((10.0, 10.0, 10.0, 90.0, 90.0, 90.0))
#: Ca, O, H, H: element codes as search_niche makes them (np.unique of the symbols: Ca 0, H 1, O 2).
SYMBOLS = ("Ca", "O", "H", "H")
CODES = np.array([0, 2, 1, 1])


def _model():
    return np.array([[0.10, 0.20, 0.30], [0.40, 0.15, 0.60], [0.70, 0.55, 0.20], [0.25, 0.80, 0.85]])


def _niches():
    """The niche with the weights of SYMBOLS and the one without weights (every site 1, as before)."""
    weighted = Niche(0.5, CUBIC.metric, ROTATIONS, TRANSLATIONS, CODES, niche_weights(SYMBOLS))
    return weighted, Niche(0.5, CUBIC.metric, ROTATIONS, TRANSLATIONS, CODES)


def test_h_sites_weigh_nothing_and_the_others_one():
    np.testing.assert_array_equal(niche_weights(SYMBOLS), [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(niche_weights(["D", "O"]), [0.0, 1.0])  # deuterium too
    np.testing.assert_array_equal(niche_weights(["Ca", "O", "O"]), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(niche_weights(["H", "H"]), [1.0, 1.0])  # nothing else to tell models apart by


def test_models_that_differ_only_in_h_are_one_niche():
    weighted, plain = _niches()
    model = _model()
    moved = model.copy()
    moved[2] += [0.15, -0.1, 0.2]  # both H atoms 1.5-2.7 Å away from anywhere they were
    moved[3] += [-0.2, 0.05, 0.1]
    assert niche_distance(model.ravel(), moved.ravel()[None], weighted)[0] == pytest.approx(0.0, abs=1e-12)
    assert niche_distance(model.ravel(), moved.ravel()[None], plain)[0] > weighted.radius


def test_a_displaced_heavier_atom_still_counts_over_the_root_of_the_weighted_site_count():
    weighted, plain = _niches()
    model = _model()
    moved = model.copy()
    moved[1, 0] += 0.1  # the O atom 1 Å along a
    moved[3, 2] += 0.05  # an H atom 0.5 Å along c: ignored by the weighted distance
    assert niche_distance(model.ravel(), moved.ravel()[None], weighted)[0] == pytest.approx(1.0 / np.sqrt(2.0))
    expected = np.sqrt((1.0 + 0.25) / 4.0)
    assert niche_distance(model.ravel(), moved.ravel()[None], plain)[0] == pytest.approx(expected)


def test_clearing_keeps_one_of_the_models_that_differ_only_in_h():
    weighted, plain = _niches()
    rng = np.random.default_rng(7)
    variants = np.repeat(_model()[None], 6, axis=0)
    variants[:, 2:] = rng.random((6, 2, 3))  # the same Ca and O, H anywhere
    genomes = variants.reshape(6, -1)
    fitness = np.array([0.30, 0.10, 0.20, 0.25, 0.15, 0.50])
    _, kept, _ = multipop._survivors(genomes, fitness, fitness, 6, 1e-6, weighted)
    np.testing.assert_array_equal(kept, [0.10])
    _, kept_plain, _ = multipop._survivors(genomes, fitness, fitness, 6, 1e-6, plain)
    assert len(kept_plain) > 1


def test_without_h_the_weighted_distance_has_the_same_bits_as_the_plain_one():
    rng = np.random.default_rng(2)
    codes = np.array([0, 1, 1, 1])
    weighted = Niche(0.5, CUBIC.metric, ROTATIONS, TRANSLATIONS, codes, niche_weights(["V", "O", "O", "O"]))
    plain = Niche(0.5, CUBIC.metric, ROTATIONS, TRANSLATIONS, codes)
    genome, others = rng.random(12), rng.random((50, 12))
    np.testing.assert_array_equal(niche_distance(genome, others, weighted), niche_distance(genome, others, plain))
    # The distance as computed before the weights (the code of niche_distance then): the plain mean over sites.
    images = np.einsum("oij,ksj->kosi", plain.rotations, others.reshape(50, -1, 3)) + plain.translations[None, :, None]
    delta = images.reshape(50, -1, 3)[:, None, :, :] - genome.reshape(-1, 3)[None, :, None, :]
    delta -= np.round(delta)
    cartesian = delta @ plain.basis
    squared = np.where(plain.same_element, np.einsum("kamj,kamj->kam", cartesian, cartesian), np.inf)
    np.testing.assert_array_equal(niche_distance(genome, others, plain), np.sqrt(squared.min(axis=2).mean(axis=1)))


class _Problem:
    def __init__(self, elements):
        self.n_sites = len(elements)
        self.elements = tuple(elements)
        self.cell = CUBIC
        self.space_group = SpaceGroup.from_symbol(14)


def test_search_niche_weighs_the_problem_s_sites():
    settings = GASettings()
    elements = ("P",) * 3 + ("H",) * 4 + ("N",) * 5 + ("Cl",) * 4  # 16 sites, P3H4N5Cl4-like
    niche = search_niche(settings, _Problem(elements))
    np.testing.assert_array_equal(niche.weights, [0.0 if e == "H" else 1.0 for e in elements])
    assert not niche.weights.flags.writeable
    without_h = search_niche(settings, _Problem(("V",) + ("O",) * 12))
    np.testing.assert_array_equal(without_h.weights, np.ones(13))


@pytest.mark.parametrize(
    "weights, match",
    [
        (np.ones(3), "shape"),
        (np.ones((4, 1)), "shape"),
        (np.array([1.0, -1.0, 1.0, 1.0]), ">= 0"),
        (np.zeros(4), "not all 0"),
        (np.array([1.0, np.nan, 1.0, 1.0]), "finite"),
        (np.array([1.0, np.inf, 1.0, 1.0]), "finite"),
    ],
)
def test_bad_weights_are_refused(weights, match):
    with pytest.raises(ValueError, match=match):
        Niche(0.5, CUBIC.metric, ROTATIONS, TRANSLATIONS, CODES, weights)


def test_weights_are_read_only_copies():
    weights = np.array([1.0, 1.0, 0.0, 0.0])
    niche = Niche(0.5, CUBIC.metric, ROTATIONS, TRANSLATIONS, CODES, weights)
    weights[2] = 5.0
    assert niche.weights[2] == 0.0
    with pytest.raises(ValueError):
        niche.weights[0] = 2.0
