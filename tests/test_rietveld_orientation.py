"""March-Dollase preferred orientation and soft restraints of the Rietveld refinement (issue 14).

The correction is checked against a naive sum over the distinct equivalent reflections that gemmi lists (with
Friedel mates) and angles from gemmi's reciprocal cell; a pattern simulated with that naive correction and a known
r gives r back within its esd, with the direction chosen by the refinement; restraint distances are checked against
pymatgen's minimum-image distances.
"""

from __future__ import annotations

from dataclasses import replace

import gemmi
import numpy as np
import pytest

from gasolve.crystal.cif_io import read_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.rietveld import RefinementSettings, Restraint, RietveldModel, refine
from gasolve.rietveld.orientation import distinct_directions
from tests.conftest import shared_path

RADIATION = Radiation(((1.5406, 1.0),), "CuKa1")
PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.02)


@pytest.fixture(scope="module")
def pbso4():
    structure = read_cif(shared_path("measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif"))
    return replace(
        structure,
        sites=tuple(replace(s, b_iso=b) for s, b in zip(structure.sites, [1.2, 0.6, 1.5, 1.8, 1.4], strict=True)),
    )


def _naive_march_dollase(structure, hkl, direction, r) -> float:
    """Mean of (r² cos² + sin²/r)^-3/2 over the distinct equivalents of ``hkl`` (gemmi's operators, Friedel mates
    added), angles between Cartesian reciprocal vectors from gemmi's cell."""
    ops = gemmi.SpaceGroup(structure.space_group.symbol).operations()
    equivalents = set()
    for op in ops.sym_ops:
        h = tuple(op.apply_to_hkl(list(hkl)))
        equivalents.add(h)
        equivalents.add(tuple(-i for i in h))
    cell = gemmi.UnitCell(*structure.cell.parameters)
    frac = np.array(cell.frac.mat.tolist())  # Cartesian -> fractional; reciprocal vectors: h · frac
    p = np.array(direction, float) @ frac
    values = []
    for h in equivalents:
        v = np.array(h, float) @ frac
        cos2 = (v @ p) ** 2 / ((v @ v) * (p @ p))
        values.append((r * r * cos2 + (1 - cos2) / r) ** -1.5)
    return float(np.mean(values))


def _pattern_with_orientation(structure, direction, r, rng, lo=15.0, hi=70.0) -> ObservedPattern:
    """scale · P (|F|² · naive March-Dollase) + background, Poisson noise."""
    two_theta = np.arange(lo, hi, 0.02)
    dummy = ObservedPattern(two_theta, np.ones_like(two_theta), np.ones_like(two_theta))
    model = RietveldModel(structure, dummy, RADIATION, PROFILE, background_terms=3)
    correction = np.array([_naive_march_dollase(structure, h, direction, r) for h in model.hkl])
    peaks = np.asarray(model.peak_matrix(model.x0) @ (model.structure_factors_squared(model.x0) * correction))
    y = 3e-3 * peaks.ravel() + 100.0 - 10.0 * (two_theta - lo) / (hi - lo)
    y = rng.poisson(y).astype(float)
    return ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)))


def test_correction_equals_a_naive_sum_over_the_distinct_equivalents(pbso4):
    pattern = _pattern_with_orientation(pbso4, (0, 0, 1), 1.0, np.random.default_rng(0), 15.0, 40.0)
    for direction in [(0, 0, 1), (1, 1, 0), (1, 0, 1)]:
        model = RietveldModel(pbso4, pattern, RADIATION, PROFILE, background_terms=3, preferred_orientation=direction)
        x = model.x0.copy()
        x[model.layout.index("r_PO")] = 0.6
        ours, _ = model.orientation_factor(x)
        naive = [_naive_march_dollase(pbso4, h, direction, 0.6) for h in model.hkl]
        np.testing.assert_allclose(ours, naive, rtol=1e-10)
        # 00l (all its equivalents along c) is enhanced by 1/r³ for platelets (r < 1)
        along = [k for k, h in enumerate(model.hkl) if np.all(np.cross(h, direction) == 0)]
        if direction == (0, 0, 1):
            assert along
            np.testing.assert_allclose(ours[along], 0.6**-3, rtol=1e-10)


def test_directions_distinct_under_the_laue_group():
    from gasolve.crystal.spacegroup import SpaceGroup

    assert distinct_directions(SpaceGroup.from_symbol("Fm-3m")) == [(0, 0, 1), (1, 1, 0), (1, 1, 1)]
    assert len(distinct_directions(SpaceGroup.from_symbol("Pnma"))) == 7
    assert (1, 0, 0) not in distinct_directions(SpaceGroup.from_symbol("P4/mmm"))


