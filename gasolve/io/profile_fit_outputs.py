"""Files of a whole-pattern profile fit (Le Bail/Pawley): lebail.toml, lebail.json and lebail_fit.png.

Written by ``gasolve lebail`` and by the profile-fit stage of ``gasolve run`` when the config has no
``[pattern.profile]``.
"""

from __future__ import annotations


def fragment(result, source: str) -> str:
    """The TOML fragment of a Le Bail result: refined [structure] cell and [pattern.profile]."""
    from gasolve import __version__
    from gasolve.config import profile_table
    from gasolve.io.toml_file import toml_text

    m = result.metrics
    comments = [
        f"whole-pattern profile fit (Pawley-type) by gasolve {__version__} of {source}",
        f"Rwp {m.rwp:.5f}  Rp {m.rp:.5f}  Rexp {m.rexp:.5f}  chi2 {m.chi2:.4f}  ({m.n_points} points)",
        "cell esd: " + ", ".join(f"{x:.2g}" for x in result.cell_esd),
        "Paste these into the run config (the cell replaces [structure] cell).",
    ]
    document = {"structure": {"cell": [round(x, 6) for x in result.cell.parameters]}}
    document["pattern"] = {"profile": profile_table(result.profile)}
    return toml_text(document, comments)


def write_outputs(result, out, title: str, source: str) -> dict:
    """Write lebail.toml, lebail.json and lebail_fit.png into ``out``; returns the JSON summary."""
    from pathlib import Path

    from gasolve.diffraction.profile import peak_positions
    from gasolve.io.run_outputs import write_json
    from gasolve.plotting import plot_fit

    out = Path(out)
    (out / "lebail.toml").write_text(fragment(result, source), encoding="utf-8")
    m = result.metrics
    summary = {
        "source": source,
        "cell": list(result.cell.parameters),
        "cell_esd": list(result.cell_esd),
        "profile": {
            "caglioti": list(result.profile.caglioti),
            "eta": result.profile.eta,
            "eta_slope": result.profile.eta_slope,
            "zero": result.profile.zero,
            "displacement": result.profile.displacement,
            "asymmetry": list(result.profile.asymmetry),
            "axial": result.profile.axial,
            "lorentzian": list(result.profile.lorentzian) if result.profile.tch else None,
        },
        "profile_esd": result.profile_esd,
        "asymmetry_refined": result.asymmetry_refined,
        "background": [float(c) for c in result.background],
        "rwp": m.rwp,
        "rp": m.rp,
        "rexp": m.rexp,
        "chi2": m.chi2,
        "n_points": m.n_points,
        "n_reflections": len(result.reflections),
        "n_parameters": m.n_parameters,
        "rwp_history": list(result.rwp_history),
    }
    write_json(out / "lebail.json", summary)
    plot_fit(
        out / "lebail_fit.png",
        result.two_theta,
        result.y_obs,
        result.y_calc,
        [(f"λ={w:.5f}", peak_positions(result.reflections, w, result.profile)) for w in result.wavelengths],
        title=title,
        annotation=f"Rwp {m.rwp:.4f}\nRp  {m.rp:.4f}\nχ²  {m.chi2:.3f}",
    )
    return summary
