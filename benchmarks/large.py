"""Benchmark of larger structures (issue 15, item 1): 12 to 40 independent sites, several seeds each.

Usage::

    python -m benchmarks.large [--n 63] [--seed 0] [--seeds 5] [--input sites|composition] [--stop solved|budget]
        [--max-evaluations 2e7] [--wall-limit 3600] [--workers N] [--scheduler ADDRESS] [--work DIR]
        [--json PATH] [--png PATH] [--resume] [--plot-only] [--half tune|report|both]

Built on :mod:`benchmarks.broad`, whose functions it imports: the MP reader, standardisation and entries, the
pymatgen pattern simulation and config (:func:`benchmarks.broad.prepare_case`), the run of ``gasolve run`` as a
subprocess with a wall limit (:func:`benchmarks.broad.run_case`), the ML and strict judges from best.cif, the
Dask client, the atomic JSON and the progress bar. What differs is stated here.

**Structures.** ../shared/data/mp-structures, held-out split (``crc32(material_id) % 5 == 0``, as broad.py),
ordered, not organic (not both C and H), at most ``MAX_PRIMITIVE`` atoms in the stored primitive cell and 12 to 40
independent sites: the asymmetric unit of spglib's standard conventional cell (symprec 0.01; not MP-20's rule).
The sample is stratified over the 7 crystal systems x 3 scattering classes (21 cells): ``n`` is shared out evenly
in cell order (systems in ITA order, classes as ``CLASSES``); each cell's candidates (index.csv's space group and
reduced formula) are shuffled with a generator seeded by (seed, system, class), taken in that order when the
standardised structure qualifies and stays in the cell's system; a cell that runs out passes its shortfall on to
the next cells that still have candidates. Halves alternate (tune, report, ...) over the sample in cell order, so
that every cell and the whole sample split evenly (±1). No Le Bail subset: every config gives the simulated
profile, so that the search is measured, not the profile fit.

**Scattering class.** ``ratio = max(Z²) / mean(Z²)`` over the atoms of the formula (Z from pymatgen's periodic
table; Z² as the forward scattering power): the heaviest element's share of ΣZ² divided by its share of the atoms,
1 when all atoms are alike, large for one heavy atom among many light ones. ``alike``: ratio < 2 (SiO2 1.81,
kyanite Al2SiO5 1.84); ``mixed``: 2 to 4 (Ca3(PO4)2 2.41, PbF2 2.93); ``heavy``: ≥ 4 (K4SnO4 5.36, BaSO4 5.16).

**Runs.** For every structure one preparation task writes reference.cif, pattern.xye and config.toml once
(broad.py's pattern seed (seed, crc32(id))) and scores the truth: ``gasolve score reference.cif pattern.xye
--json`` with the config's wavelength, FWHM, η and zero, its 2θ range, ``b_iso`` and the number of background terms
``gasolve run`` uses for that range. Then ``--seeds`` runs (``gasolve run --seed S``, S = first-run-seed ...), each a
Dask task in its own folder ``run-seedS``, budget ``--max-evaluations``, killed at ``--wall-limit`` seconds.
``--stop solved`` (the default with sites input) adds ``[reference] cif = "reference.cif"`` to the config and
``--stop-when-solved`` to the command: the reference only judges (gasolve's own check, every site within 0.3 Å
after refinement) and ends a run at its first solution, so that ``evaluations`` are the evaluations to solution
and ERT means what it does in benchmarks/convergence.py. ``--stop budget`` runs reference-free, as a user would:
to the budget (sites input) or to the race's own stop (composition input, the only choice there).

**Per run.** ``ml_match``, ``strict_match`` (broad.py's judges on best.cif), ``evaluations``, wall time. A run that
is not strictly right is a failure, and gets: ``atoms_right`` (the share of the cell's atoms within
``RIGHT_TOLERANCE`` Å of their partner) and ``sites_right`` (independent sites whose every atom is), from a
pairing of atoms: pymatgen's ``StructureMatcher(ltol=0.3, angle_tol=10, stol=PAIR_STOL, scale=False,
primitive_cell=False).get_s2_like_s1(reference, model)``: the superposition (lattice correspondence, origin
translation, same-element assignment by the Hungarian method on distances) of least RMS over all atoms, with a
``stol`` so large that every superposition is admitted; the distance of an atom is the periodic distance to its
assigned partner. ``failure``: ``search`` when the final Rwp is above the truth's (the truth scores better: the
search did not reach it), ``scoring`` when it is at or below it (a wrong model scores as well as the truth: Rwp
cannot tell them apart), ``error`` when there is no final Rwp (wall limit, crash) or no truth Rwp. The truth is
scored as it is, not refined, while the run's model is refined: a near-solution a little below the truth's Rwp
counts as a scoring failure.

**Summary.** Per half (tune, report, all) overall, per crystal system, per scattering class and per bin of
independent sites (``SITE_BINS``): runs, success rates (ML, strict), ``solved_80`` (structures solved strictly in
≥ 80 % of their seeds, the issue's target), ERT (expected running time: the evaluations of all runs, successful or
not, divided by the successes; a run without a count (killed) counts its budget; None without a success), spreads
of evaluations (successful runs) and wall seconds (all runs), failure classes, ``atoms_right`` of failures, and
``gasolve_judge_disagrees``: runs where gasolve's own reference check (``--stop solved``) and the strict judge of
best.cif differ (a pseudo-symmetric cell, a ≈ b ≈ c, lets pymatgen pair atoms across an axis permutation that
gasolve's check does not try; such a run is a success here but ran to its budget).
The JSON is rewritten atomically after every run; ``--resume`` skips the (structure, seed) runs already in it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that `python benchmarks/large.py` finds an uninstalled gasolve

from benchmarks import broad, provenance  # noqa: E402
from benchmarks.broad import SYMPREC, SYSTEMS, spread  # noqa: E402
from benchmarks.convergence import ga_setting  # noqa: E402
from benchmarks.z_window import DATA  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
MIN_SITES, MAX_SITES = 12, 40  # independent sites
MAX_PRIMITIVE = 200  # atoms in the stored primitive cell (index.csv n_sites)
CLASSES = ("heavy", "mixed", "alike")
CLASS_NAMES = {"heavy": "one heavy atom among light", "mixed": "mixed", "alike": "all alike"}
HEAVY_FROM = 4.0
ALIKE_BELOW = 2.0
SITE_BINS = ((12, 15), (16, 20), (21, 30), (31, 40))
RIGHT_TOLERANCE = 0.3  # Å
PAIR_STOL = 100.0  # in (V/N)^(1/3): admits every superposition
SOLVED_SHARE = 0.8
DEFAULT_BUDGET = 2e7
DEFAULT_WALL_LIMIT = 3600.0
STOPS = ("solved", "budget")


# ----------------------------------------------------------------------------------------------------------
# Scattering class


def scattering_ratio(composition) -> float:
    """``max(Z²) / mean(Z²)`` over the atoms of ``composition`` (a formula or pymatgen Composition).

    Returns
    -------
    float
        1 when every atom has the same Z; the heaviest element's share of ΣZ² over its share of the atoms.
    """
    from pymatgen.core import Composition

    composition = Composition(composition)
    z = np.array([element.Z for element in composition], float)
    amounts = np.array([composition[element] for element in composition], float)
    if amounts.sum() <= 0:
        raise ValueError(f"empty composition {composition}")
    return float((z**2).max() / (amounts @ z**2 / amounts.sum()))


def scattering_class(ratio: float) -> str:
    """``alike`` (ratio < ALIKE_BELOW), ``heavy`` (ratio ≥ HEAVY_FROM) or ``mixed``."""
    if ratio < ALIKE_BELOW:
        return "alike"
    return "heavy" if ratio >= HEAVY_FROM else "mixed"


def organic(composition) -> bool:
    """True when the formula holds both C and H."""
    from pymatgen.core import Composition

    symbols = {element.symbol for element in Composition(composition)}
    return {"C", "H"} <= symbols


# ----------------------------------------------------------------------------------------------------------
# Sample


CELLS = tuple((system, cls) for system in SYSTEMS for cls in CLASSES)


def cell_quotas(n: int) -> dict[tuple[str, str], int]:
    """``n`` shared out evenly over the 21 (system, class) cells, the first ``n % 21`` one more."""
    return {cell: n // len(CELLS) + (i < n % len(CELLS)) for i, cell in enumerate(CELLS)}


def pass_on(quotas: dict, taken: dict, exhausted: set) -> dict:
    """New quotas: the shortfall of every exhausted cell goes, one at a time in cell order, to cells that are not.

    Parameters
    ----------
    quotas, taken : dict
        Cell -> wanted count; cell -> count taken so far.
    exhausted : set
        Cells with no candidates left.
    """
    quotas = dict(quotas)
    spare = 0
    for cell in CELLS:
        if cell in exhausted and taken.get(cell, 0) < quotas[cell]:
            spare += quotas[cell] - taken.get(cell, 0)
            quotas[cell] = taken.get(cell, 0)
    open_cells = [cell for cell in CELLS if cell not in exhausted]
    i = 0
    while spare > 0 and open_cells:
        quotas[open_cells[i % len(open_cells)]] += 1
        spare -= 1
        i += 1
    return quotas


def independent_sites(structure) -> int:
    """Orbits of spglib's symmetry of ``structure`` (SYMPREC): the independent sites; 0 when spglib finds none."""
    import spglib

    if not structure.is_ordered:
        return 0
    cell = (structure.lattice.matrix, structure.frac_coords, [site.specie.Z for site in structure])
    try:
        dataset = spglib.get_symmetry_dataset(cell, symprec=SYMPREC)
    except Exception:  # spglib refuses the cell
        return 0
    return 0 if dataset is None else len(set(dataset.equivalent_atoms))


