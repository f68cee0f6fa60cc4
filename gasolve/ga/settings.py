"""Settings of the multipopulation GA (the ``[ga]`` table of a run config), frozen and validated on creation.

They come in three parts, as in evosax's split of static settings from parameters:

:class:`GALayout`
    what the search is made of and when it does what: islands and their sizes, selection schemes, operator
    names, local-search iterations, migration, reallocation, restart and scan schedules, origin fixing;
:class:`GARates`
    the continuous parameters of the operators and of fitness: distribution indices, mutation rate and step,
    operator probability floor, refined share, duplicate tolerance, anti-bump weight and distance, scan grid
    step, cost of a gradient call;
:class:`RunBudget`
    the seed, the evaluation budget and the checkpoint interval.

:class:`GASettings` holds one of each. The layout, the rates and the seed decide the path a run takes, so they
make the fingerprint a resumed run is checked against; the evaluation budget and the checkpoint interval may
change on resume. In the TOML file the ``[ga]`` table stays flat: each key goes to the part that owns it
(:meth:`GASettings.from_flat`), and an unknown key is refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from gasolve.errors import InputError

#: Operator names the islands may use; each island self-configures its probabilities among them.
CROSSOVER_NAMES = ("sbx", "blx", "arithmetic", "uniform")
MUTATION_NAMES = ("gaussian", "polynomial")
SELECTION_NAMES = ("tournament", "rank")

#: Cost of one Rwp + gradient evaluation in plain Rwp evaluations, measured with benchmarks/scoring_speed.py
#: on K4SnO4 (2 threads: 444,000 Rwp/s against 172,000 Rwp+gradient/s, ratio 2.58).
GRADIENT_COST = 2.6

#: Keys of earlier versions that are no longer settings, with what to do instead.
REMOVED_KEYS = {
    "elite": "was removed: survivor selection is (μ+λ) truncation of parents and offspring together, which "
    "always keeps the best of each island (an elite count had no effect); delete the key",
}


def _need(settings: Any, condition: bool, name: str, expected: str) -> None:
    if not condition:
        raise InputError(f"[ga] {name} = {getattr(settings, name)!r}: expected {expected}")


def _check_types(settings: Any) -> None:
    """Numbers where numbers are expected (the annotations are text: ``from __future__ import annotations``)."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.type in ("int", "float") and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InputError(f"[ga] {f.name} = {value!r}: expected a number")
        if f.type == "int" and not isinstance(value, int):
            raise InputError(f"[ga] {f.name} = {value!r}: expected an integer")


