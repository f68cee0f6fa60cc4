"""Indexing and space-group benchmark (issue 13, Benchmarks): is the reference lattice ranked first?

Usage::

    python -m benchmarks.indexing [--n 350] [--seed 0] [--half report|tune|all] [--measured/--no-measured]
        [--prior network|uniform] [--triclinic-boxes N | --triclinic-budget S] [--retry-unindexed 3]
        [--no-space-group]
        [--workers N] [--scheduler ADDRESS]
        [--work DIR] [--json PATH] [--png PATH] [--resume] [--plot-only] [--limit K]

**Structures.** :func:`benchmarks.broad.sample_mp`: the held-out split of ../shared/data/mp-structures, ordered
structures with at most 20 atoms in the primitive cell, ``n`` shared evenly over the seven crystal systems (spglib,
symprec 0.01, on the standard conventional cell), each system's candidates shuffled with a generator seeded by
(seed, system). Within each crystal system the sample alternates between the ``tune`` half and the ``report``
half: settings are tuned on the first, figures quoted from the second (``--half``). Plus the three shared measured
patterns with known structures (``--measured``): PbSO4 (IUCr round robin, GSAS raw), LaB6 (NIST SRM 660c, GSAS
STD) and corundum (NIST SRM 676a, two columns), all Cu Kα1+Kα2; their reference cells come from their CIFs.

**Simulated pattern** (pymatgen and NumPy, not gasolve; drawn per structure from a generator seeded by
(seed, crc32(material id))): pymatgen ``XRDCalculator`` sticks (Cu Kα1 of pymatgen's table; B = 1 Å² for every
element), 2θ 5-80° in steps of 0.02°; pseudo-Voigt peaks whose FWHM grows with angle as
``w0 · sqrt(1 + k tan²θ)`` with ``w0`` drawn in 0.04-0.16° and ``k`` in 0-3, η drawn in 0.2-0.8; Cu Kα2 (pymatgen's
wavelength, half the intensity) for half of the patterns; a zero shift drawn in ±0.1°; 0-3 impurity lines
(random 2θ in the range, 1-6 % of the strongest peak, the same profile); a Chebyshev background of about 3 % of
the strongest peak; Poisson counts with the strongest peak drawn in 5·10³-5·10⁴ counts. The .xye file states its
wavelength (``# wavelength CuKa1`` or ``CuKa12``), which gasolve reads (issue 13 item 5).

**Indexing** as ``gasolve index`` does it (:func:`gasolve.indexing.pattern.index_pattern` with its default
settings: 20 lines with Kβ satellites left out, one impurity line allowed and a second pass allowing
``--retry-unindexed`` (3), volume limit 1500 Å³, the triclinic search under a budget of ``--triclinic-boxes``
boxes tested, or ``--triclinic-budget`` seconds of an idle 2-core machine converted to boxes: a count, so that a
pattern's result does not depend on the load of the machine it ran on).
``--no-space-group`` skips the space-group ranking (for tuning the indexing; ``sg_*`` then stay None).
**Lattice success**: a candidate is the reference lattice when its primitive
lattice maps onto the reference's within 1 % in lengths and 1° in angles (pymatgen ``Lattice.find_mapping``, any
setting, volumes within 3 %), :func:`same_lattice`; ``lattice_rank`` is the rank of the first such candidate
(1 = first), ``bravais_first`` whether the first candidate also has the reference's Bravais symbol.

**Space group** (the extinction route of ``gasolve classify``): when the first cell is sound (M20 >= 10 from at
least 12 lines, :func:`gasolve.indexing.extinctions.index_and_rank`'s rule), the pattern is fitted in the lattice's
holohedral group and every extinction class scored (:func:`~gasolve.indexing.extinctions.determine_space_group`).
Space groups are ranked by number (settings of one number summed, as ``gasolve classify`` prints them) three ways:
``extinctions`` (uniform prior), ``combined`` (the symmetry network's probabilities as the prior, ``--prior
network``) and ``network`` (the network alone, the fallback route); ``classify`` is what ``gasolve classify``
answers: the combined ranking when the pattern indexes soundly, else the network's. ``sg_rank_*`` is the true
number's rank (None when not ranked). A pattern that does not index soundly has no extinction ranking (counted as a
miss of ``extinctions`` and ``combined``).

**Runs.** One Dask task per pattern (:func:`gasolve.parallel.make_runner`), a failing task is a row with
``error``. The JSON is rewritten atomically after every pattern; ``--resume`` skips the patterns already in it.
Wall times are per pattern, as measured on the machine at the time (a loaded machine gives upper bounds).
``--png`` draws success per crystal system (:func:`plot`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import broad, provenance  # noqa: E402
from gasolve.indexing.budget import TRICLINIC_BOXES, boxes_for_seconds  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
SYSTEMS = broad.SYSTEMS
TWO_THETA_RANGE = (5.0, 80.0)
STEP = 0.02
FWHM0_RANGE = (0.04, 0.16)
FWHM_GROWTH_RANGE = (0.0, 3.0)
ETA_RANGE = (0.2, 0.8)
DOUBLET_SHARE = 0.5
ZERO_RANGE = 0.1
MAX_IMPURITIES = 3
IMPURITY_RANGE = (0.01, 0.06)
PEAK_COUNTS_RANGE = (5e3, 5e4)
BACKGROUND_SHARE = 0.03
KALPHA2_RATIO = 0.5
LENGTH_TOLERANCE = 0.01
ANGLE_TOLERANCE = 1.0
MIN_M20 = 10.0
MIN_LINES = 12
#: The shared measured patterns with known structures: (name, pattern, wavelength, reference CIF), under SHARED.
MEASURED = (
    ("PbSO4", "measured/PbSO4-lab-CuKa/PBSO4.XRA", "CuKa12", "measured/PbSO4-lab-CuKa/PbSO4-Wyckoff.cif"),
    (
        "LaB6",
        "measured/LaB6-SRM660-lab-CuKa/NIST660CBI.gsas",
        "CuKa12",
        "measured/LaB6-SRM660-lab-CuKa/LaB6_literature.cif",
    ),
    (
        "corundum",
        "measured/corundum-SRM676a-lab-CuKa/row_Cu_676a.xy",
        "CuKa12",
        "measured/corundum-SRM676a-lab-CuKa/corundum_COD1000017_copied_from_XRed.cif",
    ),
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Entries


def sample_simulated(n: int, seed: int) -> list[dict]:
    """The stratified MP sample (:func:`benchmarks.broad.sample_mp`), tune/report halves per crystal system."""
    entries = broad.sample_mp(n, seed)
    return broad._assign_halves(entries, stratum=lambda e: e["crystal_system"], lebail_every=None)


def measured_entries(shared: Path = SHARED) -> list[dict]:
    """The measured patterns whose files are in ``shared`` (reference from the CIF beside each)."""
    import warnings

    from pymatgen.core import Structure

    entries = []
    for name, pattern, wavelength, cif in MEASURED:
        if not (shared / pattern).is_file() or not (shared / cif).is_file():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entry = broad._entry("measured", f"measured:{name}", Structure.from_file(shared / cif), None, None)
        entry.update({"pattern_file": str(shared / pattern), "wavelength": wavelength, "half": "measured"})
        entries.append(entry)
    return entries


# ----------------------------------------------------------------------------------------------------------
# Simulated pattern (pymatgen + NumPy, independent of gasolve)


def pattern_rng(entry: dict, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(entry["material_id"].encode())])


def draw_conditions(rng: np.random.Generator) -> dict:
    """The instrument and sample conditions of one simulated pattern (module docstring)."""
    lo, hi = TWO_THETA_RANGE
    n_impurities = int(rng.integers(0, MAX_IMPURITIES + 1))
    return {
        "fwhm0": float(rng.uniform(*FWHM0_RANGE)),
        "fwhm_growth": float(rng.uniform(*FWHM_GROWTH_RANGE)),
        "eta": float(rng.uniform(*ETA_RANGE)),
        "doublet": bool(rng.random() < DOUBLET_SHARE),
        "zero": float(rng.uniform(-ZERO_RANGE, ZERO_RANGE)),
        "impurities": [
            [float(rng.uniform(lo + 1.0, hi - 1.0)), float(rng.uniform(*IMPURITY_RANGE))] for _ in range(n_impurities)
        ],
        "peak_counts": float(rng.uniform(*PEAK_COUNTS_RANGE)),
    }


def fwhm_at(two_theta: np.ndarray, fwhm0: float, growth: float) -> np.ndarray:
    """FWHM (degrees) at 2θ (degrees): ``fwhm0 · sqrt(1 + growth · tan²θ)``."""
    return fwhm0 * np.sqrt(1.0 + growth * np.tan(np.radians(np.asarray(two_theta) / 2.0)) ** 2)


def simulate(structure, conditions: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """2θ (degrees) and Poisson counts of ``structure`` under ``conditions`` (:func:`draw_conditions`; an optional
    ``kbeta`` key adds pymatgen's Cu Kβ1 line at that share of Kα1, none in the benchmark's own patterns)."""
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    lo, hi = TWO_THETA_RANGE
    two_theta = np.round(np.arange(lo, hi + STEP / 2, STEP), 6)
    lines = [(WAVELENGTHS["CuKa1"], 1.0)] + ([(WAVELENGTHS["CuKa2"], KALPHA2_RATIO)] if conditions["doublet"] else [])
    y = np.zeros_like(two_theta)

    def add(position: float, intensity: float) -> None:
        width = float(fwhm_at(position, conditions["fwhm0"], conditions["fwhm_growth"]))
        near = np.abs(two_theta - position) < 30 * width
        y[near] += intensity * broad.pseudo_voigt(two_theta[near] - position, width, conditions["eta"])

    if conditions.get("kbeta", 0.0) > 0:  # Cu Kβ at this share of Kα1 (benchmarks/kbeta.py; absent: none)
        lines.append((WAVELENGTHS["CuKb1"], float(conditions["kbeta"])))
    for wavelength, weight in lines:
        positions, intensities = broad.sticks(structure, wavelength, (max(lo - 2.0, 0.5), min(hi + 2.0, 179.0)))
        for position, intensity in zip(positions + conditions["zero"], intensities, strict=True):
            add(float(position), weight * float(intensity))
    # Impurity lines: a peak height relative to the strongest point, same profile (one line, no Kα2).
    strongest = float(y.max())
    for position, share in conditions["impurities"]:
        width = float(fwhm_at(position, conditions["fwhm0"], conditions["fwhm_growth"]))
        height = broad.pseudo_voigt(np.zeros(1), width, conditions["eta"])[0]
        add(position, share * strongest / height)
    y *= conditions["peak_counts"] / y.max()
    x = 2 * (two_theta - lo) / (hi - lo) - 1
    coefficients = np.array([1.0, -0.5 * rng.uniform(0.2, 0.8), 0.2 * rng.uniform(-1, 1), 0.1 * rng.uniform(-1, 1)])
    background = np.clip(np.polynomial.chebyshev.chebval(x, coefficients), 0.2, None)
    y = y + BACKGROUND_SHARE * conditions["peak_counts"] * background
    return two_theta, rng.poisson(y).astype(float)


def write_pattern(entry: dict, folder: Path, seed: int) -> tuple[Path, dict]:
    """Simulate ``entry``'s pattern, write it as .xye stating its wavelength; (path, conditions)."""
    from pymatgen.core import Structure

    rng = pattern_rng(entry, seed)
    conditions = draw_conditions(rng)
    structure = Structure.from_str(entry["reference_cif"], fmt="cif")
    two_theta, y = simulate(structure, conditions, rng)
    wavelength = "CuKa12" if conditions["doublet"] else "CuKa1"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{broad._safe(entry['material_id'])}.xye"
    header = [f"# {entry['material_id']} {entry['formula']} ({entry['symbol']}): benchmarks/indexing.py, pymatgen"]
    header.append(f"# wavelength {wavelength}")
    body = [f"{t:.4f} {v:.1f} {math.sqrt(max(v, 1.0)):.3f}" for t, v in zip(two_theta, y, strict=True)]
    from gasolve.io.atomic import atomic_write

    atomic_write(path, "\n".join(header + body) + "\n")
    return path, {**conditions, "wavelength": wavelength}


