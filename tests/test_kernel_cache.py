"""The kernels run from Numba's cache in every process (gasolve.scoring.kernel_cache)."""

from __future__ import annotations

import os
import subprocess
import sys

from gasolve.scoring import kernel_cache


def test_every_batched_kernel_is_covered_and_cached_after_ensure():
    names = {d.py_func.__module__.rsplit(".", 1)[1] + "." + d.__name__ for d in kernel_cache._dispatchers()}
    assert {"kernels.rwp_batch", "kernels.rwp_gradient_batch", "occupancy_kernels.rwp_gradient_batch"} <= names
    kernel_cache.ensure_cached()
    assert kernel_cache.is_cached()


def test_the_child_does_not_spawn_another(tmp_path):
    """Inside the compiling child ensure_cached returns at once (no recursion), even with an empty cache."""
    env = {**os.environ, "GASOLVE_COMPILING_KERNELS": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    code = "from gasolve.scoring import kernel_cache as k; k.ensure_cached(); print(k.is_cached())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False" and not list(tmp_path.rglob("*.nbc"))
