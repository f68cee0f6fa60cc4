"""General sites that end on special positions: snapping, the scorer through the snap, naming the Wyckoff position,
the CIF, and the local search with the occupancy correction.

Known answers from International Tables Vol. A (multiplicities and site symmetries), cross-checked with gemmi's
orbits and with the orbits of tests/naive.py's symmetry expansion.
"""

from __future__ import annotations

from pathlib import Path

import gemmi
import naive
import numpy as np
import pytest

from gasolve.crystal import SpaceGroup, UnitCell, read_cif
from gasolve.crystal.cif_io import format_cif
from gasolve.crystal.snap import SpecialPositionSnap
from gasolve.crystal.special_positions import locate, settle
from gasolve.crystal.wyckoff import SiteMap
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.io.patterns import ObservedPattern, counting_sigma
from gasolve.refine import refine_coordinates
from gasolve.scoring import Scorer, ScoringProblem
from gasolve.scoring.mapped import MappedScorer
from gasolve.scoring.overlap import merge_distance

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RADIUS = 0.8


def _snap(symbol: str, cell: list[float], n_sites: int = 1) -> SpecialPositionSnap:
    group = SpaceGroup.from_symbol(symbol)
    return SpecialPositionSnap.build(
        UnitCell.from_parameters(cell), group, np.ones(n_sites, bool), merge_distance(RADIUS)
    )


@pytest.mark.parametrize(
    ("symbol", "cell", "point", "expected", "multiplicity", "label"),
    [
        ("Pnma", [8.48, 5.398, 6.958, 90, 90, 90], [0.1882, 0.2712, 0.167], [0.1882, 0.25, 0.167], 4, "4c"),
        ("Pnma", [8.48, 5.398, 6.958, 90, 90, 90], [0.1882, 0.7401, 0.167], [0.1882, 0.75, 0.167], 4, "4c"),
        ("P-1", [5, 6, 7, 80, 85, 95], [0.5 + 0.01, 0.003, 0.5], [0.5, 0.0, 0.5], 1, "1f"),
        ("Fm-3m", [5.64, 5.64, 5.64, 90, 90, 90], [0.003, 0.002, -0.001], [0.0, 0.0, 0.0], 4, "4a"),
        ("Fm-3m", [5.64, 5.64, 5.64, 90, 90, 90], [0.254, 0.25, 0.247], [0.25, 0.25, 0.25], 8, "8c"),
        ("Fm-3m", [5.64, 5.64, 5.64, 90, 90, 90], [0.1, 0.102, 0.1], [0.10066667] * 3, 32, "32f"),
        ("P6_3/mmc", [4, 4, 6, 90, 90, 120], [1 / 3 + 0.003, 2 / 3, 0.25 + 0.004], [1 / 3, 2 / 3, 0.25], 2, "2c"),
    ],
)
def test_snap_known_answers_idempotent_with_its_derivative(symbol, cell, point, expected, multiplicity, label):
    snap = _snap(symbol, cell)
    frac = np.array([[point]])
    snapped, projector = snap.snap(frac)
    np.testing.assert_allclose(snapped[0, 0] % 1.0, np.array(expected) % 1.0, atol=1e-7)
    group = SpaceGroup.from_symbol(symbol)
    assert len(group.orbit(snapped[0, 0])) == multiplicity
    np.testing.assert_allclose(naive.symmetrise_position(group.hall, snapped[0, 0]), snapped[0, 0], atol=1e-12)
    again, _ = snap.snap(snapped)
    np.testing.assert_array_equal(again, snapped)
    # The projector is the derivative of the map at the point (the map is affine near it).
    step = 1e-6
    numeric = np.zeros((3, 3))
    for axis in range(3):
        up, down = frac.copy(), frac.copy()
        up[0, 0, axis] += step
        down[0, 0, axis] -= step
        numeric[:, axis] = (snap.snap(up)[0][0, 0] - snap.snap(down)[0][0, 0]) / (2 * step)
    np.testing.assert_allclose(projector[0, 0], numeric, atol=1e-8)
    np.testing.assert_allclose(projector[0, 0] @ projector[0, 0], projector[0, 0], atol=1e-12)  # a projector
    found = locate(group, snapped[0, 0])
    assert found is not None and found[0].label == label
    assert len(group.orbit(found[1])) == multiplicity


