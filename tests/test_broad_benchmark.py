"""benchmarks/broad.py: sampling, the independent pattern simulation, the judges, the config and one run end to end."""

from __future__ import annotations

import json
import tomllib
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path, strict_json
from pymatgen.analysis.diffraction.xrd import WAVELENGTHS
from pymatgen.core import Structure
from pymatgen.io.cif import CifWriter

from benchmarks import broad

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore:Issues encountered while parsing CIF")


def _read(relative: str) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(data_path(relative))


@pytest.fixture(scope="module")
def quartz_entry() -> dict:
    entry = broad._entry("test", "lt_quartz", _read("cif/pyxtal-database/lt_quartz.cif"), None)
    return broad._assign_halves([entry])[0]


@pytest.fixture(scope="module")
def zirconia() -> Structure:
    entry = broad._entry("test", "ZrO2", _read("cif/aflow-prototypes/117_A2B_mP12_14_2e_e.cif"), None)
    return Structure.from_str(entry["reference_cif"], fmt="cif")


# ---------------------------------------------------------------------------------------------------------
# Sampling


def test_quotas_share_n_over_the_seven_systems():
    assert broad._quotas(14) == dict.fromkeys(broad.SYSTEMS, 2)
    quotas = broad._quotas(10)
    assert sum(quotas.values()) == 10
    assert [quotas[s] for s in broad.SYSTEMS] == [2, 2, 2, 1, 1, 1, 1]


def test_mp_sample_is_held_out_stratified_and_deterministic(shared_data):
    first = broad.sample_mp(14, seed=3)
    again = broad.sample_mp(14, seed=3)
    other = broad.sample_mp(14, seed=4)
    ids = [e["material_id"] for e in first]
    assert ids == [e["material_id"] for e in again]
    assert ids != [e["material_id"] for e in other]
    # The held-out split of the Wyckoff prior and the Z window, computed here independently.
    assert all(zlib.crc32(i.encode()) % 5 == 0 for i in ids)
    assert [e["crystal_system"] for e in first] == [s for s in broad.SYSTEMS for _ in range(2)]
    assert [e["half"] for e in first] == ["tune", "report"] * 7
    assert [e["lebail"] for e in first] == [i % 4 == 3 for i in range(14)]
    for entry in first:
        reference = Structure.from_str(entry["reference_cif"], fmt="cif")
        assert reference.is_ordered
        assert len(reference.get_primitive_structure()) <= 20
        assert len(reference) == entry["n_atoms"]
        assert sum(reference.composition.values()) == entry["z"] * reference.composition.reduced_composition.num_atoms
        assert broad.crystal_system(entry["space_group"]) == entry["crystal_system"]


def test_cif_set_sample_takes_only_what_qualifies():
    folder = data_path("cif/pyxtal-database/NaCl.cif").parent
    entries = broad.sample_cif_set("pyxtal", 100, seed=0, folder=folder)
    names = {e["material_id"] for e in entries}
    assert "pyxtal:NaCl" in names and "pyxtal:lt_quartz" in names
    assert "pyxtal:PPO" not in names  # more than 20 atoms in the primitive cell
    assert all(e["n_primitive"] <= 20 for e in entries)


# ---------------------------------------------------------------------------------------------------------
# Simulated pattern


def _maxima(two_theta: np.ndarray, y: np.ndarray, floor: float) -> np.ndarray:
    peak = (y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]) & (y[1:-1] > floor)
    return two_theta[1:-1][peak]


def _parabola_peak(two_theta: np.ndarray, y: np.ndarray, near: float) -> float:
    i = int(np.argmin(np.abs(two_theta - near)))
    i = i - 2 + int(np.argmax(y[i - 2 : i + 3]))
    a, b, _ = np.polyfit(two_theta[i - 1 : i + 2] - two_theta[i], y[i - 1 : i + 2], 2)
    return float(two_theta[i] - b / (2 * a))


def test_pattern_peaks_where_pymatgen_puts_them(zirconia):
    positions, intensities = broad.sticks(zirconia, "CuKa1")
    two_theta, y = broad.simulate_pattern(zirconia, None, fwhm=0.09)
    assert two_theta[0] == 5.0 and two_theta[-1] == 80.0 and np.allclose(np.diff(two_theta), 0.02)
    # Strong sticks with no other stick within 0.3 degrees: a maximum within 0.005 degrees.
    alone = [
        (p, i)
        for p, i in zip(positions, intensities, strict=True)
        if i > 0.1 * intensities.max() and np.sum(np.abs(positions - p) < 0.3) == 1 and 6 < p < 79
    ]
    assert len(alone) >= 5
    for position, _ in alone:
        assert abs(_parabola_peak(two_theta, y, position) - position) < 0.005
    shifted_theta, shifted = broad.simulate_pattern(zirconia, None, fwhm=0.09, zero=0.04)
    for position, _ in alone:
        assert abs(_parabola_peak(shifted_theta, shifted, position + 0.04) - position - 0.04) < 0.005
    # Every maximum of the pattern sits on a stick (no invented peaks).
    for found in _maxima(two_theta, y, 0.01 * y.max()):
        assert np.min(np.abs(positions - found)) < 0.05


