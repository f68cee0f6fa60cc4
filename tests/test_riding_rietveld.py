"""Riding hydrogens in the Rietveld refinement (gasolve.rietveld.riding): derivatives with riding H against finite
differences, brucite refined with riding, fixed and free H, the Wyckoff and hydride cases that hold an H fixed, the
[refinement] hydrogens key and the CIF flags of refined.cif.

The structures are MP PBE relaxations (CC BY 4.0, as in tests/test_hydrogens.py): brucite Mg(OH)2 mp-30247 and
CuCl2·2H2O mp-23875, coordinates rounded to 4 decimals. The patterns are simulated with neutral atoms and no
anomalous dispersion, so the models are built with anomalous_dispersion=False.
"""

from __future__ import annotations

import numpy as np
import pytest

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import Site, Structure
from gasolve.crystal.wyckoff import SiteMap
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.rietveld import RefinementSettings, RietveldModel, parse_refinement, refine
from gasolve.rietveld.riding import find_riding
from gasolve.rietveld.settings import refinement_table
from tests.naive import peak_derivative_4point

RADIATION = Radiation(((1.5406, 1.0),), "CuKa1")
PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.02)
BRUCITE_CELL = UnitCell(3.1859, 3.1859, 4.7816, 90, 90, 120)
#: O at (2/3, 1/3, z) and H on the same threefold axis 0.971 Å above O's image at (1/3, 2/3, 1 - z).
Z_O, Z_H = 0.7818, 0.4213


def _brucite(z_o: float, z_h: float, b=(0.6, 0.9, 1.35)) -> Structure:
    sites = (
        Site("Mg1", "Mg", (0.0, 0.0, 0.0), 1.0, b[0]),
        Site("O1", "O", (2 / 3, 1 / 3, z_o), 1.0, b[1]),
        Site("H1", "H", (1 / 3, 2 / 3, z_h), 1.0, b[2]),
    )
    return Structure(BRUCITE_CELL, SpaceGroup.from_symbol(164), sites, "brucite")


def _pattern(structure: Structure, lo: float, hi: float, scale: float) -> ObservedPattern:
    """Noise-free, so that a model's error shows in Rwp and is not lost in the noise."""
    two_theta = np.arange(lo, hi, 0.02)
    sim = simulate(structure, two_theta, RADIATION, PROFILE, np.array([100.0, -10.0, 5.0]))
    y = scale * sim.peaks + sim.background
    return ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)))


def _cucl2_dihydrate() -> Structure:
    # The H given as the image of the MP one under the group's fourth operator: its nearest O is an image of O1
    # under a rotation other than the identity, so the chain rule's R^T is exercised.
    group = SpaceGroup.from_symbol(53)
    h = group.rotations[3] @ np.array([0.6882, 0.1275, 0.0858]) + group.translations[3]
    sites = (
        Site("Cu1", "Cu", (0.5, 0.0, 0.5), 1.0, 1.0),
        Site("Cl1", "Cl", (0.5, 0.6488, 0.7465), 1.0, 1.2),
        Site("O1", "O", (0.7588, 0.0, 0.0), 1.0, 1.5),
        Site("H1", "H", tuple(h % 1.0), 1.0, 2.0),
    )
    return Structure(UnitCell(8.0612, 3.8968, 7.4591, 90, 90, 90), group, sites, "CuCl2.2H2O")


