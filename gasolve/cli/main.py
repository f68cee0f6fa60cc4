"""Entry point of the ``gasolve`` command.

User mistakes (:class:`~gasolve.errors.InputError`, bad options) end with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from gasolve import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from gasolve.cli import (
        classify,
        compare,
        harvest,
        index,
        lebail,
        refine,
        run,
        score,
        simulate,
        solve,
        train_nn,
        train_symmetry,
    )

    parser = _Parser(prog="gasolve", description="Crystal structure solution from X-ray powder diffraction.")
    parser.add_argument("--version", action="version", version=f"gasolve {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    simulate.add_parser(subparsers)
    score.add_parser(subparsers)
    lebail.add_parser(subparsers)
    index.add_parser(subparsers)
    refine.add_parser(subparsers)
    run.add_parser(subparsers)
    solve.add_parser(subparsers)
    compare.add_parser(subparsers)
    harvest.add_parser(subparsers)
    train_nn.add_parser(subparsers)
    classify.add_parser(subparsers)
    train_symmetry.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from gasolve.errors import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as error:
        print(f"gasolve {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gasolve {args.command}: interrupted", file=sys.stderr)
        return 130


def console() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    console()
