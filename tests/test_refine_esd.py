"""esds of refined coordinates: the normal-matrix estimate against the scatter over noise realisations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gemmi
import numpy as np
import pytest

from gasolve.crystal import read_cif
from gasolve.crystal.cell import UnitCell
from gasolve.crystal.cif_io import format_cif, with_esd
from gasolve.crystal.origin import origin_fixing_slots
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import Site, Structure
from gasolve.crystal.wyckoff import SiteMap
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.io.patterns import ObservedPattern, counting_sigma
from gasolve.io.run_outputs import site_records, write_json
from gasolve.refine import coordinate_esds, refine_coordinates
from gasolve.scoring import Scorer, ScoringProblem
from gasolve.scoring.mapped import MappedScorer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_with_esd_notation():
    assert with_esd(0.18820, 0.00012) == "0.18820(12)"
    assert with_esd(0.25, 0.0) == "0.250000"
    assert with_esd(12.3, 0.04) == "12.30(4)"
    assert with_esd(8.482382, 0.00019) == "8.48238(19)"
    assert with_esd(0.5, 0.0003) == "0.5000(3)"


def test_esds_match_the_scatter_of_refinements_over_noise_realisations():
    structure = read_cif(EXAMPLES / "PbSO4.cif")
    radiation = parse_radiation("CuKa12")
    profile = PeakProfile(caglioti=(0.02, -0.015, 0.012), eta=0.5)
    two_theta = np.round(np.arange(10.0, 90.0 + 1e-9, 0.025), 10)
    sim = simulate(structure, two_theta, radiation, profile, np.array([100.0]))
    expected = 3000.0 * sim.peaks / sim.peaks.max() + sim.background
    site_map = SiteMap.from_labels(structure.space_group, ["4c", "4c", "4c", "4c", "8d"])
    refined, esds = [], []
    for seed in range(8):
        y = np.random.default_rng(seed).poisson(expected).astype(float)
        problem = ScoringProblem.build(
            structure.cell,
            structure.space_group,
            structure.elements,
            ObservedPattern(two_theta, y, counting_sigma(y)),
            radiation,
            profile,
            background_terms=1,
            b_iso=np.array([s.b_iso for s in structure.sites]),
            site_multiplicity=site_map.multiplicity,
        )
        scorer = MappedScorer(Scorer(problem), site_map)
        frac = scorer.project(refine_coordinates(scorer, structure.frac).frac[None])[0]
        refined.append(frac)
        esds.append(coordinate_esds(scorer, frac))
    refined, esds = np.array(refined), np.array(esds)
    free = ~site_map.fixed.reshape(-1, 3)
    scatter = np.std(refined, axis=0, ddof=1)[free]
    estimate = np.mean(esds, axis=0)[free]
    assert np.all(esds[:, ~free] == 0.0)  # y = 1/4 of the mirror sites is exact
    ratio = scatter / estimate
    assert 0.6 < np.median(ratio) < 1.6, ratio
    assert np.all((ratio > 0.3) & (ratio < 3.0)), ratio
    text = format_cif(structure.with_frac(refined[0]), esd=esds[0])
    block = gemmi.cif.read_string(text).sole_block()
    assert "(" in block.find_loop("_atom_site_fract_x")[0]
    back = gemmi.make_small_structure_from_block(block)
    np.testing.assert_allclose([s.fract.z for s in back.sites], refined[0][:, 2] % 1, atol=5 * esds[0][:, 2].max())


def _noisy_problem(structure, seed=0):
    """The scoring problem of ``structure``'s own pattern with Poisson noise (Cu Kα1, 10-90°)."""
    radiation = parse_radiation("CuKa1")
    profile = PeakProfile.constant_fwhm(0.1, eta=0.5)
    two_theta = np.round(np.arange(10.0, 90.0 + 1e-9, 0.02), 10)
    sim = simulate(structure, two_theta, radiation, profile, np.array([100.0]))
    y = np.random.default_rng(seed).poisson(20000.0 * sim.peaks / sim.peaks.max() + sim.background).astype(float)
    return ScoringProblem.from_structure(
        structure, ObservedPattern(two_theta, y, counting_sigma(y)), radiation, profile, 1
    )


def _structure(symbol, cell, sites):
    return Structure(
        UnitCell(*cell),
        SpaceGroup.from_symbol(symbol),
        tuple(Site(f"{e}{i + 1}", e, frac, 1.0, 0.6) for i, (e, frac) in enumerate(sites)),
    )


