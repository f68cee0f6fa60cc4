"""Network inputs from a harvested data set of GA models: difference profiles, splits, epochs, batches.

The data set (format ``gasolve-harvest-1``) is read through :mod:`nnselect.dataset`, the one module that knows
the format: :func:`~nnselect.dataset.load_dataset` gives every model's fractional coordinates, Rwp, GA run and
per-site distances (Å) to the true structure; the label of a site at radius r is ``distances <= r`` (0.1 Å in
Zaloga et al. 2019).

**Input of the network** (Zaloga et al. 2019, part 2): the model's Rietveld difference profile
y_obs - y_calc after the exact weighted least-squares fit of scale and Chebyshev background, computed by the
engine (:meth:`gasolve.scoring.Scorer.profiles`). The profiles are **regenerated on the fly** from the stored
coordinates instead of being stored: 150,000 models x 5,000 points would be 3 GB in float32, while the engine
makes about 91,000 profiles/s on 2 cores (scoring benchmark, idle machine), so the 1,200 profiles of one epoch
cost about 13 ms, far less than the network's steps on them (seconds), and the data set stays 16 MB and
independent of any normalisation or grid choice.

**Normalisation**: each difference is divided by σ, the esd of y_obs, giving the weighted residual
(y_obs - y_calc)/σ whose sum of squares is what Rwp measures (so regions with large counting errors do not
dominate), then by one global scale: the root mean square of those weighted residuals over a fixed random sample
of training models (:func:`fit_scale`), stored in the checkpoint so that inference divides by the same number.
One global scale (not a per-profile one) keeps the overall size of the misfit, which carries Rwp, in the input.

**Another grid or wavelength**: a pattern measured on a different 2θ grid, zero shift or wavelength is mapped
onto the network's grid point by point through the d-spacing d = λ / (2 sin θ) with θ = (2θ - zero) / 2, and
linearly interpolated (:class:`Resampler`). Peak positions then agree; peak widths and Lorentz-polarisation
factors, which depend on the instrument, are not corrected. A pattern whose d range does not cover the
network's grid is refused with :class:`~gasolve.errors.InputError`.

Randomness comes from one NumPy ``Generator`` passed in by the caller; nothing here draws from global state.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from gasolve.errors import InputError
from gasolve.io.patterns import read_pattern
from gasolve.scoring import Scorer, ScoringProblem
from nnselect.dataset import MANIFEST, Manifest, _readonly

#: Models whose profiles are computed at once (bounds the float64 buffer: 512 x 5000 x 8 B = 20 MB).
PROFILE_CHUNK = 512


# --- the engine's problem for a data set --------------------------------------------------------------------


#: Keys that resolved configs of earlier gasolve versions hold, as (table, old key, new key or None: dropped).
_UPGRADES = (("pattern.background", "chebyshev", "terms"), ("ga", "elite", None))


def _upgrade(raw: dict) -> dict:
    """``raw`` (a resolved run config) with the keys of earlier versions renamed or dropped, so that data sets
    harvested before a rename stay readable."""
    for dotted, old, new in _UPGRADES:
        table = raw
        for name in dotted.split("."):
            table = table.get(name) if isinstance(table, dict) else None
        if isinstance(table, dict) and old in table:
            value = table.pop(old)
            if new is not None:
                table.setdefault(new, value)
    return raw


def load_harvest_config(manifest: Manifest, directory: str | Path):
    """The harvest's :class:`gasolve.config.RunConfig`, its pattern file pointed at the data set's copy.

    The ``[reference]`` table is dropped (the reference CIF travels as text in the manifest and its original
    path need not exist here). Keys renamed since the data set was harvested are read under their new names.
    """
    from gasolve.config import parse_run_config
    from gasolve.io.toml_file import parse_toml

    directory = Path(directory).resolve()
    source = directory / MANIFEST
    try:
        raw = parse_toml(manifest.config_toml, "config_toml")
    except InputError as error:
        raise InputError(f"config_toml: {error.message}", str(source)) from None
    if not isinstance(raw.get("pattern"), dict):
        raise InputError("config_toml has no [pattern] table", str(source))
    raw["pattern"]["file"] = manifest.pattern_file  # relative to the data set's folder, that of the manifest
    raw.pop("reference", None)
    try:
        return parse_run_config(_upgrade(raw), source)
    except InputError as error:
        raise InputError(f"config_toml: {error.message}", str(source)) from None


def build_problem(manifest: Manifest, directory: str | Path) -> ScoringProblem:
    """The engine's scoring tables for a data set, assembled as ``gasolve run`` does.

    Cell, space group, sites and B from the config; pattern from the data set's ``pattern_file`` (already
    restricted to the fitted range); radiation, peak profile and background terms from the config, checked
    against the manifest.

    Raises
    ------
    InputError
        The pattern file disagrees with the manifest's grid, or the config with its elements or radiation.
    """
    directory = Path(directory)
    config = load_harvest_config(manifest, directory)
    source = str(directory / MANIFEST)
    pattern = read_pattern(directory / manifest.pattern_file)
    start, stop, n_points = manifest.two_theta
    first, last = float(pattern.two_theta[0]), float(pattern.two_theta[-1])
    if pattern.n_points != n_points or not (
        math.isclose(first, start, abs_tol=1e-5) and math.isclose(last, stop, abs_tol=1e-5)
    ):
        raise InputError(
            f"{manifest.pattern_file} covers [{first}, {last}] with "
            f"{pattern.n_points} points; the manifest says [{start}, {stop}] with {n_points}",
            source,
        )
    structure = config.structure
    if tuple(structure.sites) != manifest.elements:
        raise InputError(f"config sites {structure.sites} differ from the manifest's elements", source)
    if config.pattern.background_terms != manifest.background_terms:
        raise InputError(
            f"config has {config.pattern.background_terms} background terms, the manifest {manifest.background_terms}",
            source,
        )
    lines = config.pattern.radiation.lines
    if len(lines) != len(manifest.wavelength) or not np.allclose(lines, manifest.wavelength, rtol=1e-7):
        raise InputError(f"config radiation {lines} differs from the manifest's wavelength", source)
    return ScoringProblem.build(
        structure.cell,
        structure.space_group,
        list(structure.sites),
        pattern,
        config.pattern.radiation,
        config.pattern.profile,
        background_terms=config.pattern.background_terms,
        b_iso=np.array(structure.b_iso),
    )


# --- grids and resampling -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputGrid:
    """The 2θ grid a network reads, and the instrument that grid's angles belong to.

    Attributes
    ----------
    two_theta : ndarray, shape (n_points,)
        Degrees, strictly increasing.
    wavelength : float
        Primary wavelength (Å).
    zero : float
        Zero shift of the 2θ scale (degrees): a reflection at Bragg angle θ appears at 2θ + zero.
    """

    two_theta: np.ndarray
    wavelength: float
    zero: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "two_theta", _readonly(np.asarray(self.two_theta, dtype=float)))
        if self.two_theta.ndim != 1 or len(self.two_theta) < 2 or np.any(np.diff(self.two_theta) <= 0):
            raise ValueError("two_theta must be a strictly increasing 1-D grid of at least 2 points")
        if not (math.isfinite(self.wavelength) and self.wavelength > 0):
            raise ValueError(f"wavelength must be positive (Å), got {self.wavelength}")

    @property
    def n_points(self) -> int:
        return len(self.two_theta)

    @classmethod
    def of_problem(cls, problem: ScoringProblem) -> InputGrid:
        """The grid of a problem's observed pattern, with its primary wavelength and zero shift."""
        return cls(problem.pattern.two_theta, problem.radiation.primary, problem.profile.zero)

    def d_spacing(self) -> np.ndarray:
        """d (Å) of each grid point, d = λ / (2 sin θ), θ = (2θ - zero) / 2; shape (n_points,)."""
        return self.wavelength / (2.0 * np.sin(np.radians(self.two_theta - self.zero) / 2.0))

    def same_as(self, other: InputGrid, tolerance: float = 1e-6) -> bool:
        """True when both grids put every point at the same d-spacing (within ``tolerance`` degrees)."""
        return (
            self.n_points == other.n_points
            and math.isclose(self.wavelength, other.wavelength, rel_tol=1e-9)
            and math.isclose(self.zero, other.zero, abs_tol=1e-12)
            and bool(np.allclose(self.two_theta, other.two_theta, rtol=0, atol=tolerance))
        )


