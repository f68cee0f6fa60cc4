"""From a measured pattern and a formula to the hypotheses of a structure: the stages before the race.

``gasolve solve PATTERN --composition F`` (:mod:`gasolve.cli.solve`) runs:

1. **Cell** (:func:`find_cell`): :func:`gasolve.indexing.pattern.index_pattern` (peak search, dichotomy, M20,
   Pawley check), unless the cell is given.
2. **Profile and intensities** (:func:`holohedral_fit`): one whole-pattern fit with free intensities in the
   lattice's holohedral symmorphic group (only the centring removes reflections): zero shift, cell, peak shape,
   background, and every reflection's intensity with its covariance.
3. **Space groups** (:func:`space_group_candidates`): the fit's intensities scored against every extinction class
   of the lattice (:mod:`gasolve.indexing.extinctions`), times a prior (the symmetry network's, passed in by the
   command line), unless the space group is given. Each candidate setting is turned into the group's standard
   setting (gemmi's change of basis), where the Wyckoff tables are.
4. **Hypotheses** (:func:`solve_hypotheses`): Z and Wyckoff assignments of the composition in each candidate
   group, merged by log prior + log posterior of the group, for one race (:mod:`gasolve.hypotheses.race`).
5. **Fallbacks** (:func:`fallback_cells`, :func:`needs_fallback`, :func:`better_attempt`): when the race ends
   without a confirmed hypothesis and its winner does not fit the pattern (χ² more than
   :data:`FALLBACK_CHI2_FACTOR` times the noise level), the stages run again on the next sound indexing cell of
   another lattice, then in P-1 and P1 on the Niggli-reduced primitive cell of the first lattice (a structure whose
   lattice looks more symmetric than its atoms are), as a crystallographer tries the next cell and then lower
   symmetry when a structure does not solve. A later attempt is kept only when it is confirmed and the earlier is
   not, or when its winner's Rwp is at least ``1 - margin`` lower.
6. **Missed symmetry** (:func:`missed_symmetry_choice`, :func:`symmetric_attempt_holds`): when a race's winner
   has more symmetry than its group within a few tenths of an ångström (:mod:`gasolve.missed_symmetry`): it
   repeats in a smaller cell (indexing can prefer a supercell that also indexes impurity lines), or obeys a
   supergroup (a polar subgroup of a centrosymmetric structure fits as well), the stages run again in that cell,
   in the supergroup's case with that group alone, in the smaller cell's with the model's group raced first
   whatever the extinctions say (:func:`with_model_group`). The attempt is kept when it is confirmed and the
   other is not, or when its Rwp passes Hamilton's R-factor ratio test against the other's (fewer parameters,
   the same fit); the other is the model it restricts, never an unrelated fallback's (:func:`kept_attempt`).

Nothing here prints or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import gemmi
import numpy as np

from gasolve.config import StructureSpec
from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError


@dataclass(frozen=True)
class CellChoice:
    """The cell the solution starts from.

    Attributes
    ----------
    cell : UnitCell
        Conventional cell of the lattice.
    bravais : str
        aP, mP, ..., cF.
    source : str
        "given" or "indexed".
    indexing : dict or None
        The leading indexing candidates (``gasolve index`` JSON records), when indexed.
    space_group : int or None
        The only space-group number to race in this cell (a supergroup the solved model obeys); None: the groups
        the extinctions rank.
    model_group : int or None
        For a cell of a solved model's missed symmetry: the group its symmetrised model is in ...
    model_sites : tuple of (str, str)
        ... and that model's (element, Wyckoff label) sites, raced first when that group is raced
        (:func:`model_hypothesis`).
    """

    cell: UnitCell
    bravais: str
    source: str
    indexing: dict | None = None
    space_group: int | None = None
    model_group: int | None = None
    model_sites: tuple[tuple[str, str], ...] = ()


#: A race that ends without a confirmed hypothesis falls back when its winner's χ² exceeds this times the noise level.
FALLBACK_CHI2_FACTOR = 1.25

#: Another indexing cell is tried before lower symmetry when its ranking figure is at least this times the first's.
CLOSE_RANKING = 0.5


def lattice_of_cell(cell: UnitCell) -> str:
    """Bravais symbol of a given conventional cell taken as primitive (the highest metric symmetry, P)."""
    from gasolve.indexing.lattice import bravais_lattice, lattice_vectors

    bravais, _, _ = bravais_lattice(lattice_vectors(tuple(cell.parameters)))
    return bravais[0] + ("R" if bravais == "hR" else "P")


def find_cell(observed, radiation, settings=None) -> CellChoice:
    """Index the pattern; the best candidate must have a sound figure of merit (M20 >= the settings' minimum).

    Raises
    ------
    InputError
        Too few lines, or no sound cell (the message gives the best figure of merit and what to try).
    """
    from gasolve.indexing.pattern import IndexingSettings, index_pattern

    # The benchmarked settings: three candidates Pawley-checked, so that the tests between nested cells can run (a
    # primitive cell whose weak reflections break a pseudo-centring goes before the centred cell of the same
    # metric: Te(HO2)2, Pc, was solved in Cm's cell with one check).
    settings = settings or IndexingSettings()
    result = index_pattern(observed, radiation, settings)
    records = [candidate.as_dict() for candidate in result.candidates[:5]]
    if not result.candidates or result.candidates[0].solution.m20 < settings.min_m20:
        best = f"best M20 {result.candidates[0].solution.m20:.1f}" if result.candidates else "no cell found"
        raise InputError(
            f"the pattern does not index soundly ({best}, at least {settings.min_m20:g} needed); give the cell with "
            "--cell, or check the wavelength and the 2θ range"
        )
    best = result.candidates[0]
    cell = UnitCell(*(best.pawley_cell or best.solution.cell))
    return CellChoice(cell, best.solution.bravais, "indexed", {"candidates": records, "notes": list(result.notes)})


def holohedral_fit(observed, radiation, cell: UnitCell, bravais: str, background_terms: int):
    """Whole-pattern fit with free intensities in the holohedral group of ``bravais`` (LeBailResult)."""
    from gasolve.indexing.pattern import HOLOHEDRY
    from gasolve.profile_fit import LeBailSettings, fit_lebail

    if bravais not in HOLOHEDRY:
        raise InputError(f"unknown Bravais lattice {bravais!r}; expected one of {', '.join(HOLOHEDRY)}")
    group = SpaceGroup.from_symbol(HOLOHEDRY[bravais])
    settings = LeBailSettings(background_terms=background_terms, intensity_covariance=True)  # for the extinctions
    return fit_lebail(observed, cell, group, radiation, settings)


def standard_setting(group: SpaceGroup, cell: UnitCell) -> tuple[SpaceGroup, UnitCell]:
    """The standard setting of ``group`` and ``cell`` expressed in it (gemmi's change of basis)."""
    entry = gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(group.hall))
    if entry is None:
        raise InputError(f"space group {group.symbol} ({group.hall}) is not a setting in gemmi's table")
    standard = SpaceGroup.from_symbol(entry.number)
    changed = gemmi.UnitCell(*cell.parameters).changed_basis_backward(entry.basisop, False)
    return standard, UnitCell(changed.a, changed.b, changed.c, changed.alpha, changed.beta, changed.gamma)


@dataclass(frozen=True)
class GroupChoice:
    """A space group the race tries.

    Attributes
    ----------
    space_group : SpaceGroup
        Standard setting.
    cell : UnitCell
        In that setting.
    posterior : float
        Of the extinction analysis (1 for a given group).
    setting : str
        The setting the analysis found it in (the cell's axes).
    """

    space_group: SpaceGroup
    cell: UnitCell
    posterior: float
    setting: str


def space_group_candidates(
    fit,
    bravais: str,
    prior: Callable[[int], float] | None = None,
    n: int = 3,
    min_posterior: float = 0.01,
    admits: Callable[[SpaceGroup, UnitCell], bool] | None = None,
) -> tuple[list[GroupChoice], dict]:
    """The leading space groups of a holohedral fit, in their standard settings.

    Parameters
    ----------
    fit : LeBailResult
        :func:`holohedral_fit`'s.
    bravais : str
    prior : callable, optional
        Probability of a space-group number (the symmetry network's).
    n : int
        Groups kept at most (distinct numbers).
    min_posterior : float
        Groups below this posterior are left out (the first kept group always stays).
    admits : callable, optional
        (group, cell) in the standard setting -> whether the structure can be built in it (e.g.
        :func:`composition_fits`); groups it refuses are passed over and do not count towards ``n``, so that a
        leading group the formula cannot fill gives way to the next ones. When it refuses every group of a
        centred lattice, their primitive subgroups in the same cell are offered (:func:`decentred_candidates`).

    Returns
    -------
    groups : list of GroupChoice
    analysis : dict
        The extinction classes and ranked groups (evidence for summary.json); ``passed_over`` lists the groups
        ``admits`` refused, ``decentred`` the primitive subgroups offered instead.
    """
    from gasolve.indexing.extinctions import analyse_fit

    analysis = analyse_fit(fit, bravais, prior)
    chosen, passed_over = _admitted(analysis, fit.cell, n, min_posterior, admits)
    evidence = analysis.as_dict()
    if admits is not None:
        evidence["passed_over"] = passed_over
        if not chosen and bravais[1] != "P":  # the formula fits no group of the centred lattice
            chosen, _ = decentred_candidates(analysis, fit.cell, n, admits)
            evidence["decentred"] = [choice.space_group.symbol for choice in chosen]
    return chosen, evidence


def _admitted(analysis, cell: UnitCell, n: int, min_posterior: float, admits) -> tuple[list[GroupChoice], list[str]]:
    """The first ``n`` groups of ``analysis`` that ``admits`` accepts, and the symbols it refused."""
    chosen: list[GroupChoice] = []
    passed_over: list[str] = []
    for score in analysis.space_groups:
        if len(chosen) >= n or (chosen and score.posterior < min_posterior):
            break
        if any(choice.space_group.number == score.group.number for choice in chosen):
            continue
        group, standard = standard_setting(score.group, cell)
        if admits is not None and not admits(group, standard):
            passed_over.append(score.group.symbol)
            continue
        chosen.append(GroupChoice(group, standard, float(score.posterior), score.group.symbol))
    return chosen, passed_over


def decentred_candidates(
    analysis, cell: UnitCell, n: int, admits, parents: int = 5
) -> tuple[list[GroupChoice], list[str]]:
    """Primitive subgroups in the same cell of the leading groups of a centred lattice.

    Atoms that scatter alike (Hg and Bi, Fe and Co) ordered on the sites of a centred arrangement give
    superstructure lines too weak to see: the pattern indexes in the centred cell, where a formula such as Hg3Bi
    (Cu3Au type, Pm-3m) fits no group. The ordered structure keeps the cell and loses the centring: its group is
    a maximal klassengleiche subgroup of the centred one (Fm-3m -> Pm-3m, Pn-3m; PyXtal's tables) whose
    transformation keeps the axes. Each takes the posterior of the best parent it comes from; ``admits`` filters
    them as in :func:`space_group_candidates`.

    Parameters
    ----------
    analysis : SpaceGroupAnalysis
        Of the centred lattice.
    cell : UnitCell
        The cell of its fit.
    n : int
        Groups kept at most.
    admits : callable
        (group, cell) -> bool.
    parents : int
        Leading groups of ``analysis`` whose subgroups are taken.

    Returns
    -------
    groups : list of GroupChoice
        Best parent posterior first; ``setting`` names the parent.
    passed_over : list of str
    """
    from pyxtal.symmetry import Group

    found: dict[int, GroupChoice] = {}
    passed_over: list[str] = []
    for score in analysis.space_groups[:parents]:
        parent, standard = standard_setting(score.group, cell)
        subgroups = Group(parent.number).get_max_k_subgroup()
        for number, transformation in zip(subgroups["subgroup"], subgroups["transformation"], strict=True):
            linear = np.asarray(transformation, dtype=float)[:, :3]
            if number in found or not np.allclose(linear, np.eye(3)):
                continue
            group = SpaceGroup.from_symbol(int(number))
            if group.symbol[0] != "P":
                continue
            if not admits(group, standard):
                passed_over.append(group.symbol)
                continue
            found[int(number)] = GroupChoice(group, standard, float(score.posterior), f"subgroup of {parent.symbol}")
    chosen = sorted(found.values(), key=lambda choice: -choice.posterior)
    return chosen[:n], sorted(set(passed_over))


def composition_fits(composition: dict[str, int], z: int | None = None) -> Callable[[SpaceGroup, UnitCell], bool]:
    """An ``admits`` test for :func:`space_group_candidates`: some Z (or the given one) puts the formula on the
    group's Wyckoff positions in a cell of plausible volume (:func:`~gasolve.hypotheses.z_candidates`,
    :func:`~gasolve.hypotheses.check_z`). Without a given Z the cell must hold one formula unit at the packing
    window's densest ratio: an indexed cell denser than that is more likely a subcell than a superhard phase,
    which a cell given by the user may be (:func:`~gasolve.hypotheses.z_candidates` races it there)."""
    from gasolve.hypotheses import check_z, z_candidates
    from gasolve.hypotheses.z_candidates import volume_model

    def fits(group: SpaceGroup, cell: UnitCell) -> bool:
        try:
            if z is None:
                model = volume_model()
                if cell.volume < model.formula_volume(composition) * model.window(composition)[0]:
                    return False
                z_candidates(composition, cell, group)
            else:
                check_z(composition, z, cell, group)
        except InputError:
            return False
        return True

    return fits


def solve_hypotheses(base: StructureSpec, groups: list[GroupChoice], max_hypotheses: int = 24) -> tuple[list, list]:
    """Hypotheses of the composition in every candidate group, merged by log prior + log posterior.

    Returns
    -------
    hypotheses : list of Hypothesis
        Each with its group's spec as :attr:`~gasolve.hypotheses.hypothesis.Hypothesis.base`.
    routes : list of dict
        Per group and Z, as :func:`~gasolve.hypotheses.hypothesis.list_hypotheses` reports them, with ``space_group``.
    """
    from gasolve.hypotheses.hypothesis import list_hypotheses

    merged = []
    routes = []
    failures = []
    for choice in groups:
        spec = replace(base, space_group=choice.space_group, cell=choice.cell)
        try:
            spec.space_group.check_cell(spec.cell)
            hypotheses, group_routes = list_hypotheses(spec, max_hypotheses=max_hypotheses)
        except InputError as error:  # the composition does not fit this group: the others still may
            failures.append(f"{choice.space_group.symbol}: {error}")
            continue
        weight = math.log(max(choice.posterior, 1e-12))
        for h in hypotheses:
            score = (h.log_prior if math.isfinite(h.log_prior) else -1e6) + weight
            merged.append((score, replace(h, base=spec)))
        routes += [dict(item, space_group=choice.space_group.symbol) for item in group_routes]
    if not merged:
        raise InputError("the composition fits none of the candidate space groups: " + "; ".join(failures))
    order = np.argsort([-score for score, _ in merged], kind="stable")
    return [merged[i][1] for i in order[:max_hypotheses]], routes


def solve_reserve(
    base: StructureSpec, groups: list[GroupChoice], listed: list, n: int | None = None, merged: list | None = None
) -> list:
    """The next ``n`` hypotheses of :func:`solve_hypotheses`' merged order after ``listed`` (its first ones, and
    any put first by :func:`model_first`), held in reserve by the race (:mod:`gasolve.hypotheses.race`).

    ``merged``: that order already listed to at least ``len(listed) + n`` (or to its end), so that the groups'
    hypotheses are not enumerated a second time; None lists it here.
    """
    from gasolve.hypotheses.hypothesis import RESERVE_HYPOTHESES

    n = RESERVE_HYPOTHESES if n is None else n
    if n <= 0:
        return []
    more = merged if merged is not None else solve_hypotheses(base, groups, max_hypotheses=len(listed) + n)[0]
    seen = {_hypothesis_key(h) for h in listed}
    return [h for h in more if _hypothesis_key(h) not in seen][:n]


def _hypothesis_key(hypothesis) -> tuple:
    return hypothesis.base.space_group.number, hypothesis.z, hypothesis.route, tuple(sorted(hypothesis.sites))


def _reduced_parameters(cell: UnitCell, bravais: str) -> tuple[float, ...]:
    """Niggli-reduced primitive cell (a, b, c, α, β, γ) of the lattice of a conventional ``cell``."""
    from gasolve.indexing.lattice import niggli_cell, primitive_basis

    return niggli_cell(primitive_basis(tuple(cell.parameters), "R" if bravais == "hR" else bravais[1]))


def lower_symmetry_cell(choice: CellChoice) -> CellChoice:
    """The Niggli-reduced primitive cell of ``choice``'s lattice, as an aP cell (P-1 and P1 are raced in it)."""
    reduced = _reduced_parameters(choice.cell, choice.bravais)
    return CellChoice(UnitCell(*reduced), "aP", f"lower symmetry of the {choice.bravais} cell")


def fallback_cells(choice: CellChoice, min_m20: float = 10.0, n_cells: int = 1) -> list[CellChoice]:
    """The cells to try, in order, when the race in ``choice`` does not solve the structure.

    Parameters
    ----------
    choice : CellChoice
        The cell the first race ran in (its ``indexing`` records, when indexed, hold the other candidates).
    min_m20 : float
        Only candidates with at least this de Wolff M20 (sound cells) are tried.
    n_cells : int
        Other indexing candidates tried at most: those whose lattice differs from every earlier one (Niggli-reduced
        primitive cells compared within 1 % and 1°).

    Returns
    -------
    list of CellChoice
        The next sound indexing cells of other lattices whose ranking figure is at least :data:`CLOSE_RANKING`
        times the first cell's (a close call between lattices), then the first cell's reduced primitive cell for
        P-1 and P1 (left out when the first lattice is already aP), then the other cells: a first cell that indexes
        far better than the next is more likely right with atoms of lower symmetry than wrong.
    """
    from gasolve.indexing.lattice import same_lattice

    close: list[CellChoice] = []
    far: list[CellChoice] = []
    seen = [_reduced_parameters(choice.cell, choice.bravais)]
    records = (choice.indexing or {}).get("candidates", [])
    first_ranking = records[0].get("ranking", 0.0) if records else 0.0
    for k, record in enumerate(records[1:], start=2):
        if len(close) + len(far) >= n_cells:
            break
        if record["m20"] < min_m20:
            continue
        cell = UnitCell(*record["cell"])
        cell_reduced = _reduced_parameters(cell, record["bravais"])
        if any(same_lattice(cell_reduced, other) for other in seen):
            continue
        seen.append(cell_reduced)
        near = record.get("ranking", 0.0) >= CLOSE_RANKING * first_ranking
        (close if near else far).append(CellChoice(cell, record["bravais"], f"indexing candidate {k}"))
    lower = [lower_symmetry_cell(choice)] if choice.bravais != "aP" else []
    return close + lower + far


def lower_symmetry_groups(cell: UnitCell) -> list[GroupChoice]:
    """P-1 and P1 in a reduced cell, equally likely a priori (each is its own standard setting)."""
    return [
        GroupChoice(SpaceGroup.from_symbol(number), cell, 0.5, symbol) for number, symbol in ((2, "P-1"), (1, "P1"))
    ]


def needs_fallback(state) -> bool:
    """Whether a finished race leaves the structure unsolved: no winner, or a winner that is not confirmed
    (:func:`gasolve.hypotheses.race.is_done`) and whose χ² exceeds :data:`FALLBACK_CHI2_FACTOR` times the noise."""
    if state.winner is None:
        return True
    lane = state.lanes[state.winner]
    return lane.status != "done" and lane.chi2 > FALLBACK_CHI2_FACTOR * state.noise_chi2


def _decided_by_winners(new, old) -> bool | None:
    """Whether race ``new`` beats ``old`` on their winners alone: False without a winner, True against a race
    without one or when only ``new``'s is confirmed; None when their fits must decide."""
    if new.winner is None:
        return False
    if old.winner is None:
        return True
    if new.lanes[new.winner].status == "done" and old.lanes[old.winner].status != "done":
        return True
    return None


def better_attempt(new, old, margin: float = 0.9) -> bool:
    """Whether the race ``new`` (a fallback) beats ``old``: it has a winner and either it is confirmed and the old
    one is not, or its Rwp is below ``margin`` times the old winner's (a fallback with more free coordinates must
    fit clearly better, not only as well)."""
    decided = _decided_by_winners(new, old)
    if decided is not None:
        return decided
    new_lane, old_lane = new.lanes[new.winner], old.lanes[old.winner]
    return new_lane.rwp < margin * old_lane.rwp


def winner_structure(fitted, state, observed):
    """The best model of a race's winner as the pattern alone places it, a Structure: its hypothesis's sites at
    the coordinates of the run's best distinct models refined by least squares on Rwp
    (:func:`gasolve.pipeline.refine_candidates`, the first step of the final refinement that writes best.cif).

    The search's own best model minimises Rwp plus its selection penalties; with the bond-valence restraint
    (``[ga] bond_valence_weight``) a cation's bond valence sum rises when it moves off a centre of symmetry (the
    distortion theorem of bond valence), so that model can miss a supergroup that its refined model obeys.
    """
    from gasolve import pipeline
    from gasolve.hypotheses import race
    from gasolve.solve import model_structure

    lane = state.lanes[state.winner]
    config = race.hypothesis_config(fitted, lane.hypothesis, lane.target)
    setup = pipeline.prepare(config, observed)
    best, _ = pipeline.refine_candidates(setup, lane.record)
    return model_structure(setup.template, best.frac)


#: Source of a cell of higher symmetry found in a solved model (:func:`missed_symmetry_choice`).
MISSED_SYMMETRY_SOURCE = "higher symmetry of the solved model"


def missed_symmetry_choice(fitted, state, observed) -> tuple[CellChoice, object] | None:
    """The cell (and, for a supergroup, the group) of the symmetry a race winner's refined model
    (:func:`winner_structure`) has beyond its own (:func:`gasolve.missed_symmetry.missed_symmetry`), as the next
    cell to try, with what was found; None when the race has no winner or the model no missed symmetry, and for a
    supergroup when the winner does not fit (:func:`needs_fallback`).

    A smaller cell is taken from a winner that does not fit as well: a search in a supercell has twice the free
    coordinates it needs and may not converge, while the atoms it placed already repeat (rutile with c doubled).
    A supergroup of a model that does not fit says nothing of the structure: a P4/m model of a triclinic
    structure, all its atoms on P4/mmm's positions, at χ² 7.
    """
    from gasolve.missed_symmetry import missed_symmetry

    if state.winner is None or state.lanes[state.winner].record is None:
        return None
    found = missed_symmetry(winner_structure(fitted, state, observed))
    if found is None or (found.kind == "supergroup" and needs_fallback(state)):
        return None
    group = found.space_group if found.kind == "supergroup" else None
    choice = CellChoice(
        found.cell,
        found.bravais,
        MISSED_SYMMETRY_SOURCE,
        space_group=group,
        model_group=found.space_group,
        model_sites=found.sites,
    )
    return choice, found


def model_hypothesis(
    base: StructureSpec, groups: list[GroupChoice], number: int, sites: tuple[tuple[str, str], ...]
) -> object | None:
    """The hypothesis of a symmetrised model's sites in the raced group ``number``.

    Parameters
    ----------
    base : StructureSpec
        The race's composition spec (``composition`` set).
    groups : list of GroupChoice
        The groups raced in this cell.
    number : int
        The symmetrised model's space-group number (:attr:`CellChoice.model_group`).
    sites : tuple of (str, str)
        Its (element, Wyckoff label) sites in the group's standard setting (:attr:`CellChoice.model_sites`).

    Returns
    -------
    gasolve.hypotheses.hypothesis.Hypothesis or None
        A "wyckoff" hypothesis, its spec built as :func:`solve_hypotheses` builds it, the sites in the formula's
        element order; None when that group is not raced, a label is not one of its Wyckoff positions, or the
        sites do not hold a whole number Z ≥ 1 of formula units.
    """
    from gasolve.hypotheses.assignments import wyckoff_slots
    from gasolve.hypotheses.hypothesis import Hypothesis

    chosen = [g for g in groups if g.space_group.number == number]
    if not chosen or not sites:
        return None
    spec = replace(base, space_group=chosen[0].space_group, cell=chosen[0].cell)
    slots = {slot.label: slot for slot in wyckoff_slots(spec.space_group)}
    if any(label not in slots for _, label in sites):
        return None
    atoms: dict[str, int] = {}
    for element, label in sites:
        atoms[element] = atoms.get(element, 0) + slots[label].multiplicity
    composition = dict(base.composition)
    if set(atoms) != set(composition):
        return None
    z = atoms[next(iter(composition))] // composition[next(iter(composition))]
    if z < 1 or any(atoms[element] != n * z for element, n in composition.items()):
        return None
    n_free = sum(slots[label].n_free for _, label in sites)
    order = {element: k for k, element in enumerate(composition)}  # the formula's element order, as elsewhere
    ordered = tuple(sorted(sites, key=lambda site: (order[site[0]], -slots[site[1]].multiplicity, site[1])))
    return Hypothesis(z, "wyckoff", ordered, n_free, 0.0, base=spec)


def with_model_group(
    groups: list[GroupChoice], number: int, cell: UnitCell, analysis: dict | None
) -> list[GroupChoice]:
    """The groups to race in a smaller cell that a solved model repeats in, its own group among them.

    A model that fits the pattern in a supercell and repeats in a smaller cell has a group there
    (:attr:`CellChoice.model_group`); the extinction analysis of the smaller cell can rank that group low when some
    of its reflections are absent by accident (BaCaI4, P2/c: 010 and 030 are weak, so P2_1/c wins by 18 in log
    likelihood). The model is stronger evidence than those few intensities, so its group is raced whatever its
    posterior, first when the analysis did not choose it.

    Parameters
    ----------
    groups : list of GroupChoice
        The analysis's choice (:func:`space_group_candidates`).
    number : int
        The model's space-group number in ``cell``.
    cell : UnitCell
        The smaller cell, in that group's standard setting (as :func:`gasolve.missed_symmetry.missed_symmetry`
        gives it, refined by the holohedral fit).
    analysis : dict or None
        The analysis's evidence; its ``ranked_space_groups`` give the group's posterior (0 when not ranked).

    Returns
    -------
    list of GroupChoice
        ``groups`` unchanged when it holds the group; else the group first (setting "the solved model's"), then
        ``groups``.
    """
    if any(choice.space_group.number == number for choice in groups):
        return groups
    group = SpaceGroup.from_symbol(number)
    group.check_cell(cell)
    ranked = (analysis or {}).get("ranked_space_groups", [])
    posterior = max((float(item["posterior"]) for item in ranked if item["number"] == number), default=0.0)
    return [GroupChoice(group, cell, posterior, "the solved model's"), *groups]


def model_first(hypotheses: list, own) -> list:
    """The race's hypotheses with a symmetrised model's own (:func:`model_hypothesis`) first, as many as before.

    Parameters
    ----------
    hypotheses : list of gasolve.hypotheses.hypothesis.Hypothesis
        As :func:`solve_hypotheses` ranks them.
    own : Hypothesis
        The model's assignment.

    Returns
    -------
    list of Hypothesis
        ``own``, then the others in their order without the one that is ``own`` (same group, Z and sites in any
        order); when none is, the last is left out, so that the race keeps its number of lanes.
    """

    def key(hypothesis) -> tuple:
        return hypothesis.base.space_group.number, hypothesis.z, tuple(sorted(hypothesis.sites))

    others = [h for h in hypotheses if key(h) != key(own)]
    return [own, *others][: len(hypotheses)]


def symmetric_attempt_holds(new, old, observations: int, alpha: float = 0.05) -> bool:
    """Whether the race ``new``, in the higher symmetry of ``old``'s winner, is kept: it has a winner and either
    it is confirmed and the old one is not, or its Rwp exceeds the old winner's by no more than Hamilton's critical
    ratio for the coordinates it does not have (:func:`gasolve.missed_symmetry.hamilton_ratio`, significance
    ``alpha``, ``observations`` as n: see :func:`kept_attempt`)."""
    from gasolve.missed_symmetry import hamilton_ratio

    decided = _decided_by_winners(new, old)
    if decided is not None:
        return decided
    new_lane, old_lane = new.lanes[new.winner], old.lanes[old.winner]
    parameters = old_lane.hypothesis.n_free
    restrictions = parameters - new_lane.hypothesis.n_free
    limit = hamilton_ratio(restrictions, observations, parameters, alpha) if restrictions > 0 else 1.0
    return new_lane.rwp <= limit * old_lane.rwp


def kept_attempt(races: list, sources: list[str], observations: int, alpha: float = 0.05) -> int:
    """Index of the attempt whose race is kept, the attempts taken in order.

    A fallback is kept when it beats the kept attempt (:func:`better_attempt`). An attempt in the higher symmetry
    of a model (source :data:`MISSED_SYMMETRY_SOURCE`) comes right after the attempt whose winner it symmetrises,
    and Hamilton's test holds only between nested models: when the kept attempt is among its ancestors (the one
    before it, that one's own parent while it too is a missed-symmetry attempt, ...), it is kept when it holds
    against the kept one (:func:`symmetric_attempt_holds`); otherwise it must hold against its parent and beat the
    kept attempt as a fallback does.

    Parameters
    ----------
    races : list of gasolve.hypotheses.race.RaceState
        The finished races, one per attempt, in the order they were run.
    sources : list of str
        Each attempt's cell source (:attr:`CellChoice.source`), same length.
    observations : int or list of int
        n of Hamilton's test, one for all attempts or one per attempt (a missed-symmetry attempt's own is used). The
        solve takes each attempt's independent intensities (reflection groups of its holohedral fit), not the
        profile points: neighbouring points of a profile are correlated (about five per FWHM), and a powder pattern
        carries about one independent observation per resolved reflection. With the points as n, the critical
        ratio is about 1.002 (any restriction must fit as well or better): Ce3SiPt5's Imma model (the reference's
        group) was refused against its Ima2 parent at Rwp 0.6 % higher (3,751 points: 1.002; 161 reflections:
        1.053).
    alpha : float
        Significance level of Hamilton's test.

    Returns
    -------
    int
        Index into ``races``.
    """
    per_attempt = list(observations) if isinstance(observations, list | tuple) else [observations] * len(races)
    kept = 0
    for k in range(1, len(races)):
        if sources[k] != MISSED_SYMMETRY_SOURCE:
            better = better_attempt(races[k], races[kept])
        elif kept in _ancestors(sources, k):
            better = symmetric_attempt_holds(races[k], races[kept], per_attempt[k], alpha)
        else:
            better = symmetric_attempt_holds(races[k], races[k - 1], per_attempt[k], alpha)
            better = better and better_attempt(races[k], races[kept])
        if better:
            kept = k
    return kept


def _ancestors(sources: list[str], k: int) -> list[int]:
    """The attempts whose models the missed-symmetry attempt ``k`` restricts: k - 1, then back while each is one."""
    ancestors = [k - 1]
    while ancestors[-1] > 0 and sources[ancestors[-1]] == MISSED_SYMMETRY_SOURCE:
        ancestors.append(ancestors[-1] - 1)
    return ancestors
