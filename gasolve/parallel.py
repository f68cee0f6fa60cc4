"""Where many independent runs execute: a Dask cluster, or this process one after another.

``scheduler`` is "local" (a new :class:`distributed.LocalCluster` of single-threaded worker processes, as many as
the cores this process may use unless ``workers`` says otherwise), "synchronous" (no Dask: each call runs here,
in order, which is what a task that is itself on a Dask worker wants) or the address of a running Dask scheduler
("tcp://host:8786"). A call that raises is reported with its exception; it never stops the others.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from gasolve.errors import InputError

#: Worker environment: one thread per process for Numba and the BLAS, so that processes do not oversubscribe cores
#: (OpenBLAS's spinning idle threads slowed the Numba kernels by up to 2x on few cores, benchmarks/scoring_speed.py).
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass
class Runner:
    """Runs calls on a Dask client, or here when ``client`` is None.

    Attributes
    ----------
    client : distributed.Client or None
    own_cluster : bool
        The cluster was started here and is closed by :meth:`close`.
    """

    client: object | None
    own_cluster: bool = False

    @property
    def description(self) -> str:
        if self.client is None:
            return "this process (synchronous)"
        workers = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask, {workers} worker(s) at {self.client.scheduler.address}"

    def share(self, value):
        """``value`` as the calls should receive it (scattered once to every worker on Dask)."""
        if self.client is None:
            return value
        return self.client.scatter(value, broadcast=True)

    def run(self, function: Callable, calls: dict) -> Iterator[tuple[object, object, BaseException | None]]:
        """Run ``function(*args)`` for every ``key -> args`` of ``calls``; yield (key, result, error) as each ends.

        ``error`` is the exception a call raised (``result`` is then None).
        """
        if self.client is None:
            for key, args in calls.items():
                try:
                    yield key, function(*args), None
                except KeyboardInterrupt:
                    raise
                except Exception as error:  # reported with the key; the other calls go on
                    yield key, None, error
            return
        from distributed import as_completed

        futures = {self.client.submit(function, *args, pure=False): key for key, args in calls.items()}
        try:
            for future in as_completed(list(futures)):
                key = futures[future]
                if future.status == "error":
                    yield key, None, future.exception()
                else:
                    yield key, future.result(), None
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if self.client is None:
            return
        cluster = self.client.cluster if self.own_cluster else None
        self.client.close()
        if cluster is not None:
            cluster.close()


@contextmanager
def worker_environment(values: dict[str, str] = WORKER_ENV):
    """Set ``values`` in ``os.environ`` while the block runs, then restore what was there.

    Only the spawned worker processes may see them: Numba re-reads ``NUMBA_NUM_THREADS`` at every compilation in
    this process and refuses a value that differs from the thread pool it has already launched.
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def make_runner(scheduler: str | None = "local", workers: int | None = None, source: str = "--scheduler") -> Runner:
    """A :class:`Runner` for ``scheduler`` (module docstring); ``source`` is named in error messages."""
    scheduler = scheduler or "local"
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be a positive number of processes, got {workers}", source)
    if scheduler == "synchronous":
        return Runner(None)
    from distributed import Client, LocalCluster

    if scheduler == "local":
        with worker_environment():  # inherited by the worker processes before they import Numba
            cluster = LocalCluster(
                n_workers=workers or usable_cores(),
                threads_per_worker=1,
                processes=True,
                env=dict(WORKER_ENV),
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
        return Runner(Client(cluster), own_cluster=True)
    if workers is not None:
        raise InputError("--workers applies to a local cluster; the cluster at the address has its own", source)
    try:
        return Runner(Client(scheduler, timeout=20))
    except (OSError, TimeoutError, ValueError) as error:
        raise InputError(
            f"cannot reach the Dask scheduler {scheduler!r} ({error}); expected 'local', 'synchronous' or the "
            "address of a running scheduler such as tcp://host:8786",
            source,
        ) from None
