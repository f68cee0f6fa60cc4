"""`gasolve simulate STRUCTURE.cif --out PATTERN.xye`: a calculated powder pattern, optionally with counting noise."""

from __future__ import annotations

import argparse

from gasolve.cli.instrument_options import add_instrument_options, finite_float


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="calculate the powder pattern of a structure",
        description="Write the powder pattern (2θ, intensity, esd) of a CIF structure, noise-free or with Poisson "
        "counts. Without --counts the strongest point is 10000; with --counts N it expects N counts.",
    )
    parser.add_argument("structure", help="CIF file")
    parser.add_argument("--out", required=True, help="output pattern (.xye)")
    parser.add_argument(
        "--range",
        type=finite_float,
        nargs=2,
        default=(5.0, 80.0),
        metavar=("LO", "HI"),
        help="2θ range (degrees); default 5 80",
    )
    parser.add_argument("--step", type=finite_float, default=0.015, help="2θ step (degrees); default 0.015")
    parser.add_argument("--b-iso", type=finite_float, help="override every atom's B (Å²)")
    parser.add_argument(
        "--background",
        type=finite_float,
        nargs="+",
        default=[],
        metavar="C",
        help="Chebyshev background coefficients C0 C1 ... (counts) over the range",
    )
    parser.add_argument("--counts", type=finite_float, help="Poisson noise; strongest point expects N counts")
    parser.add_argument("--seed", type=int, default=0, help="seed of the counting noise; default 0")
    add_instrument_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from gasolve import __version__
    from gasolve.cli.instrument_options import describe_profile, profile_from_args
    from gasolve.crystal import read_cif
    from gasolve.diffraction.simulate import simulate
    from gasolve.errors import InputError
    from gasolve.io.patterns import counting_sigma, write_xye

    lo, hi = args.range
    if not 0 < lo < hi < 180:
        raise InputError(f"--range must satisfy 0 < LO < HI < 180 degrees, got {lo} {hi}")
    if args.step <= 0 or (hi - lo) / args.step > 2_000_000:
        raise InputError(f"--step must be positive and give at most 2,000,000 points, got {args.step}")
    if args.counts is not None and args.counts <= 0:
        raise InputError(f"--counts must be positive, got {args.counts}")
    if args.b_iso is not None and args.b_iso < 0:
        raise InputError(f"--b-iso must be non-negative (Å²), got {args.b_iso}")
    structure = read_cif(args.structure)
    if args.b_iso is not None:
        structure = structure.with_b_iso(args.b_iso)
    radiation, profile = profile_from_args(args)
    n_points = round((hi - lo) / args.step) + 1
    two_theta = lo + args.step * np.arange(n_points)
    pattern = simulate(structure, two_theta, radiation, profile, np.array(args.background))
    target = 10000.0 if args.counts is None else args.counts
    if np.any(pattern.background >= target):
        raise InputError(f"the background reaches {pattern.background.max():.4g}, above the strongest point {target:g}")
    if not np.any(pattern.peaks > 0):
        raise InputError("no reflection falls inside the 2θ range", args.structure)
    positive = pattern.peaks > 0
    # Largest scale at which no point exceeds the target: then the strongest point equals it exactly.
    scale = float(np.min((target - pattern.background[positive]) / pattern.peaks[positive]))
    expected = scale * pattern.peaks + pattern.background
    if args.counts is None:
        y = expected
    else:
        y = np.random.default_rng(args.seed).poisson(expected).astype(float)
    header = [
        f"gasolve {__version__} simulate {args.structure}",
        f"structure {structure.name}: {structure.space_group.symbol}, {structure.formula()}, "
        f"cell {' '.join(f'{x:.5f}' for x in structure.cell.parameters)}"
        + ("" if args.b_iso is None else f", B_iso {args.b_iso:g} A^2 for every atom"),
        describe_profile(radiation, profile),
        f"2theta {lo:g}-{hi:g} step {args.step:g} ({n_points} points); Chebyshev background {list(args.background)}",
        (
            "noise-free, strongest point 10000"
            if args.counts is None
            else f"Poisson counts, strongest point expects {args.counts:g}, seed {args.seed}"
        )
        + f"; scale {scale:.6g}",
        "columns: 2theta (deg), intensity, esd (sqrt of max(intensity, 1))",
    ]
    try:
        write_xye(args.out, two_theta, y, counting_sigma(y), header)
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror}", args.out) from None
    print(f"wrote {args.out}: {n_points} points, {len(pattern.reflections)} reflections")
    return 0
