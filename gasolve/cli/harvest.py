"""`gasolve harvest CONFIG.toml`: record every model the GA evaluates on a known structure (nnselect training data)."""

from __future__ import annotations

import argparse
import sys

#: Label radii (Å) of the printed base-rate table: the paper's 0.1 Å and two wider ones.
TABLE_RADII = (0.1, 0.3, 0.5)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "harvest",
        help="record the GA's models of a known structure with per-site labels (nnselect training data)",
        description="Run the GA with seeds [ga] seed, +1, +2, ... on the structure of CONFIG (which needs a "
        "[reference] cif) and store every model evaluated, with its Rwp and each site's distance to the "
        "reference, as a resumable data set (sharded npz and manifest.json). Running the same command again "
        "continues an interrupted harvest. Prints each site's base rate at 0.1, 0.3 and 0.5 Å.",
    )
    parser.add_argument("config", help="run configuration (TOML) with a [reference] table")
    parser.add_argument("--runs", type=int, help="stop when the data set holds this many GA runs")
    parser.add_argument(
        "--models", type=int, default=150_000, help="stop when the data set holds this many models (default 150000)"
    )
    parser.add_argument("--max-generations", type=int, help="most generations per run (default: the [ga] budget)")
    parser.add_argument("--out", help="data set folder (default: <[output] dir>/harvest)")
    parser.add_argument("--train-nn", action="store_true", help="train the selection network when harvesting ends")
    parser.add_argument(
        "--nn-config", default="default", help="training preset or TOML file for --train-nn (default: default)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _positive(value: int | None, option: str, minimum: int = 1) -> None:
    from gasolve.errors import InputError

    if value is not None and value < minimum:
        raise InputError(f"{option} must be at least {minimum}, got {value}")


def base_rate_table(report: dict) -> str:
    """The per-site base rates of a harvest report as aligned text, one row per site, one column per radius."""
    radii = [key for key in (f"{r:g}" for r in report["radii"]) if key in report]

    def cell(value: float | None) -> str:
        return f"{'-':>10}" if value is None else f"{value:>10.4f}"

    lines = [f"{'site':<6}" + "".join(f"{'≤ ' + r + ' Å':>10}" for r in radii)]
    for label in report["site_labels"]:
        lines.append(f"{label:<6}" + "".join(cell(report[r]["base_rates"][label]) for r in radii))
    lines.append(f"{'all':<6}" + "".join(cell(report[r]["all_sites"]) for r in radii))
    return "\n".join(lines)


def _train_args(dataset, workdir, nn_config: str) -> argparse.Namespace:
    """The options of ``gasolve train-nn DATASET --config NN_CONFIG --out WORKDIR``."""
    return argparse.Namespace(
        dataset=str(dataset),
        config=nn_config,
        transfer=None,
        out=str(workdir),
        epochs=None,
        label_radius=None,
        seed=None,
        quiet=False,
    )


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from gasolve.config import load_run_config
    from gasolve.errors import InputError
    from nnselect.harvest import harvest

    _positive(args.runs, "--runs")
    _positive(args.models, "--models")
    _positive(args.max_generations, "--max-generations", 0)
    config = load_run_config(args.config)
    if args.train_nn:  # a bad training config is refused before any harvesting
        from gasolve.cli import train_nn

        train_nn.training_config(_train_args(".", ".", args.nn_config))
    if config.reference is None:
        raise InputError("harvest needs the known structure: add a [reference] table with its cif", args.config)
    out = Path(args.out).expanduser().resolve() if args.out else config.output.dir / "harvest"
    show = not args.quiet and sys.stderr.isatty()
    progress = None
    callback = None
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
        )
        task = progress.add_task(f"{config.structure.name} models", total=args.models, info="")
        started = time.monotonic()
        first: list[int] = []

        def callback(state) -> None:
            if not first:
                first.append(state.n_models - state.run_models)  # models stored before this session
            rate = (state.n_models - first[0]) / max(time.monotonic() - started, 1e-9)
            progress.update(
                task,
                completed=min(state.n_models, args.models),
                info=f"run {state.runs_done + 1} (seed {state.seed}) gen {state.generation}  {rate:,.0f} models/s  "
                f"best Rwp {state.best_rwp:.4f}" + ("  solved" if state.solved else ""),
            )

        progress.start()
    try:
        dataset = harvest(
            config,
            out,
            n_runs=args.runs,
            target_models=args.models,
            max_generations_per_run=args.max_generations,
            progress=callback,
        )
    except KeyboardInterrupt:
        print(
            f"gasolve harvest: interrupted; completed runs are stored in {out}; run the same command to continue",
            file=sys.stderr,
        )
        return 130
    finally:
        if progress is not None:
            progress.stop()
    report = dataset.report()
    print(
        f"{config.structure.name}: {report['n_models']:,} models from {report['n_runs']} runs "
        f"({report['runs_solved']} solved) in {out}"
    )
    print("share of models with the site in place (base rate):")
    print(base_rate_table(report))
    if args.train_nn:
        train_nn.run(_train_args(out, out / "nn", args.nn_config))
    return 0
