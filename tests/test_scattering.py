"""Scattering factors of the Rietveld refinement: ionic f0 (Waasmaier-Kirfel) and anomalous dispersion f', f''
(Chantler), both through xraydb; |F|² with complex f against a naive loop (tests/naive.py) and against gemmi's
structure factors on a non-centrosymmetric structure; the [refinement] switch, refined.cif's atom types, and the
bad-input paths."""

from __future__ import annotations

from dataclasses import replace

import gemmi
import numpy as np
import pytest
import xraydb

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.cif_io import parse_cif, read_cif
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import Site, Structure, parse_species
from gasolve.diffraction.dispersion import anomalous_dispersion, line_dispersion
from gasolve.diffraction.form_factors import check_species, form_factor, species_form_factor
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import Radiation, parse_radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.rietveld import RefinementSettings, RietveldModel, parse_refinement, refine
from gasolve.rietveld.report import format_refined_cif
from gasolve.rietveld.settings import refinement_table
from tests import naive
from tests.conftest import shared_path

PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.02)
#: Just above the As K edge (11.87 keV): f''(As) ≈ 3.9 electrons, so Friedel mates differ clearly.
ABOVE_AS_EDGE = Radiation(((1.0, 1.0),), "1.0 A")
STOL2 = np.linspace(0.0, 1.5, 31)


def test_species_symbols_parse_as_cif_writes_them():
    assert parse_species("Ca2+") == ("Ca", 2)
    assert parse_species("F1-") == ("F", -1)
    assert parse_species("F-") == ("F", -1)
    assert parse_species("Al+3") == ("Al", 3)
    assert parse_species(" na+ ") == ("Na", 1)
    assert parse_species("O") == ("O", 0)
    assert Site("F1", "F1-", (0.1, 0.2, 0.3)).charge == -1
    assert Site("O1", "O", (0.1, 0.2, 0.3)).charge == 0
    for bad in ("Xx2+", "Ca2+3", "2+", "Ca++"):
        with pytest.raises(InputError):
            parse_species(bad)


def test_cif_type_symbols_give_the_charges():
    structure = read_cif(shared_path("measured/NAC-11BM-synchrotron/NAC.cif"))
    assert [(s.element, s.charge) for s in structure.sites] == [
        ("Ca", 2),
        ("Al", 3),
        ("Na", 1),
        ("F", -1),
        ("F", -1),
        ("F", -1),
    ]


@pytest.mark.parametrize("species", ["Ca2+", "Al3+", "Na1+", "F1-", "O2-", "Pb2+", "Cu1+"])
def test_ion_f0_equals_xraydb(species):
    element, charge = parse_species(species)
    ours = species_form_factor(element, charge, STOL2)
    np.testing.assert_allclose(ours, xraydb.f0(species, np.sqrt(STOL2)), rtol=0, atol=1e-6)
    # independent of the table's bookkeeping: the ion holds Z - charge electrons (s = 0), and at high angle
    # only the core scatters, as in the neutral atom (IT92)
    z = gemmi.Element(element).atomic_number
    assert ours[0] == pytest.approx(z - charge, abs=0.02)
    assert ours[-1] == pytest.approx(form_factor(element, STOL2[-1]), rel=0.03)


def test_neutral_atoms_keep_it92():
    for element in ("O", "Pb", "Ca"):
        np.testing.assert_array_equal(species_form_factor(element, 0, STOL2), form_factor(element, STOL2))
        np.testing.assert_allclose(form_factor(element, STOL2), naive.form_factor_it92(element, STOL2), rtol=1e-12)


def test_an_ion_without_a_form_factor_is_named():
    with pytest.raises(InputError, match=r"B3\+.*its ions of B: none"):
        species_form_factor("B", 3, STOL2)
    with pytest.raises(InputError, match=r"model\.cif: site B1"):
        check_species([Site("B1", "B3+", (0.0, 0.0, 0.0))], "model.cif")


def test_dispersion_equals_xraydb_at_the_line_energy():
    for element in ("Pb", "S", "O", "La", "Ca"):
        for line in ("Ka1", "Ka2"):
            energy = xraydb.xray_line("Cu", line).energy  # eV, xraydb's own line table
            wavelength = 12398.419843320026 / energy  # hc (eV Å), CODATA 2018
            f1, f2 = line_dispersion(element, wavelength)
            assert f1 == pytest.approx(xraydb.f1_chantler(element, energy), abs=1e-6)
            assert f2 == pytest.approx(xraydb.f2_chantler(element, energy), abs=1e-6)
    # a doublet: the mean over its lines weighted 1 : 0.5
    radiation = parse_radiation("CuKa12")
    table = anomalous_dispersion(["Pb", "O", "Pb"], radiation)
    assert table.elements == ("Pb", "O")
    lines = np.array([line_dispersion("Pb", w) for w, _ in radiation.lines])
    np.testing.assert_allclose(table.of("Pb"), (lines[0] + 0.5 * lines[1]) / 1.5, atol=1e-12)


