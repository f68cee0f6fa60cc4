"""Anisotropic displacement parameters (gasolve.rietveld.adp and the Rietveld model's ``adp``): site-symmetry
constraints on known cases, |F|² against the naive loop (tests/naive.py) and against gemmi, analytic derivatives
against 4-point differences, U recovered from a simulated pattern within its esds, refined.cif read back by gemmi,
the non-positive-definite report, and bad input."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import gemmi
import numpy as np
import pytest
from conftest import cif_esd

from gasolve.cli.main import main
from gasolve.config import profile_table
from gasolve.crystal.cell import UnitCell
from gasolve.crystal.cif_io import write_cif
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import U_TO_B, Site, Structure
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern, write_xye
from gasolve.io.toml_file import toml_text
from gasolve.rietveld import RefinementSettings, RietveldModel, adp, parse_refinement, refine
from gasolve.rietveld.report import format_refined_cif, parameter_table, refinement_summary
from gasolve.rietveld.settings import refinement_table
from gasolve.rietveld.staged import summarise
from tests import naive
from tests.conftest import data_path

PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.0)
CUKA1 = Radiation(((1.5406, 1.0),), "CuKa1")
#: Just above the As K edge: f'' of the heavier atoms is large, so F(h) and F(-h) differ in a polar group.
HARD = Radiation(((1.0, 1.0),), "1.0 A")

#: Diopside, CaMgSi2O6 (C2/c): Ca and Mg on 2-fold axes (4e), the rest general; a non-orthogonal cell, so that
#: N U N and the U13 cross terms matter. U (Å², CIF convention) chosen positive definite, within each site's
#: constraints (U12 = U23 = 0 on the 2-fold axis along b).
DIOPSIDE_U = {
    "Ca1": (0.0110, 0.0080, 0.0140, 0.0, 0.0030, 0.0),
    "Mg1": (0.0060, 0.0070, 0.0050, 0.0, 0.0010, 0.0),
    "Si1": (0.0050, 0.0060, 0.0070, 0.0008, 0.0012, -0.0006),
    "O1": (0.0080, 0.0090, 0.0100, 0.0015, 0.0020, -0.0010),
    "O2": (0.0140, 0.0090, 0.0120, -0.0020, 0.0040, 0.0015),
    "O3": (0.0090, 0.0150, 0.0080, 0.0010, 0.0010, 0.0030),
}


def _diopside(with_hydrogen: bool = False) -> Structure:
    sites = [
        Site("Ca1", "Ca", (0.0, 0.3016, 0.25), b_iso=0.7),
        Site("Mg1", "Mg", (0.0, 0.9082, 0.25), b_iso=0.5),
        Site("Si1", "Si", (0.2862, 0.0933, 0.2293), b_iso=0.4),
        Site("O1", "O", (0.1156, 0.0873, 0.1422), b_iso=0.6),
        Site("O2", "O", (0.3611, 0.2500, 0.3180), b_iso=0.8),
        Site("O3", "O", (0.3505, 0.0176, 0.9953), b_iso=0.7),
    ]
    cell = UnitCell(9.746, 8.899, 5.251, 90.0, 105.63, 90.0)
    if with_hydrogen:  # an H 0.97 Å from O2 along c (riding on it: its B follows 8π² Ueq(O2))
        o2 = np.array(sites[4].frac)
        sites.append(Site("H1", "H", tuple(o2 + np.array([0.0, 0.0, 0.97 / cell.c])), b_iso=1.0))
    return Structure(cell, SpaceGroup.from_symbol("C2/c"), tuple(sites), name="diopside")


def _dummy(lo: float, hi: float, step: float = 0.02) -> ObservedPattern:
    two_theta = np.arange(lo, hi, step)
    return ObservedPattern(two_theta, np.ones_like(two_theta), np.ones_like(two_theta))


def _set_u(model: RietveldModel, x: np.ndarray, table: dict) -> np.ndarray:
    """x with each anisotropic site's free components set from its 6-vector in ``table``."""
    x = x.copy()
    for j in model.layout.indices("u_aniso"):
        name = model.layout.names[j]
        component, label = name[:3], name[4:-1]
        x[j] = table[label][adp.U_COMPONENTS.index(component)]
    return x


# ----------------------------------------------------------------------------------------------------------------
# Constraints


