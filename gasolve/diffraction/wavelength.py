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


#: Relative difference of two primary wavelengths above which a file and --wavelength disagree (the tables'
#: Cu Kα1 values, Bearden's 1.540562 Å and Hölzer's 1.5405981 Å, differ by 2.4e-5 relative).
AGREEMENT = 2e-4

#: What to pass when a file states no wavelength.
WAVELENGTH_HINT = "pass --wavelength (Å, or a named line such as CuKa12, CuKa1, MoKa12, MoKa1, CoKa12)"


def describe_radiation(radiation: Radiation) -> str:
    """``'CuKa12 (1.540598 Å x1, 1.544430 Å x0.5)'``."""
    lines = ", ".join(f"{lam:.6f} Å x{weight:g}" for lam, weight in radiation.lines)
    return f"{radiation.name} ({lines})"


def choose_radiation(stated: Radiation | None, flag: str | float | None, source: str) -> tuple[Radiation, list[str]]:
    """The radiation a command uses: ``--wavelength`` when given, else the one the pattern file states.

    Parameters
    ----------
    stated : Radiation or None
        What the file states (:attr:`gasolve.io.patterns.ObservedPattern.radiation`).
    flag : str, float or None
        The ``--wavelength`` value, None when absent.
    source : str
        The pattern file, named in the error and the notes.

    Returns
    -------
    radiation : Radiation
    notes : list of str
        What the user should see: a disagreement between the file and the flag (the flag wins), or a
        difference in the lines (Kα2 added or dropped) when their primary wavelengths agree.

    Raises
    ------
    InputError
        When neither gives a wavelength: a missing wavelength is an error, never a guess.
    """
    if flag is None:
        if stated is None:
            raise InputError(f"the file states no wavelength; {WAVELENGTH_HINT}", source)
        return stated, []
    given = parse_radiation(flag)
    if stated is None:
        return given, []
    if abs(given.primary - stated.primary) > AGREEMENT * stated.primary:
        return given, [
            f"{source}: the file states the wavelength {describe_radiation(stated)}, --wavelength gives "
            f"{describe_radiation(given)}; they disagree, using --wavelength"
        ]
    if len(given.lines) != len(stated.lines):
        return given, [
            f"{source}: the file states {describe_radiation(stated)}; using --wavelength {describe_radiation(given)}"
        ]
    return given, []


def radiation_spec(radiation: Radiation) -> tuple[str | float, float]:
    """A ``[pattern] wavelength`` value and Kα2 ratio that reproduce ``radiation`` in a run config.

    One line gives its wavelength (Å); a doublet gives the name of the tabulated doublet whose two lines agree
    with it (within :data:`AGREEMENT`), because a config names doublets only by name.

    Raises
    ------
    InputError
        When a doublet matches no named one.
    """
    if len(radiation.lines) == 1:
        return radiation.primary, KALPHA2_RATIO
    (alpha1, _), (alpha2, ratio) = radiation.lines[:2]
    table = named_wavelengths()
    for name in doublet_names(table):
        named1, named2 = table[name[:-2] + "1"], table[name[:-2] + "2"]
        if abs(named1 - alpha1) <= AGREEMENT * alpha1 and abs(named2 - alpha2) <= AGREEMENT * alpha2:
            return name, float(ratio)
    raise InputError(
        f"the file states the doublet {describe_radiation(radiation)}, which matches no named Kα1+Kα2 doublet; "
        f"{WAVELENGTH_HINT}"
    )
