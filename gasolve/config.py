"""Run configuration: the TOML file that describes one structure-solution run, loaded into frozen dataclasses.

A run config holds the tables below (``#`` marks what may be left out)::

    [structure]
    name = "K4SnO4"
    cell = [6.6007, 6.6089, 9.9143, 80.247, 71.675, 67.325]   # a, b, c (Å), alpha, beta, gamma (degrees)
    space_group = "P-1"                                        # Hermann-Mauguin symbol or number 1-230
    sites = ["Sn", "K", "K", "K", "K", "O", "O", "O", "O"]     # independent atoms (general positions)
    b_iso = 1.0                                                # optional (1.0 Å²); or one value per site
    wyckoff = ["2i", ...]                                      # optional: one Wyckoff position per site
    occupancy_correction = false                               # optional: FOX's dynamical occupancy correction
    overlap_radius = 0.8                                       # optional (Å), with the correction
    overlap_identical = false                                  # optional: also merge identical atoms of other sites

    [pattern]
    file = "K4SnO4.xye"          # relative to the TOML file
    wavelength = "CuKa1"         # a number in Å, "CuKa1" or "CuKa12"; optional when the file states it
    range = [5.0, 80.0]          # optional: 2θ range used (degrees); default the whole pattern
    kalpha2_ratio = 0.5          # optional
    polarisation = 0.99          # optional: beam polarisation fraction (synchrotron); default unpolarised

    [pattern.profile]            # optional: without it, gasolve run fits the profile first (Le Bail)
    fwhm = 0.1                   # constant FWHM (degrees 2θ), or caglioti = [U, V, W] (degrees²): exactly one
    eta = 0.5                    # or lorentzian = [X, Y] (degrees): the Thompson-Cox-Hastings profile, whose
    eta_slope = 0.0              # optional; Gaussian FWHM is the fwhm/caglioti width (no eta then)
    zero = 0.0                   # optional
    cutoff = 15.0                # optional, FWHM units
    monochromator = 0.0          # optional, 2θ_M (degrees)

    [pattern.background]         # optional: without it, one term per 12.5° of 2θ range, at least 3
    terms = 6                    # Chebyshev background terms, refined linearly with the scale (>= 0)

    [ga]                         # optional: any key of GALayout, GARates or RunBudget (gasolve.ga.settings)
    seed = 1

    [reference]                  # optional: the known structure
    cif = "K4SnO4.cif"           # relative to the TOML file
    tolerance = 0.3              # optional, Å

    [output]                     # optional: default runs/NAME beside the TOML file (``gasolve run --out``)
    dir = "runs/K4SnO4"          # relative to the TOML file

    [refinement]                 # optional: Rietveld refinement groups, preferred orientation, restraints
    preferred_orientation = "auto"   # see gasolve.rietveld.settings for every key

Every value is checked on load. A mistake raises :class:`~gasolve.errors.InputError` naming the file, the
table and key, and what was expected, e.g. ``run.toml: [structure] cell: expected 6 numbers [a, b, c, alpha,
beta, gamma], got 5``. Relative paths are taken relative to the TOML file and stored absolute. The fully
resolved configuration (absolute paths, every default filled in) is written into each run's output folder with
:func:`write_resolved`; loading it again gives an equal :class:`RunConfig`. :func:`parse_run_config` builds the
same from an already parsed document (a config carried inside another file, such as a harvested data set).

Renamed keys are refused with what they became: ``[pattern.background] chebyshev`` is now ``terms``; ``[ga]
elite`` was removed (:data:`gasolve.ga.settings.REMOVED_KEYS`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gasolve import __version__
from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import parse_species
from gasolve.diffraction.form_factors import species_form_factor
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import KALPHA2_RATIO, Radiation, parse_radiation, radiation_spec
from gasolve.errors import InputError
from gasolve.ga.atom_selection import AtomSelectionSettings
from gasolve.ga.nn_settings import NNSettings
from gasolve.ga.settings import FLAT_FIELDS, REMOVED_KEYS, GASettings
from gasolve.io.atomic import atomic_write
from gasolve.io.patterns import ObservedPattern, read_pattern
from gasolve.io.toml_file import read_toml, toml_text
from gasolve.rietveld.settings import RefinementSettings, parse_refinement, refinement_table
from gasolve.scoring.overlap import DEFAULT_OVERLAP_RADIUS

#: Default isotropic displacement parameter B (Å²) of every site.
DEFAULT_B_ISO = 1.0
#: Default distance (Å) within which an atom counts as matching the reference structure.
DEFAULT_TOLERANCE = 0.3
#: Default peak cut-off (FWHM units), the same as :class:`~gasolve.diffraction.profile.PeakProfile`'s.
DEFAULT_CUTOFF = PeakProfile.cutoff
#: Largest overlap radius (Å) accepted: below half the shortest distance between bonded identical atoms.
MAX_OVERLAP_RADIUS = 1.0
#: Without ``[pattern.background]``: one Chebyshev term per this many degrees of the 2θ range used, and at least
#: :data:`MIN_BACKGROUND_TERMS`. A laboratory background (air scatter at low angle, amorphous humps, fluorescence)
#: bends on a scale of tens of degrees, so the number of terms it needs grows with the range; the rule gives the
#: 6 terms of the K4SnO4 and K4PbO4 examples (5-80°) and the 12 of the PbSO4 example (10-160°), chosen by hand.
DEGREES_PER_BACKGROUND_TERM = 12.5
#: Fewest default background terms: a constant, a slope and a curvature, even on a short range.
MIN_BACKGROUND_TERMS = 3
#: Default output folder, relative to the config file: ``runs/NAME`` (``NAME`` made safe as a folder name).
DEFAULT_OUTPUT_FOLDER = "runs"

_TABLES = ("structure", "pattern", "ga", "nn", "atom_selection", "reference", "output", "refinement")
_STRUCTURE_KEYS = (
    "name",
    "cell",
    "space_group",
    "sites",
    "composition",
    "z",
    "b_iso",
    "wyckoff",
    "occupancy_correction",
    "overlap_radius",
    "overlap_identical",
)
_PATTERN_KEYS = ("file", "wavelength", "range", "kalpha2_ratio", "polarisation", "peak_shape", "profile", "background")
_PROFILE_KEYS = (
    "fwhm",
    "caglioti",
    "eta",
    "eta_slope",
    "zero",
    "cutoff",
    "monochromator",
    "asymmetry",
    "axial",
    "displacement",
    "lorentzian",
)
_BACKGROUND_KEYS = ("terms",)
#: Keys of earlier versions, per table, with what they became.
_RENAMED = {"pattern.background": {"chebyshev": "terms"}}
_REFERENCE_KEYS = ("cif", "tolerance")
_OUTPUT_KEYS = ("dir",)
_NN_KEYS = ("model", "mode", "weight", "refine_fraction", "batch_size")
_SELECTION_KEYS = ("model", "scan_share", "allow_untrained_elements")
_GA_FIELDS = {name: f.type for name, f in FLAT_FIELDS.items()}


@dataclass(frozen=True, eq=False)
class StructureSpec:
    """What is known of the structure before solving it.

    Attributes
    ----------
    name : str
    cell : UnitCell
    space_group : SpaceGroup
    sites : tuple of str, length n_sites
        Element symbol of each independent atom (canonical capitalisation).
    b_iso : tuple of float, length n_sites
        Isotropic displacement parameter B of each site (Å²).
    wyckoff : tuple of str or None
        Wyckoff position of each site ("4c", "8d", ...), or None: every site on the general position.
    occupancy_correction : bool
        Score with FOX's dynamical occupancy correction (:mod:`gasolve.scoring.overlap`): a site whose images
        overlap counts once. Off by default (see the README's config section).
    overlap_radius : float
        Radius (Å) of the correction's overlap weight.
    overlap_identical : bool
        The correction also counts overlaps with other sites of the same element.
    composition : tuple of (str, int) or None
        Instead of ``sites`` (then empty): element and count of one formula unit, in formula order; the search
        finds Z and the Wyckoff positions (:mod:`gasolve.hypotheses`).
    z : int or None
        Formula units per conventional cell, with ``composition``; None: gasolve proposes Z from the volume.
    charges : tuple of int or None
        Formal charge of each site where ``sites`` names ions ("Ca2+", "F1-"); None when every site is neutral.
        The search scores neutral atoms; the final Rietveld refinement (``--rietveld``) uses the ions' form
        factors.

    Notes
    -----
    Equality compares the space group by its Hall symbol: :class:`SpaceGroup` holds arrays, so its generated
    ``==`` cannot compare two separately built groups.
    """

    name: str
    cell: UnitCell
    space_group: SpaceGroup
    sites: tuple[str, ...]
    b_iso: tuple[float, ...]
    wyckoff: tuple[str, ...] | None = None
    occupancy_correction: bool = False
    overlap_radius: float = DEFAULT_OVERLAP_RADIUS
    overlap_identical: bool = False
    composition: tuple[tuple[str, int], ...] | None = None
    z: int | None = None
    charges: tuple[int, ...] | None = None

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    def species(self) -> list[str]:
        """``sites`` with each ion's charge as the config writes it ("Ca2+"), shape (n_sites,)."""
        from gasolve.diffraction.form_factors import species_name

        charges = self.charges or (0,) * len(self.sites)
        return [species_name(element, charge) for element, charge in zip(self.sites, charges, strict=True)]

    @property
    def formula(self) -> str:
        """The formula unit of ``composition`` as text ("Ca5P3O13F"), "" without one."""
        if self.composition is None:
            return ""
        return "".join(f"{element}{n if n > 1 else ''}" for element, n in self.composition)

    def site_map(self):
        """The :class:`~gasolve.crystal.wyckoff.SiteMap` of the sites (general positions without ``wyckoff``)."""
        from gasolve.crystal.wyckoff import SiteMap

        if self.wyckoff is None:
            return SiteMap.general(self.space_group, self.n_sites)
        return SiteMap.from_labels(self.space_group, self.wyckoff)

    def _key(self) -> tuple:
        return (
            self.name,
            self.cell,
            self.space_group.hall,
            self.sites,
            self.b_iso,
            self.wyckoff,
            self.occupancy_correction,
            self.overlap_radius,
            self.overlap_identical,
            self.composition,
            self.z,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StructureSpec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True)
class PatternSpec:
    """The observed pattern and the instrument that measured it.

    Attributes
    ----------
    file : Path
        Absolute path of the pattern file.
    wavelength : str or float
        The wavelength as the config gave it (a number in Å or a name such as ``"CuKa12"``).
    radiation : Radiation
        The emission lines it stands for.
    range : (float, float) or None
        2θ range used (degrees), or None for the whole pattern.
    profile : PeakProfile or None
        None when the config leaves out ``[pattern.profile]``: ``gasolve run`` then fits it (Le Bail) first.
    background_terms : int
        Number of Chebyshev background coefficients (refined linearly with the scale).
    kalpha2_ratio : float
        Intensity of Kα2 relative to Kα1 (used by the ``CuKa12`` doublet).
    polarisation : float or None
        Fraction of the beam polarised perpendicular to the diffraction plane (GSAS-II's "Polariz."), None for
        the laboratory form (unpolarised tube, or the profile's monochromator angle). Also set in ``profile``.
    peak_shape : {"pseudo-voigt", "tch"}
        The shape the Le Bail fit gives the profile when ``profile`` is None: the pseudo-Voigt of one width, or
        Thompson-Cox-Hastings (:class:`~gasolve.diffraction.profile.PeakProfile`).
    """

    file: Path
    wavelength: str | float
    radiation: Radiation
    range: tuple[float, float] | None
    profile: PeakProfile | None
    background_terms: int
    kalpha2_ratio: float = KALPHA2_RATIO
    polarisation: float | None = None
    peak_shape: str = "pseudo-voigt"


@dataclass(frozen=True)
class ReferenceSpec:
    """The known structure a solution is compared with.

    Attributes
    ----------
    cif : Path
        Absolute path of the CIF.
    tolerance : float
        Distance (Å) within which an atom counts as found.
    """

    cif: Path
    tolerance: float = DEFAULT_TOLERANCE


@dataclass(frozen=True)
class OutputSpec:
    """Where a run writes its results.

    Attributes
    ----------
    dir : Path
        Absolute path of the output folder.
    """

    dir: Path


@dataclass(frozen=True)
class RunConfig:
    """One run, fully resolved.

    Attributes
    ----------
    source : Path
        Absolute path of the TOML file it came from (not compared by ``==``).
    structure : StructureSpec
    pattern : PatternSpec
    ga : GASettings
    reference : ReferenceSpec or None
    output : OutputSpec
    raw : dict
        The parsed TOML as given, before defaults and path resolution (not compared by ``==``; do not modify).
    nn : NNSettings or None
        Network-guided selection (the ``[nn]`` table), None without it.
    refinement : RefinementSettings
        The ``[refinement]`` table (:mod:`gasolve.rietveld.settings`); defaults without it.
    selection : AtomSelectionSettings or None
        The per-atom network that chooses the atoms of the relocation scan (the ``[atom_selection]`` table), None
        without it.
    """

    source: Path = field(compare=False)
    structure: StructureSpec
    pattern: PatternSpec
    ga: GASettings
    reference: ReferenceSpec | None
    output: OutputSpec
    raw: dict = field(compare=False, repr=False)
    nn: NNSettings | None = None
    refinement: RefinementSettings = field(default_factory=RefinementSettings)
    selection: AtomSelectionSettings | None = None

    def with_overrides(
        self, out: str | Path | None = None, seed: int | None = None, max_evaluations: int | None = None
    ) -> RunConfig:
        """A copy with command-line overrides applied; None keeps the config's value (seed 0 is a value).

        Parameters
        ----------
        out : str or Path, optional
            Output folder, relative to the current directory.
        seed : int, optional
            Replaces ``ga.budget.seed``.
        max_evaluations : int, optional
            Replaces ``ga.budget.max_evaluations``.
        """
        config = self
        if out is not None:
            config = replace(config, output=OutputSpec(Path(out).expanduser().resolve()))
        changes = {
            name: value for name, value in (("seed", seed), ("max_evaluations", max_evaluations)) if value is not None
        }
        if changes:
            config = replace(config, ga=config.ga.replace(changes))
        return config


# ---------------------------------------------------------------------------------------------------------------
# Reading


def _describe(value: Any) -> str:
    """How a TOML value looks to its author, for error messages."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, int | float):
        return repr(value)
    return f"{value!r} ({type(value).__name__})"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_MISSING = object()


class _Table:
    """A TOML table being read; knows its file and dotted name so that every error can say where it is."""

    def __init__(self, source: str, name: str, data: dict):
        self.source = source
        self.name = name
        self.data = data

    def error(self, key: str | None, message: str) -> InputError:
        """An InputError located at ``[name] key`` (or at the table itself when ``key`` is None)."""
        if not self.name:
            where = f"[{key}]" if key else ""
        else:
            where = f"[{self.name}] {key}" if key else f"[{self.name}]"
        return InputError(message, f"{self.source}: {where}" if where else self.source)

    @contextmanager
    def blame(self, key: str | None) -> Iterator[None]:
        """Re-raise an InputError from a science object located at this table's ``key``."""
        try:
            yield
        except InputError as error:
            raise self.error(key, str(error)) from error

    def check_keys(self, allowed: Sequence[str]) -> None:
        renamed = _RENAMED.get(self.name, {})
        for key in self.data:
            if key in renamed:
                raise self.error(key, f"was renamed to {renamed[key]!r}: write {renamed[key]} = ... instead")
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                kind = "table" if not self.name else "key"
                raise self.error(key, f"unknown {kind}{hint}; allowed: {', '.join(allowed)}")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.error(key, "missing required key")
        return default

    def subtable(self, key: str, required: bool = True) -> _Table | None:
        name = f"{self.name}.{key}" if self.name else key
        if key not in self.data:
            if required:
                raise self.error(key, f"missing required table [{name}]")
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            raise self.error(key, f"expected a table [{name}], got {_describe(value)}")
        return _Table(self.source, name, value)

    def number(self, key: str, default: Any = _MISSING) -> float:
        value = self.get(key, default)
        if not _is_number(value) or not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {_describe(value)}")
        return float(value)

    def integer(self, key: str, default: Any = _MISSING) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"expected an integer, got {_describe(value)}")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_describe(value)}")
        return value

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty text, got {_describe(value)}")
        return value

    def numbers(self, key: str, length: int, meaning: str) -> list[float]:
        """A list of exactly ``length`` finite numbers; ``meaning`` names them for the message."""
        value = self.get(key)
        expected = f"expected {length} numbers {meaning}"
        if not isinstance(value, list):
            raise self.error(key, f"{expected}, got {_describe(value)}")
        if len(value) != length:
            raise self.error(key, f"{expected}, got {len(value)}")
        for i, item in enumerate(value):
            if not _is_number(item) or not math.isfinite(item):
                raise self.error(key, f"{expected}; item {i + 1} is {_describe(item)}")
        return [float(item) for item in value]

    def path(self, key: str, base: Path) -> Path:
        """A path given relative to ``base`` (or absolute), returned absolute."""
        return (base / Path(self.text(key)).expanduser()).resolve()

    def existing_file(self, key: str, base: Path) -> Path:
        path = self.path(key, base)
        if not path.exists():
            raise self.error(key, f"no such file: {path}")
        if not path.is_file():
            raise self.error(key, f"not a file: {path}")
        if not os.access(path, os.R_OK):
            raise self.error(key, f"cannot read {path} (permission denied)")
        return path


