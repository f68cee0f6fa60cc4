"""Shared fixtures: real data files (shipped in tests/data, else in ../shared/data), skipping only when absent."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
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


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON (a non-finite number was written)")


def strict_json(source: str | Path) -> Any:
    """Parse JSON text (or the file at a path) as a strict reader would: NaN and ±Infinity raise ValueError."""
    text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
    return json.loads(text, parse_constant=_reject_constant)


def read_image(path: Path, min_size: tuple[int, int] = (400, 300)) -> np.ndarray:
    """Pixels of a PNG read back with matplotlib, after checking its size and that it is not blank.

    Parameters
    ----------
    path : Path
        PNG file.
    min_size : tuple of int
        Least (width, height) in pixels.

    Returns
    -------
    ndarray, shape (height, width, channels)
        RGB(A) values in [0, 1].
    """
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4), f"{path}: not an RGB(A) image, shape {pixels.shape}"
    height, width = pixels.shape[:2]
    assert width >= min_size[0] and height >= min_size[1], f"{path}: {width} x {height} pixels"
    grey = pixels[..., :3].mean(axis=2)
    assert grey.std() > 0.02, f"{path} is blank (pixel standard deviation {grey.std():.4f})"
    assert (grey < 0.5).mean() > 0.002, f"{path} has almost nothing drawn on it"
    return pixels


def cif_esd(text: str) -> tuple[float, float]:
    """Value and esd of a CIF number such as 0.18820(12) (esd 0 when it has none)."""
    if "(" not in text:
        return float(text), 0.0
    value, digits = text.rstrip(")").split("(")
    decimals = len(value.split(".")[1]) if "." in value else 0
    return float(value), int(digits) * 10.0**-decimals


@pytest.fixture(scope="module")
def pbso4_on_wyckoff(tmp_path_factory):
    """PbSO4 (Pnma, examples/PbSO4.cif) prepared for a run on a pattern pymatgen simulates, its sites on their
    Wyckoff positions (Pb, S, O1, O2 on 4c, O3 on 8d: a mapped scorer); (Setup, the published Structure)."""
    from simulated import simulated_config

    from gasolve import pipeline
    from gasolve.config import load_run_config
    from gasolve.crystal import read_cif

    truth = read_cif(_EXAMPLES / "PbSO4.cif")
    elements = [site.element for site in truth.sites]
    configs = simulated_config(
        tmp_path_factory.mktemp("pbso4"),
        "PbSO4",
        "Pnma",
        (truth.cell.a, truth.cell.b, truth.cell.c, 90.0, 90.0, 90.0),
        [(e, tuple(x)) for e, x in zip(elements, truth.frac, strict=True)],
        {"run": f'sites = {elements}\nwyckoff = ["4c", "4c", "4c", "4c", "8d"]'},
    )
    return pipeline.prepare(load_run_config(configs["run"])), truth
