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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
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
            config.pattern.background_terms,
            config.ga.layout,
            config.ga.rates,
            config.ga.budget.seed,
            config.nn,
        )
    )
    return hashlib.sha256(text.encode()).hexdigest()


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import time
    from pathlib import Path

    import numpy as np

    from gasolve import __version__
    from gasolve.config import load_observed, load_run_config, write_resolved
    from gasolve.crystal import read_cif, write_cif
    from gasolve.crystal.origin import held_coordinates, origin_fixing_slots
    from gasolve.errors import InputError
    from gasolve.io.checkpoint import read_checkpoint, write_checkpoint
    from gasolve.io.run_outputs import site_records, write_history, write_json
    from gasolve.refine import coordinate_esds, refine_coordinates
    from gasolve.scoring.build import build_scorer
    from gasolve.solve import Judge, final_candidates, iterate, model_structure, template_structure

    config = load_run_config(args.config).with_overrides(
        out=args.out, seed=args.seed, max_evaluations=args.max_evaluations
    )
    if args.stop_when_solved and config.reference is None:
        raise InputError("--stop-when-solved needs a [reference] cif in the config", args.config)
    structure_spec, pattern_spec, settings = config.structure, config.pattern, config.ga
    observed = load_observed(config)
    lebail_result = None
    if pattern_spec.profile is None:  # fit profile, zero shift and cell first (Le Bail), as FOX and DASH do
        from gasolve.profile_fit import LeBailSettings, fit_lebail

        lebail_settings = LeBailSettings(background_terms=pattern_spec.background_terms)
        lebail_result = fit_lebail(
            observed, structure_spec.cell, structure_spec.space_group, pattern_spec.radiation, lebail_settings
        )
        config = dataclasses.replace(
            config,
            structure=dataclasses.replace(structure_spec, cell=lebail_result.cell),
            pattern=dataclasses.replace(pattern_spec, profile=lebail_result.profile),
        )
        structure_spec, pattern_spec = config.structure, config.pattern
    site_map = structure_spec.site_map()
    scorer = build_scorer(
        structure_spec, observed, pattern_spec.radiation, pattern_spec.profile, pattern_spec.background_terms
    )
    problem = scorer.problem
    selector = None
    if config.nn is not None:
        from nnselect.selector import SiteSelector

        selector = SiteSelector(config.nn.model, problem, config.nn.batch_size)
    template = template_structure(
        structure_spec.name, structure_spec.cell, structure_spec.space_group, structure_spec.sites, structure_spec.b_iso
    )
    judge = None
    if config.reference is not None:
        reference = read_cif(config.reference.cif)
        judge = Judge(template, reference, config.reference.tolerance)
        from gasolve.compare import check_reference_elements, compare_structures

        probe = model_structure(
            template, site_map.project(np.random.default_rng(0).random((1, template.n_sites, 3)))[0]
        )
        try:  # a cell or composition that does not match the reference fails here, before anything is written
            if structure_spec.occupancy_correction:  # atoms per cell depend on where the search puts the sites
                check_reference_elements(probe, reference)
            else:
                compare_structures(probe, reference)
        except InputError as error:
            raise InputError(f"[reference] cif {config.reference.cif}: {error.message}", args.config) from None
    out = Path(config.output.dir)
    checkpoint_path = out / "checkpoint.pkl"
    fingerprint = _fingerprint(config)
    record = None
    if args.resume:
        payload = read_checkpoint(checkpoint_path)
        if payload["fingerprint"] != fingerprint:
            raise InputError(
                "the checkpoint was made with a different structure, pattern or GA setting; "
                "resume with the same config (only max_evaluations and checkpoint_seconds may change)",
                str(checkpoint_path),
            )
        record = payload["record"]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder: {error.strerror}", str(out)) from None
    write_resolved(config, out / "config.toml")
    if lebail_result is not None:
        from gasolve.cli.lebail import write_outputs

        write_outputs(
            lebail_result, out, f"{structure_spec.name}: profile fit, intensities free", str(pattern_spec.file)
        )

    def save(current):
        write_checkpoint(checkpoint_path, {"fingerprint": fingerprint, "record": current, "version": __version__})

    show = not args.quiet and sys.stderr.isatty()
    last_save = time.monotonic()
    current = record
    interrupted = False
    progress = None
    if show:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        task = progress.add_task(config.structure.name, total=settings.budget.max_evaluations, info="")
        progress.start()
    try:
        for current in iterate(scorer, settings, record, judge, selector, config.nn):
            state = current.state
            if progress is not None:
                rate = state.evaluations / max(current.seconds, 1e-9)
                progress.update(
                    task,
                    completed=min(state.evaluations, settings.budget.max_evaluations),
                    info=f"gen {state.generation}  {rate:,.0f} eval/s  best Rwp {state.best_rwp:.4f}"
                    + ("  solved" if current.solved else ""),
                )
            if time.monotonic() - last_save >= settings.budget.checkpoint_seconds:
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

    state = current.state
    candidates, _ = final_candidates(state, 5)
    # The origin of a polar group is held where the search put it (the heaviest atom along the polar directions).
    held = origin_fixing_slots(
        problem.space_group, problem.elements, getattr(getattr(scorer, "site_map", None), "matrix", None)
    )
    refinements = [refine_coordinates(scorer, genome.reshape(-1, 3), fixed=held) for genome in candidates]
    best = min(refinements, key=lambda r: r.rwp_after)
    best = dataclasses.replace(best, frac=getattr(scorer, "project", site_map.project)(best.frac[None])[0])
    wyckoff = None
    special_positions = None
    structure = model_structure(template, best.frac)
    if structure_spec.wyckoff is not None or structure_spec.occupancy_correction:
        from gasolve.crystal.special_positions import settle
        from gasolve.scoring.mapped import MappedScorer

        base = getattr(scorer, "scorer", scorer)
        correction = None if problem.overlap is None else problem.overlap.factors(best.frac[None])[0][0]
        settled = settle(structure_spec.space_group, best.frac, site_map.multiplicity, correction)
        best = dataclasses.replace(best, frac=settled.frac)
        structure = settled.apply(model_structure(template, best.frac))
        wyckoff = settled.labels
        if wyckoff is not None:  # only the free coordinates of the positions found, for the esds and the fit
            scorer = MappedScorer(base, settled.site_map(structure_spec.space_group))
        special_positions = settled.report([site.label for site in structure.sites])
    final_map = getattr(scorer, "site_map", None)
    origin_slots = origin_fixing_slots(problem.space_group, problem.elements, getattr(final_map, "matrix", None))
    esd = coordinate_esds(scorer, best.frac, origin_fixed=origin_slots)
    held_xyz = held_coordinates(origin_slots, getattr(final_map, "matrix", None))
    sites_summary = site_records(structure, esd, wyckoff or getattr(final_map, "labels", None), held_xyz)
    fit = scorer.profiles(best.frac[None])
    from gasolve.diffraction.fit_metrics import bragg_r, fit_metrics
    from gasolve.diffraction.profile import peak_positions
    from gasolve.plotting import plot_convergence, plot_fit

    metrics = fit_metrics(observed.y_obs, fit.y_calc[0], observed.weights, 1 + problem.background_terms)
    r_bragg = bragg_r(
        problem.peak_matrix.to_sparse(),
        fit.scale[0] * scorer.intensities(best.frac[None])[0],
        observed.y_obs,
        problem.background_basis @ fit.background[0],
    )
    write_cif(
        structure,
        out / "best.cif",
        comments=[
            f"gasolve {__version__}: Rwp {best.rwp_after:.5f} after refinement, seed {settings.budget.seed}",
            "coordinate esds from the least-squares normal matrix (profile, B and cell fixed); none where the "
            "coordinate holds the origin of a polar group or the data leave it undetermined",
        ],
        esd=esd,
        wyckoff=wyckoff,
    )
    summary = {
        "name": config.structure.name,
        "rwp": best.rwp_after,
        "rwp_before_refinement": float(state.best_rwp),
        "rp": metrics.rp,
        "rexp": metrics.rexp,
        "chi2": metrics.chi2,
        "r_bragg": r_bragg,
        "coordinate_esd": esd.tolist(),
        "sites": sites_summary,
        "origin_fixed_by": [f"{s['label']} {axis}" for s in sites_summary for axis in s["origin_fixed"]],
        "evaluations": state.evaluations,
        "generations": state.generation,
        "wall_seconds": current.seconds,
        "evaluations_per_second": state.evaluations / max(current.seconds, 1e-9),
        "seed": settings.budget.seed,
        "best_cif": str((out / "best.cif").resolve()),
        "restarts": state.restarts,
        "refined_candidates": [{"rwp_before": r.rwp_before, "rwp_after": r.rwp_after} for r in refinements],
        "gradient_cost": settings.rates.gradient_cost,
        "gasolve_version": __version__,
    }
    if special_positions is not None:
        summary["special_positions"] = special_positions
    if config.nn is not None:
        nn_seconds = sum(row.get("nn_seconds", 0.0) for row in current.history)
        summary["nn"] = {
            "model": str(config.nn.model),
            "mode": config.nn.mode,
            "weight": config.nn.weight,
            "refine_fraction": config.nn.refine_fraction if config.nn.refine else None,
            "seconds": nn_seconds,
            "share_of_wall_time": nn_seconds / max(current.seconds, 1e-9),
        }
    if judge is not None:
        solved, distances = judge(best.frac)
        summary.update(
            {
                "solved": solved,
                "site_distances": {
                    label: float(d)
                    for label, d in zip([s.label for s in judge.reference.sites], distances, strict=True)
                },
                "max_site_distance": float(np.max(distances)),
                "evaluations_to_solution": current.evaluations_to_solution,
                "tolerance": config.reference.tolerance,
            }
        )
    write_json(out / "summary.json", summary)
    write_history(out / "history.csv", current.history)
    ticks = [
        (f"λ={w:.5f}", peak_positions(problem.reflections, w, pattern_spec.profile))
        for w, _ in pattern_spec.radiation.lines
    ]
    plot_fit(
        out / "fit.png",
        observed.two_theta,
        observed.y_obs,
        fit.y_calc[0],
        ticks,
        title=f"{config.structure.name}: best model after refinement",
        annotation=f"Rwp {best.rwp_after:.4f}\nRp  {metrics.rp:.4f}\nχ²  {metrics.chi2:.3f}\nR_B {r_bragg:.4f}",
    )
    plot_convergence(
        out / "convergence.png",
        current.history,
        title=f"{config.structure.name}, seed {settings.budget.seed}",
        evaluations_to_solution=current.evaluations_to_solution,
    )
    line = (
        f"{config.structure.name}: Rwp {best.rwp_after:.4f} (before refinement {state.best_rwp:.4f}), "
        f"Rp {metrics.rp:.4f}, χ² {metrics.chi2:.3f}, R_Bragg {r_bragg:.4f}, "
        f"{state.evaluations:,.0f} evaluations, {state.generation} generations, {current.seconds:.1f} s"
    )
    if judge is not None:
        verdict = "yes" if summary["solved"] else "no"
        line += f"; solved: {verdict} (max site distance {summary['max_site_distance']:.3f} Å)"
    print(line)
    if special_positions:
        names = [f"{item['site']} {item['wyckoff'] or '?'} (x{item['multiplicity']})" for item in special_positions]
        sites = ", ".join(names)
        print(f"sites on special positions: {sites}")
    print(f"outputs in {out}")
    return 0
