"""End to end in every crystal system: config -> `gasolve run` -> best.cif read back by pymatgen, gemmi and ASE.

Each case is a small structure (2-4 independent sites) whose pattern gasolve simulates; `gasolve run` must solve it
(the true structure is the reference, --stop-when-solved), and the file a user receives must hold the model the
run reports: the symmetry-expanded cell of best.cif, as each of three independent readers builds it, equals the
expansion of summary.json's refined sites (by gemmi's operators of the configured group) within 1e-5 in
fractional coordinates, pymatgen's StructureMatcher matches it to the truth, and `gasolve score best.cif` gives
back the run's Rwp. The cases cover the seven crystal systems, the ten polar crystal classes (1, 2, m, mm2, 4,
4mm, 3, 3m, 6, 6mm: the origin floats along their polar directions, [111] in R3:R), the C, I, F and R lattices
(R in hexagonal and in rhombohedral axes) and two non-standard settings (P 1 21/n 1, Pbnm), each spelled in the
config as a user might write it. Four run in the default suite (triclinic, polar monoclinic, polar hexagonal, an
R lattice); the whole matrix is marked slow.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import ase.io
import gemmi
import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure as PymatgenStructure

import gasolve.config
from gasolve.cli.main import main
from gasolve.crystal.cell import UnitCell
from gasolve.crystal.cif_io import write_cif
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import Site, Structure

pytestmark = pytest.mark.filterwarnings("ignore:Issues encountered while parsing CIF", "ignore::UserWarning")

BACKGROUND_TERMS = 3
FWHM = 0.1
ETA = 0.5
TOLERANCE = 1e-5  # fractional, between the file as read and the model the run reports


@dataclass(frozen=True)
class Case:
    """A structure to solve: ``spelling`` is how the config names the group, ``xhm`` gemmi's name of the same
    setting (used to expand the reported model independently); sites are (element, Wyckoff label or None for a
    general position, fractional coordinates)."""

    id: str
    spelling: str
    xhm: str
    cell: tuple[float, float, float, float, float, float]
    sites: tuple[tuple[str, str | None, tuple[float, float, float]], ...]
    wyckoff: bool = True  # give the Wyckoff letters (only for standard settings, which PyXtal tabulates)
    budget: int = 300_000
    compare_finds: bool = True  # whether gasolve's own comparison recognises the solution (else StructureMatcher)


T, TT = 1 / 3, 2 / 3
CASES = {
    case.id: case
    for case in (
        Case("P1", "P1", "P 1", (4.3, 4.9, 5.4, 84, 97, 103),
             (("Ba", None, (0.5071, 0.5064, 0.2362)), ("S", None, (0.0145, 0.9332, 0.0858)),
              ("O", None, (0.8449, 0.3679, 0.951))), wyckoff=False),
        Case("P2_1", "P2_1", "P 1 21 1", (4.6, 5.5, 6.1, 90, 101, 90),
             (("Pb", "2a", (0.3805, 0.7133, 0.6125)), ("O", "2a", (0.941, 0.9917, 0.7237)))),
        Case("Cm", "C 1 m 1", "C 1 m 1", (7.0, 5.6, 5.1, 90, 105, 90),
             (("Pb", "2a", (0.0, 0.0, 0.2147)), ("S", "2a", (0.4177, 0.0, 0.981)),
              ("O", "4b", (0.8905, 0.2423, 0.6115)))),
        Case("Pmn2_1", "Pmn2_1", "P m n 21", (4.1, 5.4, 5.0, 90, 90, 90),
             (("Zn", "2a", (0.0, 0.507, 0.1044)), ("O", "2a", (0.0, 0.8229, 0.483)))),
        Case("I4", "I 4", "I 4", (5.7, 5.7, 6.4, 90, 90, 90),
             (("Pb", "2a", (0.0, 0.0, 0.3743)), ("Cl", "4b", (0.0, 0.5, 0.1235)))),
        Case("P4mm", "P4mm", "P 4 m m", (4.0, 4.0, 4.04, 90, 90, 90),  # tetragonal BaTiO3
             (("Ba", "1a", (0.0, 0.0, 0.0)), ("Ti", "1b", (0.5, 0.5, 0.512)), ("O", "1b", (0.5, 0.5, 0.974)),
              ("O", "2c", (0.5, 0.0, 0.486)))),
        Case("R3:R", "R3:R", "R 3:R", (5.5, 5.5, 5.5, 58, 58, 58),
             (("Pb", None, (0.0, 0.6041, 0.4694)), ("O", None, (0.6777, 0.7787, 0.2199))), wyckoff=False,
             budget=20_000),
        Case("R3m:H", "R 3 m", "R 3 m:H", (5.6, 5.6, 14.0, 90, 90, 120),
             (("Bi", "3a", (0.0, 0.0, 0.4566)), ("O", "9b", (0.4832, 0.5168, 0.4733)))),
        Case("P6_3", "P6_3", "P 63", (6.2, 6.2, 5.0, 90, 90, 120),
             (("Ba", "2b", (T, TT, 0.3494)), ("O", "6c", (0.8912, 0.3515, 0.4593)))),
        Case("P6_3mc", "P6_3mc", "P 63 m c", (3.25, 3.25, 5.21, 90, 90, 120),  # wurtzite ZnO
             (("Zn", "2b", (T, TT, 0.0)), ("O", "2b", (T, TT, 0.382)))),
        Case("Fm-3m", "225", "F m -3 m", (9.75, 9.75, 9.75, 90, 90, 90),  # K2PtCl6
             (("Pt", "4a", (0.0, 0.0, 0.0)), ("K", "8c", (0.25, 0.25, 0.25)), ("Cl", "24e", (0.24, 0.0, 0.0)))),
        Case("P21/n", "P 1 21/n 1", "P 1 21/n 1", (5.2, 6.1, 7.3, 90, 95, 90),
             (("Pb", None, (0.8062, 0.3165, 0.149)), ("O", None, (0.6985, 0.4485, 0.7989))), wyckoff=False),
        Case("Pbnm", "Pbnm", "P b n m", (6.5, 7.0, 9.0, 90, 90, 90),
             (("Ba", None, (0.8358, 0.127, 0.6211)), ("O", None, (0.8121, 0.4047, 0.4238))), wyckoff=False),
    )
}  # fmt: skip
DEFAULT = ("P1", "Cm", "P6_3mc", "R3:R")


def _params(ids):
    return [pytest.param(i, id=i, marks=() if i in DEFAULT else pytest.mark.slow) for i in ids]


def _strict_json(text: str) -> dict:
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


# The key of the number of Chebyshev terms (renamed from 'chebyshev' to 'terms' while this was written).
_BACKGROUND_KEY = "terms" if "terms" in getattr(gasolve.config, "_BACKGROUND_KEYS", ()) else "chebyshev"


def _config(case: Case, pattern: Path, reference: Path, out: Path) -> str:
    elements = ", ".join(f'"{element}"' for element, _, _ in case.sites)
    lines = [
        "[structure]",
        f'name = "{case.id}"',
        f"cell = {list(case.cell)}",
        f'space_group = "{case.spelling}"',
        f"sites = [{elements}]",
        "b_iso = 0.6",
    ]
    if case.wyckoff:
        lines.append("wyckoff = [" + ", ".join(f'"{label}"' for _, label, _ in case.sites) + "]")
    lines += [
        "[pattern]",
        f'file = "{pattern.name}"',
        'wavelength = "CuKa1"',
        "[pattern.profile]",
        f"fwhm = {FWHM}",
        f"eta = {ETA}",
        "[pattern.background]",
        f"{_BACKGROUND_KEY} = {BACKGROUND_TERMS}",
        "[reference]",
        f'cif = "{reference.name}"',
        "[output]",
        f'dir = "{out.name}"',
    ]
    return "\n".join(lines) + "\n"


def _solve(case: Case, folder: Path, capsys) -> tuple[Path, Path, dict]:
    """Simulate the case's pattern, run gasolve on it; the output folder, the pattern and summary.json."""
    truth = Structure(
        UnitCell(*case.cell),
        SpaceGroup.from_symbol(case.spelling),
        tuple(Site(f"{e}{i + 1}", e, frac, 1.0, 0.6) for i, (e, _, frac) in enumerate(case.sites)),
        name=case.id.replace("/", "_").replace(":", "_"),
    )
    reference, pattern, out = folder / "truth.cif", folder / "pattern.xye", folder / "run"
    write_cif(truth, reference)
    simulate = ["simulate", reference, "--out", pattern, "--range", 10, 90, "--step", 0.02, "--fwhm", FWHM]
    simulate += ["--eta", ETA, "--counts", 50_000, "--background", 200, 20, "--seed", 1]
    assert main([str(a) for a in simulate]) == 0
    config = folder / "run.toml"
    config.write_text(_config(case, pattern, reference, out))
    argv = ["run", config, "--out", out, "--stop-when-solved", "--quiet", "--seed", 1, "--max-evaluations", case.budget]
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = _strict_json((out / "summary.json").read_text())
    assert summary["solved"] is case.compare_finds, captured.out
    return out, pattern, summary


