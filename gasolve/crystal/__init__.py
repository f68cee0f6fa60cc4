"""Crystal model: unit cell, space group, structure and CIF I/O."""

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.cif_io import format_cif, parse_cif, read_cif, write_cif
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import Site, Structure, element_symbol

__all__ = [
    "Site",
    "SpaceGroup",
    "Structure",
    "UnitCell",
    "element_symbol",
    "format_cif",
    "parse_cif",
    "read_cif",
    "write_cif",
]