def _structure(table: _Table) -> StructureSpec:
    table.check_keys(_STRUCTURE_KEYS)
    name = table.text("name")
    parameters = table.numbers("cell", 6, "[a, b, c, alpha, beta, gamma]")
    with table.blame("cell"):
        cell = UnitCell.from_parameters(parameters)
    symbol = table.get("space_group")
    if isinstance(symbol, bool) or not isinstance(symbol, str | int):
        raise table.error(
            "space_group", f"expected a Hermann-Mauguin symbol (text) or a number 1-230, got {_describe(symbol)}"
        )
    with table.blame("space_group"):
        space_group = SpaceGroup.from_symbol(symbol)
    with table.blame("cell"):
        space_group.check_cell(cell)
    if table.has("composition") or table.has("z"):
        return _composition_structure(table, name, cell, space_group)
    given = table.get("sites")
    if not isinstance(given, list) or not given:
        raise table.error("sites", f"expected a non-empty list of element symbols, got {_describe(given)}")
    sites, charges = [], []
    for i, item in enumerate(given):
        if not isinstance(item, str):
            raise table.error("sites", f"expected element symbols (text); item {i + 1} is {_describe(item)}")
        with table.blame("sites"):
            element, charge = parse_species(item)
            if charge:  # the refinement's ion table must have it (checked now, not after the search)
                species_form_factor(element, charge, np.zeros(1))
        sites.append(element)
        charges.append(charge)
    b_value = table.get("b_iso", DEFAULT_B_ISO)
    if isinstance(b_value, list):
        b_iso = tuple(table.numbers("b_iso", len(sites), f"(one B in Å² per site of {len(sites)} sites)"))
    else:
        b_iso = (table.number("b_iso", DEFAULT_B_ISO),) * len(sites)
    if any(b < 0 for b in b_iso):
        raise table.error("b_iso", f"expected B >= 0 (Å²), got {_describe(b_value)}")
    wyckoff = None
    if table.has("wyckoff"):
        labels = table.get("wyckoff")
        if not isinstance(labels, list) or not all(isinstance(item, str) for item in labels):
            raise table.error("wyckoff", f"expected a list of Wyckoff positions such as '4c', got {_describe(labels)}")
        if len(labels) != len(sites):
            raise table.error(
                "wyckoff", f"expected one Wyckoff position per site ({len(sites)} sites), got {len(labels)}"
            )
        wyckoff = tuple(label.strip() for label in labels)
        with table.blame("wyckoff"):
            StructureSpec(name, cell, space_group, tuple(sites), b_iso, wyckoff).site_map()
        _check_fixed_positions_once(table, space_group, sites, wyckoff)
    correction = table.boolean("occupancy_correction", False)
    for key in ("overlap_radius", "overlap_identical"):
        if table.has(key) and not correction:
            raise table.error(key, "has no effect without occupancy_correction = true; set that or remove the key")
    radius = table.number("overlap_radius", DEFAULT_OVERLAP_RADIUS)
    limit = 0.5 * float(np.min(1.0 / np.sqrt(np.diag(cell.reciprocal_metric))))
    if not 0.0 < radius < min(limit, MAX_OVERLAP_RADIUS):
        raise table.error(
            "overlap_radius",
            f"expected a distance (Å) above 0 and below {MAX_OVERLAP_RADIUS} (so that bonded identical atoms are "
            f"never merged) and below {limit:.3f} (half the smallest interplanar spacing of the cell), got {radius}",
        )
    identical = table.boolean("overlap_identical", False)
    return StructureSpec(
        name, cell, space_group, tuple(sites), b_iso, wyckoff, correction, radius, identical,
        charges=tuple(charges) if any(charges) else None,
    )  # fmt: skip