def test_polar_group_esds_hold_the_origin_and_keep_the_free_coordinates():
    # Wurtzite ZnO, P6_3mc: the origin floats along c. Zn z holds it (no esd), O z is free and determined.
    structure = _structure(
        "P6_3mc", (3.25, 3.25, 5.21, 90, 90, 120), [("Zn", (1 / 3, 2 / 3, 0.0)), ("O", (1 / 3, 2 / 3, 0.382))]
    )
    site_map = SiteMap.from_labels(structure.space_group, ["2b", "2b"])
    scorer = MappedScorer(Scorer(_noisy_problem(structure)), site_map)
    fixed = origin_fixing_slots(structure.space_group, structure.elements, site_map.matrix)
    np.testing.assert_array_equal(np.flatnonzero(fixed), [2])  # Zn z
    refined = scorer.project(refine_coordinates(scorer, structure.frac, fixed=fixed).frac[None])[0]
    assert refined[0, 2] == 0.0  # held where it was
    esd = coordinate_esds(scorer, refined)
    np.testing.assert_array_equal(esd[:, :2], 0.0)  # 1/3, 2/3 fixed by symmetry
    assert np.isnan(esd[0, 2])  # holds the origin: no esd
    assert 1e-5 < esd[1, 2] < 0.005  # before: clipped to 0 (singular normal matrix), or thousands
    assert abs(refined[1, 2] - 0.382) < 5 * esd[1, 2]
    text = format_cif(structure.with_frac(refined), esd=esd)
    z = list(gemmi.cif.read_string(text).sole_block().find_loop("_atom_site_fract_z"))
    assert z[0] == "0.000000" and re.fullmatch(r"0\.38\d{3}\(\d+\)", z[1]), z


@pytest.mark.parametrize(
    ("symbol", "cell", "sites", "held"),
    [
        (
            "P1",
            (4.3, 4.9, 5.4, 84, 97, 103),
            [("O", (0.2, 0.3, 0.4)), ("Ba", (0.0, 0.0, 0.0)), ("S", (0.5, 0.1, 0.7))],
            [3, 4, 5],
        ),
        ("Cm", (7.0, 5.6, 5.1, 90, 105, 90), [("Pb", (0.0, 0.13, 0.0)), ("O", (0.31, 0.37, 0.61))], [0, 2]),
        ("R3:R", (5.5, 5.5, 5.5, 58, 58, 58), [("Pb", (0.0, 0.6041, 0.4694)), ("O", (0.6777, 0.7787, 0.2199))], [0]),
    ],
)
def test_general_positions_in_polar_groups_have_esds_for_all_but_the_origin(symbol, cell, sites, held):
    structure = _structure(symbol, cell, sites)
    scorer = Scorer(_noisy_problem(structure, seed=1))
    fixed = origin_fixing_slots(structure.space_group, structure.elements)
    np.testing.assert_array_equal(np.flatnonzero(fixed), held)
    refined = refine_coordinates(scorer, structure.frac, fixed=fixed).frac
    esd = coordinate_esds(scorer, refined).ravel()
    assert np.all(np.isnan(esd[held]))
    others = np.delete(esd, held)
    assert np.all((others > 1e-6) & (others < 0.01)), others
    # Without holding the origin the normal matrix is singular: the esds along the polar directions are absent
    # (pseudo-inverse), never 0 and never a number in the thousands.
    free = coordinate_esds(scorer, refined, origin_fixed=np.zeros(refined.size, dtype=bool)).ravel()
    assert np.all(np.isnan(free) | ((free > 1e-6) & (free < 0.01)))
    assert np.any(np.isnan(free))


def test_an_exactly_singular_normal_matrix_gives_absent_esds_and_strict_json(tmp_path):
    # Two identical atoms at the same place: only their mean is determined; neither coordinate has an esd.
    structure = _structure(
        "P-1", (5.0, 5.5, 6.0, 80, 85, 95), [("Pb", (0.2, 0.3, 0.4)), ("Pb", (0.2, 0.3, 0.4)), ("O", (0.1, 0.6, 0.9))]
    )
    scorer = Scorer(_noisy_problem(structure, seed=2))
    esd = coordinate_esds(scorer, structure.frac)
    assert np.all(np.isnan(esd[:2]))
    assert np.all((esd[2] > 0) & (esd[2] < 0.01))
    write_json(tmp_path / "summary.json", {"coordinate_esd": esd, "sites": site_records(structure, esd)})
    text = (tmp_path / "summary.json").read_text()

    def refuse(name):
        raise ValueError(name)

    data = json.loads(text, parse_constant=refuse)  # no NaN or Infinity
    assert data["coordinate_esd"][0] == [None, None, None]
    assert data["sites"][2]["esd"] == pytest.approx(esd[2].tolist())
    assert data["sites"][0]["x"] == 0.2 and data["sites"][0]["origin_fixed"] == []


def test_with_esd_never_rounds_to_an_undefined_esd():
    assert with_esd(0.38265, float("nan")) == "0.382650"
    assert with_esd(0.38265, None) == "0.382650"
    assert with_esd(0.5, 0.0003, min_decimals=5) == "0.50000(30)"
    assert with_esd(0.18820, 0.00012, min_decimals=5) == "0.18820(12)"