@pytest.mark.parametrize(
    ("symbol", "frac", "pivots", "rows"),
    [
        ("Fm-3m", (0, 0, 0), ["U11"], [[1, 1, 1, 0, 0, 0]]),  # cubic m-3m: isotropic
        ("Pa-3", (0.1, 0.1, 0.1), ["U11", "U12"], [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]),  # 3-fold axis
        ("P6_3/mmc", (1 / 3, 2 / 3, 1 / 4), ["U11", "U33"], [[1, 1, 0, 0.5, 0, 0], [0, 0, 1, 0, 0, 0]]),
        ("R-3m", (0, 0, 0.3), ["U11", "U33"], [[1, 1, 0, 0.5, 0, 0], [0, 0, 1, 0, 0, 0]]),  # hexagonal axes
        ("P4/mmm", (0, 0, 0.3), ["U11", "U33"], [[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]]),  # 4-fold axis
        (  # rutile's O (4f, m.mm): U11 = U22, U12 free
            "P4_2/mnm",
            (0.3, 0.3, 0.0),
            ["U11", "U33", "U12"],
            [[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0]],
        ),
        (  # 2-fold axis along b (unique axis b): U12 = U23 = 0
            "C2/c",
            (0, 0.3, 0.25),
            ["U11", "U22", "U33", "U13"],
            [[1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0]],
        ),
        ("P2_1/c", (0.1, 0.2, 0.3), list(adp.U_COMPONENTS), np.eye(6).tolist()),  # general position: 6 free
    ],
)
def test_constraints_of_known_site_symmetries(symbol, frac, pivots, rows):
    group = SpaceGroup.from_symbol(symbol)
    basis = adp.site_basis(group, np.array(frac, dtype=float))
    assert [adp.U_COMPONENTS[m] for m in adp.pivots(basis)] == pivots
    np.testing.assert_allclose(basis.T, rows, atol=1e-12)
    # independently: the site-symmetry average (Reynolds operator) of any tensor lies in the span, and its rank
    # is the number of free parameters
    rotations = [r for r, t in naive.symmetry_operators(group.hall) if naive._same_position(r @ frac + t, frac, 1e-6)]
    average = np.zeros((6, 6))
    for r in rotations:
        average += np.array([adp.six(r @ adp.tensor(np.eye(6)[m]) @ r.T) for m in range(6)]).T / len(rotations)
    assert np.linalg.matrix_rank(average, tol=1e-9) == len(pivots)
    np.testing.assert_allclose(average @ basis, basis, atol=1e-12)


def test_isotropic_tensor_and_ueq_in_a_monoclinic_cell():
    cell = UnitCell(9.746, 8.899, 5.251, 90.0, 105.63, 90.0)
    u = adp.isotropic(0.01, cell.reciprocal_metric)
    assert u[:3] == pytest.approx([0.01] * 3) and u[[3, 5]] == pytest.approx([0.0, 0.0], abs=1e-15)
    assert u[4] == pytest.approx(0.01 * math.cos(math.radians(180.0 - 105.63)))  # Uiso cos β*
    assert adp.u_equivalent(u, cell) == pytest.approx(0.01)
    np.testing.assert_allclose(adp.principal_values(u, cell), [0.01] * 3, rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------------
# |F|² and derivatives


def test_intensities_equal_the_naive_loop_with_complex_f():
    structure = _diopside()
    model = RietveldModel(structure, _dummy(10.0, 80.0), HARD, PROFILE, background_terms=3, adp="aniso")
    x = _set_u(model, model.x0, DIOPSIDE_U)
    table = model.dispersion
    elements = structure.elements
    expected = naive.anisotropic_powder_intensities(
        structure.space_group.hall,
        structure.cell.parameters,
        model.hkl,
        elements,
        structure.frac,
        model.occupancy,
        np.array([DIOPSIDE_U[s.label] for s in structure.sites]),
        {el: table.of(el)[0] for el in elements},
        {el: table.of(el)[1] for el in elements},
    )
    ours = model.structure_factors_squared(x)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9 * expected.max())
    # and the isotropic refinement of the same model differs: the test can fail
    assert np.max(np.abs(model.structure_factors_squared(model.x0) / expected - 1)) > 0.05


