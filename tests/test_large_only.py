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


def test_ga_settings_reach_the_settings_and_every_cases_config(monkeypatch, tmp_path):
    """--ga KEY=VALUE is stored with the results and written as a [ga] table into each case's config."""
    import tomllib

    monkeypatch.setattr(large, "sample_large", lambda n, seed: _entries())
    seen = {}

    def record(entries, **kwargs):
        seen["settings"] = kwargs["settings"]
        raise RuntimeError("stop here")

    monkeypatch.setattr(large, "run_benchmark", record)
    with pytest.raises(RuntimeError, match="stop here"):
        large.main(
            ["--ga", "bond_valence_weight=0.02", "--ga", "bond_valence_local=true", "--json", str(tmp_path / "r.json")]
        )
    assert seen["settings"]["ga"] == {"bond_valence_weight": 0.02, "bond_valence_local": True}

    def case(entry, mode, folder, seed):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.toml").write_text('[structure]\nname = "x"\n')
        return folder / "config.toml"

    monkeypatch.setattr(large.broad, "prepare_case", case)
    monkeypatch.setattr(large, "score_command", lambda folder: ["false"])  # no truth score: recorded, not raised
    found = large.prepare_structure(
        {"material_id": "mp-1"}, "sites", str(tmp_path), 0, "solved", {"bond_valence_weight": 0.02}
    )
    config = tomllib.loads((tmp_path / "mp-1" / "config.toml").read_text())
    assert config["ga"] == {"bond_valence_weight": 0.02} and config["reference"]["cif"] == "reference.cif"
    assert found["truth_error"] is not None
