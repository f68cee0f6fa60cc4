"""`gasolve run`: a real solution of K4SnO4, exact resume after an interruption, outputs, and bad configs."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import gemmi
import numpy as np
import pytest
from conftest import read_image, strict_json
from pymatgen.core import Structure as PymatgenStructure

from gasolve.cli.main import main

pytestmark = pytest.mark.filterwarnings("ignore:Issues encountered while parsing CIF")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def example(tmp_path) -> Path:
    for name in ("K4SnO4.toml", "K4SnO4.xye", "K4SnO4.cif", "K4PbO4.cif"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    return tmp_path / "K4SnO4.toml"


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_solves_k4sno4_and_writes_every_output(example, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = run(["run", example, "--out", out, "--stop-when-solved", "--quiet", "--seed", 3], capsys)
    assert code == 0, stdout
    summary = strict_json(out / "summary.json")  # NaN or Infinity anywhere raises
    assert summary["solved"] is True and summary["seed"] == 3
    assert max(summary["site_distances"].values()) == pytest.approx(summary["max_site_distance"])
    assert summary["max_site_distance"] < 0.1
    assert summary["rwp"] <= summary["rwp_before_refinement"] + 1e-12
    assert summary["rexp"] == pytest.approx(0.0385, abs=5e-4)  # the noise level of the example pattern
    assert 0.9 * summary["rexp"] < summary["rwp"] < 1.15 * summary["rexp"]
    assert summary["chi2"] == pytest.approx((summary["rwp"] / summary["rexp"]) ** 2, rel=0.01)
    assert 0 < summary["evaluations_to_solution"] <= summary["evaluations"] <= 2_000_000  # the config's budget
    assert summary["generations"] >= 1 and summary["wall_seconds"] > 0
    assert Path(summary["best_cif"]) == out / "best.cif"
    # The Rwp of the written best.cif, scored afresh by `gasolve score` with the example's instrument, is the one
    # reported (the CIF rounds coordinates to 1e-5 and B to U = 0.01267, hence --b-iso and the tolerance).
    instrument = ["--range", 5, 80, "--fwhm", 0.1, "--eta", 0.5, "--background-terms", 6, "--b-iso", 1.0]
    score = ["score", out / "best.cif", example.parent / "K4SnO4.xye", "--json", "--plot", tmp_path / "score.png"]
    code, stdout, _ = run(score + instrument, capsys)
    assert code == 0
    rescored = strict_json(stdout)
    assert rescored["rwp"] == pytest.approx(summary["rwp"], rel=1e-5)
    assert rescored["rp"] == pytest.approx(summary["rp"], rel=1e-4)
    read_image(out / "fit.png")
    read_image(out / "convergence.png")
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == summary["generations"] + 1
    assert float(rows[-1]["evaluations"]) == pytest.approx(summary["evaluations"], rel=1e-6)
    assert float(rows[-1]["best_rwp"]) == pytest.approx(summary["rwp_before_refinement"], rel=1e-9)
    # best.cif read back by two independent readers: the config's cell, the summary's coordinates, P-1, 18 atoms
    cif = str(out / "best.cif")
    cell = [6.600678, 6.608855, 9.914304, 80.24692, 71.67501, 67.32549]
    coordinates = np.array([[site["x"], site["y"], site["z"]] for site in summary["sites"]])
    small = gemmi.read_small_structure(cif)
    assert small.spacegroup.hm == "P -1"
    gemmi_cell = small.cell
    np.testing.assert_allclose(
        [gemmi_cell.a, gemmi_cell.b, gemmi_cell.c, gemmi_cell.alpha, gemmi_cell.beta, gemmi_cell.gamma], cell, atol=1e-5
    )
    assert [site.type_symbol for site in small.sites] == ["Sn"] + ["K"] * 4 + ["O"] * 4
    np.testing.assert_allclose([list(site.fract) for site in small.sites], coordinates, atol=6e-6)
    pymatgen = PymatgenStructure.from_file(cif)
    assert pymatgen.composition.reduced_formula == "K4SnO4" and len(pymatgen) == 18
    np.testing.assert_allclose(pymatgen.lattice.parameters, cell, atol=1e-5)
    for site, x in zip(small.sites, coordinates, strict=True):  # every site and its inverse, mod 1
        for image in (x, -x):
            distances = pymatgen.lattice.get_all_distances(image % 1.0, pymatgen.frac_coords)[0]
            assert distances.min() < 1e-4 and pymatgen[int(distances.argmin())].specie.symbol == site.type_symbol
    assert len(ase.io.read(cif)) == 18
    code, stdout, _ = run(["compare", cif, EXAMPLES / "K4SnO4.cif", "--json"], capsys)
    assert code == 0 and strict_json(stdout)["max_distance"] < 0.1


def start_unbounded_run(example: Path, out: Path, seed: int, **popen) -> subprocess.Popen:
    """`gasolve run` in a child process with a budget it cannot spend before the test signals it."""
    command = [sys.executable, "-m", "gasolve.cli.main", "run", str(example), "--out", str(out)]
    command += ["--max-evaluations", "1000000000", "--quiet", "--seed", str(seed)]
    return subprocess.Popen(command, **popen)


def wait_for_checkpoint(process: subprocess.Popen, path: Path, timeout: float = 600.0) -> None:
    """Poll until the child has written its first checkpoint (renamed into place whole); fail if it never does."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run exited ({process.returncode}) before writing {path.name}"
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {path.name} after {timeout:.0f} s")
        time.sleep(0.01)


