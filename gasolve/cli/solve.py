"""`gasolve solve PATTERN --composition F`: pattern and formula in, refined structure out.

Stages (:mod:`gasolve.structure_solution`): index the pattern (unless ``--cell``), fit it with free intensities in
the lattice's holohedral group, rank the space groups from the extinctions with the symmetry network as the prior
(unless ``--space-group``), then race the Z and Wyckoff hypotheses of the leading groups together
(:mod:`gasolve.hypotheses.race`) and write the winner like ``gasolve run`` with a composition does. One checkpoint
holds every finished stage, so ``--resume`` after a kill skips them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "solve",
        help="pattern + formula in, structure out: index, space group, Wyckoff hypotheses, GA, refinement",
        description="Index the pattern, rank its space groups from the systematic extinctions (symmetry network as "
        "the prior), then race the Z and Wyckoff hypotheses of the leading groups with the GA on Dask; writes "
        "best.cif, fit.png, summary.json (every stage's candidates and evidence) and solution.toml.",
    )
    parser.add_argument("pattern", help="pattern file (.xy/.xye/.csv/.dat or GSAS raw)")
    parser.add_argument("--composition", required=True, help="chemical formula, e.g. 'PbSO4' or 'Ca5(PO4)3F'")
    parser.add_argument(
        "--wavelength",
        help="Å, or CuKa1, CuKa12, MoKa12, ...; default: the one the file states (.xye header, GSAS header or "
        "instrument line, powder CIF); required when it states none",
    )
    parser.add_argument("--range", nargs=2, type=float, metavar=("A", "B"), help="2θ range to use (degrees)")
    parser.add_argument("--cell", nargs=6, type=float, metavar="X", help="a b c alpha beta gamma: skip indexing")
    parser.add_argument(
        "--lattice", help="Bravais lattice of --cell (aP, mP, mC, oP, ..., cF); default from its metric"
    )
    parser.add_argument("--space-group", help="skip the space-group ranking (symbol or number, standard setting)")
    parser.add_argument("--space-groups", type=int, default=3, help="leading space groups raced (default 3)")
    parser.add_argument("--z", type=int, help="formula units per conventional cell (default: proposed from volume)")
    parser.add_argument("--background-terms", type=int, help="Chebyshev terms (default 1 per 12.5° of 2θ, >= 3)")
    parser.add_argument("--out", help="output folder (default runs/NAME beside the pattern, NAME its file stem)")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice (default 1)")
    parser.add_argument("--max-evaluations", type=int, default=2_000_000, help="race budget (default 2e6)")
    parser.add_argument("--scheduler", help="'local' (default), 'synchronous' or a Dask scheduler address")
    parser.add_argument("--workers", type=int, help="LocalCluster workers (default: the cores)")
    parser.add_argument("--no-network", action="store_true", help="uniform prior over space groups")
    parser.add_argument(
        "--rietveld",
        action="store_true",
        help="end with a Rietveld refinement of the winner (cell, zero, profile, coordinates, B, preferred "
        "orientation): refined.cif and its report, as gasolve run --rietveld",
    )
    parser.add_argument(
        "--fallbacks",
        type=int,
        default=2,
        help="when the race leaves the structure unsolved (not confirmed, χ² above 1.25 x the noise level), try at "
        "most this many other cells: the next sound indexing cell of another lattice, then P-1 and P1 in the "
        "reduced primitive cell; each gets --max-evaluations (default 2; 0 turns this off)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run, stop_when_solved=False)


def _fingerprint(args) -> str:
    import hashlib

    keys = ("pattern", "composition", "wavelength", "range", "cell", "lattice", "space_group", "space_groups", "z")
    text = repr([getattr(args, key) for key in keys] + [args.background_terms, args.seed, args.no_network])
    return hashlib.sha256(text.encode()).hexdigest()


def _network_prior(observed, radiation):
    """The symmetry network's probability of each space-group number (the command line may import symnet)."""
    from symnet.classify import Classifier, pattern_input

    classifier = Classifier()
    inputs = pattern_input(observed.two_theta, observed.y_obs, radiation.primary, classifier.grid, observed.source)
    probabilities = classifier.classify_inputs(inputs[None])[0].space_group_probabilities
    return lambda number: float(probabilities[number - 1])