def test_doublet_adds_kalpha2_at_half_height(zirconia):
    _, single = broad.simulate_pattern(zirconia, None, fwhm=0.05)
    two_theta, double = broad.simulate_pattern(zirconia, None, fwhm=0.05, doublet=True)
    positions, intensities = broad.sticks(zirconia, "CuKa1")
    strongest = max((p for p in positions if p > 60), key=lambda p: intensities[list(positions).index(p)])
    d = WAVELENGTHS["CuKa1"] / (2 * np.sin(np.radians(strongest / 2)))
    alpha2 = 2 * np.degrees(np.arcsin(WAVELENGTHS["CuKa2"] / (2 * d)))
    assert alpha2 - strongest > 0.15  # resolved at high angle
    i1, i2 = (int(np.argmin(np.abs(two_theta - t))) for t in (strongest, alpha2))
    assert single[i2] < 0.05 * single[i1]
    scale = double[i1] / single[i1]  # both patterns are scaled to PEAK_COUNTS at their strongest point
    ratio = (double[i2] / scale - single[i2]) / single[i1]
    assert 0.4 < ratio < 0.6


def test_noise_is_poisson_and_seeded(zirconia):
    _, clean = broad.simulate_pattern(zirconia, None)
    _, a = broad.simulate_pattern(zirconia, np.random.default_rng(5))
    _, b = broad.simulate_pattern(zirconia, np.random.default_rng(5))
    assert np.array_equal(a, b) and np.all(a == np.round(a))
    background = a - clean
    level = broad.BACKGROUND_SHARE * broad.PEAK_COUNTS
    assert 0.3 * level < np.median(background) < 2 * level
    assert abs(np.mean(a - clean - np.convolve(background, np.ones(101) / 101, "same"))) < 5  # zero-mean noise


# ---------------------------------------------------------------------------------------------------------
# Judges


def test_origin_shift_matches(zirconia):
    shifted = zirconia.copy()
    shifted.translate_sites(range(len(shifted)), [0.5, 0.5, 0.5], frac_coords=True)  # an inversion centre of P2_1/c
    shifted.translate_sites(range(len(shifted)), [0.137, 0.0, 0.0], frac_coords=True)  # and any translation
    verdict = broad.judge(shifted, zirconia)
    assert verdict["ml_match"] and verdict["strict_match"]
    assert verdict["max_distance"] < 1e-3


def test_perturbed_by_half_an_angstrom_fails_strict(zirconia):
    rng = np.random.default_rng(0)
    moved = zirconia.copy()
    for i in range(len(moved)):
        step = rng.normal(size=3)
        moved.translate_sites([i], 0.5 * step / np.linalg.norm(step), frac_coords=False)
    verdict = broad.judge(moved, zirconia)
    assert not verdict["strict_match"]
    # The least-RMS superposition may move the origin by the mean displacement, so single distances may exceed
    # 0.5 Å a little, the RMS may not.
    assert 0.3 < verdict["max_distance"] < 0.7 and verdict["rms_distance"] <= 0.5 + 1e-6
    one = zirconia.copy()
    one.translate_sites([0], [0.0, 0.0, 0.35 / zirconia.lattice.c], frac_coords=True)  # only one atom, 0.35 Å
    verdict = broad.judge(one, zirconia)
    assert not verdict["strict_match"] and abs(verdict["max_distance"] - 0.35) < 0.06


def test_wrong_element_in_cif_fails(zirconia, tmp_path):
    wrong = zirconia.copy()
    wrong.replace(0, "Hf")
    path = tmp_path / "best.cif"
    path.write_text(str(CifWriter(wrong)))
    verdict = broad.judge_file(path, str(CifWriter(zirconia)))
    assert not verdict["ml_match"] and not verdict["strict_match"]
    right = tmp_path / "right.cif"
    right.write_text(str(CifWriter(zirconia, symprec=0.01)))  # symmetry-reduced, as a user's file is
    assert broad.judge_file(right, str(CifWriter(zirconia)))["strict_match"]
    broken = tmp_path / "broken.cif"
    broken.write_text("data_x\n_cell_length_a 5\n")
    verdict = broad.judge_file(broken, str(CifWriter(zirconia)))
    assert not verdict["ml_match"] and not verdict["strict_match"] and verdict["cif_error"]