def test_snap_leaves_far_and_unsnappable_sites_alone():
    group = SpaceGroup.from_symbol("Pnma")
    cell = UnitCell.from_parameters([8.48, 5.398, 6.958, 90, 90, 90])
    snap = SpecialPositionSnap.build(cell, group, np.array([True, False]), merge_distance(RADIUS))
    frac = np.array([[[0.1882, 0.25 + 0.45 / (2 * 5.398), 0.167], [0.1882, 0.26, 0.167]]])  # image 0.45 Å; 0.11 Å
    snapped, projector = snap.snap(frac)
    np.testing.assert_array_equal(snapped, frac)
    np.testing.assert_array_equal(projector, np.broadcast_to(np.eye(3), (1, 2, 3, 3)))


@pytest.fixture(scope="module")
def pbso4():
    """PbSO4 with every site general, its noise-free pattern (10-70°), and a scorer with correction and snap."""
    structure = read_cif(EXAMPLES / "PbSO4.cif")
    radiation = parse_radiation("CuKa12")
    profile = PeakProfile(caglioti=(0.004, -0.002, 0.003), eta=0.4, cutoff=8.0)
    two_theta = np.round(np.arange(10.0, 70.0 + 1e-9, 0.02), 10)
    peaks = naive.model_pattern(
        structure.space_group.hall,
        structure.cell.parameters,
        structure.elements,
        structure.frac,
        np.ones(5),
        np.array([s.b_iso for s in structure.sites]),
        two_theta,
        radiation,
        profile,
    )
    y = 1e4 * peaks / peaks.max() + 100.0
    pattern = ObservedPattern(two_theta, y, counting_sigma(y))
    problem = ScoringProblem.build(
        structure.cell,
        structure.space_group,
        structure.elements,
        pattern,
        radiation,
        profile,
        background_terms=2,
        b_iso=np.array([s.b_iso for s in structure.sites]),
    ).with_occupancy_correction(radius=RADIUS)
    site_map = SiteMap.general(structure.space_group, 5)
    snap = SpecialPositionSnap.build(structure.cell, structure.space_group, np.ones(5, bool), merge_distance(RADIUS))
    return structure, MappedScorer(Scorer(problem), site_map, snap)


def test_mapped_scorer_with_snap_scores_the_snapped_point(pbso4):
    structure, scorer = pbso4
    genome = structure.frac.copy()
    genome[:4, 1] += np.array([0.01, -0.02, 0.015, 0.005])  # within the merge distance of the mirror
    np.testing.assert_allclose(scorer.project(genome[None])[0][:4, 1], 0.25, atol=1e-12)
    np.testing.assert_allclose(scorer.rwp(genome[None]), scorer.rwp(structure.frac[None]), rtol=1e-12)
    assert scorer.rwp(structure.frac[None])[0] < 1e-6
    _, gradient = scorer.rwp_and_gradient(genome[None] + np.array([0.003, 0.0, -0.002]))
    assert np.all(gradient[0, :4, 1] == 0.0)  # snapped: the mirror's normal is not a free direction
    np.testing.assert_allclose(scorer.project(scorer.project(genome[None])), scorer.project(genome[None]))


def test_mapped_scorer_gradient_through_the_snap_equals_central_differences(pbso4):
    structure, scorer = pbso4
    genome = structure.frac + np.random.default_rng(3).normal(0.0, 0.004, structure.frac.shape)
    genome[0, 1] = 0.25 + 0.01  # Pb snapped (0.11 Å from its image)
    genome[1, 1] = 0.25 + 0.055  # S in the ramp of the weight (image 0.59 Å away)
    _, gradient = scorer.rwp_and_gradient(genome[None])
    step = 1e-6
    numeric = np.zeros_like(genome)
    for index in np.ndindex(genome.shape):
        up, down = genome.copy(), genome.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (scorer.rwp(up[None])[0] - scorer.rwp(down[None])[0]) / (2 * step)
    np.testing.assert_allclose(gradient[0], numeric, rtol=1e-4, atol=1e-6 * np.abs(numeric).max())
    assert abs(gradient[0, 1, 1]) > 0.01 * np.abs(numeric).max()