def _check_fixed_positions_once(table: _Table, space_group: SpaceGroup, sites: list[str], labels: tuple) -> None:
    """A Wyckoff position without free coordinates is one point set: two sites on it would be one atom twice."""
    from gasolve.crystal.wyckoff import wyckoff_position

    holders: dict[str, list[str]] = {}
    for i, (element, label) in enumerate(zip(sites, labels, strict=True)):
        position = wyckoff_position(space_group, label)
        if not position.free_parameters:
            holders.setdefault(position.label, []).append(f"{i + 1} ({element})")
    for label, given in holders.items():
        if len(given) > 1:
            raise table.error(
                "wyckoff",
                f"position {label} of {space_group.symbol} has no free coordinate, so it holds one atom; it is given "
                f"to sites {', '.join(given)}. Expected each such position at most once (a mixed site is not "
                "supported: give it the heavier element)",
            )


def _composition_structure(table: _Table, name: str, cell: UnitCell, space_group: SpaceGroup) -> StructureSpec:
    """``[structure] composition`` (and optional ``z``) instead of ``sites``: checked against the cell and group."""
    from gasolve.hypotheses import check_z, parse_composition, z_candidates

    if not table.has("composition"):
        raise table.error("z", "goes with composition = '...' (the formula); with sites, Z follows from the sites")
    for key in ("sites", "wyckoff"):
        if table.has(key):
            raise table.error(
                key,
                "cannot be given with composition: give either the independent atoms (sites, optionally wyckoff) "
                "or the formula (composition, optionally z), not both",
            )
    formula = table.get("composition")
    if not isinstance(formula, str):
        raise table.error(
            "composition", f"expected a chemical formula as text such as 'Ca5(PO4)3F', got {_describe(formula)}"
        )
    with table.blame("composition"):
        counts = parse_composition(formula)
    z = None
    if table.has("z"):
        z = table.get("z")
        if isinstance(z, bool) or not isinstance(z, int) or z < 1:
            raise table.error(
                "z", f"expected a positive integer (formula units per conventional cell), got {_describe(z)}"
            )
        with table.blame("z"):
            check_z(counts, z, cell, space_group, key="z")
    else:
        with table.blame("composition"):
            z_candidates(counts, cell, space_group, key=f"composition = {formula!r}")
    b_value = table.get("b_iso", DEFAULT_B_ISO)
    if isinstance(b_value, list):
        raise table.error(
            "b_iso", "expected one number (Å²) for every atom: with composition the sites are not known yet"
        )
    b_iso = table.number("b_iso", DEFAULT_B_ISO)
    if b_iso < 0:
        raise table.error("b_iso", f"expected B >= 0 (Å²), got {_describe(b_value)}")
    for key in ("occupancy_correction", "overlap_radius", "overlap_identical"):
        if table.has(key):
            raise table.error(key, "is chosen by the composition search itself (the general-position route); remove it")
    return StructureSpec(name, cell, space_group, (), (b_iso,), composition=tuple(counts.items()), z=z)


