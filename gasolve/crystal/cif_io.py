"""CIF read and write through gemmi.

Reading accepts an asymmetric unit with symmetry operators (or only a Hermann-Mauguin symbol), or a full
P1 cell. A site with a row in the ``_atom_site_aniso_`` loop (U_11 ... U_23 as gemmi's small-structure reader gives
them, or B_11 ... B_23 divided by 8π²) carries its U in :attr:`Site.u_aniso`; its B stays 8π² times the CIF's
U_iso_or_equiv (0 where the CIF gives none: the Rietveld refinement then starts from the Ueq of the U_ij).
Writing produces a CIF 1.1 block with cell, space group, operators and the independent atoms, which
ASE, gemmi and pymatgen read back.
"""

from __future__ import annotations

import math
from pathlib import Path

import gemmi

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import U_TO_B, Site, Structure
from gasolve.errors import InputError
from gasolve.io.atomic import atomic_write


def parse_cif(text: str, source: str = "<cif>") -> Structure:
    """Parse the first data block of CIF text into a :class:`Structure`."""
    try:
        document = gemmi.cif.read_string(text)
        block = document.sole_block() if len(document) == 1 else document[0]
        small = gemmi.make_small_structure_from_block(block)
    except (RuntimeError, ValueError, IndexError) as error:
        raise InputError(f"cannot parse CIF: {error}", source) from None
    return _from_small(small, block, source)


def read_cif(path: str | Path) -> Structure:
    """Read a CIF file (first data block)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise InputError(f"cannot read CIF file: {error.strerror}", str(path)) from None
    return parse_cif(text, str(path))


def _from_small(small: gemmi.SmallStructure, block: gemmi.cif.Block, source: str) -> Structure:
    cell = small.cell
    if cell.a <= 0 or cell.b <= 0 or cell.c <= 0:
        raise InputError("no valid _cell_length_a/b/c in the CIF", source)
    group = _space_group(small, source)
    if not small.sites:
        raise InputError("the CIF has no atom sites (_atom_site_fract_x/y/z)", source)
    aniso = _aniso_by_label(small, block)
    try:
        sites = tuple(
            Site(
                label=site.label,
                element=site.element.name,
                frac=(site.fract.x, site.fract.y, site.fract.z),
                occupancy=site.occ if site.occ > 0 else 1.0,
                b_iso=U_TO_B * site.u_iso,
                charge=int(site.charge),
                u_aniso=aniso.get(site.label),
            )
            for site in small.sites
        )
    except InputError as error:
        raise InputError(error.message, source) from None
    return Structure(
        cell=UnitCell(cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma),
        space_group=SpaceGroup.from_gemmi(group),
        sites=sites,
        name=block.name,
    )


_ANISO_B = ("B_11", "B_22", "B_33", "B_12", "B_13", "B_23")


def _aniso_by_label(small: gemmi.SmallStructure, block: gemmi.cif.Block) -> dict[str, tuple[float, ...]]:
    """U (U11, U22, U33, U12, U13, U23; Å², CIF convention) of each site label with a complete row in the
    ``_atom_site_aniso_`` loop: U_ij as gemmi reads them, else B_ij / 8π² (which gemmi does not read)."""
    out = {}
    for site in small.sites:
        a = site.aniso
        u = (a.u11, a.u22, a.u33, a.u12, a.u13, a.u23)
        if a.nonzero() and all(math.isfinite(v) for v in u):
            out[site.label] = u
    table = block.find("_atom_site_aniso_", ["label", *_ANISO_B])
    for row in table:
        u = tuple(gemmi.cif.as_number(row[k + 1]) / U_TO_B for k in range(6))
        label = gemmi.cif.as_string(row[0])
        if label not in out and all(math.isfinite(v) for v in u) and any(u):
            out[label] = u
    return out


def _space_group(small: gemmi.SmallStructure, source: str) -> gemmi.SpaceGroup:
    """The space group from the CIF's operators if it lists them, else from its symbol, else P1."""
    if small.symops:
        try:
            ops = gemmi.GroupOps([gemmi.Op(triplet) for triplet in small.symops])
            group = gemmi.find_spacegroup_by_ops(ops)
        except (RuntimeError, ValueError) as error:
            raise InputError(f"cannot parse the symmetry operators: {error}", source) from None
        if group is None:
            raise InputError("the symmetry operators in the CIF do not form a known space-group setting", source)
        return group
    if small.spacegroup is not None:
        return small.spacegroup
    if small.spacegroup_hm or small.spacegroup_hall:
        raise InputError(f"unknown space group {small.spacegroup_hm or small.spacegroup_hall!r} in the CIF", source)
    return gemmi.find_spacegroup_by_name("P 1")


