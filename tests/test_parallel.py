"""gasolve.parallel: the local cluster's worker settings stay in the workers."""

from __future__ import annotations

import os

from gasolve.parallel import WORKER_ENV, make_runner


def _worker_threads() -> str | None:
    import numba

    return f"{os.environ.get('NUMBA_NUM_THREADS')}/{numba.config.NUMBA_NUM_THREADS}"


def _fails(value):
    raise ValueError(f"bad {value}")


def test_local_cluster_sets_one_thread_in_its_workers_and_leaves_this_process_alone():
    before = {name: os.environ.get(name) for name in WORKER_ENV}
    runner = make_runner("local", workers=1)
    try:
        # Numba re-reads NUMBA_NUM_THREADS at every compilation here; a changed value after its thread pool
        # started made every later parallel kernel compilation raise (CI, cold kernel cache).
        assert {name: os.environ.get(name) for name in WORKER_ENV} == before
        results = {key: (value, error) for key, value, error in runner.run(_worker_threads, {"w": ()})}
        assert results["w"] == ("1/1", None)
        errors = {key: error for key, _, error in runner.run(_fails, {"a": (1,), "b": (2,)})}
        assert isinstance(errors["a"], ValueError) and "bad 2" in str(errors["b"])
    finally:
        runner.close()
    assert {name: os.environ.get(name) for name in WORKER_ENV} == before
