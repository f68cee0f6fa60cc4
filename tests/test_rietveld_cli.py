"""`gasolve refine CONFIG.toml MODEL.cif`: refined.cif read back by gemmi (values and esds), refinement.json
by a strict JSON parser; bad input exits 2."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import gemmi
import numpy as np
from conftest import cif_esd

from gasolve.cli.main import main
from gasolve.config import profile_table
from gasolve.crystal.cif_io import read_cif, write_cif
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.simulate import simulate
from gasolve.diffraction.wavelength import Radiation
from gasolve.io.patterns import write_xye
from gasolve.io.toml_file import toml_text
from tests.conftest import shared_path

PROFILE = PeakProfile(caglioti=(0.01, -0.005, 0.004), eta=0.4, eta_slope=0.002, zero=0.02)


def _strict(text: str):
    def reject(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def test_refine_writes_cif_with_esds_and_strict_json(tmp_path):
    truth = read_cif(shared_path("measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif"))
    truth = replace(truth, sites=tuple(replace(s, b_iso=1.0) for s in truth.sites))
    two_theta = np.arange(15.0, 60.0, 0.02)
    sim = simulate(truth, two_theta, Radiation(((1.5406, 1.0),), "CuKa1"), PROFILE, np.array([80.0, -5.0]))
    rng = np.random.default_rng(3)
    y = rng.poisson(3e-3 * sim.peaks + sim.background).astype(float)
    write_xye(tmp_path / "sim.xye", two_theta, y, np.sqrt(np.maximum(y, 1.0)))
    start = truth.with_frac(truth.frac + np.array([[0.004, 0, -0.003]] * 4 + [[0.003, 0.004, -0.002]]))
    write_cif(start, tmp_path / "start.cif")
    config = {
        "structure": {"name": "PbSO4", "cell": list(truth.cell.parameters), "space_group": "Pnma", "sites": ["Pb"]},
        "pattern": {
            "file": "sim.xye",
            "wavelength": 1.5406,
            "background": {"terms": 3},
            "profile": profile_table(PROFILE),
        },
        # simulate() has neutral atoms and no f', f'': refine the same model (with them, χ² is 1.47 here)
        "refinement": {"anomalous_dispersion": False},
        "output": {"dir": "out"},
    }
    (tmp_path / "run.toml").write_text(toml_text(config, []), encoding="utf-8")
    code = main(["refine", str(tmp_path / "run.toml"), str(tmp_path / "start.cif"), "--out", str(tmp_path / "out")])
    assert code == 0
    summary = _strict((tmp_path / "out" / "refinement.json").read_text())
    fom = summary["figures_of_merit"]
    assert fom["rwp"] < 0.05 and 0.8 < fom["chi2"] < 1.3 and 0 <= fom["r_bragg"] < 0.05

    block = gemmi.cif.read(str(tmp_path / "out" / "refined.cif")).sole_block()
    a, a_esd = cif_esd(block.find_value("_cell_length_a"))
    assert 0 < a_esd < 1e-3 and abs(a - truth.cell.a) < 4 * a_esd
    assert math.isclose(float(block.find_value("_pd_proc_ls_prof_wR_factor")), fom["rwp"], abs_tol=1e-5)
    assert math.isclose(float(block.find_value("_refine_ls_R_I_factor")), fom["r_bragg"], abs_tol=1e-5)
    table = block.find("_atom_site_", ["label", "fract_x", "fract_y", "fract_z", "U_iso_or_equiv"])
    assert len(table) == 5
    for row, site, record in zip(table, truth.sites, summary["sites"], strict=True):
        for axis in range(3):
            value, esd = cif_esd(row[1 + axis])
            assert math.isclose(value, record["frac"][axis], abs_tol=1e-5)
            delta = (value - site.frac[axis] + 0.5) % 1.0 - 0.5
            if esd == 0:  # fixed by the mirror
                assert abs(delta) < 1e-9
            else:
                assert abs(delta) < 4 * esd
        u, u_esd = cif_esd(row[4])
        assert u_esd > 0 and abs(u - 1.0 / (8 * math.pi**2)) < 4 * u_esd + 1e-5
    # gemmi's small-structure reader takes the esd notation too
    small = gemmi.read_small_structure(str(tmp_path / "out" / "refined.cif"))
    assert len(small.sites) == 5 and abs(small.cell.a - a) < 1e-9


def test_refine_bad_model_exits_2(tmp_path, capsys):
    (tmp_path / "bad.cif").write_text("data_x\n_cell_length_a 3\n", encoding="utf-8")
    config = tmp_path / "run.toml"
    config.write_text("[structure]\n", encoding="utf-8")
    assert main(["refine", str(config), str(tmp_path / "bad.cif")]) == 2
    assert "error" in capsys.readouterr().err


def _simulated_run(tmp_path, refinement: dict) -> tuple[list[str], object]:
    truth = read_cif(shared_path("measured/PbSO4-lab-CuKa/PBSO4X_refined_phase1.cif"))
    two_theta = np.arange(15.0, 50.0, 0.02)
    sim = simulate(truth, two_theta, Radiation(((1.5406, 1.0),), "CuKa1"), PROFILE, np.array([80.0, -5.0]))
    y = np.random.default_rng(4).poisson(3e-3 * sim.peaks + sim.background).astype(float)
    write_xye(tmp_path / "sim.xye", two_theta, y, np.sqrt(np.maximum(y, 1.0)))
    write_cif(truth, tmp_path / "start.cif")
    config = {
        "structure": {"name": "PbSO4", "cell": list(truth.cell.parameters), "space_group": "Pnma", "sites": ["Pb"]},
        "pattern": {
            "file": "sim.xye",
            "wavelength": 1.5406,
            "background": {"terms": 3},
            "profile": profile_table(PROFILE),
        },
        "refinement": refinement,
    }
    (tmp_path / "run.toml").write_text(toml_text(config, []), encoding="utf-8")
    return ["refine", str(tmp_path / "run.toml"), str(tmp_path / "start.cif"), "--out", str(tmp_path / "out")], truth


def test_refine_honours_the_refinement_table_and_writes_the_report(tmp_path, capsys):
    import matplotlib.image

    refinement = {
        "cell": False,
        "zero": False,
        "profile": False,
        "b_iso": "element",
        "preferred_orientation": "off",
        "restraints": [{"atoms": ["S2", "O3"], "distance": 1.40, "sigma": 0.02}],
    }
    args, truth = _simulated_run(tmp_path, refinement)
    assert main(args) == 0
    out = tmp_path / "out"
    summary = _strict((out / "refinement.json").read_text())
    names = [p["name"] for p in summary["parameters"]]
    assert {"B(Pb)", "B(S)", "B(O)"} <= set(names)
    assert not any(n.startswith(("metric", "U", "zero", "r_PO")) for n in names)
    assert summary["preferred_orientation"] is None
    (restraint,) = summary["restraints"]
    assert restraint["name"] == "distance(S2-O3)" and restraint["target"] == 1.40
    assert math.isclose(restraint["chi2"], ((restraint["value"] - 1.40) / 0.02) ** 2, rel_tol=1e-9)
    assert summary["restraints_chi2"] == restraint["chi2"] > 0
    # the cell stays the model's (not refined): the CIF writes it without esd
    block = gemmi.cif.read(str(out / "refined.cif")).sole_block()
    assert float(block.find_value("_cell_length_a")) == truth.cell.a
    assert block.find_value("_refine_ls_number_restraints") == "1"
    text = (out / "refinement.txt").read_text()
    assert "distance(S2-O3)" in text and "B(O)" in text
    for name in ("rietveld.png", "refinement_progress.png"):
        image = matplotlib.image.imread(out / name)
        assert image.shape[0] > 300 and image.shape[1] > 500
    stages = summary["stages"]
    assert all(s["rwp_history"][-1] == s["rwp"] for s in stages)
    assert stages[-1]["rwp"] <= stages[0]["rwp"]
    assert stages[0]["name"] == "scale/background" and stages[-1]["name"] == "all"
    assert "distance(S2-O3)" in capsys.readouterr().out


def test_refine_bad_refinement_key_exits_2(tmp_path, capsys):
    args, _ = _simulated_run(tmp_path, {"preferred_orientation": [0, 0, 0]})
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "run.toml" in err and "[refinement] preferred_orientation" in err and "lattice direction" in err
    args, _ = _simulated_run(tmp_path, {"coordinate": True})
    assert main(args) == 2
    assert "[refinement] coordinate: unknown key" in capsys.readouterr().err
    args, _ = _simulated_run(tmp_path, {"restraints": [{"atoms": ["S2", "O9"], "distance": 1.5, "sigma": 0.01}]})
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "run.toml" in err and "O9" in err and "restraints" in err
    assert not (tmp_path / "out" / "refined.cif").exists()


def test_refine_ion_without_a_form_factor_exits_2_naming_file_and_site(tmp_path, capsys):
    arguments, _ = _simulated_run(tmp_path, {})
    model = tmp_path / "start.cif"
    text = model.read_text(encoding="utf-8")
    model.write_text(text.replace("S2 S ", "S2 S6+ "), encoding="utf-8")  # the Waasmaier-Kirfel table has no S6+
    assert read_cif(model).sites[1].charge == 6
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert "start.cif: site S2" in err and "S6+" in err
    assert not (tmp_path / "out" / "refined.cif").exists()
