"""`gasolve classify`: the shipped network on shipped example patterns, other wavelengths, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import strict_json
from symnet_fixtures import EXAMPLES

from symnet.grid import CU_KALPHA1

# --- classify -------------------------------------------------------------------------------------------------

SYMMETRY_EXAMPLES = EXAMPLES / "symmetry"


#: Shipped pattern -> the network's known answer, checked against the CIF's space group found by spglib:
#: the crystal system right and the true group first ("top1"), in the first five ("top5") or not there
#: ("system": Cu2O, Pn-3m, is called Pm-3m), or no answer ("abstains": quartz and baddeleyite).
KNOWN = {
    "Cu2O": "system",
    "PbSO4": "top1",
    "SnO2": "top1",
    "ZnO": "top5",
    "SiO2-quartz": "abstains",
    "ZrO2": "abstains",
}


def true_space_group(name: str) -> int:
    """Space-group number of a shipped example CIF (written in P1), found by spglib at 0.01 Å."""
    import gemmi
    import spglib

    small = gemmi.read_small_structure(str(SYMMETRY_EXAMPLES / f"{name}.cif"))
    sites = small.get_all_unit_cell_sites()
    cell = small.cell
    lattice = np.array(cell.orth.mat).T  # rows: a, b, c in Å
    numbers = [site.element.atomic_number for site in sites]
    dataset = spglib.get_symmetry_dataset((lattice, [list(site.fract) for site in sites], numbers), symprec=0.01)
    return int(dataset.number)


@pytest.fixture(scope="module")
def classifier():
    from symnet.classify import Classifier

    return Classifier()


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_classify_gives_normalised_ordered_probabilities_and_the_known_answer(name, classifier, capsys):
    from gasolve.cli.main import main
    from gasolve.io.patterns import read_pattern
    from symnet.classify import pattern_input
    from symnet.labels import CRYSTAL_SYSTEMS, crystal_system_index

    assert main(["classify", str(SYMMETRY_EXAMPLES / f"{name}.xye"), "--json", "--top", "230", "--no-index"]) == 0
    answer = strict_json(capsys.readouterr().out)
    assert answer["file"].endswith(f"{name}.xye") and answer["route"] == "network" and answer["cell"] is None
    groups = answer["space_groups"]
    assert sorted(g["number"] for g in groups) == list(range(1, 231))
    probabilities = [g["probability"] for g in groups]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=0.012)  # 230 values each rounded to 1e-4
    # the same pattern through the library: every distribution sums to 1 and the command prints its order
    pattern = read_pattern(SYMMETRY_EXAMPLES / f"{name}.xye")
    result = classifier.classify_inputs(
        pattern_input(pattern.two_theta, pattern.y_obs, CU_KALPHA1, classifier.grid)[None]
    )[0]
    assert result.system_probabilities.shape == (7,) and result.space_group_probabilities.shape == (230,)
    assert result.system_probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert result.space_group_probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(result.space_group_probabilities >= 0) and np.all(result.system_probabilities >= 0)
    top = np.argsort(-result.space_group_probabilities)[:5] + 1
    assert [g["number"] for g in groups[:5]] == top.tolist()
    system = int(np.argmax(result.system_probabilities))
    assert answer["crystal_system"] == {
        "name": CRYSTAL_SYSTEMS[system],
        "probability": pytest.approx(result.system_probabilities[system], abs=3e-3),  # batch sizes differ
    }
    assert answer["abstained"] == (KNOWN[name] == "abstains")
    truth = true_space_group(name)
    if KNOWN[name] == "abstains":
        assert answer["abstained"] and groups[0]["probability"] < 0.5
        return
    assert answer["crystal_system"]["name"] == CRYSTAL_SYSTEMS[int(crystal_system_index(np.array([truth]))[0])]
    ranked = [g["number"] for g in groups]
    assert (ranked.index(truth) == 0) == (KNOWN[name] == "top1")
    assert (ranked.index(truth) < 5) == (KNOWN[name] in ("top1", "top5"))


def test_classify_several_files_at_another_wavelength(tmp_path, capsys):
    """The same ZnO pattern converted to Co Kα (through d-spacing) gives the same answer with --wavelength."""
    from gasolve.cli.main import main
    from gasolve.io.patterns import read_pattern, write_xye

    pattern = read_pattern(SYMMETRY_EXAMPLES / "ZnO.xye")
    cobalt = 1.78897
    angle = 2 * np.degrees(np.arcsin(cobalt / CU_KALPHA1 * np.sin(np.radians(pattern.two_theta) / 2)))
    write_xye(tmp_path / "ZnO-Co.xye", angle, pattern.y_obs, pattern.sigma)
    files = [str(SYMMETRY_EXAMPLES / "ZnO.xye"), str(tmp_path / "ZnO-Co.xye")]
    assert main(["classify", files[0], "--json", "--no-index"]) == 0
    cu = strict_json(capsys.readouterr().out)
    assert main(["classify", files[1], "--wavelength", str(cobalt), "--json", "--no-index"]) == 0
    co = strict_json(capsys.readouterr().out)
    assert co["crystal_system"]["name"] == cu["crystal_system"]["name"]
    assert co["space_groups"][0]["number"] in [g["number"] for g in cu["space_groups"][:3]]
    assert abs(co["crystal_system"]["probability"] - cu["crystal_system"]["probability"]) < 0.1
    assert main(["classify", str(SYMMETRY_EXAMPLES / "Cu2O.xye"), "--json", "--no-index"]) == 0
    cu_cubic_probability = strict_json(capsys.readouterr().out)["crystal_system"]["probability"]
    assert main(["classify", *files[:1], str(SYMMETRY_EXAMPLES / "Cu2O.xye"), "--no-index"]) == 0
    headers = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert [line.split(": ")[1].split(" (")[0] for line in headers] == ["hexagonal", "cubic"]
    assert headers[0].startswith(files[0]) and headers[1].endswith(f"cubic ({cu_cubic_probability:.2f})")


@pytest.mark.parametrize(
    ("content", "options", "message"),
    [
        (None, [], "cannot read pattern file"),
        (b"\x00\x01\x02binary", [], "binary file"),
        (b"", [], "empty"),
        ("".join(f"{120 + 0.1 * i} {i}\n" for i in range(100)).encode(), ["--wavelength", "CuKa1"], "covers"),
        ("".join(f"{5 + 0.1 * i} 0\n" for i in range(500)).encode(), ["--wavelength", "1.54"], "no positive intensity"),
        ("".join(f"{5 + 0.1 * i} {i}\n" for i in range(500)).encode(), [], "states no wavelength; pass --wavelength"),
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
