"""Run config (TOML): every field of a valid file, the resolved round trip, overrides, and every bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from gasolve.config import (
    OutputSpec,
    RunConfig,
    default_background_terms,
    default_output_dir,
    load_observed,
    load_run_config,
    parse_run_config,
    resolved_toml,
    write_resolved,
)
from gasolve.crystal import SpaceGroup, UnitCell
from gasolve.diffraction.wavelength import parse_radiation
from gasolve.errors import InputError
from gasolve.ga.settings import FLAT_FIELDS, GALayout, GARates, GASettings, RunBudget
from gasolve.io.toml_file import parse_toml, read_toml, toml_text, write_toml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAME = "K4SnO4.toml"

VALID = """\
[structure]
name = "K4SnO4"
cell = [6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325]   # a, b, c (Å), alpha, beta, gamma (deg)
space_group = "P-1"
sites = ["Sn", "K", "K", "K", "K", "O", "O", "O", "O"]
b_iso = 1.0

[pattern]
file = "K4SnO4.xye"
wavelength = "CuKa1"
range = [5.0, 80.0]
kalpha2_ratio = 0.5

[pattern.profile]
fwhm = 0.1
eta = 0.5
eta_slope = 0.0
zero = 0.0
cutoff = 15.0
monochromator = 0.0

[pattern.background]
terms = 6

[ga]
seed = 1
max_evaluations = 2000000

[reference]
cif = "K4SnO4.cif"
tolerance = 0.3

[output]
dir = "runs/K4SnO4"
"""

STRUCTURE_BLOCK = VALID[: VALID.index("[pattern]")]

#: The smallest valid file: every optional key and table left out.
MINIMAL = """\
[structure]
name = "K4SnO4"
cell = [6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325]
space_group = 2
sites = ["sn", "K", "K", "K", "K", "O2-", "O", "O", "O"]

[pattern]
file = "K4SnO4.xye"
wavelength = 1.5405981

[pattern.profile]
caglioti = [0.01, -0.005, 0.008]
eta = 0.4

[pattern.background]
terms = 0

