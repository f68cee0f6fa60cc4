"""Numba options shared by the kernels of the scorer, the anti-bump penalty and the peak shapes."""

from __future__ import annotations

#: fastmath flags: 'reassoc' lets LLVM vectorise the reductions; NaN/inf semantics are kept.
FASTMATH = {"contract", "reassoc", "nsz", "arcp"}
#: ``numba.njit`` options: no GIL, machine code cached on disk (gasolve.scoring.kernel_cache), NumPy's error model.
JIT = {"nogil": True, "cache": True, "fastmath": FASTMATH, "error_model": "numpy"}
