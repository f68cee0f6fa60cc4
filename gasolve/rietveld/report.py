"""The refined model as files: CIF with esds and the powder figures of merit, and a JSON summary.

CIF items: the cell and its esds, coordinates and U_iso with esds in the IUCr notation 0.18820(12), and the
powder refinement items of the pdCIF dictionary (_pd_proc_ls_prof_R_factor = Rp, _pd_proc_ls_prof_wR_factor =
Rwp, _pd_proc_ls_prof_wR_expected = Rexp, _refine_ls_goodness_of_fit_all = sqrt(χ²), _refine_ls_R_I_factor =
R_Bragg, _pd_proc_ls_pref_orient_corr = the March-Dollase direction and r, _refine_ls_number_restraints;
_exptl_absorpt_correction_type cylinder or none, and the specimen corrections with their parameters and esds in
_pd_proc_ls_special_details), and the
atom types with the source of their form factors (_atom_type_scat_source) and the anomalous dispersion used
(_atom_type_scat_dispersion_real, _imag, _source). A charged site's _atom_site_type_symbol keeps its charge (Ca2+).
H sites say how they were refined (:mod:`gasolve.rietveld.riding`), as SHELXL writes them: a riding H has
_atom_site_calc_flag ``calc``, _atom_site_refinement_flags_posn ``R``, _atom_site_calc_attached_atom its parent,
and coordinates and Uiso without esds; an H held fixed ``calc`` and ``.``; every other site ``d`` (determined).
A site refined anisotropically (:mod:`gasolve.rietveld.adp`) has _atom_site_adp_type ``Uani``,
_atom_site_U_iso_or_equiv its Ueq with esd, and a row of the _atom_site_aniso_ loop (U_11 ... U_23 with esds, CIF
convention); a U that is not positive definite is named in a comment line of the file, in the text report and in
the JSON summary (``non_positive_definite``).
The text report (:func:`parameter_table`) lists every refined parameter with its esd, the correlations above
0.9, the restraints and their χ², and the stages.
"""

from __future__ import annotations

import math

import gemmi
import numpy as np

from gasolve.crystal.cif_io import COORDINATE_DECIMALS, add_cell_and_symmetry, with_esd
from gasolve.crystal.structure import U_TO_B
from gasolve.diffraction import dispersion
from gasolve.diffraction.form_factors import species_name
from gasolve.diffraction.profile import peak_positions
from gasolve.diffraction.wavelength import Radiation
from gasolve.rietveld.riding import describe
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
        [
            "label",
            "type_symbol",
            "fract_x",
            "fract_y",
            "fract_z",
            "occupancy",
            "U_iso_or_equiv",
            "adp_type",
            "calc_flag",
            "refinement_flags_posn",
            "calc_attached_atom",
        ],
    )
    riders = {rider.site: rider for rider in result.hydrogens}
    aniso = list(result.model.aniso_sites)
    for i, site in enumerate(structure.sites):
        coordinates = [
            with_esd(x, float(e), min_decimals=COORDINATE_DECIMALS)
            for x, e in zip(site.frac, result.coordinate_esd[i], strict=True)
        ]
        u_iso = with_esd(site.b_iso / U_TO_B, float(result.b_esd[i]) / U_TO_B, decimals_plain=5)
        species = species_name(site.element, site.charge)
        flags = _calc_flags(riders.get(i), structure)
        adp_type = "Uani" if i in aniso else "Uiso"
        row = [gemmi.cif.quote(site.label), species, *coordinates, f"{site.occupancy:.4f}", u_iso, adp_type, *flags]
        atoms.add_row(row)
    if aniso:
        loop = block.init_loop("_atom_site_aniso_", ["label", "U_11", "U_22", "U_33", "U_12", "U_13", "U_23"])
        for i in aniso:
            values = [
                with_esd(float(u) + 0.0, float(e), decimals_plain=5, min_decimals=5)
                for u, e in zip(result.u_aniso[i], result.u_aniso_esd[i], strict=True)
            ]
            loop.add_row([gemmi.cif.quote(structure.sites[i].label), *values])
    _add_atom_types(block, result)
    m = result.metrics
    block.set_pair("_pd_proc_ls_prof_R_factor", f"{m.rp:.5f}")
    block.set_pair("_pd_proc_ls_prof_wR_factor", f"{m.rwp:.5f}")
    block.set_pair("_pd_proc_ls_prof_wR_expected", f"{m.rexp:.5f}")
    block.set_pair("_refine_ls_goodness_of_fit_all", f"{math.sqrt(m.chi2):.4f}")
    block.set_pair("_refine_ls_R_I_factor", f"{result.r_bragg:.5f}")
    block.set_pair("_refine_ls_number_parameters", str(m.n_parameters))
    block.set_pair("_refine_ls_number_restraints", str(len(result.restraints)))
    po = preferred_orientation(result)
    text = "none"
    if po is not None:
        text = f"March-Dollase along [{' '.join(map(str, po['direction']))}], r = {with_esd(po['r'], po['esd'])}"
    block.set_pair("_pd_proc_ls_pref_orient_corr", gemmi.cif.quote(text))
    corrections = specimen_corrections(result)
    absorption = next((c for c in corrections if c["group"] == "absorption"), None)
    block.set_pair("_exptl_absorpt_correction_type", "cylinder" if absorption else "none")
    if corrections:
        block.set_pair("_pd_proc_ls_special_details", gemmi.cif.quote(_corrections_text(corrections)))
    block.set_pair("_pd_proc_ls_profile_function", gemmi.cif.quote(profile_description(result.profile)))
    block.set_pair("_pd_proc_number_of_points", str(m.n_points))
    if result.phases:
        percent = with_esd(100.0 * result.weight_fraction, 100.0 * result.weight_fraction_esd)
        block.set_pair("_pd_phase_mass_%", percent)
    notes = list(comments or []) + [f"further phase {line}" for line in _phase_lines(result)]
    notes += [non_positive_definite_warning(result)] * bool(result.non_positive_definite)
    header = "".join(f"# {line}\n" for line in notes)
    return header + document.as_string()


