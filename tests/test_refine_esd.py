"""esds of refined coordinates: the normal-matrix estimate against the scatter over noise realisations."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np

from gasolve.crystal import read_cif
from gasolve.crystal.cif_io import format_cif, with_esd
from gasolve.crystal.wyckoff import SiteMap
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.io.patterns import ObservedPattern, counting_sigma
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
            n_background=1,
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
