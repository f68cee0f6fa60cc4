"""Harvested GA models of a known structure: an appendable, resumable data set of sharded ``.npz`` files.

The training data of the selection network of Zaloga, Stanovov, Bezrukova, Dubinin & Yakimov, J. Sib. Fed. Univ.
Chem. 12 (2019) 188-200 (part 2): every model a GA evaluated while solving a known structure, with the distance
of each of its sites to the true structure, from which the per-site labels "this atom is in place" are drawn at
any radius (0.1 Å in the paper).

Layout of a data set folder (format ``gasolve-harvest-1``)::

    manifest.json        provenance and the list of shards (below)
    pattern.xye          the observed pattern, restricted to the config's 2θ range
    shard-00000.npz      one per completed GA run, in the order the runs finished
    shard-00001.npz
    report.json          base rates and co-occurrence (written by nnselect.harvest)

Each shard holds, for its n models:

==============  =========================  ===============================================================
``frac``        float32 (n, n_sites, 3)    fractional coordinates of the model's sites, wrapped to [0, 1)
``rwp``         float32 (n,)               Rwp of the model (without the anti-bump penalty)
``generation``  int32 (n,)                 generation that produced it; -1 for the initial population
``seed``        int32 (n,)                 seed of the GA run
``distances``   float32 (n, n_sites), Å    per model site, distance to the nearest reference atom of its
                                           element after the best normaliser alignment
                                           (:func:`gasolve.compare.site_distances_batch`)
==============  =========================  ===============================================================

Sites are the models' sites in the config's order (labels Sn1, K1, ... from :func:`gasolve.solve.site_labels`):
the model's K2 is in place when any reference K atom lies within the radius, whichever reference label it has,
since atoms of one element are interchangeable. Labels compare in float32: ``distances <= radius``.

The manifest holds ``format``, ``name``, ``elements``, ``site_labels``, ``config_toml`` (the resolved run
config), ``reference_cif`` (the reference CIF text), ``pattern_file``, ``pattern_sha256``, ``two_theta``
(``start``, ``stop``, ``n_points``), ``wavelength`` ([[λ Å, weight], ...]), ``profile``, ``background_terms``,
``versions``, ``settings`` (the GA settings), ``harvest`` (the run stopping rule), ``seeds_done``, ``shards``
([{"file", "seed", "n_models", ...}]) and ``n_models``.

Writes are atomic: a shard is written to a temporary file, flushed to disk and renamed; the manifest is then
rewritten the same way. A shard on disk but not in the manifest (a process killed between the two renames) is
not part of the data set and is overwritten by the next run appended. One process writes a data set at a time.

This module is the only code that reads or writes the format: :class:`HarvestDataset` opens, creates, appends to
and reads a folder (the harvest writes through it, training reads through it); :meth:`HarvestDataset.models`
returns the whole set in memory as :class:`HarvestedModels` (read-only arrays and the typed :class:`Manifest`),
which is what the input pipeline and training use.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gasolve.errors import InputError
from gasolve.io.atomic import atomic_write, atomic_writer
from gasolve.io.patterns import ObservedPattern, format_xye, read_pattern

#: Format tag of the manifest.
FORMAT = "gasolve-harvest-1"
MANIFEST = "manifest.json"
PATTERN_FILE = "pattern.xye"
REPORT = "report.json"
#: Fields of a shard with their dtypes.
FIELDS: dict[str, type] = {
    "frac": np.float32,
    "rwp": np.float32,
    "generation": np.int32,
    "seed": np.int32,
    "distances": np.float32,
}
#: Label radii (Å) reported by default: the paper's 0.1 Å and two wider ones.
REPORT_RADII = (0.1, 0.3, 0.5)

_REQUIRED_KEYS = (
    "format",
    "name",
    "elements",
    "site_labels",
    "config_toml",
    "reference_cif",
    "pattern_file",
    "two_theta",
    "wavelength",
    "profile",
    "background_terms",
    "versions",
    "seeds_done",
    "shards",
    "n_models",
    "settings",
)


def versions() -> dict[str, str]:
    """Versions of Python, NumPy, Numba and gasolve, recorded in every manifest."""
    import numba

    from gasolve import __version__

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "gasolve": __version__,
    }


def wrap_frac(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates wrapped to [0, 1) in float32.

    Rounding a value just below 1 to float32 can give exactly 1.0; such values become 0.0 (the same point).

    Parameters
    ----------
    frac : ndarray, any shape

    Returns
    -------
    ndarray, same shape, float32, every value in [0, 1)
    """
    out = np.mod(np.asarray(frac, dtype=float), 1.0).astype(np.float32)
    out[out >= 1.0] = 0.0
    return out


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(path, text)


