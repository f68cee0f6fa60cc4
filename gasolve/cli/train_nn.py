"""`gasolve train-nn DATASET`: train the per-site selection network on a harvested data set (nnselect)."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train-nn",
        help="train the per-site selection network on a harvested data set",
        description="Train the network that predicts, from a model's difference profile, which of its atoms lie "
        "within the label radius of the truth (Zaloga et al. 2019, part 2). The settings come from a preset "
        "('default': the paper's CNN, MSE, 100 epochs of 1,200 patterns; 'residual': gasolve's residual CNN "
        "with class-balanced cross-entropy and a split by GA run) or from a TOML file with one [train] table. "
        "Writes metrics.json after every epoch, checkpoint.msgpack (lowest validation loss) and last.msgpack.",
    )
    parser.add_argument("dataset", help="harvested data set folder (gasolve harvest)")
    parser.add_argument("--config", default="default", help="preset name or TOML file (default: default)")
    parser.add_argument("--transfer", help="a second data set evaluated every epoch (e.g. K4SnO4 models)")
    parser.add_argument("--out", help="output folder (default: DATASET/nn)")
    parser.add_argument("--epochs", type=int, help="override the number of epochs")
    parser.add_argument("--label-radius", type=float, help="override the label radius (Å)")
    parser.add_argument("--seed", type=int, help="override the training seed")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    parser.set_defaults(handler=run)


def training_config(args: argparse.Namespace):
    """The TrainConfig the options describe (preset or TOML file, then the command-line overrides)."""
    from pathlib import Path

    from nnselect.configs import PRESETS, TrainConfig, get_preset, load_config

    overrides = {
        "dataset": str(Path(args.dataset).expanduser().resolve()),
        "transfer_dataset": str(Path(args.transfer).expanduser().resolve()) if args.transfer else None,
        "epochs": args.epochs,
        "label_radius": args.label_radius,
        "seed": args.seed,
    }
    if args.config in PRESETS:
        values = get_preset(args.config).to_dict()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.from_dict(values, f"preset {args.config!r}")
    if not Path(args.config).is_file():
        from gasolve.errors import InputError

        raise InputError(f"--config {args.config!r} is neither a preset ({', '.join(PRESETS)}) nor a TOML file")
    return load_config(args.config, **overrides)


def _mean(values: list) -> float:
    finite = [v for v in values if v is not None]
    return sum(finite) / len(finite) if finite else float("nan")


def _epoch_line(record: dict) -> str:
    """One line per epoch: losses, mean per-site accuracy (validation and transfer) and seconds."""
    validation = record["validation"]
    line = f"epoch {record['epoch']:>3}  train loss {record['train_loss']:.4f}"
    line += f"  validation loss {validation['loss']:.4f}  accuracy {_mean(validation['accuracy']):.3f}"
    if "transfer" in record:
        line += f"  transfer accuracy {_mean(record['transfer']['accuracy']):.3f}"
    return line + f"  ({record['seconds']['train'] + record['seconds']['evaluation']:.1f} s)"


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gasolve.errors import InputError

    if args.epochs is not None and args.epochs < 1:
        raise InputError(f"--epochs must be at least 1, got {args.epochs}")
    dataset = Path(args.dataset)
    if not (dataset / "manifest.json").is_file():
        raise InputError("not a harvested data set (no manifest.json); make one with gasolve harvest", str(dataset))
    config = training_config(args)
    out = Path(args.out) if args.out else dataset / "nn"
    from nnselect.train import train_and_evaluate

    callback = None if args.quiet else (lambda record: print(_epoch_line(record), file=sys.stderr, flush=True))
    summary = train_and_evaluate(config, out, on_epoch=callback)
    best = summary.get("best_epoch")
    print(f"trained {config.model} for {config.epochs} epochs; best validation loss at epoch {best}: {out}")
    return 0
