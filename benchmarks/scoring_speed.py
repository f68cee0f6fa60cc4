"""Scoring speed of gasolve's Numba scorer against a naive NumPy scorer and pymatgen's XRDCalculator.

Usage::

    python benchmarks/scoring_speed.py [--json PATH] [--repeats N] [--quick] [--seed S] [--cif PATH]

Problem: K4SnO4 (P-1, 9 independent sites, 18 atoms in the cell), Cu Kα1, 2θ 5-80° in steps of 0.015°
(5001 points), pseudo-Voigt of constant FWHM 0.1° and η = 0.5, 6 Chebyshev background terms refined with the
scale. The observed pattern is the structure's own simulated pattern on a small Chebyshev background, scaled
so that the strongest point expects 10⁵ counts, with Poisson noise; σ from counting statistics.

Measured in one run, each as models per second over several repetitions (median, IQR and min-max), the
repetitions interleaved so that drift of the machine spreads over all methods, and every timed call preceded
by an untimed one on the same batch (``settle_calls``):

1. ``Scorer.rwp`` on one Numba thread and on all of them;
2. ``Scorer.rwp_and_gradient`` (all threads) and its cost relative to ``Scorer.rwp``;
3. ``Scorer.profiles``, the difference-profile path (all threads);
4. a naive NumPy scorer (:class:`NaiveScorer`): per model, F from complex exponentials over the expanded cell,
   the sparse peak-shape matrix, ``np.linalg.lstsq`` for scale and background, Rwp;
5. pymatgen (:class:`PymatgenScorer`): per model a new ``pymatgen.core.Structure``,
   ``XRDCalculator.get_pattern``, NumPy pseudo-Voigt broadening onto the grid, the same least-squares fit.

Every method scores the same random models (uniform fractional coordinates); the slow peers take the first
few of each batch. The Rwp values are compared across methods as a sanity check. Then the cost of
``Scorer.rwp`` against the number of independent sites (P-1 problems in the K4SnO4 cell, elements cycled from
K4SnO4) and against the number of profile points (step 0.03° to 0.00375°).

NumPy's BLAS is held to one thread (``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to 1 before NumPy
is imported, unless the environment already sets them): OpenBLAS's idle threads keep spinning after each call
and, on a machine with few cores, slowed the Numba kernel that ran next by a factor of about two. The NumPy
peers are then single-threaded throughout; the values in force are recorded under ``machine.thread_env``.

``run_benchmark(config)`` returns plain data; ``main`` prints the tables and writes JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if "numpy" not in sys.modules:
    for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_variable, "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that `python benchmarks/scoring_speed.py` finds an uninstalled gasolve

import numba  # noqa: E402
import scipy.sparse  # noqa: E402

from benchmarks import provenance  # noqa: E402
from gasolve.crystal import Structure, read_cif  # noqa: E402
from gasolve.diffraction.form_factors import debye_waller, form_factor  # noqa: E402
from gasolve.diffraction.profile import PeakProfile  # noqa: E402
from gasolve.diffraction.simulate import simulate  # noqa: E402
from gasolve.diffraction.wavelength import Radiation, parse_radiation  # noqa: E402
from gasolve.io.atomic import atomic_write  # noqa: E402
from gasolve.io.patterns import ObservedPattern, counting_sigma  # noqa: E402
from gasolve.scoring import Scorer, ScoringProblem  # noqa: E402

SHARED_CIF = Path("/work/shared/data/structures/K4SnO4.cif")
BUNDLED_CIF = REPO / "examples" / "K4SnO4.cif"


@dataclass(frozen=True)
class BenchmarkConfig:
    """Everything that defines a run. Model counts are per repetition.

    Attributes
    ----------
    cif : str
        Structure whose simulated pattern is the observed one.
    seed : int
        Root of all randomness (noise and models), via ``numpy.random.SeedSequence``.
    repeats : int
        Repetitions of every measurement.
    n_models, n_models_gradient, n_models_profile, n_models_naive, n_models_pymatgen : int
        Batch sizes of the gasolve Rwp, gradient and profile paths and of the two slow peers.
    scaling_seconds : float
        Target duration of one timed call in the scaling tables; each row's batch is calibrated to it.
    min_models_scaling, max_models_scaling : int
        Bounds of the calibrated batches.
    sites_scaling : tuple of int
        Numbers of independent sites for the cost-versus-sites table.
    steps_scaling : tuple of float
        2θ steps (degrees) for the cost-versus-points table.
    two_theta_range : (float, float)
        Degrees.
    step : float
        2θ step of the main problem (degrees).
    radiation : str
    fwhm, eta : float
        Pseudo-Voigt FWHM (degrees 2θ) and Lorentzian fraction.
    background_terms : int
        Chebyshev terms refined with the scale.
    max_counts : float
        Expected counts at the strongest point of the observed pattern.
    background_counts : tuple of float
        Chebyshev coefficients (counts) of the observed pattern's background.
    settle_calls : int
        Untimed calls on the same batch before every timed call (see ``_timed``); 0 for none.
    """

    cif: str
    seed: int = 0
    repeats: int = 5
    n_models: int = 20_000
    n_models_gradient: int = 20_000
    n_models_profile: int = 2_000
    n_models_naive: int = 200
    n_models_pymatgen: int = 100
    scaling_seconds: float = 0.3
    min_models_scaling: int = 100
    max_models_scaling: int = 200_000
    sites_scaling: tuple[int, ...] = (9, 18, 36, 72, 144, 200)
    steps_scaling: tuple[float, ...] = (0.03, 0.015, 0.0075, 0.00375)
    two_theta_range: tuple[float, float] = (5.0, 80.0)
    step: float = 0.015
    radiation: str = "CuKa1"
    fwhm: float = 0.1
    eta: float = 0.5
    background_terms: int = 6
    max_counts: float = 1.0e5
    background_counts: tuple[float, ...] = (300.0, -150.0, 50.0)
    settle_calls: int = 1

    def __post_init__(self) -> None:
        counts = (
            "repeats",
            "n_models",
            "n_models_gradient",
            "n_models_profile",
            "n_models_naive",
            "n_models_pymatgen",
            "min_models_scaling",
            "max_models_scaling",
        )
        for name in counts:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.settle_calls < 0:
            raise ValueError(f"settle_calls must be >= 0, got {self.settle_calls}")
        if self.min_models_scaling > self.max_models_scaling:
            raise ValueError("min_models_scaling must not exceed max_models_scaling")
        if not self.scaling_seconds > 0:
            raise ValueError(f"scaling_seconds must be positive, got {self.scaling_seconds}")
        if not self.two_theta_range[0] < self.two_theta_range[1]:
            raise ValueError(f"two_theta_range must increase, got {self.two_theta_range}")
        if self.step <= 0 or any(s <= 0 for s in self.steps_scaling):
            raise ValueError("2θ steps must be positive")


#: Overrides of ``--quick``: a smoke run of well under a minute.
QUICK = {
    "repeats": 2,
    "n_models": 2_000,
    "n_models_gradient": 2_000,
    "n_models_profile": 200,
    "n_models_naive": 20,
    "n_models_pymatgen": 5,
    "scaling_seconds": 0.03,
    "min_models_scaling": 20,
}

#: Largest profile batch, as n_models x n_points doubles per array (the profile path holds several).
PROFILE_BATCH_DOUBLES = 10_000_000


# ----------------------------------------------------------------------------------------------------------
# Problem set-up (not timed)


def n_points_for(two_theta_range: tuple[float, float], step: float) -> int:
    """Points of a grid from the first to the last angle of ``two_theta_range`` in steps of ``step``."""
    return round((two_theta_range[1] - two_theta_range[0]) / step) + 1


def observed_pattern(
    structure: Structure,
    two_theta: np.ndarray,
    radiation: Radiation,
    profile: PeakProfile,
    config: BenchmarkConfig,
    rng: np.random.Generator,
) -> ObservedPattern:
    """The structure's simulated pattern with Poisson noise; the strongest point expects ``max_counts``."""
    sim = simulate(structure, two_theta, radiation, profile, np.asarray(config.background_counts, dtype=float))
    positive = sim.peaks > 0
    # Largest scale s with max(s·peaks + background) = max_counts, exactly.
    scale = float(np.min((config.max_counts - sim.background[positive]) / sim.peaks[positive]))
    expected = scale * sim.peaks + sim.background
    y_obs = rng.poisson(expected).astype(float)
    return ObservedPattern(two_theta, y_obs, counting_sigma(y_obs), source=f"simulated {structure.name}")