def with_checkpoint_every_generation(example: Path) -> None:
    config = example.read_text()
    assert config.count("[ga]\n") == 1
    example.write_text(config.replace("[ga]\n", "[ga]\ncheckpoint_seconds = 0.001\n"))


def test_same_seed_same_result_and_resume_is_exact(example, tmp_path, capsys):
    budget = ["--max-evaluations", 400_000, "--quiet", "--seed", 11]
    run(["run", example, "--out", tmp_path / "a", *budget], capsys)
    run(["run", example, "--out", tmp_path / "b", *budget], capsys)
    a = strict_json(tmp_path / "a" / "summary.json")
    b = strict_json(tmp_path / "b" / "summary.json")
    assert a["rwp"] == b["rwp"] and a["evaluations"] == b["evaluations"]
    assert a["evaluations"] >= 400_000 and a["generations"] > 2
    # Kill a run part-way (SIGKILL once its first checkpoint exists), then resume it under the budget of run a.
    # The killed run's own budget is out of reach, so it cannot end before the signal; only max_evaluations
    # may differ between a run and its resumption.
    with_checkpoint_every_generation(example)
    out = tmp_path / "killed"
    process = start_unbounded_run(example, out, seed=11)
    wait_for_checkpoint(process, out / "checkpoint.pkl")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    from gasolve.io.checkpoint import read_checkpoint

    killed_at = read_checkpoint(out / "checkpoint.pkl")["record"].state.evaluations
    assert 0 < killed_at < a["evaluations"], "the child ran past run a's budget before the kill arrived"
    assert not (out / "summary.json").exists()
    code, _, _ = run(["run", example, "--out", out, "--resume", *budget], capsys)
    assert code == 0
    resumed = strict_json(out / "summary.json")
    # exact: the killed part ran in another process, but every process runs the kernels from Numba's cache
    # (gasolve.scoring.kernel_cache), so even on a clean clone both round alike
    assert resumed["rwp"] == a["rwp"]
    assert resumed["evaluations"] == a["evaluations"]
    assert resumed["generations"] == a["generations"]
    assert not list(out.glob("*.tmp"))


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda t: t.replace('space_group = "P-1"', 'space_group = "Q-9"'), "space group"),
        (lambda t: t.replace('"Sn", "K"', '"Sn", "Kx"'), "element"),
        (lambda t: t.replace("[ga]\n", "[ga]\nislandz = 3\n"), "islandz"),
        (lambda t: t.replace('file = "K4SnO4.xye"', 'file = "missing.xye"'), "missing.xye"),
        (lambda t: t.replace("range = [5.0, 80.0]", "range = [2.0, 80.0]"), "outside the data"),
        (lambda t: t.replace("cell = [6.6", "cell = [-6.6"), "cell"),
        (lambda t: t.replace("seed = 1", 'seed = "one"'), "seed"),
        (lambda t: t.replace("[structure]", "[structure\n"), "line"),
        (lambda t: t.replace('cif = "K4SnO4.cif"', 'cif = "K4PbO4.cif"'), "reference"),
    ],
)
def test_bad_configs_exit_2_and_write_nothing(example, tmp_path, capsys, edit, fragment):
    example.write_text(edit(example.read_text()))
    out = tmp_path / "never"
    code, _, err = run(["run", example, "--out", out, "--quiet"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert fragment in lines[0]
    assert "K4SnO4.toml" in lines[0] or "missing.xye" in lines[0]
    assert not out.exists()


def test_resume_without_checkpoint_is_a_user_error(example, tmp_path, capsys):
    code, _, err = run(["run", example, "--out", tmp_path / "none", "--resume", "--quiet"], capsys)
    assert code == 2 and "checkpoint" in err


def test_final_refinement_recovers_the_truth_from_a_perturbed_model():
    from gasolve.config import load_observed, load_run_config
    from gasolve.crystal import read_cif
    from gasolve.refine import refine_coordinates
    from gasolve.scoring import Scorer, ScoringProblem

    config = load_run_config(EXAMPLES / "K4SnO4.toml")
    s = config.structure
    problem = ScoringProblem.build(
        s.cell,
        s.space_group,
        list(s.sites),
        load_observed(config),
        config.pattern.radiation,
        config.pattern.profile,
        config.pattern.background_terms,
        b_iso=np.array(s.b_iso),
    )
    truth = read_cif(EXAMPLES / "K4SnO4.cif").frac
    start = truth + np.random.default_rng(0).normal(0, 0.01, truth.shape)
    result = refine_coordinates(Scorer(problem), start)
    assert result.rwp_after < result.rwp_before
    np.testing.assert_allclose(result.frac, truth, atol=0.005)


def test_ctrl_c_saves_a_checkpoint_and_resume_matches(example, tmp_path, capsys):
    budget = ["--max-evaluations", 150_000, "--quiet", "--seed", 12]
    run(["run", example, "--out", tmp_path / "full", *budget], capsys)
    full = strict_json(tmp_path / "full" / "summary.json")
    # Ctrl-C once the first generation is done (its checkpoint is the event waited for), never on a timer.
    with_checkpoint_every_generation(example)
    out = tmp_path / "interrupted"
    process = start_unbounded_run(example, out, seed=12, stderr=subprocess.PIPE, text=True)
    wait_for_checkpoint(process, out / "checkpoint.pkl")
    from gasolve.io.checkpoint import read_checkpoint

    seen = read_checkpoint(out / "checkpoint.pkl")["record"].state.generation
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130, err
    assert "Traceback" not in err and f"--resume --out {out}" in err
    record = read_checkpoint(out / "checkpoint.pkl")["record"]  # the state saved on the way out
    assert record.state.generation >= seen
    assert 0 < record.state.evaluations < full["evaluations"], "the child ran past the budget before Ctrl-C"
    assert not (out / "summary.json").exists()
    code, _, _ = run(["run", example, "--out", out, "--resume", *budget], capsys)
    assert code == 0
    resumed = strict_json(out / "summary.json")
    assert (resumed["rwp"], resumed["evaluations"], resumed["generations"]) == (
        full["rwp"],
        full["evaluations"],
        full["generations"],
    )
