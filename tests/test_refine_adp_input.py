"""Anisotropic displacement parameters given in the starting model (issue 14): the CIF reader's U_ij (and B_ij)
against gemmi's reading and the raw loop, Ueq against the value a CIF states, the refinement started from a CIF's
U_ij (carried onto the site's Wyckoff representative, projected onto the site symmetry, with a warning when a
CIF's tensor breaks it), NAC started from GSAS's Uani, and ``gasolve refine --adp``."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace

import gemmi
import numpy as np
import pytest
from conftest import cif_esd

from gasolve.cli.main import main
from gasolve.config import profile_table
from gasolve.crystal.cif_io import format_cif, parse_cif, read_cif
from gasolve.crystal.structure import U_TO_B, Site
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern, write_xye
from gasolve.io.toml_file import toml_text
from gasolve.rietveld import RefinementSettings, RietveldModel, refine
from gasolve.rietveld.adp import U_COMPONENTS, SiteSymmetryWarning, u_equivalent
from tests.conftest import data_path

ASPIRIN = "derived/aspirin_asp100_neutron.cif"
NAC = "measured/NAC-11BM-synchrotron/NAC.cif"
PBSO4 = "measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif"
CRISTOBALITE = "cif/ase-minerals/cod_9017338.cif"
PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.0)
CUKA1 = Radiation(((1.5406, 1.0),), "CuKa1")
#: A U for Pb in PbSO4 (Pnma, 4c on the mirror y = 1/4: U12 = U23 = 0), positive definite, with U13 != 0 so that
#: the 2-fold image of the site has a different tensor.
PB_U = (0.0177, 0.0142, 0.0245, 0.0, 0.0030, 0.0)


def _dummy(lo: float = 10.0, hi: float = 60.0) -> ObservedPattern:
    two_theta = np.arange(lo, hi, 0.02)
    return ObservedPattern(two_theta, np.ones_like(two_theta), np.ones_like(two_theta))


def _raw_aniso(path) -> dict[str, tuple[float, ...]]:
    """U (U11, U22, U33, U12, U13, U23) by label straight from the CIF's aniso loop, each column found by its tag
    (whatever order the file gives them in)."""
    block = gemmi.cif.read(str(path)).sole_block()
    labels = list(block.find_values("_atom_site_aniso_label"))
    columns = [[cif_esd(v)[0] for v in block.find_values(f"_atom_site_aniso_U_{c[1:]}")] for c in U_COMPONENTS]
    return {label: tuple(column[k] for column in columns) for k, label in enumerate(labels)}


@pytest.mark.parametrize("relative", [ASPIRIN, NAC])
def test_reader_gives_the_cifs_u_as_gemmi_and_the_raw_loop_read_it(relative):
    path = data_path(relative)  # NAC: skips without ../shared/data
    structure = read_cif(path)
    small = gemmi.read_small_structure(str(path))
    raw = _raw_aniso(path)
    assert len(raw) == structure.n_sites
    for site, other in zip(structure.sites, small.sites, strict=True):
        a = other.aniso
        np.testing.assert_allclose(site.u_aniso, (a.u11, a.u22, a.u33, a.u12, a.u13, a.u23), rtol=1e-12, atol=0)
        np.testing.assert_allclose(site.u_aniso, raw[site.label], rtol=1e-12, atol=0)
        assert math.isclose(site.b_iso, U_TO_B * other.u_iso, rel_tol=1e-12)  # the CIF's U_iso_or_equiv
    # aspirin lists U_23, U_13, U_12 (SHELXL's order): O4's U12 is -0.013, its U23 -0.007
    if relative == ASPIRIN:
        assert structure.sites[-1].u_aniso[3] == -0.013 and structure.sites[-1].u_aniso[5] == -0.007


def test_b_ij_are_read_as_u_and_a_missing_uiso_starts_the_refinement_from_ueq():
    text = data_path(ASPIRIN).read_text()
    reference = parse_cif(text)
    head, loop = text.split("loop_\n_atom_site_aniso_label")
    rows = [line.split() for line in loop.strip().splitlines()[6:]]
    b_loop = "loop_\n_atom_site_aniso_label\n" + "".join(f"_atom_site_aniso_B_{c[1:]}\n" for c in U_COMPONENTS[:3])
    b_loop += "_atom_site_aniso_B_23\n_atom_site_aniso_B_13\n_atom_site_aniso_B_12\n"
    b_loop += "".join(f"{r[0]} " + " ".join(f"{U_TO_B * cif_esd(v)[0]:.8f}" for v in r[1:]) + "\n" for r in rows)
    # and no U_iso_or_equiv column: the B of each site is 8π² Ueq of its tensor
    head = head.replace("_atom_site_U_iso_or_equiv\n", "")
    head = "\n".join(
        " ".join(f.split()[:5] + f.split()[6:]) if f[:1] in "CO" and "(" in f else f for f in head.splitlines()
    )
    from_b = parse_cif(head + "\n" + b_loop)
    model = RietveldModel(from_b, _dummy(), CUKA1, PROFILE, 3, anomalous_dispersion=False)
    b_start = model.b_iso(model.x0)
    for i, (site, expected) in enumerate(zip(from_b.sites, reference.sites, strict=True)):
        np.testing.assert_allclose(site.u_aniso, expected.u_aniso, rtol=0, atol=1e-10)
        assert site.b_iso == 0.0  # the reader keeps the CIF's (absent) Uiso
        ueq = float(u_equivalent(np.array(expected.u_aniso), reference.cell))
        assert math.isclose(b_start[i], U_TO_B * ueq, rel_tol=1e-6)  # the refinement starts from 8π² Ueq


def test_ueq_equals_the_value_the_cif_states_within_its_esd():
    """Aspirin (P2_1/c, β = 95.9°): SHELXL's Ueq, stated with its esd. Ueq = (1/3) Σ U_ij a*_i a*_j a_i·a_j agrees
    with it and with the trace/3 of the Cartesian tensor built from gemmi's orthogonalisation matrix; the plain
    mean of U11, U22, U33 is further off (the transform matters in an oblique cell)."""
    path = data_path(ASPIRIN)
    structure = read_cif(path)
    block = gemmi.cif.read(str(path)).sole_block()
    labels, values = block.find_values("_atom_site_label"), block.find_values("_atom_site_U_iso_or_equiv")
    stated = dict(zip(labels, values, strict=True))
    cell = gemmi.read_small_structure(str(path)).cell
    orth = np.array(cell.orth.mat.tolist())
    n = np.diag([cell.reciprocal().a, cell.reciprocal().b, cell.reciprocal().c])
    ours, plain = [], []
    for site in structure.sites:
        value, esd = cif_esd(stated[site.label])
        u = np.array(site.u_aniso)
        ueq = float(u_equivalent(u, structure.cell))
        u_tensor = np.array([[u[0], u[3], u[4]], [u[3], u[1], u[5]], [u[4], u[5], u[2]]])
        cartesian = orth @ n @ u_tensor @ n @ orth.T
        assert math.isclose(ueq, np.trace(cartesian) / 3, rel_tol=1e-6)
        assert abs(ueq - value) <= esd, (site.label, ueq, value, esd)
        ours.append(abs(ueq - value) / esd)
        plain.append(abs(u[:3].mean() - value) / esd)
    assert np.mean(ours) < 0.5 * np.mean(plain)  # 0.09 against 0.22 esd


def test_anisotropic_sites_start_from_the_cifs_u_and_isotropic_ones_from_ueq():
    structure = read_cif(data_path(ASPIRIN))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SiteSymmetryWarning)  # general positions: nothing to project away
        model = RietveldModel(structure, _dummy(), CUKA1, PROFILE, 3, adp=["O"], anomalous_dispersion=False)
    np.testing.assert_allclose(model.u_aniso(model.x0), [s.u_aniso for s in structure.sites if s.element == "O"])
    b_start = model.b_iso(model.x0)
    for i, site in enumerate(structure.sites):
        if site.element == "C":
            assert math.isclose(b_start[i], site.b_iso, rel_tol=1e-12)  # 8π² × the CIF's Ueq
    refined = model.structure_of(model.x0)
    assert [s.u_aniso is not None for s in refined.sites] == [s.element == "O" for s in structure.sites]


def test_u_is_carried_onto_the_wyckoff_representative_and_agrees_with_gemmi(tmp_path):
    """Pb given at (1/2 - x, 3/4, 1/2 + z), the 2-fold image of the representative (x, 1/4, z) of 4c: the model
    puts it on the representative, so its U13 changes sign. |F|² against gemmi's, which expands the site as given
    (8e-6 of the strongest apart; 6e-3 without the carry)."""
    truth = read_cif(data_path(PBSO4))
    lead = truth.sites[0]
    image = (0.5 - lead.frac[0], 0.75, 0.5 + lead.frac[2])
    given = (*PB_U[:4], -PB_U[4], PB_U[5])
    sites = (replace(lead, frac=image, u_aniso=given, b_iso=1.0), *(replace(s, b_iso=0.8) for s in truth.sites[1:]))
    structure = replace(truth, sites=sites)
    model = RietveldModel(structure, _dummy(10.0, 70.0), CUKA1, PROFILE, 3, adp=["Pb"], anomalous_dispersion=False)
    frac0 = model.frac(model.x0)[0]
    assert abs(frac0[1] - 0.25) < 1e-9  # moved onto the representative
    np.testing.assert_allclose(model.u_aniso(model.x0)[0], PB_U, atol=1e-12)
    text = format_cif(structure)
    text += "loop_\n_atom_site_aniso_label\n" + "".join(f"_atom_site_aniso_U_{c[1:]}\n" for c in U_COMPONENTS)
    text += "PB1 " + " ".join(f"{u:.6f}" for u in given) + "\n"
    small = gemmi.make_small_structure_from_block(gemmi.cif.read_string(text).sole_block())
    small.change_occupancies_to_crystallographic()
    calculator = gemmi.StructureFactorCalculatorX(small.cell)
    expected = [abs(calculator.calculate_sf_from_small_structure(small, list(map(int, h)))) ** 2 for h in model.hkl]
    # weak reflections differ by up to 1 % with isotropic sites too (form-factor evaluation): compared on the scale
    # of the strongest; the start without the carry (U13 of the given image) is 6e-3 of it off
    difference = np.abs(model.structure_factors_squared(model.x0) - expected)
    assert np.max(difference) < 1e-4 * np.max(expected)


def test_a_cif_tensor_that_breaks_the_site_symmetry_is_projected_with_a_warning():
    """Cristobalite (COD 9017338, P4_12_12): Si on the 2-fold axis (x, x, 0) needs U11 = U22 and U13 = -U23; the
    CIF gives U11 = 0.0089, U22 = 0.0086. The start is the nearest allowed tensor (their mean)."""
    structure = read_cif(data_path(CRISTOBALITE))
    with pytest.warns(SiteSymmetryWarning, match=r"site Si: .*breaks the site symmetry by up to 0\.00015") as caught:
        model = RietveldModel(structure, _dummy(), CUKA1, PROFILE, 3, adp="aniso", anomalous_dispersion=False)
    assert len([w for w in caught if issubclass(w.category, SiteSymmetryWarning)]) == 1  # O is general
    np.testing.assert_allclose(model.u_aniso(model.x0)[0], (0.00875, 0.00875, 0.0088, -0.001, 0.002, -0.002))
    np.testing.assert_allclose(model.u_aniso(model.x0)[1], structure.sites[1].u_aniso)


def test_nac_started_from_the_published_uani_starts_lower_than_from_isotropic_values():
    """NAC (11-BM) with GSAS's Uani as the start against the same model with the isotropic tensors of its
    U_iso_or_equiv: the first Rwp (scale and background only) is lower (14.87 % against 14.97 %), and stays lower
    through the stages before the last. Two cycles per stage."""
    data_path("measured/NAC-11BM-synchrotron/11BM_NAC_converted.xye")
    from benchmarks import refinement_measured as measured
    from tests.test_rietveld_measured import NAC_PROFILE

    structure, pattern, radiation, profile = measured._nac_start(NAC_PROFILE, 0.5, 50.0, measured.NAC_POLARISATION)
    assert all(s.u_aniso is not None for s in structure.sites)
    isotropic = replace(structure, sites=tuple(replace(s, u_aniso=None) for s in structure.sites))
    settings = RefinementSettings(background_terms=10, adp="aniso", max_iterations=2, preferred_orientation=None)
    published = refine(structure, pattern, radiation, profile, settings)
    plain = refine(isotropic, pattern, radiation, profile, settings)
    assert published.stages[0].rwp < plain.stages[0].rwp - 5e-4
    assert published.stages[-2].rwp < plain.stages[-2].rwp  # the B stage


def _cli_run(tmp_path, refinement: dict, aniso_row: str | None = None) -> list[str]:
    """A simulated PbSO4 pattern, its model as start.cif (with an aniso loop of ``aniso_row`` when given) and
    run.toml with ``refinement`` (cell, zero, profile and preferred orientation held, for speed)."""
    truth = read_cif(data_path(PBSO4))
    truth = replace(truth, sites=tuple(replace(s, b_iso=0.8) for s in truth.sites))
    two_theta = np.arange(15.0, 60.0, 0.02)
    sim = simulate(truth, two_theta, CUKA1, PROFILE, np.array([80.0, -5.0]))
    y = np.random.default_rng(5).poisson(3e-3 * sim.peaks + sim.background).astype(float)
    write_xye(tmp_path / "sim.xye", two_theta, y, np.sqrt(np.maximum(y, 1.0)))
    text = format_cif(truth)
    if aniso_row is not None:
        text += "loop_\n_atom_site_aniso_label\n" + "".join(f"_atom_site_aniso_U_{c[1:]}\n" for c in U_COMPONENTS)
        text += aniso_row + "\n"
    (tmp_path / "start.cif").write_text(text, encoding="utf-8")
    held = {"cell": False, "zero": False, "profile": False, "preferred_orientation": "off"}
    config = {
        "structure": {"name": "PbSO4", "cell": list(truth.cell.parameters), "space_group": "Pnma", "sites": ["Pb"]},
        "pattern": {"file": "sim.xye", "wavelength": 1.5406, "background": {"terms": 3},
                    "profile": profile_table(PROFILE)},
        "refinement": {"anomalous_dispersion": False, "max_iterations": 5} | held | refinement,
    }  # fmt: skip
    (tmp_path / "run.toml").write_text(toml_text(config, []), encoding="utf-8")
    return ["refine", str(tmp_path / "run.toml"), str(tmp_path / "start.cif"), "--out", str(tmp_path / "out")]


def _anisotropic_labels(tmp_path) -> list[str]:
    summary = json.loads((tmp_path / "out" / "refinement.json").read_text())
    return [record["label"] for record in summary["anisotropic"]]


def test_adp_option_overrides_the_refinement_table(tmp_path, capsys):
    args = _cli_run(tmp_path, {"adp": ["Pb"]})
    assert main(args) == 0
    assert _anisotropic_labels(tmp_path) == ["PB1"]  # the table's list of sites, without --adp
    assert main([*args, "--adp", "aniso"]) == 0
    assert _anisotropic_labels(tmp_path) == ["PB1", "S2", "O3", "O4", "O5"]
    block = gemmi.cif.read(str(tmp_path / "out" / "refined.cif")).sole_block()
    assert list(block.find_values("_atom_site_aniso_label")) == ["PB1", "S2", "O3", "O4", "O5"]
    assert main([*args, "--adp", "iso"]) == 0
    assert _anisotropic_labels(tmp_path) == []
    capsys.readouterr()


def test_adp_option_with_b_iso_off_exits_2_naming_config_and_option(tmp_path, capsys):
    args = _cli_run(tmp_path, {"b_iso": "off"})
    assert main([*args, "--adp", "aniso"]) == 2
    err = capsys.readouterr().err
    assert "run.toml" in err and "b_iso" in err and "--adp aniso" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_adp_option_bad_value_exits_2_via_argparse(tmp_path, capsys):
    args = _cli_run(tmp_path, {})
    with pytest.raises(SystemExit) as stop:
        main([*args, "--adp", "anisotropic"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--adp" in err and "invalid choice" in err and "'iso', 'aniso'" in err
    assert "--adp {iso,aniso}" in main_help(capsys)


def main_help(capsys) -> str:
    with pytest.raises(SystemExit):
        main(["refine", "--help"])
    return capsys.readouterr().out


def test_cli_warns_when_the_cifs_u_breaks_the_site_symmetry(tmp_path, capsys):
    """Pb on the mirror y = 1/4 with U12 = 0.002 (the mirror needs 0): refined from the projection, with a warning
    naming the file and the site on stderr."""
    args = _cli_run(tmp_path, {"adp": ["Pb"]}, "PB1 0.0177 0.0142 0.0245 0.0020 0.0030 0.0000")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "start.cif" in err and "site PB1" in err and "0.00200" in err


def test_a_site_u_must_be_six_finite_numbers():
    with pytest.raises(InputError, match="site X1: anisotropic U must be 6 finite numbers"):
        Site("X1", "O", (0.1, 0.2, 0.3), u_aniso=(0.01, 0.01, 0.01))
    with pytest.raises(InputError, match="6 finite numbers"):
        Site("X1", "O", (0.1, 0.2, 0.3), u_aniso=(0.01, 0.01, float("nan"), 0, 0, 0))
    assert Site("X1", "O", (0.1, 0.2, 0.3)).u_aniso is None
