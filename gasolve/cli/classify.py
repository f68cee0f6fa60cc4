"""`gasolve classify PATTERN...`: crystal system and space group of powder patterns (symmetry CNN)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="crystal system and space group of powder patterns (CNN)",
        description="Read one or more patterns (.xy/.xye/.csv/.dat or GSAS raw), put them onto the network's grid "
        "(Cu Kα1, 2θ 5-105°) at equal d-spacing, and print the crystal system and the most likely space groups "
        "with calibrated probabilities. The network ships with gasolve (see README, 'Symmetry network'). When the "
        "pattern indexes with M20 >= 10 (gasolve index), the space groups of its lattice are ranked instead by their "
        "systematic extinctions (Pawley intensities, ExtSym-type test) with the network as the prior; --no-index "
        "keeps the network alone.",
    )
    parser.add_argument("patterns", nargs="+", metavar="PATTERN", help="pattern files")
    parser.add_argument(
        "--wavelength",
        help="wavelength of the patterns: Å, or a named line (CuKa1, CuKa12, MoKa12, ...); default: the one each "
        "file states (.xye header, GSAS header or instrument line, powder CIF); required for files that state none",
    )
    parser.add_argument("--top", type=int, default=5, help="space groups listed per pattern (default 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per pattern and line")
    parser.add_argument("--checkpoint", help="network checkpoint (default: the one shipped with gasolve)")
    parser.add_argument(
        "--no-index", action="store_true", help="network alone: do not index or score extinctions (faster)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    import numpy as np

    from gasolve.diffraction.wavelength import choose_radiation, parse_radiation
    from gasolve.errors import InputError
    from gasolve.io.patterns import read_pattern
    from symnet.classify import Classifier, pattern_input

    if not 1 <= args.top <= 230:
        raise InputError(f"--top must be between 1 and 230, got {args.top}")
    if args.wavelength is not None:
        parse_radiation(args.wavelength)  # a bad --wavelength is named before any file is read
    patterns = [read_pattern(path) for path in args.patterns]  # every file is checked before any work
    radiations = []
    for path, pattern in zip(args.patterns, patterns, strict=True):
        radiation, notes = choose_radiation(pattern.radiation, args.wavelength, str(path))
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
        radiations.append(radiation)
    classifier = Classifier(args.checkpoint)
    inputs = np.stack(
        [
            pattern_input(p.two_theta, p.y_obs, r.primary, classifier.grid, p.source)
            for p, r in zip(patterns, radiations, strict=True)
        ]
    )
    results = classifier.classify_inputs(inputs)
    for path, pattern, radiation, result in zip(args.patterns, patterns, radiations, results, strict=True):
        answer = result.to_dict(path, args.top)
        answer["route"], answer["cell"], answer["note"] = "network", None, "--no-index"
        answer["radiation"] = [list(line) for line in radiation.lines]
        if not args.no_index:
            answer = _extinction_route(answer, pattern, radiation, result, classifier.meta.abstain_threshold, args.top)
        if args.json:
            print(json.dumps(answer, ensure_ascii=False))
            continue
        system = answer["crystal_system"]
        note = "  (uncertain: no space group above the abstain threshold)" if answer["abstained"] else ""
        print(f"{path}: {system['name']} ({system['probability']:.2f}){note}")
        print(f"  route: {answer['route']} ({answer['note']})")
        for group in answer["space_groups"]:
            print(f"  {group['number']:>3}  {group['symbol']:<12} {group['probability']:.3f}")
    return 0


def _extinction_route(answer: dict, pattern, radiation, result, abstain_threshold: float, top: int) -> dict:
    """The answer of the extinctions + network route when the pattern indexes soundly; else the network's, noted.

    ``space_groups`` then lists the lattice's candidate groups (settings of one number summed) by posterior,
    ``crystal_system`` the system with the largest posterior share, ``abstained`` whether the first posterior
    is below the network's abstain threshold.
    """
    from gasolve.indexing.extinctions import index_and_rank
    from symnet.labels import space_group_symbol

    probabilities = result.space_group_probabilities
    analysis, note = index_and_rank(pattern, radiation, prior=lambda number: float(probabilities[number - 1]))
    if analysis is None:
        return {**answer, "note": note}
    by_number: dict[int, float] = {}
    by_system: dict[str, float] = {}
    for ranked in analysis.space_groups:
        by_number[ranked.group.number] = by_number.get(ranked.group.number, 0.0) + ranked.posterior
        system = ranked.group.crystal_system
        by_system[system] = by_system.get(system, 0.0) + ranked.posterior
    order = sorted(by_number, key=lambda n: -by_number[n])
    system = max(by_system, key=lambda name: by_system[name])
    first = analysis.classes[0]
    return {
        **answer,
        "crystal_system": {"name": system, "probability": round(by_system[system], 4)},
        "space_groups": [
            {"number": n, "symbol": space_group_symbol(n), "probability": round(by_number[n], 4)} for n in order[:top]
        ],
        "abstained": bool(by_number[order[0]] < abstain_threshold),
        "route": "extinctions+network",
        "cell": [round(float(x), 5) for x in analysis.cell],
        "bravais": analysis.bravais,
        "note": note,
        "extinction_class": {"name": first.extinction_class.name, "log_likelihood": round(first.log_likelihood, 3)},
        "ranked_settings": [g.as_dict() for g in analysis.space_groups[:top]],
    }