def _check_profile_over(profile: PeakProfile, lo: float, hi: float, source: str) -> None:
    """Check that the FWHM stays positive and η inside [0, 1] over 2θ in [lo, hi] (degrees)."""
    u, v, _ = profile.caglioti
    table = _Table(source, "pattern.profile", {})
    with table.blame("fwhm" if u == 0 and v == 0 else "caglioti"):
        profile.gaussian_fwhm(np.linspace(lo, hi, 361))
    if profile.tch:
        with table.blame("lorentzian"):
            profile.lorentzian_fwhm(np.linspace(lo, hi, 361))
        return
    with table.blame("eta_slope" if profile.eta_slope else "eta"):
        profile.eta_at(np.array([lo, hi]))


def _profile(table: _Table, two_theta_range: tuple[float, float] | None) -> PeakProfile:
    table.check_keys(_PROFILE_KEYS)
    if table.has("fwhm") == table.has("caglioti"):
        which = "both" if table.has("fwhm") else "neither"
        raise table.error(
            "fwhm/caglioti",
            f"give exactly one of fwhm (constant FWHM, degrees 2θ) or caglioti = [U, V, W] (degrees²), got {which}",
        )
    if table.has("lorentzian") and (table.has("eta") or table.has("eta_slope")):
        raise table.error(
            "lorentzian",
            "give eta (the pseudo-Voigt of one width) or lorentzian = [X, Y] (Thompson-Cox-Hastings), not both",
        )
    tch = table.has("lorentzian")
    common = {
        "eta": 0.5 if tch else table.number("eta"),
        "eta_slope": 0.0 if tch else table.number("eta_slope", 0.0),
        "zero": table.number("zero", 0.0),
        "cutoff": table.number("cutoff", DEFAULT_CUTOFF),
        "monochromator_two_theta": table.number("monochromator", 0.0),
        "displacement": table.number("displacement", 0.0),
        "axial": table.number("axial", 0.0),
    }
    if table.has("asymmetry"):
        common["asymmetry"] = tuple(table.numbers("asymmetry", 4, "[P1, P2, P3, P4] (Bérar-Baldinozzi)"))
    if tch:
        common["lorentzian"] = tuple(table.numbers("lorentzian", 2, "[X, Y] (degrees: X / cos θ + Y tan θ)"))
    with table.blame(None):
        PeakProfile(**common)  # checks the shared parameters, so that the width step below fails only on the width
    if table.has("fwhm"):
        fwhm = table.number("fwhm")
        with table.blame("fwhm"):
            profile = PeakProfile.constant_fwhm(fwhm, **common)
    else:
        caglioti = table.numbers("caglioti", 3, "[U, V, W] (degrees²)")
        with table.blame("caglioti"):
            profile = PeakProfile(caglioti=tuple(caglioti), **common)
    if two_theta_range is not None:
        _check_profile_over(profile, *two_theta_range, table.source)
    return profile


