"""benchmarks/peratom_ga.py: the ``--case`` problems, the per-problem summary and the failure of one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import peratom_ga

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(problem: str, method: str, seed: int, solved: bool, evaluations: float) -> dict:
    return {
        "problem": problem,
        "method": method,
        "seed": seed,
        "solved": solved,
        "evaluations": evaluations,
        "evaluations_to_solution": evaluations if solved else None,
        "seconds": 10.0,
        "seconds_to_solution": 10.0 if solved else None,
        "scans": 2,
        "ranker_seconds": 1.0,
    }


def test_summary_is_per_problem_when_there_are_several():
    runs = [
        _run("A", "all", 1, False, 2e6),
        _run("A", "all", 2, True, 1e6),
        _run("A", "oracle", 1, True, 5e5),
        _run("B", "lightest", 1, True, 3e5),
    ]
    summary = peratom_ga.summarise(runs)
    assert set(summary) == {"A", "B"}
    assert summary["A"]["all"]["solved"] == 1
    assert summary["A"]["all"]["ert"] == pytest.approx(3e6)  # all evaluations over the one success
    assert summary["A"]["oracle"]["evaluations_to_solution"]["median"] == pytest.approx(5e5)
    assert set(summary["B"]) == {"lightest"}
    # One problem: the methods at the top level, as the K4SnO4 measurement has always written them.
    assert set(peratom_ga.summarise(runs[:3])) == {"all", "oracle"}


def test_a_case_without_reference_is_refused(tmp_path):
    text = (EXAMPLES / "K4SnO4.toml").read_text()
    assert "[reference]" in text
    config = tmp_path / "case" / "config.toml"
    config.parent.mkdir()
    kept = text.split("[reference]")[0]
    config.write_text(kept.replace('file = "K4SnO4.xye"', f'file = "{(EXAMPLES / "K4SnO4.xye").as_posix()}"'))
    with pytest.raises(ValueError, match=r"no \[reference\]"):
        peratom_ga.case_problem(str(config))


def test_failed_run_is_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    """A run that raises is kept with its error; the JSON is written after every run."""

    def fake_run_one(method, seed, share, budget, max_seconds, model, case=None):
        if seed == 2:
            raise RuntimeError("boom")
        return _run("A", method, seed, True, 1e5)

    monkeypatch.setattr(peratom_ga, "run_one", fake_run_one)
    out = tmp_path / "ga.json"
    status = peratom_ga.main(
        ["ga", "--seeds", "1", "2", "--methods", "all", "--workers", "1", "--json", str(out), "--case", "x.toml"]
    )
    assert status == 0
    result = json.loads(out.read_text())
    errors = [r for r in result["runs"] if "error" in r]
    assert len(result["runs"]) == 2 and len(errors) == 1 and "boom" in errors[0]["error"]
    assert result["summary"]["all"]["solved"] == 1


def test_unknown_method_is_an_error(capsys):
    with pytest.raises(SystemExit) as stop:
        peratom_ga.main(["ga", "--methods", "all,best"])
    assert stop.value.code == 2
    assert "best" in capsys.readouterr().err
