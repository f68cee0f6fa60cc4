"""The GA's hook for a per-atom ranker: which atoms the relocation scan moves, and the [atom_selection] table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gasolve.errors import InputError
from gasolve.ga import relocation
from gasolve.ga.atom_selection import AtomSelectionSettings, scan_sites
from gasolve.ga.settings import GASettings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_scan_sites_take_the_lowest_probabilities_first():
    probability = np.array([0.9, 0.1, 0.5, 0.05, 0.7, 0.2])
    movable = np.array([1, 2, 3, 4, 5])  # site 0 pinned
    np.testing.assert_array_equal(scan_sites(probability, movable, 0.4), [3, 1])
    np.testing.assert_array_equal(scan_sites(probability, movable, 1.0), [3, 1, 5, 2, 4])
    np.testing.assert_array_equal(scan_sites(probability, movable, 0.01), [3])  # at least one
    assert len(scan_sites(probability, np.array([], int), 0.5)) == 0
    with pytest.raises(ValueError, match="one probability per site"):
        scan_sites(probability[:3], movable, 0.5)


@pytest.mark.parametrize("share", [0.0, 1.5, float("nan")])
def test_scan_share_is_validated(share):
    with pytest.raises(InputError, match="scan_share"):
        AtomSelectionSettings(Path("x"), scan_share=share)


def _evaluator(ranker=None, share=1.0):
    from gasolve.config import load_observed, load_run_config
    from gasolve.scoring.build import build_scorer
    from gasolve.solve import build_evaluator

    config = load_run_config(EXAMPLES / "K4SnO4.toml")
    pattern = config.pattern
    scorer = build_scorer(
        config.structure, load_observed(config), pattern.radiation, pattern.profile, pattern.background_terms
    )
    settings = GASettings.from_flat(scan_spacing=0.6, scan_top=1, local_steps=5, scan_fourier=False)  # grid scan alone
    return build_evaluator(scorer, settings, atom_ranker=ranker, scan_share=share)


def test_the_ranker_is_called_with_the_model_and_chooses_the_atoms_the_scan_moves(monkeypatch):
    calls = []

    def ranker(frac):
        calls.append(np.array(frac))
        return np.array([0.9, 0.8, 0.1, 0.7, 0.6, 0.5, 0.05, 0.95, 0.4])

    moved = []
    original = relocation.best_relocations

    def spy(rwp_of, genome, sites, grid, top, project=None):
        moved.append(np.array(sites))
        return original(rwp_of, genome, sites, grid, top, project)

    monkeypatch.setattr(relocation, "best_relocations", spy)
    genome = np.random.default_rng(0).random(27)
    plain = _evaluator().relocation_scan(genome, np.random.default_rng(1))
    ranked = _evaluator(ranker, share=0.25).relocation_scan(genome, np.random.default_rng(1))
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0], genome.reshape(9, 3))
    np.testing.assert_array_equal(moved[0], np.arange(9))  # P-1: every atom movable
    np.testing.assert_array_equal(moved[1], [6, 2, 8])  # ceil(0.25 * 9) = 3, lowest first
    assert len(ranked.rwp) == 3 and len(plain.rwp) == 9
    assert ranked.evaluations < plain.evaluations / 2  # the grid is scanned for 3 atoms, not 9
    assert ranked.nn_seconds > 0.0


def test_selection_table_reaches_the_search_through_the_factory(tmp_path):
    import tomllib

    from gasolve import pipeline
    from gasolve.config import load_run_config, parse_run_config, resolved_toml

    weights = tmp_path / "w.msgpack"
    weights.write_bytes(b"x")
    text = (EXAMPLES / "K4SnO4.toml").read_text()
    config_path = tmp_path / "run.toml"
    base = EXAMPLES.as_posix()
    text = text.replace('file = "', f'file = "{base}/').replace('cif = "', f'cif = "{base}/')
    config_path.write_text(text + f'\n[atom_selection]\nmodel = "{weights.name}"\nscan_share = 0.5\n')
    config = load_run_config(config_path)
    assert config.selection == AtomSelectionSettings(weights, scan_share=0.5)
    seen = []

    def factory(cfg, problem):
        seen.append(problem.n_sites)
        return lambda frac: np.zeros(len(frac))

    setup = pipeline.prepare(config, ranker_factory=factory)
    assert seen == [9] and setup.ranker is not None
    with pytest.raises(ValueError, match="ranker_factory"):
        pipeline.prepare(config)
    again = parse_run_config(tomllib.loads(resolved_toml(config)), str(config_path))
    assert again.selection == config.selection
    bad = tomllib.loads(config_path.read_text())
    bad["atom_selection"]["scans"] = 3
    with pytest.raises(InputError, match="scans"):
        parse_run_config(bad, str(config_path))
