"""`gasolve lebail CONFIG.toml`: fit the profile, zero shift and cell of the config's pattern.

The fit is Pawley-type (each reflection's intensity a free least-squares parameter, eliminated exactly); like a
Le Bail fit it needs only the cell and space group. See :mod:`gasolve.profile_fit.lebail`.
"""

from __future__ import annotations

import argparse

from gasolve.io.profile_fit_outputs import write_outputs


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "lebail",
        help="fit profile, zero shift and cell of a measured pattern (Le Bail/Pawley)",
        description="Whole-pattern fit of the config's pattern with its cell and space group, every reflection's "
        "intensity free (Pawley-type, as in a Le Bail fit): zero shift, cell, Caglioti "
        "U, V, W, pseudo-Voigt eta and its slope, peak asymmetry and Chebyshev background. Writes lebail.toml "
        "(the refined [structure] cell and [pattern.profile] for the run config), lebail.json and lebail_fit.png.",
    )
    parser.add_argument("config", help="run configuration (TOML); [pattern.profile] is not needed")
    parser.add_argument("--out", help="output folder; default the config's [output] dir")
    parser.add_argument(
        "--asymmetry", choices=("auto", "on", "off"), default="auto", help="refine peak asymmetry (default auto)"
    )
    parser.add_argument(
        "--asymmetry-model",
        choices=("fcj", "bb"),
        default="fcj",
        help="fcj: Finger-Cox-Jephcoat axial divergence (one SH/L, default); bb: Berar-Baldinozzi (4 terms)",
    )
    parser.add_argument("--displacement", action="store_true", help="also refine the specimen displacement")
    parser.add_argument(
        "--shape",
        choices=("pseudo-voigt", "tch"),
        help="peak shape: pseudo-voigt (one width, eta linear in 2theta) or tch (Thompson-Cox-Hastings: Gaussian "
        "U, V, W and Lorentzian X/cos(theta) + Y tan(theta)); default the config's [pattern] peak_shape",
    )
    parser.set_defaults(handler=run)


def describe(result) -> str:
    """Two lines: the refined cell and profile, and the agreement indices."""
    p = result.profile
    from gasolve.crystal.cif_io import with_esd

    cell = ", ".join(with_esd(x, e, 5) for x, e in zip(result.cell.parameters, result.cell_esd, strict=True))
    m = result.metrics
    return (
        f"cell {cell}\n"
        f"zero {p.zero:.4f}°  U V W {p.caglioti[0]:.5f} {p.caglioti[1]:.5f} {p.caglioti[2]:.5f}  "
        + (f"X Y {p.lorentzian[0]:.5f} {p.lorentzian[1]:.5f}" if p.tch else f"eta {p.eta:.3f} + {p.eta_slope:.5f}·2θ")
        + (f"  axial SH/L {p.axial:.4f}" if p.axial else "")
        + (f"  asymmetry [{', '.join(f'{a:.3f}' for a in p.asymmetry)}]" if any(p.asymmetry) else "")
        + (f"  displacement {p.displacement:.4f}°" if p.displacement else "")
        + f"\nRwp {m.rwp:.5f}   Rp {m.rp:.5f}   Rexp {m.rexp:.5f}   χ² {m.chi2:.4f}"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gasolve.config import load_observed, load_run_config
    from gasolve.errors import InputError
    from gasolve.profile_fit import LeBailSettings, fit_lebail

    config = load_run_config(args.config).with_overrides(out=args.out)
    observed = load_observed(config)
    settings = LeBailSettings(
        background_terms=config.pattern.background_terms,
        asymmetry=args.asymmetry,
        asymmetry_model=args.asymmetry_model,
        displacement=args.displacement,
        polarisation=config.pattern.polarisation,
        shape=args.shape or config.pattern.peak_shape,
    )
    structure = config.structure
    result = fit_lebail(observed, structure.cell, structure.space_group, config.pattern.radiation, settings)
    out = Path(config.output.dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder: {error.strerror}", str(out)) from None
    write_outputs(result, out, f"{structure.name}: profile fit, intensities free", str(config.pattern.file))
    print(f"{structure.name} ({structure.space_group.symbol}) profile fit of {config.pattern.file}")
    print("  " + describe(result).replace("\n", "\n  "))
    print(f"  outputs in {out}: lebail.toml, lebail.json, lebail_fit.png")
    return 0
