"""`gasolve refine CONFIG.toml MODEL.cif`: Rietveld refinement of a structure against the config's pattern.

Runs :func:`gasolve.rietveld.refine` (cell, zero shift, profile, preferred orientation, coordinates, B, scale and
background, staged; the groups, preferred orientation and restraints of the config's ``[refinement]`` table) and
writes refined.cif (esds in CIF notation, figures of merit in the pdCIF items), refinement.json, refinement.txt
(parameters with esds, correlations above 0.9, restraints), rietveld.png (observed, calculated, difference and
reflection ticks) and refinement_progress.png (Rwp per cycle and stage).
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "refine",
        help="Rietveld refinement of a structure (CIF) against the config's pattern",
        description="Joint least-squares Rietveld refinement of MODEL.cif against the pattern of CONFIG.toml: cell "
        "under the space group's constraints, zero shift, Caglioti U, V, W, eta and its slope, asymmetry, free "
        "coordinates, isotropic B and March-Dollase preferred orientation, with scale and background exact, as the "
        "config's [refinement] table says (groups, preferred_orientation, restraints). Without [pattern.profile] "
        "the profile is first fitted (Le Bail). Writes refined.cif, refinement.json, refinement.txt, rietveld.png "
        "and refinement_progress.png.",
    )
    parser.add_argument("config", help="run configuration (TOML) naming the pattern and instrument")
    parser.add_argument("model", help="starting structure (CIF)")
    parser.add_argument("--out", help="output folder; default the config's [output] dir")
    parser.add_argument(
        "--b-per", choices=("site", "element"), help="one B per site or per element (overrides [refinement] b_iso)"
    )
    parser.add_argument(
        "--max-iterations", type=int, help="least-squares cycles per stage (overrides [refinement]; default 30)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from gasolve.config import load_observed, load_run_config
    from gasolve.crystal.cif_io import read_cif
    from gasolve.diffraction.form_factors import check_species
    from gasolve.errors import InputError
    from gasolve.pipeline import rietveld_refinement
    from gasolve.rietveld.outputs import write_refinement

    if args.max_iterations is not None and args.max_iterations < 1:
        raise InputError(f"--max-iterations must be at least 1, got {args.max_iterations}")
    config = load_run_config(args.config)
    structure = read_cif(args.model)
    check_species(structure.sites, str(args.model))  # before a Le Bail fit: an ion without a form factor
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
            LeBailSettings(background_terms=pattern.background_terms, polarisation=pattern.polarisation),
        )
        profile = fitted.profile
        structure = dataclasses.replace(structure, cell=fitted.cell)
    changes = {"background_terms": pattern.background_terms}
    if args.b_per is not None:
        changes["b_per"] = args.b_per
    if args.max_iterations is not None:
        changes["max_iterations"] = args.max_iterations
    settings = dataclasses.replace(config.refinement, **changes)
    result = rietveld_refinement(config, structure, observed, profile, settings)
    out = Path(args.out) if args.out else config.output.dir
    out.mkdir(parents=True, exist_ok=True)
    comments = [f"Rietveld refinement by gasolve of {args.model} against {pattern.file}"]
    table = write_refinement(result, observed, pattern.radiation, out, structure.name, comments)
    print(table, end="")
    print(f"wrote refined.cif, refinement.json, refinement.txt, rietveld.png and refinement_progress.png in {out}")
    if result.error:
        print(f"warning: {result.error}")
    return 0