# ----------------------------------------------------------------------------------------------------------
# Judging


def same_lattice(
    cell,
    bravais: str,
    reference_cell,
    reference_centring: str,
    ltol: float = LENGTH_TOLERANCE,
    atol: float = ANGLE_TOLERANCE,
) -> bool:
    """Whether two cells describe the same point lattice within ``ltol`` (relative lengths) and ``atol`` (degrees).

    Parameters
    ----------
    cell, reference_cell : sequence of 6 float
        Conventional cells (a, b, c in Å, α, β, γ in degrees), any setting.
    bravais : str
        Bravais symbol of ``cell`` (its last letter is the centring).
    reference_centring : str
        Centring letter (P, A, B, C, I, F, R) or Bravais symbol of the reference.
    """
    try:
        found = broad.primitive_lattice(cell, bravais)
        reference = broad.primitive_lattice(reference_cell, reference_centring)
    except Exception:  # a degenerate cell: no match
        return False
    if abs(found.volume / reference.volume - 1) > 3 * ltol:
        return False
    return reference.find_mapping(found, ltol=ltol, atol=atol) is not None


def rank_by_number(groups) -> list[int]:
    """Space-group numbers by summed posterior (settings of one number summed), best first."""
    totals: dict[int, float] = {}
    for ranked in groups:
        totals[ranked.group.number] = totals.get(ranked.group.number, 0.0) + ranked.posterior
    return sorted(totals, key=lambda n: -totals[n])


