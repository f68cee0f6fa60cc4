"""`gasolve compare MODEL.cif REFERENCE.cif`: distance of every reference site to the model after the best alignment."""

from __future__ import annotations

import argparse
import json

from gasolve.cli.instrument_options import finite_float


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare a model structure with a reference structure",
        description="Align MODEL with REFERENCE (the Euclidean normaliser of the space group in this cell: "
        "origin shifts, the enantiomorph, axis changes that keep the group and the metric; lattice "
        "translations, renumbering of equal atoms) and print, for every independent reference site, the "
        "distance to its model atom, with max and RMS, and whether the model is a solution (every site within "
        "the tolerance). Both must have the same cell and the same atoms per cell.",
    )
    parser.add_argument("model", help="CIF file of the trial structure")
    parser.add_argument("reference", help="CIF file of the reference structure")
    parser.add_argument(
        "--tolerance", type=finite_float, default=0.3, help="largest site distance of a solution (Å); default 0.3"
    )
    parser.add_argument(
        "--no-inversion",
        action="store_true",
        help="do not try alignments that change the hand (inversion; keep the model's hand)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from gasolve.compare import compare_structures
    from gasolve.crystal import read_cif
    from gasolve.crystal.normalizer import operation_triplet
    from gasolve.errors import InputError

    if not args.tolerance > 0:
        raise InputError(f"--tolerance must be positive (Å), got {args.tolerance}")
    model = read_cif(args.model)
    reference = read_cif(args.reference)
    try:
        comparison = compare_structures(model, reference, allow_inversion=not args.no_inversion)
    except InputError as error:
        raise InputError(error.message, f"{args.model} vs {args.reference}") from None
    solved = comparison.solved(args.tolerance)
    sites = [
        {
            "label": site.label,
            "element": site.element,
            "distance": float(distance),
            "model_site": model.sites[index].label,
        }
        for site, distance, index in zip(reference.sites, comparison.site_distances, comparison.assignment, strict=True)
    ]
    result = {
        "model": args.model,
        "reference": args.reference,
        "model_space_group": model.space_group.symbol,
        "reference_space_group": reference.space_group.symbol,
        "sites": sites,
        "max_distance": comparison.max_distance,
        "rms_distance": comparison.rms_distance,
        "origin_shift": [float(x) for x in comparison.origin_shift],
        "inverted": comparison.inverted,
        "transformation": [[float(x) for x in row] for row in comparison.transformation],
        "alignment": operation_triplet(comparison.transformation, comparison.origin_shift),
        "tolerance": args.tolerance,
        "n_within": comparison.n_within(args.tolerance),
        "solved": solved,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"{model.name} ({model.space_group.symbol}, {model.formula()}) vs reference {reference.name} "
        f"({reference.space_group.symbol}, {reference.formula()})"
    )
    shift = ", ".join(f"{x:.4f}" for x in comparison.origin_shift)
    linear = comparison.transformation
    if np.allclose(linear, np.eye(3)) or np.allclose(linear, -np.eye(3)):
        print(f"  alignment: model {'inverted, then ' if comparison.inverted else ''}shifted by ({shift})")
    else:
        print(f"  alignment: model moved by {result['alignment']} (an axis change that keeps the group and the cell)")
    width = max(len("site"), *(len(site["label"]) for site in sites))
    print(f"  {'site':<{width}}  element  distance/Å  model site")
    for site in sites:
        line = f"  {site['label']:<{width}}  {site['element']:<7}  {site['distance']:10.4f}  {site['model_site']}"
        print(line + ("" if site["distance"] <= args.tolerance else "  > tolerance"))
    print(f"  max {comparison.max_distance:.4f} Å   RMS {comparison.rms_distance:.4f} Å")
    print(
        f"  solved: {'yes' if solved else 'no'} ({result['n_within']} of {len(sites)} sites within "
        f"{args.tolerance:g} Å)"
    )
    return 0
