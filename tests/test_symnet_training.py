"""symnet training: a few steps lower the loss, both networks have both heads, checkpoints round-trip, and
`gasolve train-symmetry` builds data, trains and writes a calibrated checkpoint."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from conftest import strict_json
from symnet_fixtures import PROTOTYPES

import symnet
from gasolve.crystal import format_cif
from gasolve.errors import InputError
from symnet.grid import PatternGrid, pool_mean
from symnet.peaks import peak_list

# --- training -------------------------------------------------------------------------------------------------

TINY_MODEL = {"stem_features": 8, "stage_features": [8, 16], "head_features": 4, "hidden": 32, "dropout": 0.0}


def _tiny_batch(n: int = 16):
    from symnet.augment import NORMALISATION, make_pattern
    from symnet.configs import AugmentConfig
    from symnet.labels import crystal_system_index

    grid = PatternGrid(pool=8)
    rng = np.random.default_rng(0)
    config = AugmentConfig()
    structures = (PROTOTYPES * 2)[:n]
    x = np.stack(
        [pool_mean(make_pattern(peak_list(s, grid.d_min(3)), grid, rng, config), 8) / NORMALISATION for s in structures]
    ).astype(np.float32)
    group = np.array([s.space_group.number for s in structures])
    return grid, x, crystal_system_index(group), group - 1


def test_one_epoch_on_a_tiny_set_lowers_the_loss():
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from symnet.models import create_model, train_mode
    from symnet.train import train_step

    grid, x, system, group = _tiny_batch()
    model = create_model("ResidualCNN", grid.n_inputs, TINY_MODEL, key=0)
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
    trainable = train_mode(model)
    args = (jnp.asarray(x)[..., None], jnp.asarray(system), jnp.asarray(group))
    losses = [float(train_step(trainable, optimizer, *args, 0.1, 1.0)) for _ in range(12)]
    assert losses[-1] < 0.8 * losses[0]


def test_paper_cnn_gives_both_heads():
    import jax.numpy as jnp

    from symnet.models import create_model, eval_mode

    options = {"features": [4, 4, 4], "pools": [2, 2, 2], "hidden": [8, 8]}
    model = eval_mode(create_model("PaperCNN", 200, options, key=0))
    out = model(jnp.zeros((2, 200, 1)))
    assert out["system"].shape == (2, 7) and out["space_group"].shape == (2, 230)


def test_checkpoint_round_trip(tmp_path):
    from symnet import checkpoint
    from symnet.models import create_model, eval_mode
    from symnet.train import predict_logits

    grid, x, *_ = _tiny_batch(4)
    model = create_model("ResidualCNN", grid.n_inputs, TINY_MODEL, key=3)
    meta = checkpoint.CheckpointMeta("ResidualCNN", TINY_MODEL, grid.to_dict(), 1.5, 2.0, 0.4, info={"note": "t"})
    checkpoint.save(tmp_path / "net.msgpack", model, meta)
    loaded, meta_back = checkpoint.load(tmp_path / "net.msgpack")
    assert meta_back == meta
    for a, b in zip(predict_logits(eval_mode(model), x, 4), predict_logits(loaded, x, 4), strict=True):
        np.testing.assert_array_equal(a, b)
    (tmp_path / "junk.msgpack").write_bytes(b"\x00\x01junk")
    with pytest.raises(InputError, match="not a symnet checkpoint"):
        checkpoint.load(tmp_path / "junk.msgpack")


def _fake_mp_folder(directory):
    """A stand-in for shared/data/mp-structures: index.csv and structures.csv.gz of the prototypes."""
    directory.mkdir()
    with open(directory / "index.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["index", "material_id", "reduced_formula", "n_sites", "space_group_number_spglib_0.1"])
        for i, s in enumerate(PROTOTYPES * 3):
            writer.writerow([i, f"mp-{i}", f"{s.name}{i % 3}", s.n_sites, s.space_group.number])
    with gzip.open(directory / "structures.csv.gz", "wt", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["index", "material_id", "cif"])
        for i, s in enumerate(PROTOTYPES * 3):
            writer.writerow([i, f"mp-{i}", format_cif(s)])


def test_train_symmetry_command_builds_data_trains_and_writes_a_checkpoint(tmp_path):
    from gasolve.cli.main import main
    from symnet import checkpoint

    _fake_mp_folder(tmp_path / "mp")
    preset = (Path(symnet.__path__[0]) / "presets" / "tiny.toml").read_text()
    config = tmp_path / "tiny.toml"
    config.write_text(preset.replace('directory = "data"', 'directory = "data"\nmp_dir = "mp"'))
    assert main(["train-symmetry", str(config), "--workers", "1", "--quiet"]) == 0
    summary = strict_json(tmp_path / "train" / "summary.json")
    assert summary["train_structures"] > 0 and summary["splits"]["test"] > 0
    _, meta = checkpoint.load(tmp_path / "train" / "checkpoint.msgpack")
    assert meta.model == "ResidualCNN" and meta.temperature_space_group > 0
    rows = list(csv.DictReader(open(tmp_path / "data" / "catalogue.csv")))
    assert len(rows) == 24 and {int(r["space_group"]) for r in rows} == {s.space_group.number for s in PROTOTYPES}


def test_train_symmetry_continues_from_a_checkpoint_of_the_same_model_only(tmp_path, capsys):
    from gasolve.cli.main import main

    _fake_mp_folder(tmp_path / "mp")
    preset = (Path(symnet.__path__[0]) / "presets" / "tiny.toml").read_text()
    preset = preset.replace('directory = "data"', 'directory = "data"\nmp_dir = "mp"')
    (tmp_path / "first.toml").write_text(preset)
    assert main(["train-symmetry", str(tmp_path / "first.toml"), "--workers", "1", "--quiet"]) == 0
    capsys.readouterr()
    continued = preset.replace('workdir = "train"', 'workdir = "again"\ninit_checkpoint = "train/checkpoint.msgpack"')
    (tmp_path / "again.toml").write_text(continued)
    assert main(["train-symmetry", str(tmp_path / "again.toml"), "--workers", "1", "--quiet"]) == 0
    # both checkpoints load and classify; the continued one starts from the first and trains on, so it differs
    from symnet.augment import NORMALISATION, make_pattern
    from symnet.classify import Classifier
    from symnet.configs import AugmentConfig

    first = Classifier(tmp_path / "train" / "checkpoint.msgpack")
    again = Classifier(tmp_path / "again" / "checkpoint.msgpack")
    assert again.meta.model_options == first.meta.model_options and again.grid == first.grid
    grid, rng = first.grid, np.random.default_rng(0)
    patterns = [make_pattern(peak_list(s, grid.d_min(3)), grid, rng, AugmentConfig()) for s in PROTOTYPES]
    x = np.stack([pool_mean(y, grid.pool) / NORMALISATION for y in patterns]).astype(np.float32)
    answers = [classifier.classify_inputs(x) for classifier in (first, again)]
    for results in answers:
        for result in results:
            assert result.system_probabilities.sum() == pytest.approx(1.0, abs=1e-5)
            assert result.space_group_probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    p_first = np.stack([r.space_group_probabilities for r in answers[0]])
    p_again = np.stack([r.space_group_probabilities for r in answers[1]])
    assert np.abs(p_first - p_again).max() > 1e-6
    (tmp_path / "other.toml").write_text(continued.replace("hidden = 32", "hidden = 16"))
    assert main(["train-symmetry", str(tmp_path / "other.toml"), "--workers", "1", "--quiet"]) == 2
    assert "another model or grid" in capsys.readouterr().err
