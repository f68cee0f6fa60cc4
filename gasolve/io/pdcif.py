"""Powder CIF (pdCIF) patterns: 2θ, intensity and esd columns and the wavelength, read with gemmi's CIF parser.

Items (IUCr pdCIF dictionary, Toby, in *International Tables* Vol. G (2006), ch. 3.3 and 4.3):

- 2θ: ``_pd_meas_2theta_scan``, ``_pd_proc_2theta_corrected`` or ``_pd_meas_angle_2theta`` per point, else a
  constant step from ``_pd_meas_2theta_range_min/_max/_inc`` (or ``_pd_proc_2theta_range_*``);
- intensity: ``_pd_meas_counts_total``, ``_pd_meas_intensity_total``, ``_pd_proc_intensity_total`` or
  ``_pd_proc_intensity_net``, the first present; its esd from the standard uncertainty in parentheses
  (``1234(35)``), else from ``_pd_proc_ls_weight`` (w = 1/σ²), else counting statistics;
- wavelength: ``_diffrn_radiation_wavelength`` (one value, or a loop with ``_diffrn_radiation_wavelength_wt``
  for Kα1+Kα2, the first line being the one of weight 1), else ``_pd_proc_wavelength``. It may stand in
  another data block of the file (pdCIF splits instrument and pattern blocks); it is used when the file's
  blocks state only one.
"""

from __future__ import annotations

import re

import gemmi
import numpy as np

from gasolve.diffraction.wavelength import Radiation, parse_radiation
from gasolve.errors import InputError

_TWO_THETA = ("_pd_meas_2theta_scan", "_pd_proc_2theta_corrected", "_pd_meas_angle_2theta")
_RANGES = ("_pd_meas_2theta_range_", "_pd_proc_2theta_range_")
_INTENSITY = ("_pd_meas_counts_total", "_pd_meas_intensity_total", "_pd_proc_intensity_total", "_pd_proc_intensity_net")
_WAVELENGTH = ("_diffrn_radiation_wavelength", "_diffrn_radiation_wavelength.value", "_pd_proc_wavelength")
_WEIGHT = ("_diffrn_radiation_wavelength_wt", "_diffrn_radiation_wavelength.wt")
_VALUE = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\((\d+)\))?$")


def is_powder_cif(text: str) -> bool:
    """Whether the text looks like a CIF that holds a powder pattern (a ``data_`` block and a pdCIF 2θ item)."""
    return "data_" in text and any(tag in text for tag in (*_TWO_THETA, *(r + "min" for r in _RANGES)))


def _value_and_esd(text: str, where: str) -> tuple[float, float | None]:
    """A CIF number and its standard uncertainty (None when not given), e.g. ``'12.5(3)'`` -> (12.5, 0.3)."""
    match = _VALUE.match(text.strip())
    if match is None:
        raise InputError(f"{where}: expected a number, got {text!r}")
    number = match.group(1)
    if match.group(2) is None:
        return float(number), None
    mantissa = number.split("e")[0].split("E")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(re.split("[eE]", number)[1]) if re.search("[eE]", number) else 0
    return float(number), int(match.group(2)) * 10.0 ** (exponent - decimals)


def _column(block: gemmi.cif.Block, tag: str) -> list[str] | None:
    values = block.find_values(tag)
    if len(values) == 0:
        return None
    return [str(v) for v in values]