def _pattern(table: _Table, base: Path) -> PatternSpec:
    table.check_keys(_PATTERN_KEYS)
    file = table.existing_file("file", base)
    ratio = table.number("kalpha2_ratio", KALPHA2_RATIO)
    if not 0 <= ratio <= 1:
        raise table.error("kalpha2_ratio", f"expected a number in [0, 1], got {ratio}")
    if table.has("wavelength"):
        wavelength = table.get("wavelength")
        if isinstance(wavelength, bool) or not isinstance(wavelength, str | int | float):
            raise table.error("wavelength", f"expected a number in Å, 'CuKa1' or 'CuKa12', got {_describe(wavelength)}")
    else:  # the pattern file's own statement (a header, an instrument line, a powder CIF item), never a guess
        stated = read_pattern(file).radiation
        if stated is None:
            raise table.error(
                "wavelength",
                f"required: {file.name} states no wavelength; give a number in Å or a name such as 'CuKa1' or 'CuKa12'",
            )
        with table.blame("wavelength"):
            wavelength, stated_ratio = radiation_spec(stated)
        if not table.has("kalpha2_ratio"):
            ratio = stated_ratio
    with table.blame("wavelength"):
        radiation = parse_radiation(wavelength, ratio)
    two_theta_range = None
    if table.has("range"):
        lo, hi = table.numbers("range", 2, "[lo, hi] (degrees 2θ)")
        if not 0 < lo < hi < 180:
            raise table.error("range", f"expected [lo, hi] with 0 < lo < hi < 180 degrees, got [{lo}, {hi}]")
        two_theta_range = (lo, hi)
    polarisation = None
    if table.has("polarisation"):
        polarisation = table.number("polarisation")
        if not 0 < polarisation <= 1:
            raise table.error(
                "polarisation",
                f"expected the fraction of the beam polarised perpendicular to the diffraction plane, in (0, 1] "
                f"(0.5 unpolarised, about 0.99 at a synchrotron), got {polarisation}",
            )
    peak_shape = table.get("peak_shape", "pseudo-voigt")
    if peak_shape not in ("pseudo-voigt", "tch"):
        raise table.error(
            "peak_shape",
            'expected "pseudo-voigt" (one width, η linear in 2θ) or "tch" (Thompson-Cox-Hastings), '
            f"got {_describe(peak_shape)}",
        )
    profile_table = table.subtable("profile", required=False)
    profile = None if profile_table is None else _profile(profile_table, two_theta_range)
    if profile is not None and table.has("peak_shape") and profile.tch != (peak_shape == "tch"):
        raise table.error(
            "peak_shape",
            f"{peak_shape!r} disagrees with [pattern.profile], which gives the "
            f"{'Thompson-Cox-Hastings' if profile.tch else 'one-width pseudo-Voigt'} profile; give one or the other",
        )
    if profile is not None and polarisation is not None:
        if profile.monochromator_two_theta:
            raise table.error("polarisation", "give the beam polarisation or [pattern.profile] monochromator, not both")
        profile = replace(profile, polarisation=polarisation)
    background = table.subtable("background", required=False)
    if background is not None:
        background.check_keys(_BACKGROUND_KEYS)
    if background is not None and background.has("terms"):
        terms = background.integer("terms")
        if terms < 0:
            raise background.error("terms", f"expected an integer >= 0, got {terms}")
    else:
        if two_theta_range is None:  # the whole pattern is used: read how far it goes
            two_theta = read_pattern(file).two_theta
            terms = default_background_terms(float(two_theta[0]), float(two_theta[-1]))
        else:
            terms = default_background_terms(*two_theta_range)
    return PatternSpec(file, wavelength, radiation, two_theta_range, profile, terms, ratio, polarisation, peak_shape)


