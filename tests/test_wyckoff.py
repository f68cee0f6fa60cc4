"""Sites on special positions: PyXtal's Wyckoff tables against gemmi's operators, the genome map, the scorer.

The oracle for a Wyckoff position is gemmi: a point built from the position's free parameters must have exactly
the tabulated multiplicity as its orbit under gemmi's operators, and tests/naive.py's projector (built from the
operators alone) must leave it where it is.
"""

from __future__ import annotations

import naive
import numpy as np
import pytest
from conftest import shared_path

from gasolve.crystal import SpaceGroup, read_cif
from gasolve.crystal.wyckoff import SiteMap, wyckoff_position, wyckoff_positions
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.errors import InputError
from gasolve.ga.antibump import AntiBump
from gasolve.io.patterns import ObservedPattern, counting_sigma
from gasolve.scoring import Scorer, ScoringProblem
from gasolve.scoring.mapped import MappedScorer

#: Generic free parameters: no coincidence with 0, 1/2, 1/4, x = y and so on.
GENERIC = np.array([[0.1372, 0.2913, 0.0417]])


def _check_group(number: int) -> None:
    group = SpaceGroup.from_symbol(number)
    for position in wyckoff_positions(group):
        site_map = SiteMap.from_labels(group, [position.label])
        frac = site_map.project(GENERIC)[0]
        assert len(group.orbit(frac)) == position.multiplicity, (number, position.label)
        np.testing.assert_allclose(naive.symmetrise_position(group.hall, frac), frac, atol=1e-9)
        assert site_map.n_free == len(position.free_parameters)
        np.testing.assert_allclose(site_map.project(site_map.project(GENERIC)), site_map.project(GENERIC))


@pytest.mark.parametrize("number", [1, 2, 14, 15, 62, 63, 99, 123, 141, 148, 160, 166, 167, 191, 194, 205, 221, 227])
def test_wyckoff_positions_agree_with_gemmi_orbits(number):
    _check_group(number)


@pytest.mark.slow
def test_wyckoff_positions_of_all_230_groups_agree_with_gemmi_orbits():
    for number in range(1, 231):
        _check_group(number)


def test_pbso4_positions_and_multiplicities():
    group = SpaceGroup.from_symbol("Pnma")
    site_map = SiteMap.from_labels(group, ["4c", "4c", "4c", "4c", "8d"])
    np.testing.assert_array_equal(site_map.multiplicity, [4, 4, 4, 4, 8])
    assert site_map.n_free == 4 * 2 + 3
    np.testing.assert_array_equal(site_map.fixed.reshape(5, 3)[:4], [[False, True, False]] * 4)
    frac = site_map.project(np.full((1, 5, 3), 0.6))[0]
    np.testing.assert_allclose(frac[:4, 1], 0.25)
    assert wyckoff_position(group, "c").label == "4c"


@pytest.mark.parametrize(
    ("symbol", "label", "message"),
    [
        ("Pnma", "4e", "no Wyckoff position '4e'"),
        ("Pnma", "8c", "multiplicity 4, not 8"),
        ("Pnma", "c4", "a multiplicity and a letter"),
        ("Pbnm", "4c", "standard setting"),
    ],
)
def test_bad_wyckoff_labels_are_refused(symbol, label, message):
    with pytest.raises(InputError, match=message):
        SiteMap.from_labels(SpaceGroup.from_symbol(symbol), [label])


@pytest.fixture(scope="module")
def pbso4_mapped():
    """Scorers of PbSO4 on its Wyckoff positions against a pattern simulated from the published structure."""
    structure = read_cif(shared_path("measured/PbSO4-lab-CuKa/PbSO4-Wyckoff.cif"))
    radiation = parse_radiation("CuKa12")
    profile = PeakProfile(caglioti=(0.01, -0.005, 0.006), eta=0.5, asymmetry=(-0.1, 0.0, 0.0, 0.0))
    two_theta = np.round(np.arange(10.0, 80.0 + 1e-9, 0.02), 10)
    sim = simulate(structure, two_theta, radiation, profile, np.array([100.0, -20.0]))
    y = 1e4 * sim.peaks / sim.peaks.max() + sim.background
    pattern = ObservedPattern(two_theta, y, counting_sigma(y))
    site_map = SiteMap.from_labels(structure.space_group, ["4c", "4c", "4c", "4c", "8d"])
    problem = ScoringProblem.build(
        structure.cell,
        structure.space_group,
        structure.elements,
        pattern,
        radiation,
        profile,
        background_terms=2,
        b_iso=np.array([s.b_iso for s in structure.sites]),
        site_multiplicity=site_map.multiplicity,
    )
    return structure, MappedScorer(Scorer(problem), site_map)


def test_mapped_scorer_scores_the_published_structure_exactly(pbso4_mapped):
    structure, scorer = pbso4_mapped
    genome = structure.frac.copy()
    genome[:4, 1] = 0.9  # dependent slots: ignored, the mirror puts y back at 1/4
    assert scorer.rwp(genome[None])[0] < 1e-6  # the noise-free simulation
    np.testing.assert_allclose(scorer.project(genome[None])[0] % 1, structure.frac % 1, atol=1e-12)


def test_mapped_gradient_equals_finite_differences_and_vanishes_on_dependent_slots(pbso4_mapped):
    structure, scorer = pbso4_mapped
    genome = structure.frac + np.random.default_rng(4).normal(0.0, 0.01, structure.frac.shape)
    _, gradient = scorer.rwp_and_gradient(genome[None])
    step = 1e-6
    numeric = np.zeros_like(genome)
    for index in np.ndindex(genome.shape):
        up, down = genome.copy(), genome.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (scorer.rwp(up[None])[0] - scorer.rwp(down[None])[0]) / (2 * step)
    np.testing.assert_allclose(gradient[0], numeric, rtol=1e-4, atol=1e-7)
    assert np.all(gradient[0][:4, 1] == 0.0)


def test_antibump_ignores_images_merged_on_a_special_position(pbso4_mapped):
    structure, _ = pbso4_mapped
    bump = AntiBump(structure.cell, structure.space_group, 1, 1.6)
    lead = np.array([[0.1882, 0.25, 0.167]])  # Pb on the mirror: each image of the 8 operators appears twice
    assert bump(lead)[0] == pytest.approx(0.0, abs=1e-12)
    assert bump(np.array([[0.1882, 0.30, 0.167]]))[0] > 0.3  # off the mirror: two atoms 0.54 Å apart
