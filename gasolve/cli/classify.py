"""`gasolve classify PATTERN...`: crystal system and space group of powder patterns (symmetry CNN)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="crystal system and space group of powder patterns (CNN)",
        description="Read one or more patterns (.xy/.xye/.csv/.dat or GSAS raw), put them onto the network's grid "
        "(Cu Kα1, 2θ 5-105°) at equal d-spacing, and print the crystal system and the most likely space groups "
        "with calibrated probabilities. The network ships with gasolve (see README, 'Symmetry network').",
    )
    parser.add_argument("patterns", nargs="+", metavar="PATTERN", help="pattern files")
    parser.add_argument(
        "--wavelength", default="CuKa1", help="primary wavelength of the patterns: Å, CuKa1 or CuKa12; default CuKa1"
    )
    parser.add_argument("--top", type=int, default=5, help="space groups listed per pattern (default 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per pattern and line")
    parser.add_argument("--checkpoint", help="network checkpoint (default: the one shipped with gasolve)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.errors import InputError
    from gasolve.io.patterns import read_pattern
    from symnet.classify import Classifier, pattern_input

    if not 1 <= args.top <= 230:
        raise InputError(f"--top must be between 1 and 230, got {args.top}")
    wavelength = parse_radiation(args.wavelength).primary
    classifier = Classifier(args.checkpoint)
    patterns = [read_pattern(path) for path in args.patterns]  # every file is checked before any work
    inputs = np.stack([pattern_input(p.two_theta, p.y_obs, wavelength, classifier.grid, p.source) for p in patterns])
    for path, result in zip(args.patterns, classifier.classify_inputs(inputs), strict=True):
        answer = result.to_dict(path, args.top)
        if args.json:
            print(json.dumps(answer, ensure_ascii=False))
            continue
        system = answer["crystal_system"]
        note = "  (uncertain: no space group above the abstain threshold)" if answer["abstained"] else ""
        print(f"{path}: {system['name']} ({system['probability']:.2f}){note}")
        for group in answer["space_groups"]:
            print(f"  {group['number']:>3}  {group['symbol']:<12} {group['probability']:.3f}")
    return 0