def _rank(order: list[int] | None, truth: int) -> int | None:
    if not order or truth not in order:
        return None
    return order.index(truth) + 1


_CLASSIFIER = None


def network_probabilities(pattern, wavelength: float) -> np.ndarray:
    """The shipped symmetry network's space-group probabilities (230,) of a pattern (one network per process)."""
    global _CLASSIFIER
    from symnet.classify import Classifier, pattern_input

    if _CLASSIFIER is None:
        _CLASSIFIER = Classifier()
    inputs = pattern_input(pattern.two_theta, pattern.y_obs, wavelength, _CLASSIFIER.grid, pattern.source)
    return np.asarray(_CLASSIFIER.classify_inputs(inputs[None])[0].space_group_probabilities, float)


def run_case(
    entry: dict,
    work: str,
    seed: int,
    prior: str,
    triclinic_boxes: int,
    retry_unindexed: int = 3,
    space_group: bool = True,
) -> dict:
    """Simulate (or read) one pattern, index it, rank its space groups, judge both; one result row."""
    from gasolve.diffraction.wavelength import choose_radiation
    from gasolve.errors import InputError
    from gasolve.indexing.extinctions import ExtinctionSettings, determine_space_group, rank_space_groups
    from gasolve.indexing.pattern import IndexingSettings, index_pattern
    from gasolve.io.patterns import read_pattern

    row = {key: entry[key] for key in ("material_id", "formula", "space_group", "symbol", "crystal_system", "cell")}
    row.update({"half": entry["half"], "n_primitive": entry.get("n_primitive")})
    reference_bravais = broad.reference_bravais(entry["space_group"])
    row["reference_bravais"] = reference_bravais
    started = time.perf_counter()
    if "pattern_file" in entry:
        path, wavelength = Path(entry["pattern_file"]), entry["wavelength"]
        row["conditions"] = {"measured": True, "wavelength": wavelength}
    else:
        path, conditions = write_pattern(entry, Path(work) / "patterns", seed)
        wavelength = None  # the file states it
        row["conditions"] = conditions
    row["pattern"] = str(path)
    pattern = read_pattern(path)
    radiation, _ = choose_radiation(pattern.radiation, wavelength, str(path))
    settings = IndexingSettings(triclinic_boxes=triclinic_boxes, retry_unindexed=retry_unindexed)
    try:
        result = index_pattern(pattern, radiation, settings)
    except InputError as error:
        row.update({"error": f"not indexed: {error.message}", "lattice_rank": None, "lattice_first": False})
        row["lattice_top3"], row["index_seconds"] = False, time.perf_counter() - started
        return row
    row["index_seconds"] = round(time.perf_counter() - started, 2)
    centring = broad._centring(entry["space_group"])
    candidates = []
    lattice_rank = None
    for i, candidate in enumerate(result.candidates[:10], start=1):
        record = candidate.as_dict()
        record["same_lattice"] = same_lattice(record["cell"], record["bravais"], entry["cell"], centring)
        if record["same_lattice"] and lattice_rank is None:
            lattice_rank = i
        candidates.append(record)
    if lattice_rank is None:  # beyond the first ten
        for i, candidate in enumerate(result.candidates[10:], start=11):
            record = candidate.as_dict()
            if same_lattice(record["cell"], record["bravais"], entry["cell"], centring):
                lattice_rank = i
                break
    first = result.candidates[0] if result.candidates else None
    row.update({
        "n_candidates": len(result.candidates),
        "candidates": candidates[:5],
        "notes": list(result.notes),
        "kbeta_lines": [line.as_dict() for line in result.kbeta],
        "second_pass": any(note.startswith("second pass allowing") for note in result.notes),
        "lattice_rank": lattice_rank,
        "lattice_first": lattice_rank == 1,
        "lattice_top3": lattice_rank is not None and lattice_rank <= 3,
        "bravais_first": first is not None and lattice_rank == 1 and first.solution.bravais == reference_bravais,
        "first_m20": None if first is None else round(float(first.solution.m20), 3),
        "first_bravais": None if first is None else first.solution.bravais,
        "n_lines_found": len(result.two_theta),
    })  # fmt: skip
    sound = first is not None and first.solution.m20 >= MIN_M20 and first.solution.n_lines >= MIN_LINES
    row["sound"] = sound
    truth = entry["space_group"]
    network = None
    if prior == "network":
        network = network_probabilities(pattern, radiation.primary)
        row["sg_rank_network"] = _rank(list(np.argsort(-network) + 1), truth)
    row.update({"sg_rank_extinctions": None, "sg_rank_combined": None})
    if sound and space_group:
        cell = first.pawley_cell or first.solution.cell
        sg_started = time.perf_counter()
        try:
            analysis = determine_space_group(pattern, radiation, cell, first.solution.bravais)
        except InputError as error:
            row["sg_error"] = error.message
        else:
            floor = ExtinctionSettings().prior_floor
            row["sg_rank_extinctions"] = _rank(rank_by_number(analysis.space_groups), truth)
            if network is not None:
                combined = rank_space_groups(list(analysis.classes), lambda number: float(network[number - 1]), floor)
                order = rank_by_number(combined)
                row["sg_rank_combined"] = _rank(order, truth)
                row["sg_top5_combined"] = order[:5]
            row["sg_top5_extinctions"] = rank_by_number(analysis.space_groups)[:5]
            # The evidence itself, for choosing how to combine it with a prior offline (tune half): each class's
            # log-likelihood and the numbers of its groups (one per setting), and the network's probabilities.
            row["sg_classes"] = [
                [
                    c.extinction_class.name,
                    round(float(c.log_likelihood), 4),
                    [g.number for g in c.extinction_class.groups],
                ]
                for c in analysis.classes
            ]
        row["sg_seconds"] = round(time.perf_counter() - sg_started, 2)
    if network is not None:
        row["network_probabilities"] = {int(n) + 1: round(float(network[n]), 6) for n in np.argsort(-network)[:40]}
        # What ``gasolve classify`` prints: the combined ranking when the pattern indexes soundly, else the
        # network's alone (its fallback route).
        ranked = "sg_top5_combined" in row  # the extinction route ran (a failed holohedral fit also falls back)
        row["sg_rank_classify"] = row["sg_rank_combined"] if ranked else row["sg_rank_network"]
    row["wall_seconds"] = round(time.perf_counter() - started, 2)
    return row


