"""`gasolve refine CONFIG.toml MODEL.cif`: Rietveld refinement of a structure against the config's pattern.

Runs :func:`gasolve.rietveld.refine` (cell, zero shift, profile, preferred orientation, coordinates, B, scale and
background, staged; the groups, preferred orientation and restraints of the config's ``[refinement]`` table) and
writes refined.cif (esds in CIF notation, figures of merit in the pdCIF items), refinement.json, refinement.txt
(parameters with esds, correlations above 0.9, restraints), rietveld.png (observed, calculated, difference and
reflection ticks) and refinement_progress.png (Rwp per cycle and stage). ``--adp`` overrides ``[refinement] adp``;
the anisotropic sites start from MODEL.cif's ``_atom_site_aniso_`` U_ij where it gives them.
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "refine",
        help="Rietveld refinement of a structure (CIF) against the config's pattern",
        description="Joint least-squares Rietveld refinement of MODEL.cif against the pattern of CONFIG.toml: cell "
        "under the space group's constraints, zero shift, Caglioti U, V, W, eta and its slope, asymmetry, free "
        "coordinates, isotropic B (or anisotropic U) and March-Dollase preferred orientation, with scale and "
        "background exact, as the config's [refinement] table says (groups, adp, preferred_orientation, "
        "restraints). Anisotropic sites start from MODEL.cif's _atom_site_aniso_ U_ij (or B_ij) where it gives "
        "them, projected onto the site symmetry (a warning when they break it); isotropic ones from its "
        "U_iso_or_equiv (or the Ueq of its U_ij). Without [pattern.profile] "
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
        "--adp",
        choices=("iso", "aniso"),
        help="isotropic B on every site, or anisotropic U on every non-H site (overrides [refinement] adp, "
        "including a list of sites)",
    )
    parser.add_argument(
        "--max-iterations", type=int, help="least-squares cycles per stage (overrides [refinement]; default 30)"
    )
    parser.add_argument(
        "--phase",
        action="append",
        default=[],
        metavar="CIF",
        help="a further phase of the specimen (repeatable; added to [refinement] phases): its cell and scale are "
        "refined and its weight fraction reported (Hill & Howard)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys
    import warnings
    from pathlib import Path

    from gasolve.config import load_observed, load_run_config
    from gasolve.crystal.cif_io import read_cif
    from gasolve.diffraction.form_factors import check_species
    from gasolve.errors import InputError
    from gasolve.pipeline import rietveld_refinement
    from gasolve.rietveld.adp import SiteSymmetryWarning
    from gasolve.rietveld.outputs import write_refinement

    if args.max_iterations is not None and args.max_iterations < 1:
        raise InputError(f"--max-iterations must be at least 1, got {args.max_iterations}")
    config = load_run_config(args.config)
    settings = _settings(config, args)
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
            LeBailSettings(
                background_terms=pattern.background_terms, polarisation=pattern.polarisation, shape=pattern.peak_shape
            ),
        )
        profile = fitted.profile
        structure = dataclasses.replace(structure, cell=fitted.cell)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SiteSymmetryWarning)
        result = rietveld_refinement(config, structure, observed, profile, settings)
    for warning in caught:
        if issubclass(warning.category, SiteSymmetryWarning):
            print(f"warning: {args.model}: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    out = Path(args.out) if args.out else config.output.dir
    out.mkdir(parents=True, exist_ok=True)
    comments = [f"Rietveld refinement by gasolve of {args.model} against {pattern.file}"]
    table = write_refinement(result, observed, pattern.radiation, out, structure.name, comments)
    print(table, end="")
    print(f"wrote refined.cif, refinement.json, refinement.txt, rietveld.png and refinement_progress.png in {out}")
    if result.error:
        print(f"warning: {result.error}")
    return 0


def _settings(config, args: argparse.Namespace):
    """The config's ``[refinement]`` settings with the command line's overrides (``--b-per``, ``--adp``,
    ``--max-iterations``), the further phases of ``--phase`` and the pattern's background terms."""
    import dataclasses
    from pathlib import Path

    from gasolve.errors import InputError
    from gasolve.rietveld.settings import read_phase

    changes = {"background_terms": config.pattern.background_terms}
    if args.phase:
        extra = []
        for name in args.phase:
            path = Path(name)
            if not path.is_file():
                raise InputError("no such CIF file (--phase)", str(path))
            extra.append(read_phase(path))
        changes["phases"] = config.refinement.phases + tuple(extra)
    for key in ("b_per", "adp", "max_iterations"):
        if getattr(args, key) is not None:
            changes[key] = getattr(args, key)
    try:
        return dataclasses.replace(config.refinement, **changes)
    except InputError as error:  # --adp aniso with [refinement] b_iso = "off"
        note = f" (--adp {args.adp})" if args.adp else ""
        raise InputError(f"[refinement] {error.message}{note}", str(config.source)) from None