def random_models(rng: np.random.Generator, n_models: int, n_sites: int) -> np.ndarray:
    """Uniform random fractional coordinates, shape (n_models, n_sites, 3)."""
    return rng.random((n_models, n_sites, 3))


# ----------------------------------------------------------------------------------------------------------
# Peers


class _LinearFit:
    """Weighted linear least-squares fit of scale (>= 0) and background, and the Rwp that follows.

    The columns √w·B and the background-only residual do not depend on the model and are computed once; per
    model, √w·peaks fills column 0 of the design matrix and ``np.linalg.lstsq`` solves. A negative best scale
    is replaced by zero (the background alone), as in gasolve.
    """

    def __init__(self, problem: ScoringProblem):
        pattern = problem.pattern
        self.sqrt_w = np.sqrt(pattern.weights)
        self.y_w = self.sqrt_w * pattern.y_obs
        self.norm = float(np.sum(pattern.weights * pattern.y_obs**2))
        basis_w = self.sqrt_w[:, None] * problem.background_basis
        self.design_w = np.empty((pattern.n_points, 1 + basis_w.shape[1]))
        self.design_w[:, 1:] = basis_w
        if basis_w.shape[1]:
            self.residual_background = self.y_w - basis_w @ np.linalg.lstsq(basis_w, self.y_w, rcond=None)[0]
        else:
            self.residual_background = self.y_w

    def rwp(self, peaks: np.ndarray) -> float:
        """Rwp = sqrt(Σ w (y_obs - s peaks - B c)² / Σ w y_obs²) at the best s >= 0 and c."""
        self.design_w[:, 0] = self.sqrt_w * peaks
        coef = np.linalg.lstsq(self.design_w, self.y_w, rcond=None)[0]
        residual = self.y_w - self.design_w @ coef if coef[0] > 0 else self.residual_background
        return math.sqrt(float(residual @ residual) / self.norm)


