"""A pattern simulated by an independent library (pymatgen, as benchmarks/broad.py does) and a run config for it:
the small real cases several test files build from Materials Project coordinates."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def simulated_config(
    folder: Path,
    name: str,
    space_group: int | str,
    cell: tuple[float, ...],
    sites: list[tuple[str, tuple[float, float, float]]],
    structures: dict[str, str],
    fwhm: float = 0.09,
) -> dict[str, Path]:
    """Simulate the pattern of ``sites`` (element, fractional coordinates of one atom per orbit) and write one
    config per entry of ``structures`` (file stem -> the lines of ``[structure]`` after name, cell and group).

    Returns
    -------
    dict of str to Path
        File stem -> the config written in ``folder`` (beside pattern.xye: pymatgen CuKa1, pseudo-Voigt of
        ``fwhm`` degrees, η 0.5, background, Poisson counts, seed 0).
    """
    sys.path.insert(0, str(REPO))
    from pymatgen.core import Lattice, Structure

    from benchmarks.broad import B_ISO, simulate_pattern, write_xye

    reference = Structure.from_spacegroup(
        space_group, Lattice.from_parameters(*cell), [e for e, _ in sites], [x for _, x in sites]
    )
    two_theta, y = simulate_pattern(reference, np.random.default_rng(0), fwhm=fwhm)
    write_xye(folder / "pattern.xye", two_theta, y, f"{name}: pymatgen CuKa1, pV {fwhm}, Poisson")
    number = reference.get_space_group_info()[1]
    written = {}
    for stem, lines in structures.items():
        path = folder / f"{stem}.toml"
        path.write_text(
            f"""[structure]
name = "{name}"
cell = {list(cell)}
space_group = {number}
b_iso = {B_ISO}
{lines}
[pattern]
file = "pattern.xye"
wavelength = "CuKa1"
range = [5.0, 80.0]

[pattern.profile]
fwhm = {fwhm}
eta = 0.5
""",
            encoding="utf-8",
        )
        written[stem] = path
    return written


def benchmark_pattern(name: str, material_id: str):
    """The pattern benchmarks/indexing.py simulates (seed 0) for the Materials Project structure shipped as
    ``tests/data/cif/mp/{name}_{material_id}.cif``: (pattern, radiation, structure)."""
    import warnings

    from pymatgen.core import Structure

    from benchmarks.indexing import draw_conditions, pattern_rng, simulate
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.io.patterns import ObservedPattern, counting_sigma

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structure = Structure.from_file(REPO / "tests" / "data" / "cif" / "mp" / f"{name}_{material_id}.cif")
    rng = pattern_rng({"material_id": material_id}, 0)
    conditions = draw_conditions(rng)
    two_theta, y = simulate(structure, conditions, rng)
    radiation = parse_radiation("CuKa12" if conditions["doublet"] else "CuKa1")
    return ObservedPattern(two_theta, y, counting_sigma(y), name), radiation, structure


def blind_benchmark_case(name: str, material_id: str, formula: str, lebail: bool, folder: Path):
    """The pattern benchmarks/broad.py writes for its blind mode (seed 0) from the Materials Project structure
    shipped as ``tests/data/cif/mp/{name}_{material_id}.cif``: (pattern path, the benchmark's entry)."""
    import warnings

    sys.path.insert(0, str(REPO))
    from benchmarks.broad import prepare_case

    reference = (REPO / "tests" / "data" / "cif" / "mp" / f"{name}_{material_id}.cif").read_text()
    entry = {"material_id": material_id, "formula": formula, "lebail": lebail, "reference_cif": reference}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prepare_case(entry, "blind", folder, seed=0), entry