# ----------------------------------------------------------------------------------------------------------
# Summary


def _share(rows: list[dict], test) -> float | None:
    return round(sum(1 for r in rows if test(r)) / len(rows), 4) if rows else None


def _within(key: str, k: int):
    return lambda r: r.get(key) is not None and r[key] <= k


def summarise(rows: list[dict]) -> dict:
    """Success rates and times of a set of rows."""
    times = [r["wall_seconds"] for r in rows if r.get("wall_seconds") is not None]
    network = any("sg_rank_network" in r for r in rows)  # absent with --prior uniform: not measured, not a miss
    return {
        "n": len(rows),
        "lattice_first": _share(rows, lambda r: r.get("lattice_first")),
        "lattice_top3": _share(rows, lambda r: r.get("lattice_top3")),
        "bravais_first": _share(rows, lambda r: r.get("bravais_first")),
        "sound": _share(rows, lambda r: r.get("sound")),
        "sg_top1_extinctions": _share(rows, _within("sg_rank_extinctions", 1)),
        "sg_top5_extinctions": _share(rows, _within("sg_rank_extinctions", 5)),
        "sg_top1_combined": _share(rows, _within("sg_rank_combined", 1)) if network else None,
        "sg_top5_combined": _share(rows, _within("sg_rank_combined", 5)) if network else None,
        "sg_top1_classify": _share(rows, _within("sg_rank_classify", 1)) if network else None,
        "sg_top5_classify": _share(rows, _within("sg_rank_classify", 5)) if network else None,
        "sg_top1_network": _share(rows, _within("sg_rank_network", 1)) if network else None,
        "sg_top5_network": _share(rows, _within("sg_rank_network", 5)) if network else None,
        "errors": sum(1 for r in rows if r.get("error")),
        "median_seconds": round(float(np.median(times)), 2) if times else None,
        "max_seconds": round(float(np.max(times)), 2) if times else None,
    }


