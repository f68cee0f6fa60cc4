"""Small known structures shared by the symnet tests (hand-entered textbook prototypes)."""

from __future__ import annotations

from pathlib import Path

from gasolve.crystal import SpaceGroup, Structure, UnitCell
from gasolve.crystal.structure import Site

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _structure(symbol: str, cell: tuple, sites: list[tuple[str, tuple]], name: str) -> Structure:
    return Structure(
        UnitCell(*cell),
        SpaceGroup.from_symbol(symbol),
        tuple(Site(f"{el}{i}", el, xyz, b_iso=0.5) for i, (el, xyz) in enumerate(sites)),
        name=name,
    )


#: One structure per crystal system or so, each small.
PROTOTYPES = [
    _structure("Fm-3m", (5.64, 5.64, 5.64, 90, 90, 90), [("Na", (0, 0, 0)), ("Cl", (0.5, 0.5, 0.5))], "NaCl"),
    _structure("Pm-3m", (4.12, 4.12, 4.12, 90, 90, 90), [("Cs", (0, 0, 0)), ("Cl", (0.5, 0.5, 0.5))], "CsCl"),
    _structure("P42/mnm", (4.59, 4.59, 2.96, 90, 90, 90), [("Ti", (0, 0, 0)), ("O", (0.305, 0.305, 0))], "TiO2"),
    _structure(
        "P63mc", (3.25, 3.25, 5.21, 90, 90, 120), [("Zn", (1 / 3, 2 / 3, 0)), ("O", (1 / 3, 2 / 3, 0.382))], "ZnO"
    ),
    _structure(
        "R-3m:H",
        (2.88, 2.88, 14.2, 90, 90, 120),
        [("Li", (0, 0, 0.5)), ("Co", (0, 0, 0)), ("O", (0, 0, 0.24))],
        "LiCoO2",
    ),
    _structure(
        "Pnma",
        (8.48, 5.40, 6.96, 90, 90, 90),
        [("Pb", (0.188, 0.25, 0.167)), ("S", (0.437, 0.25, 0.684)), ("O", (0.595, 0.25, 0.595))],
        "PbSO4",
    ),
    _structure(
        "P21/c", (5.2, 6.1, 7.3, 90, 104, 90), [("Zr", (0.276, 0.04, 0.209)), ("O", (0.07, 0.33, 0.34))], "ZrO2"
    ),
    _structure("P-1", (5.1, 6.2, 7.0, 81, 95, 102), [("Ca", (0.1, 0.2, 0.3)), ("O", (0.4, 0.1, 0.7))], "CaO-tric"),
]
