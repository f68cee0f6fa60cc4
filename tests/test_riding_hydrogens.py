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


def test_h_on_wyckoff_positions_no_donor_fits_move_to_the_donors_positions(tmp_path):
    # HoO(OH) (Pnma, Materials Project mp-754283, PBE; tests/data/cif/mp): a composition run of the broad benchmark
    # put its H on 4a, where no O can carry it (the pattern cannot tell H positions apart). Placed by the donors,
    # the H go to 4c, the DFT structure's, the model gets the setup of that site, and the other atoms, refined
    # again beside the placed H, fit better than beside the H on 4a.
    import dataclasses

    from conftest import data_path
    from pymatgen.core import Structure

    from benchmarks.broad import simulate_pattern, write_xye
    from gasolve.config import load_run_config
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.pipeline import place_riding_hydrogens, prepare, with_hydrogen_sites
    from gasolve.refine import Refinement, refine_coordinates

    reference = Structure.from_file(data_path("cif/mp/HoHO2_mp-754283.cif"))
    two_theta, y = simulate_pattern(reference, np.random.default_rng(0), fwhm=0.09)
    write_xye(tmp_path / "pattern.xye", two_theta, y, "HoO(OH) mp-754283: pymatgen CuKa1, pV 0.09, Poisson")
    cell = ", ".join(f"{x:.6f}" for x in reference.lattice.parameters)
    (tmp_path / "run.toml").write_text(
        f"""[structure]
name = "HoOOH"
cell = [{cell}]
space_group = 62
sites = ["Ho", "H", "O", "O"]
wyckoff = ["4c", "4a", "4c", "4c"]

[pattern]
file = "pattern.xye"
wavelength = "CuKa1"
range = [5.0, 80.0]

[pattern.profile]
fwhm = 0.09
eta = 0.5
""",
        encoding="utf-8",
    )
    setup = prepare(load_run_config(tmp_path / "run.toml"))
    group = SpaceGroup.from_symbol(62)

    representatives: dict[str, list[np.ndarray]] = {}  # one atom of each orbit, on 4c (y = 1/4)
    for site in reference:
        x, known = site.frac_coords, representatives.setdefault(site.specie.symbol, [])
        orbit = group.orbit(x, tol=1e-3)
        if abs(x[1] - 0.25) < 1e-3 and not any(
            (np.abs(orbit - r - np.round(orbit - r)) < 1e-3).all(1).any() for r in known
        ):
            known.append(x)
    assert [len(representatives[e]) for e in ("Ho", "H", "O")] == [1, 1, 2]
    frac = np.array([representatives["Ho"][0], [0.0, 0.0, 0.0], *representatives["O"]])
    refined = refine_coordinates(setup.scorer, setup.scorer.project(frac[None])[0])
    best = Refinement(setup.scorer.project(refined.frac[None])[0], refined.rwp_before, refined.rwp_after, 0, 0)

    model_setup, placed, note = place_riding_hydrogens(setup, best)
    assert note.startswith("placed by geometry") and "on 4c" in note, note
    assert model_setup is not setup and model_setup.config.structure.wyckoff == ("4c", "4c", "4c", "4c")
    assert model_setup.config.structure.sites == ("Ho", "H", "O", "O")
    assert placed.frac.shape == (4, 3) and placed.rwp_after < best.rwp_after, (placed.rwp_after, best.rwp_after)
    true_h = np.array([s.frac_coords for s in reference if s.specie.symbol == "H"])
    delta = group.orbit(placed.frac[1], tol=1e-3)[:, None, :] - true_h[None, :, :]
    delta -= np.round(delta)
    distance = np.sqrt(np.einsum("abi,ij,abj->ab", delta, model_setup.config.structure.cell.metric, delta))
    assert distance.min(axis=1).max() < 0.3
    # the setup is the model's: its scorer gives back the Rwp reported
    assert np.isclose(float(model_setup.scorer.rwp(placed.frac[None])[0]), placed.rwp_after)
    assert dataclasses.replace(model_setup.config.structure, wyckoff=None).n_sites == 4
    # one H site replaced by two (CuF2.2H2O's run went the other way: 4i + 4f -> 8j), in the first one's place
    two = with_hydrogen_sites(setup, ("4a", "4b")).config.structure
    assert two.sites == ("Ho", "H", "H", "O", "O") and two.wyckoff == ("4c", "4a", "4b", "4c", "4c")
    assert len(two.b_iso) == 5 and with_hydrogen_sites(setup, ("4a", "4b")).scorer.problem.elements[2] == "H"