def _raw_config(args, pattern: Path, cell, space_group, background_terms: int, out: Path, radiation) -> dict:
    structure = {
        "name": pattern.stem,
        "cell": list(cell.parameters),
        "space_group": space_group.symbol,
        "composition": args.composition,
    }
    if args.z is not None:
        structure["z"] = args.z
    raw = {
        "structure": structure,
        "pattern": {"file": str(pattern), "background": {"terms": background_terms}},
        "ga": {"seed": args.seed, "max_evaluations": args.max_evaluations},
        "output": {"dir": str(out)},
    }
    if args.wavelength is not None:
        raw["pattern"]["wavelength"] = args.wavelength
    else:
        from gasolve.diffraction.wavelength import radiation_spec

        raw["pattern"]["wavelength"], raw["pattern"]["kalpha2_ratio"] = radiation_spec(radiation)
    if args.range:
        raw["pattern"]["range"] = list(args.range)
    return raw


def _stages(args, pattern: Path, out: Path, say, cache: dict) -> dict:
    """Read the pattern, find the cell, and prepare the first attempt; returns what the checkpoint keeps.

    ``cache`` keeps what is not checkpointed (the network prior, computed once for every cell tried)."""
    from gasolve.config import default_background_terms
    from gasolve.crystal.cell import UnitCell
    from gasolve.diffraction.noise import calibrated_pattern, calibration_note
    from gasolve.diffraction.wavelength import choose_radiation
    from gasolve.io.patterns import read_pattern
    from gasolve.structure_solution import CellChoice, fallback_cells, find_cell, lattice_of_cell

    observed = read_pattern(pattern)
    radiation, notes = choose_radiation(observed.radiation, args.wavelength, str(pattern))
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    if args.range:
        observed = observed.restrict(*args.range)
    stated_sigma = observed.sigma
    observed, noise = calibrated_pattern(observed)
    note = calibration_note(noise, stated_sigma)
    if note:
        say(note)
    lo, hi = float(observed.two_theta[0]), float(observed.two_theta[-1])
    terms = args.background_terms if args.background_terms is not None else default_background_terms(lo, hi)
    if args.cell:
        cell = UnitCell.from_parameters(args.cell)
        choice = CellChoice(cell, args.lattice or lattice_of_cell(cell), "given")
        say(f"cell given: {choice.bravais} {', '.join(f'{x:g}' for x in cell.parameters)}")
    else:
        choice = find_cell(observed, radiation)
        best = choice.indexing["candidates"][0]
        say(f"indexed: {choice.bravais} cell {best['cell']}, M20 {best['m20']:.1f}, F_N {best['f_n']:.1f}")
    context = {"observed": observed, "radiation": radiation, "terms": terms}
    fallbacks = [] if args.space_group else fallback_cells(choice)[: max(0, args.fallbacks)]
    attempt = _attempt(args, pattern, out, context, choice, say, cache)
    return {**context, "attempts": [attempt], "fallbacks": fallbacks}