def large_entry(material_id: str, structure, system: str) -> dict | None:
    """broad.py's entry of ``structure`` with the scattering class, None unless it has 12-40 independent sites."""
    if not MIN_SITES <= independent_sites(structure) <= MAX_SITES:  # one spglib call before the full standardisation
        return None
    entry = broad._entry("mp", material_id, structure, system, max_primitive=None)
    if entry is None or not MIN_SITES <= entry["n_independent"] <= MAX_SITES:
        return None
    ratio = scattering_ratio(entry["formula"])
    return {**entry, "scattering_ratio": round(ratio, 4), "scattering_class": scattering_class(ratio)}


def candidates(data: Path = DATA):
    """Held-out index.csv rows with MIN_SITES..MAX_PRIMITIVE stored sites, not organic, with class and system."""
    index = broad.mp_candidates(data, sites=(MIN_SITES, MAX_PRIMITIVE))
    index = index[~index.reduced_formula.map(organic)]
    return index.assign(scattering_class=index.reduced_formula.map(lambda f: scattering_class(scattering_ratio(f))))


def sample_large(n: int, seed: int, data: Path = DATA) -> list[dict]:
    """Stratified sample of ``n`` structures (module docstring), in cell order, halves assigned."""
    from pymatgen.core import Structure

    table = candidates(data)
    orders = {}
    for system, cls in CELLS:
        chosen = table[(table.crystal_system == system) & (table.scattering_class == cls)]
        ids = sorted(chosen.material_id)
        rng = np.random.default_rng([seed, SYSTEMS.index(system), CLASSES.index(cls)])
        orders[(system, cls)] = [ids[i] for i in rng.permutation(len(ids))]
    quotas = cell_quotas(n)
    taken: dict[tuple[str, str], list[dict]] = {cell: [] for cell in CELLS}
    start = dict.fromkeys(CELLS, 0)
    while True:
        exhausted = {cell for cell in CELLS if start[cell] >= len(orders[cell])}
        quotas = pass_on(quotas, {c: len(v) for c, v in taken.items()}, exhausted)
        batches = {}
        for cell in CELLS:
            missing = quotas[cell] - len(taken[cell])
            if missing > 0 and cell not in exhausted:
                # Few candidates qualify (12-40 independent sites), so read many at once: one pass over the file.
                batches[cell] = orders[cell][start[cell] : start[cell] + 8 * missing + 10]
                start[cell] += len(batches[cell])
        if not batches:
            break
        cifs = broad._mp_cifs([i for batch in batches.values() for i in batch], data)
        for cell, batch in batches.items():
            for material_id in batch:
                if len(taken[cell]) >= quotas[cell]:
                    start[cell] = min(start[cell], orders[cell].index(material_id))  # unread ones stay candidates
                    break
                entry = large_entry(material_id, Structure.from_str(cifs[material_id], fmt="cif"), cell[0])
                if entry is not None and entry["scattering_class"] == cell[1]:
                    taken[cell].append(entry)
    entries = [entry for cell in CELLS for entry in taken[cell]]
    # One alternation over the whole sample in cell order: each cell splits evenly (±1) and so do the halves.
    return broad._assign_halves(entries, stratum=lambda entry: "all", lebail_every=None)


