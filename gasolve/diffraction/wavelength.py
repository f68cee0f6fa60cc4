"""X-ray wavelengths: a number in Å, one characteristic line, or the Kα1+Kα2 doublet.

Characteristic wavelengths come from ASE's table (``ase.utils.xrdebye.wavelengths``: Cu Kα1 1.5405981 Å,
Hölzer et al., Phys. Rev. A 56 (1997) 4554; Cu Kα2 1.54443 Å).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ase.utils.xrdebye import wavelengths as _ASE_WAVELENGTHS

from gasolve.errors import InputError

#: Intensity of Kα2 relative to Kα1, the usual laboratory value (GSAS and TOPAS use 0.5).
KALPHA2_RATIO = 0.5


@dataclass(frozen=True)
class Radiation:
    """Emission lines used to compute a pattern.

    Attributes
    ----------
    lines : tuple of (wavelength Å, relative weight)
        The first line is the primary one; its weight is 1.
    name : str
        How the user named it.
    """

    lines: tuple[tuple[float, float], ...]
    name: str

    @property
    def primary(self) -> float:
        """Wavelength of the primary line (Å)."""
        return self.lines[0][0]


def parse_radiation(spec: str | float, kalpha2_ratio: float = KALPHA2_RATIO) -> Radiation:
    """Interpret a wavelength specification.

    Parameters
    ----------
    spec : str or float
        A wavelength in Å (number or numeric string), ``"CuKa1"`` or ``"CuKa12"`` (the Kα1+Kα2 doublet).
    kalpha2_ratio : float
        Intensity of Kα2 relative to Kα1 for the doublet.
    """
    if isinstance(spec, bool):
        raise InputError(f"wavelength must be a number in Å, 'CuKa1' or 'CuKa12', got {spec!r}")
    if isinstance(spec, int | float):
        value = float(spec)
    else:
        text = str(spec).strip()
        key = text.replace("α", "a").replace(" ", "")
        if key.lower() == "cuka12":
            return Radiation(
                ((_ASE_WAVELENGTHS["CuKa1"], 1.0), (_ASE_WAVELENGTHS["CuKa2"], float(kalpha2_ratio))),
                "CuKa12",
            )
        matches = [name for name in _ASE_WAVELENGTHS if name.lower() == key.lower()]
        if matches:
            return Radiation(((_ASE_WAVELENGTHS[matches[0]], 1.0),), matches[0])
        try:
            value = float(text)
        except ValueError:
            known = ", ".join(sorted(_ASE_WAVELENGTHS)) + ", CuKa12"
            raise InputError(f"unknown wavelength {spec!r}; expected a number in Å or one of {known}") from None
    if not math.isfinite(value) or not 0.1 <= value <= 5.0:
        raise InputError(f"wavelength must be between 0.1 and 5 Å, got {value}")
    return Radiation(((value, 1.0),), f"{value:g}")