@pytest.mark.parametrize(("element", "radiation"), [("Pb", "CuKa1"), ("La", "CuKa1"), ("Ca", "CuKa1"), ("Pb", "MoKa1")])
def test_dispersion_agrees_with_cromer_liberman(element, radiation):
    # an independent theory and code (gemmi's Cromer-Liberman): the tables differ by a few tenths of an electron
    # near edges, not by units (a wrong energy unit or element would)
    wavelength = parse_radiation(radiation).primary
    f1, f2 = line_dispersion(element, wavelength)
    cl1, cl2 = gemmi.cromer_liberman(z=gemmi.Element(element).atomic_number, energy=12398.419843320026 / wavelength)
    assert abs(f1 - cl1) < 0.5
    assert abs(f2 - cl2) < 0.15  # measured: 0.09 at most (Pb, Cu Kα1); f' 0.37 at most (Pb)


@pytest.fixture(scope="module")
def enargite():
    """Cu3AsS4 (Pmn2_1, non-centrosymmetric and polar), Cu as Cu1+ so that the ion path is exercised too."""
    structure = read_cif(shared_path("cif/aflow-prototypes/086_AB3C4_oP16_31_a_ab_2ab.cif"))
    sites = []
    for site, b in zip(structure.sites, np.linspace(0.5, 1.3, structure.n_sites), strict=True):
        sites.append(replace(site, b_iso=float(b), charge=1 if site.element == "Cu" else 0))
    return replace(structure, sites=tuple(sites))


def _dummy_pattern(lo=10.0, hi=70.0, step=0.02) -> ObservedPattern:
    two_theta = np.arange(lo, hi, step)
    return ObservedPattern(two_theta, np.ones_like(two_theta), np.ones_like(two_theta))


def _species(site) -> str:
    return f"{site.element}{abs(site.charge)}{'+' if site.charge > 0 else '-'}" if site.charge else site.element


def _naive_intensities(model: RietveldModel):
    """tests/naive.py's intensities of the model's reflections with the model's B and dispersion table."""
    structure = model.structure
    table = model.dispersion
    species = [_species(s) for s in structure.sites]
    cell_species, frac, occ, b = naive.expand_cell(
        structure.space_group.hall, species, structure.frac, model.occupancy, model.b_iso(model.x0)
    )
    f_prime = {sp: table.of(parse_species(sp)[0])[0] for sp in species}
    f_double_prime = {sp: table.of(parse_species(sp)[0])[1] for sp in species}

    def f0(name, s2):
        element, charge = parse_species(name)
        return xraydb.f0(name, np.sqrt(s2))[0] if charge else naive.form_factor_it92(element, s2)

    d_spacing = model.reflections(model.x0).d_spacing
    return naive.anomalous_powder_intensities(
        model.hkl, d_spacing, cell_species, frac, occ, b, f0, f_prime, f_double_prime
    )


def test_centric_intensities_equal_the_naive_loop():
    # corundum (R-3c, the engine's cosine sums) with its CIF's ions Al3+ and O2-, Cu Kα1+2
    structure = read_cif(shared_path("measured/corundum-SRM676a-lab-CuKa/corundum_COD1000017_copied_from_XRed.cif"))
    structure = replace(structure, sites=tuple(replace(s, b_iso=0.3) for s in structure.sites))
    assert [s.charge for s in structure.sites] == [-2, 3]
    model = RietveldModel(structure, _dummy_pattern(20.0, 130.0), parse_radiation("CuKa12"), PROFILE, 3)
    assert model.centric
    expected, plus, minus = _naive_intensities(model)
    np.testing.assert_allclose(model.intensities(model.x0), expected, rtol=1e-9, atol=1e-9 * expected.max())
    np.testing.assert_allclose(plus, minus, rtol=1e-9)  # centrosymmetric: Friedel's law holds even with f''


def test_friedel_averaged_intensities_equal_the_naive_loop(enargite):
    model = RietveldModel(enargite, _dummy_pattern(), ABOVE_AS_EDGE, PROFILE, background_terms=3)
    expected, plus, minus = _naive_intensities(model)
    ours = model.intensities(model.x0)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9 * expected.max())
    # the test can tell: Friedel mates differ by several per cent here, so |F(h)|² alone would fail it
    assert np.max(np.abs(plus - minus) / expected.max()) > 1e-3
    assert np.max(np.abs(plus - expected) / expected) > 0.01
    # and f'' matters: without dispersion the intensities are clearly different
    plain = RietveldModel(
        enargite, _dummy_pattern(), ABOVE_AS_EDGE, PROFILE, background_terms=3, anomalous_dispersion=False
    )
    assert np.max(np.abs(plain.intensities(plain.x0) - ours) / ours.max()) > 0.01


