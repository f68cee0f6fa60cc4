"""Observed powder patterns: two- and three-column text (.xy, .xye, .csv, .dat), GSAS raw files and powder CIF.

``parse_*`` functions are pure (text in, pattern out) and raise :class:`~gasolve.errors.InputError` naming
the source and line; ``read_pattern`` only opens the file (and a GSAS instrument file its header names) and
picks the parser. A pattern carries the radiation its file states (:mod:`gasolve.io.stated_wavelength`,
:mod:`gasolve.io.pdcif`), or None; which wavelength a command uses is decided by
:func:`gasolve.diffraction.wavelength.choose_radiation`.
Weights are 1/σ², with σ from the esd column where there is one, else from counting statistics
σ = sqrt(max(y, 1)).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.atomic import atomic_write
from gasolve.io.pdcif import is_powder_cif, parse_powder_cif
from gasolve.io.stated_wavelength import gsas_instrument_radiation, instrument_file_reference, stated_radiation


@dataclass(frozen=True)
class ObservedPattern:
    """A measured (or simulated) powder pattern.

    Attributes
    ----------
    two_theta : ndarray, shape (n_points,)
        Strictly increasing 2θ (degrees).
    y_obs : ndarray, shape (n_points,)
        Intensity (counts or arbitrary units).
    sigma : ndarray, shape (n_points,)
        Standard uncertainty of ``y_obs``, positive.
    source : str
        File the pattern came from.
    radiation : Radiation or None
        The radiation the file states (header, instrument line or CIF item); None when it states none.
    """

    two_theta: np.ndarray
    y_obs: np.ndarray
    sigma: np.ndarray
    source: str = "<pattern>"
    radiation: Radiation | None = None

    def __post_init__(self) -> None:
        for name in ("two_theta", "y_obs", "sigma"):
            array = np.array(getattr(self, name), dtype=float)
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        if not (len(self.two_theta) == len(self.y_obs) == len(self.sigma)):
            raise InputError("2θ, intensity and esd columns differ in length", self.source)
        if len(self.two_theta) < 2:
            raise InputError("a pattern needs at least 2 points", self.source)
        for name in ("two_theta", "y_obs", "sigma"):
            bad = np.flatnonzero(~np.isfinite(getattr(self, name)))
            if bad.size:
                raise InputError(f"{name} is not a finite number at point {bad[0] + 1}", self.source)
        steps = np.diff(self.two_theta)
        if np.any(steps <= 0):
            i = int(np.flatnonzero(steps <= 0)[0])
            raise InputError(
                f"2θ must increase strictly; point {i + 2} ({self.two_theta[i + 1]}) follows {self.two_theta[i]}",
                self.source,
            )
        if np.any(self.sigma <= 0):
            i = int(np.flatnonzero(self.sigma <= 0)[0])
            raise InputError(f"esd must be positive; point {i + 1} has {self.sigma[i]}", self.source)

    @property
    def n_points(self) -> int:
        return len(self.two_theta)

    @property
    def weights(self) -> np.ndarray:
        """Least-squares weights w = 1/σ², shape (n_points,)."""
        return 1.0 / self.sigma**2

    def restrict(self, lo: float, hi: float) -> ObservedPattern:
        """The points with lo <= 2θ <= hi (degrees); the range must lie inside the data."""
        if not lo < hi:
            raise InputError(f"2θ range [{lo}, {hi}] is empty; the first value must be smaller", self.source)
        first, last = float(self.two_theta[0]), float(self.two_theta[-1])
        tolerance = 0.5 * float(np.median(np.diff(self.two_theta)))
        if lo < first - tolerance or hi > last + tolerance:
            raise InputError(
                f"2θ range [{lo}, {hi}] lies outside the data, which cover [{first:.4f}, {last:.4f}] degrees",
                self.source,
            )
        keep = (self.two_theta >= lo - 1e-9) & (self.two_theta <= hi + 1e-9)
        return ObservedPattern(self.two_theta[keep], self.y_obs[keep], self.sigma[keep], self.source, self.radiation)


def counting_sigma(y: np.ndarray) -> np.ndarray:
    """σ = sqrt(max(y, 1)), Poisson statistics with a floor of one count."""
    return np.sqrt(np.maximum(np.asarray(y, dtype=float), 1.0))


_SPLIT = re.compile(r"[,;\s]+")


def parse_columns(text: str, source: str = "<text>") -> ObservedPattern:
    """Parse 2θ, intensity[, esd] columns separated by whitespace, commas or semicolons.

    Lines starting with '#', '!', '%', '//' or ';' are comments, and so are non-numeric lines before the
    first data line (headers), and a lone number on the first line (the wavelength of BGMN/Profex ``.xye``
    files). Every data line must have the same number of columns (2 or 3; further columns are not accepted
    because their meaning is unknown). The comments and headers before the data may state the wavelength
    (:func:`~gasolve.io.stated_wavelength.stated_radiation`).
    """
    if "\x00" in text:
        raise InputError("this is a binary file, not a text pattern (2θ, intensity[, esd] columns)", source)
    rows: list[list[float]] = []
    header: list[str] = []
    lone_first = False
    n_columns = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(("#", "!", "%", "//", ";")):
            if not rows:
                header.append(line)
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if not rows:
                header.append(line)
                continue
            raise InputError(f"line {number}: expected numbers, got {line[:60]!r}", source) from None
        if not rows and not header and len(values) == 1:
            header.append(line)  # a lone number first: BGMN/Profex state the wavelength there
            lone_first = True
            continue
        if n_columns is None:
            if len(values) not in (2, 3):
                raise InputError(
                    f"line {number}: expected 2 columns (2θ, intensity) or 3 (2θ, intensity, esd), got {len(values)}",
                    source,
                )
            n_columns = len(values)
        elif len(values) != n_columns:
            raise InputError(
                f"line {number}: expected {n_columns} columns like the lines before, got {len(values)}",
                source,
            )
        if not all(math.isfinite(v) for v in values):
            raise InputError(f"line {number}: not a finite number (NaN or inf): {line[:60]!r}", source)
        rows.append(values)
    if not rows:
        raise InputError("no data lines found (expected 2θ, intensity[, esd] columns)", source)
    data = np.array(rows)
    sigma = data[:, 2] if n_columns == 3 else counting_sigma(data[:, 1])
    return ObservedPattern(data[:, 0], data[:, 1], sigma, source, _stated(header, source, lone_first))


def _stated(header: list[str], source: str, first_line_number: bool = False) -> Radiation | None:
    try:
        return stated_radiation(header, first_line_number)
    except InputError as error:
        raise InputError(error.message, source) from None


def parse_gsas_std(text: str, source: str = "<gsas>") -> ObservedPattern:
    """Parse a GSAS raw file with a ``BANK`` line of type CONST and STD, ESD or ALT-free FXYE data.

    Supported (``CONS`` stands for ``CONST``): ``BANK n nchan nrec CONST start step 0 0 STD`` (counts, 10 per
    line in 8-character fields, start and step in centidegrees), ``... CONST ... ESD`` (intensity/esd pairs) and
    ``BANK ... FXYE`` (free format 2θ in centidegrees, intensity, esd; also ``BANK ... CONS start step 0 0 FXYE``
    as APS 11-BM writes it). The lines before ``BANK`` may state the wavelength (11-BM's ``# Calibrated
    wavelength = ...``, an ``INS n ICONS`` line; see :mod:`gasolve.io.stated_wavelength`).
    """
    lines = text.splitlines()
    bank_index = next((i for i, line in enumerate(lines) if line.startswith("BANK")), None)
    if bank_index is None:
        raise InputError("no BANK line: not a GSAS raw file", source)
    fields = lines[bank_index].split()
    try:
        n_points = int(fields[2])
        kind = fields[4].upper()
    except (IndexError, ValueError):
        raise InputError(f"line {bank_index + 1}: malformed BANK line {lines[bank_index]!r}", source) from None
    radiation = _stated(lines[:bank_index], source)
    body = lines[bank_index + 1 :]
    end = next((i for i, line in enumerate(body) if line.startswith("BANK")), len(body))
    body = body[:end]
    if kind == "FXYE" or (kind in ("CONST", "CONS") and fields[-1].upper() == "FXYE"):
        data = parse_columns("\n".join(body), source)
        return ObservedPattern(data.two_theta / 100.0, data.y_obs, data.sigma, source, radiation)
    if kind not in ("CONST", "CONS"):
        raise InputError(f"line {bank_index + 1}: binning {kind!r} not supported (expected CONST or FXYE)", source)
    try:
        start, step = float(fields[5]) / 100.0, float(fields[6]) / 100.0
        layout = fields[9].upper() if len(fields) > 9 else "STD"
    except (IndexError, ValueError):
        raise InputError(f"line {bank_index + 1}: malformed BANK line {lines[bank_index]!r}", source) from None
    width = 8
    values: list[float] = []
    for offset, line in enumerate(body, start=bank_index + 2):
        chunk = line.rstrip("\n")
        for j in range(0, len(chunk.rstrip()), width):
            field = chunk[j : j + width].strip()
            if not field:
                continue
            try:
                values.append(float(field))
            except ValueError:
                raise InputError(
                    f"line {offset}: expected numbers in 8-character fields, got {field!r}", source
                ) from None
    if layout == "STD":
        counts = np.array(values[:n_points])
        if len(counts) < n_points:
            raise InputError(f"BANK line announces {n_points} points, the file holds {len(counts)}", source)
        two_theta = start + step * np.arange(n_points)
        return ObservedPattern(two_theta, counts, counting_sigma(counts), source, radiation)
    if layout == "ESD":
        pairs = np.array(values[: 2 * n_points]).reshape(-1, 2)
        if len(pairs) < n_points:
            raise InputError(f"BANK line announces {n_points} points, the file holds {len(pairs)}", source)
        two_theta = start + step * np.arange(n_points)
        return ObservedPattern(two_theta, pairs[:, 0], pairs[:, 1], source, radiation)
    raise InputError(f"line {bank_index + 1}: data layout {layout!r} not supported (expected STD or ESD)", source)


_GSAS_SUFFIXES = {".xra", ".gsa", ".gsas", ".raw", ".fxye", ".gss"}


def read_pattern(path: str | Path) -> ObservedPattern:
    """Read a pattern file, choosing the format from its content (a GSAS ``BANK`` line, CIF items) and suffix.

    A GSAS raw file that states no wavelength but names its instrument-parameter file (``Instrument parameter
    file: NAME``) gets the wavelength of that file's ``ICONS`` line when the file lies beside it.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read pattern file: {error.strerror}", str(path)) from None
    if not raw.strip():
        raise InputError("the pattern file is empty", str(path))
    if b"\x00" in raw[:4096]:
        raise InputError(
            "this is a binary file; expected a text pattern (.xy, .xye, .csv, .dat) or GSAS raw", str(path)
        )
    text = raw.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if path.suffix.lower() in _GSAS_SUFFIXES or any(line.startswith("BANK") for line in lines[:5]):
        if any(line.startswith("BANK") for line in lines):
            pattern = parse_gsas_std(text, str(path))
            if pattern.radiation is None:
                pattern = _with_instrument_file(pattern, path, lines)
            return pattern
    if path.suffix.lower() == ".cif" or is_powder_cif(text):
        return parse_powder_cif(text, str(path))
    return parse_columns(text, str(path))