# ----------------------------------------------------------------------------------------------------------
# Truth and per-atom analysis


def score_command(folder: Path) -> list[str]:
    """``gasolve score reference.cif pattern.xye --json`` with the profile, range, B and background of config.toml."""
    from gasolve.config import default_background_terms

    config = tomllib.loads((folder / "config.toml").read_text())
    pattern, profile = config["pattern"], config["pattern"].get("profile")
    if profile is None:
        raise ValueError(f"{folder / 'config.toml'} has no [pattern.profile]: the truth's profile is unknown")
    lo, hi = pattern["range"]
    command = [sys.executable, "-m", "gasolve.cli.main", "score", "reference.cif", pattern["file"], "--json"]
    command += ["--wavelength", pattern["wavelength"], "--range", str(lo), str(hi)]
    command += ["--fwhm", str(profile["fwhm"]), "--eta", str(profile["eta"]), "--zero", str(profile["zero"])]
    command += ["--b-iso", str(config["structure"]["b_iso"])]
    command += ["--background-terms", str(default_background_terms(lo, hi)), "--plot", "truth_fit.png"]
    return command


def prepare_structure(
    entry: dict, mode: str, work: str, seed: int, stop: str = "budget", ga: dict | None = None
) -> dict:
    """Write the case of ``entry`` once (broad.prepare_case; ``stop`` "solved" adds ``[reference] cif =
    "reference.cif"``, ``ga`` a ``[ga]`` table) and score the truth; a dict with ``truth_rwp``, ``truth_chi2``,
    ``truth_rexp`` and ``truth_error`` (None, or why there is no truth score)."""
    from gasolve.io.atomic import atomic_write

    folder = Path(work) / broad._safe(entry["material_id"])
    config = broad.prepare_case(entry, mode, folder, seed)
    if stop == "solved":
        atomic_write(config, config.read_text() + '\n[reference]\ncif = "reference.cif"\n')
    if ga:
        text = config.read_text()
        if tomllib.loads(text).get("ga"):
            raise ValueError(f"{config} already has a [ga] table")
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in ga.items())
        atomic_write(config, text + "\n[ga]\n" + lines)
    found = {"truth_rwp": None, "truth_chi2": None, "truth_rexp": None, "truth_error": None}
    env = {**os.environ, **broad.WORKER_ENV, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run(
            score_command(folder), cwd=folder, env=env, capture_output=True, text=True, timeout=1800, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"gasolve score exited {done.returncode}: {broad._tail(done.stderr or done.stdout)}")
        scored = json.loads(done.stdout.strip().splitlines()[-1])
        found.update({f"truth_{k}": scored[k] for k in ("rwp", "chi2", "rexp")})
    except Exception as error:  # no truth score: the failures of this structure are not classified
        found["truth_error"] = repr(error)[:400]
    return found


def atoms_right(model, reference) -> dict | None:
    """Per-atom distances of ``model`` to ``reference`` (pymatgen Structures) after the least-RMS pairing.

    Returns
    -------
    dict or None
        ``atoms_right`` (share of the reference's atoms within RIGHT_TOLERANCE Å of their partner),
        ``sites_right`` (independent sites, spglib orbits of the reference at SYMPREC, whose every atom is),
        ``n_sites``, ``median_distance`` (Å). None when no pairing exists (other composition or atom count).
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    if model.composition != reference.composition:
        return None
    matcher = StructureMatcher(
        ltol=broad.MATCH["ltol"], stol=PAIR_STOL, angle_tol=broad.MATCH["angle_tol"], scale=False, primitive_cell=False
    )
    paired = matcher.get_s2_like_s1(reference, model)
    if paired is None or len(paired) != len(reference):
        return None
    # get_s2_like_s1 puts the model's atoms in the reference's order, in the reference's cell.
    distances = np.array([site.distance(other) for site, other in zip(reference, paired, strict=True)])
    orbits = SpacegroupAnalyzer(reference, symprec=SYMPREC).get_symmetrized_structure().equivalent_indices
    right = distances <= RIGHT_TOLERANCE
    return {
        "atoms_right": round(float(right.mean()), 4),
        "sites_right": int(sum(bool(right[orbit].all()) for orbit in orbits)),
        "n_sites": len(orbits),
        "median_distance": round(float(np.median(distances)), 4),
    }


def atoms_right_file(best_cif: Path, reference_cif: str) -> dict | None:
    """:func:`atoms_right` of a best.cif as pymatgen reads it; None when it cannot be read or paired."""
    import warnings

    from pymatgen.core import Structure

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Structure.from_file(best_cif)
        return atoms_right(model, Structure.from_str(reference_cif, fmt="cif"))
    except Exception:
        return None


def classify_failure(row: dict) -> str | None:
    """None for a strict success; ``error`` without a final or truth Rwp; ``search`` when the final Rwp is above the
    truth's; ``scoring`` when it is at or below it."""
    if row.get("strict_match"):
        return None
    rwp, truth = row.get("rwp"), row.get("truth_rwp")
    if row.get("error") is not None or rwp is None or truth is None:
        return "error"
    return "search" if rwp > truth else "scoring"


def run_one(
    entry: dict,
    truth: dict,
    mode: str,
    work: str,
    budget: int,
    wall_limit: float,
    seed: int,
    run_seed: int,
    stop: str = "budget",
) -> dict:
    """One ``gasolve run`` of a prepared structure, judged; a row (never raises for a failed run).

    ``stop`` "solved": ``--stop-when-solved`` (the config has the [reference]); the row adds summary.json's
    ``solved`` and ``evaluations_to_solution`` as ``gasolve_solved`` and ``evaluations_to_solution``.
    """
    name = f"run-seed{run_seed}"
    extra = ("--stop-when-solved",) if stop == "solved" else ()
    row = broad.run_case(
        entry, mode, work, budget, wall_limit, seed, run_seed, out_name=name, prepare=False, extra_args=extra
    )
    row.update({k: entry[k] for k in ("scattering_ratio", "scattering_class")}, run_seed=run_seed, **truth)
    if stop == "solved":
        try:
            found = json.loads((Path(work) / broad._safe(entry["material_id"]) / name / "summary.json").read_text())
        except (OSError, ValueError):
            found = {}
        row.update(gasolve_solved=found.get("solved"), evaluations_to_solution=found.get("evaluations_to_solution"))
    if not row.get("strict_match"):
        best = Path(work) / broad._safe(entry["material_id"]) / f"run-seed{run_seed}" / "best.cif"
        row.update(atoms_right_file(best, entry["reference_cif"]) or {"atoms_right": None, "sites_right": None})
    row["failure"] = classify_failure(row)
    return row


# ----------------------------------------------------------------------------------------------------------
# Summary


def counted_evaluations(row: dict) -> int:
    """The row's evaluations; its budget when the run left no count (killed at the wall limit, crashed)."""
    evaluations = row.get("evaluations")
    return int(evaluations) if evaluations is not None else int(row.get("budget") or 0)


def ert(rows: list[dict], key: str = "strict_match") -> float | None:
    """Expected running time: evaluations of all ``rows`` / successes by ``key``; None without a success."""
    successes = sum(bool(r.get(key)) for r in rows)
    return sum(counted_evaluations(r) for r in rows) / successes if successes else None


def site_bin(n_independent: int) -> str:
    for lo, hi in SITE_BINS:
        if lo <= n_independent <= hi:
            return f"{lo}-{hi}"
    return "other"


def _structure_key(row: dict) -> str:
    return f"{row['source']}|{row['material_id']}"


def summarise(rows: list[dict]) -> dict:
    """Success, ERT, effort and failures of the runs ``rows``."""
    per_structure: dict[str, list[bool]] = {}
    for row in rows:
        per_structure.setdefault(_structure_key(row), []).append(bool(row.get("strict_match")))
    failures = [r for r in rows if not r.get("strict_match")]
    return {
        "runs": len(rows),
        "structures": len(per_structure),
        "errors": sum(r.get("error") is not None for r in rows),
        "ml_success": broad._rate(rows, "ml_match"),
        "strict_success": broad._rate(rows, "strict_match"),
        "solved_80": sum(sum(s) >= SOLVED_SHARE * len(s) for s in per_structure.values()),
        "ert_ml": ert(rows, "ml_match"),
        "ert_strict": ert(rows, "strict_match"),
        "evaluations_of_successes": spread([r.get("evaluations") for r in rows if r.get("strict_match")]),
        "wall_seconds": spread([r.get("elapsed_seconds") for r in rows]),
        "failures": dict(Counter(r.get("failure") or "error" for r in failures)),
        "atoms_right_of_failures": spread([r.get("atoms_right") for r in failures]),
        "gasolve_judge_disagrees": sum(
            r.get("gasolve_solved") is not None and bool(r["gasolve_solved"]) != bool(r.get("strict_match"))
            for r in rows
        ),
    }


def summary(rows: list[dict]) -> dict:
    """:func:`summarise` per half, overall and per crystal system, scattering class and independent-site bin."""
    result = {}
    groups = {
        "crystal_system": (SYSTEMS, lambda r: r.get("crystal_system")),
        "scattering_class": (CLASSES, lambda r: r.get("scattering_class")),
        "independent_sites": ([f"{lo}-{hi}" for lo, hi in SITE_BINS], lambda r: site_bin(r.get("n_independent", 0))),
    }
    for half in ("tune", "report", "all"):
        chosen = [r for r in rows if half == "all" or r.get("half") == half]
        result[half] = {"overall": summarise(chosen)}
        for name, (labels, of) in groups.items():
            result[half][name] = {
                label: summarise([r for r in chosen if of(r) == label])
                for label in labels
                if any(of(r) == label for r in chosen)
            }
    return result


# ----------------------------------------------------------------------------------------------------------
# Driver


def _run_key(row: dict) -> str:
    return f"{_structure_key(row)}|{row['run_seed']}"


def run_benchmark(
    entries: list[dict],
    *,
    mode: str,
    work: Path,
    budget: int,
    wall_limit: float,
    seed: int,
    run_seeds: list[int],
    stop: str = "budget",
    json_path: Path | None = None,
    settings: dict | None = None,
    resume: bool = False,
    client=None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> dict:
    """Prepare every structure, run every (structure, seed) on Dask, judge, and save after every run.

    Returns
    -------
    dict
        ``benchmark``, ``settings``, ``simulation``, ``judging``, ``sessions``, ``structures`` (one per entry: id,
        formula, class, sites, half, truth scores), ``rows`` (one per run, sample then seed order), ``summary``.
    """
    from distributed import as_completed

    rows: dict[str, dict] = {}
    if stop not in STOPS or (stop == "solved" and mode != "sites"):
        raise ValueError(f"stop is one of {STOPS} ('solved' with sites input only), got {stop!r} with {mode!r}")
    settings = {**(settings or {}), "mode": mode, "budget": int(budget), "wall_limit": wall_limit, "stop": stop}
    ga = settings.get("ga") or {}
    sessions = []
    if resume and json_path is not None and json_path.is_file():
        previous = json.loads(json_path.read_text())
        for key in ("mode", "budget", "seed", "stop", "ga"):
            if previous.get("settings", {}).get(key) != settings.get(key):
                raise ValueError(
                    f"--resume: {json_path} was run with {key} {previous.get('settings', {}).get(key)!r}, "
                    f"not {settings.get(key)!r}; give another --json"
                )
        sessions = previous.get("sessions", [])
        rows = {_run_key(row): row for row in previous.get("rows", [])}
    sessions.append(
        {
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "runs_before": len(rows),
            "versions": provenance.versions("pymatgen", "spglib", "dask", "distributed"),
            "machine": {"platform": platform.platform(), "cpu": provenance.cpu_model(), "cores": os.cpu_count()},
        }
    )
    truths: dict[str, dict] = {}
    keep = ("material_id", "formula", "space_group", "crystal_system", "n_independent", "n_atoms", "half")
    result = {
        "benchmark": "large",
        "settings": settings,
        "simulation": {
            "wavelength": "pymatgen WAVELENGTHS CuKa1",
            "b_iso": broad.B_ISO,
            "two_theta_range": broad.TWO_THETA_RANGE,
            "step": broad.STEP,
            "fwhm_range": broad.FWHM_RANGE,
            "eta": broad.ETA,
            "peak_counts": broad.PEAK_COUNTS,
            "background_share": broad.BACKGROUND_SHARE,
        },
        "judging": {
            "ml": broad.MATCH,
            "strict": {**broad.MATCH, "scale": False, "max_distance_angstrom": broad.STRICT_TOLERANCE},
            "pairing": f"StructureMatcher(ltol={broad.MATCH['ltol']}, angle_tol={broad.MATCH['angle_tol']}, "
            f"stol={PAIR_STOL}, scale=False, primitive_cell=False).get_s2_like_s1(reference, model)",
            "atoms_right_tolerance_angstrom": RIGHT_TOLERANCE,
            "scattering_classes": {"ratio": "max(Z^2)/mean(Z^2)", "alike_below": ALIKE_BELOW, "heavy_from": HEAVY_FROM},
            "failure": "search: final Rwp > truth's Rwp; scoring: final Rwp <= truth's; error: no Rwp",
        },
        "sessions": sessions,
    }
    order = {f"{e['source']}|{e['material_id']}": i for i, e in enumerate(entries)}

    def save() -> None:
        done = sorted(rows.values(), key=lambda r: (order.get(_structure_key(r), len(order)), r["run_seed"]))
        structures = []
        for entry in entries:
            key = f"{entry['source']}|{entry['material_id']}"
            truth = truths.get(key) or next(
                ({k: r.get(k) for k in TRUTH_KEYS} for r in done if _structure_key(r) == key), {}
            )
            structures.append(
                {
                    **{k: entry[k] for k in keep},
                    "scattering_ratio": entry["scattering_ratio"],
                    "scattering_class": entry["scattering_class"],
                    "sites": entry["sites"],
                    **truth,
                }
            )
        result.update({"structures": structures, "rows": done, "summary": summary(done)})
        if json_path is not None:
            broad.write_json(result, json_path)

    todo = [(e, s) for e in entries for s in run_seeds if f"{e['source']}|{e['material_id']}|{s}" not in rows]
    if not todo:
        save()
        return result
    own = client is None
    client = client or broad.make_client(workers, scheduler)
    bar = (
        broad._progress_bar(len(entries) * len(run_seeds), len(entries) * len(run_seeds) - len(todo))
        if progress
        else None
    )
    try:
        from benchmarks import large  # by reference, so the workers import the module rather than unpickle __main__

        prepared = {}
        for entry in {e["material_id"]: e for e, _ in todo}.values():
            prepared[entry["material_id"]] = client.submit(
                large.prepare_structure, entry, mode, str(work), seed, stop, ga,
                key=f"large-prepare-{entry['material_id']}-{os.getpid()}", pure=False,
            )  # fmt: skip
        futures = {
            client.submit(
                large.run_one, e, prepared[e["material_id"]], mode, str(work), budget, wall_limit, seed, s, stop,
                key=f"large-{e['material_id']}-{s}-{os.getpid()}", pure=False,
            ): (e, s)
            for e, s in todo
        }  # fmt: skip
        for future in as_completed(futures):
            entry, run_seed = futures[future]
            try:
                row = future.result()
            except Exception as error:  # a failed task is a row, the others go on
                row = {k: entry[k] for k in (*broad.ROW_KEYS, "scattering_ratio", "scattering_class") if k in entry}
                row.update(
                    {"mode": mode, "run_seed": run_seed, "budget": int(budget), "error": f"task failed: {error!r}"}
                )
                row.update({"ml_match": False, "strict_match": False, "failure": "error"})
            truths[_structure_key(row)] = {k: row.get(k) for k in TRUTH_KEYS}
            rows[_run_key(row)] = row
            save()
            if bar is not None:
                bar[0].update(bar[1], advance=1, info=_progress_info(list(rows.values()), row))
    finally:
        if bar is not None:
            bar[0].stop()
        if own:
            cluster = client.cluster
            client.close()
            if cluster is not None:
                cluster.close()
    save()
    return result


TRUTH_KEYS = ("truth_rwp", "truth_chi2", "truth_rexp", "truth_error")


def _progress_info(rows: list[dict], last: dict) -> str:
    strict = sum(bool(r.get("strict_match")) for r in rows)
    verdict = "error" if last.get("error") else ("right" if last.get("strict_match") else last.get("failure"))
    return f"strict {strict}/{len(rows)}; last {last['material_id']} seed {last['run_seed']}: {verdict}"


# ----------------------------------------------------------------------------------------------------------
# Plot


def plot(result: dict, path: Path) -> None:
    """Strict success rate of the runs per crystal system, scattering class and site bin, tune and report halves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gasolve.io.atomic import atomic_writer

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [7, 3, 4]})
    panels = (
        ("crystal_system", SYSTEMS),
        ("scattering_class", CLASSES),
        ("independent_sites", [f"{lo}-{hi}" for lo, hi in SITE_BINS]),
    )
    for axis, (group, labels) in zip(axes, panels, strict=True):
        x = np.arange(len(labels))
        for offset, half, colour in ((-0.2, "report", "tab:blue"), (0.2, "tune", "tab:orange")):
            found = result["summary"][half][group]
            rates = [(found.get(label) or {}).get("strict_success") or 0.0 for label in labels]
            axis.bar(x + offset, rates, 0.4, color=colour, label=half)
            for xi, label in zip(x, labels, strict=True):
                if label in found:
                    axis.text(xi + offset, 0.02, str(found[label]["runs"]), ha="center", fontsize=7)
        axis.set_xticks(x, [CLASS_NAMES.get(label, label) for label in labels], rotation=30, ha="right")
        axis.set_ylim(0, 1.05)
        axis.set_title(group.replace("_", " "))
    axes[0].set_ylabel("share of runs solved (strict, 0.3 Å)")
    axes[0].legend(fontsize=8)
    settings = result["settings"]
    fig.suptitle(f"large benchmark: {settings.get('mode')} input, budget {settings.get('budget'):.2g}; runs per bar")
    fig.tight_layout()
    with atomic_writer(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=63, help="structures (default 63: 3 per system x class)")
    parser.add_argument("--seed", type=int, default=0, help="sampling and pattern seed (default 0)")
    parser.add_argument("--seeds", type=int, default=5, help="gasolve run seeds per structure (default 5)")
    parser.add_argument("--first-run-seed", type=int, default=1, help="first gasolve run --seed (default 1)")
    parser.add_argument(
        "--stop",
        choices=STOPS,
        default=None,
        help="solved: [reference] + --stop-when-solved (sites input, the default there); budget: reference-free, "
        "to the budget or gasolve's own stop (composition input's only choice)",
    )
    parser.add_argument("--input", choices=("sites", "composition"), default="sites")
    parser.add_argument("--max-evaluations", type=float, default=DEFAULT_BUDGET, help="per run (default 2e7)")
    parser.add_argument("--wall-limit", type=float, default=DEFAULT_WALL_LIMIT, help="seconds per run (3600)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "large", help="run folders")
    parser.add_argument("--json", type=Path, default=None, help="default benchmarks/results/large-INPUT.json")
    parser.add_argument("--png", type=Path, default=None, help="default: the JSON's path with .png")
    parser.add_argument("--resume", action="store_true", help="skip the runs already in the JSON")
    parser.add_argument("--plot-only", action="store_true", help="draw the PNG from the JSON and stop")
    parser.add_argument("--half", choices=("tune", "report", "both"), default="both")
    parser.add_argument(
        "--ga",
        type=ga_setting,
        action="append",
        default=[],
        help="[ga] setting written into every case's config, e.g. --ga bond_valence_weight=0.01 (repeatable; give "
        "each set of settings its own --work)",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="run only these structures of the sample (material ids, comma-separated; the sample, its patterns and "
        "halves are unchanged)",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.seeds < 1:
        parser.error("--n and --seeds must be at least 1")
    if not args.max_evaluations > 0 or not args.wall_limit > 0:
        parser.error("--max-evaluations and --wall-limit must be positive")
    if args.only is not None:
        args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    args.stop = args.stop or ("solved" if args.input == "sites" else "budget")
    if args.stop == "solved" and args.input != "sites":
        parser.error("--stop solved needs --input sites (a composition race stops by its own reference-free rule)")
    args.json = args.json or RESULTS / f"large-{args.input}.json"
    args.png = args.png or args.json.with_suffix(".png")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot_only:
        plot(json.loads(args.json.read_text()), args.png)
        return 0
    t0 = time.perf_counter()
    entries = sample_large(args.n, args.seed)
    if args.half != "both":
        entries = [entry for entry in entries if entry["half"] == args.half]
    if args.only is not None:
        unknown = sorted(set(args.only) - {entry["material_id"] for entry in entries})
        if unknown:
            print(f"--only: {', '.join(unknown)} not in the sample's {args.half} half", file=sys.stderr)
            return 2
        entries = [entry for entry in entries if entry["material_id"] in args.only]
    print(f"{len(entries)} structures sampled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    run_seeds = list(range(args.first_run_seed, args.first_run_seed + args.seeds))
    settings = {"n": args.n, "seed": args.seed, "run_seeds": run_seeds, "half": args.half, "only": args.only}
    if args.ga:
        settings["ga"] = dict(args.ga)
    result = run_benchmark(
        entries, mode=args.input, work=args.work, budget=int(args.max_evaluations), wall_limit=args.wall_limit,
        seed=args.seed, run_seeds=run_seeds, stop=args.stop, json_path=args.json, settings=settings, resume=args.resume,
        workers=args.workers, scheduler=args.scheduler, progress=True,
    )  # fmt: skip
    plot(result, args.png)
    overall = result["summary"]["all"]["overall"]
    print(
        f"{overall['runs']} runs of {overall['structures']} structures: strict {overall['strict_success']}, "
        f"ML {overall['ml_success']}, ERT {overall['ert_strict']}, failures {overall['failures']}; {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