def _radiation(block: gemmi.cif.Block) -> Radiation | None:
    for tag in _WAVELENGTH:
        values = _column(block, tag)
        if values is None or all(v in ("?", ".") for v in values):
            continue
        lines = [_value_and_esd(v, tag)[0] for v in values]
        weights = next((w for w in (_column(block, t) for t in _WEIGHT) if w is not None), None)
        if weights is None or len(weights) != len(lines):
            weights_f = [1.0] + [0.0] * (len(lines) - 1) if len(lines) > 1 else [1.0]
        else:
            weights_f = [_value_and_esd(w, _WEIGHT[0])[0] for w in weights]
        order = sorted(range(len(lines)), key=lambda i: -weights_f[i])
        first = order[0]
        if weights_f[first] <= 0:
            raise InputError(f"{tag}: the wavelengths' weights must be positive")
        stated = [(lines[i], weights_f[i] / weights_f[first]) for i in order if weights_f[i] > 0]
        for lam, _ in stated:
            try:
                parse_radiation(lam)
            except InputError as error:
                raise InputError(f"{tag}: {error.message}") from None
        name = "/".join(f"{lam:g}" for lam, _ in stated)
        return Radiation(tuple(stated), name)
    return None


def _two_theta(block: gemmi.cif.Block, n_points: int) -> np.ndarray | None:
    for tag in _TWO_THETA:
        values = _column(block, tag)
        if values is not None:
            return np.array([_value_and_esd(v, tag)[0] for v in values])
    for prefix in _RANGES:
        parts = [_column(block, prefix + key) for key in ("min", "max", "inc")]
        if all(p is not None for p in parts):
            lo, hi, step = (
                _value_and_esd(p[0], prefix + key)[0] for p, key in zip(parts, ("min", "max", "inc"), strict=True)
            )
            if step <= 0:
                raise InputError(f"{prefix}inc must be positive, got {step}")
            expected = round((hi - lo) / step) + 1
            if expected != n_points:
                raise InputError(f"{prefix}min/max/inc give {expected} points, the intensity column holds {n_points}")
            return lo + step * np.arange(n_points)
    return None


def parse_powder_cif(text: str, source: str = "<cif>"):
    """Parse a powder CIF into an :class:`~gasolve.io.patterns.ObservedPattern` with its stated radiation."""
    from gasolve.io.patterns import ObservedPattern, counting_sigma

    try:
        document = gemmi.cif.read_string(text)
    except (RuntimeError, ValueError) as error:
        raise InputError(f"not a readable CIF: {error}", source) from None
    stated = [r for r in (_safe_radiation(block, source) for block in document) if r is not None]
    for block in document:
        tag = next((t for t in _INTENSITY if _column(block, t) is not None), None)
        if tag is None:
            continue
        where = f"{source} (data_{block.name})"
        try:
            pairs = [_value_and_esd(v, tag) for v in _column(block, tag)]
            two_theta = _two_theta(block, len(pairs))
        except InputError as error:
            raise InputError(error.message, where) from None
        if two_theta is None:
            raise InputError(f"{tag} has no 2θ column ({', '.join(_TWO_THETA)}) or range", where)
        if len(two_theta) != len(pairs):
            raise InputError(f"2θ and {tag} differ in length ({len(two_theta)}, {len(pairs)})", where)
        y = np.array([v for v, _ in pairs])
        esd = [e for _, e in pairs]
        weights = _column(block, "_pd_proc_ls_weight")
        if all(e is not None for e in esd):
            sigma = np.array(esd, dtype=float)
        elif weights is not None and len(weights) == len(y):
            w = np.array([_value_and_esd(v, "_pd_proc_ls_weight")[0] for v in weights])
            sigma = np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), np.inf)
            keep = np.isfinite(sigma)
            two_theta, y, sigma = two_theta[keep], y[keep], sigma[keep]
        else:
            sigma = counting_sigma(y)
        radiation = _safe_radiation(block, source)
        if radiation is None and stated:
            primaries = {round(r.primary, 5) for r in stated}
            if len(primaries) == 1:
                radiation = stated[0]
        return ObservedPattern(two_theta, y, sigma, source, radiation)
    raise InputError(
        f"no powder pattern in this CIF (none of {', '.join(_INTENSITY)}); a structure CIF is not a pattern",
        source,
    )


def _safe_radiation(block: gemmi.cif.Block, source: str) -> Radiation | None:
    try:
        return _radiation(block)
    except InputError as error:
        raise InputError(error.message, f"{source} (data_{block.name})") from None
