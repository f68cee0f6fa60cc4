"""The training set on disk: peak lists of many structures in compact, resumable shards, built in parallel.

Layout of a data folder::

    catalogue.csv          one row per structure: record, source, identifier, formula, chemical_system,
                           space_group, n_peaks, shard
    shards/mp-00000.npz    offsets (n+1,) int64, d_spacing (n_peaks_total,) float32 Å,
                           intensity (n_peaks_total,) float16 (m |F|², max 1 per structure),
                           space_group (n,) int16, record (n,) int32
    failures.csv           structures that could not be computed, with the reason
    build.json             the settings of the build

A shard is written atomically by the worker that computes it, and a build skips the shards that exist, so an
interrupted build resumes. Peaks are computed by the gasolve engine (:func:`symnet.peaks.peak_list`) down to
the d-spacing of the grid's last angle plus a margin that covers zero shifts and Kα2.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from gasolve.io.atomic import atomic_writer
from symnet.peaks import PeakList
from symnet.sources import CatalogueEntry

_CATALOGUE_FIELDS = ("record", "source", "identifier", "formula", "chemical_system", "space_group", "n_peaks", "shard")


@dataclass(frozen=True)
class PeakSet:
    """Peak lists of many structures, concatenated.

    Attributes
    ----------
    offsets : ndarray, shape (n_structures + 1,), int64
        Peaks of structure i are ``offsets[i]:offsets[i + 1]``.
    d_spacing : ndarray, shape (n_peaks_total,), float32, Å
    intensity : ndarray, shape (n_peaks_total,), float16
    space_group : ndarray, shape (n_structures,), int64, 1-230
    record : ndarray, shape (n_structures,), int64
        Row of the catalogue.
    """

    offsets: np.ndarray
    d_spacing: np.ndarray
    intensity: np.ndarray
    space_group: np.ndarray
    record: np.ndarray

    def __len__(self) -> int:
        return len(self.space_group)

    def peaks(self, i: int) -> PeakList:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return PeakList(self.d_spacing[lo:hi].astype(np.float64), self.intensity[lo:hi].astype(np.float64))

    def subset(self, index: np.ndarray) -> PeakSet:
        """The structures ``index`` (any order), shape (n,)."""
        index = np.asarray(index, dtype=np.int64)
        lengths = self.offsets[index + 1] - self.offsets[index]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        take = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in index]) if len(index) else []
        take = np.asarray(take, dtype=np.int64)
        return PeakSet(offsets, self.d_spacing[take], self.intensity[take], self.space_group[index], self.record[index])

    @staticmethod
    def concatenate(parts: Sequence[PeakSet]) -> PeakSet:
        lengths = np.concatenate([np.diff(p.offsets) for p in parts])
        return PeakSet(
            np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            np.concatenate([p.d_spacing for p in parts]),
            np.concatenate([p.intensity for p in parts]),
            np.concatenate([p.space_group for p in parts]).astype(np.int64),
            np.concatenate([p.record for p in parts]).astype(np.int64),
        )


def pack(peak_lists: Sequence[PeakList], space_group: Sequence[int], record: Sequence[int]) -> PeakSet:
    """Concatenate peak lists into the compact shard form (float32 d, float16 intensity)."""
    lengths = np.array([len(p) for p in peak_lists], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    d = np.concatenate([p.d_spacing for p in peak_lists]) if peak_lists else np.zeros(0)
    intensity = np.concatenate([p.intensity for p in peak_lists]) if peak_lists else np.zeros(0)
    return PeakSet(
        offsets,
        d.astype(np.float32),
        intensity.astype(np.float16),
        np.asarray(space_group, dtype=np.int64),
        np.asarray(record, dtype=np.int64),
    )


def write_shard(path: Path, peaks: PeakSet) -> None:
    """Write one shard atomically."""
    with atomic_writer(path) as stream:
        np.savez(
            stream,
            offsets=peaks.offsets,
            d_spacing=peaks.d_spacing,
            intensity=peaks.intensity,
            space_group=peaks.space_group.astype(np.int16),
            record=peaks.record.astype(np.int32),
        )


def read_shard(path: Path) -> PeakSet:
    with np.load(path) as data:
        return PeakSet(
            data["offsets"].astype(np.int64),
            data["d_spacing"],
            data["intensity"],
            data["space_group"].astype(np.int64),
            data["record"].astype(np.int64),
        )


@dataclass(frozen=True)
class ShardTask:
    """One unit of parallel work: compute and write one shard.

    ``make`` is a picklable module-level function ``make(task) -> (PeakSet, rows, failures)``.
    """

    name: str
    path: str
    payload: tuple
    d_min: float


def run_tasks(
    tasks: Sequence[ShardTask],
    make: Callable,
    workers: int,
    description: str,
    progress: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Run the shard tasks whose shard does not exist yet; return (catalogue rows, failures) of the new ones.

    Rows of shards that already exist are read back from their ``.rows.json`` sidecar.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    rows: list[dict] = []
    failures: list[dict] = []
    todo = []
    for task in tasks:
        sidecar = Path(task.path).with_suffix(".rows.json")
        if Path(task.path).exists() and sidecar.exists():
            saved = json.loads(sidecar.read_text())
            rows += saved["rows"]
            failures += saved["failures"]
        else:
            todo.append(task)
    columns = (TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress) as bar:
        job = bar.add_task(description, total=len(tasks), completed=len(tasks) - len(todo))
        if workers <= 1:
            results = (make(task) for task in todo)
            for new_rows, new_failures in results:
                rows += new_rows
                failures += new_failures
                bar.advance(job)
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(make, task) for task in todo]
                for future in as_completed(futures):
                    new_rows, new_failures = future.result()
                    rows += new_rows
                    failures += new_failures
                    bar.advance(job)
    return rows, failures


def finish_task(task: ShardTask, peak_lists, entries: list[CatalogueEntry], records: list[int], failures) -> tuple:
    """Write a task's shard and its sidecar of catalogue rows; return (rows, failures)."""
    path = Path(task.path)
    peaks = pack(peak_lists, [e.space_group for e in entries], records)
    write_shard(path, peaks)
    rows = [
        {**asdict(entry), "record": record, "n_peaks": len(p), "shard": path.name}
        for entry, record, p in zip(entries, records, peak_lists, strict=True)
    ]
    sidecar = path.with_suffix(".rows.json")
    sidecar.write_text(json.dumps({"rows": rows, "failures": failures}))
    return rows, failures


