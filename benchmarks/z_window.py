"""Fit the atomic volumes and packing-ratio window of :mod:`gasolve.hypotheses.z_candidates`, and measure them.

Data: ../shared/data/mp-structures (36,737 Materials Project structures; volume, reduced formula and number of
sites per structure from its CSV files). Split: a structure is held out when crc32(material_id) % 5 == 0 (20 %).

Fit (fitting split only): non-negative least squares of V_cell = sum_e N_e v_e with residuals relative to V_cell,
refitted twice without the structures whose ln q lies more than 3 standard deviations from the median. The window
is the 0.5th, 50th and 99.5th percentiles of q = V_cell / sum_e N_e v_e on the fitting split (all of it, outliers
included), q_min its smallest value.

Evaluation (held-out split, a seeded sample): spglib (symprec 0.1, as index.csv) gives the conventional standard
cell, the true Z (atoms in it / atoms of the reduced formula) and the true Wyckoff assignment; we record the
candidate Z (number, hit, rank of the true one), the number of assignments with Z known and, where there are at
most ``--enumerate-limit`` of them, where the true assignment comes in the enumeration with the cell's distance
filter.

    python -m benchmarks.z_window --fit --evaluate 400
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mp-structures"
VOLUMES = Path(__file__).resolve().parents[1] / "gasolve" / "hypotheses" / "atomic_volumes.json"
RESULTS = Path(__file__).resolve().parent / "results" / "z_window.json"


def held_out(material_id: str) -> bool:
    """The evaluation split: 20 % of the structures, by a hash of the id."""
    return zlib.crc32(material_id.encode()) % 5 == 0


def load_table(data: Path = DATA):
    """index.csv joined with the volumes of structures.csv.gz (one row per structure)."""
    import pandas as pd

    index = pd.read_csv(data / "index.csv")
    volumes = pd.read_csv(data / "structures.csv.gz", usecols=["index", "volume"])
    index = index.rename(columns={"space_group_number_spglib_0.1": "space_group"})
    return index.merge(volumes, on="index")


def fit(table) -> dict:
    """Atomic volumes and window from the fitting split (module docstring)."""
    from ase.data import atomic_numbers, covalent_radii
    from ase.formula import Formula
    from scipy.optimize import nnls

    rows = []
    for formula, n_sites in zip(table.reduced_formula, table.n_sites, strict=True):
        counts = Formula(formula).count()
        scale = n_sites / sum(counts.values())
        rows.append({e: n * scale for e, n in counts.items()})
    elements = sorted({e for row in rows for e in row}, key=lambda e: atomic_numbers[e])
    column = {e: i for i, e in enumerate(elements)}
    design = np.zeros((len(rows), len(elements)))
    for i, row in enumerate(rows):
        for e, n in row.items():
            design[i, column[e]] = n
    volume = table.volume.to_numpy(float)
    fitting = ~np.array([held_out(m) for m in table.material_id])
    keep = fitting.copy()
    for _ in range(3):
        weights = 1.0 / volume[keep]
        volumes, _ = nnls(design[keep] * weights[:, None], np.ones(keep.sum()))
        log_q = np.log(volume / (design @ volumes))
        spread = log_q[fitting].std()
        keep = fitting & (np.abs(log_q - np.median(log_q[fitting])) < 3 * spread)
    q = volume[fitting] / (design[fitting] @ volumes)
    low, median, high = np.percentile(q, [0.5, 50, 99.5])
    single = (design > 0).sum(axis=1) == 1  # elements: their allotropes pack unlike the compounds v_e come from
    q_all = volume / (design @ volumes)
    elemental = q_all[fitting & single]  # about 140: the window is their whole range, median in the middle
    e_low, e_median, e_high = elemental.min(), np.median(elemental), elemental.max()
    e_held = q_all[~fitting & single]
    covalent = np.array([4 / 3 * math.pi * covalent_radii[atomic_numbers[e]] ** 3 for e in elements])
    held_q = volume[~fitting] / (design[~fitting] @ volumes)
    return {
        "source": "../shared/data/mp-structures (Materials Project, CC BY 4.0), fitted by benchmarks/z_window.py",
        "method": "NNLS of V_cell = sum_e N_e v_e, relative residuals, two 3-sigma refits; window = 0.5/50/99.5th "
        "percentiles of q = V_cell / sum_e N_e v_e on the fitting split (crc32(material_id) % 5 != 0)",
        "units": "v_e in cubic angstrom per atom",
        "n_fit": int(fitting.sum()),
        "n_fit_kept": int(keep.sum()),
        "window": {
            "q_low": round(float(low), 4),
            "q_median": round(float(median), 4),
            "q_high": round(float(high), 4),
            "q_min": round(float(q.min()), 4),
        },
        "element_window": {
            "note": "range and median of q over the single-element structures of the fitting split",
            "n": int((fitting & single).sum()),
            "q_low": round(float(e_low), 4),
            "q_median": round(float(e_median), 4),
            "q_high": round(float(e_high), 4),
            "held_out_n": len(e_held),
            "held_out_inside": round(float(np.mean((e_held >= e_low) & (e_held <= e_high))), 4),
            "held_out_inside_compound_window": round(float(np.mean((e_held >= low) & (e_held <= high))), 4),
        },
        "held_out": {
            "n": int((~fitting).sum()),
            "inside_window": round(float(np.mean((held_q >= low) & (held_q <= high))), 4),
            "sd_ln_q": round(float(np.log(held_q).std()), 4),
        },
        "comparison_sd_ln": {
            "volume_per_atom": round(float(np.log(volume / design.sum(1))[fitting].std()), 4),
            "covalent_spheres": round(float(np.log(volume / (design @ covalent))[fitting].std()), 4),
            "fitted_volumes": round(float(np.log(q).std()), 4),
        },
        "covalent_scale": round(float(np.median(volumes[volumes > 0] / covalent[volumes > 0])), 4),
        "volumes": {e: round(float(v), 3) for e, v in zip(elements, volumes, strict=True) if v > 0},
    }


def true_assignment(structure, symprec: float = 0.1):
    """(space group number, conventional lattice parameters (Å, degrees), Counter of (element, Wyckoff label)
    over the independent sites, spglib dataset) from spglib."""
    import spglib

    from gasolve.hypotheses.assignments import wyckoff_slots

    cell = (structure.lattice.matrix, structure.frac_coords, [site.specie.Z for site in structure])
    from pymatgen.core import Element

    dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    # Wyckoff orbits from the idealised standard cell: on the input cell, equivalent_atoms can split an orbit
    # found at symprec 0.1 into two (seen for mp-18940).
    ideal = spglib.get_symmetry_dataset((dataset.std_lattice, dataset.std_positions, dataset.std_types), 1e-4)
    slots = {s.letter: s for s in wyckoff_slots(ideal.number)}
    sites = Counter()
    for orbit in sorted(set(ideal.equivalent_atoms)):
        element = Element.from_Z(int(dataset.std_types[orbit])).symbol
        sites[(element, slots[ideal.wyckoffs[orbit]].label)] += 1
    lattice = dataset.std_lattice
    lengths = np.linalg.norm(lattice, axis=1)
    angles = [
        math.degrees(math.acos(np.dot(lattice[i], lattice[j]) / lengths[i] / lengths[j]))
        for i, j in ((1, 2), (0, 2), (0, 1))
    ]
    return dataset.number, (*lengths, *angles), sites, dataset


def evaluate(table, n_sample: int, seed: int, enumerate_limit: int) -> dict:
    """Candidate Z and assignment counts on a seeded sample of the held-out split."""
    import pandas as pd
    from pymatgen.core import Structure

    from gasolve.crystal.cell import UnitCell
    from gasolve.errors import InputError
    from gasolve.hypotheses import (
        count_assignments,
        deduplicate,
        enumerate_assignments,
        normalizer_canonicaliser,
        parse_composition,
        z_candidates,
    )

    cifs = pd.read_csv(DATA / "structures.csv.gz", usecols=["index", "cif"])
    pool = table[[held_out(m) for m in table.material_id]]
    sample = pool.sample(n=min(n_sample, len(pool)), random_state=seed).merge(cifs, on="index")
    records = []
    for row in sample.itertuples():
        started = time.perf_counter()
        structure = Structure.from_str(row.cif, fmt="cif")
        number, parameters, sites, dataset = true_assignment(structure)
        composition = parse_composition(row.reduced_formula)
        z_true = len(dataset.std_types) // sum(composition.values())
        cell = UnitCell(*parameters)
        record = {"material_id": row.material_id, "formula": row.reduced_formula, "space_group": number}
        record.update(z_true=z_true, n_primitive=int(row.n_sites), n_independent=sum(sites.values()))
        try:
            candidates = z_candidates(composition, cell, number)
        except InputError as error:
            record.update(candidates=[], error=str(error))
            candidates = []
        zs = [c.z for c in candidates]
        record.update(candidates=zs, z_hit=z_true in zs, z_rank=zs.index(z_true) + 1 if z_true in zs else None)
        n_assign = count_assignments(composition, z_true, number)
        record["n_assignments"] = n_assign
        record["n_assignments_z_unknown"] = sum(c.n_assignments for c in candidates)
        if n_assign <= enumerate_limit:
            target = tuple(sorted(sites.elements()))
            rank = None
            for i, a in enumerate(itertools.islice(enumerate_assignments(composition, z_true, number, cell), 10**6)):
                if tuple(sorted(a.sites)) == target:
                    rank = i + 1
                    break
            record["true_assignment_rank"] = rank
            canonical = normalizer_canonicaliser(number, cell)
            distinct = deduplicate(enumerate_assignments(composition, z_true, number, cell), canonical)
            record["n_distinct"] = sum(1 for _ in distinct)
        record["seconds"] = round(time.perf_counter() - started, 3)
        records.append(record)
    return {"records": records, "summary": summarise(records)}


def summarise(records: list[dict]) -> dict:
    def stats(rows: list[dict]) -> dict:
        counts = np.array([r["n_assignments"] for r in rows], dtype=float)
        ranked = [r for r in rows if "true_assignment_rank" in r]
        return {
            "n": len(rows),
            "z_hit_rate": round(float(np.mean([r["z_hit"] for r in rows])), 4),
            "z_first_rate": round(float(np.mean([r["z_rank"] == 1 for r in rows])), 4),
            "median_n_candidates": float(np.median([len(r["candidates"]) for r in rows])),
            "median_assignments_z_known": float(np.median(counts)),
            "fraction_above_1000": round(float(np.mean(counts > 1000)), 4),
            "fraction_above_1e5": round(float(np.mean(counts > 1e5)), 4),
            "median_assignments_z_unknown": float(np.median([r["n_assignments_z_unknown"] for r in rows])),
            "n_enumerated": len(ranked),
            "true_assignment_found": sum(r["true_assignment_rank"] is not None for r in ranked),
            "median_true_assignment_rank": float(np.median([r["true_assignment_rank"] or np.inf for r in ranked])),
            "median_assignments_enumerated": float(np.median([r["n_assignments"] for r in ranked])),
            "median_distinct_enumerated": float(np.median([r["n_distinct"] for r in ranked])),
        }

    return {"all": stats(records), "mp20_rule": stats([r for r in records if r["n_primitive"] <= 20])}


def crystal_system(number: int) -> str:
    """Crystal system of space group ``number`` (ITA ranges)."""
    for last, name in ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal")):
        if number <= last:
            return name
    return "trigonal" if number <= 167 else "hexagonal" if number <= 194 else "cubic"


def test_sample(table, per_system: int, seed: int, max_assignments: int) -> list[dict]:
    """Held-out structures for tests/test_hypotheses.py: at most 20 atoms in the primitive cell (MP-20's rule),
    ``per_system`` per crystal system drawn with ``seed``, kept when the true Z has at most ``max_assignments``
    assignments (so the test can enumerate them quickly)."""
    import pandas as pd
    from pymatgen.core import Structure

    from gasolve.hypotheses import count_assignments, parse_composition

    cifs = pd.read_csv(DATA / "structures.csv.gz", usecols=["index", "cif"])
    pool = table[np.array([held_out(m) for m in table.material_id]) & (table.n_sites <= 20).to_numpy()].merge(
        cifs, on="index"
    )
    pool = pool.sample(frac=1.0, random_state=seed)
    chosen: dict[str, list[dict]] = {}
    for row in pool.itertuples():
        system = crystal_system(int(row.space_group))
        if len(chosen.setdefault(system, [])) >= per_system:
            continue
        structure = Structure.from_str(row.cif, fmt="cif")
        number, _, _, dataset = true_assignment(structure)
        composition = parse_composition(row.reduced_formula)
        z_true = len(dataset.std_types) // sum(composition.values())
        if crystal_system(number) != system or count_assignments(composition, z_true, number) > max_assignments:
            continue
        chosen[system].append({"material_id": row.material_id, "formula": row.reduced_formula, "cif": row.cif})
        if all(len(chosen.get(s, [])) >= per_system for s in map(crystal_system, (1, 3, 16, 75, 143, 168, 195))):
            break
    return [entry for system in sorted(chosen) for entry in chosen[system]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fit", action="store_true", help=f"refit and write {VOLUMES.name}")
    parser.add_argument("--evaluate", type=int, default=0, help="held-out structures to evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--enumerate-limit", type=int, default=20000)
    parser.add_argument("--write-test-sample", type=Path, help="write the held-out sample the tests read")
    args = parser.parse_args()
    table = load_table()
    if args.fit:
        fitted = fit(table)
        VOLUMES.write_text(json.dumps(fitted, indent=1) + "\n")
        print(json.dumps({k: v for k, v in fitted.items() if k != "volumes"}, indent=1))
    if args.write_test_sample:
        sample = test_sample(table, per_system=5, seed=args.seed, max_assignments=2000)
        note = "held-out mp-structures sample for tests/test_hypotheses.py, made by benchmarks/z_window.py"
        payload = {"source": note, "licence": "Materials Project, CC BY 4.0", "structures": sample}
        args.write_test_sample.write_text(json.dumps(payload, indent=0) + "\n")
    if args.evaluate:
        result = evaluate(table, args.evaluate, args.seed, args.enumerate_limit)
        result["config"] = {"n_sample": args.evaluate, "seed": args.seed, "enumerate_limit": args.enumerate_limit}
        result["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
