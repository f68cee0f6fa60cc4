"""What a benchmark result records about where it was measured: package versions and the code's commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def package_version(name: str) -> str | None:
    """Installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git(*args: str) -> str | None:
    """Output of ``git ARGS`` in the repository, None when git or the repository is not there."""
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def versions(*packages: str) -> dict:
    """Python, numpy, scipy, numba and ``packages`` versions, gasolve's version and the commit of the working
    tree (``gasolve_modified``: uncommitted changes under gasolve/; None without git)."""
    import numpy as np

    import gasolve

    status = git("status", "--porcelain", "--", "gasolve")
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        **{name: package_version(name) for name in ("scipy", "numba", *packages)},
        "gasolve": gasolve.__version__,
        "git_commit": git("rev-parse", "HEAD"),
        "gasolve_modified": None if status is None else bool(status),
    }


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
