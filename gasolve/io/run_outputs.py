"""Files of a run directory: summary.json, history.csv, best.cif, plots. Writes are atomic (temp + rename)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path


def _atomic_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def write_json(path: str | Path, data: dict) -> None:
    _atomic_text(Path(path), json.dumps(data, indent=2, default=float) + "\n")


def write_history(path: str | Path, rows: list[dict] | tuple[dict, ...]) -> None:
    """One CSV row per generation; the columns of the first row."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[-1].keys()), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    _atomic_text(Path(path), buffer.getvalue())
