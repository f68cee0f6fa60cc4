"""`gasolve refine CONFIG.toml MODEL.cif`: Rietveld refinement of a structure against the config's pattern.

Runs :func:`gasolve.rietveld.refine` (cell, zero shift, profile, coordinates, B, scale and background, staged) and
writes refined.cif (esds in CIF notation, figures of merit in the pdCIF items) and refinement.json.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "refine",
        help="Rietveld refinement of a structure (CIF) against the config's pattern",
        description="Joint least-squares Rietveld refinement of MODEL.cif against the pattern of CONFIG.toml: cell "
        "under the space group's constraints, zero shift, Caglioti U, V, W, eta and its slope, asymmetry, free "
        "coordinates and isotropic B, with scale and background exact. Without [pattern.profile] the profile is "
        "first fitted (Le Bail). Writes refined.cif and refinement.json.",
    )
    parser.add_argument("config", help="run configuration (TOML) naming the pattern and instrument")
    parser.add_argument("model", help="starting structure (CIF)")
    parser.add_argument("--out", help="output folder; default the config's [output] dir")
    parser.add_argument("--b-per", choices=("site", "element"), default="site", help="one B per site or per element")
    parser.add_argument("--max-iterations", type=int, default=30, help="least-squares cycles per stage (default 30)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from gasolve.config import load_observed, load_run_config
    from gasolve.crystal.cif_io import read_cif
    from gasolve.errors import InputError
    from gasolve.io.atomic import atomic_write
    from gasolve.io.run_outputs import write_json
    from gasolve.rietveld import RefinementSettings, refine
    from gasolve.rietveld.report import format_refined_cif, refinement_summary

    if args.max_iterations < 1:
        raise InputError(f"--max-iterations must be at least 1, got {args.max_iterations}")
    config = load_run_config(args.config)
    structure = read_cif(args.model)
    observed = load_observed(config)
    pattern = config.pattern
    profile = pattern.profile
    if profile is None:
        from gasolve.profile_fit import LeBailSettings, fit_lebail

        fitted = fit_lebail(
            observed,
            structure.cell,
            structure.space_group,
            pattern.radiation,
            LeBailSettings(background_terms=pattern.background_terms),
        )
        profile = fitted.profile
        structure = dataclasses.replace(structure, cell=fitted.cell)
    settings = RefinementSettings(
        b_per=args.b_per, background_terms=pattern.background_terms, max_iterations=args.max_iterations
    )
    result = refine(structure, observed, pattern.radiation, profile, settings)
    out = Path(args.out) if args.out else config.output.dir
    out.mkdir(parents=True, exist_ok=True)
    m = result.metrics
    comments = [
        f"Rietveld refinement by gasolve of {args.model} against {pattern.file}",
        f"Rwp {m.rwp:.5f}  Rp {m.rp:.5f}  Rexp {m.rexp:.5f}  chi2 {m.chi2:.4f}  R_Bragg {result.r_bragg:.5f}",
    ]
    if result.error:
        comments.append(f"stopped early: {result.error}")
    atomic_write(out / "refined.cif", format_refined_cif(result, comments))
    write_json(out / "refinement.json", refinement_summary(result))
    print(f"Rwp {m.rwp:.4f}  Rp {m.rp:.4f}  Rexp {m.rexp:.4f}  chi2 {m.chi2:.3f}  R_Bragg {result.r_bragg:.4f}")
    print(f"wrote {out / 'refined.cif'} and {out / 'refinement.json'}")
    if result.error:
        print(f"warning: {result.error}")
    return 0