@pytest.mark.parametrize("group", ["coordinates", "b_iso", "cell"])
@pytest.mark.parametrize("which", ["brucite", "CuCl2.2H2O"])
def test_derivatives_with_riding_h_match_finite_differences(which, group):
    structure = _brucite(Z_O, Z_H) if which == "brucite" else _cucl2_dihydrate()
    model = RietveldModel(
        structure, _pattern(structure, 15.0, 60.0, 3e-3), RADIATION, PROFILE, 3, anomalous_dispersion=False
    )
    (rider,) = model.hydrogens
    assert rider.rides and model.labels[rider.parent] == "O1" and rider.u_ratio == 1.5
    if which == "CuCl2.2H2O":
        assert not np.allclose(rider.rotation, np.eye(3))  # the parent is an image of O1 by a rotation
    assert not any("H1" in name for name in model.layout.names)  # neither coordinates nor B of its own
    x = model.x0 + 0.002 * np.sin(np.arange(model.n_parameters))
    free = model.layout.indices(group)
    derivative = model.peak_derivatives(x, free)
    for column, j in enumerate(free):
        reference = peak_derivative_4point(model, x, j)
        error = np.linalg.norm(derivative[:, column] - reference) / np.linalg.norm(reference)
        # without the H's share on its parent the O coordinate's error is 0.17 (CuCl2·2H2O)
        assert error < (1e-5 if group != "cell" else 0.03), (model.layout.names[j], error)
    # the riding H keeps its bond length on any cell, and stays on its Wyckoff position
    frac = model.frac(x)
    parent = rider.rotation @ frac[rider.parent] + rider.translation
    assert abs(float(model.cell(x).distance(frac[rider.site], parent)) - rider.length) < 1e-9
    orbit = model.space_group.orbit(frac[rider.site] % 1.0, tol=1e-6)
    assert len(orbit) == model.multiplicity[rider.site]


@pytest.fixture(scope="module")
def brucite_runs():
    truth = _brucite(Z_O, Z_H)
    pattern = _pattern(truth, 15.0, 80.0, 2e-2)
    # O 0.048 Å off along the axis, its H placed 0.971 Å from it (as the pipeline places H on a search's O)
    bond = (Z_H - (1 - Z_O)) * BRUCITE_CELL.c
    start = _brucite(Z_O + 0.01, 1 - Z_O - 0.01 + bond / BRUCITE_CELL.c, (1.0, 1.0, 1.0))
    groups = ("cell", "zero", "profile", "coordinates", "b_iso")
    runs = {}
    for mode in ("riding", "fixed", "free"):
        settings = RefinementSettings(groups, background_terms=3, anomalous_dispersion=False, hydrogens=mode)
        runs[mode] = refine(start, pattern, RADIATION, PROFILE, settings)
    return truth, bond, runs


def test_brucite_refined_with_riding_h(brucite_runs):
    truth, bond, runs = brucite_runs
    riding = runs["riding"]
    assert riding.error is None and all(stage.converged for stage in riding.stages)
    _, o, h = riding.structure.sites
    assert abs((h.frac[2] - o.frac[2]) * riding.structure.cell.c - bond) < 1e-6  # O-H stays 0.971 Å
    assert h.b_iso == pytest.approx(1.5 * o.b_iso, rel=1e-12)  # Uiso(H) = 1.5 Ueq(O)
    assert riding.b_esd[2] == 0 and np.all(riding.coordinate_esd[2] == 0)  # constrained: no esds of its own
    # O came back, and its H with it
    assert abs(o.frac[2] - (1 - Z_O)) * truth.cell.c < 0.005 and abs(h.frac[2] - Z_H) * truth.cell.c < 0.005
    # no worse than H held where they started, which stay 0.048 Å off
    fixed = runs["fixed"]
    assert fixed.structure.sites[2].frac[2] == pytest.approx(1 - Z_O - 0.01 + bond / truth.cell.c, abs=1e-12)
    assert riding.metrics.rwp < 0.5 * fixed.metrics.rwp
    # "free": the old behaviour, H coordinates and B refined like any atom's
    free = runs["free"]
    assert {"z(H1)", "B(H1)"} <= set(free.model.layout.names)
    assert free.hydrogens[0].status == "free"
    assert "z(H1)" not in riding.model.layout.names and "z(H1)" not in fixed.model.layout.names


