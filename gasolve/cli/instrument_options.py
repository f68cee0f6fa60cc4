"""Command-line options shared by the commands that compute patterns: wavelength and peak profile."""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def add_instrument_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("instrument")
    group.add_argument("--wavelength", default="CuKa1", help="Å, or CuKa1, CuKa12 (Kα1+Kα2, ratio 0.5); default CuKa1")
    widths = group.add_mutually_exclusive_group()
    widths.add_argument("--fwhm", type=finite_float, metavar="DEG", help="constant FWHM (degrees 2θ); default 0.1")
    widths.add_argument(
        "--caglioti",
        type=finite_float,
        nargs=3,
        metavar=("U", "V", "W"),
        help="FWHM² = U tan²θ + V tanθ + W (degrees²)",
    )
    group.add_argument("--eta", type=finite_float, default=0.5, help="pseudo-Voigt Lorentzian fraction; default 0.5")
    group.add_argument("--eta-slope", type=finite_float, default=0.0, help="change of η per degree 2θ; default 0")
    group.add_argument("--zero", type=finite_float, default=0.0, help="zero shift (degrees 2θ); default 0")
    group.add_argument("--cutoff", type=finite_float, default=15.0, help="peak cut-off in FWHM; default 15")
    group.add_argument(
        "--monochromator",
        type=finite_float,
        default=0.0,
        metavar="DEG",
        help="monochromator 2θ_M for the polarisation factor (degrees); default 0 (none)",
    )


def profile_from_args(args: argparse.Namespace):
    """The :class:`~gasolve.diffraction.profile.PeakProfile` and radiation the options describe."""
    from gasolve.diffraction.profile import PeakProfile
    from gasolve.diffraction.wavelength import parse_radiation

    common = {
        "eta": args.eta,
        "eta_slope": args.eta_slope,
        "zero": args.zero,
        "cutoff": args.cutoff,
        "monochromator_two_theta": args.monochromator,
    }
    if args.caglioti is not None:
        profile = PeakProfile(caglioti=tuple(args.caglioti), **common)
    else:
        profile = PeakProfile.constant_fwhm(0.1 if args.fwhm is None else args.fwhm, **common)
    return parse_radiation(args.wavelength), profile


def describe_profile(radiation, profile) -> str:
    u, v, w = profile.caglioti
    width = f"fwhm {math.sqrt(w):g}" if u == 0 and v == 0 else f"caglioti U={u:g} V={v:g} W={w:g}"
    return (
        f"wavelength {radiation.name} ({', '.join(f'{lam:.6f} Å x{wt:g}' for lam, wt in radiation.lines)}); "
        f"pseudo-Voigt {width} deg, eta {profile.eta:g} + {profile.eta_slope:g}*2theta, zero {profile.zero:g} deg, "
        f"cutoff {profile.cutoff:g} FWHM, monochromator 2theta {profile.monochromator_two_theta:g} deg"
    )
