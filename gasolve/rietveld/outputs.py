"""Files of a Rietveld refinement: refined.cif, refinement.json, refinement.txt, rietveld.png, refinement_progress.png.

Written by ``gasolve refine`` and by the final stage of ``gasolve run --rietveld`` (or a config with a
``[refinement]`` table).
"""

from __future__ import annotations

from pathlib import Path


def write_refinement(result, observed, radiation, out: str | Path, name: str, comments: list[str]) -> str:
    """Write the refinement's files into ``out``; returns the parameter table (text) that refinement.txt holds.

    Parameters
    ----------
    result : gasolve.rietveld.staged.RefinementResult
    observed : ObservedPattern
    radiation : Radiation
    out : str or Path
        An existing folder.
    name : str
        Structure name, for the plot titles.
    comments : list of str
        First comment lines of refined.cif.
    """
    from gasolve.io.atomic import atomic_write
    from gasolve.io.run_outputs import write_json
    from gasolve.plotting import plot_fit, plot_refinement_progress
    from gasolve.rietveld.report import format_refined_cif, parameter_table, refinement_summary, reflection_ticks

    out = Path(out)
    m = result.metrics
    lines = [
        *comments,
        f"Rwp {m.rwp:.5f}  Rp {m.rp:.5f}  Rexp {m.rexp:.5f}  chi2 {m.chi2:.4f}  R_Bragg {result.r_bragg:.5f}",
    ]
    if result.error:
        lines.append(f"stopped early: {result.error}")
    atomic_write(out / "refined.cif", format_refined_cif(result, lines))
    write_json(out / "refinement.json", refinement_summary(result))
    table = parameter_table(result)
    atomic_write(out / "refinement.txt", table)
    annotation = f"Rwp {m.rwp:.4f}\nRexp {m.rexp:.4f}\nchi2 {m.chi2:.3f}\nR_Bragg {result.r_bragg:.4f}"
    plot_fit(
        out / "rietveld.png",
        observed.two_theta,
        observed.y_obs,
        result.y_calc,
        reflection_ticks(result, radiation),
        title=f"{name}: Rietveld refinement",
        annotation=annotation,
    )
    plot_refinement_progress(
        out / "refinement_progress.png",
        [(s.name, list(s.rwp_history)) for s in result.stages],
        title=f"{name}: refinement progress",
    )
    return table