def default_background_terms(lo: float, hi: float) -> int:
    """Chebyshev background terms used when the config has no ``[pattern.background]``.

    One term per :data:`DEGREES_PER_BACKGROUND_TERM` degrees of the 2θ range, at least
    :data:`MIN_BACKGROUND_TERMS` (the reasons are given beside those constants).

    Parameters
    ----------
    lo, hi : float
        2θ range used (degrees).

    Returns
    -------
    int
    """
    return max(MIN_BACKGROUND_TERMS, round((hi - lo) / DEGREES_PER_BACKGROUND_TERM))


def _ga(table: _Table | None) -> GASettings:
    if table is None:
        return GASettings()
    for key in table.data:
        if key in REMOVED_KEYS:
            raise table.error(key, REMOVED_KEYS[key])
    table.check_keys(tuple(_GA_FIELDS))
    values: dict[str, Any] = {}
    for key, kind in _GA_FIELDS.items():
        if not table.has(key):
            continue
        if kind == "int":
            values[key] = table.integer(key)
        elif kind == "float":
            values[key] = table.number(key)
        elif kind == "bool":
            values[key] = table.boolean(key)
        elif kind.startswith("tuple[str"):
            value = table.get(key)
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise table.error(key, f"expected a list of names (text), got {_describe(value)}")
            values[key] = tuple(value)
        else:  # a type this reader does not know yet: GASettings validates it
            values[key] = table.get(key)
    try:
        return GASettings.from_flat(values)
    except InputError as error:
        raise InputError(str(error), table.source) from error


