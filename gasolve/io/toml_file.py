"""TOML files: the one reader (:mod:`tomllib`) and the one writer (:mod:`tomli_w`) of every config gasolve reads
or writes (run configs, the resolved ``config.toml`` of a run, ``lebail.toml``, the training configs of nnselect
and symnet).

``parse_toml(text, source)`` is pure; ``read_toml(path)`` only opens the file. ``toml_text(document)`` gives
the text of nested dicts (sub-dicts become ``[table.sub]`` tables) that :func:`parse_toml` reads back to the same
values; ``write_toml`` writes it atomically.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tomli_w

from gasolve.errors import InputError
from gasolve.io.atomic import atomic_write


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """The document of TOML ``text``.

    Parameters
    ----------
    text : str
    source : str
        Where the text came from, for messages (a file name).

    Raises
    ------
    InputError
        Invalid TOML, with the parser's line and column, naming ``source``.
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"invalid TOML: {error}", source) from None


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The parsed document of ``path``.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for messages ("training config").

    Raises
    ------
    InputError
        Unreadable file, text that is not UTF-8 or invalid TOML (with the parser's line and column), naming the
        file.
    """
    path = Path(path)
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {what}: {error.strerror}", source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text (bad byte at offset {error.start})", source) from None
    return parse_toml(text, source)


def _plain(value: Any) -> Any:
    """``value`` with paths as text and tuples as lists, so that tomli_w can write it."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def toml_text(document: Mapping[str, Any], comments: Sequence[str] = ()) -> str:
    """TOML text of nested tables (``{"pattern": {"profile": {...}}}``), each comment line first with ``#``.

    Parameters
    ----------
    document : mapping
        Tables of values: text, numbers (``repr`` precision, so that floats read back exactly; ``inf`` and
        ``nan`` allowed), booleans, paths (written as text), lists and tuples.
    comments : sequence of str
        Lines written first, each after ``# `` (unprintable characters replaced by ``?``, a comment holds one
        line).

    Returns
    -------
    str
    """
    lines = ["# " + "".join(ch if ch.isprintable() else "?" for ch in line) for line in comments]
    body = tomli_w.dumps(_plain(document))
    return "\n".join(lines) + ("\n\n" if lines else "") + body


def write_toml(path: str | Path, document: Mapping[str, Any], comments: Sequence[str] = ()) -> None:
    """Write :func:`toml_text` to ``path`` atomically (:func:`gasolve.io.atomic.atomic_write`).

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.
    document, comments
        As :func:`toml_text`.
    """
    atomic_write(path, toml_text(document, comments))