def _attempt(args, pattern: Path, out: Path, context: dict, choice, say, cache: dict) -> dict:
    """Profile fit, space groups and hypotheses in one cell; the race that follows starts from ``race``."""
    from gasolve.config import parse_run_config
    from gasolve.crystal.spacegroup import SpaceGroup
    from gasolve.errors import InputError
    from gasolve.hypotheses import parse_composition, race
    from gasolve.hypotheses.hypothesis import MAX_HYPOTHESES, RESERVE_HYPOTHESES
    from gasolve.structure_solution import (
        GroupChoice,
        composition_fits,
        holohedral_fit,
        lower_symmetry_groups,
        model_first,
        model_hypothesis,
        solve_hypotheses,
        solve_reserve,
        space_group_candidates,
        with_model_group,
    )

    observed, radiation, terms = context["observed"], context["radiation"], context["terms"]
    fit = holohedral_fit(observed, radiation, choice.cell, choice.bravais, terms)
    say(f"holohedral profile fit: Rwp {fit.metrics.rwp:.4f}, χ² {fit.metrics.chi2:.3f}")
    analysis = None
    if args.space_group:
        group = SpaceGroup.from_symbol(args.space_group)
        group.check_cell(fit.cell)
        groups = [GroupChoice(group, fit.cell, 1.0, group.symbol)]
    elif choice.source.startswith("lower symmetry"):
        groups = lower_symmetry_groups(fit.cell)
        say("space groups raced: P-1 and P1 (lower symmetry than the lattice's)")
    else:
        if "prior" not in cache:  # the network runs once, whatever the number of cells tried
            cache["prior"] = None if args.no_network else _network_prior(observed, radiation)
        fits = composition_fits(parse_composition(args.composition), args.z)
        admits = fits
        if choice.space_group is not None:  # a supergroup the solved model obeys: that group alone

            def admits(group, cell):
                return group.number == choice.space_group and fits(group, cell)

        groups, analysis = space_group_candidates(
            fit, choice.bravais, cache["prior"], n=args.space_groups, admits=admits
        )
        for symbol in analysis["passed_over"] if choice.space_group is None else ():
            say(f"{symbol} passed over: the composition does not fit it")
        if choice.space_group is None and choice.model_group is not None:  # a smaller cell the model repeats in
            if fits(SpaceGroup.from_symbol(choice.model_group), fit.cell):
                groups = with_model_group(groups, choice.model_group, fit.cell, analysis)
        if not groups:
            raise InputError(
                f"--composition {args.composition!r} fits none of the space groups the extinctions allow for the "
                f"{choice.bravais} cell; check the formula, give --cell, or --space-group",
                str(pattern),
            )
        say(
            "space groups raced: "
            + ", ".join(f"{g.space_group.symbol} ({g.posterior:.2f}, as {g.setting})" for g in groups)
        )
    base, refusals = None, []
    for group in groups:  # the config of the first group the composition fits; solve_hypotheses tries them all
        raw = _raw_config(args, pattern, group.cell, group.space_group, terms, out, radiation)
        raw["pattern"]["profile"] = _profile_table(fit.profile)
        try:
            base = parse_run_config(raw, pattern)
            break
        except InputError as error:
            refusals.append(f"{group.space_group.symbol}: {error.message}")
            say(f"{group.space_group.symbol} left out: the composition does not fit it")
    if base is None:
        raise InputError(
            "--composition / --z fit none of the candidate space groups: " + "; ".join(refusals), str(pattern)
        )
    settings = race.RaceSettings()
    fitted = race.race_config(base, settings)
    merged, routes = solve_hypotheses(fitted.structure, groups, max_hypotheses=MAX_HYPOTHESES + RESERVE_HYPOTHESES)
    hypotheses = merged[:MAX_HYPOTHESES]  # the rest: the reserve, listed once
    if choice.model_group is not None:  # the symmetrised model's own assignment races first
        own = model_hypothesis(fitted.structure, groups, choice.model_group, choice.model_sites)
        if own is not None:
            hypotheses = model_first(hypotheses, own)
            say(f"the solved model's assignment, symmetrised, races first: {own.describe()}")
    for item in routes:
        say(f"{item['space_group']} Z = {item['z']}: {item['reason']}")
    reserve = solve_reserve(fitted.structure, groups, hypotheses, merged=merged)
    state = race.start(
        hypotheses, float(fit.metrics.chi2), settings, reserve=reserve, observations=len(fit.intensities)
    )
    say(
        f"{len(hypotheses)} hypotheses enter the race, {len(reserve)} more in reserve; noise level χ² "
        f"{fit.metrics.chi2:.3g} (free intensities)"
    )
    return {
        "fitted": fitted,
        "profile_fit": fit,
        "stages": {
            "cell": {"source": choice.source, "bravais": choice.bravais, "cell": list(choice.cell.parameters)},
            "indexing": choice.indexing,
            "profile_fit": {
                "cell": list(fit.cell.parameters),
                "rwp": fit.metrics.rwp,
                "chi2": fit.metrics.chi2,
                "group": "holohedral",
            },
            "space_groups": {
                "given": bool(args.space_group),
                "analysis": analysis,
                "raced": [
                    {
                        "space_group": g.space_group.symbol,
                        "setting": g.setting,
                        "posterior": g.posterior,
                        "cell": list(g.cell.parameters),
                    }
                    for g in groups
                ],
            },
            "hypothesis_routes": routes,
        },
        "race": state,
    }


