"""Reading a TOML file with errors that name it (for the training configs of the network packages)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from gasolve.errors import InputError


def read_toml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The parsed document of ``path``.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for messages ("training config").

    Raises
    ------
    InputError
        Unreadable file or invalid TOML (with the parser's line and column), naming the file.
    """
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read {what}: {error.strerror}", str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"invalid TOML: {error}", str(path)) from None
