"""X-ray wavelengths: a number in Å, one characteristic line, or the Kα1+Kα2 doublet.

Characteristic wavelengths come from ASE's table (``ase.utils.xrdebye.wavelengths``: Cu Kα1 1.5405981 Å,
Hölzer et al., Phys. Rev. A 56 (1997) 4554; Cu Kα2 1.54443 Å; Cu Kβ1, W Lα1, W Lα2). Lines that ASE lacks (Mo, Co,
Cr, Fe, Ag Kα1, Kα2, Kβ1 and their Kα means) come from pymatgen's ``pymatgen.analysis.diffraction.xrd.WAVELENGTHS``
(pymatgen is installed with pyxtal, a dependency); it is imported only when such a name is asked for, because the
import takes seconds. ASE's value wins where both tables name a line. ``<El>Ka12`` names the Kα1+Kα2 doublet of
every element with both lines in either table.
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


def _pymatgen_wavelengths() -> dict[str, float]:
    """pymatgen's line table (Å), imported on first use (seconds)."""
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    return {name: float(value) for name, value in WAVELENGTHS.items()}


def named_wavelengths(include_pymatgen: bool = True) -> dict[str, float]:
    """Every named single line (Å): ASE's table, then pymatgen's lines that ASE lacks."""
    table = dict(_pymatgen_wavelengths()) if include_pymatgen else {}
    table.update(_ASE_WAVELENGTHS)
    return table


def doublet_names(table: dict[str, float]) -> list[str]:
    """``<El>Ka12`` for every element whose Kα1 and Kα2 are both in ``table``."""
    return sorted(name[:-1] + "12" for name in table if name.endswith("Ka1") and name[:-1] + "2" in table)


def _lookup(key: str, table: dict[str, float], kalpha2_ratio: float) -> Radiation | None:
    """The radiation named ``key`` (any case) in ``table``, or None."""
    lowered = key.lower()
    for name in doublet_names(table):
        if name.lower() == lowered:
            alpha1, alpha2 = table[name[:-2] + "1"], table[name[:-2] + "2"]
            return Radiation(((alpha1, 1.0), (alpha2, float(kalpha2_ratio))), name)
    matches = [name for name in table if name.lower() == lowered]
    if matches:
        return Radiation(((table[matches[0]], 1.0),), matches[0])
    return None


def parse_radiation(spec: str | float, kalpha2_ratio: float = KALPHA2_RATIO) -> Radiation:
    """Interpret a wavelength specification.

    Parameters
    ----------
    spec : str or float
        A wavelength in Å (number or numeric string), a line such as ``"CuKa1"`` or ``"MoKa1"``, or a doublet
        ``"CuKa12"``, ``"MoKa12"``, ``"CoKa12"`` (Kα1+Kα2; see :func:`doublet_names`). Names are case-insensitive
        and accept "α" for "a".
    kalpha2_ratio : float
        Intensity of Kα2 relative to Kα1 for the doublet.
    """
    if isinstance(spec, bool):
        raise InputError(f"wavelength must be a number in Å or a line name such as 'CuKa1', got {spec!r}")
    if isinstance(spec, int | float):
        value = float(spec)
    else:
        text = str(spec).strip()
        key = text.replace("α", "a").replace("β", "b").replace(" ", "")
        radiation = _lookup(key, _ASE_WAVELENGTHS, kalpha2_ratio)
        if radiation is not None:
            return radiation
        try:
            value = float(text)
        except ValueError:
            table = named_wavelengths()
            radiation = _lookup(key, table, kalpha2_ratio)
            if radiation is not None:
                return radiation
            known = ", ".join(sorted(table) + doublet_names(table))
            raise InputError(f"unknown wavelength {spec!r}; expected a number in Å or one of {known}") from None
    if not math.isfinite(value) or not 0.1 <= value <= 5.0:
        raise InputError(f"wavelength must be between 0.1 and 5 Å, got {value}")
    return Radiation(((value, 1.0),), f"{value:g}")