def _expand(group: gemmi.SpaceGroup, sites: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """Every atom of the cell, by gemmi's operators; duplicates (special positions) merged."""
    atoms: list[tuple[str, np.ndarray]] = []
    for element, frac in sites:
        for op in group.operations():
            image = np.mod(op.apply_to_xyz(list(map(float, frac))), 1.0)
            if not any(e == element and _distance(image, f) < 1e-4 for e, f in atoms):
                atoms.append((element, image))
    return atoms


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Largest per-axis fractional difference, modulo lattice translations."""
    d = np.mod(np.asarray(a) - np.asarray(b) + 0.5, 1.0) - 0.5
    return float(np.max(np.abs(d)))


def _assert_same_atoms(read: list[tuple[str, np.ndarray]], expected: list[tuple[str, np.ndarray]], reader: str):
    assert len(read) == len(expected), f"{reader}: {len(read)} atoms in the cell, expected {len(expected)}"
    worst = 0.0
    for element, frac in expected:
        candidates = [_distance(frac, f) for e, f in read if e == element]
        assert candidates, f"{reader}: no {element}"
        worst = max(worst, min(candidates))
    assert worst < TOLERANCE, f"{reader}: an atom is {worst:.2e} (fractional) from the reported model"


def _cif_values(path: Path) -> dict[str, list[str]]:
    block = gemmi.cif.read(str(path)).sole_block()
    return {axis: list(block.find_loop(f"_atom_site_fract_{axis}")) for axis in "xyz"}


@pytest.mark.parametrize("case_id", _params(CASES))
def test_best_cif_holds_the_reported_model(case_id, tmp_path, capsys):
    case = CASES[case_id]
    out, pattern, summary = _solve(case, tmp_path, capsys)
    cif = out / "best.cif"
    sites = summary["sites"]
    assert [s["element"] for s in sites] == [gemmi.Element(e).name for e, _, _ in case.sites]
    expected = _expand(
        gemmi.find_spacegroup_by_name(case.xhm), [(s["element"], [s["x"], s["y"], s["z"]]) for s in sites]
    )

    small = gemmi.read_small_structure(str(cif))
    assert small.spacegroup.xhm() == case.xhm
    np.testing.assert_allclose(small.cell.parameters, case.cell, atol=1e-6)
    gemmi_atoms = [(s.element.name, np.array(s.fract.tolist())) for s in small.get_all_unit_cell_sites()]
    _assert_same_atoms(gemmi_atoms, expected, "gemmi")

    model = PymatgenStructure.from_file(cif)
    _assert_same_atoms([(s.specie.symbol, s.frac_coords) for s in model], expected, "pymatgen")
    truth = PymatgenStructure.from_file(out.parent / "truth.cif")
    assert StructureMatcher().fit(model, truth), "pymatgen does not match best.cif to the true structure"

    atoms = ase.io.read(cif)
    ase_atoms = list(zip(atoms.get_chemical_symbols(), atoms.get_scaled_positions(wrap=True), strict=True))
    _assert_same_atoms(ase_atoms, expected, "ASE")

    # Coordinates: an esd in parentheses where the data determine one, plain (6 decimals) where symmetry fixes the
    # coordinate or it holds the origin; never rounded to an esd that makes the value meaningless.
    values = _cif_values(cif)
    for i, site in enumerate(sites):
        for axis, esd in zip("xyz", site["esd"], strict=True):
            text = values[axis][i]
            if esd is None or esd == 0:
                assert re.fullmatch(r"-?\d\.\d{6}", text), (site["label"], axis, text)
            else:
                assert 0 < esd < 0.01, (site["label"], axis, esd)
                assert re.fullmatch(r"-?\d\.\d{5,}\(\d+\)", text), (site["label"], axis, text)
    held = [f"{s['label']} {a}" for s in sites for a in s["origin_fixed"]]
    assert held == summary["origin_fixed_by"]
    n_polar = len(_polar_directions(case.xhm))
    assert len(held) == n_polar
    for s in sites:
        for axis in s["origin_fixed"]:
            assert s["esd"]["xyz".index(axis)] is None

    score = ["score", cif, pattern, "--fwhm", FWHM, "--eta", ETA, "--background-terms", BACKGROUND_TERMS]
    score += ["--json", "--plot", out / "score_fit.png"]
    assert main([str(a) for a in score]) == 0
    scored = _strict_json(capsys.readouterr().out)
    assert scored["rwp"] == pytest.approx(summary["rwp"], rel=1e-4)


def _polar_directions(xhm: str) -> np.ndarray:
    """Null space of the stacked (R - I) over gemmi's operators: the directions along which the origin floats."""
    rotations = [np.array(op.rot) // gemmi.Op.DEN for op in gemmi.find_spacegroup_by_name(xhm).operations()]
    stacked = np.concatenate([r - np.eye(3) for r in rotations])
    singular = np.linalg.svd(stacked, compute_uv=False)
    return np.zeros((3 - int(np.count_nonzero(singular > 1e-8)), 3))
