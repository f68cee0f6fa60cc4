"""`gasolve run` of a config with ``[structure] composition``: race the structure hypotheses, write the winner.

The science is in :mod:`gasolve.hypotheses` (hypotheses, the race and its stop rule) and :mod:`gasolve.pipeline`
(each hypothesis's run); this module shows progress, checkpoints the race after every finished run, and writes
the outputs: best.cif (the winner, refined), summary.json (with the hypothesis table), hypotheses/rankN.cif (the
runners-up) and solution.toml (the winner as a plain ``sites`` + ``wyckoff`` config).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

#: Runners-up written as CIFs beside best.cif.
RUNNERS_UP = 2


def _save(path: Path, fingerprint: str, config, state) -> None:
    from gasolve import __version__
    from gasolve.io.checkpoint import write_checkpoint

    write_checkpoint(path, {"fingerprint": fingerprint, "config": config, "race": state, "version": __version__})


def _print_table(rows: list[dict], limit: int = 10) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="hypotheses (best first)")
    for column in ("rank", "Z", "assignment", "free", "Rwp", "χ²", "finds", "evaluations", "s", "status"):
        table.add_column(column, justify="left" if column in ("assignment", "status") else "right")
    for row in rows[:limit]:
        tried = math.isfinite(row["rwp"])
        table.add_row(
            str(row["rank"]),
            str(row["z"]),
            row["assignment"],
            str(row["n_free"]),
            f"{row['rwp']:.4f}" if tried else "-",
            f"{row['chi2']:.3g}" if tried else "-",
            str(row["finds"]),
            f"{row['evaluations']:,.0f}",
            f"{row['seconds']:.1f}",
            row["status"] + (f": {row['error']}" if row.get("error") else ""),
        )
    Console(file=sys.stdout, width=160).print(table)
    if len(rows) > limit:
        print(f"... and {len(rows) - limit} more in summary.json")


def write_solution_toml(result, path: Path, evaluations: float) -> None:
    """The winner as a plain ``sites`` + ``wyckoff`` config that ``gasolve run`` reproduces.

    ``evaluations`` is the budget the winner's run was given (its last target): with the same seed, profile and GA
    settings, ``gasolve run`` repeats that run generation for generation. A winner of the general route is written
    with the Wyckoff positions it found, which ``gasolve run`` solves as a new, smaller search.
    """
    import dataclasses

    from gasolve.config import write_resolved

    config = result.setup.config
    structure = config.structure
    if result.wyckoff is not None and structure.occupancy_correction:  # general route: the positions it found
        structure = dataclasses.replace(
            structure,
            sites=tuple(site.element for site in result.structure.sites),
            b_iso=tuple(site.b_iso for site in result.structure.sites),
            wyckoff=result.wyckoff,
            occupancy_correction=False,
        )
    ga = config.ga.replace({"max_evaluations": max(1, math.ceil(evaluations))})
    solution = dataclasses.replace(config, structure=structure, ga=ga, reference=None)
    write_resolved(solution, path)


def race_loop(fitted, observed, state, settings, total: float, runner, save, progress=None, task=None):
    """Run the race to its end: rungs planned by :func:`gasolve.hypotheses.race.plan_rung`, runs on ``runner``,
    ``save(state)`` after every finished run and rung. Returns the final state (KeyboardInterrupt propagates)."""
    from gasolve import pipeline
    from gasolve.hypotheses import race
    from gasolve.hypotheses.completion import hypothesis_key
    from gasolve.parallel import Runner

    shared = runner.share(observed)
    here = Runner(None)
    while not state.stop:
        plan = race.plan_rung(state, settings, total)
        if not plan:
            return race.conclude(state, "no run left to advance within the budget")
        # A lone run (one hypothesis, or the last one left) runs here on every core rather than on one worker's.
        alone = len(plan) == 1 and runner.own_cluster
        calls = {
            i: (
                race.hypothesis_config(fitted, state.lanes[i].hypothesis, target),
                observed if alone else shared,
                state.lanes[i].record,
                target,
                state.noise_chi2,
                pipeline.SAME_MODEL_TOLERANCE,
                state.lanes[i].hypothesis,
                settings.noise_factor * state.noise_chi2 if settings.complete_from > 0 else math.inf,
                state.lanes[i].hypothesis.atoms_per_cell(fitted.structure),
            )
            for i, target in plan.items()
        }
        for i, outcome, error in (here if alone else runner).run(race.advance, calls):
            if error is not None:
                outcome = {"error": f"{type(error).__name__}: {error}"}
                print(f"hypothesis {i + 1} failed: {outcome['error']}", file=sys.stderr)
            state = race.tell(state, i, outcome)
            save(state)
            if progress is not None:
                best = min((lane.rwp for lane in state.lanes), default=math.inf)
                progress.update(
                    task,
                    completed=min(state.evaluations, total),
                    info=f"rung {state.rung + 1}  {len(plan)} racing  best Rwp {best:.4f}",
                )
        state = race.decide(state, settings, total)
        before = state.lanes
        state = race.admit_completions(state, settings, lambda h: hypothesis_key(h, fitted.structure))
        for i, lane in enumerate(state.lanes):
            if i >= len(before):
                print(f"completed from hypothesis {lane.origin + 1}'s difference map: {lane.hypothesis.describe()}")
            elif before[i].status == "dropped" and lane.status == "waiting":
                print(f"hypothesis {i + 1} back in the race: hypothesis {lane.origin + 1}'s difference map gives it")
        save(state)
    return state


def run_race(fitted, observed, state, settings, args, name: str, save):
    """The race with a progress bar on ``args.scheduler``; None when interrupted (the checkpoint is saved)."""
    from gasolve.cli.run import _progress, shows_progress
    from gasolve.parallel import make_runner

    total = fitted.ga.budget.max_evaluations
    if len(state.lanes) == 1 and args.scheduler in (None, "local"):
        runner = make_runner("synchronous", args.workers)  # one hypothesis: every core here, no cluster to start
    else:
        runner = make_runner(args.scheduler, args.workers)
    progress, task = _progress(total, name, shows_progress(args))
    try:
        return race_loop(fitted, observed, state, settings, total, runner, save, progress, task)
    except KeyboardInterrupt:
        return None
    finally:
        if progress is not None:
            progress.stop()
        runner.close()


def write_race_outputs(
    fitted,
    observed,
    state,
    out: Path,
    seconds: float,
    extra: dict | None = None,
    source="",
    reference=None,
    rietveld: bool = False,
    show_progress: bool = False,
):
    """Refine the winner and write best.cif, summary.json (with the hypothesis table), solution.toml and the
    runners-up; print the table and the verdict. ``reference``: the config's [reference], to judge the winner.
    ``rietveld``: end with the Rietveld refinement of the winner (refined.cif and its report files, as
    ``gasolve run --rietveld``). ``show_progress``: a progress bar for the light-atom search. Raises InputError when
    every hypothesis failed."""
    import dataclasses

    from gasolve import pipeline
    from gasolve.crystal import read_cif, write_cif
    from gasolve.errors import InputError
    from gasolve.hypotheses import race
    from gasolve.solve import Judge

    rows = race.table(state)
    _print_table(rows)
    print(f"race ended: {state.stop} ({seconds:.1f} s)")
    if state.winner is None:
        raise InputError("every hypothesis failed (see the messages above); nothing to write", source)
    lane = state.lanes[state.winner]
    setup = pipeline.prepare(race.hypothesis_config(fitted, lane.hypothesis, lane.target), observed)
    if reference is not None:  # the hypotheses raced without it; the winner is judged as a plain run is
        known = read_cif(reference.cif)
        setup = dataclasses.replace(setup, judge=Judge(setup.template, known, reference.tolerance))
    counts = lane.hypothesis.atoms_per_cell(fitted.structure)
    from gasolve.cli.run import LightAtomBar

    bar = LightAtomBar(show_progress)
    try:
        result = pipeline.finish(setup, lane.record, noise_chi2=state.noise_chi2, counts=counts, light_report=bar)
    finally:
        bar.stop()
    summary = {
        "evaluations": state.evaluations,
        "wall_seconds": seconds,
        "winner_evaluations": result.summary["evaluations"],
        "winner_wall_seconds": result.summary["wall_seconds"],
        "composition": fitted.structure.formula,
        "z": lane.hypothesis.z,
        "space_group": setup.config.structure.space_group.symbol,
        "assignment": lane.hypothesis.describe(),
        "hypotheses": rows,
        "stop": {
            "reason": state.stop,
            "early": state.stop.startswith("hypothesis"),
            "rungs": state.rung,
            "noise_chi2": state.noise_chi2,
        },
        "race_evaluations": state.evaluations,
        "reserve_hypotheses": race.reserve_counts(state),
        "race_history": list(state.history),
        "solution_toml": str((out / "solution.toml").resolve()),
        **(extra or {}),
    }
    if rietveld:
        from gasolve.cli.run import rietveld_stage

        summary.update(rietveld_stage(result, out))
    comments = [f"hypothesis {lane.hypothesis.describe()}"]
    exchanged = result.summary.get("site_exchange") or {}
    if exchanged.get("exchanges") or exchanged.get("moves"):
        what = ", ".join(exchanged["exchanged_sites"] + exchanged["moved_sites"])
        comments.append(
            f"then sites exchanged or moved ({what}): Rwp {exchanged['rwp_before']:.4f} -> {exchanged['rwp_after']:.4f}"
        )
    alike = result.summary.get("alike_elements") or {}
    if alike.get("exchanges"):
        comments.append(
            f"then {alike['elements']} exchanged by bond valence ({', '.join(alike['exchanged_sites'])}): "
            f"GII {alike['gii_before']:.3f} -> {alike['gii_after']:.3f} v.u."
        )
    light = pipeline.light_atom_comments(result)
    comments += light
    for line in light:
        print(line)
    pipeline.write_run(result, out, extra=summary, cif_comments=tuple(comments))
    write_solution_toml(result, out / "solution.toml", lane.target)
    ranked = [row for row in rows[1:] if row["status"] not in ("failed", "not tried")][:RUNNERS_UP]
    if ranked:
        (out / "hypotheses").mkdir(exist_ok=True)
    for row in ranked:
        other = state.lanes[row["hypothesis"] - 1]
        other_setup = pipeline.prepare(race.hypothesis_config(fitted, other.hypothesis, other.target), observed)
        other_result = pipeline.finish(
            other_setup, other.record, candidates=1, noise_chi2=state.noise_chi2, light_atoms=False
        )
        write_cif(
            other_result.structure,
            out / "hypotheses" / f"rank{row['rank']}.cif",
            comments=[f"runner-up {row['rank']}: {other.hypothesis.describe()}, Rwp {other_result.rwp:.5f}"],
            esd=other_result.esd,
            wyckoff=other_result.wyckoff,
        )
    print(pipeline.summary_line(result))
    if rietveld:
        from gasolve.cli.run import print_rietveld

        print_rietveld(summary)
    print(f"winner: {lane.hypothesis.describe()}")
    if exchanged.get("exchanges") or exchanged.get("moves"):
        print(comments[-1])
    for line in pipeline.verdict_lines(result):
        print(line)
    print(f"outputs in {out}")
    return result


def run_composition(args: argparse.Namespace, config) -> int:
    import dataclasses
    import time

    from gasolve import pipeline
    from gasolve.cli.run import _fingerprint, shows_progress
    from gasolve.config import load_observed, write_resolved
    from gasolve.errors import InputError
    from gasolve.hypotheses import race
    from gasolve.hypotheses.hypothesis import hypotheses_with_reserve
    from gasolve.io.checkpoint import read_checkpoint
    from gasolve.scoring.noise_floor import free_intensity_chi2, reflections_seen

    if config.nn is not None:
        raise InputError(
            "[nn] (a network trained on one structure's sites) cannot serve a composition search", args.config
        )
    if config.selection is not None:
        raise InputError("[atom_selection] is not supported in a composition search yet; give the sites", args.config)
    if args.stop_when_solved:
        raise InputError("--stop-when-solved: a composition search stops by itself (reference-free rule)", args.config)
    out = Path(config.output.dir)
    checkpoint_path = out / "checkpoint.pkl"
    fingerprint = _fingerprint(config)
    observed = load_observed(config)
    total = config.ga.budget.max_evaluations
    settings = race.RaceSettings()
    if args.resume:
        payload = read_checkpoint(checkpoint_path)
        if payload.get("fingerprint") != fingerprint or "race" not in payload:
            raise InputError(
                "the checkpoint was made with a different structure, pattern or GA setting; resume with the same "
                "config (only max_evaluations, checkpoint_seconds and light_atom_evaluations may change)",
                str(checkpoint_path),
            )
        fitted, state = payload["config"], payload["race"]
        fitted = fitted.with_overrides(max_evaluations=total)
        light = config.ga.budget.light_atom_evaluations  # may change on resume, as the budget may
        fitted = dataclasses.replace(fitted, ga=fitted.ga.replace(light_atom_evaluations=light))
        if race.goes_on(state, total):  # a larger budget on resume: the race goes on
            state = race.reopen(state)
        profile_fit = None
    else:
        fitted, profile_fit = pipeline.fit_profile(race.race_config(config, settings), observed)
        hypotheses, reserve, routes = hypotheses_with_reserve(fitted.structure)
        probe = pipeline.prepare(race.hypothesis_config(fitted, hypotheses[0], 1), observed)
        noise = free_intensity_chi2(probe.scorer.problem, observed.y_obs, observed.weights)
        state = race.start(
            hypotheses, noise, settings, reserve=reserve, observations=reflections_seen(probe.scorer.problem)
        )
        for item in routes:
            print(f"Z = {item['z']} (volume ratio {item['volume_ratio']:.2f}): {item['reason']}")
        print(
            f"{len(hypotheses)} hypotheses enter the race (most probable first by the learned prior), "
            f"{len(reserve)} more in reserve; noise level χ² {noise:.3g} (every reflection's intensity free)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder: {error.strerror}", str(out)) from None
    write_resolved(fitted, out / "config.toml")
    if profile_fit is not None:
        from gasolve.io.profile_fit_outputs import write_outputs

        write_outputs(
            profile_fit, out, f"{config.structure.name}: profile fit, intensities free", str(config.pattern.file)
        )

    def save(current):
        _save(checkpoint_path, fingerprint, fitted, current)

    save(state)
    started = time.perf_counter()
    state = run_race(fitted, observed, state, settings, args, config.structure.name, save)
    if state is None:
        print(f"gasolve run: interrupted; checkpoint saved, continue with --resume --out {out}", file=sys.stderr)
        return 130
    seconds = time.perf_counter() - started
    write_race_outputs(
        fitted,
        observed,
        state,
        out,
        seconds,
        source=args.config,
        reference=config.reference,
        rietveld=args.rietveld or "refinement" in config.raw,
        show_progress=shows_progress(args),
    )
    return 0