def profile_description(profile) -> str:
    """The peak shape and its refined parameters in words (``_pd_proc_ls_profile_function``)."""
    u, v, w = profile.caglioti
    if profile.tch:
        x, y = profile.lorentzian
        text = (
            f"Thompson-Cox-Hastings pseudo-Voigt: Gaussian FWHM^2 = U tan^2(theta) + V tan(theta) + W, U {u:.6g} "
            f"V {v:.6g} W {w:.6g} deg^2; Lorentzian FWHM = X/cos(theta) + Y tan(theta), X {x:.6g} Y {y:.6g} deg"
        )
    else:
        text = (
            f"pseudo-Voigt of one width: FWHM^2 = U tan^2(theta) + V tan(theta) + W, U {u:.6g} V {v:.6g} W {w:.6g} "
            f"deg^2; eta = {profile.eta:.5g} + {profile.eta_slope:.5g} * 2theta"
        )
    if profile.axial:
        text += f"; Finger-Cox-Jephcoat axial divergence S/L = H/L = {profile.axial:.5g}"
    elif any(profile.asymmetry):
        text += "; Berar-Baldinozzi asymmetry " + " ".join(f"{a:.5g}" for a in profile.asymmetry)
    return text + f"; zero {profile.zero:.5g} deg"


def _phase_lines(result: RefinementResult) -> list[str]:
    """One line per further phase: name, weight % and cell with esds."""
    out = []
    for phase in result.phases:
        cell = " ".join(with_esd(v, float(e)) for v, e in zip(phase.cell, phase.cell_esd, strict=True))
        percent = with_esd(100.0 * phase.weight_fraction, 100.0 * phase.weight_fraction_esd)
        scale = with_esd(phase.scale, phase.scale_esd)
        line = f"{phase.name}: {percent} wt% (Hill-Howard), scale {scale}, cell {cell}"
        if phase.b_iso or phase.lorentzian:
            line += ", " + ", ".join(f"{n} {with_esd(v, e)}" for n, v, e in phase.b_iso + phase.lorentzian)
        if phase.scale < 0:
            line += " (a negative scale: the pattern does not show this phase)"
        out.append(line)
    return out


def phase_records(result: RefinementResult) -> list[dict]:
    """The further phases for the JSON summary (:mod:`gasolve.rietveld.phases`)."""
    sources = {p.name: p.source for p in result.model.phases}
    return [
        {
            "name": p.name,
            "source": sources[p.name],
            "scale": p.scale,
            "scale_esd": _finite(p.scale_esd),
            "cell": list(p.cell),
            "cell_esd": [float(e) for e in p.cell_esd],
            "weight_fraction": _finite(p.weight_fraction),
            "weight_fraction_esd": _finite(p.weight_fraction_esd),
            "b_iso": [{"name": n, "value": v, "esd": _finite(e)} for n, v, e in p.b_iso],
            "lorentzian": [{"name": n, "value": v, "esd": _finite(e)} for n, v, e in p.lorentzian],
        }
        for p in result.phases
    ]