def _with_instrument_file(pattern: ObservedPattern, path: Path, lines: list[str]) -> ObservedPattern:
    """The pattern with the wavelength of the instrument file its GSAS header names, when that file is beside it."""
    bank = next(i for i, line in enumerate(lines) if line.startswith("BANK"))
    name = instrument_file_reference(lines[:bank])
    if name is None:
        return pattern
    instrument = path.parent / Path(name).name
    if not instrument.is_file():
        return pattern
    radiation = gsas_instrument_radiation(instrument.read_text(errors="replace"), str(instrument))
    if radiation is None:
        return pattern
    return ObservedPattern(pattern.two_theta, pattern.y_obs, pattern.sigma, pattern.source, radiation)


def format_xye(two_theta: np.ndarray, y: np.ndarray, sigma: np.ndarray, header: list[str] | None = None) -> str:
    """Three-column text (2θ in degrees, intensity, esd) with ``#`` header lines."""
    lines = [f"# {h}" for h in (header or [])]
    lines += [f"{t:.6f} {v:.10g} {s:.6g}" for t, v, s in zip(two_theta, y, sigma, strict=True)]
    return "\n".join(lines) + "\n"


def write_xye(path: str | Path, two_theta, y, sigma, header: list[str] | None = None) -> None:
    """Write a three-column pattern atomically (temporary file, then rename)."""
    atomic_write(path, format_xye(two_theta, y, sigma, header))