def test_nac_intensities_equal_gemmis_with_its_cif_uaniso():
    """NAC.cif (I2_13, GSAS's Uani on 3-fold axes and a 2-fold axis) with neutral atoms, no f' f'': gemmi's
    StructureFactorCalculatorX with the same IT92 form factors. The isotropic comparison of the same file agrees to
    the same 3e-5 (form-factor evaluation and the cell's rounding)."""
    path = data_path("measured/NAC-11BM-synchrotron/NAC.cif")
    from gasolve.crystal.cif_io import read_cif

    structure = read_cif(path)
    structure = replace(structure, sites=tuple(replace(s, charge=0) for s in structure.sites))
    model = RietveldModel(
        structure, _dummy(5.0, 30.0), Radiation(((0.413909, 1.0),), "11-BM"), PROFILE, 3, adp="aniso",
        anomalous_dispersion=False,
    )  # fmt: skip
    small = gemmi.read_small_structure(str(path))
    small.change_occupancies_to_crystallographic()
    table = {}
    for site in small.sites:
        site.charge = 0
        a = site.aniso
        table[site.label] = (a.u11, a.u22, a.u33, a.u12, a.u13, a.u23)
    x = _set_u(model, model.x0, table)
    np.testing.assert_allclose(model.u_aniso(x), [table[s.label] for s in structure.sites], atol=1e-12)
    calculator = gemmi.StructureFactorCalculatorX(small.cell)
    expected = np.array([abs(calculator.calculate_sf_from_small_structure(small, list(map(int, h)))) ** 2
                         for h in model.hkl])  # fmt: skip
    np.testing.assert_allclose(model.structure_factors_squared(x), expected, rtol=5e-5)


def _polar() -> Structure:
    """A polar, non-centrosymmetric model (P2_13, FeSi type): sites on 3-fold axes and a general O."""
    return Structure(
        UnitCell(6.2, 6.2, 6.2, 90, 90, 90),
        SpaceGroup.from_symbol("P2_13"),
        (
            Site("Fe1", "Fe", (0.137, 0.137, 0.137), b_iso=0.5),
            Site("As1", "As", (0.843, 0.843, 0.843), b_iso=0.6),
            Site("O1", "O", (0.31, 0.08, 0.46), b_iso=0.9),
        ),
        name="polar",
    )


@pytest.mark.parametrize("case", ["polar, f''", "monoclinic, riding H"])
def test_u_derivatives_match_finite_differences(case):
    if case == "polar, f''":
        model = RietveldModel(_polar(), _dummy(15.0, 60.0), HARD, PROFILE, background_terms=3, adp="aniso")
    else:
        model = RietveldModel(_diopside(True), _dummy(15.0, 50.0), CUKA1, PROFILE, background_terms=3, adp="aniso")
        assert model.aniso_sites == [0, 1, 2, 3, 4, 5]  # every site but the H, which rides on O2
        assert model._aniso_riders and model.b_iso(model.x0)[6] > 0
    x = model.x0 + 0.001 * np.sin(np.arange(model.n_parameters))
    free = model.layout.indices(("u_aniso", "coordinates", "b_iso"))
    derivative = model.peak_derivatives(x, free)
    for column, j in enumerate(free):
        reference = naive.peak_derivative_4point(model, x, j)
        error = np.linalg.norm(derivative[:, column] - reference) / np.linalg.norm(reference)
        assert error < 1e-6, (model.layout.names[j], error)


# ----------------------------------------------------------------------------------------------------------------
# Refinement, outputs


def _simulated(seed: int = 1):
    """A diopside pattern with DIOPSIDE_U and Poisson noise (the model's own engine), and the model."""
    truth = _diopside()
    dummy = _dummy(12.0, 110.0)
    model = RietveldModel(truth, dummy, CUKA1, PROFILE, background_terms=3, adp="aniso", anomalous_dispersion=False)
    x = _set_u(model, model.x0, DIOPSIDE_U)
    peaks = model.peaks(x)
    y = np.random.default_rng(seed).poisson(2e5 * peaks / peaks.max() + 100.0).astype(float)
    return truth, ObservedPattern(dummy.two_theta, y, np.sqrt(np.maximum(y, 1.0)))


@pytest.fixture(scope="module")
def refined():
    truth, pattern = _simulated()
    settings = RefinementSettings(
        groups=("coordinates", "b_iso", "u_aniso"), adp="aniso", background_terms=3, anomalous_dispersion=False
    )
    return truth, refine(truth, pattern, CUKA1, PROFILE, settings)