class NaiveScorer:
    """Readable NumPy scorer, vectorised within a model, looping over models.

    F(h) = Σ_atoms f_j(s) exp(2πi h·x_j) over every image of every site under all operators of the space group
    (general positions), I = |F|², y_peaks = P I with the problem's sparse peak-shape matrix P (multiplicity,
    Lorentz-polarisation and pseudo-Voigt folded in), then scale and background by ``np.linalg.lstsq`` on
    √w-weighted columns and Rwp = sqrt(Σ w (y_obs - y_calc)² / Σ w y_obs²).

    Parameters
    ----------
    problem : ScoringProblem
        Its reflections, peak matrix, background basis and pattern are reused; none of its Rwp tables.
    b_iso, occupancy : float or ndarray (n_sites,)
        As given to ``ScoringProblem.build``.
    """

    def __init__(self, problem: ScoringProblem, b_iso: float | np.ndarray = 0.0, occupancy: float | np.ndarray = 1.0):
        n_sites = problem.n_sites
        group = problem.space_group
        self.rotations = np.asarray(group.rotations, dtype=float)
        self.translations = np.asarray(group.translations, dtype=float)
        self.hkl_t = np.ascontiguousarray(problem.reflections.hkl.T.astype(float))
        stol2 = problem.reflections.stol2
        b_iso = np.broadcast_to(np.asarray(b_iso, dtype=float), (n_sites,))
        occupancy = np.broadcast_to(np.asarray(occupancy, dtype=float), (n_sites,))
        site_f = np.array(
            [
                form_factor(el, stol2) * debye_waller(b, stol2) * occ
                for el, b, occ in zip(problem.elements, b_iso, occupancy, strict=True)
            ]
        )
        self.atom_f = np.tile(site_f, (len(self.rotations), 1))  # atoms ordered operator-major, as in _expand
        self.peak_matrix = scipy.sparse.csr_matrix(problem.peak_matrix.to_sparse())
        self.fit = _LinearFit(problem)

    def _expand(self, frac: np.ndarray) -> np.ndarray:
        """All images x' = R x + t of the sites, shape (n_ops * n_sites, 3)."""
        images = np.einsum("sij,nj->sni", self.rotations, frac) + self.translations[:, None, :]
        return images.reshape(-1, 3)

    def intensities(self, frac: np.ndarray) -> np.ndarray:
        """|F|² of one model, shape (n_refl,)."""
        phase = (2.0 * np.pi) * (self._expand(frac) @ self.hkl_t)
        f = np.sum(self.atom_f * np.exp(1j * phase), axis=0)
        return f.real**2 + f.imag**2

    def rwp(self, frac: np.ndarray) -> np.ndarray:
        """Rwp of each model: frac (n_models, n_sites, 3) -> (n_models,)."""
        return np.array([self.fit.rwp(self.peak_matrix @ self.intensities(model)) for model in frac])


def pseudo_voigt_onto_grid(
    two_theta: np.ndarray,
    centres: np.ndarray,
    areas: np.ndarray,
    fwhm: np.ndarray,
    eta: np.ndarray,
    cutoff: float,
) -> np.ndarray:
    """Σ_k areas_k pV(2θ - centres_k) on the grid, each peak cut at ``cutoff`` FWHM (all angles in degrees).

    Vectorised over peaks: every peak gets a window of the same number of points, which is masked and
    accumulated with ``np.bincount``.
    """
    n_points = len(two_theta)
    if len(centres) == 0:
        return np.zeros(n_points)
    half = cutoff * fwhm
    width = int(np.ceil(2.0 * float(half.max()) / float(np.min(np.diff(two_theta))))) + 2
    index = np.searchsorted(two_theta, centres - half)[:, None] + np.arange(width)
    inside = index < n_points
    index = np.minimum(index, n_points - 1)
    dx = two_theta[index] - centres[:, None]
    inside &= np.abs(dx) <= half[:, None]
    h = fwhm[:, None]
    z = (2.0 * dx / h) ** 2
    gauss = (2.0 / h) * math.sqrt(math.log(2.0) / math.pi) * np.exp(-math.log(2.0) * z)
    lorentz = (2.0 / (math.pi * h)) / (1.0 + z)
    values = areas[:, None] * (eta[:, None] * lorentz + (1.0 - eta[:, None]) * gauss)
    return np.bincount(index[inside], weights=values[inside], minlength=n_points)