def test_a_reference_that_states_charges_matches_the_same_neutral_structure(zirconia, tmp_path):
    """A published CIF with oxidation states (Zr4+, O2-) judges a neutral best.cif of the same structure, and a
    refined.cif that keeps the charges, as the same structure."""
    charged = zirconia.copy()
    charged.add_oxidation_state_by_element({"Zr": 4, "O": -2})
    neutral = tmp_path / "best.cif"
    neutral.write_text(str(CifWriter(zirconia)))
    assert broad.judge_file(neutral, str(CifWriter(charged)))["strict_match"]
    ionic = tmp_path / "refined.cif"
    ionic.write_text(str(CifWriter(charged)))
    assert broad.judge_file(ionic, str(CifWriter(zirconia)))["strict_match"]


# ---------------------------------------------------------------------------------------------------------
# Config and summary.json


def test_config_sites_loads_in_gasolve(quartz_entry, tmp_path):
    from gasolve.config import load_run_config

    config = broad.prepare_case(quartz_entry, "sites", tmp_path, seed=0)
    loaded = load_run_config(config)
    assert [s for s in loaded.structure.sites] == ["Si", "O"]
    parsed = tomllib.loads(config.read_text())
    assert parsed["structure"]["wyckoff"] == ["3a", "6c"]
    assert parsed["structure"]["space_group"] == 154


def test_config_composition_gives_no_sites(quartz_entry):
    text = broad.config_text({**quartz_entry, "lebail": True}, "composition", "p.xye", None)
    structure = tomllib.loads(text)["structure"]
    assert structure["composition"] == "SiO2"
    assert not {"sites", "wyckoff", "z"} & set(structure)
    assert "profile" not in tomllib.loads(text)["pattern"]
    assert tomllib.loads(text)["pattern"]["wavelength"] == "CuKa12"


def test_read_summary_is_defensive(tmp_path):
    assert broad.read_summary(tmp_path / "none.json") == {"summary_found": False}
    path = tmp_path / "summary.json"
    summary = {
        "rwp": 0.05,
        "chi2": 1.1,
        "evaluations": 1000,
        "wall_seconds": 2.0,
        "convincing": True,
        "independent_finds": 3,
        "stop": {"reason": "converged", "early": True},
        "hypotheses": [
            {"z": 2, "assignment": "Si: 3a", "rwp": 0.05, "evaluations": 800, "status": "done"},
            {"z": 2, "assignment": "Si: 3b", "rwp": 0.4, "evaluations": 200, "status": "dropped"},
            {"z": 4, "assignment": "Si: 6c", "evaluations": 0, "status": "pending"},
        ],
    }
    path.write_text(json.dumps(summary))
    row = broad.read_summary(path)
    assert row["stop_early"] is True and row["stop_reason"] == "converged" and row["independent_finds"] == 3
    assert row["n_hypotheses"] == 3 and row["hypotheses_tried"] == 2
    assert row["hypotheses"][0]["finds"] is None
    path.write_text(json.dumps({"rwp": 0.1}))
    row = broad.read_summary(path)
    assert row["rwp"] == 0.1 and row["stop_early"] is None and row["hypotheses_tried"] is None


def test_summary_counts_stop_errors():
    rows = [
        {"half": "tune", "crystal_system": "cubic", "n_independent": 2, "ml_match": True, "strict_match": True,
         "stop_early": True, "evaluations": 10, "elapsed_seconds": 1.0, "error": None},
        {"half": "report", "crystal_system": "cubic", "n_independent": 5, "ml_match": False, "strict_match": False,
         "stop_early": True, "stop_false_positive": True, "evaluations": 30, "elapsed_seconds": 3.0, "error": None},
        {"half": "report", "crystal_system": "triclinic", "n_independent": 12, "ml_match": True,
         "strict_match": False, "stop_early": False, "stop_false_negative": True, "evaluations": 20,
         "elapsed_seconds": 2.0, "error": None},
    ]  # fmt: skip
    result = broad.summary(rows)
    assert result["all"]["overall"]["ml_solved"] == 2 and result["all"]["overall"]["strict_solved"] == 1
    assert result["all"]["overall"]["evaluations"]["median"] == 20
    assert result["report"]["overall"]["stop_false_positives"] == 1
    assert result["report"]["overall"]["stop_false_negatives"] == 1
    assert set(result["all"]["independent_sites"]) == {"2", "5-6", "10-99"}
    assert result["tune"]["crystal_system"]["cubic"]["ml_success"] == 1.0