@dataclass(frozen=True)
class GALayout:
    """Static settings of the GA: what the search is made of and when it does what.

    Attributes
    ----------
    islands : int
        Number of islands (subpopulations).
    island_size : int
        Initial population of each island; reallocation moves individuals between islands.
    min_island_size : int
        No island shrinks below this by reallocation.
    offspring_fraction : float
        Offspring per generation as a fraction of the island's size.
    selection : tuple of str
        Selection scheme of each island, cycled over the islands.
    tournament_size : int
    crossovers, mutations : tuple of str
        Operators the islands self-configure among.
    local_steps : int
        L-BFGS iterations of the Lamarckian local refinement of each refined offspring (0 switches it off).
    migration_interval, migration_size : int
        Every so many generations the best ``migration_size`` of each island replace the worst of the next.
    reallocation_interval : int
        Every so many generations islands are ranked by recent progress and the best takes individuals from
        the worst (cooperative-competitive scheme).
    reallocation_share : int
        Individuals moved per reallocation.
    stagnation_generations : int
        An island whose best has not improved for this many generations restarts (its best kept elsewhere).
    scan_after : int
        Generations without a new overall best after which the best model's atoms are relocated one at a time
        over a grid through the cell and the best places refined (:mod:`gasolve.ga.relocation`); 0 switches
        the scan off.
    scan_top : int
        Places per atom refined after the scan.
    restart_after_scans : int
        After this many relocation scans in a row that found nothing better, every island restarts from random
        models (a new independent attempt; the run keeps its best). 0: never. Defaults 20 and 1 (scan_after):
        on K4SnO4 in P1, seeds 100-119, 18/20 solved within 10⁷ evaluations, ERT 3.3·10⁶, against 16/20 and
        ERT 5.7·10⁶ with 40 and 3 (benchmarks/results/convergence_p1_scan*.json).
    scan_fourier : bool
        Each relocation scan also offers, for every split of the elements by scattering power, the model with the
        lighter atoms put on the peaks of the difference Fourier map phased by the heavier ones
        (:mod:`gasolve.ga.fourier_rebuild`); the map counts as n_grid / n_sites Rwp evaluations.
    fix_origin : bool
        In polar groups (P1, P2, Pmc21, ...) pin the heaviest site's coordinates along the polar axes at 0.
    niche_min_sites : int
        Survivor selection clears niches (``niche_radius``) in searches of at least this many independent sites;
        0: never. Below it, only models of the same Rwp (``duplicate_tolerance``) count as one.

    Notes
    -----
    There is no elite count: survivor selection is (μ+λ) truncation of parents and offspring together, so the
    best members of an island always survive a generation (only a restart of the island discards them, after
    handing its best to the next island).
    """

    islands: int = 6
    island_size: int = 12
    min_island_size: int = 8
    offspring_fraction: float = 1.0
    selection: tuple[str, ...] = ("tournament", "rank")
    tournament_size: int = 3
    crossovers: tuple[str, ...] = CROSSOVER_NAMES
    mutations: tuple[str, ...] = MUTATION_NAMES
    local_steps: int = 25
    migration_interval: int = 5
    migration_size: int = 1
    reallocation_interval: int = 10
    reallocation_share: int = 2
    stagnation_generations: int = 25
    scan_after: int = 20
    scan_top: int = 3
    restart_after_scans: int = 1
    scan_fourier: bool = True
    fix_origin: bool = True
    niche_min_sites: int = 12

    def __post_init__(self) -> None:
        _check_types(self)
        need = functools.partial(_need, self)
        need(self.islands >= 1, "islands", "at least 1")
        need(self.island_size >= 4, "island_size", "at least 4")
        need(2 <= self.min_island_size <= self.island_size, "min_island_size", "between 2 and island_size")
        need(0 < self.offspring_fraction <= 4, "offspring_fraction", "in (0, 4]")
        need(2 <= self.tournament_size <= self.min_island_size, "tournament_size", "between 2 and min_island_size")
        for name, allowed in (
            ("selection", SELECTION_NAMES),
            ("crossovers", CROSSOVER_NAMES),
            ("mutations", MUTATION_NAMES),
        ):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
            need(len(value) > 0 and all(v in allowed for v in value), name, f"a non-empty list from {list(allowed)}")
        need(self.local_steps >= 0, "local_steps", ">= 0")
        need(self.migration_interval >= 1, "migration_interval", ">= 1")
        need(0 <= self.migration_size < self.min_island_size, "migration_size", "between 0 and min_island_size - 1")
        need(self.reallocation_interval >= 1, "reallocation_interval", ">= 1")
        need(self.reallocation_share >= 0, "reallocation_share", ">= 0")
        need(self.stagnation_generations >= 1, "stagnation_generations", ">= 1")
        need(self.scan_after >= 0, "scan_after", "an integer >= 0")
        need(self.scan_top >= 1, "scan_top", "an integer >= 1")
        need(self.restart_after_scans >= 0, "restart_after_scans", "an integer >= 0")
        need(isinstance(self.fix_origin, bool), "fix_origin", "true or false")
        need(self.niche_min_sites >= 0, "niche_min_sites", "an integer >= 0")