def write_catalogue(directory: Path, rows: list[dict], failures: list[dict]) -> None:
    """``catalogue.csv`` (sorted by record) and ``failures.csv``."""
    rows = sorted(rows, key=lambda r: r["record"])
    with open(directory / "catalogue.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=_CATALOGUE_FIELDS)
        writer.writeheader()
        writer.writerows({k: row[k] for k in _CATALOGUE_FIELDS} for row in rows)
    with open(directory / "failures.csv", "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=("source", "identifier", "reason"))
        writer.writeheader()
        writer.writerows(failures)


def read_catalogue(directory: str | Path) -> list[dict]:
    """Rows of ``catalogue.csv`` with integer record, space_group and n_peaks."""
    with open(Path(directory) / "catalogue.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        for key in ("record", "space_group", "n_peaks"):
            row[key] = int(row[key])
    return rows


def load_peaks(directory: str | Path) -> PeakSet:
    """Every shard of a data folder, in catalogue-record order."""
    shards = sorted((Path(directory) / "shards").glob("*.npz"))
    if not shards:
        raise FileNotFoundError(f"no shards in {Path(directory) / 'shards'}")
    peaks = PeakSet.concatenate([read_shard(path) for path in shards])
    return peaks.subset(np.argsort(peaks.record, kind="stable"))
