"""Build a data folder (:mod:`symnet.dataset`) from the Materials Project set and PyXtal crystals, in parallel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gasolve.crystal import parse_cif
from gasolve.errors import InputError
from symnet.configs import DataConfig
from symnet.dataset import ShardTask, finish_task, run_tasks, write_catalogue
from symnet.grid import PatternGrid
from symnet.labels import N_SPACE_GROUPS
from symnet.peaks import peak_list
from symnet.sources import CatalogueEntry, iter_mp_cifs, random_crystal, read_mp_catalogue

#: Degrees beyond the grid's last angle down to which reflections are kept (zero shifts, Kα2, peak tails).
D_MARGIN_DEGREES = 3.0


def _make_mp_shard(task: ShardTask) -> tuple[list[dict], list[dict]]:
    entries, records, cifs = task.payload
    peak_lists, kept, kept_records, failures = [], [], [], []
    for entry, record, text in zip(entries, records, cifs, strict=True):
        try:
            peaks = peak_list(parse_cif(text, entry.identifier), task.d_min)
        except (InputError, ValueError, MemoryError) as error:
            failures.append({"source": entry.source, "identifier": entry.identifier, "reason": str(error)[:200]})
            continue
        if len(peaks) == 0:
            failures.append({"source": entry.source, "identifier": entry.identifier, "reason": "no peaks"})
            continue
        peak_lists.append(peaks)
        kept.append(entry)
        kept_records.append(record)
    return finish_task(task, peak_lists, kept, kept_records, failures)


def _make_pyxtal_shard(task: ShardTask) -> tuple[list[dict], list[dict]]:
    plan, first_record, seed, systems = task.payload
    rng = np.random.default_rng(seed)
    peak_lists, kept, records, failures = [], [], [], []
    record = first_record
    for space_group, count in plan:
        for n in range(count):
            identifier = f"pyxtal-{space_group}-{n}"
            made = None
            for _ in range(4):  # PyXtal may land on a supergroup; retry so the rare group is represented
                system = systems[int(rng.integers(len(systems)))].split("-")
                made = random_crystal(space_group, system, rng)
                if made is not None and made[1] == space_group:
                    break
            if made is None or made[1] < 1:
                failures.append({"source": "pyxtal", "identifier": identifier, "reason": "no crystal"})
                record += 1
                continue
            structure, found = made
            formula = "".join(sorted({s.element for s in structure.sites}))
            chemsys = "-".join(sorted({s.element for s in structure.sites}))
            peaks = peak_list(structure, task.d_min)
            if len(peaks):
                peak_lists.append(peaks)
                kept.append(CatalogueEntry("pyxtal", identifier, formula, chemsys, found))
                records.append(record)
            record += 1
    return finish_task(task, peak_lists, kept, records, failures)


def synthetic_plan(mp_counts: np.ndarray, per_group: int, min_total: int) -> np.ndarray:
    """Synthetic crystals per space group: at least ``per_group``, and enough to reach ``min_total`` with MP.

    Parameters
    ----------
    mp_counts : ndarray, shape (230,)
        Materials Project structures per group (index = number - 1).

    Returns
    -------
    ndarray, shape (230,), int
    """
    if per_group == 0 and min_total == 0:
        return np.zeros(N_SPACE_GROUPS, dtype=np.int64)
    return np.maximum(per_group, min_total - np.asarray(mp_counts)).astype(np.int64)


def build_dataset(config: DataConfig, workers: int = 2, progress: bool = True) -> Path:
    """Compute every missing shard of ``config.directory`` and write its catalogue.

    Parameters
    ----------
    config : DataConfig
    workers : int
        Processes.
    progress : bool
        Show a rich progress bar.

    Returns
    -------
    Path
        The data folder.
    """
    directory = Path(config.directory)
    (directory / "shards").mkdir(parents=True, exist_ok=True)
    grid = PatternGrid(**config.grid)
    d_min = grid.d_min(D_MARGIN_DEGREES)
    mp_dir = Path(config.mp_dir)
    catalogue = read_mp_catalogue(mp_dir / "index.csv")
    rng = np.random.default_rng(np.random.SeedSequence(config.seed))
    chosen = np.arange(len(catalogue))
    if 0 < config.max_mp < len(catalogue):
        chosen = np.sort(rng.choice(len(catalogue), size=config.max_mp, replace=False))
    wanted = {catalogue[i].identifier: int(i) for i in chosen}
    cifs = {
        wanted[identifier]: text
        for identifier, text in iter_mp_cifs(mp_dir / "structures.csv.gz")
        if identifier in wanted
    }
    missing = [catalogue[i].identifier for i in chosen if i not in cifs]
    if missing:
        raise ValueError(f"{len(missing)} structures of index.csv are not in structures.csv.gz, e.g. {missing[0]}")
    tasks = []
    for k, start in enumerate(range(0, len(chosen), config.shard_size)):
        block = chosen[start : start + config.shard_size]
        payload = ([catalogue[i] for i in block], block.tolist(), [cifs[i] for i in block])
        tasks.append(ShardTask(f"mp-{k:05d}", str(directory / "shards" / f"mp-{k:05d}.npz"), payload, d_min))
    rows, failures = run_tasks(tasks, _make_mp_shard, workers, "Materials Project peaks", progress)

    mp_counts = np.bincount([catalogue[i].space_group for i in chosen], minlength=N_SPACE_GROUPS + 1)[1:]
    plan = synthetic_plan(mp_counts, config.synthetic_per_group, config.synthetic_min_total)
    systems = sorted({catalogue[i].chemical_system for i in chosen if "-" in catalogue[i].chemical_system})
    seeds = np.random.SeedSequence(config.seed).spawn(N_SPACE_GROUPS + 1)[1:]
    record = len(catalogue)
    tasks = []
    per_task = max(1, config.shard_size // 4)
    for number in range(1, N_SPACE_GROUPS + 1):
        count = int(plan[number - 1])
        for part, start in enumerate(range(0, count, per_task)):
            n = min(per_task, count - start)
            name = f"pyxtal-{number:03d}-{part:02d}"
            seed = seeds[number - 1].spawn(part + 1)[part]
            payload = ([(number, n)], record, seed, systems)
            tasks.append(ShardTask(name, str(directory / "shards" / f"{name}.npz"), payload, d_min))
            record += n
    if tasks:
        new_rows, new_failures = run_tasks(tasks, _make_pyxtal_shard, workers, "PyXtal crystals", progress)
        rows += new_rows
        failures += new_failures
    write_catalogue(directory, rows, failures)
    (directory / "build.json").write_text(json.dumps({"data": config.to_dict(), "d_min": d_min}, indent=2))
    return directory