# ---------------------------------------------------------------------------------------------------------
# End to end


def test_one_structure_end_to_end_and_resume(quartz_entry, tmp_path):
    from distributed import Client, LocalCluster

    json_path = tmp_path / "broad.json"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            result = broad.run_benchmark(
                [quartz_entry], mode="sites", work=tmp_path / "runs", budget=20_000, wall_limit=240, seed=0,
                json_path=json_path, client=client,
            )  # fmt: skip
    written = strict_json(json_path)
    assert written["rows"] == json.loads(json.dumps(broad._plain(result["rows"])))
    (row,) = written["rows"]
    assert row["error"] is None, row["error"]
    assert row["ml_match"] and row["strict_match"] and row["max_distance"] < 0.1
    assert row["rwp"] < 0.2 and 0 < row["evaluations"] and row["true_wyckoff"] == [["Si", "3a"], ["O", "6c"]]
    assert written["summary"]["all"]["overall"]["strict_solved"] == 1
    best = tmp_path / "runs" / "lt_quartz" / "run" / "best.cif"
    assert broad.judge_file(best, quartz_entry["reference_cif"])["strict_match"]
    again = broad.run_benchmark(
        [quartz_entry], mode="sites", work=tmp_path / "none", budget=20_000, wall_limit=1, seed=0,
        json_path=json_path, resume=True,
    )  # fmt: skip
    assert again["rows"][0]["elapsed_seconds"] == row["elapsed_seconds"]
    assert not (tmp_path / "none").exists()
    broad.plot(written, tmp_path / "broad.png")
    assert (tmp_path / "broad.png").stat().st_size > 10_000


def test_failed_run_is_a_row(quartz_entry, tmp_path):
    entry = {**quartz_entry, "sites": [["Si", "9z"], ["O", "6c"]]}  # a Wyckoff letter P3_221 lacks
    row = broad.run_case(entry, "sites", str(tmp_path), 1000, 120, 0, 1)
    assert row["returncode"] == 2 and "9z" in row["error"]
    assert row["ml_match"] is False and row["strict_match"] is False


def test_resume_refuses_another_mode(quartz_entry, tmp_path):
    json_path = tmp_path / "broad.json"
    json_path.write_text(json.dumps({"settings": {"mode": "sites", "budget": 1000}, "rows": []}))
    with pytest.raises(ValueError, match="mode 'sites'"):
        broad.run_benchmark(
            [quartz_entry], mode="composition", work=tmp_path, budget=1000, wall_limit=1, seed=0,
            json_path=json_path, resume=True,
        )  # fmt: skip


def test_command_line():
    args = broad.parse_args(["--n", "7", "--source", "mp,pyxtal", "--input", "sites"])
    assert args.sources == ["mp", "pyxtal"] and args.json.name == "broad-sites.json" and args.png.suffix == ".png"
    with pytest.raises(SystemExit):
        broad.parse_args(["--source", "icsd"])
    assert "--scheduler" in broad._command(Path("c.toml"), Path("o"), "composition", 10, 1)
    assert "--scheduler" not in broad._command(Path("c.toml"), Path("o"), "sites", 10, 1)


# ---------------------------------------------------------------------------------------------------------
# Blind input: gasolve solve from the pattern and the formula


def test_blind_command_is_a_solve_gasolve_parses(quartz_entry, tmp_path):
    from gasolve.cli.main import build_parser

    pattern = broad.prepare_case(quartz_entry, "blind", tmp_path, seed=0)
    assert pattern == tmp_path / "pattern.xye" and pattern.is_file() and not (tmp_path / "config.toml").exists()
    for lebail, wavelength in ((False, "CuKa1"), (True, "CuKa12")):
        command = broad.solve_command(pattern, tmp_path / "run", {**quartz_entry, "lebail": lebail}, 30_000, 7)
        assert command[1:4] == ["-m", "gasolve.cli.main", "solve"]
        args = build_parser().parse_args(command[3:])
        assert args.pattern == str(pattern) and args.composition == "SiO2" and args.wavelength == wavelength
        assert args.range == [5.0, 80.0] and args.scheduler == "synchronous" and args.quiet
        assert args.seed == 7 and args.max_evaluations == 30_000 and args.out == str(tmp_path / "run")
        assert args.cell is None and args.space_group is None and args.lattice is None and args.z is None
    assert broad.parse_args(["--input", "blind"]).json.name == "broad-blind.json"


