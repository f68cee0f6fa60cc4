"""The ``gasolve simulate`` and ``gasolve score`` commands, and their handling of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import read_image, shared_path, strict_json

from gasolve.cli.main import main
from gasolve.io.patterns import read_pattern

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
K4SNO4 = str(EXAMPLES / "K4SnO4.cif")


def run(argv, capsys):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_simulate_noise_free_then_score_is_exact(tmp_path, capsys):
    out = tmp_path / "k.xye"
    code, stdout, _ = run(
        [
            "simulate",
            K4SNO4,
            "--out",
            out,
            "--range",
            10,
            60,
            "--step",
            0.02,
            "--fwhm",
            0.08,
            "--b-iso",
            1.0,
            "--background",
            200,
            -50,
        ],
        capsys,
    )
    assert code == 0 and "wrote" in stdout
    pattern = read_pattern(out)
    assert pattern.n_points == 2501
    assert pattern.y_obs.max() == pytest.approx(10000, rel=1e-6)
    header = out.read_text().splitlines()[0:6]
    assert any("fwhm 0.08" in line for line in header)
    code, stdout, _ = run(
        ["score", K4SNO4, out, "--fwhm", 0.08, "--b-iso", 1.0, "--json", "--plot", tmp_path / "fit.png"],
        capsys,
    )
    result = strict_json(stdout)
    assert code == 0 and result["rwp"] < 1e-6
    read_image(tmp_path / "fit.png")
    # A wrong structure model (atoms moved) must fit worse.
    code, stdout, _ = run(
        ["score", K4SNO4, out, "--fwhm", 0.08, "--b-iso", 3.0, "--json", "--plot", tmp_path / "fit2.png"],
        capsys,
    )
    assert strict_json(stdout)["rwp"] > 0.01


def test_simulate_with_counts_is_reproducible_and_at_noise_level(tmp_path, capsys):
    paths = [tmp_path / "a.xye", tmp_path / "b.xye", tmp_path / "c.xye"]
    for path, seed in zip(paths, (3, 3, 4), strict=True):
        run(
            [
                "simulate",
                K4SNO4,
                "--out",
                path,
                "--counts",
                20000,
                "--seed",
                seed,
                "--wavelength",
                "CuKa12",
                "--caglioti",
                0.01,
                -0.005,
                0.008,
            ],
            capsys,
        )
    a, b, c = (read_pattern(p).y_obs for p in paths)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(a == np.round(a))
    _, stdout, _ = run(
        [
            "score",
            K4SNO4,
            paths[0],
            "--wavelength",
            "CuKa12",
            "--caglioti",
            0.01,
            -0.005,
            0.008,
            "--json",
            "--plot",
            tmp_path / "fit.png",
        ],
        capsys,
    )
    result = strict_json(stdout)
    assert 0.5 < result["chi2"] < 1.5
    assert result["rwp"] == pytest.approx(result["rexp"], rel=0.25)


def test_published_pbso4_against_measured_round_robin_pattern(tmp_path, capsys):
    """Real data: Cu Kα1+Kα2, profile parameters fitted once by Nelder-Mead on Rwp (README)."""
    cif = shared_path("measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif")
    raw = shared_path("measured/PbSO4-lab-CuKa/PBSO4.XRA")
    code, stdout, _ = run(
        [
            "score",
            cif,
            raw,
            "--wavelength",
            "CuKa12",
            "--caglioti",
            0.0934,
            -0.0653,
            0.0205,
            "--eta",
            0.690,
            "--eta-slope",
            0.00173,
            "--zero",
            -0.0328,
            "--background-terms",
            12,
            "--json",
            "--plot",
            tmp_path / "pbso4.png",
        ],
        capsys,
    )
    result = strict_json(stdout)
    assert code == 0
    assert result["rwp"] < 0.15
    # Without Kα2 or with a misplaced zero the same model fits clearly worse.
    code, stdout, _ = run(
        [
            "score",
            cif,
            raw,
            "--wavelength",
            "CuKa1",
            "--caglioti",
            0.0934,
            -0.0653,
            0.0205,
            "--eta",
            0.690,
            "--eta-slope",
            0.00173,
            "--zero",
            -0.0328,
            "--background-terms",
            12,
            "--json",
            "--plot",
            tmp_path / "pbso4b.png",
        ],
        capsys,
    )
    assert strict_json(stdout)["rwp"] > result["rwp"] + 0.05


def _bad_cif(tmp_path):
    path = tmp_path / "bad.cif"
    path.write_text("data_bad\n_cell_length_a 5\n")
    return path


def _bad_pattern(tmp_path):
    path = tmp_path / "bad.xy"
    path.write_text("10 1\n11 2\n10.5 3\n")
    return path


@pytest.mark.parametrize(
    ("make_argv", "fragment"),
    [
        (lambda t: ["simulate", t / "missing.cif", "--out", t / "o.xye"], "missing.cif: cannot read"),
        (lambda t: ["simulate", _bad_cif(t), "--out", t / "o.xye"], "bad.cif"),
        (lambda t: ["simulate", K4SNO4, "--out", t / "o.xye", "--wavelength", "MoKz"], "unknown wavelength"),
        (lambda t: ["simulate", K4SNO4, "--out", t / "o.xye", "--range", 80, 5], "--range"),
        (
            lambda t: ["simulate", K4SNO4, "--out", t / "o.xye", "--caglioti", 0, 0, -0.01],
            "non-positive FWHM",
        ),
        (lambda t: ["simulate", K4SNO4, "--out", t / "o.xye", "--eta", 1.5], "leaves [0, 1]"),
        (lambda t: ["simulate", K4SNO4, "--out", t / "nodir" / "o.xye"], "cannot write"),
        (lambda t: ["simulate", K4SNO4, "--out", t / "o.xye", "--background", 20000], "background"),
        (lambda t: ["score", K4SNO4, _bad_pattern(t)], "bad.xy: 2θ must increase"),
        (lambda t: ["score", K4SNO4, t / "none.xy"], "none.xy: cannot read"),
        (lambda t: ["score", K4SNO4, EXAMPLES / "K4SnO4.xye", "--range", 2, 50], "outside the data"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, make_argv, fragment):
    code, _, err = run(make_argv(tmp_path), capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert fragment in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "o.xye").exists()


def test_console_script_usage_errors_exit_2():
    for argv in (
        ["simulate"],
        ["score", K4SNO4],
        ["simulate", K4SNO4, "--out", "x.xye", "--fwhm", "abc"],
        ["nonsense"],
    ):
        result = subprocess.run([sys.executable, "-m", "gasolve.cli.main", *argv], capture_output=True, text=True)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