def _number(value: float) -> float | None:
    """A float for JSON; None for NaN (a rate over no models), which JSON cannot hold."""
    return float(value) if math.isfinite(value) else None


def _shape(field: str, n_models: int, n_sites: int) -> tuple[int, ...]:
    """Shape of a shard field (see the table in the module docstring)."""
    return {"frac": (n_models, n_sites, 3), "distances": (n_models, n_sites)}.get(field, (n_models,))


def _check_radius(radius: float) -> float:
    if isinstance(radius, bool) or not isinstance(radius, int | float) or not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number of Å, got {radius!r}")
    return float(radius)


def pattern_text(name: str, observed: ObservedPattern) -> str:
    """Text of ``pattern.xye``: the observed pattern (2θ degrees, intensity, esd) with a header."""
    header = [f"observed pattern of {name} used by this harvest, from {observed.source}"]
    return format_xye(observed.two_theta, observed.y_obs, observed.sigma, header=header)


def new_manifest(
    *,
    name: str,
    elements: Sequence[str],
    config_toml: str,
    reference_cif: str,
    observed: ObservedPattern,
    wavelength: Sequence[Sequence[float]],
    profile: dict[str, Any],
    background_terms: int,
    settings: dict[str, Any],
    harvest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest of a data set with no runs yet.

    Parameters
    ----------
    name : str
        Structure name.
    elements : sequence of str, length n_sites
        Element of each site of the models, in the order of the config's ``sites``.
    config_toml : str
        The resolved run config (:func:`gasolve.config.resolved_toml`).
    reference_cif : str
        Text of the reference CIF.
    observed : ObservedPattern
        The observed pattern, already restricted to the 2θ range used.
    wavelength : sequence of (λ Å, weight)
        Emission lines.
    profile : dict
        Peak-profile parameters (Caglioti U, V, W in degrees², η, η slope per degree, zero in degrees, cut-off
        in FWHM, monochromator 2θ in degrees).
    background_terms : int
        Chebyshev background terms of the fit.
    settings : dict
        GA settings used (the flat ``[ga]`` keys, :meth:`gasolve.ga.settings.GASettings.flat`).
    harvest : dict, optional
        How runs were stopped (compared when a harvest resumes).

    Returns
    -------
    dict
        JSON values only.
    """
    from gasolve.solve import site_labels

    elements = [str(e) for e in elements]
    manifest = {
        "format": FORMAT,
        "name": name,
        "elements": elements,
        "site_labels": site_labels(elements),
        "config_toml": config_toml,
        "reference_cif": reference_cif,
        "pattern_file": PATTERN_FILE,
        "pattern_sha256": hashlib.sha256(pattern_text(name, observed).encode("utf-8")).hexdigest(),
        "two_theta": {
            "start": float(observed.two_theta[0]),
            "stop": float(observed.two_theta[-1]),
            "n_points": int(observed.n_points),
        },
        "wavelength": [[float(w), float(weight)] for w, weight in wavelength],
        "profile": dict(profile),
        "background_terms": int(background_terms),
        "versions": versions(),
        "settings": dict(settings),
        "harvest": dict(harvest or {}),
        "seeds_done": [],
        "shards": [],
        "n_models": 0,
    }
    return json.loads(json.dumps(manifest))  # tuples become lists, as they read back


def _identity(manifest: dict) -> dict:
    """The manifest entries that must agree for runs to be added to a data set."""
    ignored = ("seed", "checkpoint_seconds")
    keys = ("name", "elements", "reference_cif", "pattern_sha256", "two_theta", "wavelength", "profile")
    return {
        **{key: manifest.get(key) for key in (*keys, "background_terms", "harvest")},
        "settings": {k: v for k, v in manifest.get("settings", {}).items() if k not in ignored},
    }


@dataclass(frozen=True)
class Manifest:
    """Typed view of the manifest entries that reading a data set needs (the writer keeps the whole dict).

    Attributes
    ----------
    name : str
    elements : tuple of str, length n_sites
    site_labels : tuple of str, length n_sites
        Site names (the order of the network's outputs).
    config_toml : str
        The resolved run config of the harvest.
    reference_cif : str
    pattern_file : str
        Observed pattern restricted to the fitted range, relative to the data set folder.
    two_theta : (float, float, int)
        start, stop (degrees) and n_points of the pattern's grid.
    wavelength : tuple of (float, float)
        Emission lines (Å, relative weight); the first is the primary line.
    profile : dict
    background_terms : int
    shards : tuple of (file, seed, n_models)
    n_models : int
    """

    name: str
    elements: tuple[str, ...]
    site_labels: tuple[str, ...]
    config_toml: str
    reference_cif: str
    pattern_file: str
    two_theta: tuple[float, float, int]
    wavelength: tuple[tuple[float, float], ...]
    profile: dict
    background_terms: int
    shards: tuple[tuple[str, int, int], ...]
    n_models: int

    @property
    def n_sites(self) -> int:
        return len(self.elements)


def check_manifest(data: Any, source: str = MANIFEST) -> Manifest:
    """Check a parsed ``manifest.json`` and return its typed view.

    Parameters
    ----------
    data : any
        The parsed JSON.
    source : str
        Where it came from, for messages.

    Returns
    -------
    Manifest

    Raises
    ------
    InputError
        Another format, a missing key, a malformed value, site lists of different lengths, no wavelength, or
        ``n_models`` different from the sum over the shards.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise InputError(f"not a harvested data set: {MANIFEST} has format {found!r}, expected {FORMAT!r}", source)
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise InputError(f"{MANIFEST} lacks {', '.join(missing)}", source)
    try:
        grid = data["two_theta"]
        manifest = Manifest(
            name=str(data["name"]),
            elements=tuple(str(e) for e in data["elements"]),
            site_labels=tuple(str(s) for s in data["site_labels"]),
            config_toml=str(data["config_toml"]),
            reference_cif=str(data["reference_cif"]),
            pattern_file=str(data["pattern_file"]),
            two_theta=(float(grid["start"]), float(grid["stop"]), int(grid["n_points"])),
            wavelength=tuple((float(w), float(x)) for w, x in data["wavelength"]),
            profile=dict(data["profile"]),
            background_terms=int(data["background_terms"]),
            shards=tuple((str(s["file"]), int(s["seed"]), int(s["n_models"])) for s in data["shards"]),
            n_models=int(data["n_models"]),
        )
    except KeyError as error:
        raise InputError(f"malformed {MANIFEST}: missing key {error.args[0]!r}", source) from None
    except (TypeError, ValueError) as error:
        raise InputError(f"malformed {MANIFEST}: {error}", source) from None
    if len(manifest.site_labels) != manifest.n_sites or manifest.n_sites == 0:
        raise InputError(
            f"{len(manifest.elements)} elements but {len(manifest.site_labels)} site labels (need equal, > 0)", source
        )
    if sum(n for _, _, n in manifest.shards) != manifest.n_models:
        raise InputError("n_models differs from the sum over the shards", source)
    if not manifest.wavelength:
        raise InputError("no wavelength given", source)
    return manifest


def parse_manifest(text: str, source: str = MANIFEST) -> dict[str, Any]:
    """Parse and check the text of ``manifest.json`` (:func:`check_manifest`); returns the whole dict.

    Raises
    ------
    InputError
        Not JSON, or any fault :func:`check_manifest` finds.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"not a harvested data set: cannot read {MANIFEST} ({error})", source) from None
    check_manifest(data, source)
    return data


def in_place(distances: np.ndarray, radius: float) -> np.ndarray:
    """The per-site labels: ``distances <= radius`` (Å), same shape, bool (the paper's label at 0.1 Å).

    Raises
    ------
    ValueError
        When ``radius`` is not a positive number.
    """
    return np.asarray(distances) <= _check_radius(radius)


@dataclass(frozen=True)
class HarvestedModels:
    """All models of a data set in memory, arrays read-only (:meth:`HarvestDataset.models`).

    Attributes
    ----------
    directory : Path
        The data set folder.
    manifest : Manifest
    frac : ndarray, shape (n_models, n_sites, 3), float32
    rwp : ndarray, shape (n_models,), float32
    generation : ndarray, shape (n_models,), int32
    seed : ndarray, shape (n_models,), int32
        GA run each model came from.
    distances : ndarray, shape (n_models, n_sites), float32
        Å from each site to its true position.
    """

    directory: Path
    manifest: Manifest
    frac: np.ndarray
    rwp: np.ndarray
    generation: np.ndarray
    seed: np.ndarray
    distances: np.ndarray

    @property
    def n_models(self) -> int:
        return len(self.frac)

    @property
    def n_sites(self) -> int:
        return self.manifest.n_sites

    def labels(self, radius: float) -> np.ndarray:
        """Network targets: 1.0 where the site lies within ``radius`` Å, shape (n_models, n_sites), float32."""
        return in_place(self.distances, radius).astype(np.float32)

    def subset(self, indices: np.ndarray) -> HarvestedModels:
        """The models at ``indices`` (in that order)."""
        pick = {name: _readonly(getattr(self, name)[indices]) for name in FIELDS}
        return HarvestedModels(self.directory, self.manifest, **pick)


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def load_dataset(path: str | Path) -> HarvestedModels:
    """Open a data set and read all its models into memory: ``HarvestDataset.open(path).models()``."""
    return HarvestDataset.open(path).models()


class HarvestDataset:
    """A harvest data set folder: open or create it, append GA runs, load arrays and labels.

    Use :meth:`open` or :meth:`create`; the constructor only wraps an already validated manifest.

    Parameters
    ----------
    path : Path
        The data set folder.
    manifest : dict
        Its parsed ``manifest.json``.
    """

    def __init__(self, path: Path, manifest: dict):
        self.path = Path(path)
        self._manifest = manifest

    # --- opening and creating -----------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, name: str | None = None, elements: Sequence[str] | None = None):
        """Open an existing data set.

        Parameters
        ----------
        path : str or Path
            The data set folder.
        name : str, optional
            Structure name the data set must hold.
        elements : sequence of str, optional
            Elements of the sites (in order) the data set must hold.

        Returns
        -------
        HarvestDataset

        Raises
        ------
        InputError
            If ``path`` is not a folder, holds no readable ``manifest.json`` of format ``gasolve-harvest-1``,
            lists a shard that is missing, or holds another structure than ``name``/``elements``.
        """
        path = Path(path)
        source = str(path)
        if not path.is_dir():
            raise InputError("no such harvested data set folder", source)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise InputError(f"not a harvested data set: no {MANIFEST} in the folder", source)
        try:
            text = manifest_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"not a harvested data set: cannot read {MANIFEST} ({error})", source) from None
        manifest = parse_manifest(text, source)
        for shard in manifest["shards"]:
            if not (path / shard["file"]).is_file():
                raise InputError(
                    f"shard {shard['file']} (seed {shard['seed']}) listed in {MANIFEST} is missing", source
                )
        dataset = cls(path, manifest)
        dataset.check_structure(name=name, elements=elements)
        return dataset

    @classmethod
    def create(cls, path: str | Path, **provenance: Any) -> HarvestDataset:
        """Create an empty data set: write ``pattern.xye`` and a manifest with no shards.

        Parameters
        ----------
        path : str or Path
            Folder to create (or an existing empty one).
        **provenance
            The keyword arguments of :func:`new_manifest`.

        Returns
        -------
        HarvestDataset

        Raises
        ------
        InputError
            If ``path`` exists and is not an empty folder, or cannot be created.
        """
        path = Path(path)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise InputError(
                "cannot create a harvested data set here: the path exists and is not an empty folder", str(path)
            )
        manifest = new_manifest(**provenance)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"cannot create the data set folder: {error.strerror}", str(path)) from None
        text = pattern_text(manifest["name"], provenance["observed"])
        atomic_write(path / PATTERN_FILE, text)
        _write_json(path / MANIFEST, manifest)
        return cls(path, manifest)

    def check_same_source(self, manifest: dict) -> None:
        """Raise :class:`InputError` unless ``manifest`` (of runs one would add) describes the same harvest.

        Compared: structure, reference, pattern, instrument, GA settings other than ``seed`` and
        ``checkpoint_seconds``, and the ``harvest`` rule (how runs stop).
        """
        theirs, ours = _identity(self._manifest), _identity(manifest)
        differ = [key for key in theirs if theirs[key] != ours[key]]
        if differ:
            raise InputError(
                f"the data set was harvested with a different {', '.join(differ)}; harvest into another folder "
                "or with the same config and options",
                str(self.path),
            )

    def check_structure(self, *, name: str | None = None, elements: Sequence[str] | None = None) -> None:
        """Raise :class:`InputError` unless the data set holds the structure ``name`` with sites ``elements``."""
        if name is not None and name != self.name:
            raise InputError(f"the data set holds models of {self.name}, not {name}", str(self.path))
        if elements is not None and list(elements) != self.elements:
            raise InputError(
                f"the data set holds models with sites {self.elements}, not {list(elements)}", str(self.path)
            )

    # --- properties ---------------------------------------------------------------------------------------------

    @property
    def manifest(self) -> dict:
        """A copy of the manifest (editing it does not change the data set)."""
        return json.loads(json.dumps(self._manifest))

    @property
    def info(self) -> Manifest:
        """The typed view of the manifest (:class:`Manifest`)."""
        return check_manifest(self._manifest, str(self.path / MANIFEST))

    @property
    def name(self) -> str:
        return self._manifest["name"]

    @property
    def elements(self) -> list[str]:
        return list(self._manifest["elements"])

    @property
    def site_labels(self) -> list[str]:
        return list(self._manifest["site_labels"])

    @property
    def n_sites(self) -> int:
        return len(self._manifest["elements"])

    @property
    def n_models(self) -> int:
        return int(self._manifest["n_models"])

    @property
    def n_runs(self) -> int:
        return len(self._manifest["shards"])

    @property
    def seeds_done(self) -> list[int]:
        return list(self._manifest["seeds_done"])

    def observed(self) -> ObservedPattern:
        """The observed pattern stored with the data set (``pattern.xye``), on the grid the models were scored."""
        return read_pattern(self.path / self._manifest["pattern_file"])

    # --- writing ------------------------------------------------------------------------------------------------

    def append_run(self, seed: int, arrays: dict[str, np.ndarray], info: dict[str, Any] | None = None) -> None:
        """Add the models of one completed GA run as a new shard, then rewrite the manifest.

        Parameters
        ----------
        seed : int
            Seed of the run; must not be in the data set yet.
        arrays : dict
            ``frac`` (n, n_sites, 3) fractional, ``rwp`` (n,), ``generation`` (n,) and ``distances``
            (n, n_sites) in Å; ``seed`` (n,) may be given and must then equal ``seed``. Converted to the
            dtypes of :data:`FIELDS`; ``frac`` is wrapped to [0, 1).
        info : dict, optional
            Extra facts about the run stored in its manifest entry (JSON values).

        Raises
        ------
        ValueError
            If the seed is already in the data set or outside int32, or an array is missing, has the wrong
            shape or holds non-finite values (Rwp may be +inf for a model the engine could not score).
        """
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**31:
            raise ValueError(f"seed must be an integer in [0, 2**31), got {seed!r}")
        seed = int(seed)
        if seed in self._manifest["seeds_done"]:
            raise ValueError(f"seed {seed} is already in the data set {self.path}")
        shard = self._validated(seed, arrays)
        n_models = len(shard["rwp"])
        file = f"shard-{len(self._manifest['shards']):05d}.npz"
        with atomic_writer(self.path / file) as stream:
            np.savez(stream, **shard)
        manifest = self.manifest
        manifest["shards"].append({"file": file, "seed": seed, "n_models": n_models, **(info or {})})
        manifest["seeds_done"].append(seed)
        manifest["n_models"] = int(manifest["n_models"]) + n_models
        _write_json(self.path / MANIFEST, manifest)
        self._manifest = manifest

    def _validated(self, seed: int, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [key for key in ("frac", "rwp", "generation", "distances") if key not in arrays]
        if missing:
            raise ValueError(f"arrays lack {', '.join(missing)}")
        unknown = sorted(set(arrays) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown arrays {unknown}; a shard holds {list(FIELDS)}")
        frac = np.asarray(arrays["frac"])
        n = len(frac)
        if n == 0:
            raise ValueError("a run must hold at least one model")
        shard = {}
        for key in FIELDS:
            shape = _shape(key, n, self.n_sites)
            value = np.asarray(arrays.get(key, np.full(n, seed)))
            if value.shape != shape:
                raise ValueError(f"{key} must have shape {shape}, got {value.shape}")
            if key in ("frac", "distances") and not np.all(np.isfinite(value)):
                raise ValueError(f"{key} holds NaN or infinite values")
            shard[key] = value.astype(FIELDS[key])
        if np.any(np.isnan(shard["rwp"])):
            raise ValueError("rwp holds NaN")
        if np.any(shard["distances"] < 0):
            raise ValueError("distances must be >= 0 (Å)")
        if np.any(shard["seed"] != seed):
            raise ValueError(f"the seed array differs from the run's seed {seed}")
        if np.any(shard["generation"] < -1):
            raise ValueError("generation must be >= -1 (-1: initial population)")
        shard["frac"] = wrap_frac(frac)
        return shard

    def write_report(self, radii: Sequence[float] = REPORT_RADII) -> dict[str, Any]:
        """Compute :meth:`report` and write it to ``report.json`` (atomically); returns it."""
        report = self.report(radii)
        _write_json(self.path / REPORT, report)
        return report

    # --- reading ------------------------------------------------------------------------------------------------

    def _shards(self, fields: Sequence[str], max_models: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """The shards in order, each a dict of the requested fields, cut so that at most max_models come out.

        Raises
        ------
        InputError
            A shard that cannot be read, lacks a field, or holds arrays of another shape or dtype than the
            manifest and :data:`FIELDS` say.
        """
        left = math.inf if max_models is None else max_models
        for entry in self._manifest["shards"]:
            if left <= 0:
                return
            take = int(min(left, entry["n_models"]))
            source = str(self.path / entry["file"])
            try:
                with np.load(self.path / entry["file"], allow_pickle=False) as data:
                    shard = {key: data[key] for key in fields}
            except KeyError as error:
                raise InputError(f"shard lacks the array {error.args[0]}", source) from None
            except (OSError, ValueError) as error:
                raise InputError(f"cannot read shard: {error}", source) from None
            for key, value in shard.items():
                expected = _shape(key, entry["n_models"], self.n_sites)
                if value.shape != expected or value.dtype != FIELDS[key]:
                    raise InputError(
                        f"{key} is {value.dtype} {value.shape}, expected {np.dtype(FIELDS[key])} {expected} "
                        f"(manifest: {entry['n_models']} models)",
                        source,
                    )
                shard[key] = value[:take]
            left -= take
            yield shard

    def load(self, fields: Sequence[str] | None = None, max_models: int | None = None) -> dict[str, np.ndarray]:
        """The models of every shard (in the manifest's order), concatenated.

        Parameters
        ----------
        fields : sequence of str, optional
            Which of ``frac``, ``rwp``, ``generation``, ``seed``, ``distances`` to load (default all).
        max_models : int, optional
            Load only the first ``max_models`` models.

        Returns
        -------
        dict of str to ndarray
            ``frac`` (n, n_sites, 3) float32, ``rwp`` (n,) float32, ``generation`` (n,) int32, ``seed`` (n,)
            int32, ``distances`` (n, n_sites) float32 in Å.
        """
        fields = list(FIELDS) if fields is None else list(fields)
        unknown = [key for key in fields if key not in FIELDS]
        if unknown:
            raise ValueError(f"unknown fields {unknown}; a shard holds {list(FIELDS)}")
        if max_models is not None and (isinstance(max_models, bool) or max_models < 0):
            raise ValueError(f"max_models must be >= 0, got {max_models!r}")
        parts = {key: [np.zeros(_shape(key, 0, self.n_sites), FIELDS[key])] for key in fields}
        for shard in self._shards(fields, max_models):
            for key in fields:
                parts[key].append(shard[key])
        return {key: np.concatenate(value) for key, value in parts.items()}

    def labels(self, radius: float = 0.1, max_models: int | None = None) -> np.ndarray:
        """Per-site labels: whether each model site lies within ``radius`` Å of a reference atom of its element.

        Parameters
        ----------
        radius : float
            Å (0.1 in the paper).
        max_models : int, optional

        Returns
        -------
        ndarray, shape (n_models, n_sites), bool
        """
        return in_place(self.load(["distances"], max_models)["distances"], radius)

    def models(self, max_models: int | None = None) -> HarvestedModels:
        """Every model (or the first ``max_models``) in memory, with the typed manifest.

        Returns
        -------
        HarvestedModels
            Read-only arrays of the dtypes of :data:`FIELDS`.
        """
        arrays = {key: _readonly(value) for key, value in self.load(None, max_models).items()}
        return HarvestedModels(self.path, self.info, **arrays)

    def _counts(self, radii: Sequence[float]) -> tuple[int, np.ndarray]:
        """Models and pair counts: (n, C) with C[r, i, j] = models with sites i and j both within radii[r]."""
        radii = [_check_radius(r) for r in radii]
        pairs = np.zeros((len(radii), self.n_sites, self.n_sites), dtype=np.int64)
        n = 0
        for shard in self._shards(["distances"]):
            distances = shard["distances"]
            n += len(distances)
            for r, radius in enumerate(radii):
                inside = (distances <= radius).astype(np.int64)
                pairs[r] += inside.T @ inside
        return n, pairs

    def base_rates(self, radius: float = 0.1) -> np.ndarray:
        """Share of models in which each site is in place (within ``radius`` Å).

        Returns
        -------
        ndarray, shape (n_sites,)
            NaN when the data set holds no models.
        """
        return np.diag(self.cooccurrence(radius)).copy()

    def cooccurrence(self, radius: float = 0.1) -> np.ndarray:
        """P(site i and site j both in place) over the models; the diagonal holds the base rates.

        Returns
        -------
        ndarray, shape (n_sites, n_sites)
            Symmetric; NaN when the data set holds no models.
        """
        n, pairs = self._counts([radius])
        return pairs[0] / n if n else np.full((self.n_sites, self.n_sites), np.nan)

    def report(self, radii: Sequence[float] = REPORT_RADII) -> dict[str, Any]:
        """Base rates and co-occurrence of in-place sites at each radius, with counts of models and runs.

        Returns
        -------
        dict
            ``name``, ``n_models``, ``n_runs``, ``runs_solved``, ``site_labels``, ``radii``, and per radius
            (keys ``"0.1"`` etc.): ``base_rates`` ({label: share}), ``cooccurrence`` (n_sites × n_sites list,
            P(both in place)), ``conditional`` (P(j in place | i in place), rows i), ``all_sites`` (share with
            every site in place) and ``mean_sites`` (mean number of sites in place). Rates that are undefined
            (no models, or a site never in place for ``conditional``) are None.
        """
        n, pairs = self._counts(radii)
        labels = self.site_labels
        out: dict[str, Any] = {
            "name": self.name,
            "n_models": n,
            "n_runs": self.n_runs,
            "runs_solved": sum(1 for s in self._manifest["shards"] if s.get("solved_generation") is not None),
            "site_labels": labels,
            "radii": [float(r) for r in radii],
        }
        all_sites = self._all_sites(radii)
        for r, radius in enumerate(radii):
            joint = pairs[r] / n if n else np.full(pairs[r].shape, np.nan)
            base = np.diag(joint)
            with np.errstate(invalid="ignore", divide="ignore"):
                conditional = joint / base[:, None]
            out[f"{float(radius):g}"] = {
                "base_rates": {label: _number(b) for label, b in zip(labels, base, strict=True)},
                "cooccurrence": [[_number(x) for x in row] for row in joint],
                "conditional": [[_number(x) for x in row] for row in conditional],
                "all_sites": _number(all_sites[r] / n) if n else None,
                "mean_sites": _number(np.sum(base)),
            }
        return out

    def _all_sites(self, radii: Sequence[float]) -> list[int]:
        counts = [0] * len(radii)
        for shard in self._shards(["distances"]):
            worst = shard["distances"].max(axis=1)
            for r, radius in enumerate(radii):
                counts[r] += int(np.count_nonzero(worst <= radius))
        return counts