def _stages(bravais: str, cell: list[float], raced: list[str]) -> dict:
    return {
        "stages": {
            "cell": {"source": "indexed", "bravais": bravais, "cell": cell},
            "profile_fit": {"rwp": 0.07, "chi2": 1.5, "group": "holohedral"},
            "space_groups": {"given": False, "raced": [{"space_group": s, "posterior": 0.5} for s in raced]},
        }
    }


def test_read_stages_judges_lattice_and_groups(quartz_entry, tmp_path):
    # lt-quartz: P3_221 (154), hP, a = b ≈ 4.9 Å, c ≈ 5.4 Å.
    a, _, c = quartz_entry["cell"][:3]
    path = tmp_path / "summary.json"
    missing = broad.read_stages(tmp_path / "none.json", quartz_entry)
    assert missing["reference_bravais"] == "hP" and missing["cell_matches"] is None
    assert missing["true_group_raced"] is None

    path.write_text(json.dumps(_stages("hP", [a * 1.005, a * 1.005, c * 0.995, 90, 90, 120], ["P3121", "P3221"])))
    row = broad.read_stages(path, quartz_entry)
    assert row["indexed_bravais"] == "hP" and row["bravais_matches"] and row["cell_matches"]
    assert row["raced_space_groups"] == [152, 154] and row["true_group_raced"] and not row["true_group_first"]
    assert row["holohedral_rwp"] == 0.07

    # 2 % off in c: not the reference lattice within 1 %.
    path.write_text(json.dumps(_stages("hP", [a, a, c * 1.02, 90, 90, 120], ["P 32 2 1"])))
    row = broad.read_stages(path, quartz_entry)
    assert row["bravais_matches"] and row["cell_matches"] is False and row["true_group_first"]

    # The C-centred orthohexagonal cell (a, a√3, c) is the same lattice in lower symmetry; taken as primitive
    # (oP) it is a sublattice of twice the volume.
    orthohexagonal = [a, a * 3**0.5, c, 90, 90, 90]
    path.write_text(json.dumps(_stages("oC", orthohexagonal, ["C222_1"])))
    row = broad.read_stages(path, quartz_entry)
    assert row["cell_matches"] and not row["bravais_matches"] and not row["true_group_raced"]
    path.write_text(json.dumps(_stages("oP", orthohexagonal, ["P222"])))
    assert broad.read_stages(path, quartz_entry)["cell_matches"] is False

    rows = [{**row, "half": "report", "crystal_system": "trigonal", "n_independent": 2}]  # the oC row
    counts = broad.summary(rows)["all"]["overall"]["stages"]
    assert counts == {"bravais_matches": 0, "cell_matches": 1, "true_group_raced": 0, "true_group_first": 0}
    assert "stages" not in broad.summarise([{"ml_match": True}])


def test_round_robin_takes_one_of_each_class_in_turn():
    entries = [{"source": "mp", "crystal_system": system, "i": i} for system, n in (("a", 3), ("b", 1), ("c", 2))
               for i in range(n)]  # fmt: skip
    ordered = broad.round_robin(entries)
    assert [(e["crystal_system"], e["i"]) for e in ordered] == [
        ("a", 0), ("b", 0), ("c", 0), ("a", 1), ("c", 1), ("a", 2),
    ]  # fmt: skip
    assert sorted(map(id, ordered)) == sorted(map(id, entries))


def test_space_group_verdict_tells_a_subgroup_model_from_the_reference():
    """Rutile (P4_2/mnm) against itself, and against the same atoms with O moved 0.05 Å along c, which keeps them
    within every tolerance of the ML and strict criteria but leaves the polar subgroup P4_2nm."""
    from pymatgen.core import Lattice

    lattice = Lattice.tetragonal(4.594, 2.959)
    rutile = Structure.from_spacegroup("P4_2/mnm", lattice, ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0]])
    polar = Structure.from_spacegroup("P4_2nm", lattice, ["Ti", "O"], [[0, 0, 0], [0.3048, 0.3048, 0.05 / 2.959]])
    assert broad.space_group_verdict(rutile, rutile) == {
        "model_space_group": 136,
        "reference_space_group": 136,
        "space_group_match": True,
    }
    verdict = broad.space_group_verdict(polar, rutile)
    assert verdict["model_space_group"] == 102 and not verdict["space_group_match"]
    assert broad.judge(polar, rutile)["strict_match"]