def test_simulated_orientation_is_found_and_r_given_back(pbso4):
    rng = np.random.default_rng(11)
    r_true = 0.8
    pattern = _pattern_with_orientation(pbso4, (1, 0, 1), r_true, rng)
    start = replace(pbso4, sites=tuple(replace(s, b_iso=1.0) for s in pbso4.sites))
    profile0 = replace(PROFILE, caglioti=(0.012, -0.004, 0.005), eta=0.45)
    result = refine(start, pattern, RADIATION, profile0, RefinementSettings(background_terms=3))
    assert result.error is None
    assert result.po_direction == (1, 0, 1), [s.note for s in result.stages]
    r = result.uncertainties.values[result.uncertainties.names.index("r_PO")]
    esd = result.uncertainties.of("r_PO")
    assert abs(r - r_true) < 3 * esd, (r, esd)
    assert esd < 0.01
    assert result.metrics.chi2 < 1.2
    # without the correction the same pattern is fitted clearly worse
    plain = refine(
        start, pattern, RADIATION, profile0, RefinementSettings(background_terms=3, preferred_orientation=None)
    )
    assert plain.po_direction is None
    assert plain.metrics.rwp > 1.3 * result.metrics.rwp


def test_random_pattern_keeps_no_orientation(pbso4):
    pattern = _pattern_with_orientation(pbso4, (0, 0, 1), 1.0, np.random.default_rng(3), 15.0, 50.0)
    settings = RefinementSettings(background_terms=3, groups=("preferred_orientation", "b_iso"))
    result = refine(pbso4, pattern, RADIATION, PROFILE, settings)
    assert result.po_direction is None
    note = next(s.note for s in result.stages if s.name == "preferred orientation")
    assert "none kept" in note, note
    assert "r_PO" not in result.uncertainties.names


def _pymatgen_distance(structure, a: str, b: str) -> float:
    from pymatgen.core import Lattice, Structure

    species, coords, labels = [], [], []
    for site in structure.sites:
        for x in structure.space_group.orbit(np.array(site.frac)):
            species.append(site.element)
            coords.append(x)
            labels.append(site.label)
    crystal = Structure(Lattice.from_parameters(*structure.cell.parameters), species, coords)
    i = labels.index(a)
    return min(crystal.get_distance(i, j) for j, label in enumerate(labels) if label == b)


def test_restraint_pulls_s_o_towards_its_target(pbso4):
    rng = np.random.default_rng(5)
    pattern = _pattern_with_orientation(pbso4, (0, 0, 1), 1.0, rng, 15.0, 60.0)
    settings = RefinementSettings(background_terms=3, groups=("coordinates",), preferred_orientation=None)
    free = refine(pbso4, pattern, RADIATION, PROFILE, settings)
    d_free = _pymatgen_distance(free.structure, "S2", "O3")
    target, sigma = d_free - 0.1, 0.001
    restrained_settings = replace(settings, restraints=(Restraint(("S2", "O3"), target, sigma),))
    restrained = refine(pbso4, pattern, RADIATION, PROFILE, restrained_settings)
    d = _pymatgen_distance(restrained.structure, "S2", "O3")
    assert abs(d - target) < 0.5 * abs(d_free - target)  # pulled more than half-way
    (report,) = restrained.restraints
    assert report.name == "distance(S2-O3)"
    assert report.value == pytest.approx(d, abs=1e-6)
    assert report.chi2 == pytest.approx(((d - target) / sigma) ** 2, rel=1e-6)
    assert restrained.metrics.rwp > free.metrics.rwp  # the pattern pays for it
    # an angle restraint on the sulphate: O3-S2-O4 at the refined model's value stays there
    angle = Restraint(("O3", "S2", "O4"), 109.0, 0.5)
    model = RietveldModel(pbso4, pattern, RADIATION, PROFILE, background_terms=3, restraints=(angle,))
    s, o3, o4 = (np.array(pbso4.sites[i].frac) @ pbso4.cell.matrix for i in (1, 2, 3))
    u, v = o3 - s, o4 - s
    expected = np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v)))
    assert model.restraint_values(model.x0)[0] == pytest.approx(expected, abs=1e-6)


def test_restraint_on_a_missing_atom_names_it(pbso4):
    pattern = _pattern_with_orientation(pbso4, (0, 0, 1), 1.0, np.random.default_rng(1), 15.0, 30.0)
    with pytest.raises(InputError, match=r"restraints.*O9.*sites: PB1, S2"):
        RietveldModel(pbso4, pattern, RADIATION, PROFILE, restraints=(Restraint(("S2", "O9"), 1.5, 0.01),))
