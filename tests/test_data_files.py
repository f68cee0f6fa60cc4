"""tests/data: every shipped file is named in its README, small, and byte-identical to its ../shared/data original."""

from __future__ import annotations

import filecmp

import pytest
from conftest import IN_EXAMPLES, SHARED, SHIPPED, data_path

SHIPPED_FILES = sorted(p for p in SHIPPED.rglob("*") if p.is_file() and p.name != "README.md")


def test_every_shipped_file_is_named_in_the_readme_and_the_folder_stays_small():
    readme = (SHIPPED / "README.md").read_text(encoding="utf-8")
    assert len(SHIPPED_FILES) >= 19
    for path in SHIPPED_FILES:
        assert path.name in readme, f"{path.relative_to(SHIPPED)} has no line in tests/data/README.md"
    assert sum(p.stat().st_size for p in SHIPPED_FILES) < 400_000


def test_shipped_copies_are_identical_to_the_shared_originals():
    """One test (one skip in a plain clone) over every copied file and every copy in examples/."""
    if not SHARED.is_dir():
        pytest.skip(f"no ../shared/data to compare with ({SHARED})")
    compared = 0
    for relative in [str(p.relative_to(SHIPPED)) for p in SHIPPED_FILES] + sorted(IN_EXAMPLES):
        original = SHARED / relative
        if not original.is_file():  # made for the tests (derived/, reference predictions): nothing to compare
            continue
        assert filecmp.cmp(data_path(relative), original, shallow=False), relative
        assert data_path(relative) != original, relative  # the shipped copy is found first
        compared += 1
    assert compared >= 22


def test_a_file_found_nowhere_skips_with_a_reason():
    with pytest.raises(pytest.skip.Exception, match=r"neither in tests/data nor in \.\./shared/data"):
        data_path("no-such-folder/no-such-file.cif")