def test_refined_cif_and_reports_say_the_h_ride(brucite_runs):
    import gemmi

    from gasolve.rietveld.report import format_refined_cif, parameter_table, refinement_summary

    riding = brucite_runs[2]["riding"]
    block = gemmi.cif.read_string(format_refined_cif(riding)).sole_block()
    table = block.find(
        "_atom_site_", ["label", "U_iso_or_equiv", "calc_flag", "refinement_flags_posn", "calc_attached_atom"]
    )
    rows = {row[0]: [row[i] for i in range(1, 5)] for row in table}
    assert rows["H1"][1:] == ["calc", "R", "O1"] and "(" not in rows["H1"][0]
    assert rows["O1"][1:] == ["d", ".", "."]
    # O1's U is refined: it carries its esd, unless that rounds to nothing (the noise-free pattern is fitted to
    # Rwp ~1e-13 since every derivative is analytic, and its esds are ~1e-13)
    assert "(" in rows["O1"][0] or riding.b_esd[1] < 1e-9
    (record,) = refinement_summary(riding)["hydrogens"]
    assert record["status"] == "riding" and record["parent"] == "O1" and record["u_ratio"] == 1.5
    assert record["distance"] == pytest.approx(brucite_runs[1], abs=1e-6)
    assert "H1 rides on O1 (0.971 Å), Uiso = 1.5 Ueq(O1)" in parameter_table(riding)
    fixed = brucite_runs[2]["fixed"]
    assert refinement_summary(fixed)["hydrogens"][0]["status"] == "fixed"


def _riders(cell, group, atoms, labels):
    elements = [e for e, _ in atoms]
    frac = np.array([x for _, x in atoms], dtype=float)
    site_map = SiteMap.from_labels(group, labels)
    return find_riding(cell, group, frac, elements, [f"{e}{i}" for i, e in enumerate(elements)], site_map.matrix)


def test_h_on_a_mirror_with_a_general_parent_is_held_fixed():
    # Pnma, an H on the mirror y = 1/4 and its O 0.97 Å off it on the general position: the O's moves would take
    # the H off its mirror, so the H is held (its B still rides on the O's).
    cell = UnitCell(7.0, 7.0, 7.0, 90, 90, 90)
    group = SpaceGroup.from_symbol(62)
    atoms = [("O", (0.1, 0.25 + 0.97 / 7.0, 0.1)), ("H", (0.1, 0.25, 0.1))]
    (rider,) = _riders(cell, group, atoms, ["8d", "4c"])
    assert rider.status == "fixed" and rider.parent == 0 and "Wyckoff position" in rider.reason
    assert rider.b_constrained and rider.u_ratio == 1.5


def test_metal_hydride_h_has_no_parent_and_is_held():
    # MgH2 (mp-23710): the H's nearest atom is Mg, a metal: nothing to ride on
    cell = UnitCell(4.5119, 4.5119, 3.0157, 90, 90, 90)
    group = SpaceGroup.from_symbol(136)
    (rider,) = _riders(cell, group, [("Mg", (0.5, 0.5, 0.5)), ("H", (0.6959, 0.6959, 0.0))], ["2b", "4f"])
    assert rider.status == "fixed" and rider.parent is None and "metal" in rider.reason
    assert not rider.b_constrained


def test_methyl_like_group_gets_1_5_and_a_single_h_1_2():
    # A C with three H (a methyl) and an N with one, general positions of P1
    cell = UnitCell(10.0, 10.0, 10.0, 90, 90, 90)
    group = SpaceGroup.from_symbol(1)
    c, n = np.array([0.2, 0.2, 0.2]), np.array([0.7, 0.7, 0.7])
    directions = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1]]) / np.sqrt(3)
    atoms = [("C", c), ("N", n)] + [("H", c + 0.109 * d) for d in directions] + [("H", n + np.array([0.101, 0.0, 0.0]))]
    riders = _riders(cell, group, atoms, ["1a"] * len(atoms))
    assert [r.parent for r in riders] == [0, 0, 0, 1]
    assert [r.u_ratio for r in riders] == [1.5, 1.5, 1.5, 1.2]
    assert all(r.rides for r in riders)


