"""Broad success-rate benchmark (issue 12, item 11): many real structures, patterns from an independent simulator.

Usage::

    python -m benchmarks.broad [--n 200] [--source mp[,aflow,ase-minerals,pyxtal]] [--seed 0]
        [--input composition|sites|blind] [--max-evaluations 2000000] [--wall-limit 300] [--workers N]
        [--scheduler ADDRESS] [--work DIR] [--json PATH] [--png PATH] [--resume] [--plot-only]

**Structures.** ``mp``: ../shared/data/mp-structures, the held-out split of the Wyckoff prior and the Z window
(``crc32(material_id) % 5 == 0``, :func:`benchmarks.z_window.held_out`), ordered structures with at most 20 atoms
in the primitive cell (MP-20's rule). The sample is stratified over the seven crystal systems: ``n`` is shared out
evenly (the first ``n % 7`` systems in ITA order get one more), each system's candidates (by index.csv's space
group) are shuffled with a generator seeded by (seed, system), and a candidate is taken when it is ordered, has at
most 20 atoms in its primitive cell and spglib (symprec 0.01) puts it in that crystal system. ``aflow``,
``ase-minerals``, ``pyxtal``: the CIF sets of ../shared/data/cif, the same rules, ``n`` per source (all that
qualify when fewer). Within each (source, system) the sampled structures alternate between the ``tune`` half
(0th, 2nd, ...) and the ``report`` half (1st, 3rd, ...): tune settings on the first, quote the second.

**Standardisation.** spglib's standard conventional cell (pymatgen ``SpacegroupAnalyzer(symprec=0.01)
.get_refined_structure()``), the International Tables setting that gasolve's Wyckoff tables use (pymatgen's
``get_conventional_standard_structure`` reorders orthorhombic axes to a < b < c and puts the monoclinic unique
axis on a, settings gasolve refuses with Wyckoff letters). The Wyckoff letters of the asymmetric unit come from
the symmetrized structure of that cell; they are the same in both origin choices of the groups that have two, so
the config gives the group by number (gasolve's default setting) and the letters.

**Observed pattern** (pymatgen, not gasolve): ``XRDCalculator`` stick pattern (Cu Kα1 from pymatgen's
``WAVELENGTHS``; Debye-Waller factor B = ``B_ISO`` for every element, the value the config gives gasolve),
pseudo-Voigt peaks of constant FWHM (drawn in 0.08-0.10° per structure) and η = 0.5, a smooth Chebyshev
background (about 3 % of the strongest peak), Poisson counts (strongest peak about ``PEAK_COUNTS`` counts),
2θ 5-80° in steps of 0.02°, written as .xye (esd = √max(y, 1)). Every ``LEBAIL_EVERY``-th structure of the sample
adds Cu Kα2 (a second ``XRDCalculator`` at pymatgen's CuKa2 wavelength, half the intensity: pymatgen's ``"CuKa"``
is the weighted mean wavelength, one line, not the doublet) and a zero shift drawn in ±0.05°, and its config leaves
out ``[pattern.profile]``, so gasolve fits the profile first (Le Bail).

**Input** (``--input``): ``composition``: ``[structure] name, cell, space_group, composition`` (the reduced
formula), nothing about Z or sites: gasolve races Wyckoff hypotheses. ``sites``: the asymmetric unit and its
Wyckoff letters (``sites``, ``wyckoff``), the harness's check mode. No ``[reference]``: every run is reference-free.
``blind``: neither cell nor space group: ``gasolve solve pattern.xye --composition FORMULA --wavelength CuKa1|CuKa12
--range 5 80`` indexes the pattern, ranks the space groups and races their hypotheses; each row also records the
stages from summary.json's ``stages`` (:func:`read_stages`): the indexed Bravais lattice and cell, whether that
cell is the reference lattice within 1 % and 1° (pymatgen ``Lattice.find_mapping`` between the primitive
lattices, the centring translations from gemmi), and the raced space groups with whether the true one is among
them and first.

**Runs.** ``gasolve run CONFIG --out DIR --quiet --seed S --max-evaluations N`` (``--scheduler synchronous`` in
composition mode, so that a run started inside a benchmark task does not start a cluster of its own; blind mode:
the ``gasolve solve`` above with ``--out DIR --quiet --scheduler synchronous --seed S --max-evaluations N``) as a
subprocess with a wall limit, one per Dask task on a ``distributed.LocalCluster`` of single-threaded worker
processes (:func:`benchmarks.convergence.make_client`) or ``--scheduler``. A failing or timed-out run is a row with
``error``, never fatal to the others. The JSON is rewritten atomically after every completed structure, and
``--resume`` skips the structures already in it.

**Judging, from best.cif as the user receives it** (read by pymatgen's CIF parser), against the standardised
reference: ``ml_match``: ``StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10).fit`` (the ML papers' criterion);
``strict_match``: every atom within 0.3 Å: ``StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, scale=False)
.get_rms_dist`` gives the largest distance between paired atoms of the least-RMS superposition (over lattice
matches, origin translations and same-element permutations) in units of (V/N)^(1/3), multiplied back to Å with the
reference's volume per atom. ``space_group_match``: best.cif's space group (spglib at 0.01 Å) is the reference's; a
model in a subgroup (a polar Pna2_1 model of a Pnma structure) matches by the two criteria above but not by this one
(``space_group_solved``: ML match and space-group match). The reference-free stop (summary.json ``stop.early``): a
false positive is an early stop on a model that fails the ML criterion, a false negative a run that reached its
budget (no early stop) with a model that passes it.

**Report.** Per structure a row; per half (tune, report, all), per crystal system and per number of independent
sites: success rates (ML, strict), median and IQR of evaluations, wall time (``wall_seconds``: the whole
``gasolve run`` process as the user waits for it, start-up, JIT compilation and profile fit included;
``search_seconds``: summary.json's ``wall_seconds``) and hypotheses tried, the stop's false positives and
negatives, and ``convincing_but_wrong`` (summary.json's ``convincing`` on a model failing the ML criterion).
``--png`` draws success per crystal system and the wall-time distribution.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so that `python benchmarks/broad.py` finds an uninstalled gasolve

from benchmarks import provenance  # noqa: E402
from benchmarks.z_window import DATA, crystal_system, held_out  # noqa: E402
from gasolve.io.atomic import atomic_write  # noqa: E402
from gasolve.parallel import WORKER_ENV  # noqa: E402  (one thread per worker process)

SHARED = REPO.parent / "shared" / "data"
CIF_SETS = {
    "aflow": SHARED / "cif" / "aflow-prototypes",
    "ase-minerals": SHARED / "cif" / "ase-minerals",
    "pyxtal": SHARED / "cif" / "pyxtal-database",
}
RESULTS = REPO / "benchmarks" / "results"
SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
MAX_PRIMITIVE_ATOMS = 20
SYMPREC = 0.01
B_ISO = 1.0  # Å², Debye-Waller B of the simulation and b_iso of the config
TWO_THETA_RANGE = (5.0, 80.0)
STEP = 0.02
ETA = 0.5
FWHM_RANGE = (0.08, 0.10)
PEAK_COUNTS = 20_000.0
BACKGROUND_SHARE = 0.03
ZERO_RANGE = 0.05
KALPHA2_RATIO = 0.5
LEBAIL_EVERY = 4
MATCH = {"ltol": 0.3, "stol": 0.5, "angle_tol": 10.0}
STRICT_TOLERANCE = 0.3  # Å
SITE_BINS = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 6), (7, 9), (10, 99))


# ----------------------------------------------------------------------------------------------------------
# Structures


def _quotas(n: int) -> dict[str, int]:
    return {system: n // len(SYSTEMS) + (i < n % len(SYSTEMS)) for i, system in enumerate(SYSTEMS)}


def _system_rng(seed: int, system: str) -> np.random.Generator:
    return np.random.default_rng([seed, SYSTEMS.index(system)])


def standardise(structure, max_primitive: int | None = MAX_PRIMITIVE_ATOMS) -> dict | None:
    """The standard conventional cell of ``structure`` and its asymmetric unit, or None when it is not taken.

    Parameters
    ----------
    structure : pymatgen.core.Structure
    max_primitive : int or None
        Most atoms in the primitive cell (MP-20's 20 by default); None: no limit.

    Returns
    -------
    dict or None
        ``structure`` (pymatgen Structure, spglib's standard conventional cell), ``space_group`` (number),
        ``symbol``, ``crystal_system``, ``cell`` (a, b, c in Å, α, β, γ in degrees), ``sites`` (list of
        [element, Wyckoff label] of the asymmetric unit), ``n_atoms`` (conventional cell), ``n_primitive``.
        None for disordered structures and for more than ``max_primitive`` atoms in the primitive cell.
    """
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    if not structure.is_ordered:
        return None
    analyzer = SpacegroupAnalyzer(structure, symprec=SYMPREC)
    primitive = analyzer.find_primitive()
    if primitive is None or (max_primitive is not None and len(primitive) > max_primitive):
        return None
    refined = analyzer.get_refined_structure()
    symmetrized = SpacegroupAnalyzer(refined, symprec=SYMPREC).get_symmetrized_structure()
    number = int(analyzer.get_space_group_number())
    if symmetrized.spacegroup.int_number != number:
        return None
    sites = [
        [group[0].specie.symbol, label]
        for group, label in zip(symmetrized.equivalent_sites, symmetrized.wyckoff_symbols, strict=True)
    ]
    lattice = refined.lattice
    return {
        "structure": refined,
        "space_group": number,
        "symbol": analyzer.get_space_group_symbol(),
        "crystal_system": crystal_system(number),
        "cell": [round(float(v), 6) for v in (*lattice.abc, *lattice.angles)],
        "sites": sites,
        "n_atoms": len(refined),
        "n_primitive": len(primitive),
    }  # fmt: skip


def _entry(
    source: str, material_id: str, structure, system: str | None, max_primitive: int | None = MAX_PRIMITIVE_ATOMS
) -> dict | None:
    """A benchmark entry (plain data, reference as CIF text) from a raw structure, None when it is not taken."""
    from pymatgen.io.cif import CifWriter

    try:
        found = standardise(structure, max_primitive)
    except Exception:  # spglib or pymatgen refuse a structure: not taken
        return None
    if found is None or (system is not None and found["crystal_system"] != system):
        return None
    reference = found.pop("structure")
    formula = reference.composition.reduced_formula
    units = reference.composition.num_atoms / reference.composition.reduced_composition.num_atoms
    return {
        "source": source,
        "material_id": material_id,
        "formula": formula,
        **found,
        "n_independent": len(found["sites"]),
        "z": round(units),
        "reference_cif": str(CifWriter(reference)),
    }


def _assign_halves(entries: list[dict], stratum=None, lebail_every: int | None = LEBAIL_EVERY) -> list[dict]:
    """Alternate tune/report within each stratum (default: (source, crystal system)), in sampled order; every
    ``lebail_every``-th entry of the whole sample gets the Kα1+Kα2 pattern with a zero shift and no profile (None:
    none does)."""
    seen: Counter = Counter()
    for i, entry in enumerate(entries):
        key = stratum(entry) if stratum is not None else (entry["source"], entry["crystal_system"])
        entry["half"] = "tune" if seen[key] % 2 == 0 else "report"
        entry["lebail"] = bool(lebail_every) and i % lebail_every == lebail_every - 1
        seen[key] += 1
    return entries


def mp_candidates(data: Path = DATA, sites: tuple[int, int] = (1, MAX_PRIMITIVE_ATOMS)):
    """index.csv rows of the held-out split with ``sites`` (lo, hi; default at most 20) sites in the stored
    (primitive) cell."""
    import pandas as pd

    index = pd.read_csv(data / "index.csv")
    index = index.rename(columns={"space_group_number_spglib_0.1": "space_group"})
    index = index[index.material_id.map(held_out) & index.n_sites.between(*sites)]
    return index.assign(crystal_system=index.space_group.map(crystal_system))


def _mp_cifs(material_ids: list[str], data: Path = DATA) -> dict[str, str]:
    import pandas as pd

    wanted = set(material_ids)
    found = {}
    for chunk in pd.read_csv(data / "structures.csv.gz", usecols=["material_id", "cif"], chunksize=4000):
        chunk = chunk[chunk.material_id.isin(wanted)]
        found.update(zip(chunk.material_id, chunk.cif, strict=True))
    return found


def sample_mp(n: int, seed: int, data: Path = DATA) -> list[dict]:
    """Stratified sample of ``n`` held-out MP structures (module docstring), in (system, draw) order."""
    from pymatgen.core import Structure

    candidates = mp_candidates(data)
    quotas = _quotas(n)
    orders = {}
    for system in SYSTEMS:
        ids = sorted(candidates.material_id[candidates.crystal_system == system])
        orders[system] = [ids[i] for i in _system_rng(seed, system).permutation(len(ids))]
    taken: dict[str, list[dict]] = {system: [] for system in SYSTEMS}
    start = dict.fromkeys(SYSTEMS, 0)
    while True:
        # Each pass reads the CIFs of a few times the missing count of every system at once (one pass over the
        # file; some candidates are not taken).
        batches = {}
        for system in SYSTEMS:
            missing = quotas[system] - len(taken[system])
            if missing > 0 and start[system] < len(orders[system]):
                batches[system] = orders[system][start[system] : start[system] + 3 * missing + 5]
                start[system] += len(batches[system])
        if not batches:
            break
        cifs = _mp_cifs([i for batch in batches.values() for i in batch], data)
        for system, batch in batches.items():
            for material_id in batch:
                if len(taken[system]) >= quotas[system]:
                    break
                entry = _entry("mp", material_id, Structure.from_str(cifs[material_id], fmt="cif"), system)
                if entry is not None:
                    taken[system].append(entry)
    entries = [entry for system in SYSTEMS for entry in taken[system]]
    return _assign_halves(entries)


def sample_cif_set(source: str, n: int, seed: int, folder: Path | None = None) -> list[dict]:
    """Stratified sample of up to ``n`` structures of a CIF set (every one that qualifies when fewer)."""
    import warnings

    from pymatgen.core import Structure

    folder = folder or CIF_SETS[source]
    by_system: dict[str, list[dict]] = {system: [] for system in SYSTEMS}
    for path in sorted(folder.glob("*.cif")):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = Structure.from_file(path)
        except Exception:
            continue
        entry = _entry(source, f"{source}:{path.stem}", structure, None)
        if entry is not None:
            by_system[entry["crystal_system"]].append(entry)
    quotas = _quotas(n)
    # Systems with fewer structures than their quota pass the rest on to the others, in ITA order.
    spare = sum(max(0, quotas[s] - len(by_system[s])) for s in SYSTEMS)
    entries = []
    for system in SYSTEMS:
        pool = by_system[system]
        extra = min(spare, max(0, len(pool) - quotas[system]))
        spare -= extra
        order = _system_rng(seed, system).permutation(len(pool))
        entries += [pool[i] for i in order[: quotas[system] + extra]]
    return _assign_halves(entries)


def sample(sources: list[str], n: int, seed: int) -> list[dict]:
    """Entries of every source in ``sources`` ("mp" or a key of CIF_SETS), ``n`` per source."""
    entries = []
    for source in sources:
        entries += sample_mp(n, seed) if source == "mp" else sample_cif_set(source, n, seed)
    return entries


# ----------------------------------------------------------------------------------------------------------
# Observed pattern (pymatgen + NumPy, independent of gasolve)


def pseudo_voigt(x: np.ndarray, fwhm: float, eta: float) -> np.ndarray:
    """Area-normalised pseudo-Voigt of offsets ``x`` (degrees), Gaussian and Lorentzian of the same FWHM."""
    gauss = math.sqrt(4 * math.log(2) / math.pi) / fwhm * np.exp(-4 * math.log(2) * (x / fwhm) ** 2)
    lorentz = 2 / (math.pi * fwhm) / (1 + 4 * (x / fwhm) ** 2)
    return eta * lorentz + (1 - eta) * gauss


def sticks(structure, wavelength: str | float, two_theta_range=TWO_THETA_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """pymatgen's stick pattern: 2θ (degrees) and unscaled intensities, B = B_ISO for every element."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    elements = {site.specie.symbol for site in structure}
    calculator = XRDCalculator(wavelength=wavelength, debye_waller_factors=dict.fromkeys(elements, B_ISO))
    pattern = calculator.get_pattern(structure, scaled=False, two_theta_range=two_theta_range)
    return np.asarray(pattern.x, float), np.asarray(pattern.y, float)


def simulate_pattern(
    structure,
    rng: np.random.Generator | None,
    *,
    fwhm: float = 0.09,
    doublet: bool = False,
    zero: float = 0.0,
    background: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Observed pattern of ``structure``: pymatgen sticks, pseudo-Voigt, background, Poisson counts.

    Parameters
    ----------
    structure : pymatgen.core.Structure
    rng : numpy.random.Generator or None
        Draws the background shape and the counts; None: noise-free, flat-free (no background either).
    fwhm : float
        Degrees 2θ.
    doublet : bool
        Add Cu Kα2 at KALPHA2_RATIO of Kα1.
    zero : float
        Zero shift (degrees 2θ) added to every peak position.
    background : bool
        Add the Chebyshev background (only with ``rng``).

    Returns
    -------
    two_theta, y : ndarray, shape (n_points,)
        Degrees; counts.
    """
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    lo, hi = TWO_THETA_RANGE
    two_theta = np.round(np.arange(lo, hi + STEP / 2, STEP), 6)
    margin = (lo - 2.0, hi + 2.0)
    lines = [(WAVELENGTHS["CuKa1"], 1.0)] + ([(WAVELENGTHS["CuKa2"], KALPHA2_RATIO)] if doublet else [])
    y = np.zeros_like(two_theta)
    for wavelength, weight in lines:
        positions, intensities = sticks(structure, wavelength, (max(margin[0], 0.5), min(margin[1], 179.0)))
        for position, intensity in zip(positions + zero, intensities, strict=True):
            near = np.abs(two_theta - position) < 30 * fwhm
            y[near] += weight * intensity * pseudo_voigt(two_theta[near] - position, fwhm, ETA)
    y *= PEAK_COUNTS / y.max()
    if rng is None:
        return two_theta, y
    if background:
        x = 2 * (two_theta - lo) / (hi - lo) - 1
        coefficients = np.array([1.0, -0.5 * rng.uniform(0.2, 0.8), 0.2 * rng.uniform(-1, 1), 0.1 * rng.uniform(-1, 1)])
        shape = np.polynomial.chebyshev.chebval(x, coefficients)
        y = y + BACKGROUND_SHARE * PEAK_COUNTS * np.clip(shape, 0.2, None)
    return two_theta, rng.poisson(y).astype(float)


def write_xye(path: Path, two_theta: np.ndarray, y: np.ndarray, header: str) -> None:
    """Three columns, esd = √max(y, 1)."""
    lines = [f"# {header}"] + [
        f"{t:.4f} {v:.1f} {math.sqrt(max(v, 1.0)):.3f}" for t, v in zip(two_theta, y, strict=True)
    ]
    atomic_write(path, "\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------------------
# Config and run


def config_text(entry: dict, mode: str, pattern: str, fwhm: float | None) -> str:
    """The gasolve run config of ``entry`` (module docstring); ``fwhm`` None leaves out [pattern.profile]."""
    lines = [
        "[structure]",
        f'name = "{_safe(entry["material_id"])}"',
        f"cell = {entry['cell']}",
        f"space_group = {entry['space_group']}",
    ]
    if mode == "composition":
        lines.append(f'composition = "{entry["formula"]}"')
    elif mode == "sites":
        lines.append("sites = [" + ", ".join(f'"{e}"' for e, _ in entry["sites"]) + "]")
        lines.append("wyckoff = [" + ", ".join(f'"{w}"' for _, w in entry["sites"]) + "]")
    else:
        raise ValueError(f"input mode is 'composition' or 'sites', got {mode!r}")
    lines += [f"b_iso = {B_ISO}", "", "[pattern]", f'file = "{pattern}"']
    lines.append('wavelength = "CuKa12"' if entry.get("lebail") else 'wavelength = "CuKa1"')
    if entry.get("lebail"):
        lines.append(f"kalpha2_ratio = {KALPHA2_RATIO}")
    lines.append(f"range = {list(TWO_THETA_RANGE)}")
    if fwhm is not None:
        lines += ["", "[pattern.profile]", f"fwhm = {fwhm:.5f}", f"eta = {ETA}", "zero = 0.0"]
    return "\n".join(lines) + "\n"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _pattern_rng(entry: dict, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(entry["material_id"].encode())])


def prepare_case(entry: dict, mode: str, folder: Path, seed: int) -> Path:
    """Write reference.cif, pattern.xye and config.toml of ``entry`` into ``folder``; return the config's path
    (``blind``: no config, the pattern's path)."""
    from pymatgen.core import Structure

    folder.mkdir(parents=True, exist_ok=True)
    reference = Structure.from_str(entry["reference_cif"], fmt="cif")
    rng = _pattern_rng(entry, seed)
    fwhm = float(rng.uniform(*FWHM_RANGE))
    zero = float(rng.uniform(-ZERO_RANGE, ZERO_RANGE)) if entry.get("lebail") else 0.0
    two_theta, y = simulate_pattern(reference, rng, fwhm=fwhm, doublet=entry.get("lebail", False), zero=zero)
    lines = "CuKa1+CuKa2" if entry.get("lebail") else "CuKa1"
    header = f"{entry['material_id']} {entry['formula']}: pymatgen XRDCalculator {lines}, pV fwhm {fwhm:.4f} eta {ETA}"
    write_xye(folder / "pattern.xye", two_theta, y, f"{header}, zero {zero:+.4f}, Poisson counts")
    atomic_write(folder / "reference.cif", entry["reference_cif"])
    if mode == "blind":
        return folder / "pattern.xye"
    config = folder / "config.toml"
    atomic_write(config, config_text(entry, mode, "pattern.xye", None if entry.get("lebail") else fwhm))
    return config


def _command(config: Path, out: Path, mode: str, budget: int, run_seed: int) -> list[str]:
    command = [sys.executable, "-m", "gasolve.cli.main", "run", str(config), "--out", str(out), "--quiet"]
    command += ["--seed", str(run_seed), "--max-evaluations", str(int(budget))]
    if mode == "composition":
        command += ["--scheduler", "synchronous"]
    return command


def solve_command(pattern: Path, out: Path, entry: dict, budget: int, run_seed: int) -> list[str]:
    """``gasolve solve`` of the blind mode: the pattern, the reduced formula and the wavelength, nothing else."""
    command = [sys.executable, "-m", "gasolve.cli.main", "solve", str(pattern), "--composition", entry["formula"]]
    command += ["--wavelength", "CuKa12" if entry.get("lebail") else "CuKa1"]
    command += ["--range", *(f"{x:g}" for x in TWO_THETA_RANGE), "--out", str(out), "--quiet"]
    command += ["--scheduler", "synchronous", "--seed", str(run_seed), "--max-evaluations", str(int(budget))]
    return command


def _tail(text: str, n: int = 600) -> str:
    return text[-n:].strip()


def run_case(
    entry: dict,
    mode: str,
    work: str,
    budget: int,
    wall_limit: float,
    seed: int,
    run_seed: int,
    out_name: str = "run",
    prepare: bool = True,
    extra_args: tuple[str, ...] = (),
) -> dict:
    """Prepare, run and judge one structure; a row of the result (never raises for a failed run).

    ``out_name``: the run's folder inside the structure's; ``prepare`` False: use the config.toml (and pattern)
    :func:`prepare_case` wrote there before, so that several runs of one structure share them; ``extra_args``:
    more ``gasolve run`` options.
    """
    folder = Path(work) / _safe(entry["material_id"])
    row = {key: entry[key] for key in ROW_KEYS if key in entry}
    row.update({"mode": mode, "true_wyckoff": entry["sites"], "budget": int(budget), "error": None})
    try:
        given = folder / ("pattern.xye" if mode == "blind" else "config.toml")
        config = prepare_case(entry, mode, folder, seed) if prepare else given
        if not config.is_file():
            raise FileNotFoundError(f"{config} (prepare_case first)")
    except Exception as error:
        return {**row, "error": f"preparing the case failed: {error!r}", "ml_match": False, "strict_match": False}
    out = folder / out_name
    shutil.rmtree(out, ignore_errors=True)  # a run interrupted before this benchmark's --resume starts afresh
    env = {**os.environ, **WORKER_ENV, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    try:
        done = subprocess.run(
            (solve_command(config, out, entry, budget, run_seed) if mode == "blind"
             else _command(config, out, mode, budget, run_seed)) + list(extra_args),
            cwd=folder, env=env, capture_output=True, text=True, timeout=wall_limit, check=False,
        )  # fmt: skip
        row["returncode"] = done.returncode
        if done.returncode != 0:
            command = "solve" if mode == "blind" else "run"
            row["error"] = f"gasolve {command} exited {done.returncode}: {_tail(done.stderr or done.stdout)}"
    except subprocess.TimeoutExpired:
        row["returncode"] = None
        row["error"] = f"wall limit of {wall_limit:.0f} s exceeded"
    row["elapsed_seconds"] = round(time.perf_counter() - t0, 3)
    row.update(read_summary(out / "summary.json"))
    if mode == "blind":
        row.update(read_stages(out / "summary.json", entry))
    verdict = judge_file(out / "best.cif", entry["reference_cif"]) if row["error"] is None else None
    if verdict is None:
        row.update({"ml_match": False, "strict_match": False, "max_distance": None})
    else:
        row.update(verdict)
    early = row.get("stop_early")
    # A stop that says it leaves the H atoms out claims the other atoms only: judged on them (heavy_match).
    claims_heavy_only = bool(row.get("undetermined_sites"))
    claim_holds = row["ml_match"] or (claims_heavy_only and bool(row.get("heavy_match")))
    row["stop_false_positive"] = bool(early) and not claim_holds
    row["stop_false_positive_any_atom"] = bool(early) and not row["ml_match"]
    row["stop_false_negative"] = early is False and row["ml_match"]
    return row


ROW_KEYS = (
    "source", "material_id", "formula", "space_group", "symbol", "crystal_system", "n_independent", "n_atoms",
    "n_primitive", "z", "cell", "half", "lebail",
)  # fmt: skip


def read_summary(path: Path) -> dict:
    """The figures a row reports from gasolve's summary.json, read defensively (missing keys give None).

    Keys read: rwp, chi2, evaluations, wall_seconds, convincing, independent_finds, stop.reason, stop.early,
    undetermined_sites (the H atoms the run does not claim), hypotheses[*] (z, assignment, n_free, rwp, chi2,
    finds, evaluations, seconds, status).
    """
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"summary_found": False}
    stop = summary.get("stop") if isinstance(summary.get("stop"), dict) else {}
    hypotheses = summary.get("hypotheses") if isinstance(summary.get("hypotheses"), list) else []
    keep = ("z", "assignment", "n_free", "rwp", "chi2", "finds", "evaluations", "seconds", "status")
    tried = [h for h in hypotheses if isinstance(h, dict) and (h.get("evaluations") or 0) > 0]
    return {
        "summary_found": True,
        "rwp": summary.get("rwp"),
        "chi2": summary.get("chi2"),
        "evaluations": summary.get("evaluations"),
        "wall_seconds": summary.get("wall_seconds"),
        "convincing": summary.get("convincing"),
        "independent_finds": summary.get("independent_finds"),
        "stop_reason": stop.get("reason"),
        "stop_early": stop.get("early"),
        "undetermined_sites": summary.get("undetermined_sites"),
        "n_hypotheses": len(hypotheses) if hypotheses else None,
        "hypotheses_tried": len(tried) if hypotheses else None,
        "hypotheses": [{k: _plain(h.get(k)) for k in keep} for h in hypotheses[:5] if isinstance(h, dict)],
    }


def reference_bravais(number: int) -> str:
    """Bravais symbol (aP, mP, mC, oP, oC, oI, oF, tP, tI, hP, hR, cP, cI, cF) of space group ``number``;
    A- and B-centred groups count as C (the same lattice)."""
    from gasolve.crystal.spacegroup import bravais_symbol

    return bravais_symbol(number)


def primitive_lattice(parameters, bravais: str):
    """pymatgen primitive Lattice of a conventional cell (a, b, c in Å, α, β, γ in degrees) with the centring of
    ``bravais`` (gemmi's centring translations of the Hall symbol 'X 1'; R on hexagonal axes, obverse)."""
    import gemmi
    from pymatgen.core import Lattice, Structure

    lattice = Lattice.from_parameters(*parameters)
    centring = {"A": "A", "B": "B", "C": "C", "S": "C", "I": "I", "F": "F", "R": "R"}.get(bravais[-1], "P")
    translations = np.asarray(gemmi.symops_from_hall(f"{centring} 1").cen_ops, float) / 24.0
    if len(translations) == 1:
        return lattice
    points = Structure(lattice, ["H"] * len(translations), translations)
    return points.get_primitive_structure(tolerance=1e-3).lattice


def _centring(number: int) -> str:
    """Centring letter of space group ``number``'s standard symbol (P, A, C, I, F, R)."""
    import gemmi

    return gemmi.find_spacegroup_by_number(number).hm[0]


def _group_number(symbol) -> int | None:
    import gemmi

    try:
        found = gemmi.find_spacegroup_by_name(str(symbol))
    except Exception:  # gemmi refuses the spelling: unknown
        return None
    return found.number if found is not None else None


def read_stages(path: Path, entry: dict, ltol: float = 0.01, atol: float = 1.0) -> dict:
    """What ``gasolve solve`` found at each stage (summary.json ``stages``), judged against ``entry``'s reference.

    Returns
    -------
    dict
        ``indexed_bravais``, ``indexed_cell`` (a, b, c in Å, α, β, γ in degrees) and ``cell_source``;
        ``reference_bravais``; ``bravais_matches``; ``cell_matches`` (the primitive lattices of the indexed and the
        reference cells map onto each other within ``ltol`` relative length and ``atol`` degrees, pymatgen
        ``Lattice.find_mapping``, volumes within 3 ``ltol``); ``raced_space_groups`` (numbers, race order; None
        for a symbol gemmi does not read), ``raced_symbols``, ``raced_posteriors``; ``true_group_raced``,
        ``true_group_first``; ``holohedral_rwp``; ``attempts`` (cells raced: 1 without a fallback). Every value None
        when summary.json or its ``stages`` is missing.
    """
    truth = reference_bravais(entry["space_group"])
    empty = dict.fromkeys(
        ("indexed_bravais", "indexed_cell", "cell_source", "bravais_matches", "cell_matches", "raced_space_groups",
         "raced_symbols", "raced_posteriors", "true_group_raced", "true_group_first", "holohedral_rwp", "attempts")
    )  # fmt: skip
    empty["reference_bravais"] = truth
    try:
        stages = json.loads(path.read_text()).get("stages")
    except (OSError, ValueError, AttributeError):
        return empty
    if not isinstance(stages, dict):
        return empty
    row = dict(empty)
    cell = stages.get("cell") if isinstance(stages.get("cell"), dict) else {}
    bravais, parameters = cell.get("bravais"), cell.get("cell")
    row.update({"indexed_bravais": bravais, "cell_source": cell.get("source")})
    if bravais and isinstance(parameters, list) and len(parameters) == 6:
        row["indexed_cell"] = [round(float(v), 5) for v in parameters]
        row["bravais_matches"] = bravais == truth
        try:
            found = primitive_lattice(parameters, bravais)
            reference = primitive_lattice(entry["cell"], _centring(entry["space_group"]))
            # find_mapping takes any lattice vectors of the right lengths and angles, a supercell's too: the
            # volumes must agree as well.
            same_volume = abs(found.volume / reference.volume - 1) <= 3 * ltol
            row["cell_matches"] = same_volume and reference.find_mapping(found, ltol=ltol, atol=atol) is not None
        except Exception:  # a degenerate cell: no match
            row["cell_matches"] = False
    fit = stages.get("profile_fit") if isinstance(stages.get("profile_fit"), dict) else {}
    row["holohedral_rwp"] = fit.get("rwp")
    attempts = stages.get("attempts")
    row["attempts"] = len(attempts) if isinstance(attempts, list) and attempts else 1
    groups = stages.get("space_groups") if isinstance(stages.get("space_groups"), dict) else {}
    raced = [g for g in groups.get("raced") or [] if isinstance(g, dict)]
    if raced:
        numbers = [_group_number(g.get("space_group")) for g in raced]
        row.update({
            "raced_space_groups": numbers,
            "raced_symbols": [g.get("space_group") for g in raced],
            "raced_posteriors": [g.get("posterior") for g in raced],
            "true_group_raced": entry["space_group"] in numbers,
            "true_group_first": numbers[0] == entry["space_group"],
        })  # fmt: skip
    return row


# ----------------------------------------------------------------------------------------------------------
# Judging


def judge(model, reference) -> dict:
    """ML and strict verdicts of ``model`` against ``reference`` (pymatgen Structures; module docstring).

    Returns
    -------
    dict
        ``ml_match`` (bool), ``strict_match`` (bool), ``max_distance`` (Å, largest distance between paired atoms
        of the least-RMS superposition; None when no superposition is found within stol), ``rms_distance`` (Å).
    """
    from pymatgen.analysis.structure_matcher import StructureMatcher

    ml = bool(StructureMatcher(**MATCH).fit(reference, model))
    found = StructureMatcher(**MATCH, scale=False).get_rms_dist(reference, model)
    if found is None:
        return {"ml_match": ml, "strict_match": False, "max_distance": None, "rms_distance": None}
    unit = (reference.volume / len(reference)) ** (1 / 3)  # get_rms_dist's unit, (V/N)^(1/3), in Å
    rms, largest = float(found[0]) * unit, float(found[1]) * unit
    return {
        "ml_match": ml,
        "strict_match": largest <= STRICT_TOLERANCE,
        "max_distance": round(largest, 4),
        "rms_distance": round(rms, 4),
    }


def space_group_verdict(model, reference) -> dict:
    """``model_space_group`` and ``reference_space_group`` (numbers spglib finds at 0.01 Å, as pymatgen's
    SpacegroupAnalyzer gives them) and ``space_group_match``: whether best.cif carries the reference's symmetry, not
    only its atoms (a model in a subgroup matches by the ML and strict criteria)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    try:
        numbers = [SpacegroupAnalyzer(s, symprec=0.01).get_space_group_number() for s in (model, reference)]
    except Exception:  # spglib finds no symmetry dataset: no verdict
        return {"model_space_group": None, "reference_space_group": None, "space_group_match": False}
    return {
        "model_space_group": numbers[0],
        "reference_space_group": numbers[1],
        "space_group_match": numbers[0] == numbers[1],
    }


def judge_file(best_cif: Path, reference_cif: str) -> dict:
    """:func:`judge` of a best.cif as pymatgen's CIF parser reads it; a file it cannot read fails both criteria.
    ``heavy_match``: the ML criterion with the H atoms of both structures left out (an X-ray pattern does not
    locate H; a run that says so claims the other atoms only)."""
    import warnings

    from pymatgen.core import Structure

    reference = Structure.from_str(reference_cif, fmt="cif")
    reference.remove_oxidation_states()  # a reference that states charges (Al3+) is the same structure as Al
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Structure.from_file(best_cif)
        model.remove_oxidation_states()  # refined.cif keeps a site's charge (Ca2+)
    except Exception as error:
        return {"ml_match": False, "strict_match": False, "max_distance": None, "cif_error": repr(error)[:300]}
    if model.composition.reduced_formula != reference.composition.reduced_formula or len(model) != len(reference):
        found = f"{model.composition.formula} ({len(model)} atoms)"
        verdict = {"ml_match": False, "strict_match": False, "max_distance": None}
        return {**verdict, "cif_error": f"best.cif holds {found}, the reference {reference.composition.formula}"}
    verdict = {**judge(model, reference), **space_group_verdict(model, reference)}
    if "H" in {element.symbol for element in reference.composition}:  # the ML criterion without the H atoms
        heavy_model, heavy_reference = model.copy(), reference.copy()
        heavy_model.remove_species(["H"])
        heavy_reference.remove_species(["H"])
        verdict["heavy_match"] = judge(heavy_model, heavy_reference)["ml_match"]
    else:
        verdict["heavy_match"] = verdict["ml_match"]
    return verdict


# ----------------------------------------------------------------------------------------------------------
# Summary


def spread(values: list[float]) -> dict | None:
    """Median and interquartile range (25th, 75th percentiles), with the count; None for no values."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"n": len(values), "median": float(median), "q1": float(q1), "q3": float(q3), "max": max(values)}


def _rate(rows: list[dict], key: str) -> float | None:
    return round(sum(bool(r.get(key)) for r in rows) / len(rows), 4) if rows else None


def summarise(rows: list[dict]) -> dict:
    """Success rates, effort and the stop's false positives/negatives of ``rows``."""
    return {
        "n": len(rows),
        "errors": sum(r.get("error") is not None for r in rows),
        "ml_success": _rate(rows, "ml_match"),
        "strict_success": _rate(rows, "strict_match"),
        "ml_solved": sum(bool(r.get("ml_match")) for r in rows),
        "strict_solved": sum(bool(r.get("strict_match")) for r in rows),
        "space_group_solved": sum(bool(r.get("ml_match")) and bool(r.get("space_group_match")) for r in rows),
        "evaluations": spread([r.get("evaluations") for r in rows]),
        "wall_seconds": spread([r.get("elapsed_seconds") for r in rows]),
        "search_seconds": spread([r.get("wall_seconds") for r in rows]),
        "hypotheses_tried": spread([r.get("hypotheses_tried") for r in rows]),
        "stopped_early": sum(bool(r.get("stop_early")) for r in rows),
        "heavy_atom_solved": sum(bool(r.get("heavy_match")) for r in rows),
        "stop_false_positives": sum(bool(r.get("stop_false_positive")) for r in rows),
        "stop_false_positives_any_atom": sum(bool(r.get("stop_false_positive_any_atom")) for r in rows),
        "stop_false_negatives": sum(bool(r.get("stop_false_negative")) for r in rows),
        "convincing_but_wrong": sum(bool(r.get("convincing")) and not r.get("ml_match") for r in rows),
    } | (_stage_counts(rows) if any("cell_matches" in r for r in rows) else {})


def _stage_counts(rows: list[dict]) -> dict:
    """Blind mode: how many rows got the Bravais lattice, the cell, and the true space group raced and first."""
    keys = ("bravais_matches", "cell_matches", "true_group_raced", "true_group_first")
    return {"stages": {key: sum(bool(r.get(key)) for r in rows) for key in keys}}


def site_bin(n_independent: int) -> str:
    for lo, hi in SITE_BINS:
        if lo <= n_independent <= hi:
            return str(lo) if lo == hi else f"{lo}-{hi}"
    return f"{SITE_BINS[-1][0]}+"


def summary(rows: list[dict]) -> dict:
    """:func:`summarise` per half (tune, report, all), overall, per crystal system and per independent-site bin."""
    result = {}
    for half in ("tune", "report", "all"):
        chosen = [r for r in rows if half == "all" or r.get("half") == half]
        bins = [site_bin(lo) for lo, _ in SITE_BINS]
        result[half] = {
            "overall": summarise(chosen),
            "crystal_system": {
                s: summarise([r for r in chosen if r.get("crystal_system") == s])
                for s in SYSTEMS
                if any(r.get("crystal_system") == s for r in chosen)
            },
            "independent_sites": {
                b: summarise([r for r in chosen if site_bin(r.get("n_independent", 0)) == b])
                for b in bins
                if any(site_bin(r.get("n_independent", 0)) == b for r in chosen)
            },
            "lebail": summarise([r for r in chosen if r.get("lebail")]),
        }
    return result


# ----------------------------------------------------------------------------------------------------------
# Driver


def round_robin(entries: list[dict]) -> list[dict]:
    """``entries`` in the order they are submitted: one of each (source, crystal system) stratum in turn, each
    stratum in its own order, so that a run stopped part-way has measured every class alike."""
    strata: dict[tuple, list[dict]] = {}
    for entry in entries:
        strata.setdefault((entry["source"], entry.get("crystal_system")), []).append(entry)
    queues = list(strata.values())
    ordered = []
    for turn in range(max((len(q) for q in queues), default=0)):
        ordered += [q[turn] for q in queues if turn < len(q)]
    return ordered


def _key(row: dict) -> str:
    return f"{row['source']}|{row['material_id']}"


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(result: dict, path: Path) -> None:
    """Strict JSON (non-finite numbers as null), written atomically."""
    atomic_write(path, json.dumps(_plain(result), indent=1, allow_nan=False) + "\n")


def make_client(workers: int | None, scheduler: str | None):
    """A ``distributed.Client`` on ``scheduler``, or on a new local cluster of single-threaded worker processes."""
    from gasolve.parallel import make_runner

    if scheduler:
        return make_runner(scheduler).client
    return make_runner("local", workers).client  # single-threaded worker processes (gasolve.parallel.WORKER_ENV)


def run_benchmark(
    entries: list[dict],
    *,
    mode: str,
    work: Path,
    budget: int,
    wall_limit: float,
    seed: int,
    run_seed: int = 1,
    json_path: Path | None = None,
    settings: dict | None = None,
    resume: bool = False,
    client=None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool = False,
) -> dict:
    """Run every entry on Dask, judge it, and write the result after every completed structure.

    Returns
    -------
    dict
        ``benchmark``, ``settings``, ``simulation``, ``judging``, ``sessions`` (start, versions and machine of
        each invocation; a resumed run appends one), ``rows`` (one per structure, sample order), ``summary``
        (:func:`summary`).
    """
    from distributed import as_completed

    rows: dict[str, dict] = {}
    settings = {**(settings or {}), "mode": mode, "budget": int(budget), "wall_limit": wall_limit}
    sessions = []
    if resume and json_path is not None and json_path.is_file():
        previous = json.loads(json_path.read_text())
        for key in ("mode", "budget"):
            if previous.get("settings", {}).get(key) != settings[key]:
                raise ValueError(
                    f"--resume: {json_path} was run with {key} {previous.get('settings', {}).get(key)!r}, "
                    f"not {settings[key]!r}; give another --json"
                )
        sessions = previous.get("sessions", [])
        for row in previous.get("rows", []):
            rows[_key(row)] = row
    sessions.append(
        {
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "rows_before": len(rows),
            "versions": provenance.versions("pymatgen", "spglib", "dask", "distributed"),
            "machine": {"platform": platform.platform(), "cpu": provenance.cpu_model(), "cores": os.cpu_count()},
        }
    )
    result = {
        "benchmark": "broad",
        "settings": settings,
        "simulation": {
            "wavelength": "pymatgen WAVELENGTHS CuKa1 (+ CuKa2 at ratio 0.5 for the lebail subset)",
            "b_iso": B_ISO,
            "two_theta_range": TWO_THETA_RANGE,
            "step": STEP,
            "fwhm_range": FWHM_RANGE,
            "eta": ETA,
            "peak_counts": PEAK_COUNTS,
            "background_share": BACKGROUND_SHARE,
            "zero_range": ZERO_RANGE,
            "lebail_every": LEBAIL_EVERY,
        },
        "judging": {"ml": MATCH, "strict": {**MATCH, "scale": False, "max_distance_angstrom": STRICT_TOLERANCE}},
        "sessions": sessions,
    }
    order = {_key(e): i for i, e in enumerate(entries)}

    def save() -> None:
        done = sorted(rows.values(), key=lambda r: order.get(_key(r), len(order)))
        result.update({"rows": done, "summary": summary(done)})
        if json_path is not None:
            write_json(result, json_path)

    todo = round_robin([e for e in entries if _key(e) not in rows])
    if not todo:
        save()
        return result
    own = client is None
    client = client or make_client(workers, scheduler)
    bar = _progress_bar(len(entries), len(entries) - len(todo)) if progress else None
    try:
        from benchmarks import broad  # by reference, so the workers import the module rather than unpickle __main__

        futures = {
            client.submit(
                broad.run_case, e, mode, str(work), budget, wall_limit, seed, run_seed,
                key=f"broad-{_key(e)}-{os.getpid()}", pure=False,
            ): e
            for e in todo
        }  # fmt: skip
        for future in as_completed(futures):
            entry = futures[future]
            try:
                row = future.result()
            except Exception as error:  # a failed task is a row, the others go on
                row = {k: entry[k] for k in ROW_KEYS if k in entry}
                row.update({"mode": mode, "error": f"task failed: {error!r}", "ml_match": False, "strict_match": False})
            rows[_key(row)] = row
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


def _progress_bar(total: int, completed: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]structures"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )  # fmt: skip
    task = bar.add_task("structures", total=total, completed=completed, info="")
    bar.start()
    return bar, task


def _progress_info(rows: list[dict], last: dict) -> str:
    ml = sum(bool(r.get("ml_match")) for r in rows)
    strict = sum(bool(r.get("strict_match")) for r in rows)
    verdict = "error" if last.get("error") else ("right" if last.get("strict_match") else "wrong")
    return f"ML {ml}/{len(rows)}, strict {strict}/{len(rows)}; last {last['material_id']} {last['formula']}: {verdict}"


# ----------------------------------------------------------------------------------------------------------
# Plot


def plot(result: dict, path: Path) -> None:
    """Success per crystal system (ML and strict, report and tune halves) and the wall-time distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gasolve.io.atomic import atomic_writer

    rows = result["rows"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(SYSTEMS))
    for i, (half, criterion, colour) in enumerate(
        (("report", "ml_match", "tab:blue"), ("report", "strict_match", "tab:cyan"),
         ("tune", "ml_match", "tab:orange"), ("tune", "strict_match", "gold"))
    ):  # fmt: skip
        rates, counts = [], []
        for system in SYSTEMS:
            chosen = [r for r in rows if r.get("half") == half and r.get("crystal_system") == system]
            rates.append(sum(bool(r.get(criterion)) for r in chosen) / len(chosen) if chosen else 0.0)
            counts.append(len(chosen))
        label = f"{half}, {'ML' if criterion == 'ml_match' else 'strict 0.3 Å'}"
        left.bar(x + (i - 1.5) * 0.2, rates, 0.2, label=label, color=colour)
    left.set_xticks(x, SYSTEMS, rotation=30, ha="right")
    left.set_ylim(0, 1.05)
    left.set_ylabel("share solved")
    left.legend(fontsize=8, loc="lower left")
    left.set_title(f"{result['settings'].get('mode')} input, {len(rows)} structures")
    walls = [[r["elapsed_seconds"] for r in rows if r.get("crystal_system") == s and r.get("elapsed_seconds")]
             for s in SYSTEMS]  # fmt: skip
    right.boxplot([w if w else [np.nan] for w in walls])
    right.set_xticks(np.arange(1, len(SYSTEMS) + 1), SYSTEMS)
    for i, w in enumerate(walls):
        right.scatter(np.full(len(w), i + 1), w, s=8, color="k", alpha=0.5)
    right.set_yscale("log")
    right.set_ylabel("wall time per structure (s)")
    right.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    with atomic_writer(path) as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------
# CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="structures per source (default 200)")
    parser.add_argument("--source", default="mp", help="comma-separated: mp, aflow, ase-minerals, pyxtal")
    parser.add_argument("--seed", type=int, default=0, help="sampling and pattern seed (default 0)")
    parser.add_argument("--run-seed", type=int, default=1, help="gasolve run --seed (default 1)")
    parser.add_argument("--input", choices=("composition", "sites", "blind"), default="composition")
    parser.add_argument("--max-evaluations", type=float, default=2e6)
    parser.add_argument("--wall-limit", type=float, default=300.0, help="seconds per structure (default 300)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "broad", help="run folders")
    parser.add_argument("--json", type=Path, default=None, help="default benchmarks/results/broad-INPUT.json")
    parser.add_argument("--png", type=Path, default=None, help="default: the JSON's path with .png")
    parser.add_argument("--resume", action="store_true", help="skip the structures already in the JSON")
    parser.add_argument("--plot-only", action="store_true", help="draw the PNG from the JSON and stop")
    parser.add_argument(
        "--half", choices=("tune", "report", "both"), default="both", help="run only one half of the sample"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="run only these structures of the sample: material ids, comma-separated, or @FILE with one per line "
        "(a rerun of chosen cases; the sample, its patterns and halves are unchanged)",
    )
    args = parser.parse_args(argv)
    if args.only is not None:
        text = Path(args.only[1:]).read_text() if args.only.startswith("@") else args.only.replace(",", "\n")
        args.only = [line.strip() for line in text.splitlines() if line.strip()]
    sources = args.source.split(",")
    unknown = [s for s in sources if s != "mp" and s not in CIF_SETS]
    if unknown:
        parser.error(f"--source: unknown {unknown}; known: mp, {', '.join(CIF_SETS)}")
    args.sources = sources
    args.json = args.json or RESULTS / f"broad-{args.input}.json"
    args.png = args.png or args.json.with_suffix(".png")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot_only:
        plot(json.loads(args.json.read_text()), args.png)
        return 0
    t0 = time.perf_counter()
    entries = sample(args.sources, args.n, args.seed)
    if args.half != "both":
        entries = [entry for entry in entries if entry["half"] == args.half]
    if args.only is not None:
        missing = sorted(set(args.only) - {entry["material_id"] for entry in entries})
        if missing:
            print(f"--only: not in the sample: {', '.join(missing)}", file=sys.stderr)
            return 2
        entries = [entry for entry in entries if entry["material_id"] in set(args.only)]
    print(f"{len(entries)} structures sampled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    settings = {"n": args.n, "sources": args.sources, "seed": args.seed, "run_seed": args.run_seed, "half": args.half}
    if args.only is not None:
        settings["only"] = args.only
    result = run_benchmark(
        entries, mode=args.input, work=args.work, budget=int(args.max_evaluations), wall_limit=args.wall_limit,
        seed=args.seed, run_seed=args.run_seed, json_path=args.json, settings=settings, resume=args.resume,
        workers=args.workers, scheduler=args.scheduler, progress=True,
    )  # fmt: skip
    plot(result, args.png)
    overall = result["summary"]["all"]["overall"]
    print(
        f"{overall['n']} structures: ML {overall['ml_solved']}, strict {overall['strict_solved']}, "
        f"errors {overall['errors']}; {args.json}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
