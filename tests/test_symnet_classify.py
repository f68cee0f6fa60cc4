"""`gasolve classify`: the shipped network on shipped example patterns, other wavelengths, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from symnet_fixtures import EXAMPLES

from symnet.grid import CU_KALPHA1

# --- classify -------------------------------------------------------------------------------------------------

SYMMETRY_EXAMPLES = EXAMPLES / "symmetry"


def test_classify_names_the_crystal_system_of_a_shipped_example(capsys):
    from gasolve.cli.main import main

    assert main(["classify", str(SYMMETRY_EXAMPLES / "ZnO.xye"), "--json", "--top", "3"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["file"].endswith("ZnO.xye")
    assert answer["crystal_system"]["name"] == "hexagonal"
    assert len(answer["space_groups"]) == 3
    assert {"number", "symbol", "probability"} <= set(answer["space_groups"][0])
    probabilities = [g["probability"] for g in answer["space_groups"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[0] <= 1


def test_classify_several_files_at_another_wavelength(tmp_path, capsys):
    """The same ZnO pattern converted to Co Kα (through d-spacing) gives the same answer with --wavelength."""
    from gasolve.cli.main import main
    from gasolve.io.patterns import read_pattern, write_xye

    pattern = read_pattern(SYMMETRY_EXAMPLES / "ZnO.xye")
    cobalt = 1.78897
    angle = 2 * np.degrees(np.arcsin(cobalt / CU_KALPHA1 * np.sin(np.radians(pattern.two_theta) / 2)))
    write_xye(tmp_path / "ZnO-Co.xye", angle, pattern.y_obs, pattern.sigma)
    files = [str(SYMMETRY_EXAMPLES / "ZnO.xye"), str(tmp_path / "ZnO-Co.xye")]
    assert main(["classify", files[0], "--json"]) == 0
    cu = json.loads(capsys.readouterr().out)
    assert main(["classify", files[1], "--wavelength", str(cobalt), "--json"]) == 0
    co = json.loads(capsys.readouterr().out)
    assert co["crystal_system"]["name"] == cu["crystal_system"]["name"]
    assert co["space_groups"][0]["number"] in [g["number"] for g in cu["space_groups"][:3]]
    assert abs(co["crystal_system"]["probability"] - cu["crystal_system"]["probability"]) < 0.1
    assert main(["classify", *files[:1], str(SYMMETRY_EXAMPLES / "Cu2O.xye")]) == 0
    text = capsys.readouterr().out
    assert "ZnO.xye" in text and "Cu2O.xye" in text


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        (None, [], "cannot read pattern file"),
        (b"\x00\x01\x02binary", [], "binary file"),
        (b"", [], "empty"),
        ("".join(f"{120 + 0.1 * i} {i}\n" for i in range(100)).encode(), [], "covers"),
        ("".join(f"{5 + 0.1 * i} 0\n" for i in range(500)).encode(), [], "no positive intensity"),
        (b"10 1\n11 2\n", ["--top", "0"], "--top"),
        (b"10 1\n11 2\n", ["--wavelength", "CuKb9"], "unknown wavelength"),
    ],
)
def test_classify_bad_input_exits_2_with_one_line(tmp_path, capsys, content, options, message):
    from gasolve.cli.main import main

    path = tmp_path / "pattern.xy"
    if content is not None:
        path.write_bytes(content)
    assert main(["classify", str(path), *options]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_classify_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    from gasolve.cli.main import main

    (tmp_path / "net.msgpack").write_text("hello")
    assert main(["classify", str(SYMMETRY_EXAMPLES / "ZnO.xye"), "--checkpoint", str(tmp_path / "net.msgpack")]) == 2
    assert "not a symnet checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_network_on_measured_rruff_patterns(shared_data):
    """Regression guard: the shipped network's crystal-system accuracy on the 454 RRUFF patterns stays at the
    level recorded in benchmarks/results/symmetry_accuracy.json (within 2 points)."""
    from pathlib import Path

    from symnet.calibration import top_k_accuracy
    from symnet.classify import Classifier, pattern_input
    from symnet.labels import crystal_system_index

    recorded = json.loads(
        (Path(__file__).resolve().parents[1] / "benchmarks/results/symmetry_accuracy.json").read_text()
    )
    with np.load(shared_data / "rruff-dev" / "rruff_dev.npz") as data:
        two_theta, intensity, space_group = data["two_theta"], data["intensity"], data["space_group"]
    classifier = Classifier()
    inputs = np.stack([pattern_input(two_theta, y, 1.5418, classifier.grid) for y in intensity])
    results = classifier.classify_inputs(inputs)
    p_system = np.stack([r.system_probabilities for r in results])
    accuracy = top_k_accuracy(p_system, crystal_system_index(space_group), 1)
    assert accuracy >= recorded["rruff"]["system_top1"] - 0.02