def non_positive_definite_warning(result: RefinementResult) -> str:
    """One line naming the sites whose refined U is not positive definite."""
    labels = ", ".join(result.non_positive_definite)
    return f"warning: the refined U of {labels} is not positive definite (a principal value <= 0): not physical"


def anisotropic_records(result: RefinementResult) -> list[dict]:
    """Each anisotropic site: label, U (U11, U22, U33, U12, U13, U23, Å², CIF convention) and esds, Ueq and its
    esd, the principal values of the Cartesian tensor (Å², ascending) and whether they are all positive."""
    from gasolve.rietveld.adp import principal_values

    structure = result.structure
    records = []
    for i in result.model.aniso_sites:
        site = structure.sites[i]
        u = result.u_aniso[i]
        eigen = principal_values(u, structure.cell)
        records.append(
            {
                "label": site.label,
                "u": [float(v) for v in u],
                "u_esd": [_finite(e) for e in result.u_aniso_esd[i]],
                "u_eq": float(eigen.sum() / 3.0),  # a third of the trace: Ueq, also when negative
                "u_eq_esd": _finite(result.b_esd[i] / U_TO_B),
                "principal_values": [float(v) for v in eigen],
                "positive_definite": bool(site.label not in result.non_positive_definite),
            }
        )
    return records


def _calc_flags(rider, structure) -> list[str]:
    """_atom_site_calc_flag, _refinement_flags_posn and _calc_attached_atom of a site (module docstring)."""
    if rider is None or rider.status == "free":
        return ["d", ".", "."]
    parent = "." if rider.parent is None else gemmi.cif.quote(structure.sites[rider.parent].label)
    return ["calc", "R" if rider.rides else ".", parent]


def hydrogen_records(result: RefinementResult) -> list[dict]:
    """How each H site was refined, for the JSON summaries: label, status ("riding", "fixed", "free"), parent,
    H-parent distance (Å, on the refined model), Uiso(H)/Ueq(parent) (None when not constrained) and the reason
    for an H not riding."""
    structure = result.structure
    records = []
    for rider in result.hydrogens:
        site = structure.sites[rider.site]
        parent = None if rider.parent is None else structure.sites[rider.parent]
        distance = None
        if parent is not None:
            image = rider.rotation @ np.array(parent.frac) + rider.translation
            delta = np.array(site.frac) - image
            distance = float(structure.cell.distance(delta - np.round(delta), np.zeros(3)))
        records.append(
            {
                "label": site.label,
                "status": rider.status,
                "parent": None if parent is None else parent.label,
                "distance": distance,
                "u_ratio": rider.u_ratio if rider.b_constrained else None,
                "reason": rider.reason or None,
            }
        )
    return records


#: _atom_type_scat_source of a neutral atom and of an ion (:mod:`gasolve.diffraction.form_factors`).
F0_SOURCE_ATOM = "International Tables Vol. C (1992) Table 6.1.1.4 (gemmi)"
F0_SOURCE_ION = "Waasmaier & Kirfel (1995) Acta Cryst. A51, 416 (xraydb)"


def atom_types(result: RefinementResult) -> list[dict]:
    """One entry per distinct species of the model: symbol ('Ca2+'), f0 source, f' and f'' (electrons, None when
    anomalous dispersion was off)."""
    model = result.model
    types: dict[str, dict] = {}
    for site in result.structure.sites:
        symbol = species_name(site.element, site.charge)
        if symbol in types:
            continue
        f1, f2 = model.dispersion.of(site.element) if model.dispersion is not None else (None, None)
        types[symbol] = {
            "symbol": symbol,
            "scat_source": F0_SOURCE_ION if site.charge else F0_SOURCE_ATOM,
            "dispersion_real": f1,
            "dispersion_imag": f2,
        }
    return list(types.values())


def _add_atom_types(block: gemmi.cif.Block, result: RefinementResult) -> None:
    """The _atom_type_ loop: form-factor source and, when used, anomalous dispersion with its source."""
    with_dispersion = result.model.dispersion is not None
    columns = ["symbol", "scat_source"]
    if with_dispersion:
        columns += ["scat_dispersion_real", "scat_dispersion_imag", "scat_dispersion_source"]
    loop = block.init_loop("_atom_type_", columns)
    for entry in atom_types(result):
        row = [entry["symbol"], gemmi.cif.quote(entry["scat_source"])]
        if with_dispersion:
            row += [f"{entry['dispersion_real']:.4f}", f"{entry['dispersion_imag']:.4f}"]
            row.append(gemmi.cif.quote(f"{dispersion.SOURCE}, {_radiation_text(result.model.radiation)}"))
        loop.add_row(row)