def test_given_parent_overrides_the_nearest_and_bad_labels_are_named():
    cell = UnitCell(10.0, 10.0, 10.0, 90, 90, 90)
    group = SpaceGroup.from_symbol(1)
    atoms = [("O", (0.5, 0.5, 0.5)), ("O", (0.5, 0.5, 0.75)), ("H", (0.5, 0.5, 0.6))]
    frac = np.array([x for _, x in atoms])
    matrices = SiteMap.general(group, 3).matrix
    labels = ["O1", "O2", "H1"]
    elements = ["O", "O", "H"]
    (nearest,) = find_riding(cell, group, frac, elements, labels, matrices)
    assert nearest.parent == 0
    (given,) = find_riding(cell, group, frac, elements, labels, matrices, parents={"H1": "O2"})
    assert given.parent == 1 and given.length == pytest.approx(1.5)
    with pytest.raises(InputError, match=r"\[refinement\] hydrogen_parents: no site 'O9'"):
        find_riding(cell, group, frac, elements, labels, matrices, parents={"H1": "O9"})
    with pytest.raises(InputError, match="O1 is not an H site"):
        find_riding(cell, group, frac, elements, labels, matrices, parents={"O1": "O2"})


def test_hydrogens_key_is_validated_and_round_trips():
    assert parse_refinement(None, "x.toml").hydrogens == "riding"
    settings = parse_refinement({"hydrogens": "free", "hydrogen_parents": {"H1": "O2"}}, "x.toml")
    assert settings.hydrogens == "free" and settings.hydrogen_parents == (("H1", "O2"),)
    assert parse_refinement(refinement_table(settings), "x.toml") == settings
    with pytest.raises(InputError) as bad:
        parse_refinement({"hydrogens": "wobbly"}, "x.toml")
    assert "x.toml: [refinement] hydrogens" in str(bad.value) and "'riding'" in str(bad.value)
    with pytest.raises(InputError) as bad:
        parse_refinement({"hydrogen_parents": ["H1", "O2"]}, "x.toml")
    assert "[refinement] hydrogen_parents" in str(bad.value)


def test_with_noise_riding_h_stay_put_and_rwp_matches_fixed():
    # Poisson noise (seed 5): the H's own share of the fit is below the noise, so riding and fixed H give the same
    # Rwp within it, and the riding H lands within 0.01 Å of the truth with its O (docs/refinement.md quotes this)
    truth = _brucite(Z_O, Z_H)
    two_theta = np.arange(10.0, 90.0, 0.02)
    sim = simulate(truth, two_theta, RADIATION, PROFILE, np.array([100.0, -10.0, 5.0]))
    y = np.random.default_rng(5).poisson(2e-2 * sim.peaks + sim.background).astype(float)
    pattern = ObservedPattern(two_theta, y, np.sqrt(np.maximum(y, 1.0)))
    bond = (Z_H - (1 - Z_O)) * BRUCITE_CELL.c
    start = _brucite(Z_O + 0.01, 1 - Z_O - 0.01 + bond / BRUCITE_CELL.c, (1.0, 1.0, 1.0))
    groups = ("cell", "zero", "profile", "coordinates", "b_iso")
    chi2 = {}
    for mode in ("riding", "fixed"):
        settings = RefinementSettings(groups, background_terms=3, anomalous_dispersion=False, hydrogens=mode)
        result = refine(start, pattern, RADIATION, PROFILE, settings)
        chi2[mode] = float(np.sum(pattern.weights * (pattern.y_obs - result.y_calc) ** 2))
        if mode == "riding":
            h = result.structure.sites[2]
            assert abs(h.frac[2] - Z_H) * BRUCITE_CELL.c < 0.01
    assert chi2["riding"] < chi2["fixed"] + 2.0  # the same within the noise (Δχ² of a few is 1-2 σ)