def summary(rows: list[dict]) -> dict:
    """Per half (tune, report, measured, all) and per crystal system of each half."""
    out = {}
    for half in ("tune", "report", "measured", "all"):
        chosen = [r for r in rows if half == "all" or r.get("half") == half]
        if not chosen:
            continue
        out[half] = summarise(chosen)
        out[half]["by_system"] = {
            system: summarise([r for r in chosen if r["crystal_system"] == system])
            for system in SYSTEMS
            if any(r["crystal_system"] == system for r in chosen)
        }
    return out


def _key(row: dict) -> str:
    return row["material_id"]


def run_benchmark(
    entries: list[dict],
    *,
    work: Path,
    seed: int,
    prior: str = "network",
    triclinic_boxes: int = TRICLINIC_BOXES,
    retry_unindexed: int = 3,
    space_group: bool = True,
    json_path: Path | None = None,
    resume: bool = False,
    scheduler: str | None = "local",
    workers: int | None = None,
    progress: bool = False,
) -> dict:
    """Index every entry (one Dask task each), judge it, and rewrite the JSON after every pattern.

    Returns
    -------
    dict
        ``benchmark``, ``settings``, ``simulation``, ``sessions``, ``rows`` (sample order), ``summary``.
    """
    from gasolve.parallel import make_runner

    settings = {"seed": seed, "prior": prior, "triclinic_boxes": triclinic_boxes}
    # Keys added after the first runs, written only when not at their defaults, so that those runs still resume.
    if retry_unindexed != 3:
        settings["retry_unindexed"] = retry_unindexed
    if not space_group:
        settings["space_group"] = False
    rows: dict[str, dict] = {}
    sessions = []
    if resume and json_path is not None and json_path.is_file():
        previous = json.loads(json_path.read_text())
        if previous.get("settings") != settings:
            raise ValueError(f"--resume: {json_path} was run with {previous.get('settings')}, not {settings}")
        sessions = previous.get("sessions", [])
        rows = {_key(r): r for r in previous.get("rows", [])}
    sessions.append({
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "rows_before": len(rows),
        "versions": provenance.versions("pymatgen", "spglib", "gemmi", "dask", "distributed"),
        "machine": {"platform": platform.platform(), "cpu": provenance.cpu_model(), "cores": os.cpu_count(),
                    "load_average": list(os.getloadavg())},
    })  # fmt: skip
    result = {
        "benchmark": "indexing",
        "settings": settings,
        "simulation": {
            "two_theta_range": TWO_THETA_RANGE, "step": STEP, "fwhm0_range": FWHM0_RANGE,
            "fwhm_growth_range": FWHM_GROWTH_RANGE, "eta_range": ETA_RANGE, "doublet_share": DOUBLET_SHARE,
            "zero_range": ZERO_RANGE, "max_impurities": MAX_IMPURITIES, "impurity_range": IMPURITY_RANGE,
            "peak_counts_range": PEAK_COUNTS_RANGE, "background_share": BACKGROUND_SHARE, "b_iso": broad.B_ISO,
        },
        "judging": {"length_tolerance": LENGTH_TOLERANCE, "angle_tolerance": ANGLE_TOLERANCE,
                    "sound": {"min_m20": MIN_M20, "min_lines": MIN_LINES}},
        "sessions": sessions,
    }  # fmt: skip
    order = {_key(e): i for i, e in enumerate(entries)}

    def save() -> None:
        done = sorted(rows.values(), key=lambda r: order.get(_key(r), len(order)))
        result.update({"rows": done, "summary": summary(done)})
        if json_path is not None:
            broad.write_json(result, json_path)

    todo = [e for e in entries if _key(e) not in rows]
    if todo:
        from benchmarks import indexing  # by reference: the workers import the module instead of unpickling __main__

        runner = make_runner(scheduler, workers, "--scheduler")
        calls = {_key(e): (e, str(work), seed, prior, triclinic_boxes, retry_unindexed, space_group) for e in todo}
        by_key = {_key(e): e for e in todo}
        try:
            for i, (key, row, error) in enumerate(runner.run(indexing.run_case, calls), start=1):
                if error is not None:
                    entry = by_key[key]
                    row = {k: entry[k] for k in ("material_id", "formula", "space_group", "crystal_system", "half")}
                    row.update({"error": f"task failed: {error!r}", "lattice_first": False, "lattice_top3": False})
                rows[key] = row
                save()
                if progress:
                    mark = "ok " if row.get("lattice_first") else "MISS"
                    print(
                        f"[{i}/{len(todo)}] {mark} {row['crystal_system']:<12} {key:<14} {row.get('formula', '')} "
                        f"rank {row.get('lattice_rank')} M20 {row.get('first_m20')} {row.get('wall_seconds')} s",
                        flush=True,
                    )
        finally:
            runner.close()
    save()
    return result


