"""How gasolve's Numba kernels share the cores with NumPy's BLAS and with other processes.

The scorer's kernels are Numba ``prange`` loops on the OpenMP threading layer, called thousands of times per run,
often on a handful of models (the final refinement calls them on one). Two defaults of the libraries underneath
make every such call slow as soon as the cores are shared:

- GNU OpenMP's threads spin-wait between parallel regions (``OMP_WAIT_POLICY`` active); when another process
  holds a core, each region waits for a descheduled thread, about one scheduler time slice. Measured on a
  2-core machine at a load of 5 (P1, 20 atoms): 12 ms per Rwp + gradient call on one model, against 0.3 ms
  with passive waiting.
- OpenBLAS starts its own threads for the small vector operations of SciPy's L-BFGS-B, which then fight the
  OpenMP threads: the same coordinate refinement took 12.7 s with them, 0.3 s with BLAS on one thread.

:func:`set_thread_defaults` (run when :mod:`gasolve` is imported) sets passive waiting and single-threaded BLAS
unless the user's environment says otherwise; both are read when the libraries load, so they count only where
gasolve is imported before NumPy. :func:`blas_single_thread` holds BLAS to one thread at run time, for library
users who imported NumPy first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

THREAD_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Environment defaults: OpenMP threads sleep when idle, BLAS leaves the cores to Numba's kernels."""


def set_thread_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Set every :data:`THREAD_DEFAULTS` variable that ``environ`` does not already hold."""
    for name, value in THREAD_DEFAULTS.items():
        environ.setdefault(name, value)


@contextmanager
def blas_single_thread() -> Iterator[None]:
    """Hold NumPy's BLAS to one thread while the block runs (threadpoolctl), then restore it."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
