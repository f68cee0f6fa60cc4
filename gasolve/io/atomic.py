"""Atomic file writes: a reader, or a run killed at any moment, sees either the old file or the new one, never part.

The data go to a hidden temporary file in the destination's folder (so the final rename stays on one file system),
are flushed and fsynced, and the temporary file is renamed over the destination with :func:`os.replace` (atomic
on POSIX and Windows). If writing fails the temporary file is removed and the destination is left as it was. The
new file gets the usual mode of a new file (0666 less the umask), as with :func:`open`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _open_temporary(path: Path) -> tuple[BinaryIO, Path]:
    """A new, exclusive temporary file beside ``path`` and its path."""
    for _ in range(100):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        return os.fdopen(handle, "wb"), temporary
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def atomic_writer(path: str | Path) -> Iterator[BinaryIO]:
    """A binary stream whose content replaces ``path`` atomically when the ``with`` block ends without error.

    For writers that need a file object (``np.savez``, ``pickle.dump``, matplotlib's ``savefig`` with
    ``format=``); plain bytes or text go through :func:`atomic_write`.

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.

    Yields
    ------
    BinaryIO
        Open for writing; closed, flushed and fsynced by the context manager.

    Examples
    --------
    >>> with atomic_writer("shard.npz") as stream:  # doctest: +SKIP
    ...     np.savez(stream, x=x)
    """
    path = Path(path)
    stream, temporary = _open_temporary(path)
    try:
        with stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes | str) -> None:
    """Replace ``path`` atomically by ``data`` (``str`` is written as UTF-8, newlines unchanged).

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.
    data : bytes or str
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"atomic_write takes bytes or str, got {type(data).__name__}")
    with atomic_writer(path) as stream:
        stream.write(data)
