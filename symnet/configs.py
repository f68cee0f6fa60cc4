"""Configuration of a symmetry-network run: frozen dataclasses read from one TOML file.

A config has four tables, every key optional (defaults below)::

    [data]      where the peak-list shards live and how they are built (sources, grid)
    [augment]   the random instrument of training patterns
    [model]     network class and hyper-parameters
    [train]     optimiser, schedule, splits, seed

Unknown tables and keys are refused with the file and key named. Relative paths are taken relative to the
config file. ``seed`` in [train] drives every random choice of training (NumPy ``Generator`` and the JAX key);
[data] has its own seed so that one data folder serves many trainings.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gasolve.errors import InputError
from gasolve.io.atomic import atomic_write
from gasolve.io.toml_file import read_toml, toml_text

MODEL_NAMES = ("PaperCNN", "ResidualCNN")


def _check(condition: bool, name: str, expected: str, value: Any) -> None:
    if not condition:
        raise InputError(f"{name}: expected {expected}, got {value!r}")


def _pair(value: Any, name: str, lo: float = -math.inf) -> tuple[float, float]:
    ok = isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int | float) for v in value)
    _check(ok and lo <= value[0] <= value[1], name, f"[low, high] with {lo} <= low <= high", value)
    return (float(value[0]), float(value[1]))


@dataclass(frozen=True)
class DataConfig:
    """Training structures and their peak lists.

    Attributes
    ----------
    directory : str
        Data folder (shards and catalogue, :mod:`symnet.dataset`); large, keep it outside the repository.
    mp_dir : str
        Folder with the Materials Project ``index.csv`` and ``structures.csv.gz``.
    max_mp : int
        Use a random subset of this many Materials Project structures (0: all 36,737).
    synthetic_per_group : int
        PyXtal crystals generated for every space group.
    synthetic_min_total : int
        More PyXtal crystals for groups with fewer Materials Project members, up to this total.
    shard_size : int
        Structures per Materials Project shard.
    grid : dict
        :class:`symnet.grid.PatternGrid` fields (start, step, n_points, wavelength, pool).
    seed : int
    """

    directory: str = "runs/symmetry/data"
    mp_dir: str = "../shared/data/mp-structures"
    max_mp: int = 0
    synthetic_per_group: int = 10
    synthetic_min_total: int = 50
    shard_size: int = 1024
    grid: dict = field(default_factory=lambda: {"start": 5.0, "step": 0.01, "n_points": 10_000, "pool": 4})
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_mp", "synthetic_per_group", "synthetic_min_total", "seed"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 0, name, "an integer >= 0", value
            )
        _check(isinstance(self.shard_size, int) and self.shard_size > 0, "shard_size", "a positive integer", 0)
        from symnet.grid import PatternGrid

        try:
            PatternGrid(**self.grid)
        except (TypeError, ValueError) as error:
            raise InputError(f"grid: {error}") from None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AugmentConfig:
    """Random instrument of each training pattern (ranges are [low, high], drawn uniformly unless noted).

    Attributes
    ----------
    paper_fraction : float
        Share of patterns made exactly as in the paper: constant FWHM ``paper_fwhm``, η 0.5, Kα1, linear
        background, no noise.
    paper_fwhm : float
        Degrees.
    fwhm : [low, high]
        FWHM at low angle (Caglioti W = FWHM²), degrees.
    caglioti_u : [low, high]
        Caglioti U (degrees²): the growth of the width with tan θ.
    eta : [low, high]
        Lorentzian fraction.
    zero : [low, high]
        Zero shift (degrees).
    b_overall : [low, high]
        Overall displacement parameter B (Å²).
    kalpha2_probability : float
        Chance of adding Cu Kα2 at half the Kα1 weight.
    intensity_jitter : float
        Standard deviation of a log-normal factor on every peak's intensity (texture, model errors).
    background : [low, high]
        Background height as a fraction of the strongest peak.
    counts : [low, high]
        Counts of the strongest point, drawn log-uniformly; Poisson noise.
    noise_probability : float
        Chance that a pattern gets counting noise.
    range_probability : float
        Chance that the measured 2θ range is cut short.
    two_theta_max : [low, high]
        Where a cut range ends (degrees).
    two_theta_min : [low, high]
        Where a cut range starts (degrees).
    """

    paper_fraction: float = 0.2
    paper_fwhm: float = 0.1
    fwhm: tuple[float, float] = (0.04, 0.25)
    caglioti_u: tuple[float, float] = (0.0, 0.03)
    eta: tuple[float, float] = (0.0, 1.0)
    zero: tuple[float, float] = (-0.08, 0.08)
    b_overall: tuple[float, float] = (0.0, 2.5)
    kalpha2_probability: float = 0.5
    intensity_jitter: float = 0.15
    background: tuple[float, float] = (0.0, 0.3)
    counts: tuple[float, float] = (300.0, 100_000.0)
    noise_probability: float = 0.8
    range_probability: float = 0.4
    two_theta_max: tuple[float, float] = (60.0, 105.0)
    two_theta_min: tuple[float, float] = (5.0, 12.0)

    def __post_init__(self) -> None:
        for name in ("paper_fraction", "kalpha2_probability", "noise_probability", "range_probability"):
            value = getattr(self, name)
            _check(isinstance(value, int | float) and 0 <= value <= 1, name, "a probability in [0, 1]", value)
        _check(0 < self.paper_fwhm < 2, "paper_fwhm", "a FWHM in (0, 2) degrees", self.paper_fwhm)
        _check(0 <= self.intensity_jitter < 2, "intensity_jitter", "a number in [0, 2)", self.intensity_jitter)
        bounds = {"fwhm": 1e-3, "caglioti_u": 0.0, "eta": 0.0, "b_overall": 0.0, "background": 0.0, "counts": 1.0}
        for name in (
            "fwhm",
            "caglioti_u",
            "eta",
            "zero",
            "b_overall",
            "background",
            "counts",
            "two_theta_max",
            "two_theta_min",
        ):
            object.__setattr__(self, name, _pair(getattr(self, name), name, bounds.get(name, -math.inf)))
        _check(self.eta[1] <= 1, "eta", "values in [0, 1]", self.eta)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelConfig:
    """Network class (``PaperCNN`` or ``ResidualCNN``, :mod:`symnet.models`) and its keyword arguments."""

    name: str = "ResidualCNN"
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.name in MODEL_NAMES, "name", f"one of {', '.join(MODEL_NAMES)}", self.name)
        _check(isinstance(self.options, dict), "options", "a table", self.options)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule, splits and evaluation.

    Attributes
    ----------
    workdir : str
        Where checkpoints, metrics and splits are written.
    epochs : int
    steps_per_epoch : int
        0: one pass over the training structures.
    batch_size : int
    learning_rate : float
        Peak Adam(W) step size, reached after ``warmup_steps`` and then cosine-decayed to zero.
    warmup_steps : int
    weight_decay : float
    label_smoothing : float
        Share of the target mass spread uniformly over the classes (Szegedy et al. 2016).
    system_weight : float
        Weight of the crystal-system cross-entropy in the summed loss (the paper: 1).
    test_fraction : float
        Stratified test share per space group (the paper: 0.2, plus one per class).
    composition_test_fraction : float
        Share of chemical systems held out entirely (the second test split).
    validation_fraction : float
        Share of the training structures kept for model selection and temperature scaling.
    max_train : int
        Train on at most this many structures (0: all).
    eval_size : int
        Structures of each held-out split rendered for the per-epoch evaluation (0: all).
    abstain_threshold : float
        ``classify`` reports no space group when the calibrated top probability is below this.
    init_checkpoint : str
        Start from the weights of this checkpoint (same model and grid) instead of a random initialisation;
        "" for none. Continues a run with a new schedule.
    seed : int
    """

    workdir: str = "runs/symmetry/train"
    epochs: int = 10
    steps_per_epoch: int = 0
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    system_weight: float = 1.0
    test_fraction: float = 0.2
    composition_test_fraction: float = 0.1
    validation_fraction: float = 0.05
    max_train: int = 0
    eval_size: int = 2000
    abstain_threshold: float = 0.3
    init_checkpoint: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value > 0, name, "a positive integer", value
            )
        for name in ("steps_per_epoch", "warmup_steps", "max_train", "eval_size", "seed"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 0, name, "an integer >= 0", value
            )
        for name in ("learning_rate", "system_weight"):
            value = getattr(self, name)
            _check(isinstance(value, int | float) and value > 0, name, "a positive number", value)
        for name in ("weight_decay", "label_smoothing"):
            value = getattr(self, name)
            _check(isinstance(value, int | float) and 0 <= value < 1, name, "a number in [0, 1)", value)
        for name in ("test_fraction", "composition_test_fraction", "validation_fraction", "abstain_threshold"):
            value = getattr(self, name)
            _check(isinstance(value, int | float) and 0 <= value < 1, name, "a number in [0, 1)", value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SymmetryConfig:
    """A whole run: data, augmentation, model and training."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return {name: getattr(self, name).to_dict() for name in ("data", "augment", "model", "train")}

    @classmethod
    def from_dict(cls, values: dict, source: str = "symmetry config", base: Path | None = None) -> SymmetryConfig:
        """Build from nested dicts, refusing unknown tables and keys; relative paths resolved against ``base``."""
        tables = {"data": DataConfig, "augment": AugmentConfig, "model": ModelConfig, "train": TrainConfig}
        unknown = sorted(set(values) - set(tables))
        if unknown:
            raise InputError(f"unknown table [{unknown[0]}]; allowed: {', '.join(tables)}", source)
        parts = {}
        for name, kind in tables.items():
            table = dict(values.get(name, {}))
            names = [f.name for f in dataclasses.fields(kind)]
            for key in table:
                if key not in names:
                    close = difflib.get_close_matches(key, names, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise InputError(f"unknown key {key!r}{hint}; allowed: {', '.join(names)}", f"{source}: [{name}]")
            if base is not None:
                for key in ("directory", "mp_dir", "workdir", "init_checkpoint"):
                    value = table.get(key)
                    if isinstance(value, str) and value and not Path(value).is_absolute():
                        table[key] = str((base / table[key]).resolve())
            try:
                parts[name] = kind(**table)
            except InputError as error:
                raise InputError(error.message, f"{source}: [{name}]") from None
            except TypeError as error:
                raise InputError(str(error), f"{source}: [{name}]") from None
        return cls(**parts)


def load_config(path: str | Path) -> SymmetryConfig:
    """Read a TOML config; relative paths inside it are relative to the file.

    Raises
    ------
    InputError
        Unreadable file, invalid TOML, unknown table or key, bad value; the message names the file.
    """
    path = Path(path)
    raw = read_toml(path, "config")
    return SymmetryConfig.from_dict(raw, str(path), base=path.resolve().parent)


def to_toml(config: SymmetryConfig) -> str:
    """The resolved config as TOML text that :func:`load_config` reads back to an equal config."""
    return toml_text(config.to_dict())


def write_config(config: SymmetryConfig, path: str | Path) -> None:
    """Write :func:`to_toml` to ``path`` (atomically)."""
    atomic_write(path, to_toml(config))
