"""Geometric H placement (gasolve.crystal.hydrogens) on real structures: remove the H, place them, compare.

Usage::

    python -m benchmarks.hydrogen_placement [--split tune|report] [--n N] [--seed 0] [--json PATH]

**Structures**: ../shared/data/mp-structures, every structure whose reduced formula has H and whose stored
(primitive) cell has at most 20 sites, ordered (``broad.standardise``: spglib's standard conventional cell at
symprec 0.01 and its asymmetric unit with Wyckoff letters). ``report``: the held-out split (``crc32(material_id)
% 5 == 0``, :func:`benchmarks.z_window.held_out`); ``tune``: the rest, the split the settings were tuned on.
``--n`` draws that many of the split (seeded); without it, all.

**Class** of a structure, from its true H: when no H lies within 1.25 Å of an O or N (:func:`place_hydrogens`
should return None), ``C-H, B-H`` if some H is that close to a non-metal (formates, BH4-), else ``hydride``;
``mixed`` when some H are bonded to O or N and some not; else by the donors: ``ammonium`` (an N with 3-4 H),
``water`` (an O with 2 H), ``N-H`` (other N), ``hydroxide``.

**Judging** (the non-H atoms are the reference's, so no origin or setting ambiguity): ``all_within``: every true
H of the cell within 0.3 Å of a placed H (periodic distance) and the same count; ``ml_match``: pymatgen
``StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10).fit`` of the reference and the structure with placed H. For
``hydride`` and ``C-H, B-H``, success is ``declined`` (None returned).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import provenance  # noqa: E402
from benchmarks.broad import standardise  # noqa: E402
from benchmarks.z_window import DATA, held_out  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DONOR_BOND = 1.25  # Å: an H this close to O or N is bonded to it (O-H 0.97, N-H 1.01 in DFT)
TOLERANCE = 0.3  # Å


def candidates(split: str, data: Path = DATA) -> list[str]:
    """Material ids of the split whose formula has H and whose stored cell has at most 20 sites."""
    import pandas as pd

    index = pd.read_csv(data / "index.csv")
    has_h = index.reduced_formula.str.contains(r"H(?![a-z])", regex=True)
    index = index[has_h & (index.n_sites <= 20)]
    wanted = index.material_id.map(held_out) if split == "report" else ~index.material_id.map(held_out)
    return sorted(index.material_id[wanted])


def read_structures(material_ids: list[str], data: Path = DATA) -> dict:
    """pymatgen Structures of ``material_ids`` from structures.csv.gz."""
    import pandas as pd
    from pymatgen.core import Structure

    wanted, found = set(material_ids), {}
    for chunk in pd.read_csv(data / "structures.csv.gz", usecols=["material_id", "cif"], chunksize=4000):
        chunk = chunk[chunk.material_id.isin(wanted)]
        for material_id, cif in zip(chunk.material_id, chunk.cif, strict=True):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found[material_id] = Structure.from_str(cif, fmt="cif")
    return found


def classify(structure) -> str:
    """Class of a structure with H (module docstring)."""
    hydrogens = [i for i, s in enumerate(structure) if s.specie.symbol == "H"]
    donors: Counter = Counter()
    free = covalent = 0
    for i in hydrogens:
        neighbours = [n for n in structure.get_neighbors(structure[i], DONOR_BOND) if n.specie.symbol != "H"]
        nearest = min(neighbours, key=lambda n: n.nn_distance) if neighbours else None
        if nearest is not None and nearest.specie.symbol in ("O", "N"):
            donors[(nearest.specie.symbol, nearest.index)] += 1
        else:
            free += 1
            covalent += nearest is not None and not nearest.specie.is_metal
    if not donors:
        return "C-H, B-H" if covalent else "hydride"
    if free:
        return "mixed"
    if any(e == "N" and k >= 3 for (e, _), k in donors.items()):
        return "ammonium"
    if any(e == "O" and k == 2 for (e, _), k in donors.items()):
        return "water"
    if any(e == "N" for e, _ in donors):
        return "N-H"
    return "hydroxide"


def _origin_shift(space_group, reference) -> np.ndarray | None:
    """The shift that puts ``reference`` (spglib's setting) into gasolve's setting of the same group, or None.

    spglib's standard setting of a group with two origin choices is the first, gemmi's (gasolve's) the second;
    Wyckoff letters agree, coordinates differ by an origin shift, found here as the one under which the
    group's operators map the structure onto itself.
    """
    frac = np.array([s.frac_coords for s in reference])
    species = np.array([s.specie.Z for s in reference])
    for shift in np.array(np.meshgrid(*[np.arange(8) / 8] * 3, indexing="ij")).reshape(3, -1).T:
        moved = frac + shift
        ok = True
        for rotation, translation in zip(space_group.rotations, space_group.translations, strict=True):
            image = moved @ rotation.T + translation
            delta = image[:, None, :] - moved[None, :, :]
            delta -= np.round(delta)
            same = (np.abs(delta) < 2e-3).all(axis=2) & (species[:, None] == species[None, :])
            if not same.any(axis=1).all():
                ok = False
                break
        if ok:
            return shift
    return None


def prepare(material_id: str, structure) -> dict:
    """The reference in gasolve's setting, its class, and the input of :func:`place_hydrogens`."""
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from gasolve.crystal.cell import UnitCell
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.crystal.wyckoff import wyckoff_position

    row = {"material_id": material_id, "formula": structure.composition.reduced_formula}
    found = standardise(structure)
    if found is None:
        return {**row, "skipped": "disordered, too large or refused by spglib"}
    reference = found["structure"]
    row.update(space_group=found["space_group"], cls=classify(reference), n_h=int(reference.composition["H"]))
    space_group = SpaceGroup.from_symbol(found["space_group"])
    shift = _origin_shift(space_group, reference)
    if shift is None:
        return {**row, "skipped": "no origin shift maps spglib's setting onto gasolve's"}
    reference = Structure(
        reference.lattice, reference.species, np.mod(reference.frac_coords + shift, 1.0), coords_are_cartesian=False
    )
    symmetrized = SpacegroupAnalyzer(reference, symprec=0.01).get_symmetrized_structure()
    frac, elements, h_sites = [], [], []
    try:
        for group, label in zip(symmetrized.equivalent_sites, symmetrized.wyckoff_symbols, strict=True):
            if group[0].specie.symbol == "H":
                h_sites.append(wyckoff_position(space_group, label))
            else:
                frac.append(group[0].frac_coords)
                elements.append(group[0].specie.symbol)
    except ValueError as error:  # another setting than gasolve's tables
        return {**row, "skipped": str(error)}
    return {
        **row,
        "input": (UnitCell(*found["cell"]), space_group, np.array(frac), elements, h_sites),
        "reference": reference,
    }


def judge(prepared: dict, settings=None) -> dict:
    """Place the H of a prepared structure and judge them (module docstring); the row of the JSON."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Lattice, Structure

    from gasolve.crystal.hydrogens import HydrogenSettings, place_hydrogens

    row = {k: v for k, v in prepared.items() if k not in ("input", "reference")}
    if "skipped" in prepared:
        return row
    cell, space_group, frac, elements, h_sites = prepared["input"]
    reference = prepared["reference"]
    start = time.perf_counter()
    placed = place_hydrogens(cell, space_group, frac, elements, h_sites, settings or HydrogenSettings())
    row["seconds"] = round(time.perf_counter() - start, 3)
    row["declined"] = placed is None
    if placed is None:
        return row
    # gasolve's cell matrix and pymatgen's may differ by a rotation: compare in fractional coordinates.
    h_cell = np.concatenate([space_group.orbit(h, tol=1e-3) for h in placed])
    true_h = np.array([s.frac_coords for s in reference if s.specie.symbol == "H"])
    delta = true_h[:, None, :] - h_cell[None, :, :]
    delta -= np.round(delta)
    distances = np.sqrt(np.einsum("tpi,ij,tpj->tp", delta, cell.metric, delta))
    row["max_h_distance"] = round(float(distances.min(axis=1).max()), 3)
    row["all_within"] = bool(len(h_cell) == len(true_h) and row["max_h_distance"] <= TOLERANCE)
    species = [s.specie.symbol for s in reference if s.specie.symbol != "H"] + ["H"] * len(h_cell)
    coords = [s.frac_coords for s in reference if s.specie.symbol != "H"] + list(h_cell)
    model = Structure(Lattice(reference.lattice.matrix), species, coords)
    row["ml_match"] = bool(StructureMatcher(stol=0.5, ltol=0.3, angle_tol=10).fit(reference, model))
    return row


def evaluate(material_id: str, structure, settings=None) -> dict:
    """:func:`judge` of :func:`prepare`."""
    return judge(prepare(material_id, structure), settings)


def summarise(rows: list[dict]) -> dict:
    """Shares per class: placed H all within 0.3 Å, ML match, declined."""
    by_class: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if "skipped" not in row:
            by_class[row["cls"]].append(row)
    summary = {}
    for cls, members in sorted(by_class.items()):
        n = len(members)
        summary[cls] = {
            "n": n,
            "declined": sum(r["declined"] for r in members),
            "all_within": sum(bool(r.get("all_within")) for r in members),
            "ml_match": sum(bool(r.get("ml_match")) for r in members),
        }
    donor = [r for r in rows if "skipped" not in r and r["cls"] not in ("hydride", "C-H, B-H", "mixed")]
    summary["donor_classes"] = {
        "n": len(donor),
        "all_within": sum(bool(r.get("all_within")) for r in donor),
        "ml_match": sum(bool(r.get("ml_match")) for r in donor),
        "declined": sum(r["declined"] for r in donor),
    }
    hydrides = [r for r in rows if "skipped" not in r and r["cls"] in ("hydride", "C-H, B-H")]
    summary["hydrides_declined"] = f"{sum(r['declined'] for r in hydrides)}/{len(hydrides)}"
    return summary


def run_benchmark(split: str = "report", n: int | None = None, seed: int = 0, settings=None) -> dict:
    """Evaluate the split (module docstring); returns the JSON document."""
    ids = candidates(split)
    if n is not None and n < len(ids):
        ids = sorted(np.random.default_rng(seed).choice(ids, n, replace=False).tolist())
    structures = read_structures(ids)
    rows = []
    for material_id in ids:
        try:
            rows.append(evaluate(material_id, structures[material_id], settings))
        except Exception as error:  # one structure's failure is a row, not the end of the run
            rows.append({"material_id": material_id, "error": f"{type(error).__name__}: {error}", "skipped": "error"})
    from gasolve.crystal.hydrogens import HydrogenSettings

    return {
        "benchmark": "hydrogen_placement",
        "split": split,
        "n_candidates": len(candidates(split)),
        "n": n,
        "seed": seed,
        "settings": repr(settings or HydrogenSettings()),
        "summary": summarise(rows),
        "skipped": sum("skipped" in r for r in rows),
        "rows": rows,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": provenance.git("rev-parse", "HEAD"),
        "versions": provenance.versions("numpy", "pymatgen", "spglib", "gemmi", "pyxtal", "scipy"),
        "machine": {"cpu": provenance.cpu_model(), "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("tune", "report"), default="report")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run_benchmark(args.split, args.n, args.seed)
    path = args.json or RESULTS / f"hydrogen_placement-{args.split}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