@dataclass(frozen=True)
class GARates:
    """Rates of the GA: continuous parameters of the operators, of the local search and of fitness.

    Attributes
    ----------
    sbx_eta, polynomial_eta, blx_alpha : float
        Distribution indices / extension of the crossovers and the polynomial mutation.
    mutation_rate : float
        Probability per gene of mutation (the expected number of mutated genes is rate · n_genes, at least one).
    mutation_sigma : float
        Initial Gaussian step in fractional units; adapted per island by the 1/5 success rule.
    min_probability : float
        Floor of each operator's probability in self-configuration.
    local_fraction : float
        Share of offspring that are refined (the best by Rwp first).
    duplicate_tolerance : float
        Two models whose Rwp differ by less are treated as the same model (only one survives).
    niche_radius : float
        In searches of at least ``niche_min_sites`` sites, two models of an island whose atoms are displaced by less
        than this RMS (Å) are treated as the same model (only the fitter survives: clearing,
        :class:`gasolve.ga.multipop.Niche`).
    antibump_weight : float
        Weight of the anti-bump penalty added to Rwp in selection (0 switches it off). Default 0.02: on 30 seeds
        of K4SnO4 the median evaluations to solution fell from 65,100 (no penalty) to 54,800 (0.02) and 54,600
        (0.05), all 30 solved in each case.
    antibump_distance : float
        Interatomic distance (Å) under which the anti-bump penalty starts.
    bond_valence_weight : float
        Weight (Rwp per v.u.) of the bond-valence penalty added to Rwp in selection: the global instability
        index of the model (:mod:`gasolve.ga.bond_valence_penalty`), for ionic structures with integer
        oxidation states, in searches of at least ``bond_valence_min_sites`` sites; 0 switches it and the
        restraint off. Default 0.02, measured with the restraint: on the large benchmark's tune half V(PO3)3
        was solved in 10 of 10 seeds (5 of 10 without) and SiO2 (P-4, 14 sites) in 10 of 10 (0 of 10) within
        2·10⁶ evaluations; K4SnO4 (9 sites) 20 of 20 in a median 34,200 evaluations (41,200 without).
    bond_valence_min_sites : int
        Searched sites from which the bond-valence penalty applies. Default 9: on 37 triclinic and monoclinic
        structures searched from their composition, the restraint slowed the searches of 3-8 sites (CsGaS2
        117k -> 817k evaluations, ReSe2 458k -> 1.96M; the search finds their minimum anyway, and the GII's pull
        competes with the pattern's) and sped up those of 9-12 (K4C2O3 627k -> 314k, Li2Mn(PO3)4 1.24M ->
        591k, LiCo(CO3)2 1.75M -> 743k).
    bond_valence_local : bool
        Also add the bond-valence penalty, with its analytic gradient, to Rwp in the Lamarckian local search (a
        restraint that pulls each refined model towards sound coordination, as Endeavour's combined cost does);
        the refined models are then scored by Rwp alone once more. Default true: ``bond_valence_weight`` alone
        switches both on.
    scan_spacing : float
        Grid step of the relocation scan (Å).
    gradient_cost : float
        Evaluations charged per Rwp + gradient call.
    """

    sbx_eta: float = 2.0
    polynomial_eta: float = 20.0
    blx_alpha: float = 0.3
    mutation_rate: float = 0.1
    mutation_sigma: float = 0.05
    min_probability: float = 0.1
    local_fraction: float = 1.0
    duplicate_tolerance: float = 1e-6
    niche_radius: float = 0.5
    antibump_weight: float = 0.02
    antibump_distance: float = 1.6
    bond_valence_weight: float = 0.02
    bond_valence_min_sites: int = 9
    bond_valence_local: bool = True
    scan_spacing: float = 0.4
    gradient_cost: float = GRADIENT_COST

    def __post_init__(self) -> None:
        _check_types(self)
        need = functools.partial(_need, self)
        need(self.sbx_eta > 0, "sbx_eta", "positive")
        need(self.polynomial_eta > 0, "polynomial_eta", "positive")
        need(0 <= self.blx_alpha <= 1, "blx_alpha", "in [0, 1]")
        need(0 < self.mutation_rate <= 1, "mutation_rate", "in (0, 1]")
        need(0 < self.mutation_sigma <= 0.5, "mutation_sigma", "in (0, 0.5]")
        need(0 <= self.min_probability <= 1, "min_probability", "in [0, 1]")
        need(0 <= self.local_fraction <= 1, "local_fraction", "in [0, 1]")
        need(self.duplicate_tolerance >= 0, "duplicate_tolerance", ">= 0")
        need(self.niche_radius > 0, "niche_radius", "> 0 Å")
        need(self.antibump_weight >= 0, "antibump_weight", ">= 0")
        need(self.antibump_distance > 0, "antibump_distance", "> 0 Å")
        need(self.bond_valence_weight >= 0, "bond_valence_weight", ">= 0")
        need(self.bond_valence_min_sites >= 0, "bond_valence_min_sites", "an integer >= 0")
        need(isinstance(self.bond_valence_local, bool), "bond_valence_local", "true or false")
        need(0.05 <= self.scan_spacing <= 2.0, "scan_spacing", "between 0.05 and 2 Å")
        need(self.gradient_cost >= 1, "gradient_cost", ">= 1")


