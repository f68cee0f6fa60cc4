"""`gasolve run CONFIG.toml`: solve a structure from its powder pattern with the multipopulation GA."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="solve a structure with the multipopulation GA",
        description="Search the coordinates of the independent atoms with the memetic multipopulation GA, refine "
        "the best models, and write best.cif, summary.json, history.csv, fit.png and convergence.png.",
    )
    parser.add_argument("config", help="run configuration (TOML)")
    parser.add_argument("--out", help="output folder (default: [output] dir, else runs/NAME beside the config)")
    parser.add_argument("--seed", type=int, help="overrides [ga] seed")
    parser.add_argument("--max-evaluations", type=int, help="overrides [ga] max_evaluations")
    parser.add_argument("--stop-when-solved", action="store_true", help="stop at the first solution ([reference])")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    parser.add_argument(
        "--rietveld",
        action="store_true",
        help="end with a Rietveld refinement of the best model (cell, zero, profile, coordinates, B, preferred "
        "orientation) as [refinement] says; also on whenever the config has a [refinement] table",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--scheduler",
        help="composition search: where the hypotheses run: 'local' (a new Dask LocalCluster, the default), "
        "'synchronous' (in this process, one after another) or the address of a running Dask scheduler",
    )
    parser.add_argument("--workers", type=int, help="composition search: LocalCluster workers (default: the cores)")
    parser.set_defaults(handler=run)


def _fingerprint(config) -> str:
    """What a checkpoint must have been made with to be resumed: structure, pattern, the GA's layout and rates,
    the seed and the network; not the evaluation budget or the checkpoint interval, which a resumed run may change.
    """
    import hashlib

    text = repr(
        (
            config.structure,
            config.pattern.file,
            config.pattern.radiation,
            config.pattern.range,
            config.pattern.profile,
            config.pattern.polarisation,  # also used by the Le Bail fit when there is no profile
            config.pattern.background_terms,
            config.ga.layout,
            config.ga.rates,
            config.ga.budget.seed,
            config.nn,
            config.selection,
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _selector_factory(config, problem):
    from nnselect.selector import SiteSelector

    return SiteSelector(config.nn.model, problem, config.nn.batch_size)


def _ranker_factory(config, problem):
    from nnselect.peratom.ranker import ranker_factory

    return ranker_factory(config, problem)


def shows_progress(args: argparse.Namespace) -> bool:
    """Whether progress bars are shown: not ``--quiet`` and stderr is a terminal."""
    return not args.quiet and sys.stderr.isatty()


class LightAtomBar:
    """The progress bar of the light-atom search (:mod:`gasolve.light_atoms`), shown from its first generation."""

    def __init__(self, show: bool):
        self.show = show
        self.progress = self.task = None

    def __call__(self, evaluations: float, budget: float, rwp: float) -> None:
        if not self.show:
            return
        if self.progress is None:
            self.progress, self.task = _progress(budget, "light atoms", True)
        self.progress.update(self.task, total=budget, completed=min(evaluations, budget), info=f"best Rwp {rwp:.4f}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _progress(total: int, name: str, show: bool):
    """A rich progress bar over evaluations, or None when not shown."""
    if not show:
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn()
    )
    task = progress.add_task(name, total=total, info="")
    progress.start()
    return progress, task


def rietveld_stage(result, out) -> dict:
    """Refine the run's model (:func:`gasolve.pipeline.rietveld`), write refined.cif and its report files into
    ``out``; the summary.json entry (also used for the winner of a composition search)."""
    from gasolve import pipeline
    from gasolve.rietveld.outputs import write_refinement

    refined = pipeline.rietveld(result)
    config = result.setup.config
    comments = [f"Rietveld refinement by gasolve of the best model of the run against {config.pattern.file}"]
    write_refinement(refined, result.setup.observed, config.pattern.radiation, out, config.structure.name, comments)
    m = refined.metrics
    entry = {"rwp": m.rwp, "rp": m.rp, "rexp": m.rexp, "chi2": m.chi2, "r_bragg": refined.r_bragg}
    entry["refined_cif"] = str((out / "refined.cif").resolve())
    if refined.error:
        entry["stopped_early"] = refined.error
    if refined.hydrogens:  # riding, held or free (gasolve.rietveld.riding)
        from gasolve.rietveld.report import hydrogen_records

        entry["hydrogens"] = hydrogen_records(refined)
    if refined.model.corrections:  # surface roughness, absorption (gasolve.rietveld.corrections)
        from gasolve.rietveld.report import specimen_corrections

        entry["specimen_corrections"] = specimen_corrections(refined)
    if refined.model.aniso_sites:  # anisotropic U (gasolve.rietveld.adp), as refinement.json has them
        from gasolve.rietveld.report import anisotropic_records

        entry["anisotropic"] = anisotropic_records(refined)
        entry["non_positive_definite"] = list(refined.non_positive_definite)
    return {"rietveld": entry}


def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def print_rietveld(extra: dict) -> None:
    """One line on the terminal for the summary entry of :func:`rietveld_stage`."""
    r = extra["rietveld"]
    print(f"Rietveld refinement: Rwp {r['rwp']:.4f}, χ² {r['chi2']:.3f}, R_Bragg {r['r_bragg']:.4f} (refined.cif)")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from gasolve import __version__, pipeline
    from gasolve.config import load_run_config, write_resolved
    from gasolve.errors import InputError
    from gasolve.io.checkpoint import read_checkpoint, write_checkpoint

    config = load_run_config(args.config).with_overrides(
        out=args.out, seed=args.seed, max_evaluations=args.max_evaluations
    )
    if args.stop_when_solved and config.reference is None:
        raise InputError("--stop-when-solved needs a [reference] cif in the config", args.config)
    if config.structure.composition is not None:
        from gasolve.cli.run_composition import run_composition

        return run_composition(args, config)
    if args.scheduler is not None or args.workers is not None:
        raise InputError("--scheduler and --workers apply to a [structure] composition search only", args.config)
    out = Path(config.output.dir)
    checkpoint_path = out / "checkpoint.pkl"
    fingerprint = _fingerprint(config)
    record = None
    if args.resume:
        payload = read_checkpoint(checkpoint_path)
        if payload["fingerprint"] != fingerprint:
            raise InputError(
                "the checkpoint was made with a different structure, pattern or GA setting; resume with the same "
                "config (only max_evaluations, checkpoint_seconds and light_atom_evaluations may change)",
                str(checkpoint_path),
            )
        record = payload["record"]
    setup = pipeline.prepare(config, selector_factory=_selector_factory, ranker_factory=_ranker_factory)
    from gasolve.ga.budget_check import budget_warning

    cost = warning = None  # from the first generation, whose evaluations measure a generation's cost
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder: {error.strerror}", str(out)) from None
    write_resolved(setup.config, out / "config.toml")
    if setup.profile_fit is not None:
        from gasolve.io.profile_fit_outputs import write_outputs

        name = config.structure.name
        write_outputs(setup.profile_fit, out, f"{name}: profile fit, intensities free", str(config.pattern.file))

    def save(current):
        write_checkpoint(checkpoint_path, {"fingerprint": fingerprint, "record": current, "version": __version__})

    budget = config.ga.budget
    progress, task = _progress(budget.max_evaluations, config.structure.name, shows_progress(args))
    last_save = time.monotonic()
    current = record
    interrupted = False
    try:
        for current in pipeline.search(setup, record):
            state = current.state
            if cost is None:
                cost = pipeline.epoch_cost(setup, state.evaluations if record is None else None)
                warning = budget_warning(config.ga, cost)
                if warning is not None and record is None:
                    print_warning = progress.console.print if progress is not None else _stderr
                    print_warning(f"gasolve run: warning: {warning}")
            if progress is not None:
                rate = state.evaluations / max(current.seconds, 1e-9)
                progress.update(
                    task,
                    completed=min(state.evaluations, budget.max_evaluations),
                    info=f"gen {state.generation}  {rate:,.0f} eval/s  best Rwp {state.best_rwp:.4f}"
                    + ("  solved" if current.solved else ""),
                )
            if time.monotonic() - last_save >= budget.checkpoint_seconds:
                save(current)
                last_save = time.monotonic()
            if args.stop_when_solved and current.solved:
                break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if progress is not None:
            progress.stop()
    if current is not None:
        save(current)
    if interrupted:
        if current is None:
            print("gasolve run: interrupted before the first generation; nothing to resume", file=sys.stderr)
        else:
            print(f"gasolve run: interrupted; checkpoint saved, continue with --resume --out {out}", file=sys.stderr)
        return 130
    bar = LightAtomBar(shows_progress(args))
    try:
        result = pipeline.finish(setup, current, light_report=bar)
    finally:
        bar.stop()
    extra = {}
    if cost is not None:
        extra["budget_check"] = {"epoch_evaluations": cost.epoch, "needed": cost.needed(), "warning": warning}
    if args.rietveld or "refinement" in config.raw:
        extra.update(rietveld_stage(result, out))
    light = pipeline.light_atom_comments(result)
    pipeline.write_run(result, out, extra=extra, cif_comments=tuple(light))
    for line in light:
        print(line)
    print(pipeline.summary_line(result))
    if "rietveld" in extra:
        print_rietveld(extra)
    special = result.summary.get("special_positions")
    if special:
        names = [f"{item['site']} {item['wyckoff'] or '?'} (x{item['multiplicity']})" for item in special]
        print(f"sites on special positions: {', '.join(names)}")
    for line in pipeline.verdict_lines(result):
        print(line)
    print(f"outputs in {out}")
    return 0
