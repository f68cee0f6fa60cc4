"""The refined model as files: CIF with esds and the powder figures of merit, and a JSON summary.

CIF items: the cell and its esds, coordinates and U_iso with esds in the IUCr notation 0.18820(12), and the
powder refinement items of the pdCIF dictionary (_pd_proc_ls_prof_R_factor = Rp, _pd_proc_ls_prof_wR_factor =
Rwp, _pd_proc_ls_prof_wR_expected = Rexp, _refine_ls_goodness_of_fit_all = sqrt(χ²), _refine_ls_R_I_factor =
R_Bragg).
"""

from __future__ import annotations

import math

import gemmi
import numpy as np

from gasolve.crystal.cif_io import COORDINATE_DECIMALS, add_cell_and_symmetry, with_esd
from gasolve.crystal.structure import U_TO_B
from gasolve.rietveld.staged import RefinementResult


def format_refined_cif(result: RefinementResult, comments: list[str] | None = None) -> str:
    """CIF text of a refinement result (module docstring)."""
    structure = result.structure
    document = gemmi.cif.Document()
    block = document.add_new_block(gemmi.cif.quote(structure.name.replace(" ", "_")) or "refined")
    cell_values = [
        with_esd(value, float(esd)) for value, esd in zip(structure.cell.parameters, result.cell_esd, strict=True)
    ]
    add_cell_and_symmetry(block, structure, cell_values)
    atoms = block.init_loop(
        "_atom_site_",
        ["label", "type_symbol", "fract_x", "fract_y", "fract_z", "occupancy", "U_iso_or_equiv", "adp_type"],
    )
    for i, site in enumerate(structure.sites):
        coordinates = [
            with_esd(x, float(e), min_decimals=COORDINATE_DECIMALS)
            for x, e in zip(site.frac, result.coordinate_esd[i], strict=True)
        ]
        u_iso = with_esd(site.b_iso / U_TO_B, float(result.b_esd[i]) / U_TO_B, decimals_plain=5)
        atoms.add_row([gemmi.cif.quote(site.label), site.element, *coordinates, f"{site.occupancy:.4f}", u_iso, "Uiso"])
    m = result.metrics
    block.set_pair("_pd_proc_ls_prof_R_factor", f"{m.rp:.5f}")
    block.set_pair("_pd_proc_ls_prof_wR_factor", f"{m.rwp:.5f}")
    block.set_pair("_pd_proc_ls_prof_wR_expected", f"{m.rexp:.5f}")
    block.set_pair("_refine_ls_goodness_of_fit_all", f"{math.sqrt(m.chi2):.4f}")
    block.set_pair("_refine_ls_R_I_factor", f"{result.r_bragg:.5f}")
    block.set_pair("_refine_ls_number_parameters", str(m.n_parameters))
    block.set_pair("_pd_proc_number_of_points", str(m.n_points))
    header = "".join(f"# {line}\n" for line in (comments or []))
    return header + document.as_string()


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def refinement_summary(result: RefinementResult) -> dict:
    """The JSON summary: figures of merit, every refined parameter with its esd, cell, sites, correlations."""
    m = result.metrics
    unc = result.uncertainties
    structure = result.structure
    return {
        "figures_of_merit": {
            "rwp": m.rwp,
            "rp": m.rp,
            "rexp": m.rexp,
            "chi2": m.chi2,
            "r_bragg": result.r_bragg,
            "n_points": m.n_points,
            "n_parameters": m.n_parameters,
        },
        "cell": list(structure.cell.parameters),
        "cell_esd": [float(e) for e in result.cell_esd],
        "parameters": [
            {"name": n, "value": float(v), "esd": _finite(e)}
            for n, v, e in zip(unc.names, unc.values, unc.esd, strict=True)
        ],
        "sites": [
            {
                "label": site.label,
                "element": site.element,
                "frac": list(site.frac),
                "frac_esd": [_finite(e) for e in result.coordinate_esd[i]],
                "b_iso": site.b_iso,
                "b_iso_esd": _finite(result.b_esd[i]),
            }
            for i, site in enumerate(structure.sites)
        ],
        "correlations_above_0.9": [{"a": a, "b": b, "correlation": c} for a, b, c in unc.high_correlations],
        "stages": [
            {"name": s.name, "rwp": s.rwp, "iterations": s.iterations, "converged": s.converged} for s in result.stages
        ],
        "error": result.error,
    }