@dataclass(frozen=True)
class RunBudget:
    """What a run may spend, and how it saves its progress.

    Attributes
    ----------
    seed : int
        Drives all randomness of the run (seed 0 is valid).
    max_evaluations : int
        Budget in Rwp-evaluation equivalents (an Rwp + gradient call counts ``gradient_cost``).
    checkpoint_seconds : float
        Wall time between checkpoints.
    light_atom_evaluations : int
        Budget of the light-atom search at the end of a run whose best model was found only once: the lighter
        atoms searched again with the heavier ones held where the run put them (:mod:`gasolve.light_atoms`), at
        most a quarter of ``max_evaluations``; 0 switches it off.
    """

    seed: int = 1
    max_evaluations: int = 2_000_000
    checkpoint_seconds: float = 30.0
    light_atom_evaluations: int = 300_000

    def __post_init__(self) -> None:
        _check_types(self)
        _need(self, self.seed >= 0, "seed", "an integer >= 0")
        _need(self, self.max_evaluations >= 1, "max_evaluations", "a positive integer")
        _need(self, self.checkpoint_seconds > 0, "checkpoint_seconds", "> 0")
        _need(self, self.light_atom_evaluations >= 0, "light_atom_evaluations", "an integer >= 0")


#: The part that owns each key of the flat ``[ga]`` table, in the order the resolved config writes them.
PARTS = {"budget": RunBudget, "layout": GALayout, "rates": GARates}
#: Every key of the flat ``[ga]`` table: name -> dataclass field (its ``type`` is the annotation as text).
FLAT_FIELDS: dict[str, dataclasses.Field] = {f.name: f for kind in PARTS.values() for f in fields(kind)}
_OWNER = {f.name: part for part, kind in PARTS.items() for f in fields(kind)}


@dataclass(frozen=True)
class GASettings:
    """Everything the GA is told: static layout, rates and the run budget.

    Attributes
    ----------
    layout : GALayout
    rates : GARates
    budget : RunBudget
    """

    layout: GALayout = field(default_factory=GALayout)
    rates: GARates = field(default_factory=GARates)
    budget: RunBudget = field(default_factory=RunBudget)

    def __post_init__(self) -> None:
        n_operators = max(len(self.layout.crossovers), len(self.layout.mutations))
        _need(
            self.rates,
            self.rates.min_probability * n_operators <= 1,
            "min_probability",
            f"at most 1 / number of operators ({n_operators})",
        )

    @classmethod
    def from_flat(cls, values: Mapping[str, Any] | None = None, /, **keywords: Any) -> GASettings:
        """Settings from flat ``[ga]`` keys (a mapping, keywords or both), the others at their defaults.

        Raises
        ------
        InputError
            A removed or unknown key (naming the close match) or a bad value.
        """
        return cls().replace(values, **keywords)

    def replace(self, values: Mapping[str, Any] | None = None, /, **keywords: Any) -> GASettings:
        """A copy with flat ``[ga]`` keys changed, each in the part that owns it.

        Raises
        ------
        InputError
            A removed or unknown key (naming the close match) or a bad value.
        """
        changes = {**(values or {}), **keywords}
        grouped: dict[str, dict[str, Any]] = {part: {} for part in PARTS}
        for key, value in changes.items():
            if key in REMOVED_KEYS:
                raise InputError(f"[ga] {key} {REMOVED_KEYS[key]}")
            if key not in _OWNER:
                close = difflib.get_close_matches(key, FLAT_FIELDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InputError(f"[ga] {key}: unknown key{hint}; allowed: {', '.join(FLAT_FIELDS)}")
            grouped[_OWNER[key]][key] = value
        parts = {
            part: dataclasses.replace(getattr(self, part), **grouped[part]) if grouped[part] else getattr(self, part)
            for part in PARTS
        }
        return GASettings(**parts)

    def flat(self) -> dict[str, Any]:
        """Every key of the flat ``[ga]`` table with its value (budget, layout, rates), as the TOML writes it."""
        return {name: getattr(getattr(self, _OWNER[name]), name) for name in FLAT_FIELDS}