def _nn(table: _Table | None, base: Path) -> NNSettings | None:
    if table is None:
        return None
    table.check_keys(_NN_KEYS)
    defaults = NNSettings(Path())
    values = {
        "model": table.existing_file("model", base),
        "mode": table.text("mode", defaults.mode),
        "weight": table.number("weight", defaults.weight),
        "refine_fraction": table.number("refine_fraction", defaults.refine_fraction),
        "batch_size": table.integer("batch_size", defaults.batch_size),
    }
    with table.blame(None):
        return NNSettings(**values)


def _selection(table: _Table | None, base: Path) -> AtomSelectionSettings | None:
    if table is None:
        return None
    table.check_keys(_SELECTION_KEYS)
    defaults = AtomSelectionSettings(Path())
    values = {
        "model": table.existing_file("model", base),
        "scan_share": table.number("scan_share", defaults.scan_share),
        "allow_untrained_elements": table.boolean("allow_untrained_elements", defaults.allow_untrained_elements),
    }
    with table.blame(None):
        return AtomSelectionSettings(**values)


def _reference(table: _Table | None, base: Path) -> ReferenceSpec | None:
    if table is None:
        return None
    table.check_keys(_REFERENCE_KEYS)
    cif = table.existing_file("cif", base)
    tolerance = table.number("tolerance", DEFAULT_TOLERANCE)
    if tolerance <= 0:
        raise table.error("tolerance", f"expected a positive distance (Å), got {tolerance}")
    return ReferenceSpec(cif, tolerance)


def default_output_dir(source: str | Path, name: str) -> Path:
    """The output folder of a config without ``[output]``: ``runs/NAME`` beside the config file.

    Characters of ``name`` other than letters, digits, ``.``, ``_`` and ``-`` become ``_`` (so that a name with a
    ``/`` or a space stays one folder).

    Parameters
    ----------
    source : str or Path
        The config file.
    name : str
        ``[structure] name``.

    Returns
    -------
    Path
        Absolute.
    """
    folder = re.sub(r"[^\w.-]+", "_", name, flags=re.ASCII).strip("._") or "run"
    return (Path(source).expanduser().resolve().parent / DEFAULT_OUTPUT_FOLDER / folder).resolve()


def _output(table: _Table | None, base: Path, default: Path) -> OutputSpec:
    if table is None:
        return OutputSpec(default)
    table.check_keys(_OUTPUT_KEYS)
    return OutputSpec(table.path("dir", base))


def parse_run_config(raw: dict, source: str | Path) -> RunConfig:
    """Validate a parsed run config (the dict of its TOML document) into a :class:`RunConfig`.

    Parameters
    ----------
    raw : dict
        The document, as :func:`gasolve.io.toml_file.parse_toml` gives it; kept as :attr:`RunConfig.raw` (not
        copied: do not modify it afterwards).
    source : str or Path
        The file it came from: named in every error message, and relative paths inside the document are taken
        relative to its folder.

    Returns
    -------
    RunConfig
        With absolute paths and every default filled in.

    Raises
    ------
    InputError
        An unknown or renamed key, or a bad value; the message names ``source``, the table and key, and what was
        expected.
    """
    label = str(source)
    path = Path(source).expanduser().resolve()
    base = path.parent
    top = _Table(label, "", raw)
    top.check_keys(_TABLES)
    structure = _structure(top.subtable("structure"))
    return RunConfig(
        source=path,
        structure=structure,
        pattern=_pattern(top.subtable("pattern"), base),
        ga=_ga(top.subtable("ga", required=False)),
        reference=_reference(top.subtable("reference", required=False), base),
        output=_output(top.subtable("output", required=False), base, default_output_dir(path, structure.name)),
        raw=raw,
        nn=_nn(top.subtable("nn", required=False), base),
        selection=_selection(top.subtable("atom_selection", required=False), base),
        refinement=parse_refinement(raw.get("refinement"), label),
    )


def load_run_config(path: str | Path) -> RunConfig:
    """Read and validate a run config (TOML).

    Parameters
    ----------
    path : str or Path
        The TOML file; relative paths inside it are taken relative to its folder.

    Returns
    -------
    RunConfig
        With absolute paths and every default filled in.

    Raises
    ------
    InputError
        When the file cannot be read, is not valid TOML (the message gives the line), or holds an unknown key or
        a bad value; the message names the file, the table and key, and what was expected.
    """
    return parse_run_config(read_toml(path, "config file"), path)