def test_local_refinement_with_the_correction_recovers_the_structure(pbso4):
    """L-BFGS-B on the analytic gradient (the final refinement; the GA's L-BFGS uses the same calls) from 0.15 Å
    off the truth, with the sites on the mirror started 0.1-0.3 Å off it, as general sites."""
    structure, scorer = pbso4
    rng = np.random.default_rng(7)
    lengths = np.array(structure.cell.parameters[:3])
    start = structure.frac + rng.normal(0.0, 0.15 / np.sqrt(3), structure.frac.shape) / lengths
    start[:4, 1] = 0.25 + np.array([0.1, -0.2, 0.3, -0.15]) / 5.398
    result = refine_coordinates(scorer, start)
    frac = scorer.project(result.frac[None])[0]
    assert result.rwp_after < 1e-4 < result.rwp_before
    np.testing.assert_allclose(frac[:4, 1], 0.25, atol=1e-12)  # all four back on the mirror and snapped
    delta = (frac - structure.frac + 0.5) % 1.0 - 0.5
    assert np.max(np.linalg.norm(delta * lengths, axis=1)) < 0.01


def test_settle_names_positions_moves_to_representatives_and_writes_the_cif(pbso4):
    structure, scorer = pbso4
    model = structure.frac + np.array([0.01, 0.0, -0.01])  # Rwp well above rounding
    model[0] = [0.5 - 0.1982, 0.75, 0.5 + 0.157]  # Pb on an equivalent point on the other mirror
    snapped = scorer.project(model[None])[0]
    factors, _ = scorer.problem.overlap.factors(snapped[None])
    settled = settle(structure.space_group, snapped, np.full(5, 8), factors[0])
    assert settled.labels == ("4c", "4c", "4c", "4c", "8d")
    np.testing.assert_array_equal(settled.multiplicity, [4, 4, 4, 4, 8])
    np.testing.assert_allclose(settled.occupancy, 1.0)
    np.testing.assert_allclose(settled.frac[:4, 1], 0.25)  # PyXtal's representative (x, 1/4, z)
    assert settled.general.tolist() == [False] * 4 + [True]
    report = settled.report(["Pb1", "S1", "O1", "O2", "O3"])
    assert [item["site"] for item in report] == ["Pb1", "S1", "O1", "O2"]
    # The same crystal: equal Rwp with the positions found as Wyckoff sites, and gemmi reads the composition.
    wyckoff_scorer = MappedScorer(scorer.scorer, settled.site_map(structure.space_group))
    np.testing.assert_allclose(wyckoff_scorer.rwp(settled.frac[None]), scorer.rwp(snapped[None]), rtol=1e-9)
    written = format_cif(settled.apply(structure), wyckoff=settled.labels)
    assert "_atom_site_Wyckoff_symbol" in written and " 4 c" in written and " 8 d" in written
    small = gemmi.make_small_structure_from_block(gemmi.cif.read_string(written).sole_block())
    elements = [site.element.name for site in small.get_all_unit_cell_sites()]
    assert {e: elements.count(e) for e in set(elements)} == {"Pb": 4, "S": 4, "O": 16}


def test_settle_reports_the_occupancy_of_a_split_site(pbso4):
    """An atom off the mirror by more than the merge distance keeps 8 images; its occupancy c·8/8 says how much of
    an atom each image is (here 1/(1 + w) with the image 0.6 Å away)."""
    structure, scorer = pbso4
    model = structure.frac.copy()
    model[0, 1] = 0.25 + 0.6 / (2 * 5.398)
    snapped = scorer.project(model[None])[0]
    factors, _ = scorer.problem.overlap.factors(snapped[None])
    settled = settle(structure.space_group, snapped, np.full(5, 8), factors[0])
    assert settled.labels[0] == "8d" and settled.multiplicity[0] == 8
    assert settled.occupancy[0] == pytest.approx(1.0 / 1.5625, rel=1e-9)
