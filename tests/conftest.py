"""Shared fixtures: real data files (shipped in tests/data, else in ../shared/data), skipping only when absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

#: Real structures and measured patterns shared by the project (see ../shared/data/README.md).
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: The small files of SHARED that the tests read, shipped with the repository in the same layout (see its README).
SHIPPED = Path(__file__).resolve().parent / "data"
_EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Files of SHARED whose byte-identical copy ships in examples/ (so tests/data does not hold them twice).
IN_EXAMPLES = {
    "structures/K4SnO4.cif": _EXAMPLES / "K4SnO4.cif",
    "measured/PbSO4-lab-CuKa/PBSO4.XRA": _EXAMPLES / "PbSO4.xra",
    "measured/PbSO4-lab-CuKa/PbSO4-Wyckoff.cif": _EXAMPLES / "PbSO4.cif",
}

# The slow references in tests/naive.py are imported as ``naive`` whatever pytest's import mode.
_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


def data_path(relative: str) -> Path:
    """Path of a data file named by its place under ../shared/data, or skip the calling test when it is nowhere.

    Looks in tests/data, then examples/ (files shipped there byte-identical), then ../shared/data.
    """
    for path in (SHIPPED / relative, IN_EXAMPLES.get(relative), SHARED / relative):
        if path is not None and path.is_file():
            return path
    pytest.skip(f"{relative} is neither in tests/data nor in ../shared/data ({SHARED}); it is too large to ship")


#: The name the tests used before tests/data existed.
shared_path = data_path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder, for the large sets not shipped in tests/data; skipped when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"large data set kept in ../shared/data, which this checkout lacks (no folder {SHARED})")
    return SHARED