def with_esd(value: float, esd: float | None, decimals_plain: int = 6, min_decimals: int = 0) -> str:
    """A number with its standard uncertainty in the last digits, 0.18820(12) or 12.30(4) (IUCr convention: two
    digits when the first would be 1).

    Plain, with ``decimals_plain`` decimals, when the esd is 0 (fixed by symmetry), absent (None or NaN: not
    determined, e.g. the coordinate that holds the origin of a polar group) or negligible: a value is never
    rounded to an undefined esd. ``min_decimals`` keeps at least that many decimals, the esd then written in
    units of the last one (0.50000(30)), so that a file carries the value to that precision whatever its esd.
    """
    import math

    if esd is None or not math.isfinite(esd) or esd <= 1e-9 * max(1.0, abs(value)):
        return f"{value:.{decimals_plain}f}"
    decimals = -math.floor(math.log10(esd))
    if esd * 10**decimals < 2:  # two digits when the first is 1 (0.00012 -> (12)), else one (0.0003 -> (3))
        decimals += 1
    decimals = max(decimals, 0, min_decimals)
    return f"{value:.{decimals}f}({round(esd * 10**decimals)})"


COORDINATE_DECIMALS = 5
"""Fractional coordinates keep at least this many decimals in a CIF (1e-4 Å in a 10 Å cell), so that a file read
back gives the refined model to 5e-6 whatever the esd."""


def add_cell_and_symmetry(block: gemmi.cif.Block, structure: Structure, cell_values: list[str]) -> None:
    """Write the cell (``cell_values``: a, b, c, α, β, γ already formatted, with or without esds), its volume,
    the space group's H-M symbol, Hall symbol and number, and the loop of its operators into ``block``."""
    keys = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
    for key, value in zip(keys, cell_values, strict=True):
        block.set_pair(f"_cell_{key}", value)
    block.set_pair("_cell_volume", f"{structure.cell.volume:.4f}")
    group = structure.space_group
    block.set_pair("_symmetry_space_group_name_H-M", gemmi.cif.quote(group.gemmi.hm))
    block.set_pair("_space_group_name_Hall", gemmi.cif.quote(group.hall))
    block.set_pair("_symmetry_Int_Tables_number", str(group.number))
    ops = block.init_loop("_symmetry_equiv_pos_", ["site_id", "as_xyz"])
    for i, triplet in enumerate(group.triplets, start=1):
        ops.add_row([str(i), gemmi.cif.quote(triplet)])


def format_cif(structure: Structure, comments: list[str] | None = None, esd=None, wyckoff=None, calculated=None) -> str:
    """CIF text for ``structure`` (independent atoms with their space-group operators).

    ``esd`` (n_sites, 3), optional: standard uncertainties of the fractional coordinates, written as 0.18820(30);
    a coordinate whose esd is 0 (fixed by symmetry) or NaN (not determined, or holding the origin) is written
    plain with 6 decimals.
    ``wyckoff`` (n_sites labels such as "4c"), optional: adds ``_atom_site_symmetry_multiplicity`` (the distinct
    positions each site generates) and ``_atom_site_Wyckoff_symbol`` (the letter) to the atom loop.
    ``calculated`` (n_sites bool), optional: adds ``_atom_site_calc_flag``, ``calc`` for a site placed by
    geometry (riding H) and ``d`` (determined from the diffraction data) for the others.
    """
    document = gemmi.cif.Document()
    block = document.add_new_block(gemmi.cif.quote(structure.name.replace(" ", "_")) or "structure")
    add_cell_and_symmetry(block, structure, [f"{value:.6f}" for value in structure.cell.parameters])
    columns = ["label", "type_symbol", "fract_x", "fract_y", "fract_z", "occupancy", "U_iso_or_equiv", "adp_type"]
    if wyckoff is not None:
        columns += ["symmetry_multiplicity", "Wyckoff_symbol"]
        multiplicities = structure.site_multiplicities()
    if calculated is not None:
        columns += ["calc_flag"]
    atoms = block.init_loop("_atom_site_", columns)
    for i, site in enumerate(structure.sites):
        row = [
            gemmi.cif.quote(site.label),
            site.element,
            *(
                f"{x:.6f}" if esd is None else with_esd(x, e, min_decimals=COORDINATE_DECIMALS)
                for x, e in zip(site.frac, (0, 0, 0) if esd is None else esd[i], strict=True)
            ),
            f"{site.occupancy:.4f}",
            f"{site.b_iso / U_TO_B:.5f}",
            "Uiso",
        ]
        if wyckoff is not None:
            row += [str(multiplicities[i]), str(wyckoff[i]).lstrip("0123456789")]
        if calculated is not None:
            row += ["calc" if calculated[i] else "d"]
        atoms.add_row(row)
    header = "".join(f"# {line}\n" for line in (comments or []))
    return header + document.as_string()


def write_cif(
    structure: Structure,
    path: str | Path,
    comments: list[str] | None = None,
    esd=None,
    wyckoff=None,
    calculated=None,
) -> None:
    """Write ``structure`` as CIF to ``path`` (atomically: temporary file, then rename); ``esd``, ``wyckoff`` and
    ``calculated`` as in :func:`format_cif`."""
    atomic_write(path, format_cif(structure, comments, esd, wyckoff, calculated))
