"""benchmarks/kbeta.py: one simulated pattern with and without Kβ, both rules judged against the sticks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import kbeta  # noqa: E402

QUARTZ = REPO / "tests/data/cif/pyxtal-database/lt_quartz.cif"


@pytest.fixture(scope="module")
def quartz_entry():
    from pymatgen.core import Structure

    structure = Structure.from_file(QUARTZ)
    return {
        "material_id": "quartz-test",
        "formula": "SiO2",
        "half": "tune",
        "crystal_system": "trigonal",
        "reference_cif": structure.to(fmt="cif"),
    }


def test_no_kbeta_means_no_kbeta_lines_and_no_new_flags(quartz_entry):
    row = kbeta.run_simulated(quartz_entry, seed=0, ratio=0.0)
    assert row["kbeta_lines"] == 0 and row["old"]["true"] == row["new"]["true"] == 0
    assert row["new"]["false"] == 0


def test_unfiltered_kbeta_lines_are_labelled_and_flagged(quartz_entry):
    row = kbeta.run_simulated(quartz_entry, seed=0, ratio=0.2)
    assert row["kbeta_lines"] >= 5
    # The new rule flags most of them and nothing else; its ratio estimate is the Kβ share, lifted by the
    # Lorentz-polarisation factor.
    assert row["new"]["true"] >= 0.7 * row["kbeta_lines"] and row["new"]["false"] == 0
    assert 0.2 < row["ratio_estimate"][0] < 0.35
