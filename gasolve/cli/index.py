"""`gasolve index PATTERN`: unit cells of a measured pattern (peak search, successive dichotomy, Pawley check)."""

from __future__ import annotations

import argparse

from gasolve.indexing.budget import TRICLINIC_BOXES, TRICLINIC_BOXES_PER_SECOND


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "index",
        help="unit cell of a powder pattern (peak search, DICVOL-type dichotomy, M20/F_N, Pawley check)",
        description="Find the lines of a measured pattern, index them by successive dichotomy (DICVOL: Boultif & "
        "Louër 1991, 2004) over cubic, tetragonal, hexagonal/trigonal, orthorhombic, monoclinic and triclinic "
        "cells and a grid of zero shifts, reduce and de-duplicate the cells (Niggli, Bravais type from spglib), rank "
        "them by de Wolff's M20 and check the leading ones with a Pawley fit. The zero shift and specimen "
        "displacement are refined with each cell. Monoclinic cells are searched below the volume of a convincing "
        "higher-symmetry cell (M20 >= 20), triclinic cells only when no cell of higher symmetry convinces "
        "(--exhaustive: monoclinic up to that volume, triclinic even then); the triclinic search has a volume limit "
        "and a budget counted in boxes tested (not seconds, so that the same pattern gives the same cells under "
        "any load), and says so when the budget cuts it.",
    )
    parser.add_argument("pattern", help="pattern file (.xy/.xye/.csv/.dat or GSAS raw)")
    parser.add_argument(
        "--wavelength",
        help="Å, or a named line: CuKa1, CuKa12 (Kα1+Kα2), MoKa1, MoKa12, CoKa12, ...; default: the wavelength the "
        "file states (.xye header, GSAS header or instrument line, powder CIF); required when it states none",
    )
    parser.add_argument("--range", nargs=2, type=float, metavar=("A", "B"), help="2θ range to use (degrees)")
    parser.add_argument("--max-volume", type=float, default=1500.0, help="largest cell volume in Å³ (default 1500)")
    parser.add_argument("--lines", type=int, default=20, help="lines used for indexing (default 20)")
    parser.add_argument("--impurities", type=int, default=1, help="lines that may stay unindexed (default 1)")
    parser.add_argument(
        "--retry-impurities",
        type=int,
        default=3,
        help="search the cubic-to-monoclinic systems again allowing this many unindexed lines, counted against M20 "
        "in the ranking: those of higher symmetry than every convincing cell (M20 >= 20) up to the volume limit, "
        "a convincing cell's own system below its volume (default 3; not above --impurities: no second pass)",
    )
    parser.add_argument(
        "--no-kbeta",
        action="store_true",
        help="take no line for a Kβ satellite (otherwise, with a laboratory Kα radiation whose Kβ the pattern "
        "shows: Cu, Mo, Co, Fe, Cr, Ag ..., weak lines at the Kβ position of a stronger line are left out of the "
        "indexing lines)",
    )
    parser.add_argument(
        "--exhaustive",
        action="store_true",
        help="search monoclinic cells up to a convincing higher-symmetry cell's volume (not only below it) and "
        "triclinic cells even when a higher-symmetry cell convinces",
    )
    parser.add_argument(
        "--widen-blends",
        action="store_true",
        help="when no cell convinces, let the second pass widen the tolerance of blended lines (lines wider than "
        "their neighbours) as the triclinic search does: finds cells whose first lines blend reflections, but can "
        "make a pattern that indexes in no system several times slower",
    )
    parser.add_argument(
        "--triclinic-volume",
        type=float,
        default=1000.0,
        help="largest triclinic cell volume in Å³ (default 1000)",
    )
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--triclinic-boxes",
        type=int,
        default=None,
        metavar="N",
        help=f"boxes the triclinic search may test, over all zero shifts (default {TRICLINIC_BOXES:,}, about 120 s "
        "on an idle 2-core machine); a count of work, so the result does not depend on the machine's load",
    )
    budget.add_argument(
        "--triclinic-budget",
        type=float,
        default=None,
        metavar="S",
        help="the same budget given in seconds of an idle 2-core machine, converted to boxes at "
        f"{TRICLINIC_BOXES_PER_SECOND:,} boxes/s (kept for compatibility; not a wall-clock limit)",
    )
    parser.add_argument(
        "--triclinic-time-limit",
        type=float,
        default=None,
        metavar="S",
        help="optional wall-clock guard: stop the triclinic search after S seconds even if boxes are left (off by "
        "default; a search it stops depends on the machine's speed and load, and says so)",
    )
    parser.add_argument("--top", type=int, default=5, help="candidates printed (default 5)")
    parser.add_argument("--json", metavar="OUT", help="write the candidates to this JSON file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    import math
    import sys

    from gasolve.diffraction.wavelength import choose_radiation
    from gasolve.errors import InputError
    from gasolve.indexing.budget import boxes_for_seconds
    from gasolve.indexing.pattern import IndexingSettings, index_pattern
    from gasolve.indexing.peaks import PeakSearchSettings
    from gasolve.io.atomic import atomic_write
    from gasolve.io.patterns import read_pattern

    for name, value, lowest in (
        ("--max-volume", args.max_volume, 10.0),
        ("--lines", args.lines, 8),
        ("--triclinic-volume", args.triclinic_volume, 10.0),
    ):
        if not (math.isfinite(value) and value >= lowest):
            raise InputError(f"{name} must be at least {lowest}, got {value}")
    triclinic_boxes = TRICLINIC_BOXES
    if args.triclinic_boxes is not None:
        if args.triclinic_boxes < 0:
            raise InputError(f"--triclinic-boxes must be a whole number >= 0, got {args.triclinic_boxes}")
        triclinic_boxes = args.triclinic_boxes
    if args.triclinic_budget is not None:
        if not (math.isfinite(args.triclinic_budget) and args.triclinic_budget >= 0):
            raise InputError(f"--triclinic-budget must be a finite number of seconds >= 0, got {args.triclinic_budget}")
        triclinic_boxes = boxes_for_seconds(args.triclinic_budget)
    limit = args.triclinic_time_limit
    if limit is not None and not (math.isfinite(limit) and limit > 0):
        raise InputError(f"--triclinic-time-limit must be a finite number of seconds > 0, got {limit}")
    for name, value in (("--impurities", args.impurities), ("--retry-impurities", args.retry_impurities)):
        if value < 0 or value >= args.lines // 2:
            raise InputError(f"{name} must be between 0 and {args.lines // 2 - 1}, got {value}")
    pattern = read_pattern(args.pattern)
    radiation, wavelength_notes = choose_radiation(pattern.radiation, args.wavelength, str(args.pattern))
    for note in wavelength_notes:
        print(f"warning: {note}", file=sys.stderr)
    if args.range:
        pattern = pattern.restrict(*args.range)
    settings = IndexingSettings(
        n_lines=args.lines,
        max_volume=args.max_volume,
        max_unindexed=args.impurities,
        retry_unindexed=args.retry_impurities,
        exhaustive=args.exhaustive,
        retry_blends=args.widen_blends,
        triclinic_max_volume=args.triclinic_volume,
        triclinic_boxes=triclinic_boxes,
        triclinic_time_limit=limit,
        peak_search=PeakSearchSettings(kbeta=None) if args.no_kbeta else PeakSearchSettings(),
    )
    result = index_pattern(pattern, radiation, settings)
    candidates = [c.as_dict() for c in result.candidates]
    sound = [c for c in result.candidates if c.solution.m20 >= settings.min_m20]
    if args.json:
        document = {
            "pattern": str(args.pattern),
            "wavelength": radiation.primary,
            "radiation": [list(line) for line in radiation.lines],
            "lines_two_theta": [round(float(x), 5) for x in result.two_theta],
            "lines_two_theta_esd": [round(float(x), 5) for x in result.two_theta_esd],
            "kbeta_lines": [line.as_dict() for line in result.kbeta],
            "notes": list(result.notes),
            "candidates": candidates,
        }
        atomic_write(args.json, json.dumps(document, indent=2, allow_nan=False) + "\n")
    print(f"{args.pattern}: {len(result.two_theta)} lines used, {len(candidates)} cells index them")
    print(
        f"{'#':>2} {'Bravais':<7} {'a':>9} {'b':>9} {'c':>9} {'alpha':>7} {'beta':>7} {'gamma':>7} "
        f"{'V':>8} {'M20':>7} {'F_N':>7} {'idx':>5} {'zero':>7} {'Pawley Rwp':>10}"
    )
    for i, c in enumerate(candidates[: args.top], start=1):
        a, b, cc, al, be, ga = c["cell"]
        rwp = "-" if c["pawley_rwp"] is None else f"{c['pawley_rwp']:.4f}"
        print(
            f"{i:>2} {c['bravais']:<7} {a:9.4f} {b:9.4f} {cc:9.4f} {al:7.2f} {be:7.2f} {ga:7.2f} {c['volume']:8.1f} "
            f"{c['m20']:7.1f} {c['f_n']:7.1f} {c['n_indexed']:>2}/{c['n_lines']:<2} {c['zero']:7.3f} {rwp:>10}"
        )
    for line in result.kbeta:
        verdict = "indexed as Kβ by the first cell" if line.as_kbeta else "NOT indexed as Kβ by the first cell"
        also = "; also fits a Kα line of it" if line.as_kalpha else ""
        print(
            f"Kβ: line at {line.two_theta:.3f}° taken for the Kβ of {line.parent_two_theta:.3f}°, left out of "
            f"the indexing lines ({verdict}{also})"
        )
    for note in result.notes:
        print(f"note: {note}")
    if not sound:
        best = f" (best M20 {candidates[0]['m20']:.1f})" if candidates else ""
        raise InputError(
            f"no cell indexes the lines with M20 >= {settings.min_m20:g}{best}; try --impurities 2, a larger "
            "--max-volume, --exhaustive, or a pattern with more resolved lines",
            str(args.pattern),
        )
    return 0
