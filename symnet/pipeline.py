"""Batches of network inputs rendered from peak lists, with a background thread that renders ahead.

Rendering (Numba, GIL released) of the next batches overlaps with the JAX step of the current one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np

from symnet.augment import NORMALISATION, make_pattern
from symnet.configs import AugmentConfig
from symnet.dataset import PeakSet
from symnet.grid import PatternGrid, pool_mean
from symnet.labels import crystal_system_index


def render_inputs(
    peaks: PeakSet,
    index: np.ndarray,
    grid: PatternGrid,
    rng: np.random.Generator,
    config: AugmentConfig,
    paper: bool | None = None,
) -> np.ndarray:
    """Network inputs of the structures ``index``.

    Returns
    -------
    ndarray, shape (len(index), grid.n_inputs), float32
        Patterns pooled onto the network grid, divided by 1000.
    """
    out = np.empty((len(index), grid.n_inputs), dtype=np.float32)
    for row, i in enumerate(index):
        y = make_pattern(peaks.peaks(int(i)), grid, rng, config, paper)
        out[row] = pool_mean(y, grid.pool) / NORMALISATION
    return out


def labels_of(peaks: PeakSet, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(crystal-system class (n,), space-group class (n,)) of the structures ``index``; classes are 0-based."""
    group = peaks.space_group[np.asarray(index, dtype=np.int64)]
    return crystal_system_index(group), group - 1


def training_batches(
    peaks: PeakSet,
    train: np.ndarray,
    grid: PatternGrid,
    config: AugmentConfig,
    rng: np.random.Generator,
    batch_size: int,
    n_batches: int,
    prefetch: int = 4,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``n_batches`` batches (inputs (b, n_inputs), system (b,), space group (b,)) from a shuffled pass.

    The structures are reshuffled whenever a pass is used up; every random choice comes from ``rng``.
    """

    def order() -> Iterator[int]:
        while True:
            yield from rng.permutation(train)

    source = order()
    jobs: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def work() -> None:
        try:
            for _ in range(n_batches):
                if stop.is_set():
                    return
                index = np.fromiter((next(source) for _ in range(batch_size)), dtype=np.int64, count=batch_size)
                x = render_inputs(peaks, index, grid, rng, config)
                jobs.put((x, *labels_of(peaks, index)))
        except BaseException as error:  # hand the failure to the consumer
            jobs.put(error)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        for _ in range(n_batches):
            item = jobs.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                jobs.get_nowait()
            except queue.Empty:
                thread.join(0.05)