[output]
dir = "out"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder holding the K4SnO4 example pattern and CIF."""
    for suffix in (".xye", ".cif"):
        shutil.copy(EXAMPLES / f"K4SnO4{suffix}", tmp_path)
    return tmp_path


def write(folder: Path, text: str, name: str = NAME) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def edit(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new``; ``old`` must occur exactly once, so no edit silently misses."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def test_valid_config_every_field(folder):
    config = load_run_config(write(folder, VALID))
    assert isinstance(config, RunConfig)
    assert config.source == (folder / NAME).resolve()

    structure = config.structure
    assert structure.name == "K4SnO4"
    assert structure.cell == UnitCell(6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325)
    assert structure.space_group.number == 2 and structure.space_group.hall == SpaceGroup.from_symbol("P-1").hall
    assert structure.sites == ("Sn", "K", "K", "K", "K", "O", "O", "O", "O")
    assert structure.n_sites == 9
    assert structure.b_iso == (1.0,) * 9

    pattern = config.pattern
    assert pattern.file == (folder / "K4SnO4.xye").resolve() and pattern.file.is_absolute()
    assert pattern.wavelength == "CuKa1"
    assert pattern.radiation == parse_radiation("CuKa1")
    assert pattern.range == (5.0, 80.0)
    assert pattern.kalpha2_ratio == 0.5
    assert pattern.profile.caglioti == pytest.approx((0.0, 0.0, 0.01))
    assert pattern.profile.eta == 0.5
    assert pattern.profile.eta_slope == 0.0
    assert pattern.profile.zero == 0.0
    assert pattern.profile.cutoff == 15.0
    assert pattern.profile.monochromator_two_theta == 0.0
    assert pattern.background_terms == 6

    assert config.ga == GASettings.from_flat(seed=1, max_evaluations=2_000_000)
    assert config.ga.budget == RunBudget(seed=1, max_evaluations=2_000_000)
    assert (config.ga.layout, config.ga.rates) == (GALayout(), GARates())
    assert config.reference is not None
    assert config.reference.cif == (folder / "K4SnO4.cif").resolve()
    assert config.reference.tolerance == 0.3
    assert config.output.dir == (folder / "runs" / "K4SnO4").resolve()

    assert config.raw["pattern"]["file"] == "K4SnO4.xye"
    assert config.raw["structure"]["space_group"] == "P-1"


def test_defaults_and_alternatives(folder):
    config = load_run_config(write(folder, MINIMAL))
    structure, pattern = config.structure, config.pattern
    assert structure.space_group.number == 2
    assert structure.sites == ("Sn", "K", "K", "K", "K", "O", "O", "O", "O")  # canonical, charge dropped
    assert structure.b_iso == (1.0,) * 9
    assert pattern.wavelength == 1.5405981
    assert pattern.radiation.lines == ((1.5405981, 1.0),)
    assert pattern.range is None
    assert pattern.kalpha2_ratio == 0.5
    assert pattern.profile.caglioti == (0.01, -0.005, 0.008)
    assert (pattern.profile.eta, pattern.profile.eta_slope, pattern.profile.zero) == (0.4, 0.0, 0.0)
    assert (pattern.profile.cutoff, pattern.profile.monochromator_two_theta) == (15.0, 0.0)
    assert pattern.background_terms == 0
    assert config.ga == GASettings()
    assert config.reference is None
    assert config.output.dir == (folder / "out").resolve()


def test_b_iso_list_and_doublet(folder):
    text = edit(VALID, "b_iso = 1.0", "b_iso = [0.5, 1, 1, 1, 1, 2, 2, 2, 2.5]")
    text = edit(text, 'wavelength = "CuKa1"', 'wavelength = "CuKa12"')
    text = edit(text, "kalpha2_ratio = 0.5", "kalpha2_ratio = 0.48")
    config = load_run_config(write(folder, text))
    assert config.structure.b_iso == (0.5, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 2.5)
    assert all(isinstance(b, float) for b in config.structure.b_iso)
    assert len(config.pattern.radiation.lines) == 2
    assert config.pattern.radiation.lines[1][1] == 0.48


def test_absolute_paths_are_kept(folder, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    text = edit(VALID, 'file = "K4SnO4.xye"', f'file = "{folder / "K4SnO4.xye"}"')
    config = load_run_config(write(elsewhere, text.replace('"K4SnO4.cif"', f'"{folder / "K4SnO4.cif"}"')))
    assert config.pattern.file == (folder / "K4SnO4.xye").resolve()
    assert config.reference.cif == (folder / "K4SnO4.cif").resolve()
    assert config.output.dir == (elsewhere / "runs" / "K4SnO4").resolve()


def test_seed_zero_is_kept(folder):
    config = load_run_config(write(folder, edit(VALID, "seed = 1", "seed = 0")))
    assert config.ga.budget.seed == 0
    again = load_run_config(write(folder, resolved_toml(config), "resolved.toml"))
    assert again.ga.budget.seed == 0
    assert load_run_config(write(folder, VALID)).with_overrides(seed=0).ga.budget.seed == 0


def test_with_overrides(folder, monkeypatch):
    config = load_run_config(write(folder, VALID))
    assert config.with_overrides() == config
    monkeypatch.chdir(folder)
    changed = config.with_overrides(out="elsewhere/run1", seed=7, max_evaluations=5000)
    assert changed.output == OutputSpec((folder / "elsewhere" / "run1").resolve())
    assert (changed.ga.budget.seed, changed.ga.budget.max_evaluations) == (7, 5000)
    assert (changed.ga.layout, changed.ga.rates) == (config.ga.layout, config.ga.rates)
    assert (config.ga.budget.seed, config.ga.budget.max_evaluations) == (1, 2_000_000)  # the original is unchanged
    assert changed.structure == config.structure and changed.pattern == config.pattern
    with pytest.raises(InputError, match=r"\[ga\] seed"):
        config.with_overrides(seed=-1)


ROUND_TRIP_VARIANTS = {
    "full": [],
    "caglioti, no range, no reference": [
        ("fwhm = 0.1", "caglioti = [0.0123456789, -0.00321, 0.0045]"),
        ("range = [5.0, 80.0]\n", ""),
        ('[reference]\ncif = "K4SnO4.cif"\ntolerance = 0.3\n', ""),
    ],
    "numeric wavelength, b_iso list, ga options": [
        ('wavelength = "CuKa1"', "wavelength = 1.2345678901234"),
        ("b_iso = 1.0", "b_iso = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]"),
        ("seed = 1", 'seed = 0\ncrossovers = "sbx"\nmutation_sigma = 0.0333333333333\nislands = 3'),
    ],
    "awkward fwhm, doublet, group by number": [
        ("fwhm = 0.1", "fwhm = 0.0731"),
        ('wavelength = "CuKa1"', 'wavelength = "cuka12"'),
        ('space_group = "P-1"', "space_group = 2"),
        ("eta_slope = 0.0", "eta_slope = 0.001"),
        ("zero = 0.0", "zero = -0.0123"),
        ("monochromator = 0.0", "monochromator = 26.6"),
    ],
    "asymmetry, displacement, Wyckoff positions": [
        ("zero = 0.0", "zero = 0.01\nasymmetry = [-0.2, 0.01, 0.1, -0.03]\ndisplacement = -0.05\naxial = 0.03"),
        ("b_iso = 1.0", "wyckoff = " + str(["2i"] * 8 + ["1a"])),
    ],
    "synchrotron beam polarisation": [("kalpha2_ratio = 0.5", "kalpha2_ratio = 0.5\npolarisation = 0.99")],
    "occupancy correction": [
        ("b_iso = 1.0", "occupancy_correction = true\noverlap_radius = 0.65432109876\noverlap_identical = true"),
    ],
}


@pytest.mark.parametrize("edits", ROUND_TRIP_VARIANTS.values(), ids=ROUND_TRIP_VARIANTS.keys())
def test_resolved_round_trip(folder, tmp_path_factory, edits):
    text = VALID
    for old, new in edits:
        text = edit(text, old, new)
    config = load_run_config(write(folder, text))
    resolved = resolved_toml(config)
    # Written somewhere else: the resolved file must not depend on its own folder.
    elsewhere = tmp_path_factory.mktemp("resolved")
    again = load_run_config(write(elsewhere, resolved, "config.toml"))
    assert again == config
    assert again.structure.space_group.hall == config.structure.space_group.hall
    assert again.pattern.profile == config.pattern.profile
    assert again.pattern.radiation == config.pattern.radiation
    assert again.source == (elsewhere / "config.toml").resolve()
    assert set(again.raw["ga"]) == set(FLAT_FIELDS)  # every GA default written out
    assert resolved_toml(again).splitlines()[1:] == resolved.splitlines()[1:]  # a fixed point after the comment


def test_round_trip_notices_a_change(folder):
    config = load_run_config(write(folder, VALID))
    assert load_run_config(write(folder, edit(VALID, "seed = 1", "seed = 2"), "other.toml")) != config
    assert load_run_config(write(folder, edit(VALID, '"P-1"', '"P1"'), "other.toml")) != config


@pytest.mark.parametrize(
    ("symbol", "cell"),
    [
        ("P21/c", "[7, 8, 9, 90, 100, 90]"),
        ("Fd-3m", "[7, 7, 7, 90, 90, 90]"),
        ("Fd-3m:1", "[7, 7, 7, 90, 90, 90]"),
        ("R-3", "[7, 7, 9, 90, 90, 120]"),
        ("R-3:R", "[7, 7, 7, 80, 80, 80]"),
        ("Pnma", "[7, 8, 9, 90, 90, 90]"),
        ("P 1 1 21/b", "[7, 8, 9, 90, 90, 100]"),
        ("I41/amd", "[7, 7, 9, 90, 90, 90]"),
    ],
)
def test_space_group_settings_round_trip(folder, symbol, cell):
    text = edit(VALID, 'space_group = "P-1"', f'space_group = "{symbol}"')
    text = edit(text, "cell = [6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325]", f"cell = {cell}")
    config = load_run_config(write(folder, text))
    again = load_run_config(write(folder, resolved_toml(config), "resolved.toml"))
    assert again.structure.space_group.hall == SpaceGroup.from_symbol(symbol).hall
    assert again == config


def test_write_resolved_is_atomic_and_complete(folder):
    config = load_run_config(write(folder, VALID))
    out = folder / "run"
    out.mkdir()
    write_resolved(config, out / "config.toml")
    write_resolved(config, out / "config.toml")  # replacing an existing file
    assert [p.name for p in out.iterdir()] == ["config.toml"]  # no temporary left behind
    assert (out / "config.toml").read_text(encoding="utf-8") == resolved_toml(config)
    assert load_run_config(out / "config.toml") == config


def test_resolved_text_escapes_strings(folder):
    text = edit(VALID, 'name = "K4SnO4"', 'name = "K4SnO4 \\"quoted\\" \\\\ tab\\t"')
    config = load_run_config(write(folder, text))
    assert config.structure.name == 'K4SnO4 "quoted" \\ tab\t'
    assert load_run_config(write(folder, resolved_toml(config), "r.toml")).structure.name == config.structure.name


def test_load_observed_restricts_to_the_range(folder):
    config = load_run_config(write(folder, edit(VALID, "range = [5.0, 80.0]", "range = [10.0, 60.5]")))
    pattern = load_observed(config)
    assert pattern.two_theta[0] >= 10.0 and pattern.two_theta[-1] <= 60.5
    assert pattern.two_theta[0] < 10.0 + 0.015 and pattern.two_theta[-1] > 60.5 - 0.015  # step 0.015
    whole = load_observed(load_run_config(write(folder, MINIMAL, "minimal.toml")))
    assert whole.n_points == 5001 and np.isclose(whole.two_theta[0], 5.0)


def test_load_observed_range_outside_the_data(folder):
    config = load_run_config(write(folder, edit(VALID, "range = [5.0, 80.0]", "range = [2.0, 80.0]")))
    with pytest.raises(InputError) as caught:
        load_observed(config)
    message = str(caught.value)
    assert NAME in message and "[pattern] range" in message and "outside the data" in message


def test_load_observed_checks_the_profile_over_the_data(folder):
    # Without a range, eta + eta_slope * 2θ is checked over the data (5-80°) when the pattern is read.
    text = edit(edit(VALID, "range = [5.0, 80.0]\n", ""), "eta_slope = 0.0", "eta_slope = 0.01")
    config = load_run_config(write(folder, text))
    with pytest.raises(InputError) as caught:
        load_observed(config)
    assert NAME in str(caught.value) and "[pattern.profile] eta_slope" in str(caught.value)


# Each case: edits to VALID (old, new), then fragments the message must hold (besides the file name).
BAD = {
    "toml syntax": ([("terms = 6", "terms = ")], ["invalid TOML", "line 23"]),
    "unknown table": ([("[output]", "[outptu]\nx = 1\n[output]")], ["[outptu]", "unknown table", "output"]),
    "unknown structure key": ([("b_iso = 1.0", "bIso = 1.0")], ["[structure] bIso", "unknown key", "b_iso"]),
    "unknown pattern key": ([("kalpha2_ratio", "ratio")], ["[pattern] ratio", "allowed", "kalpha2_ratio"]),
    "polarisation outside (0, 1]": (
        [("kalpha2_ratio = 0.5", "kalpha2_ratio = 0.5\npolarisation = 1.5")],
        ["[pattern] polarisation", "(0, 1]", "1.5"],
    ),
    "polarisation and monochromator": (
        [
            ("kalpha2_ratio = 0.5", "kalpha2_ratio = 0.5\npolarisation = 0.9"),
            ("monochromator = 0.0", "monochromator = 26.6"),
        ],
        ["[pattern] polarisation", "not both"],
    ),
    "unknown profile key": ([("eta_slope", "etaslope")], ["[pattern.profile] etaslope", "did you mean 'eta_slope'"]),
    "unknown background key": ([("terms = 6", "term = 6")], ["[pattern.background] term", "did you mean 'terms'"]),
    "background key of earlier versions": (
        [("terms = 6", "chebyshev = 6")],
        ["[pattern.background] chebyshev", "was renamed to 'terms'"],
    ),
    "ga elite removed": ([("seed = 1", "elite = 2")], ["[ga] elite", "was removed", "(μ+λ)"]),
    "unknown ga key": ([("seed = 1", "popsize = 50")], ["[ga] popsize", "unknown key", "island_size"]),
    "unknown reference key": ([("tolerance = 0.3", "tol = 0.3")], ["[reference] tol", "tolerance"]),
    "unknown output key": ([('dir = "runs/K4SnO4"', 'folder = "x"')], ["[output] folder", "dir"]),
    "missing structure table": ([(STRUCTURE_BLOCK, "")], ["[structure]", "missing required table [structure]"]),
    "missing cell": ([("cell = [6.6007", "# cell = [6.6007")], ["[structure] cell", "missing required key"]),
    "missing sites": ([("sites = [", "# sites = [")], ["[structure] sites", "missing"]),
    "missing name": ([('name = "K4SnO4"', "")], ["[structure] name", "missing"]),
    "missing pattern file key": ([('file = "K4SnO4.xye"', "")], ["[pattern] file", "missing"]),
    "missing eta": ([("eta = 0.5", "")], ["[pattern.profile] eta", "missing"]),
    "wyckoff count": ([("b_iso = 1.0", 'wyckoff = ["2i"]')], ["[structure] wyckoff", "one Wyckoff position per site"]),
    "wyckoff letter": ([("b_iso = 1.0", "wyckoff = " + str(["2i"] * 8 + ["2z"]))], ["[structure] wyckoff", "'2z'"]),
    "wyckoff not text": ([("b_iso = 1.0", "wyckoff = 4")], ["[structure] wyckoff", "list of Wyckoff positions"]),
    "occupancy correction not bool": (
        [("b_iso = 1.0", 'occupancy_correction = "yes"')],
        ["[structure] occupancy_correction", "expected true or false, got the text 'yes'"],
    ),
    "overlap radius without correction": (
        [("b_iso = 1.0", "overlap_radius = 0.5")],
        ["[structure] overlap_radius", "no effect without occupancy_correction = true"],
    ),
    "overlap identical without correction": (
        [("b_iso = 1.0", "occupancy_correction = false\noverlap_identical = true")],
        ["[structure] overlap_identical", "no effect without occupancy_correction = true"],
    ),
    "overlap radius too large": (
        [("b_iso = 1.0", "occupancy_correction = true\noverlap_radius = 1.2")],
        ["[structure] overlap_radius", "below 1.0", "got 1.2"],
    ),
    "overlap radius zero": (
        [("b_iso = 1.0", "occupancy_correction = true\noverlap_radius = 0")],
        ["[structure] overlap_radius", "above 0"],
    ),
    "overlap radius text": (
        [("b_iso = 1.0", 'occupancy_correction = true\noverlap_radius = "0.8"')],
        ["[structure] overlap_radius", "expected a finite number"],
    ),
    "overlap identical not bool": (
        [("b_iso = 1.0", "occupancy_correction = true\noverlap_identical = 1")],
        ["[structure] overlap_identical", "expected true or false, got 1"],
    ),
    "asymmetry three numbers": ([("zero = 0.0", "asymmetry = [0.1, 0.0, 0.0]")], ["[pattern.profile] asymmetry"]),
    "axial negative": ([("zero = 0.0", "axial = -0.01")], ["[pattern.profile]", "SH/L must be in [0, 0.5)"]),
    "background not a table": (
        [("[pattern.background]\nterms = 6\n", ""), ("kalpha2_ratio = 0.5", "kalpha2_ratio = 0.5\nbackground = 6")],
        ["[pattern] background: expected a table [pattern.background], got 6"],
    ),
    "missing output dir": ([('dir = "runs/K4SnO4"', "")], ["[output] dir", "missing"]),
    "missing reference cif": ([('cif = "K4SnO4.cif"', "")], ["[reference] cif", "missing"]),
    "structure not a table": (
        [(STRUCTURE_BLOCK, 'structure = "K4SnO4"\n')],
        ["[structure]: expected a table [structure], got the text 'K4SnO4'"],
    ),
    "cell with 5 numbers": (
        [("9.9143, 80.247", "80.247")],
        ["[structure] cell: expected 6 numbers [a, b, c, alpha, beta, gamma], got 5"],
    ),
    "cell with text": ([("6.6007,", '"6.6007",')], ["[structure] cell", "item 1 is the text '6.6007'"]),
    "cell with bool": ([("6.6089,", "true,")], ["[structure] cell", "item 2 is the boolean true"]),
    "cell not a list": (
        [("cell = [6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325]", "cell = 6.6")],
        ["[structure] cell", "expected 6 numbers"],
    ),
    "cell nan": ([("6.6007,", "nan,")], ["[structure] cell", "item 1 is nan"]),
    "negative cell length": ([("6.6089,", "-6.6089,")], ["[structure] cell", "length b must be positive"]),
    "angles cannot close": (
        [("80.247, 71.675, 67.325", "10.0, 20.0, 150.0")],
        ["[structure] cell", "cannot close a cell"],
    ),
    "unknown space group": ([('"P-1"', '"P 7"')], ["[structure] space_group", "unknown space group 'P 7'"]),
    "space group number too large": ([('"P-1"', "231")], ["[structure] space_group", "1-230"]),
    "space group bool": ([('"P-1"', "true")], ["[structure] space_group", "the boolean true"]),
    "space group float": ([('"P-1"', "2.0")], ["[structure] space_group", "expected a Hermann-Mauguin symbol"]),
    "unknown element": ([('"Sn", "K"', '"Sn", "Kx"')], ["[structure] sites", "unknown chemical element 'Kx'"]),
    "element as number": ([('"Sn", "K"', '"Sn", 19')], ["[structure] sites", "item 2 is 19"]),
    "sites empty": (
        [('sites = ["Sn", "K", "K", "K", "K", "O", "O", "O", "O"]', "sites = []")],
        ["[structure] sites", "non-empty list"],
    ),
    "name not text": ([('name = "K4SnO4"', "name = 4")], ["[structure] name", "expected a non-empty text"]),
    "b_iso list too short": ([("b_iso = 1.0", "b_iso = [1.0, 1.0]")], ["[structure] b_iso", "9 numbers", "got 2"]),
    "b_iso negative": ([("b_iso = 1.0", "b_iso = -0.5")], ["[structure] b_iso", "expected B >= 0"]),
    "b_iso list negative": (
        [("b_iso = 1.0", "b_iso = [1, 1, 1, 1, 1, 1, 1, 1, -1]")],
        ["[structure] b_iso", "expected B >= 0"],
    ),
    "b_iso text": ([("b_iso = 1.0", 'b_iso = "1.0"')], ["[structure] b_iso", "expected a finite number"]),
    "pattern file missing": ([('"K4SnO4.xye"', '"missing.xye"')], ["[pattern] file", "no such file", "missing.xye"]),
    "pattern file is a folder": ([('"K4SnO4.xye"', '"."')], ["[pattern] file", "not a file"]),
    "pattern file not text": ([('"K4SnO4.xye"', "3")], ["[pattern] file", "expected a non-empty text"]),
    "unknown wavelength": ([('"CuKa1"', '"MoKb9"')], ["[pattern] wavelength", "unknown wavelength"]),
    "wavelength bool": ([('"CuKa1"', "false")], ["[pattern] wavelength", "the boolean false"]),
    "wavelength out of range": ([('"CuKa1"', "50.0")], ["[pattern] wavelength", "between 0.1 and 5"]),
    "kalpha2 ratio negative": ([("kalpha2_ratio = 0.5", "kalpha2_ratio = -0.5")], ["[pattern] kalpha2_ratio"]),
    "range reversed": ([("[5.0, 80.0]", "[80.0, 5.0]")], ["[pattern] range", "0 < lo < hi < 180"]),
    "range equal ends": ([("[5.0, 80.0]", "[5.0, 5.0]")], ["[pattern] range", "lo < hi"]),
    "range above 180": ([("[5.0, 80.0]", "[5.0, 190.0]")], ["[pattern] range", "< 180"]),
    "range at zero": ([("[5.0, 80.0]", "[0.0, 80.0]")], ["[pattern] range", "0 < lo"]),
    "range three numbers": ([("[5.0, 80.0]", "[5.0, 80.0, 90.0]")], ["[pattern] range", "expected 2 numbers"]),
    "range text": ([("[5.0, 80.0]", '["5", "80"]')], ["[pattern] range", "the text '5'"]),
    "fwhm and caglioti": (
        [("fwhm = 0.1", "fwhm = 0.1\ncaglioti = [0, 0, 0.01]")],
        ["[pattern.profile] fwhm/caglioti", "exactly one", "both"],
    ),
    "neither fwhm nor caglioti": ([("fwhm = 0.1", "")], ["[pattern.profile] fwhm/caglioti", "neither"]),
    "fwhm negative": ([("fwhm = 0.1", "fwhm = -0.1")], ["[pattern.profile] fwhm", "positive"]),
    "fwhm text": ([("fwhm = 0.1", 'fwhm = "0.1"')], ["[pattern.profile] fwhm", "the text '0.1'"]),
    "eta bool": ([("eta = 0.5", "eta = true")], ["[pattern.profile] eta", "the boolean true"]),
    "eta above one": ([("eta = 0.5", "eta = 1.5")], ["[pattern.profile] eta", "[0, 1]"]),
    "eta slope leaves [0, 1]": ([("eta_slope = 0.0", "eta_slope = 0.01")], ["[pattern.profile] eta_slope"]),
    "caglioti two numbers": ([("fwhm = 0.1", "caglioti = [0.0, 0.01]")], ["[pattern.profile] caglioti", "3 numbers"]),
    "caglioti negative width": (
        [("fwhm = 0.1", "caglioti = [0.0, -0.1, 0.001]")],
        ["[pattern.profile] caglioti", "non-positive FWHM"],
    ),
    "cutoff negative": ([("cutoff = 15.0", "cutoff = -1.0")], ["[pattern.profile]", "cutoff must be positive"]),
    "zero infinite": ([("zero = 0.0", "zero = inf")], ["[pattern.profile] zero", "finite number"]),
    "terms negative": ([("terms = 6", "terms = -1")], ["[pattern.background] terms", ">= 0"]),
    "terms float": ([("terms = 6", "terms = 2.5")], ["[pattern.background] terms", "an integer"]),
    "ga seed negative": ([("seed = 1", "seed = -1")], ["[ga] seed", "an integer >= 0"]),
    "ga seed text": ([("seed = 1", 'seed = "1"')], ["[ga] seed", "expected an integer, got the text '1'"]),
    "ga islands float": ([("seed = 1", "islands = 4.5")], ["[ga] islands", "expected an integer"]),
    "ga island size too small": ([("seed = 1", "island_size = 2")], ["[ga] island_size", "at least 4"]),
    "ga rate bool": ([("seed = 1", "mutation_rate = true")], ["[ga] mutation_rate", "the boolean true"]),
    "ga unknown operator": ([("seed = 1", 'crossovers = ["sbx", "pmx"]')], ["[ga] crossovers", "sbx"]),
    "ga operators not text": ([("seed = 1", "crossovers = [1, 2]")], ["[ga] crossovers", "list of names"]),
    "ga not a table": (
        [("[ga]\nseed = 1\nmax_evaluations = 2000000\n", ""), ("[structure]\n", "ga = 1\n[structure]\n")],
        ["[ga]: expected a table [ga], got 1"],
    ),
    "ga infinite": ([("seed = 1", "checkpoint_seconds = inf")], ["[ga] checkpoint_seconds", "finite number"]),
    "reference cif missing": ([('"K4SnO4.cif"', '"nowhere.cif"')], ["[reference] cif", "no such file", "nowhere.cif"]),
    "reference tolerance zero": ([("tolerance = 0.3", "tolerance = 0")], ["[reference] tolerance", "positive"]),
    "output dir empty": ([('dir = "runs/K4SnO4"', 'dir = ""')], ["[output] dir", "non-empty text"]),
}


@pytest.mark.parametrize("edits, fragments", BAD.values(), ids=BAD.keys())
def test_bad_input_names_file_and_key(folder, edits, fragments):
    text = VALID
    for old, new in edits:
        text = edit(text, old, new)
    with pytest.raises(InputError) as caught:
        load_run_config(write(folder, text))
    message = str(caught.value)
    assert message.startswith(str(folder / NAME) + ": "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_missing_config_file(tmp_path):
    with pytest.raises(InputError) as caught:
        load_run_config(tmp_path / "absent.toml")
    assert "absent.toml" in str(caught.value) and "cannot read config file" in str(caught.value)


def test_config_not_utf8(folder):
    path = folder / NAME
    path.write_bytes(VALID.encode("utf-8").replace(b"K4SnO4", b"K4SnO4\xff", 1))
    with pytest.raises(InputError) as caught:
        load_run_config(path)
    assert NAME in str(caught.value) and "UTF-8" in str(caught.value)


def test_ga_error_is_prefixed_with_the_file(folder):
    with pytest.raises(InputError) as caught:
        load_run_config(write(folder, edit(VALID, "seed = 1", "tournament_size = 50")))
    assert str(caught.value).startswith(f"{folder / NAME}: [ga] tournament_size")
    assert caught.value.source == str(folder / NAME)


@pytest.mark.parametrize("field", list(FLAT_FIELDS.values()), ids=lambda f: f.name)
def test_every_ga_field_rejects_a_wrong_type(folder, field):
    wrong = "[1]" if field.type.startswith("tuple") else '"x"'
    text = edit(VALID, "seed = 1\nmax_evaluations = 2000000", f"{field.name} = {wrong}")
    with pytest.raises(InputError) as caught:
        load_run_config(write(folder, text))
    assert str(caught.value).startswith(f"{folder / NAME}: [ga] {field.name}"), str(caught.value)


def test_profile_may_be_left_out_for_the_profile_fit(folder):
    text = edit(VALID, VALID[VALID.index("[pattern.profile]") : VALID.index("[pattern.background]")], "")
    config = load_run_config(write(folder, text))
    assert config.pattern.profile is None
    assert load_observed(config).n_points > 0
    again = load_run_config(write(folder, resolved_toml(config), "config.toml"))
    assert again == config and again.pattern.profile is None


def test_wyckoff_positions_give_the_site_map(folder):
    config = load_run_config(write(folder, edit(VALID, "b_iso = 1.0", "wyckoff = " + str(["2i"] * 8 + ["1h"]))))
    assert config.structure.wyckoff == ("2i",) * 8 + ("1h",)
    site_map = config.structure.site_map()
    np.testing.assert_array_equal(site_map.multiplicity, [2] * 8 + [1])
    assert site_map.n_free == 24
    general = load_run_config(write(folder, VALID, "general.toml")).structure.site_map()
    assert general.n_free == 27 and list(general.multiplicity) == [2] * 9


def test_ions_in_sites_keep_their_charge_for_the_refinement(folder):
    text = edit(VALID, 'sites = ["Sn", "K", "K"', 'sites = ["Sn4+", "K1+", "K+"')
    config = load_run_config(write(folder, text))
    assert config.structure.sites[:3] == ("Sn", "K", "K")  # the search scores neutral atoms
    assert config.structure.charges[:4] == (4, 1, 1, 0)
    assert config.structure.species()[:3] == ["Sn4+", "K1+", "K1+"]
    again = load_run_config(write(folder, resolved_toml(config), "resolved.toml"))
    assert again.structure.charges == config.structure.charges
    assert load_run_config(write(folder, VALID, "neutral.toml")).structure.charges is None
    with pytest.raises(InputError, match=r"\[structure\] sites: no X-ray form factor for the ion S6\+"):
        load_run_config(write(folder, edit(VALID, 'sites = ["Sn"', 'sites = ["S6+"'), "sulphur.toml"))
    with pytest.raises(InputError, match=r"\[structure\] sites: unknown species 'Sn\+\+4'"):
        load_run_config(write(folder, edit(VALID, 'sites = ["Sn"', 'sites = ["Sn++4"'), "bad.toml"))


def test_a_position_without_free_coordinates_holds_one_site(folder):
    twice = edit(VALID, "b_iso = 1.0", "wyckoff = " + str(["2i"] * 7 + ["1h", "1h"]))
    with pytest.raises(InputError) as caught:
        load_run_config(write(folder, twice))
    message = str(caught.value)
    assert message.startswith(f"{folder / NAME}: [structure] wyckoff: position 1h"), message
    assert "sites 8 (" in message and "9 (" in message
    apart = edit(VALID, "b_iso = 1.0", "wyckoff = " + str(["2i"] * 7 + ["1a", "1h"]))
    assert load_run_config(write(folder, apart, "apart.toml")).structure.wyckoff[-2:] == ("1a", "1h")


def test_occupancy_correction_is_off_by_default_and_read_when_given(folder):
    plain = load_run_config(write(folder, VALID)).structure
    assert (plain.occupancy_correction, plain.overlap_radius, plain.overlap_identical) == (False, 0.8, False)
    lines = resolved_toml(load_run_config(write(folder, VALID))).splitlines()
    assert not any(line.startswith(("occupancy_correction", "overlap_")) for line in lines)
    on = load_run_config(write(folder, edit(VALID, "b_iso = 1.0", "occupancy_correction = true"), "on.toml"))
    assert (on.structure.occupancy_correction, on.structure.overlap_radius) == (True, 0.8)
    assert on.structure != plain


# --- defaults of issue 12: [pattern.background] and [output] may be left out ---------------------------------


def test_background_terms_default_to_one_per_12_5_degrees(folder):
    assert [default_background_terms(lo, hi) for lo, hi in [(5, 80), (10, 160), (5, 18), (20, 30)]] == [6, 12, 3, 3]
    without = edit(VALID, "[pattern.background]\nterms = 6\n", "")
    config = load_run_config(write(folder, edit(without, "range = [5.0, 80.0]", "range = [10.0, 60.0]")))
    assert config.pattern.background_terms == 4  # 50° of the configured range
    # without a range the pattern's own range counts: K4SnO4.xye covers 5-80°
    whole = load_run_config(write(folder, edit(without, "range = [5.0, 80.0]\n", ""), "whole.toml"))
    assert whole.pattern.background_terms == 6
    empty = load_run_config(write(folder, edit(VALID, "terms = 6\n", ""), "empty.toml"))
    assert empty.pattern.background_terms == 6
    # the resolved config states the number, so a run is reproduced whatever the default becomes
    assert parse_toml(resolved_toml(config), "resolved")["pattern"]["background"] == {"terms": 4}


def test_output_defaults_to_runs_name_beside_the_config(folder, monkeypatch):
    without = edit(VALID, '[output]\ndir = "runs/K4SnO4"\n', "")
    config = load_run_config(write(folder, without))
    assert config.output.dir == (folder / "runs" / "K4SnO4").resolve()
    monkeypatch.chdir(folder)
    assert config.with_overrides(out="elsewhere").output.dir == (folder / "elsewhere").resolve()  # --out wins
    odd = load_run_config(write(folder, edit(without, 'name = "K4SnO4"', 'name = "K4SnO4 / phase 2"'), "odd.toml"))
    assert odd.output.dir == (folder / "runs" / "K4SnO4_phase_2").resolve()  # one folder, no path separators
    assert default_output_dir(folder / "x.toml", "..") == (folder / "runs" / "run").resolve()
    assert load_run_config(write(folder, resolved_toml(config), "again.toml")) == config


def test_parse_run_config_builds_from_a_parsed_document_without_a_file(folder, tmp_path_factory):
    raw = parse_toml(VALID, "inline")
    source = folder / "not-written.toml"
    config = parse_run_config(raw, source)
    assert not source.exists()
    assert config == load_run_config(write(folder, VALID))
    assert config.source == source.resolve() and config.raw is raw
    assert config.pattern.file == (folder / "K4SnO4.xye").resolve()  # relative to the source's folder
    with pytest.raises(InputError) as caught:
        parse_run_config(parse_toml(edit(VALID, "terms = 6", "terms = -2"), "inline"), folder / "manifest.json")
    assert str(caught.value).startswith(f"{folder / 'manifest.json'}: [pattern.background] terms")


def test_cli_refuses_the_old_background_key_with_exit_2(folder, capsys):
    from gasolve.cli.main import main

    path = write(folder, edit(VALID, "terms = 6", "chebyshev = 6"))
    assert main(["run", str(path), "--quiet", "--out", str(folder / "out")]) == 2
    err = capsys.readouterr().err
    assert "[pattern.background] chebyshev" in err and "renamed to 'terms'" in err
    assert not (folder / "out").exists()


# --- the one TOML reader and writer --------------------------------------------------------------------------


def test_toml_text_reads_back_to_the_same_values(tmp_path):
    document = {
        "a": {
            "text": 'quote " backslash \\ tab \t newline \n bell \x07 unicode Å θ',
            "floats": [0.1 + 0.2, 1e-300, -0.0, 6.02214076e23, float("inf")],
            "ints": (1, -2, 3),
            "flag": False,
            "path": Path("/x/y z"),
            "sub": {"deep": {"value": 1.5}},
        },
        "b": {"names": ["sbx", "blx"], "empty": []},
    }
    text = toml_text(document, ["first line", "second\nline"])
    lines = text.splitlines()
    assert lines[:2] == ["# first line", "# second?line"]
    again = parse_toml(text, "test")
    expected = {**document, "a": {**document["a"], "ints": [1, -2, 3], "path": "/x/y z"}}
    assert again == expected
    assert str(again["a"]["floats"][2]) == "-0.0"
    write_toml(tmp_path / "doc.toml", document)
    assert read_toml(tmp_path / "doc.toml") == expected
    assert [p.name for p in tmp_path.iterdir()] == ["doc.toml"]
    with pytest.raises(TypeError):
        toml_text({"a": {"none": None}})


def test_read_toml_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match=r"absent.toml: cannot read training config"):
        read_toml(tmp_path / "absent.toml", "training config")
    (tmp_path / "bad.toml").write_text("[a]\nx = \n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.toml: invalid TOML: .*line 2"):
        read_toml(tmp_path / "bad.toml")
    (tmp_path / "latin.toml").write_bytes(b"name = '\xe5'\n")
    with pytest.raises(InputError, match=r"latin.toml: not UTF-8"):
        read_toml(tmp_path / "latin.toml")


# --- GA settings: static layout, rates, run budget -----------------------------------------------------------


def test_flat_ga_keys_go_to_the_part_that_owns_them():
    settings = GASettings.from_flat({"islands": 3, "mutation_rate": 0.2}, seed=5, checkpoint_seconds=2.0)
    assert settings.layout == GALayout(islands=3)
    assert settings.rates == GARates(mutation_rate=0.2)
    assert settings.budget == RunBudget(seed=5, checkpoint_seconds=2.0)
    assert GASettings.from_flat(settings.flat()) == settings
    assert list(settings.flat())[:3] == ["seed", "max_evaluations", "checkpoint_seconds"]
    assert settings.replace(max_evaluations=10).layout is settings.layout
    with pytest.raises(InputError, match=r"\[ga\] mutation_rat: unknown key \(did you mean 'mutation_rate'\?\)"):
        GASettings.from_flat(mutation_rat=0.2)
    with pytest.raises(InputError, match=r"\[ga\] elite was removed"):
        GASettings.from_flat(elite=2)
    with pytest.raises(InputError, match=r"\[ga\] min_probability .*at most 1 / number of operators \(4\)"):
        GASettings.from_flat(min_probability=0.3)  # 4 crossovers x 0.3 > 1: checked across layout and rates
    assert GASettings.from_flat(min_probability=0.3, crossovers=["sbx", "blx"]).rates.min_probability == 0.3


def test_resume_fingerprint_ignores_the_budget_and_the_checkpoint_interval(folder):
    from gasolve.cli.run import _fingerprint

    config = load_run_config(write(folder, VALID))
    fingerprint = _fingerprint(config)
    assert _fingerprint(config.with_overrides(max_evaluations=17)) == fingerprint
    assert _fingerprint(replace_ga(config, checkpoint_seconds=0.5)) == fingerprint
    for change in ({"seed": 2}, {"islands": 5}, {"mutation_sigma": 0.06}, {"antibump_weight": 0.0}):
        assert _fingerprint(replace_ga(config, **change)) != fingerprint, change


def replace_ga(config: RunConfig, **changes) -> RunConfig:
    import dataclasses

    return dataclasses.replace(config, ga=config.ga.replace(changes))


def test_harvested_configs_of_earlier_versions_stay_readable(folder):
    from nnselect.input_pipeline import _upgrade

    old = edit(edit(VALID, "terms = 6", "chebyshev = 6"), "seed = 1", "seed = 1\nelite = 2")
    with pytest.raises(InputError, match="renamed"):
        parse_run_config(parse_toml(old, "old"), folder / "manifest.json")
    config = parse_run_config(_upgrade(parse_toml(old, "old")), folder / "manifest.json")
    assert config == load_run_config(write(folder, VALID))


def test_wavelength_may_come_from_the_pattern_file(folder, capsys):
    """Without [pattern] wavelength the file's own statement is used (the example's header says CuKa1) and the
    resolved config writes it out; a file that states none is refused naming the key, with exit code 2."""
    from gasolve.cli.main import main

    config = load_run_config(write(folder, edit(VALID, 'wavelength = "CuKa1"\n', "")))
    assert config.pattern.radiation.lines[0][0] == pytest.approx(parse_radiation("CuKa1").primary, abs=1e-6)
    assert "wavelength = 1.540598" in resolved_toml(config)
    plain = folder / "plain.xye"
    plain.write_text("".join(line for line in (folder / "K4SnO4.xye").read_text().splitlines(True) if line[0] != "#"))
    text = edit(edit(VALID, 'wavelength = "CuKa1"\n', ""), 'file = "K4SnO4.xye"', 'file = "plain.xye"')
    with pytest.raises(InputError, match=r"\[pattern\] wavelength.*plain.xye states no wavelength"):
        load_run_config(write(folder, text))
    assert main(["run", str(write(folder, text, "bad.toml")), "--quiet"]) == 2
    assert "states no wavelength" in capsys.readouterr().err


def test_resume_fingerprint_holds_the_beam_polarisation(folder):
    """A run fitted with another polarisation (also without [pattern.profile], where only the Le Bail fit uses it)
    is not resumed."""
    from gasolve.cli.run import _fingerprint

    no_profile = VALID[: VALID.index("[pattern.profile]")] + VALID[VALID.index("[pattern.background]") :]
    plain = load_run_config(write(folder, no_profile))
    polarised = load_run_config(
        write(folder, edit(no_profile, "kalpha2_ratio = 0.5", "kalpha2_ratio = 0.5\npolarisation = 0.9"))
    )
    assert plain.pattern.profile is None and polarised.pattern.polarisation == 0.9
    assert _fingerprint(plain) != _fingerprint(polarised)