class Resampler:
    """Linear interpolation from a source grid onto a target grid at equal d-spacing.

    Parameters
    ----------
    source : InputGrid
        Where the values are given.
    target : InputGrid
        Where they are wanted (the network's grid).

    Raises
    ------
    InputError
        When the source does not cover the target's d range (with half a source step to spare).
    """

    def __init__(self, source: InputGrid, target: InputGrid):
        self.source, self.target = source, target
        self.identity = source.same_as(target)
        if self.identity:
            return
        sine = source.wavelength / (2.0 * target.d_spacing())
        lo, hi = float(source.two_theta[0]), float(source.two_theta[-1])
        slack = 0.5 * float(np.median(np.diff(source.two_theta)))
        with np.errstate(invalid="ignore"):
            angle = 2.0 * np.degrees(np.arcsin(sine)) + source.zero
        if np.any(sine >= 1.0) or angle.min() < lo - slack or angle.max() > hi + slack:
            reachable = np.where(sine < 1.0, angle, np.inf)
            raise InputError(
                f"the pattern (2θ {lo:.4f}-{hi:.4f}° at λ = {source.wavelength:.6f} Å) does not cover the "
                f"network's grid (2θ {target.two_theta[0]:.4f}-{target.two_theta[-1]:.4f}° at "
                f"λ = {target.wavelength:.6f} Å), which needs 2θ {np.min(angle):.4f}-{np.max(reachable):.4f}° "
                "at this wavelength; measure a wider range or use a network trained on a narrower one"
            )
        angle = np.clip(angle, lo, hi)
        index = np.clip(np.searchsorted(source.two_theta, angle, side="right") - 1, 0, source.n_points - 2)
        left, right = source.two_theta[index], source.two_theta[index + 1]
        self.index = index
        self.weight = (angle - left) / (right - left)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Values on the target grid.

        Parameters
        ----------
        values : ndarray, shape (..., source n_points)

        Returns
        -------
        ndarray, shape (..., target n_points)
        """
        if self.identity:
            return values
        return values[..., self.index] * (1.0 - self.weight) + values[..., self.index + 1] * self.weight


# --- profiles -----------------------------------------------------------------------------------------------


class ProfileInputs:
    """Coordinates -> normalised difference profiles on the network's grid.

    ``inputs(frac)[j, :, 0] = resample((y_obs - y_calc_j) / σ) / scale``, with y_calc_j the engine's fitted
    profile of model j (:meth:`gasolve.scoring.Scorer.profiles`).

    Parameters
    ----------
    problem : ScoringProblem
        The engine's tables for the pattern the models are scored against.
    scale : float
        Global normalisation scale (:func:`fit_scale`; 1 for raw weighted residuals).
    grid : InputGrid, optional
        The network's grid; default the problem's own grid (no resampling).

    Raises
    ------
    InputError
        When the problem's pattern cannot be resampled onto ``grid``.
    """

    def __init__(self, problem: ScoringProblem, scale: float = 1.0, grid: InputGrid | None = None):
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale}")
        self.problem = problem
        self.scale = float(scale)
        self.source_grid = InputGrid.of_problem(problem)
        self.grid = self.source_grid if grid is None else grid
        self.resampler = Resampler(self.source_grid, self.grid)
        self._scorer = Scorer(problem)
        self._inverse_sigma = 1.0 / problem.pattern.sigma
        self._buffer = np.empty((0, problem.pattern.n_points))

    @property
    def n_points(self) -> int:
        """Length of the network input."""
        return self.grid.n_points

    def with_scale(self, scale: float) -> ProfileInputs:
        """The same inputs divided by another global scale."""
        return ProfileInputs(self.problem, scale, self.grid)

    def _chunk_buffer(self, n: int) -> np.ndarray:
        if len(self._buffer) < n:  # reused between calls: fresh pages cost more than the profiles themselves
            self._buffer = np.empty((n, self._buffer.shape[1]))
        return self._buffer[:n]

    def __call__(self, frac: np.ndarray) -> np.ndarray:
        """Network inputs of a batch of models.

        Parameters
        ----------
        frac : ndarray, shape (n_models, n_sites, 3)
            Fractional coordinates (any float dtype).

        Returns
        -------
        ndarray, shape (n_models, n_points, 1), float32
            On :attr:`grid`.
        """
        frac = np.asarray(frac)
        out = np.empty((len(frac), self.grid.n_points, 1), dtype=np.float32)
        for start in range(0, len(frac), PROFILE_CHUNK):
            stop = min(start + PROFILE_CHUNK, len(frac))
            buffer = self._chunk_buffer(stop - start)
            fit = self._scorer.profiles(frac[start:stop], out=buffer)
            residual = fit.difference * (self._inverse_sigma / self.scale)
            out[start:stop, :, 0] = self.resampler(residual)
        return out


def fit_scale(inputs: ProfileInputs, frac: np.ndarray) -> float:
    """Global normalisation scale: root mean square of (y_obs - y_calc)/σ over models and grid points.

    Parameters
    ----------
    inputs : ProfileInputs
        Its own scale is ignored.
    frac : ndarray, shape (n_models, n_sites, 3)
        A sample of training models.

    Returns
    -------
    float
        For one model the mean square over points is Rwp² Σ(y_obs/σ)² / n_points, so this is the weighted
        residual of a typical training model.
    """
    if len(frac) == 0:
        raise ValueError("need at least one model to fix the normalisation scale")
    raw = inputs.with_scale(1.0)(frac)
    return float(np.sqrt(np.mean(np.square(raw, dtype=np.float64))))


# --- splits, sampling, batches ------------------------------------------------------------------------------


def split_indices(
    seeds: np.ndarray, rng: np.random.Generator, validation_fraction: float = 0.2, by: str = "model"
) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation split of model indices.

    Parameters
    ----------
    seeds : ndarray, shape (n_models,), int
        GA run of each model.
    rng : numpy.random.Generator
    validation_fraction : float
        Share of models for validation (the paper: 0.2).
    by : str
        ``"model"``: a random share of models. ``"run"``: whole GA runs, drawn in random order until their
        models reach the share; models of one run are near-copies of each other, so this avoids leakage.

    Returns
    -------
    train, validation : ndarray of int64, sorted
    """
    seeds = np.asarray(seeds)
    n = len(seeds)
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {validation_fraction}")
    if by == "model":
        order = rng.permutation(n)
        n_validation = round(validation_fraction * n)
        if n >= 2:
            n_validation = min(max(n_validation, 1), n - 1)
        return np.sort(order[n_validation:]), np.sort(order[:n_validation])
    if by == "run":
        runs = np.unique(seeds)
        if len(runs) < 2:
            raise InputError(f'split = "run" needs models from at least 2 GA runs; this data set has {len(runs)}')
        runs = rng.permutation(runs)
        counts = np.array([np.count_nonzero(seeds == r) for r in runs])
        target = validation_fraction * n
        # whole runs into validation until the share is reached, keeping at least one run for training
        n_runs = int(np.searchsorted(np.cumsum(counts), target)) + 1
        n_runs = min(max(n_runs, 1), len(runs) - 1)
        validation = np.isin(seeds, runs[:n_runs])
        return np.flatnonzero(~validation), np.flatnonzero(validation)
    raise ValueError(f'by must be "model" or "run", got {by!r}')