def test_simulated_anisotropic_u_is_recovered_within_its_esds(refined):
    truth, result = refined
    assert result.error is None and result.non_positive_definite == ()
    assert result.metrics.chi2 == pytest.approx(1.0, abs=0.1)
    deviations = []
    for i, site in enumerate(truth.sites):
        for m in range(6):
            esd = result.u_aniso_esd[i, m]
            if esd > 0:
                deviations.append((result.u_aniso[i, m] - DIOPSIDE_U[site.label][m]) / esd)
            else:  # fixed at 0 by the 2-fold axis
                assert result.u_aniso[i, m] == 0.0 and DIOPSIDE_U[site.label][m] == 0.0
    deviations = np.array(deviations)
    assert len(deviations) == 4 + 4 + 4 * 6  # U12 and U23 of Ca and Mg are 0 (no esd)
    assert np.max(np.abs(deviations)) < 4.0, deviations
    assert 0.4 < np.std(deviations) < 1.8  # esds of the right size, not merely large
    # Ueq and its esd: B of the structure is 8π² Ueq
    for i, site in enumerate(result.structure.sites):
        assert site.b_iso == pytest.approx(U_TO_B * adp.u_equivalent(result.u_aniso[i], result.structure.cell))
        assert 0 < result.b_esd[i] < 0.05


def test_refined_cif_carries_uani_read_back_by_gemmi(refined, tmp_path):
    _, result = refined
    text = format_refined_cif(result, ["test"])
    block = gemmi.cif.read_string(text).sole_block()
    assert list(block.find_loop("_atom_site_adp_type")) == ["Uani"] * 6
    labels = list(block.find_loop("_atom_site_aniso_label"))
    assert labels == [s.label for s in result.structure.sites]
    columns = [list(block.find_loop(f"_atom_site_aniso_U_{c}")) for c in ("11", "22", "33", "12", "13", "23")]
    for i in range(6):
        for m in range(6):
            value, esd = cif_esd(columns[m][i])
            assert value == pytest.approx(result.u_aniso[i, m], abs=6e-6)
            assert esd == pytest.approx(result.u_aniso_esd[i, m], rel=0.35, abs=1.5e-5)
    for i, cell_text in enumerate(block.find_loop("_atom_site_U_iso_or_equiv")):
        ueq = adp.u_equivalent(result.u_aniso[i], result.structure.cell)
        assert cif_esd(cell_text)[0] == pytest.approx(ueq, abs=6e-6)
    # gemmi's own reading of the file as a small structure
    path = tmp_path / "refined.cif"
    path.write_text(text, encoding="utf-8")
    small = gemmi.read_small_structure(str(path))
    for i, site in enumerate(small.sites):
        a = site.aniso
        np.testing.assert_allclose([a.u11, a.u22, a.u33, a.u12, a.u13, a.u23], result.u_aniso[i], atol=6e-6)
    # ASE and pymatgen read the file (positions, species); neither reads ADPs (ase 3.29, pymatgen's CifParser)
    import ase.io
    from pymatgen.core import Structure as PymatgenStructure

    assert len(ase.io.read(path)) == len(PymatgenStructure.from_file(path)) == 40
    summary = refinement_summary(result)
    records = json.loads(json.dumps(summary, allow_nan=False))["anisotropic"]
    assert [r["label"] for r in records] == labels
    np.testing.assert_allclose([r["u"] for r in records], result.u_aniso, atol=0)
    assert all(r["positive_definite"] for r in records)


def test_a_non_positive_definite_u_is_reported(refined):
    _, result = refined
    model = result.model
    x = result.x.copy()
    j = model.layout.index("U33(O2)")
    x[j] = -0.004  # U33 < 0: not a physical tensor
    free = np.concatenate([model.layout.indices(("coordinates", "u_aniso"))])
    bad = summarise(model, x, free)
    assert bad.non_positive_definite == ("O2",)
    assert "not positive definite" in format_refined_cif(bad).splitlines()[0]
    assert "NOT POSITIVE DEFINITE" in parameter_table(bad)
    summary = refinement_summary(bad)
    assert summary["non_positive_definite"] == ["O2"]
    assert [r["positive_definite"] for r in summary["anisotropic"]] == [True, True, True, True, False, True]


def test_adp_lists_choose_sites_by_label_or_element():
    structure = _diopside(True)
    dummy = _dummy(20.0, 40.0)
    model = RietveldModel(structure, dummy, CUKA1, PROFILE, background_terms=3, adp=["Ca1", "O"])
    assert model.aniso_sites == [0, 3, 4, 5]
    names = model.layout.names
    assert "B(Ca1)" not in names and "B(Mg1)" in names and "U13(Ca1)" in names and "U12(Ca1)" not in names
    element_b = RietveldModel(structure, dummy, CUKA1, PROFILE, background_terms=3, adp=["O"], b_per="element")
    assert [n for n in element_b.layout.names if n.startswith("B(")] == ["B(Ca)", "B(Mg)", "B(Si)"]
    with pytest.raises(InputError, match=r"\[refinement\] adp names 'Zr'"):
        RietveldModel(structure, dummy, CUKA1, PROFILE, background_terms=3, adp=["Zr"])
    with pytest.raises(InputError, match=r"H1.*riding"):
        RietveldModel(structure, dummy, CUKA1, PROFILE, background_terms=3, adp=["H1"])


