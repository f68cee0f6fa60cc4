"""H atoms placed by geometry at the end of a run (pipeline.place_riding_hydrogens), judged from best.cif, and kept
riding on their donors by the final Rietveld refinement (refined.cif, summary.json)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _brucite_case(folder: Path) -> tuple[Path, Path]:
    """Brucite Mg(OH)2 (P-3m1, Materials Project mp-30247, PBE): pymatgen pattern, reference CIF, composition config."""
    sys.path.insert(0, str(REPO))
    from pymatgen.core import Lattice, Structure

    from benchmarks.broad import simulate_pattern, write_xye

    reference = Structure.from_spacegroup(
        "P-3m1", Lattice.hexagonal(3.1859, 4.7816), ["Mg", "O", "H"],
        [[0, 0, 0], [2 / 3, 1 / 3, 0.7818], [1 / 3, 2 / 3, 0.4213]],
    )  # fmt: skip
    two_theta, y = simulate_pattern(reference, np.random.default_rng(0), fwhm=0.09)
    folder.mkdir(parents=True, exist_ok=True)
    write_xye(folder / "pattern.xye", two_theta, y, "brucite: pymatgen XRDCalculator CuKa1, pV 0.09, Poisson")
    reference.to(filename=str(folder / "reference.cif"))
    config = folder / "run.toml"
    config.write_text(
        """[structure]
name = "brucite"
cell = [3.1859, 3.1859, 4.7816, 90.0, 90.0, 120.0]
space_group = "P-3m1"
composition = "Mg(OH)2"

[pattern]
file = "pattern.xye"
wavelength = "CuKa1"
range = [5.0, 80.0]

[pattern.profile]
fwhm = 0.09
eta = 0.5

[ga]
max_evaluations = 60000
""",
        encoding="utf-8",
    )
    return config, folder / "reference.cif"


def test_a_solved_hydroxide_gets_its_h_on_the_donor_in_best_cif(tmp_path):
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.core import Structure

    from gasolve.cli.main import main

    config, reference_cif = _brucite_case(tmp_path / "case")
    out = tmp_path / "run"
    arguments = ["run", str(config), "--out", str(out), "--quiet", "--scheduler", "synchronous", "--seed", "3"]
    assert main([*arguments, "--rietveld"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["hydrogen_placement"].startswith("placed by geometry")
    assert any("were placed by geometry" in advice for advice in summary["what_to_try"])
    model, reference = Structure.from_file(str(out / "best.cif")), Structure.from_file(str(reference_cif))
    rms = StructureMatcher(ltol=0.3, stol=0.5, angle_tol=10, scale=False).get_rms_dist(reference, model)
    assert rms is not None
    largest = rms[1] * (reference.volume / len(reference)) ** (1 / 3)  # Å
    assert largest < 0.3, largest
    h = [site for site in model if site.specie.symbol == "H"]
    o = [site for site in model if site.specie.symbol == "O"]
    assert len(h) == 2 and math.isclose(min(h[0].distance(x) for x in o), 0.97, abs_tol=0.02)
    # best.cif flags the placed H as calculated and gives them no esd (they were not refined)
    import gemmi

    best = gemmi.cif.read(str(out / "best.cif")).sole_block()
    flags = {row[0]: list(row) for row in best.find("_atom_site_", ["label", "fract_z", "calc_flag"])}
    assert flags["H1"][2] == "calc" and "(" not in flags["H1"][1]
    assert flags["O1"][2] == "d" and "(" in flags["O1"][1]
    # the final Rietveld refinement keeps them riding on their O: O-H as placed, Uiso 1.5 times O's, no esds
    (record,) = summary["rietveld"]["hydrogens"]
    assert record["status"] == "riding" and record["parent"] == "O1" and record["u_ratio"] == 1.5
    assert math.isclose(record["distance"], 0.97, abs_tol=1e-6)

    block = gemmi.cif.read(str(out / "refined.cif")).sole_block()
    rows = {row[0]: list(row) for row in block.find("_atom_site_", ["label", "U_iso_or_equiv", "calc_flag"])}
    assert rows["H1"][2] == "calc" and "(" not in rows["H1"][1]
    sites = {site["label"]: site for site in json.loads((out / "refinement.json").read_text())["sites"]}
    assert math.isclose(sites["H1"]["b_iso"], 1.5 * sites["O1"]["b_iso"], rel_tol=1e-12)
    assert math.isclose(float(rows["H1"][1]), sites["H1"]["b_iso"] / (8 * math.pi**2), abs_tol=1e-5)
