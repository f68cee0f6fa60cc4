"""`gasolve score STRUCTURE.cif PATTERN`: Rwp, Rp and χ² of a structure against a pattern, with a fit plot."""

from __future__ import annotations

import argparse
import json

from gasolve.cli.instrument_options import add_instrument_options, finite_float


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "score",
        help="agreement of a structure with a measured pattern",
        description="Fit scale and Chebyshev background (linear least squares) of a CIF structure to a pattern, "
        "print Rwp, Rp and reduced χ², and write a fit plot (observed, calculated, difference, ticks).",
    )
    parser.add_argument("structure", help="CIF file")
    parser.add_argument("pattern", help="pattern file: .xy, .xye, .csv, .dat or GSAS raw (.xra, .gsa, .raw)")
    parser.add_argument(
        "--range",
        type=finite_float,
        nargs=2,
        metavar=("LO", "HI"),
        help="2θ range used (degrees); default: the whole pattern",
    )
    parser.add_argument("--background-terms", type=int, default=6, help="Chebyshev terms; default 6")
    parser.add_argument("--b-iso", type=finite_float, help="override every atom's B (Å²)")
    parser.add_argument("--plot", help="fit plot PNG; default <pattern name>_fit.png in the current folder")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    add_instrument_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gasolve.cli.instrument_options import describe_profile, profile_from_args
    from gasolve.crystal import read_cif
    from gasolve.diffraction.fit_metrics import fit_metrics
    from gasolve.errors import InputError
    from gasolve.io.patterns import read_pattern
    from gasolve.plotting import plot_fit
    from gasolve.scoring import Scorer, ScoringProblem

    if args.background_terms < 0:
        raise InputError(f"--background-terms must be >= 0, got {args.background_terms}")
    structure = read_cif(args.structure)
    if args.b_iso is not None:
        if args.b_iso < 0:
            raise InputError(f"--b-iso must be non-negative (Å²), got {args.b_iso}")
        structure = structure.with_b_iso(args.b_iso)
    pattern = read_pattern(args.pattern)
    if args.range is not None:
        pattern = pattern.restrict(*args.range)
    radiation, profile = profile_from_args(args)
    problem = ScoringProblem.from_structure(structure, pattern, radiation, profile, args.background_terms)
    fit = Scorer(problem).profiles(structure.frac[None])
    y_calc = fit.y_calc[0]
    metrics = fit_metrics(pattern.y_obs, y_calc, pattern.weights, 1 + problem.background_terms)
    plot_path = Path(args.plot) if args.plot else Path(Path(args.pattern).stem + "_fit.png")
    ticks = [
        (f"{structure.name} λ={wavelength:.5f}", problem.reflections.two_theta(wavelength, profile.zero))
        for wavelength, _ in radiation.lines
    ]
    annotation = f"Rwp {metrics.rwp:.4f}\nRp  {metrics.rp:.4f}\nχ²  {metrics.chi2:.3f}"
    try:
        plot_fit(
            plot_path,
            pattern.two_theta,
            pattern.y_obs,
            y_calc,
            ticks,
            title=f"{structure.name} ({structure.space_group.symbol}) vs {Path(args.pattern).name}",
            annotation=annotation,
        )
    except OSError as error:
        raise InputError(f"cannot write plot: {error.strerror}", str(plot_path)) from None
    result = {
        "structure": args.structure,
        "pattern": args.pattern,
        "rwp": metrics.rwp,
        "rp": metrics.rp,
        "rexp": metrics.rexp,
        "chi2": metrics.chi2,
        "scale": float(fit.scale[0]),
        "background": [float(c) for c in fit.background[0]],
        "n_points": metrics.n_points,
        "n_reflections": problem.n_refl,
        "two_theta_range": [float(pattern.two_theta[0]), float(pattern.two_theta[-1])],
        "instrument": describe_profile(radiation, profile),
        "plot": str(plot_path),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{structure.name} ({structure.space_group.symbol}, {structure.formula()}) vs {args.pattern}")
        print(f"  {result['instrument']}")
        print(
            f"  2θ {result['two_theta_range'][0]:g}-{result['two_theta_range'][1]:g}°, {metrics.n_points} points, "
            f"{problem.n_refl} reflections, scale + {problem.background_terms} background terms"
        )
        print(f"  Rwp {metrics.rwp:.5f}   Rp {metrics.rp:.5f}   Rexp {metrics.rexp:.5f}   χ² {metrics.chi2:.4f}")
        print(f"  plot: {plot_path}")
    return 0