def test_intensities_agree_with_gemmi_structure_factors(enargite):
    # gemmi sums f0 (IT92) + an addend per element over the cell itself; F = G(f') + i (G(f'') - G(0)) by
    # linearity, at h and at -h. Neutral atoms here: gemmi's IT92 is the same table, its sum is its own.
    neutral = replace(enargite, sites=tuple(replace(s, charge=0) for s in enargite.sites))
    model = RietveldModel(neutral, _dummy_pattern(), ABOVE_AS_EDGE, PROFILE, background_terms=3)
    small = gemmi.read_small_structure(str(shared_path("cif/aflow-prototypes/086_AB3C4_oP16_31_a_ab_2ab.cif")))
    for site, ours in zip(small.sites, neutral.sites, strict=True):
        site.u_iso = ours.b_iso / (8 * np.pi**2)
    small.change_occupancies_to_crystallographic()
    small.setup_cell_images()

    def gemmi_f(hkl, addend_of):
        calc = gemmi.StructureFactorCalculatorX(small.cell)
        for element in {s.element for s in neutral.sites}:
            calc.addends.set(gemmi.Element(element), addend_of(element))
        return np.array([calc.calculate_sf_from_small_structure(small, [int(i) for i in h]) for h in hkl])

    def full_f(hkl):
        real = gemmi_f(hkl, lambda el: model.dispersion.of(el)[0])
        imag = gemmi_f(hkl, lambda el: model.dispersion.of(el)[1]) - gemmi_f(hkl, lambda el: 0.0)
        return real + 1j * imag

    expected = 0.5 * (np.abs(full_f(model.hkl)) ** 2 + np.abs(full_f(-model.hkl)) ** 2)
    ours = model.intensities(model.x0)
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-6 * expected.max())


@pytest.mark.parametrize("group", ["coordinates", "b_iso"])
def test_complex_f_derivatives_match_finite_differences(enargite, group):
    model = RietveldModel(enargite, _dummy_pattern(15.0, 45.0), ABOVE_AS_EDGE, PROFILE, background_terms=3)
    x = model.x0 + 0.002 * np.sin(np.arange(model.n_parameters))
    free = model.layout.indices(group)
    derivative = model.peak_derivatives(x, free)
    for column, j in enumerate(free):
        reference = naive.peak_derivative_4point(model, x, j)
        error = np.linalg.norm(derivative[:, column] - reference) / np.linalg.norm(reference)
        assert error < 1e-5, (model.layout.names[j], error)


def test_refinement_switch_is_read_checked_and_written_back():
    assert parse_refinement(None, "c.toml").anomalous_dispersion is True
    settings = parse_refinement({"anomalous_dispersion": False}, "c.toml")
    assert settings.anomalous_dispersion is False
    assert parse_refinement(refinement_table(settings), "c.toml") == settings
    with pytest.raises(InputError, match=r"c.toml: \[refinement\] anomalous_dispersion"):
        parse_refinement({"anomalous_dispersion": "yes"}, "c.toml")


def _fluorite() -> Structure:
    return Structure(
        UnitCell(5.4631, 5.4631, 5.4631, 90, 90, 90),
        SpaceGroup.from_symbol("Fm-3m"),
        (Site("Ca1", "Ca2+", (0, 0, 0), b_iso=0.5), Site("F1", "F1-", (0.25, 0.25, 0.25), b_iso=0.7)),
        name="CaF2",
    )


def test_refined_cif_states_the_atom_types_and_dispersion():
    structure = _fluorite()
    radiation = parse_radiation("CuKa12")
    dummy = _dummy_pattern(20.0, 100.0)
    truth = RietveldModel(structure, dummy, radiation, PROFILE, background_terms=3)
    y = 0.01 * truth.peaks(truth.x0) + 50.0
    pattern = ObservedPattern(dummy.two_theta, y, np.sqrt(y))
    settings = RefinementSettings(background_terms=3, groups=("b_iso",), max_iterations=5)
    result = refine(structure, pattern, radiation, PROFILE, settings)
    assert result.metrics.rwp < 1e-6  # the model is the pattern's
    block = gemmi.cif.read_string(format_refined_cif(result)).sole_block()
    assert list(block.find_loop("_atom_site_type_symbol")) == ["Ca2+", "F1-"]
    types = block.find("_atom_type_", ["symbol", "scat_dispersion_real", "scat_dispersion_imag"])
    values = {row[0]: (float(row[1]), float(row[2])) for row in types}
    for element, symbol in (("Ca", "Ca2+"), ("F", "F1-")):
        np.testing.assert_allclose(values[symbol], anomalous_dispersion([element], radiation).of(element), atol=1e-4)
    assert all("Chantler" in text for text in block.find_loop("_atom_type_scat_dispersion_source"))
    assert all("Waasmaier" in text for text in block.find_loop("_atom_type_scat_source"))
    # read back by gasolve, the charges survive
    assert [s.charge for s in parse_cif(format_refined_cif(result)).sites] == [2, -1]
    off = refine(structure, pattern, radiation, PROFILE, replace(settings, anomalous_dispersion=False))
    block = gemmi.cif.read_string(format_refined_cif(off)).sole_block()
    assert len(block.find_loop("_atom_type_scat_dispersion_real")) == 0
    assert len(block.find_loop("_atom_type_scat_source")) == 2
    assert off.metrics.rwp > 1e-3  # the pattern was made with dispersion: without it the fit is worse