def _brucite_refine_args(tmp_path, refinement: dict) -> list[str]:
    from gasolve.config import profile_table
    from gasolve.crystal.cif_io import write_cif
    from gasolve.io.patterns import write_xye
    from gasolve.io.toml_file import toml_text

    truth = _brucite(Z_O, Z_H)
    pattern = _pattern(truth, 15.0, 70.0, 2e-2)
    write_xye(tmp_path / "sim.xye", pattern.two_theta, pattern.y_obs, pattern.sigma)
    write_cif(_brucite(Z_O + 0.005, Z_H - 0.005, (1.0, 1.0, 1.0)), tmp_path / "start.cif")
    config = {
        "structure": {
            "name": "brucite",
            "cell": list(BRUCITE_CELL.parameters),
            "space_group": "P-3m1",
            "sites": ["Mg"],
        },
        "pattern": {
            "file": "sim.xye",
            "wavelength": 1.5406,
            "background": {"terms": 3},
            "profile": profile_table(PROFILE),
        },
        "refinement": {"anomalous_dispersion": False, "preferred_orientation": "off", **refinement},
    }
    (tmp_path / "run.toml").write_text(toml_text(config, []), encoding="utf-8")
    return ["refine", str(tmp_path / "run.toml"), str(tmp_path / "start.cif"), "--out", str(tmp_path / "out")]


def test_gasolve_refine_writes_riding_h_and_rejects_bad_hydrogen_keys(tmp_path, capsys):
    import gemmi

    from gasolve.cli.main import main
    from tests.conftest import strict_json

    assert main(_brucite_refine_args(tmp_path, {})) == 0
    out = tmp_path / "out"
    block = gemmi.cif.read(str(out / "refined.cif")).sole_block()
    table = block.find("_atom_site_", ["label", "calc_flag", "refinement_flags_posn", "calc_attached_atom"])
    assert [list(row) for row in table if row[0] == "H1"] == [["H1", "calc", "R", "O1"]]
    small = gemmi.read_small_structure(str(out / "refined.cif"))  # gemmi's reader takes the extra columns
    assert [site.label for site in small.sites] == ["Mg1", "O1", "H1"]
    summary = strict_json(out / "refinement.json")
    assert summary["hydrogens"][0]["status"] == "riding" and summary["hydrogens"][0]["parent"] == "O1"
    assert "H1 rides on O1" in (out / "refinement.txt").read_text()
    capsys.readouterr()
    assert main(_brucite_refine_args(tmp_path, {"hydrogens": "wobbly"})) == 2
    err = capsys.readouterr().err
    assert "run.toml" in err and "[refinement] hydrogens" in err and "'riding'" in err
    assert main(_brucite_refine_args(tmp_path, {"hydrogen_parents": {"H1": "O9"}})) == 2
    err = capsys.readouterr().err
    assert "run.toml" in err and "hydrogen_parents" in err and "O9" in err and "Mg1, O1, H1" in err


def test_summary_entry_of_the_rietveld_stage_lists_the_h(tmp_path):
    from types import SimpleNamespace

    from gasolve.cli.run import rietveld_stage
    from gasolve.config import load_observed, load_run_config
    from gasolve.crystal.cif_io import read_cif

    _brucite_refine_args(tmp_path, {"hydrogens": "fixed"})
    config = load_run_config(tmp_path / "run.toml")
    setup = SimpleNamespace(config=config, observed=load_observed(config))
    entry = rietveld_stage(SimpleNamespace(setup=setup, structure=read_cif(tmp_path / "start.cif")), tmp_path)
    (record,) = entry["rietveld"]["hydrogens"]
    assert record["status"] == "fixed" and record["parent"] == "O1" and record["u_ratio"] == 1.5
    assert record["reason"] == '[refinement] hydrogens = "fixed"'
