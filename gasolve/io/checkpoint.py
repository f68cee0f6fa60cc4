"""Atomic checkpoints of a run: a pickle written to a temporary file, flushed to disk, then renamed.

A run killed at any moment (Ctrl-C or SIGKILL) leaves either the previous checkpoint or the new one, never a
partial file. The checkpoint carries a fingerprint of the settings that must not change on resume.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from gasolve.errors import InputError
from gasolve.io.atomic import atomic_writer

FORMAT = 2  # 2: GAState gained stagnant and scans


def write_checkpoint(path: str | Path, payload: dict) -> None:
    """Write ``payload`` (picklable) atomically to ``path``."""
    with atomic_writer(path) as stream:
        pickle.dump({"format": FORMAT, **payload}, stream, protocol=pickle.HIGHEST_PROTOCOL)


def read_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint written by :func:`write_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no checkpoint to resume from (run without --resume first)", str(path))
    try:
        with open(path, "rb") as handle:
            payload = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as error:
        raise InputError(f"cannot read checkpoint: {error}", str(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError("not a gasolve checkpoint of this version", str(path))
    return payload