def _radiation_text(radiation: Radiation) -> str:
    """The radiation as the dispersion source names it: its name, and for several lines how they were combined."""
    if len(radiation.lines) == 1:
        return f"{radiation.name} ({radiation.primary:.6f} A)"
    return f"{radiation.name}, intensity-weighted mean over its {len(radiation.lines)} lines"


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def preferred_orientation(result: RefinementResult) -> dict | None:
    """Direction, r and its esd of the refined March-Dollase correction; None without one."""
    unc = result.uncertainties
    if result.po_direction is None or "r_PO" not in unc.names:
        return None
    k = unc.names.index("r_PO")
    return {"direction": list(result.po_direction), "r": float(unc.values[k]), "esd": _finite(unc.esd[k])}


#: What each specimen correction is, for the reports (:mod:`gasolve.rietveld.corrections`).
CORRECTION_SOURCES = {
    "suortti": "surface roughness, Suortti (1972) J. Appl. Cryst. 5, 325 (p, q as GSAS-II's SRA, SRB)",
    "pitschke": (
        "surface roughness, Pitschke, Hermann & Mattern (1993) Powder Diffr. 8, 74 (1 - c u(1 - u), u = tau/sin(theta))"
    ),
    "cylinder": "cylinder absorption, transmission factor by quadrature over the cross-section (mu R)",
}


def specimen_corrections(result: RefinementResult) -> list[dict]:
    """Each specimen correction of the model: kind, group, source, refined (bool) and its parameters with esds
    (None for a parameter held or without effect)."""
    model = result.model
    unc = result.uncertainties
    out = []
    for correction in model.corrections:
        parameters = []
        for name in correction.names:
            value = float(result.x[model.layout.index(name)])
            esd = _finite(unc.esd[unc.names.index(name)]) if name in unc.names else None
            parameters.append({"name": name, "value": value, "esd": esd})
        out.append(
            {
                "kind": correction.kind,
                "group": correction.group,
                "source": CORRECTION_SOURCES[correction.kind],
                "refined": any(p["name"] in unc.names for p in parameters),
                "parameters": parameters,
            }
        )
    return out


def _corrections_text(corrections: list[dict]) -> str:
    """One line per correction: its source and parameters with esds (held ones marked)."""
    lines = []
    for c in corrections:
        values = []
        for p in c["parameters"]:
            shown = with_esd(p["value"], p["esd"]) if p["esd"] else f"{p['value']:.5g}"
            values.append(f"{p['name']} = {shown}")
        lines.append(f"{c['source']}: {', '.join(values)}" + ("" if c["refined"] else " (held)"))
    return "; ".join(lines)


def reflection_ticks(result: RefinementResult, radiation: Radiation) -> list[tuple[str, np.ndarray]]:
    """Peak positions (2θ, degrees) of the refined reflections, one row per emission line, for the Rietveld plot."""
    reflections = result.model.reflections(result.x)
    model = result.model
    prefix = f"{result.structure.name or 'main phase'} " if model.phases else ""
    rows = [(f"{prefix}λ={w:.5f}", peak_positions(reflections, w, result.profile)) for w, _ in radiation.lines]
    for k, phase in enumerate(model.phases):  # the further phases at the first line's wavelength
        own = model.further.models[k].reflections(model.further.vector(result.x, k))
        rows.append((phase.name, peak_positions(own, radiation.lines[0][0], result.profile)))
    return rows


