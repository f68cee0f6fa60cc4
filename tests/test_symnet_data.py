"""symnet data: labels, grid resampling through d-spacing, peak lists and rendering against the engine, splits,
configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from symnet_fixtures import EXAMPLES, PROTOTYPES

import symnet
from gasolve.crystal import SpaceGroup, Structure, read_cif
from gasolve.crystal.structure import Site
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.errors import InputError
from symnet.grid import CU_KALPHA1, PatternGrid, pool_mean, resample_through_d
from symnet.labels import CRYSTAL_SYSTEMS, crystal_system_index, space_group_symbol
from symnet.peaks import merge_peaks, peak_list
from symnet.render import Instrument, render
from symnet.splits import make_splits, stratified_test

# --- labels ---------------------------------------------------------------------------------------------------


def test_crystal_system_counts_and_symbols():
    counts = np.bincount(crystal_system_index(np.arange(1, 231)), minlength=7)
    assert dict(zip(CRYSTAL_SYSTEMS, counts.tolist(), strict=True)) == {
        "triclinic": 2,
        "monoclinic": 13,
        "orthorhombic": 59,
        "trigonal": 25,
        "hexagonal": 27,
        "tetragonal": 68,
        "cubic": 36,
    }
    assert [space_group_symbol(n) for n in (14, 19, 62, 166, 194, 227)] == [
        "P2_1/c",
        "P2_12_12_1",
        "Pnma",
        "R-3m",
        "P6_3/mmc",
        "Fd-3m",
    ]
    with pytest.raises(ValueError):
        crystal_system_index(231)


# --- grid -----------------------------------------------------------------------------------------------------


def test_resampling_through_d_spacing_for_mo_radiation():
    """A Mo Kα pattern lands on the Cu grid with every peak at the Cu angle of the same d."""
    peaks = peak_list(PROTOTYPES[0], 0.5)
    cu = PatternGrid()
    mo_wavelength = 0.7093
    mo = PatternGrid(start=2.0, step=0.005, n_points=10_000, wavelength=mo_wavelength)
    narrow = Instrument(lines=((mo_wavelength, 1.0),), caglioti=(0.0, 0.0, 0.02**2))
    y_mo = render(peaks.d_spacing, peaks.intensity, mo, narrow)
    values, covered = resample_through_d(mo.two_theta, y_mo, mo_wavelength, cu)
    assert covered.all()  # 2-52° Mo reaches d 0.78-20 Å, the Cu grid needs 0.97-17.7 Å
    reachable = CU_KALPHA1 / (2.0 * peaks.d_spacing) < 1.0
    expected = 2.0 * np.degrees(np.arcsin(CU_KALPHA1 / (2.0 * peaks.d_spacing[reachable])))
    strong = expected[(peaks.intensity[reachable] > 0.05) & (expected > 6) & (expected < 104)]
    for angle in strong:
        window = np.abs(cu.two_theta - angle) < 0.3
        found = cu.two_theta[window][np.argmax(values[window])]
        assert abs(found - angle) <= 0.011
    # A pattern that stops at 60° (Cu) leaves the rest of the grid at zero, flagged as not covered.
    short = cu.two_theta <= 60.0
    values, covered = resample_through_d(cu.two_theta[short], np.ones(short.sum()), CU_KALPHA1, cu)
    assert covered.sum() == short.sum() and np.all(values[~covered] == 0)


def test_pool_mean_and_grid_checks():
    assert pool_mean(np.arange(8.0), 4).tolist() == [1.5, 5.5]
    with pytest.raises(ValueError):
        PatternGrid(pool=3)


# --- peaks and rendering --------------------------------------------------------------------------------------


def test_pattern_from_cif_matches_engine():
    """Peak list + render reproduce gasolve.diffraction.simulate (Kα1+Kα2, Caglioti, η slope, zero shift)."""
    structure = read_cif(EXAMPLES / "K4SnO4.cif")
    grid = PatternGrid()
    radiation = parse_radiation("CuKa12")
    profile = PeakProfile(caglioti=(0.01, -0.005, 0.008), eta=0.4, eta_slope=0.002, zero=0.03)
    reference = simulate(structure, grid.two_theta, radiation, profile).peaks
    peaks = peak_list(structure, grid.d_min(3.0))
    instrument = Instrument(lines=radiation.lines, caglioti=profile.caglioti, eta=0.4, eta_slope=0.002, zero=0.03)
    y = render(peaks.d_spacing, peaks.intensity, grid, instrument)
    np.testing.assert_allclose(y / y.max(), reference / reference.max(), atol=2e-5)


def test_p1_cell_gives_the_same_peaks_as_its_space_group():
    structure = PROTOTYPES[5]  # PbSO4 in Pnma
    elements, frac, *_ = structure.expand()
    sites = tuple(Site(f"a{i}", el, tuple(x), b_iso=0.5) for i, (el, x) in enumerate(zip(elements, frac, strict=True)))
    p1 = Structure(structure.cell, SpaceGroup.from_symbol("P1"), sites)
    grid = PatternGrid()
    a, b = peak_list(structure, grid.d_min(3)), peak_list(p1, grid.d_min(3))
    ya = render(a.d_spacing, a.intensity, grid, Instrument())
    yb = render(b.d_spacing, b.intensity, grid, Instrument())
    np.testing.assert_allclose(ya / ya.max(), yb / yb.max(), atol=1e-6)


def test_merge_peaks_sums_equal_d_and_drops_absences():
    merged = merge_peaks(np.array([2.0, 3.0, 2.0 * (1 + 1e-6), 1.0]), np.array([1.0, 4.0, 1.0, 1e-12]))
    np.testing.assert_allclose(merged.d_spacing, [3.0, 2.0], rtol=1e-5)
    np.testing.assert_allclose(merged.intensity, [1.0, 0.5])


# --- splits ---------------------------------------------------------------------------------------------------


def test_stratified_split_is_twenty_percent_plus_one():
    labels = np.repeat([1, 2, 3, 4], [1, 2, 10, 100])
    test = stratified_test(labels, 0.2, np.random.default_rng(0))
    assert [int(test[labels == k].sum()) for k in (1, 2, 3, 4)] == [0, 1, 3, 21]


def test_composition_split_holds_out_whole_chemical_systems():
    rng = np.random.default_rng(1)
    n = 400
    groups = rng.integers(1, 20, n)
    systems = np.array([f"A-B{k}" for k in rng.integers(0, 60, n)])
    real = rng.random(n) < 0.8
    splits = make_splits(groups, systems, real, np.random.default_rng(2), 0.2, 0.2, 0.1)
    parts = [splits.train, splits.validation, splits.test, splits.composition_test]
    assert sum(len(p) for p in parts) <= n and len(np.unique(np.concatenate(parts))) == sum(len(p) for p in parts)
    held = set(systems[splits.composition_test])
    assert held and not held & set(systems[np.concatenate([splits.train, splits.validation, splits.test])])
    assert real[splits.test].all() and real[splits.composition_test].all() and real[splits.validation].all()


# --- configs --------------------------------------------------------------------------------------------------


def test_config_refuses_unknown_keys_and_round_trips(tmp_path):
    from symnet.configs import load_config, write_config

    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 2\nlearning_rat = 0.1\n")
    with pytest.raises(InputError, match=r"learning_rat.*did you mean 'learning_rate'"):
        load_config(bad)
    bad.write_text("[trian]\n")
    with pytest.raises(InputError, match="unknown table"):
        load_config(bad)
    bad.write_text("[augment]\neta = [0.5, 1.5]\n")
    with pytest.raises(InputError, match="eta"):
        load_config(bad)
    config = load_config(Path(symnet.__path__[0]) / "presets" / "cpu.toml")
    write_config(config, tmp_path / "again.toml")
    assert load_config(tmp_path / "again.toml") == config