class EpochSampler:
    """Draws training indices epoch after epoch, walking a shuffled pass and reshuffling when it is used up.

    The paper's 100 epochs of 1,200 patterns then visit ~120,000 models, each once per pass, instead of drawing
    with replacement.

    Parameters
    ----------
    indices : ndarray of int
    rng : numpy.random.Generator
    """

    def __init__(self, indices: np.ndarray, rng: np.random.Generator):
        self.indices = np.asarray(indices)
        if len(self.indices) == 0:
            raise ValueError("no training models")
        self.rng = rng
        self._order = rng.permutation(self.indices)
        self._cursor = 0

    def draw(self, n: int) -> np.ndarray:
        """The next ``n`` indices, shape (n,)."""
        out = []
        while n > 0:
            if self._cursor == len(self._order):
                self._order = self.rng.permutation(self.indices)
                self._cursor = 0
            take = min(n, len(self._order) - self._cursor)
            out.append(self._order[self._cursor : self._cursor + take])
            self._cursor += take
            n -= take
        return np.concatenate(out)


def batches(
    inputs: ProfileInputs, frac: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int
) -> Iterator[tuple[jnp.ndarray, jnp.ndarray]]:
    """Batches of network inputs and labels, in the order of ``indices``.

    Profiles are computed for several batches at once (up to :data:`PROFILE_CHUNK` models): one engine call
    per batch of 50 costs about three times as much per profile.

    Parameters
    ----------
    inputs : ProfileInputs
    frac : ndarray, shape (n_models, n_sites, 3)
    labels : ndarray, shape (n_models, n_sites)
    indices : ndarray of int
        Models to use; the last batch may be shorter.
    batch_size : int

    Yields
    ------
    x : jax Array, shape (batch, n_points, 1), float32
    y : jax Array, shape (batch, n_sites), float32
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    block = max(1, PROFILE_CHUNK // batch_size) * batch_size
    for first in range(0, len(indices), block):
        pick = indices[first : first + block]
        x = inputs(frac[pick])
        y = np.asarray(labels[pick], dtype=np.float32)
        for start in range(0, len(pick), batch_size):
            yield jnp.asarray(x[start : start + batch_size]), jnp.asarray(y[start : start + batch_size])
