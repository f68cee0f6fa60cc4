"""`gasolve train-symmetry CONFIG.toml`: build the training data (if missing) and train the symmetry CNN."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-symmetry",
        help="train the crystal-system / space-group network from scratch",
        description="Compute peak lists of the Materials Project and PyXtal structures of CONFIG ([data]; shards "
        "that exist are kept), then train, calibrate and evaluate the network ([model], [train], [augment]). "
        "Writes config.toml, splits.json, metrics.json, summary.json and checkpoint.msgpack to [train] workdir. "
        "Presets: symnet/presets/*.toml.",
    )
    parser.add_argument("config", help="training configuration (TOML)")
    parser.add_argument("--workers", type=int, default=2, help="processes computing peak lists (default 2)")
    parser.add_argument("--data-only", action="store_true", help="stop after building the data")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from gasolve.errors import InputError
    from symnet.build import build_dataset
    from symnet.configs import load_config

    if args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    config = load_config(args.config)
    progress = not args.quiet and sys.stderr.isatty()
    build_dataset(config.data, workers=args.workers, progress=progress)
    if args.data_only:
        return 0
    from symnet.train import train_and_evaluate

    summary = train_and_evaluate(config, progress=progress, log=lambda line: print(line, file=sys.stderr))
    print(json.dumps(summary, indent=2))
    return 0