def load_observed(config: RunConfig) -> ObservedPattern:
    """Read the config's pattern file and restrict it to the configured 2θ range.

    Without a configured range the whole pattern is used; the peak profile is then checked over the data's
    range (positive FWHM, η inside [0, 1]).

    Parameters
    ----------
    config : RunConfig

    Returns
    -------
    ObservedPattern

    Raises
    ------
    InputError
        When the file cannot be read or parsed (naming the pattern file), or the range lies outside the data or
        the profile fails over it (naming the config file and key).
    """
    pattern = read_pattern(config.pattern.file)
    source = str(config.source)
    if config.pattern.range is not None:
        try:
            pattern = pattern.restrict(*config.pattern.range)
        except InputError as error:
            raise InputError(str(error), f"{source}: [pattern] range") from error
    elif config.pattern.profile is not None:
        lo, hi = float(pattern.two_theta[0]), float(pattern.two_theta[-1])
        _check_profile_over(config.pattern.profile, lo, hi, source)
    return pattern


# ---------------------------------------------------------------------------------------------------------------
# Writing


def _is_constant_fwhm(profile: PeakProfile) -> bool:
    """True when the Caglioti width is a constant FWHM that ``fwhm = sqrt(W)`` reproduces exactly."""
    u, v, w = profile.caglioti
    return u == 0 and v == 0 and w > 0 and math.sqrt(w) ** 2 == w


def profile_table(profile: PeakProfile) -> dict[str, Any]:
    """The ``[pattern.profile]`` table that loads back to ``profile``."""
    width: dict[str, Any]
    if _is_constant_fwhm(profile):
        width = {"fwhm": math.sqrt(profile.caglioti[2])}
    else:
        width = {"caglioti": list(profile.caglioti)}
    shape = (
        {"lorentzian": list(profile.lorentzian)}
        if profile.tch
        else {"eta": profile.eta, "eta_slope": profile.eta_slope}
    )
    table = {
        **width,
        **shape,
        "zero": profile.zero,
        "cutoff": profile.cutoff,
        "monochromator": profile.monochromator_two_theta,
    }
    if any(profile.asymmetry):
        table["asymmetry"] = list(profile.asymmetry)
    if profile.axial:
        table["axial"] = profile.axial
    if profile.displacement:
        table["displacement"] = profile.displacement
    return table


def _resolved_document(config: RunConfig) -> dict[str, dict[str, Any]]:
    structure = config.structure
    pattern = config.pattern
    profile = pattern.profile
    pattern_table: dict[str, Any] = {
        "file": str(pattern.file),
        "wavelength": pattern.wavelength,
        "kalpha2_ratio": pattern.kalpha2_ratio,
    }
    if pattern.polarisation is not None:
        pattern_table["polarisation"] = pattern.polarisation
    if pattern.peak_shape != "pseudo-voigt" and profile is None:
        pattern_table["peak_shape"] = pattern.peak_shape
    if pattern.range is not None:
        pattern_table["range"] = list(pattern.range)
    if profile is not None:
        pattern_table["profile"] = profile_table(profile)
    pattern_table["background"] = {"terms": pattern.background_terms}
    document: dict[str, dict[str, Any]] = {
        "structure": {
            "name": structure.name,
            "cell": list(structure.cell.parameters),
            "space_group": structure.space_group.symbol,
            **(
                {"sites": structure.species(), "b_iso": list(structure.b_iso)}
                if structure.composition is None
                else {"composition": structure.formula, "b_iso": structure.b_iso[0]}
            ),
            **({"z": structure.z} if structure.z is not None else {}),
            **({"wyckoff": list(structure.wyckoff)} if structure.wyckoff is not None else {}),
            **(
                {
                    "occupancy_correction": True,
                    "overlap_radius": structure.overlap_radius,
                    "overlap_identical": structure.overlap_identical,
                }
                if structure.occupancy_correction
                else {}
            ),
        },
        "pattern": pattern_table,
        "ga": config.ga.flat(),
    }
    if config.nn is not None:
        nn = config.nn
        document["nn"] = {
            "model": str(nn.model),
            "mode": nn.mode,
            "weight": nn.weight,
            "refine_fraction": nn.refine_fraction,
            "batch_size": nn.batch_size,
        }
    if config.selection is not None:
        selection = config.selection
        document["atom_selection"] = {
            "model": str(selection.model),
            "scan_share": selection.scan_share,
            "allow_untrained_elements": selection.allow_untrained_elements,
        }
    if config.reference is not None:
        document["reference"] = {"cif": str(config.reference.cif), "tolerance": config.reference.tolerance}
    document["output"] = {"dir": str(config.output.dir)}
    if config.refinement != RefinementSettings():
        document["refinement"] = refinement_table(config.refinement)
    return document


def resolved_toml(config: RunConfig) -> str:
    """The fully resolved config as TOML text: absolute paths, every default (GA settings included) written out.

    Loading the text with :func:`load_run_config` gives a config equal to ``config``.

    Parameters
    ----------
    config : RunConfig

    Returns
    -------
    str
    """
    comment = f"Resolved run configuration (gasolve {__version__}) from {config.source}"
    return toml_text(_resolved_document(config), [comment])


def write_resolved(config: RunConfig, path: str | Path) -> None:
    """Write :func:`resolved_toml` to ``path`` atomically (:func:`gasolve.io.atomic.atomic_write`).

    Parameters
    ----------
    config : RunConfig
    path : str or Path
        Destination; its folder must exist.
    """
    atomic_write(path, resolved_toml(config))
