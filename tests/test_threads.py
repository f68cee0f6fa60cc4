"""Thread defaults: OpenMP threads sleep when idle and BLAS stays on one thread, unless the user says otherwise."""

import os
import subprocess
import sys

import numpy as np
from threadpoolctl import threadpool_info

from gasolve.threads import THREAD_DEFAULTS, blas_single_thread, set_thread_defaults


def test_defaults_fill_only_what_the_environment_lacks():
    environ = {"OPENBLAS_NUM_THREADS": "4"}
    set_thread_defaults(environ)
    assert environ["OPENBLAS_NUM_THREADS"] == "4"  # the user's choice stands
    assert environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert environ["MKL_NUM_THREADS"] == "1"


def test_importing_gasolve_sets_them_before_numpy_loads():
    environ = {k: v for k, v in os.environ.items() if k not in THREAD_DEFAULTS}
    code = (
        "import os, gasolve, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "print(os.environ['OMP_WAIT_POLICY'])\n"
        "print(max([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'] or [1]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    policy, blas_threads = out.stdout.split()
    assert policy == "PASSIVE"
    assert blas_threads == "1"


def test_blas_single_thread_restores_the_limit():
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with blas_single_thread():
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