class PymatgenScorer:
    """Rwp from pymatgen's ``XRDCalculator`` per model, broadened with NumPy onto the observed grid.

    Per model: the sites are expanded with the space group's operators (as in :class:`NaiveScorer`), a new
    ``pymatgen.core.Structure`` is built on the fixed lattice, ``get_pattern(structure, scaled=False,
    two_theta_range=...)`` gives peak positions and integrated intensities (multiplicity and Lorentz-
    polarisation included; pymatgen's own form factors, no Debye-Waller factor), each peak becomes a
    pseudo-Voigt of the problem's profile, and scale and background are fitted as in the naive scorer.
    Reflections outside the range whose tails reach into it are not generated by pymatgen.
    """

    def __init__(self, problem: ScoringProblem):
        from pymatgen.analysis.diffraction.xrd import XRDCalculator
        from pymatgen.core import Lattice
        from pymatgen.core import Structure as PymatgenStructure

        self._structure_class = PymatgenStructure
        self.lattice = Lattice.from_parameters(*problem.cell.parameters)
        group = problem.space_group
        self.rotations = np.asarray(group.rotations, dtype=float)
        self.translations = np.asarray(group.translations, dtype=float)
        self.species = list(problem.elements) * len(self.rotations)
        self.calculator = XRDCalculator(wavelength=problem.radiation.primary)
        self.two_theta = np.asarray(problem.pattern.two_theta)
        self.two_theta_range = (float(self.two_theta[0]), float(self.two_theta[-1]))
        self.profile = problem.profile
        self.fit = _LinearFit(problem)

    def peaks(self, frac: np.ndarray) -> np.ndarray:
        """Unit-scale peak part of one model's pattern on the grid, shape (n_points,)."""
        images = np.einsum("sij,nj->sni", self.rotations, frac) + self.translations[:, None, :]
        structure = self._structure_class(self.lattice, self.species, np.mod(images.reshape(-1, 3), 1.0))
        pattern = self.calculator.get_pattern(structure, scaled=False, two_theta_range=self.two_theta_range)
        centres = np.asarray(pattern.x, dtype=float) + self.profile.zero
        areas = np.asarray(pattern.y, dtype=float)
        return pseudo_voigt_onto_grid(
            self.two_theta,
            centres,
            areas,
            self.profile.fwhm(centres),
            self.profile.eta_at(centres),
            self.profile.cutoff,
        )

    def rwp(self, frac: np.ndarray) -> np.ndarray:
        """Rwp of each model: frac (n_models, n_sites, 3) -> (n_models,)."""
        return np.array([self.fit.rwp(self.peaks(model)) for model in frac])


# ----------------------------------------------------------------------------------------------------------
# Timing


def _timed(function: Callable[[np.ndarray], object], frac: np.ndarray, settle_calls: int = 0) -> tuple[float, object]:
    """Wall time (s, ``time.perf_counter``) of one call, and its result.

    ``settle_calls`` untimed calls on the same batch come first: on virtual machines the first touch of memory
    the process has not used lately is slow, and the profile path allocates several (n_models, n_points)
    arrays per call, so without them its timings swung by a factor of four between repetitions.
    """
    for _ in range(settle_calls):
        function(frac)
    gc.collect()
    start = time.perf_counter()
    result = function(frac)
    return time.perf_counter() - start, result


def summarise(values: list[float]) -> dict:
    """Median, quartiles and range of repeated measurements."""
    array = np.asarray(values, dtype=float)
    p25, median, p75 = np.percentile(array, [25, 50, 75])
    return {
        "median": float(median),
        "p25": float(p25),
        "p75": float(p75),
        "min": float(array.min()),
        "max": float(array.max()),
        "values": [float(v) for v in array],
    }


def _set_threads(n_threads: int) -> None:
    numba.set_num_threads(n_threads)


def _calibrated_batch(
    function: Callable[[np.ndarray], object],
    n_sites: int,
    rng: np.random.Generator,
    seconds: float,
    minimum: int,
    maximum: int,
) -> int:
    """Number of models that ``function`` scores in about ``seconds``, within [minimum, maximum].

    The probe batch doubles from ``minimum`` until one call lasts a tenth of the target, so that the estimate
    is not dominated by the fixed cost of a call; each probe is timed twice and the faster call counts.
    """
    n_probe = minimum
    while True:
        frac = random_models(rng, n_probe, n_sites)
        elapsed = min(_timed(function, frac)[0] for _ in range(2))
        if elapsed >= 0.1 * seconds or n_probe >= maximum:
            break
        n_probe = min(2 * n_probe, maximum)
    return int(min(maximum, max(minimum, round(seconds * n_probe / max(elapsed, 1e-9)))))


def _repeat_rate(
    function: Callable[[np.ndarray], object],
    n_models: int,
    n_sites: int,
    rng: np.random.Generator,
    repeats: int,
    settle_calls: int,
) -> dict:
    """Statistics of models per second over ``repeats`` calls, each on a fresh random batch."""
    rates = []
    for _ in range(repeats):
        frac = random_models(rng, n_models, n_sites)
        elapsed, _ = _timed(function, frac, settle_calls)
        rates.append(n_models / elapsed)
    return summarise(rates)


# ----------------------------------------------------------------------------------------------------------
# Benchmark


class BufferedProfiles:
    """``Scorer.profiles`` writing into one reused output buffer, as a GA generation loop does.

    Fresh (n_models, n_points) arrays of tens of MB are page-faulted in on every call, which on this virtual
    machine costs more than the computation itself.
    """

    def __init__(self, scorer):
        self.scorer = scorer
        self.buffer = None

    def __call__(self, frac):
        shape = (len(frac), self.scorer.problem.pattern.n_points)
        if self.buffer is None or self.buffer.shape != shape:
            self.buffer = np.empty(shape)
        return self.scorer.profiles(frac, out=self.buffer)