#: Attempts in the higher symmetry of a solved model at most (each check must find more symmetry than the last).
MAX_SYMMETRY_ATTEMPTS = 2


def _symmetry_check(solve: dict, attempt: dict, say, given_group: bool = False):
    """Once per finished attempt: the cell (and group) of the symmetry its winner has beyond its own, as the next
    cell to try (:func:`gasolve.structure_solution.missed_symmetry_choice`), or None. The check is recorded in the
    attempt, which the checkpoint keeps. None with ``--space-group`` (``given_group``): the group is the user's."""
    from gasolve.structure_solution import MISSED_SYMMETRY_SOURCE, missed_symmetry_choice

    if "missed_symmetry" in attempt or given_group:
        return None
    attempt["missed_symmetry"] = None
    sources = [a["stages"]["cell"]["source"] for a in solve["attempts"]]
    if sources.count(MISSED_SYMMETRY_SOURCE) >= MAX_SYMMETRY_ATTEMPTS:
        return None
    found = missed_symmetry_choice(attempt["fitted"], attempt["race"], solve["observed"])
    if found is None:
        return None
    choice, symmetry = found
    attempt["missed_symmetry"] = {
        "kind": symmetry.kind,
        "cell": list(choice.cell.parameters),
        "bravais": choice.bravais,
        "space_group": symmetry.symbol,
        "tolerance": symmetry.tolerance,
        "operations": symmetry.operations,
        "model_operations": symmetry.model_operations,
        "primitive_atoms": symmetry.primitive_atoms,
        "model_primitive_atoms": symmetry.model_primitive_atoms,
    }
    parameters = ", ".join(f"{x:.5g}" for x in choice.cell.parameters)
    if symmetry.kind == "subcell":
        what = (
            f"repeat in a smaller cell ({symmetry.model_primitive_atoms} -> {symmetry.primitive_atoms} atoms in the "
            f"primitive cell, {symmetry.symbol} within {symmetry.tolerance:g} Å)"
        )
    else:
        what = (
            f"obey {symmetry.symbol} within {symmetry.tolerance:g} Å ({symmetry.operations} symmetry operations "
            f"against {symmetry.model_operations})"
        )
    say(f"the winner's atoms {what}: trying the {choice.source}: {choice.bravais} {parameters}")
    return choice


def _attempt_record(attempt: dict, kept: bool) -> dict:
    """One attempt for summary.json: its cell, groups, how its race ended and its winner's fit."""
    state = attempt["race"]
    lane = None if state.winner is None else state.lanes[state.winner]
    stages = attempt["stages"]
    return {
        "cell": stages["cell"],
        "space_groups": [g["space_group"] for g in stages["space_groups"]["raced"]],
        "stop": state.stop,
        "rwp": None if lane is None else lane.rwp,
        "chi2": None if lane is None else lane.chi2,
        "noise_chi2": state.noise_chi2,
        "confirmed": lane is not None and lane.status == "done",
        "kept": kept,
        "missed_symmetry": attempt.get("missed_symmetry"),
    }


def _profile_table(profile) -> dict:
    from gasolve.config import profile_table

    return profile_table(profile)