# ----------------------------------------------------------------------------------------------------------------
# Settings and bad input


def test_adp_setting_is_read_checked_and_written_back():
    assert parse_refinement(None, "c.toml").adp == "iso"
    for value in ("aniso", ["Pb", "S1"]):
        settings = parse_refinement({"adp": value}, "c.toml")
        assert settings.adp == (value if isinstance(value, str) else tuple(value))
        assert "u_aniso" in settings.refined_groups
        assert parse_refinement(refinement_table(settings), "c.toml") == settings
    assert "u_aniso" not in parse_refinement({}, "c.toml").refined_groups
    for bad in ("anisotropic", [], [1], ["Pb", "Pb"], True, [""]):
        with pytest.raises(InputError, match=r"c.toml: \[refinement\] adp"):
            parse_refinement({"adp": bad}, "c.toml")
    with pytest.raises(InputError, match=r"\[refinement\] adp.*b_iso"):
        parse_refinement({"adp": "aniso", "b_iso": "off"}, "c.toml")


def _write_run(tmp_path, refinement: dict):
    """sim.xye (the simulated diopside), start.cif (the truth) and run.toml with ``refinement`` in ``tmp_path``;
    returns the arguments of ``gasolve refine``."""
    truth, pattern = _simulated()
    write_xye(tmp_path / "sim.xye", pattern.two_theta, pattern.y_obs, pattern.sigma)
    write_cif(truth, tmp_path / "start.cif")
    config = {
        "structure": {"name": "diopside", "cell": list(truth.cell.parameters), "space_group": "C2/c", "sites": ["Ca"]},
        "pattern": {"file": "sim.xye", "wavelength": 1.5406, "background": {"terms": 3},
                    "profile": profile_table(PROFILE)},
        "refinement": refinement,
    }  # fmt: skip
    (tmp_path / "run.toml").write_text(toml_text(config, []), encoding="utf-8")
    return ["refine", str(tmp_path / "run.toml"), str(tmp_path / "start.cif"), "--out", str(tmp_path / "out")]


def test_summary_entry_of_the_rietveld_stage_carries_the_tensors(tmp_path):
    from types import SimpleNamespace

    from gasolve.cli.run import rietveld_stage
    from gasolve.config import load_observed, load_run_config
    from gasolve.crystal.cif_io import read_cif

    refinement = {"adp": ["Ca1", "Si"], "anomalous_dispersion": False, "preferred_orientation": "off"}
    refinement |= {"cell": False, "zero": False, "profile": False}
    _write_run(tmp_path, refinement)
    config = load_run_config(tmp_path / "run.toml")
    setup = SimpleNamespace(config=config, observed=load_observed(config))
    entry = rietveld_stage(SimpleNamespace(setup=setup, structure=read_cif(tmp_path / "start.cif")), tmp_path)
    entry = json.loads(json.dumps(entry, allow_nan=False))["rietveld"]
    assert [r["label"] for r in entry["anisotropic"]] == ["Ca1", "Si1"] and entry["non_positive_definite"] == []
    report = json.loads((tmp_path / "refinement.json").read_text())
    assert report["anisotropic"] == entry["anisotropic"]  # summary.json and refinement.json: the same values
    ca = entry["anisotropic"][0]
    assert ca["u"][3] == ca["u"][5] == 0.0 and ca["u_esd"][3] == ca["u_esd"][5] == 0.0  # fixed by the 2-fold axis
    np.testing.assert_allclose(ca["u"], DIOPSIDE_U["Ca1"], atol=4 * max(e or 0 for e in ca["u_esd"]))


def test_refine_cli_with_adp_and_bad_names_exit_2(tmp_path, capsys):
    def run(refinement) -> int:
        return main(_write_run(tmp_path, refinement))

    assert run({"adp": ["Zr"], "cell": False, "zero": False, "profile": False}) == 2
    err = capsys.readouterr().err
    assert "run.toml" in err and "[refinement] adp" in err and "Zr" in err and "Traceback" not in err
    assert run({"adp": "all"}) == 2
    assert "[refinement] adp" in capsys.readouterr().err
    assert not (tmp_path / "out" / "refined.cif").exists()
