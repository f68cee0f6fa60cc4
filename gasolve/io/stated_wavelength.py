"""The wavelength a pattern file states in its header, if it states one.

Pure text parsing, no guessing: a header states the wavelength only in one of these forms (case-insensitive).

- A lone number between 0.1 and 5 on the very first line of a column file: the convention of BGMN/Profex ``.xye``
  files (e.g. ``1.540593``; an ``A`` or ``Å`` may follow).
- A keyword, ``wavelength``, ``lambda`` or ``λ``, then optionally ``=`` or ``:``, then either a number in Å, a named
  line that :func:`~gasolve.diffraction.wavelength.parse_radiation` knows (``CuKa12``), or such a name followed by
  its lines in parentheses as ``gasolve simulate`` writes them (``wavelength CuKa12 (1.540598 Å x1, 1.544430 Å
  x0.5)``), or two numbers ``λ1/λ2`` for a Kα1+Kα2 doublet. 11-BM's ``# Calibrated wavelength = 0.413909`` is of
  this form.
- A doublet written ``Ka1/Ka2 1.5405/1.5443 A``: the two wavelengths with a unit.
- A GSAS instrument-parameter line ``INS  1 ICONS  λ1  λ2  zero  ...  ratio`` (λ2 = 0 for one line; the
  Kα2/Kα1 intensity ratio is its 7th value, as GSAS-II reads it). Such lines stand in GSAS ``.prm`` files, which a
  GSAS raw file names on a line ``Instrument parameter file: NAME``.

Doublets stated without their intensity ratio get :data:`~gasolve.diffraction.wavelength.KALPHA2_RATIO`.
"""

from __future__ import annotations

import re

from gasolve.diffraction.wavelength import KALPHA2_RATIO, Radiation, parse_radiation
from gasolve.errors import InputError

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_UNIT = r"\s*(?:Å|A|angstroms?)?"
_LONE = re.compile(rf"^\s*{_NUMBER}{_UNIT}\s*$", re.IGNORECASE)
_KEYWORD = re.compile(r"(?:wavelength|lambda|λ)\s*(?:\(\s*(?:Å|A)\s*\))?\s*[=:]?\s*(.*)$", re.IGNORECASE)
_PAIR = re.compile(rf"{_NUMBER}\s*/\s*{_NUMBER}{_UNIT}(?![\w.])", re.IGNORECASE)
_PAIR_WITH_UNIT = re.compile(rf"{_NUMBER}\s*/\s*{_NUMBER}\s*(?:Å|A)(?![\w.])")
_LISTED_LINE = re.compile(rf"{_NUMBER}\s*(?:Å|A)\s*x\s*{_NUMBER}", re.IGNORECASE)
_ICONS = re.compile(r"^INS\s+\d+\s+ICONS\s+(.*)$")
_PRM_REFERENCE = re.compile(r"instrument parameter file\s*:?\s*(\S+)", re.IGNORECASE)


def _single(value: float, where: str) -> Radiation:
    try:
        return parse_radiation(value)
    except InputError as error:
        raise InputError(f"{where}: {error.message}") from None


def _doublet(alpha1: float, alpha2: float, ratio: float, where: str) -> Radiation:
    first, second = _single(alpha1, where), _single(alpha2, where)
    if not 0 < second.primary - first.primary < 0.01 * first.primary:
        raise InputError(f"{where}: {alpha1:g}/{alpha2:g} Å is not a Kα1/Kα2 doublet (Kα2 slightly longer)")
    return Radiation(((first.primary, 1.0), (second.primary, float(ratio))), f"{alpha1:g}/{alpha2:g}")


