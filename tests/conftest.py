"""Shared fixtures: the read-only data folder next to the checkout, and skipping when it is absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

#: Real structures and measured patterns shared by the project (see ../shared/data/README.md).
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The slow references in tests/naive.py are imported as ``naive`` whatever pytest's import mode.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


def shared_path(relative: str) -> Path:
    """Path of a file under ../shared/data, or skip the calling test when it is not there."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"../shared/data not present: {path} is missing")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder; tests that use it are skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared/data not present: no folder {SHARED}")
    return SHARED