def run(args: argparse.Namespace) -> int:
    import time

    from gasolve import __version__
    from gasolve.cli.run import shows_progress
    from gasolve.cli.run_composition import run_race, write_race_outputs
    from gasolve.config import write_resolved
    from gasolve.errors import InputError
    from gasolve.hypotheses import parse_composition, race
    from gasolve.io.checkpoint import read_checkpoint, write_checkpoint
    from gasolve.io.profile_fit_outputs import write_outputs
    from gasolve.structure_solution import kept_attempt, needs_fallback

    pattern = Path(args.pattern).expanduser().resolve()
    if not pattern.is_file():
        raise InputError("no such pattern file", args.pattern)
    parse_composition(args.composition, key="--composition")  # a mistyped formula stops before the indexing
    out = Path(args.out).expanduser().resolve() if args.out else pattern.parent / "runs" / pattern.stem
    checkpoint_path = out / "checkpoint.pkl"
    fingerprint = _fingerprint(args)
    cache: dict = {}

    def say(text: str) -> None:
        print(text, flush=True)

    if args.resume:
        payload = read_checkpoint(checkpoint_path)
        if payload.get("fingerprint") != fingerprint or "solve" not in payload:
            raise InputError(
                "the checkpoint was made with other options; resume with the same ones", str(checkpoint_path)
            )
        solve = payload["solve"]
        if "attempts" not in solve:
            raise InputError(
                "the checkpoint was written by an older gasolve solve; start again without --resume",
                str(checkpoint_path),
            )
        last = solve["attempts"][-1]
        if race.goes_on(last["race"], args.max_evaluations):
            last["race"] = race.reopen(last["race"])
        for attempt in solve["attempts"]:
            attempt["fitted"] = attempt["fitted"].with_overrides(max_evaluations=args.max_evaluations)
    else:
        solve = _stages(args, pattern, out, say, cache)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the output folder: {error.strerror}", str(out)) from None
    observed = solve["observed"]

    def save(state) -> None:
        solve["attempts"][-1]["race"] = state
        write_checkpoint(checkpoint_path, {"fingerprint": fingerprint, "solve": solve, "version": __version__})

    save(solve["attempts"][-1]["race"])
    if not args.resume:
        write_outputs(solve["attempts"][0]["profile_fit"], out, f"{pattern.stem}: holohedral profile fit", str(pattern))
    started = time.perf_counter()
    while True:  # race in the current cell; fall back to the next while the structure is not solved
        attempt = solve["attempts"][-1]
        if not attempt["race"].stop:
            state = run_race(
                attempt["fitted"], observed, attempt["race"], race.RaceSettings(), args, pattern.stem, save
            )
            if state is None:
                print(
                    f"gasolve solve: interrupted; checkpoint saved, continue with --resume --out {out}", file=sys.stderr
                )
                return 130
            save(state)
        choice = _symmetry_check(solve, attempt, say, given_group=bool(args.space_group))
        if choice is None:
            unsolved = all(needs_fallback(a["race"]) for a in solve["attempts"])
            if not unsolved or not solve["fallbacks"]:
                break
            choice = solve["fallbacks"].pop(0)
            ended = attempt["race"]
            found = "no winner"
            if ended.winner is not None:
                chi2 = ended.lanes[ended.winner].chi2
                found = f"winner χ² {chi2:.3g} against a noise level of {ended.noise_chi2:.3g}, not confirmed"
            parameters = ", ".join(f"{x:.5g}" for x in choice.cell.parameters)
            say(f"not solved in this cell ({found}); trying the {choice.source}: {choice.bravais} {parameters}")
        try:
            solve["attempts"].append(_attempt(args, pattern, out, solve, choice, say, cache))
        except InputError as error:
            say(f"the {choice.source} was left out: {error.message}")
        save(solve["attempts"][-1]["race"])
    races = [a["race"] for a in solve["attempts"]]
    sources = [a["stages"]["cell"]["source"] for a in solve["attempts"]]
    reflections = [len(a["profile_fit"].intensities) for a in solve["attempts"]]  # Hamilton's n (kept_attempt)
    kept = kept_attempt(races, sources, reflections)
    chosen = solve["attempts"][kept]
    if len(solve["attempts"]) > 1:
        say(f"kept the race in the {chosen['stages']['cell']['source']} cell ({chosen['stages']['cell']['bravais']})")
        if kept:
            write_outputs(chosen["profile_fit"], out, f"{pattern.stem}: holohedral profile fit", str(pattern))
    write_resolved(chosen["fitted"], out / "config.toml")
    attempts = [_attempt_record(a, k == kept) for k, a in enumerate(solve["attempts"])]
    indexing = solve["attempts"][0]["stages"]["indexing"]  # a fallback cell was taken from it, or given
    extra = {"stages": {**chosen["stages"], "indexing": indexing, "attempts": attempts}, "pattern": str(pattern)}
    seconds = time.perf_counter() - started
    write_race_outputs(
        chosen["fitted"],
        observed,
        chosen["race"],
        out,
        seconds,
        extra,
        source=str(pattern),
        rietveld=args.rietveld,
        show_progress=shows_progress(args),
    )
    return 0