def run_benchmark(config: BenchmarkConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Measure all methods and the two scaling series.

    Parameters
    ----------
    config : BenchmarkConfig
    progress : callable, optional
        Receives a short line before each stage (for a console); the result does not depend on it.

    Returns
    -------
    dict
        Plain data (JSON-serialisable): ``config``, ``problem``, ``machine``, ``versions``, ``measurements``
        (per method: threads, n_models, models/s statistics), the headline ``*_models_per_s`` medians,
        ``gradient_cost_ratio``, ``agreement``, ``scaling_sites`` and ``scaling_points``.
    """
    say = progress or (lambda _line: None)
    all_threads = int(numba.config.NUMBA_NUM_THREADS)
    noise_seq, model_seq, sites_seq, points_seq = np.random.SeedSequence(config.seed).spawn(4)

    structure = read_cif(config.cif)
    radiation = parse_radiation(config.radiation)
    profile = PeakProfile.constant_fwhm(config.fwhm, eta=config.eta)
    lo, hi = config.two_theta_range
    two_theta = np.linspace(lo, hi, n_points_for(config.two_theta_range, config.step))
    pattern = observed_pattern(structure, two_theta, radiation, profile, config, np.random.default_rng(noise_seq))
    problem = ScoringProblem.from_structure(
        structure, pattern, radiation, profile, background_terms=config.background_terms
    )
    scorer = Scorer(problem)
    b_iso = np.array([s.b_iso for s in structure.sites])
    occupancy = np.array([s.occupancy for s in structure.sites])
    naive = NaiveScorer(problem, b_iso=b_iso, occupancy=occupancy)
    try:
        pymatgen_scorer: PymatgenScorer | None = PymatgenScorer(problem)
        pymatgen_skipped = None
    except ImportError as error:
        pymatgen_scorer, pymatgen_skipped = None, f"pymatgen not importable: {error}"

    methods: dict[str, dict] = {
        "rwp_1thread": {
            "label": "gasolve Rwp",
            "threads": 1,
            "n_models": config.n_models,
            "function": scorer.rwp,
        },
        "rwp": {
            "label": "gasolve Rwp",
            "threads": all_threads,
            "n_models": config.n_models,
            "function": scorer.rwp,
        },
        "gradient": {
            "label": "gasolve Rwp + gradient",
            "threads": all_threads,
            "n_models": config.n_models_gradient,
            "function": scorer.rwp_and_gradient,
        },
        "profile": {
            "label": "gasolve profiles",
            "threads": all_threads,
            "n_models": config.n_models_profile,
            "function": BufferedProfiles(scorer),
        },
        "naive": {
            "label": "naive NumPy",
            "threads": None,
            "n_models": config.n_models_naive,
            "function": naive.rwp,
        },
    }
    if pymatgen_scorer is not None:
        methods["pymatgen"] = {
            "label": "pymatgen XRDCalculator",
            "threads": None,
            "n_models": config.n_models_pymatgen,
            "function": pymatgen_scorer.rwp,
        }

    say("warming up (Numba compiles or loads its cache on the first call)")
    warm = random_models(np.random.default_rng(model_seq.spawn(1)[0]), 4, problem.n_sites)
    for threads in sorted({1, all_threads}):
        _set_threads(threads)
        for method in methods.values():
            method["function"](warm)
    _set_threads(all_threads)

    rates: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in methods}
    batch_size = max(m["n_models"] for m in methods.values())
    try:
        for rep, rep_seq in enumerate(model_seq.spawn(config.repeats)):
            say(f"repetition {rep + 1}/{config.repeats}")
            batch = random_models(np.random.default_rng(rep_seq), batch_size, problem.n_sites)
            for name, method in methods.items():
                _set_threads(method["threads"] or all_threads)
                frac = batch[: method["n_models"]]
                seconds, result = _timed(method["function"], frac, config.settle_calls)
                rates[name].append(len(frac) / seconds)
                rwp = result.rwp if name == "profile" else result[0] if name == "gradient" else result
                outputs[name].append(np.asarray(rwp))
    finally:
        _set_threads(all_threads)

    measurements = {
        name: {
            "label": method["label"],
            "threads": method["threads"],
            "n_models": method["n_models"],
            "models_per_s": summarise(rates[name]),
        }
        for name, method in methods.items()
    }
    if pymatgen_skipped:
        measurements["pymatgen"] = {"label": "pymatgen XRDCalculator", "skipped": pymatgen_skipped}

    agreement = _agreement(outputs, scorer, naive, pymatgen_scorer, structure)

    say("scaling with the number of independent sites")
    scaling_sites = _scaling_sites(config, problem, structure, sites_seq, all_threads)
    say("scaling with the number of profile points")
    scaling_points = _scaling_points(config, structure, radiation, profile, points_seq, all_threads)

    def median(name: str) -> float | None:
        entry = measurements.get(name, {})
        return entry["models_per_s"]["median"] if "models_per_s" in entry else None

    per_rep_cost = [r / g for r, g in zip(rates["rwp"], rates["gradient"], strict=True)]
    return {
        "benchmark": "scoring_speed",
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": _plain(dataclasses.asdict(config)),
        "seeds": {"root": config.seed, "spawn": "SeedSequence(seed).spawn(4): noise, models, sites, points"},
        "problem": {
            "structure": structure.name,
            "cif": str(config.cif),
            "space_group": problem.space_group.symbol,
            "n_sites": problem.n_sites,
            "n_atoms_in_cell": int(sum(structure.site_multiplicities())),
            "n_refl": problem.n_refl,
            "n_points": problem.pattern.n_points,
            "peak_matrix_nnz": int(problem.peak_matrix.values.size),
            "wavelength": radiation.primary,
            "radiation": radiation.name,
            "centric": bool(problem.centric),
        },
        "machine": machine_info(),
        "versions": versions(),
        "measurements": measurements,
        "rwp_models_per_s": median("rwp"),
        "rwp_models_per_s_1thread": median("rwp_1thread"),
        "gradient_models_per_s": median("gradient"),
        "profile_models_per_s": median("profile"),
        "naive_models_per_s": median("naive"),
        "pymatgen_models_per_s": median("pymatgen"),
        "gradient_cost_ratio": summarise(per_rep_cost),
        "agreement": agreement,
        "scaling_sites": scaling_sites,
        "scaling_points": scaling_points,
    }


def _agreement(
    outputs: dict[str, list[np.ndarray]],
    scorer: Scorer,
    naive: NaiveScorer,
    pymatgen_scorer: PymatgenScorer | None,
    structure: Structure,
) -> dict:
    """How closely the methods' Rwp agree on the timed models and on the true structure."""
    reference = outputs["rwp"]

    def max_difference(name: str) -> float:
        return float(
            max(np.max(np.abs(out - ref[: len(out)])) for out, ref in zip(outputs[name], reference, strict=True))
        )

    truth = structure.frac[None]
    result = {
        "max_abs_diff_rwp_1thread_vs_rwp": max_difference("rwp_1thread"),
        "max_abs_diff_gradient_vs_rwp": max_difference("gradient"),
        "max_abs_diff_profile_vs_rwp": max_difference("profile"),
        "max_abs_diff_naive_vs_rwp": max_difference("naive"),
        "rwp_true_structure": {"gasolve": float(scorer.rwp(truth)[0]), "naive": float(naive.rwp(truth)[0])},
        "rwp_random_models_median": float(np.median(np.concatenate(reference))),
    }
    if pymatgen_scorer is not None:
        ours = np.concatenate([ref[: len(out)] for out, ref in zip(outputs["pymatgen"], reference, strict=True)])
        theirs = np.concatenate(outputs["pymatgen"])
        result["pymatgen_vs_rwp"] = {
            "pearson_r": float(np.corrcoef(ours, theirs)[0, 1]) if len(ours) > 1 else None,
            "median_abs_diff": float(np.median(np.abs(ours - theirs))),
            "max_abs_diff": float(np.max(np.abs(ours - theirs))),
        }
        result["rwp_true_structure"]["pymatgen"] = float(pymatgen_scorer.rwp(truth)[0])
    return result


def _scaling_sites(
    config: BenchmarkConfig,
    problem: ScoringProblem,
    structure: Structure,
    seed_seq: np.random.SeedSequence,
    threads: int,
) -> list[dict]:
    """Rwp speed (all threads) of problems in the same cell and space group with more independent sites.

    Elements cycle through the structure's own; every site is on a general position. The observed pattern
    is the main one (the cost does not depend on it).
    """
    base_elements = structure.elements
    rows = []
    _set_threads(threads)
    for n_sites, size_seq in zip(config.sites_scaling, seed_seq.spawn(len(config.sites_scaling)), strict=True):
        elements = [base_elements[i % len(base_elements)] for i in range(n_sites)]
        sized = ScoringProblem.build(
            problem.cell,
            problem.space_group,
            elements,
            problem.pattern,
            problem.radiation,
            problem.profile,
            background_terms=config.background_terms,
        )
        rwp = Scorer(sized).rwp
        rng = np.random.default_rng(size_seq)
        rwp(random_models(rng, 4, n_sites))
        n_models = _calibrated_batch(
            rwp, n_sites, rng, config.scaling_seconds, config.min_models_scaling, config.max_models_scaling
        )
        stats = _repeat_rate(rwp, n_models, n_sites, rng, config.repeats, config.settle_calls)
        rows.append(
            {
                "n_sites": n_sites,
                "n_atoms_in_cell": n_sites * sized.space_group.n_ops,
                "n_refl": sized.n_refl,
                "n_models": n_models,
                "threads": threads,
                "models_per_s": stats,
                "us_per_model": 1e6 / stats["median"],
            }
        )
    base = rows[0]["us_per_model"]
    for row in rows:
        row["relative_cost"] = row["us_per_model"] / base
    return rows


def _scaling_points(
    config: BenchmarkConfig,
    structure: Structure,
    radiation: Radiation,
    profile: PeakProfile,
    seed_seq: np.random.SeedSequence,
    threads: int,
) -> list[dict]:
    """Rwp and profile-path speed (all threads) of the main problem on finer and finer 2θ grids."""
    rows = []
    _set_threads(threads)
    for step, step_seq in zip(config.steps_scaling, seed_seq.spawn(len(config.steps_scaling)), strict=True):
        noise_seq, model_seq = step_seq.spawn(2)
        two_theta = np.linspace(*config.two_theta_range, n_points_for(config.two_theta_range, step))
        pattern = observed_pattern(structure, two_theta, radiation, profile, config, np.random.default_rng(noise_seq))
        problem = ScoringProblem.from_structure(
            structure, pattern, radiation, profile, background_terms=config.background_terms
        )
        scorer = Scorer(problem)
        n_sites = problem.n_sites
        rng = np.random.default_rng(model_seq)
        warm = random_models(rng, 4, n_sites)
        scorer.rwp(warm)
        scorer.profiles(warm)
        n_rwp = _calibrated_batch(
            scorer.rwp,
            n_sites,
            rng,
            config.scaling_seconds,
            config.min_models_scaling,
            config.max_models_scaling,
        )
        profile_cap = max(config.min_models_scaling, PROFILE_BATCH_DOUBLES // pattern.n_points)
        buffered = BufferedProfiles(scorer)
        n_profile = _calibrated_batch(
            buffered, n_sites, rng, config.scaling_seconds, config.min_models_scaling, profile_cap
        )
        rows.append(
            {
                "step": step,
                "n_points": pattern.n_points,
                "n_refl": problem.n_refl,
                "peak_matrix_nnz": int(problem.peak_matrix.values.size),
                "threads": threads,
                "n_models": n_rwp,
                "n_models_profile": n_profile,
                "models_per_s": _repeat_rate(scorer.rwp, n_rwp, n_sites, rng, config.repeats, config.settle_calls),
                "profile_models_per_s": _repeat_rate(
                    buffered, n_profile, n_sites, rng, config.repeats, config.settle_calls
                ),
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------------------
# Environment


def machine_info() -> dict:
    """CPU, cores, threads and platform of this machine."""
    usable = provenance.usable_cores()
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = None
    return {
        "cpu_model": provenance.cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "numba_num_threads": int(numba.config.NUMBA_NUM_THREADS),
        "numba_threading_layer": layer,
        "platform": platform.platform(),
        "thread_env": {
            k: os.environ[k]
            for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ
        },
    }


def versions() -> dict:
    """Package versions and the commit of the working tree (:func:`benchmarks.provenance.versions`)."""
    return provenance.versions("pymatgen")


def _plain(value):
    """Tuples to lists, recursively (for JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------------------
# Report


def _rate(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _ratio(value: float | None, peer: float | None) -> str:
    if value is None or peer is None:
        return "n/a"
    ratio = value / peer
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.3g}×"


def format_report(result: dict) -> str:
    """Human-readable tables of a :func:`run_benchmark` result."""
    p, m, v = result["problem"], result["machine"], result["versions"]
    cfg = result["config"]
    terms = cfg.get("background_terms", cfg.get("n_background"))  # results written before the rename say n_background
    lines = [
        f"gasolve scoring speed: {p['structure']} ({p['space_group']}), {p['n_sites']} sites / "
        f"{p['n_atoms_in_cell']} atoms in the cell, {p['n_refl']} reflections, {p['n_points']} points "
        f"(2θ {cfg['two_theta_range'][0]:g}-{cfg['two_theta_range'][1]:g}°, step {cfg['step']:g}°), "
        f"{p['radiation']} λ = {p['wavelength']:.6f} Å, {terms} background terms",
        f"machine: {m['cpu_model']}, {m['usable_cores']} usable cores, NUMBA_NUM_THREADS = "
        f"{m['numba_num_threads']} ({m['numba_threading_layer']}); python {v['python']}, numpy {v['numpy']}, "
        f"numba {v['numba']}, pymatgen {v['pymatgen']}, gasolve {v['gasolve']}"
        + (" (modified working tree)" if v.get("gasolve_modified") else ""),
        f"{cfg['repeats']} repetitions (each timed call after {cfg['settle_calls']} untimed one(s) "
        f"on the same batch), seed {cfg['seed']}; models/s: median, IQR (p25-p75), min-max",
        "",
    ]
    header = (
        f"{'method':<24} {'threads':>7} {'models':>7} {'models/s':>12} {'IQR':>25} {'min-max':>25} "
        f"{'vs pymatgen':>12} {'vs naive':>10}"
    )
    lines += [header, "-" * len(header)]
    naive = result["naive_models_per_s"]
    pymatgen = result["pymatgen_models_per_s"]
    for entry in result["measurements"].values():
        if "skipped" in entry:
            lines.append(f"{entry['label']:<24} skipped: {entry['skipped']}")
            continue
        s = entry["models_per_s"]
        threads = str(entry["threads"]) if entry["threads"] else "1*"
        lines.append(
            f"{entry['label']:<24} {threads:>7} {entry['n_models']:>7} {_rate(s['median']):>12} "
            f"{_rate(s['p25']) + '-' + _rate(s['p75']):>25} {_rate(s['min']) + '-' + _rate(s['max']):>25} "
            f"{_ratio(s['median'], pymatgen):>12} {_ratio(s['median'], naive):>10}"
        )
    cost = result["gradient_cost_ratio"]
    lines += [
        "* one Python thread; NumPy's BLAS threads: "
        + (", ".join(f"{k}={val}" for k, val in m["thread_env"].items()) or "library default"),
        f"gradient costs {cost['median']:.2f}× Rwp alone (per-repetition range {cost['min']:.2f}-{cost['max']:.2f})",
    ]
    a = result["agreement"]
    truth = a["rwp_true_structure"]
    lines += [
        "",
        "agreement (Rwp): naive vs gasolve max |Δ| = "
        f"{a['max_abs_diff_naive_vs_rwp']:.1e}; profiles vs rwp {a['max_abs_diff_profile_vs_rwp']:.1e}; "
        f"gradient path vs rwp {a['max_abs_diff_gradient_vs_rwp']:.1e}; 1 thread vs all "
        f"{a['max_abs_diff_rwp_1thread_vs_rwp']:.1e}",
        "Rwp of the true structure: "
        + ", ".join(f"{k} {val:.4f}" for k, val in truth.items())
        + f"; median over random models {a['rwp_random_models_median']:.4f}",
    ]
    if "pymatgen_vs_rwp" in a:
        pm = a["pymatgen_vs_rwp"]
        r = "n/a" if pm["pearson_r"] is None else f"{pm['pearson_r']:.3f}"
        lines.append(
            f"pymatgen vs gasolve on the same random models: Pearson r = {r}, median |Δ| = "
            f"{pm['median_abs_diff']:.4f}, max |Δ| = {pm['max_abs_diff']:.4f} (different form factors)"
        )

    sites = result["scaling_sites"]
    if sites:
        lines += [
            "",
            f"gasolve Rwp vs independent sites (P-1, same cell, {sites[0]['n_refl']} reflections, "
            f"{p['n_points']} points, {sites[0]['threads']} threads)",
            f"{'sites':>6} {'atoms':>6} {'models':>7} {'models/s':>12} {'IQR':>25} {'µs/model':>10} "
            f"{'rel. cost':>10} {'µs/(model·atom)':>16}",
        ]
        for row in sites:
            s = row["models_per_s"]
            lines.append(
                f"{row['n_sites']:>6} {row['n_atoms_in_cell']:>6} {row['n_models']:>7} "
                f"{_rate(s['median']):>12} "
                f"{_rate(s['p25']) + '-' + _rate(s['p75']):>25} {row['us_per_model']:>10.2f} "
                f"{row['relative_cost']:>10.2f} {row['us_per_model'] / row['n_atoms_in_cell']:>16.3f}"
            )
    points = result["scaling_points"]
    if points:
        lines += [
            "",
            f"gasolve vs profile points ({p['n_sites']} sites, {points[0]['threads']} threads; "
            "Rwp and the profile path)",
            f"{'step':>8} {'points':>7} {'refl':>5} {'nnz(P)':>9} {'Rwp models/s':>13} {'IQR':>25} "
            f"{'profiles/s':>11} {'IQR':>19}",
        ]
        for row in points:
            s, q = row["models_per_s"], row["profile_models_per_s"]
            lines.append(
                f"{row['step']:>8g} {row['n_points']:>7} {row['n_refl']:>5} {row['peak_matrix_nnz']:>9} "
                f"{_rate(s['median']):>13} {_rate(s['p25']) + '-' + _rate(s['p75']):>25} "
                f"{_rate(q['median']):>11} {_rate(q['p25']) + '-' + _rate(q['p75']):>19}"
            )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Command line


def find_cif(explicit: str | None) -> Path:
    """The CIF to use: ``explicit``, else the shared K4SnO4, else the copy bundled with the repository."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"CIF file not found: {path}")
        return path
    for path in (SHARED_CIF, BUNDLED_CIF):
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"K4SnO4.cif not found at {SHARED_CIF} nor at {BUNDLED_CIF}; pass --cif PATH to a K4SnO4 CIF"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="write the full result as JSON to PATH")
    parser.add_argument("--repeats", type=_positive_int, help="repetitions of every measurement (default 5)")
    parser.add_argument("--quick", action="store_true", help="few repetitions and small batches (smoke run)")
    parser.add_argument("--seed", type=int, default=0, help="root seed of noise and models (default 0)")
    parser.add_argument("--cif", metavar="PATH", help="structure CIF (default: K4SnO4 from shared data)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cif = find_cif(args.cif)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    overrides = dict(QUICK) if args.quick else {}
    if args.repeats is not None:
        overrides["repeats"] = args.repeats
    config = BenchmarkConfig(cif=str(cif), seed=args.seed, **overrides)
    result = run_benchmark(config, progress=lambda line: print(f"... {line}", file=sys.stderr, flush=True))
    print(format_report(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