# ----------------------------------------------------------------------------------------------------------
# Plot


def plot(result: dict, path: Path, half: str = "report") -> None:
    """Bars per crystal system: lattice first, top 3, space group top 1 / top 5 (combined route)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    block = result["summary"].get(half) or result["summary"]["all"]
    systems = [s for s in SYSTEMS if s in block["by_system"]]
    keys = (
        ("lattice_first", "lattice first"),
        ("lattice_top3", "lattice top 3"),
        ("sg_top1_combined", "space group top 1"),
        ("sg_top5_combined", "space group top 5"),
    )
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(keys)
    x = np.arange(len(systems))
    for i, (key, label) in enumerate(keys):
        values = [100 * (block["by_system"][s][key] or 0.0) for s in systems]
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, [f"{s}\n(n={block['by_system'][s]['n']})" for s in systems])
    ax.set_ylabel("patterns (%)")
    ax.set_ylim(0, 105)
    ax.axhline(97, color="grey", lw=0.8, ls="--")
    ax.set_title(
        f"gasolve index on simulated MP patterns ({half} half, n={block['n']}): lattice first "
        f"{100 * block['lattice_first']:.0f} %, space group top 1 {100 * (block['sg_top1_combined'] or 0):.0f} %"
    )
    ax.legend(fontsize=8, ncol=4, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=350, help="simulated structures, both halves (default 350)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--half", choices=("tune", "report", "all"), default="report")
    parser.add_argument("--limit", type=int, help="at most this many simulated patterns of the half, per system")
    parser.add_argument(
        "--only", help="comma-separated material ids: only these of the selected patterns (diagnosing single patterns)"
    )
    parser.add_argument("--no-measured", action="store_true", help="leave out the three measured patterns")
    parser.add_argument("--prior", choices=("network", "uniform"), default="network")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--triclinic-boxes", type=int, help=f"boxes the triclinic search may test (default {TRICLINIC_BOXES:,})"
    )
    budget.add_argument(
        "--triclinic-budget", type=float, help="the same in seconds of an idle 2-core machine, converted to boxes"
    )
    parser.add_argument(
        "--retry-unindexed",
        type=int,
        default=3,
        help="unindexed lines the second indexing pass allows (IndexingSettings.retry_unindexed; 0: none)",
    )
    parser.add_argument(
        "--no-space-group", action="store_true", help="index only: no space-group ranking (for tuning the indexing)"
    )
    parser.add_argument("--workers", type=int)
    parser.add_argument("--scheduler", default="local", help="'local', 'synchronous' or a Dask scheduler address")
    parser.add_argument("--work", default=str(REPO / "runs" / "indexing-benchmark"))
    parser.add_argument("--json", default=str(RESULTS / "indexing.json"))
    parser.add_argument("--png", default=None, help="plot (default: the JSON's path with .png)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--plot-only", action="store_true")
    return parser.parse_args(argv)


def select(entries: list[dict], half: str, limit: int | None) -> list[dict]:
    """The entries of ``half`` (all: both), at most ``limit`` per crystal system, taken round-robin over the
    systems (one of each in turn), so that a run stopped early has covered every system alike."""
    chosen = [e for e in entries if half == "all" or e["half"] == half]
    by_system = {system: [e for e in chosen if e["crystal_system"] == system] for system in SYSTEMS}
    if limit is not None:
        by_system = {system: found[:limit] for system, found in by_system.items()}
    depth = max((len(found) for found in by_system.values()), default=0)
    return [by_system[system][i] for i in range(depth) for system in SYSTEMS if i < len(by_system[system])]


def triclinic_boxes(args: argparse.Namespace) -> int:
    """The triclinic box budget of the options (``--triclinic-budget`` seconds converted; default
    :data:`~gasolve.indexing.budget.TRICLINIC_BOXES`)."""
    if args.triclinic_boxes is not None:
        if args.triclinic_boxes < 0:
            raise SystemExit(f"--triclinic-boxes must be >= 0, got {args.triclinic_boxes}")
        return args.triclinic_boxes
    if args.triclinic_budget is not None:
        try:
            return boxes_for_seconds(args.triclinic_budget)
        except ValueError as error:
            raise SystemExit(f"--triclinic-budget: {error}") from None
    return TRICLINIC_BOXES


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    json_path = Path(args.json)
    png = Path(args.png) if args.png else json_path.with_suffix(".png")
    if not args.plot_only:
        entries = select(sample_simulated(args.n, args.seed), args.half, args.limit)
        if args.only:
            wanted = {x.strip() for x in args.only.split(",") if x.strip()}
            entries = [e for e in entries if e["material_id"] in wanted]
            missing = wanted - {e["material_id"] for e in entries}
            if missing:
                raise SystemExit(f"--only: {', '.join(sorted(missing))} not among the selected patterns")
        if not args.no_measured:
            entries = measured_entries() + entries
        print(f"{len(entries)} patterns ({args.half} half of n = {args.n}, seed {args.seed})", flush=True)
        result = run_benchmark(
            entries,
            work=Path(args.work),
            seed=args.seed,
            prior=args.prior,
            triclinic_boxes=triclinic_boxes(args),
            retry_unindexed=args.retry_unindexed,
            space_group=not args.no_space_group,
            json_path=json_path,
            resume=args.resume,
            scheduler=args.scheduler,
            workers=args.workers,
            progress=True,
        )
    else:
        result = json.loads(json_path.read_text())
        result["summary"] = summary(result["rows"])
        broad.write_json(result, json_path)
    plot(result, png, args.half if args.half in result["summary"] else "all")
    for half, block in result["summary"].items():
        print(
            f"{half}: n {block['n']}, lattice first {block['lattice_first']}, top 3 {block['lattice_top3']}, "
            f"SG top1/top5 extinctions {block['sg_top1_extinctions']}/{block['sg_top5_extinctions']}, "
            f"combined {block['sg_top1_combined']}/{block['sg_top5_combined']}, "
            f"network {block['sg_top1_network']}/{block['sg_top5_network']}, "
            f"classify {block.get('sg_top1_classify')}/{block.get('sg_top5_classify')}, "
            f"median {block['median_seconds']} s"
        )
        for system, s in block["by_system"].items():
            print(
                f"  {system:<12} n {s['n']:>3}  first {s['lattice_first']}  top3 {s['lattice_top3']}  "
                f"SG comb {s['sg_top1_combined']}/{s['sg_top5_combined']}  median {s['median_seconds']} s"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
