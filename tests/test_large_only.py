"""benchmarks.large --only: a rerun of chosen structures of the sample."""

from __future__ import annotations

import pytest

from benchmarks import large


def _entries():
    return [{"material_id": "mp-1", "half": "tune"}, {"material_id": "mp-2", "half": "report"}]


def test_only_is_parsed_into_material_ids():
    assert large.parse_args(["--only", "mp-1, mp-2,"]).only == ["mp-1", "mp-2"]
    assert large.parse_args([]).only is None


def test_an_id_outside_the_half_exits_2_before_any_run(monkeypatch, capsys):
    monkeypatch.setattr(large, "sample_large", lambda n, seed: _entries())

    def refuse(*args, **kwargs):
        raise AssertionError("no run may start")

    monkeypatch.setattr(large, "run_benchmark", refuse)
    assert large.main(["--half", "tune", "--only", "mp-2"]) == 2
    assert "mp-2 not in the sample's tune half" in capsys.readouterr().err


def test_only_keeps_the_chosen_entries(monkeypatch, tmp_path):
    monkeypatch.setattr(large, "sample_large", lambda n, seed: _entries())
    seen = {}

    def record(entries, **kwargs):
        seen["ids"] = [entry["material_id"] for entry in entries]
        seen["settings"] = kwargs["settings"]
        raise RuntimeError("stop here")

    monkeypatch.setattr(large, "run_benchmark", record)
    with pytest.raises(RuntimeError, match="stop here"):
        large.main(["--only", "mp-2", "--json", str(tmp_path / "x.json")])
    assert seen["ids"] == ["mp-2"] and seen["settings"]["only"] == ["mp-2"]
