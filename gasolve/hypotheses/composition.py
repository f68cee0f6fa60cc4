"""Chemical formula -> element counts of one formula unit, parsed by ASE's :class:`ase.formula.Formula`.

ASE accepts any capitalised token as an element ("Xx2O"), so every symbol is checked against
:data:`ase.data.atomic_numbers`. Spaces between groups are allowed ("Pb S O4"). Counts are reduced by their
greatest common divisor, so "Ca10(PO4)6F2" and "Ca5(PO4)3F" give the same formula unit and Z counts units of
the reduced formula.
"""

from __future__ import annotations

import math
import re

from gasolve.errors import InputError

_TOKEN = re.compile(r"[A-Z][a-z]*")


def parse_composition(formula: str, *, reduce: bool = True, key: str = "composition") -> dict[str, int]:
    """Element counts of ``formula``, in the order the elements first appear.

    Parameters
    ----------
    formula : str
        E.g. "Ca5(PO4)3F", "K4SnO4", "Pb S O4".
    reduce : bool
        Divide the counts by their greatest common divisor (the formula unit).
    key : str
        Name of the config key, for error messages.

    Returns
    -------
    dict of str to int
        Element symbol -> count (positive integers).

    Raises
    ------
    InputError
        When the formula does not parse, names an unknown element, or holds no atoms.
    """
    from ase.data import atomic_numbers
    from ase.formula import Formula

    if not isinstance(formula, str):
        raise InputError(f"{key} must be a chemical formula such as 'Ca5(PO4)3F', got {formula!r}")
    text = "".join(formula.split())
    if not text:
        raise InputError(f"{key} is empty; expected a chemical formula such as 'Ca5(PO4)3F'")
    try:
        counts = Formula(text).count()
    except (ValueError, KeyError, IndexError) as error:
        raise InputError(
            f"{key} = {formula!r} is not a chemical formula (expected element symbols with integer counts and "
            f"parentheses, such as 'Ca5(PO4)3F'): {error or 'cannot parse'}"
        ) from None
    unknown = [symbol for symbol in counts if symbol not in atomic_numbers or symbol == "X"]
    if unknown:
        raise InputError(f"{key} = {formula!r}: unknown element {unknown[0]!r}")
    stray = set(_TOKEN.findall(text)) - set(counts)
    if stray:
        raise InputError(f"{key} = {formula!r}: unknown element {sorted(stray)[0]!r}")
    counts = {symbol: int(n) for symbol, n in counts.items() if n != 0}
    if not counts or any(n < 0 for n in counts.values()):
        raise InputError(f"{key} = {formula!r} holds no atoms; expected positive counts such as 'Ca5(PO4)3F'")
    if reduce:
        divisor = math.gcd(*counts.values())
        counts = {symbol: n // divisor for symbol, n in counts.items()}
    return counts