def _after_keyword(text: str, where: str) -> Radiation | None:
    """The radiation that the text after a ``wavelength`` keyword states, or None when it states none."""
    text = text.strip()
    listed = _LISTED_LINE.findall(text)
    if listed:
        lines = tuple((float(lam), float(weight)) for lam, weight in listed)
        name = text.split("(")[0].strip().rstrip(";,") or "stated"
        if lines[0][1] != 1.0:
            raise InputError(f"{where}: the first line's weight must be 1, got {lines[0][1]:g}")
        for lam, _ in lines:
            _single(lam, where)
        return Radiation(lines, name)
    pair = _PAIR.match(text)
    if pair:
        return _doublet(float(pair.group(1)), float(pair.group(2)), KALPHA2_RATIO, where)
    token = re.split(r"[\s,;()]+", text)[0] if text else ""
    if not token:
        return None
    number = re.fullmatch(rf"{_NUMBER}(?:Å|A)?", token, re.IGNORECASE)
    if number:
        return _single(float(number.group(1)), where)
    try:
        return parse_radiation(token)
    except InputError:
        return None  # a word after 'wavelength' that names no line: the header does not state one


def _icons(values: str, where: str) -> Radiation:
    fields = values.split()
    try:
        alpha1, alpha2 = float(fields[0]), float(fields[1])
        ratio = float(fields[6]) if len(fields) > 6 else KALPHA2_RATIO
    except (IndexError, ValueError):
        raise InputError(f"{where}: malformed GSAS ICONS line {values!r}") from None
    if alpha2 == 0.0:
        return _single(alpha1, where)
    return _doublet(alpha1, alpha2, ratio, where)


def stated_radiation(header: list[str], first_line_number: bool = False) -> Radiation | None:
    """The radiation a file's header lines state, or None.

    Parameters
    ----------
    header : list of str
        The lines before the data (comment markers such as ``#`` may be left on).
    first_line_number : bool
        Whether ``header[0]`` is the file's first non-blank line, so that a lone number there is the
        wavelength in Å (BGMN/Profex ``.xye``).

    Raises
    ------
    InputError
        When a header states a wavelength outside 0.1-5 Å or two that differ.
    """
    found: list[tuple[Radiation, str]] = []
    for number, raw in enumerate(header, start=1):
        where = f"header line {number}"
        line = raw.strip().lstrip("#!%;/ ").strip()
        if number == 1 and first_line_number:
            lone = _LONE.match(line)
            if lone and 0.1 <= float(lone.group(1)) <= 5.0:
                found.append((_single(float(lone.group(1)), where), raw.strip()))
                continue
            if lone:
                continue  # a lone number outside 0.1-5 Å (a point count, say) states no wavelength
        icons = _ICONS.match(raw.strip())
        if icons:
            found.append((_icons(icons.group(1), where), raw.strip()))
            continue
        keyword = _KEYWORD.search(line)
        if keyword:
            radiation = _after_keyword(keyword.group(1), where)
            if radiation is not None:
                found.append((radiation, raw.strip()))
                continue
        pair = _PAIR_WITH_UNIT.search(line)
        if pair and re.search(r"k\s*(?:a|α)", line, re.IGNORECASE):
            found.append((_doublet(float(pair.group(1)), float(pair.group(2)), KALPHA2_RATIO, where), raw.strip()))
    if not found:
        return None
    first = found[0][0]
    for radiation, text in found[1:]:
        if abs(radiation.primary - first.primary) > 2e-4 * first.primary:
            raise InputError(
                f"the header states two wavelengths, {first.primary:g} Å ({found[0][1][:50]!r}) and "
                f"{radiation.primary:g} Å ({text[:50]!r}); pass --wavelength"
            )
    return max((r for r, _ in found), key=lambda r: len(r.lines))


def instrument_file_reference(header: list[str]) -> str | None:
    """The GSAS instrument-parameter file a raw file's header names (``Instrument parameter file: NAME``)."""
    for line in header:
        match = _PRM_REFERENCE.search(line)
        if match:
            return match.group(1)
    return None


def gsas_instrument_radiation(text: str, source: str = "<prm>") -> Radiation | None:
    """The radiation of the first ``INS n ICONS`` line of a GSAS instrument-parameter file, or None."""
    for number, line in enumerate(text.splitlines(), start=1):
        match = _ICONS.match(line.strip())
        if match:
            try:
                return _icons(match.group(1), f"line {number}")
            except InputError as error:
                raise InputError(error.message, source) from None
    return None
