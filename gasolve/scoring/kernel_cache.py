"""Every process runs the kernels as loaded from Numba's on-disk cache, never a compilation of its own.

Measured with Numba 0.68: the machine code a process compiles for itself and the same function loaded from the
cache it wrote round differently (the Rwp gradient of 64 K4SnO4 models differs in the last bits; the Rwp
agrees). Both are deterministic, but a GA is chaotic, so a run that starts in a process that compiled the
kernels and resumes in one that loaded them (or the reverse) would not reproduce the uninterrupted run. So the
first process that finds the cache missing compiles the kernels in a child process, which writes the cache,
and then loads them like every later process. That costs nothing extra: the compilation is done once, in the
child instead of in the process itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_CHILD = "GASOLVE_COMPILING_KERNELS"
_ready = False


def _dispatchers() -> list:
    """The batched kernels the scorer calls (Numba dispatchers with an on-disk cache)."""
    from gasolve.diffraction import peak_kernels
    from gasolve.scoring import antibump_kernels, bond_valence_kernels, kernels, occupancy_kernels

    return [
        getattr(module, name)
        for module in (kernels, occupancy_kernels, antibump_kernels, bond_valence_kernels, peak_kernels)
        for name in sorted(vars(module))
        if name.endswith("_batch") and hasattr(getattr(module, name), "_cache")
    ]


def _index_files() -> list[Path]:
    return [Path(dispatcher._cache._cache_file._index_path) for dispatcher in _dispatchers()]


def is_cached() -> bool:
    """Whether every batched kernel has an entry in Numba's cache."""
    return all(path.is_file() for path in _index_files())


def ensure_cached() -> None:
    """Compile the kernels in a child process if the cache lacks them, so that this process loads them from it.

    Does nothing inside that child, after the first call, or when ``NUMBA_DISABLE_JIT`` is set. If the child
    fails (an unwritable cache folder), this process compiles for itself as it would have anyway.
    """
    global _ready
    if _ready or os.environ.get(_CHILD) or os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return
    _ready = True
    if is_cached():
        return
    package_root = str(Path(__file__).resolve().parents[2])  # importable even from a source checkout
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    environment = {**os.environ, _CHILD: "1", "PYTHONPATH": path}
    subprocess.run(
        [sys.executable, "-m", "gasolve.scoring.kernel_cache"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def compile_kernels() -> None:
    """Call every scorer path once on a small problem (P-1, two sites), with and without the occupancy
    correction, which compiles and caches the kernels for the argument types every problem uses."""
    import numpy as np

    from gasolve.crystal import Site, SpaceGroup, Structure, UnitCell
    from gasolve.diffraction.profile import PeakProfile
    from gasolve.diffraction.simulate import simulate
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.io.patterns import ObservedPattern, counting_sigma
    from gasolve.scoring import Scorer, ScoringProblem

    structure = Structure(
        UnitCell(5.1, 5.6, 6.2, 84.0, 95.0, 101.0),
        SpaceGroup.from_symbol("P-1"),
        (Site("K1", "K", (0.11, 0.23, 0.37)), Site("O1", "O", (0.41, 0.17, 0.74))),
        name="compile",
    )
    radiation = parse_radiation("CuKa1")
    profile = PeakProfile(caglioti=(0.0, 0.0, 0.01), eta=0.5)
    two_theta = np.arange(10.0, 60.0, 0.02)
    simulated = simulate(structure, two_theta, radiation, profile, np.array([50.0, 5.0]))
    y_obs = 100.0 * simulated.peaks + simulated.background
    pattern = ObservedPattern(two_theta, y_obs, counting_sigma(y_obs))
    problem = ScoringProblem.from_structure(structure, pattern, radiation, profile, 2)
    frac = np.random.default_rng(0).random((3, 2, 3))
    for scorer in (Scorer(problem), Scorer(problem.with_occupancy_correction())):
        scorer.rwp(frac)
        scorer.rwp_and_gradient(frac)
        scorer.intensities(frac)
        scorer.profiles(frac)
    from gasolve.ga.antibump import AntiBump

    bump = AntiBump(structure.cell, structure.space_group, 2, 1.6)  # with and without fixed sites
    bump(frac.reshape(3, 6))
    bump(np.tile(frac[:1].reshape(1, 6), (2, 1)))
    from gasolve.ga.bond_valence_penalty import BondValencePenalty

    BondValencePenalty(structure.cell, structure.space_group, ["K", "O"], [2, 2])(frac.reshape(3, 6))


if __name__ == "__main__":
    compile_kernels()
