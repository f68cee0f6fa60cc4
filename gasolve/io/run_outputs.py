"""Files of a run directory: summary.json, history.csv, best.cif, plots. Writes are atomic (temp + rename)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from gasolve.io.atomic import atomic_write


def strict_json_value(value: Any) -> Any:
    """``value`` with NumPy arrays and scalars turned into Python ones and NaN or ±infinity into None (JSON null),
    so that strict readers (RFC 8259 has no NaN) accept the file; a value undefined in the run reads as null."""
    if isinstance(value, dict):
        return {str(key): strict_json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [strict_json_value(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` as strict JSON (see :func:`strict_json_value`)."""
    atomic_write(path, json.dumps(strict_json_value(data), indent=2, allow_nan=False, default=float) + "\n")


def site_records(structure, esd: np.ndarray, wyckoff=None, origin_held: np.ndarray | None = None) -> list[dict]:
    """The refined model as summary.json carries it: one entry per independent site.

    Parameters
    ----------
    structure : Structure
        The model written to best.cif.
    esd : ndarray, shape (n_sites, 3)
        Coordinate esds (fractional); NaN where not determined (written as null).
    wyckoff : sequence of str, optional
        Wyckoff label per site ("" or None where unknown).
    origin_held : ndarray, shape (n_sites, 3), bool, optional
        Coordinates that hold the origin of a polar group.

    Returns
    -------
    list of dict
        ``label``, ``element``, ``wyckoff``, ``x``, ``y``, ``z``, ``esd`` ([x, y, z], null where undetermined)
        and ``origin_fixed`` (the axes, of "x", "y", "z", held to fix the origin).
    """
    records = []
    for i, site in enumerate(structure.sites):
        label = None if wyckoff is None else (str(wyckoff[i]) or None)
        held = [] if origin_held is None else [axis for axis, h in zip("xyz", origin_held[i], strict=True) if h]
        x, y, z = (float(v) for v in site.frac)
        records.append(
            {
                "label": site.label,
                "element": site.element,
                "wyckoff": label,
                "x": x,
                "y": y,
                "z": z,
                "esd": [float(e) if math.isfinite(e) else None for e in esd[i]],
                "origin_fixed": held,
            }
        )
    return records


def write_history(path: str | Path, rows: list[dict] | tuple[dict, ...]) -> None:
    """One CSV row per generation; the columns of the first row."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[-1].keys()), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    atomic_write(path, buffer.getvalue())
