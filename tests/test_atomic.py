"""gasolve.io.atomic: content replaced whole, nothing left beside the file, the old file kept when a writer fails."""

from __future__ import annotations

import os
import pickle
import stat

import numpy as np
import pytest

from gasolve.io.atomic import atomic_write, atomic_writer


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_write_replaces_the_content_and_leaves_nothing_beside_it(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old content that is longer than the new one\n")
    atomic_write(path, "né\n")
    assert path.read_bytes() == "né\n".encode()  # UTF-8, newline kept, no trace of the old, longer content
    atomic_write(path, b"\x00\x01\xff")
    assert path.read_bytes() == b"\x00\x01\xff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_new_file_gets_the_usual_mode(tmp_path):
    path = tmp_path / "new.txt"
    atomic_write(path, "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()


def test_atomic_writer_serves_writers_that_need_a_file_object(tmp_path):
    path = tmp_path / "shard.npz"
    with atomic_writer(path) as stream:
        np.savez(stream, x=np.arange(5))
    with np.load(path) as data:
        np.testing.assert_array_equal(data["x"], np.arange(5))
    with atomic_writer(tmp_path / "state.pkl") as stream:
        pickle.dump({"generation": 7}, stream)
    assert pickle.loads((tmp_path / "state.pkl").read_bytes()) == {"generation": 7}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard.npz", "state.pkl"]


def test_a_failing_writer_keeps_the_original_and_removes_the_temporary(tmp_path):
    path = tmp_path / "checkpoint.pkl"
    path.write_bytes(b"previous checkpoint")
    with pytest.raises(RuntimeError, match="killed"), atomic_writer(path) as stream:
        stream.write(b"half of the new one")
        raise RuntimeError("killed while writing")
    assert path.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pkl"]


def test_a_failing_writer_creates_nothing_when_there_was_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_writer(tmp_path / "new.npz") as stream:
        stream.write(b"partial")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_refused_without_leaving_files(tmp_path):
    with pytest.raises(TypeError, match="bytes or str"):
        atomic_write(tmp_path / "x.json", {"not": "text"})
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing-folder" / "x.json", "text")
    assert list(tmp_path.iterdir()) == []


def test_the_old_writers_now_go_through_atomic_write(tmp_path):
    """The run summary, CIF and checkpoint writers leave no temporary file and are read back (CIF with gemmi)."""
    import json

    import gemmi

    from gasolve.crystal import SpaceGroup, Structure, UnitCell, write_cif
    from gasolve.crystal.structure import Site
    from gasolve.io.checkpoint import read_checkpoint, write_checkpoint
    from gasolve.io.run_outputs import write_json

    write_json(tmp_path / "summary.json", {"rwp": 0.125})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"rwp": 0.125}
    cell = UnitCell(4.1, 4.1, 4.1, 90, 90, 90)
    write_cif(
        Structure(cell, SpaceGroup.from_symbol("Pm-3m"), (Site("Na1", "Na", (0.5, 0.5, 0.5)),)), tmp_path / "a.cif"
    )
    small = gemmi.read_small_structure(str(tmp_path / "a.cif"))
    assert small.cell.a == pytest.approx(4.1) and small.sites[0].fract.x == pytest.approx(0.5)
    write_checkpoint(tmp_path / "checkpoint.pkl", {"generation": 3})
    assert read_checkpoint(tmp_path / "checkpoint.pkl")["generation"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.cif", "checkpoint.pkl", "summary.json"]


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_figures_are_written_atomically_in_the_format_of_their_suffix(tmp_path, suffix, magic):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gasolve.plotting import _save

    fig, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    _save(fig, tmp_path / f"fit{suffix}")
    assert (tmp_path / f"fit{suffix}").read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [f"fit{suffix}"]
    assert not plt.fignum_exists(fig.number)