def parameter_table(result: RefinementResult) -> str:
    """Plain-text report: figures of merit, stages, every refined parameter with its esd, correlations above 0.9
    and the restraints."""
    m = result.metrics
    unc = result.uncertainties
    lines = [
        f"Rwp {m.rwp:.5f}  Rp {m.rp:.5f}  Rexp {m.rexp:.5f}  chi2 {m.chi2:.4f}  R_Bragg {result.r_bragg:.5f}  "
        f"({m.n_points} points, {m.n_parameters} parameters, {len(result.restraints)} restraints)",
        "",
        "stage                      Rwp      cycles  converged",
    ]
    for stage in result.stages:
        lines.append(f"{stage.name:<24} {stage.rwp:9.5f}  {stage.iterations:6d}  {stage.converged}")
        if stage.note:
            lines.append(f"    {stage.note}")
    lines += ["", "parameter            value            esd"]
    for name, value, esd in zip(unc.names, unc.values, unc.esd, strict=True):
        lines.append(f"{name:<16} {value:>16.8g} {esd:>14.3g}   {with_esd(float(value), float(esd))}")
    cell = result.structure.cell.parameters
    lines.append("cell  " + "  ".join(with_esd(v, float(e)) for v, e in zip(cell, result.cell_esd, strict=True)))
    po = preferred_orientation(result)
    if po is not None:
        lines.append(
            f"preferred orientation: March-Dollase along {po['direction']}, r = {with_esd(po['r'], po['esd'])}"
        )
    for line in _corrections_text(specimen_corrections(result)).split("; ") if result.model.corrections else []:
        lines.append(f"specimen correction: {line}")
    if result.phases:
        percent = with_esd(100.0 * result.weight_fraction, 100.0 * result.weight_fraction_esd)
        lines.append(f"this phase: {percent} wt% (Hill-Howard)")
        lines += [f"further phase {line}" for line in _phase_lines(result)]
    if result.model.aniso_sites:
        lines += ["", "anisotropic U (A^2)   U11 U22 U33 U12 U13 U23   Ueq   principal values"]
        for record in anisotropic_records(result):
            pairs = zip(record["u"], record["u_esd"], strict=True)
            values = [with_esd(u, e or 0.0, decimals_plain=5) for u, e in pairs]
            ueq = with_esd(record["u_eq"], record["u_eq_esd"] or 0.0, decimals_plain=5)
            eigen = " ".join(f"{v:.5f}" for v in record["principal_values"])
            flag = "" if record["positive_definite"] else "   NOT POSITIVE DEFINITE"
            lines.append(f"    {record['label']:<8} {' '.join(values)}   {ueq}   {eigen}{flag}")
    if result.non_positive_definite:
        lines += ["", non_positive_definite_warning(result)]
    if result.hydrogens:
        labels = [site.label for site in result.structure.sites]
        lines += ["", "hydrogens"] + [f"    {describe(rider, labels)}" for rider in result.hydrogens]
    if unc.high_correlations:
        lines += ["", "warning: correlations above 0.9"]
        lines += [f"    {a} / {b}: {c:+.3f}" for a, b, c in unc.high_correlations]
    if result.restraints:
        total = sum(r.chi2 for r in result.restraints)
        lines += [
            "",
            f"restraints (chi2 contribution {total:.3f} in all)",
            "    name                 value   target  sigma  chi2",
        ]
        lines += [
            f"    {r.name:<20} {r.value:7.4f} {r.target:7.4f} {r.sigma:6.4f} {r.chi2:7.3f}" for r in result.restraints
        ]
    if result.error:
        lines += ["", f"stopped early: {result.error}"]
    return "\n".join(lines) + "\n"


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
                "species": species_name(site.element, site.charge),
                "frac": list(site.frac),
                "frac_esd": [_finite(e) for e in result.coordinate_esd[i]],
                "b_iso": site.b_iso,
                "b_iso_esd": _finite(result.b_esd[i]),
            }
            for i, site in enumerate(structure.sites)
        ],
        "correlations_above_0.9": [{"a": a, "b": b, "correlation": c} for a, b, c in unc.high_correlations],
        "preferred_orientation": preferred_orientation(result),
        "specimen_corrections": specimen_corrections(result),
        "atom_types": atom_types(result),
        "anomalous_dispersion_source": dispersion.SOURCE if result.model.dispersion is not None else None,
        "restraints": [
            {"name": r.name, "value": r.value, "target": r.target, "sigma": r.sigma, "chi2": r.chi2}
            for r in result.restraints
        ],
        "restraints_chi2": float(sum(r.chi2 for r in result.restraints)),
        "hydrogens": hydrogen_records(result),
        "anisotropic": anisotropic_records(result),
        "non_positive_definite": list(result.non_positive_definite),
        "stages": [
            {
                "name": s.name,
                "rwp": s.rwp,
                "iterations": s.iterations,
                "converged": s.converged,
                "rwp_history": list(s.rwp_history),
                "note": s.note,
            }
            for s in result.stages
        ],
        "weight_fraction": _finite(result.weight_fraction) if result.phases else None,
        "weight_fraction_esd": _finite(result.weight_fraction_esd) if result.phases else None,
        "phases": phase_records(result),
        "error": result.error,
    }
