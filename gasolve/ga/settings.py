"""Settings of the multipopulation GA (the ``[ga]`` table of a run config), frozen and validated on creation."""

from __future__ import annotations

from dataclasses import dataclass, fields

from gasolve.errors import InputError

#: Operator names the islands may use; each island self-configures its probabilities among them.
CROSSOVER_NAMES = ("sbx", "blx", "arithmetic", "uniform")
MUTATION_NAMES = ("gaussian", "polynomial")
SELECTION_NAMES = ("tournament", "rank")

#: Cost of one Rwp + gradient evaluation in plain Rwp evaluations, measured with benchmarks/scoring_speed.py
#: on K4SnO4 (2 threads: 444,000 Rwp/s against 172,000 Rwp+gradient/s, ratio 2.58).
GRADIENT_COST = 2.6


@dataclass(frozen=True)
class GASettings:
    """Static settings and rates of the GA.

    Attributes
    ----------
    seed : int
        Drives all randomness of the run (seed 0 is valid).
    max_evaluations : int
        Budget in Rwp-evaluation equivalents (an Rwp + gradient call counts ``gradient_cost``).
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
    elite : int
        Best individuals of an island that always survive.
    crossovers, mutations : tuple of str
        Operators the islands self-configure among.
    sbx_eta, polynomial_eta, blx_alpha : float
        Distribution indices / extension of the crossovers and the polynomial mutation.
    mutation_rate : float
        Probability per gene of mutation (the expected number of mutated genes is rate · n_genes, at least one).
    mutation_sigma : float
        Initial Gaussian step in fractional units; adapted per island by the 1/5 success rule.
    min_probability : float
        Floor of each operator's probability in self-configuration.
    local_steps : int
        L-BFGS iterations of the Lamarckian local refinement of each refined offspring (0 switches it off).
    local_fraction : float
        Share of offspring that are refined (the best by Rwp first).
    migration_interval, migration_size : int
        Every so many generations the best ``migration_size`` of each island replace the worst of the next.
    reallocation_interval : int
        Every so many generations islands are ranked by recent progress and the best takes individuals from
        the worst (cooperative-competitive scheme).
    reallocation_share : int
        Individuals moved per reallocation.
    stagnation_generations : int
        An island whose best has not improved for this many generations restarts (its best kept elsewhere).
    duplicate_tolerance : float
        Two models whose Rwp differ by less are treated as the same model (only one survives).
    antibump_weight : float
        Weight of the anti-bump penalty added to Rwp in selection (0 switches it off). Default 0.02: on 30 seeds
        of K4SnO4 the median evaluations to solution fell from 65,100 (no penalty) to 54,800 (0.02) and 54,600
        (0.05), all 30 solved in each case.
    antibump_distance : float
        Interatomic distance (Å) under which the anti-bump penalty starts.
    scan_after : int
        Generations without a new overall best after which the best model's atoms are relocated one at a time
        over a grid through the cell and the best places refined (:mod:`gasolve.ga.relocation`); 0 switches
        the scan off.
    scan_spacing : float
        Grid step of the relocation scan (Å).
    scan_top : int
        Places per atom refined after the scan.
    restart_after_scans : int
        After this many relocation scans in a row that found nothing better, every island restarts from random
        models (a new independent attempt; the run keeps its best). 0: never. Defaults 20 and 1 (scan_after):
        on K4SnO4 in P1, seeds 100-119, 18/20 solved within 10⁷ evaluations, ERT 3.3·10⁶, against 16/20 and
        ERT 5.7·10⁶ with 40 and 3 (benchmarks/results/convergence_p1_scan*.json).
    fix_origin : bool
        In polar groups (P1, P2, Pmc21, ...) pin the heaviest site's coordinates along the polar axes at 0.
    gradient_cost : float
        Evaluations charged per Rwp + gradient call.
    checkpoint_seconds : float
        Wall time between checkpoints.
    """

    seed: int = 1
    max_evaluations: int = 2_000_000
    islands: int = 6
    island_size: int = 12
    min_island_size: int = 8
    offspring_fraction: float = 1.0
    selection: tuple[str, ...] = ("tournament", "rank")
    tournament_size: int = 3
    elite: int = 2
    crossovers: tuple[str, ...] = CROSSOVER_NAMES
    mutations: tuple[str, ...] = MUTATION_NAMES
    sbx_eta: float = 2.0
    polynomial_eta: float = 20.0
    blx_alpha: float = 0.3
    mutation_rate: float = 0.1
    mutation_sigma: float = 0.05
    min_probability: float = 0.1
    local_steps: int = 25
    local_fraction: float = 1.0
    migration_interval: int = 5
    migration_size: int = 1
    reallocation_interval: int = 10
    reallocation_share: int = 2
    stagnation_generations: int = 25
    duplicate_tolerance: float = 1e-6
    antibump_weight: float = 0.02
    antibump_distance: float = 1.6
    scan_after: int = 20
    scan_spacing: float = 0.4
    scan_top: int = 3
    restart_after_scans: int = 1
    fix_origin: bool = True
    gradient_cost: float = GRADIENT_COST
    checkpoint_seconds: float = 30.0

    def __post_init__(self) -> None:
        def need(condition: bool, name: str, expected: str) -> None:
            if not condition:
                raise InputError(f"[ga] {name} = {getattr(self, name)!r}: expected {expected}")

        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float") and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InputError(f"[ga] {f.name} = {value!r}: expected a number")
        need(isinstance(self.seed, int) and self.seed >= 0, "seed", "an integer >= 0")
        need(self.max_evaluations >= 1, "max_evaluations", "a positive integer")
        need(self.islands >= 1, "islands", "at least 1")
        need(self.island_size >= 4, "island_size", "at least 4")
        need(2 <= self.min_island_size <= self.island_size, "min_island_size", "between 2 and island_size")
        need(0 < self.offspring_fraction <= 4, "offspring_fraction", "in (0, 4]")
        need(2 <= self.tournament_size <= self.min_island_size, "tournament_size", "between 2 and min_island_size")
        need(0 <= self.elite < self.min_island_size, "elite", "between 0 and min_island_size - 1")
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
        need(self.sbx_eta > 0, "sbx_eta", "positive")
        need(self.polynomial_eta > 0, "polynomial_eta", "positive")
        need(0 <= self.blx_alpha <= 1, "blx_alpha", "in [0, 1]")
        need(0 < self.mutation_rate <= 1, "mutation_rate", "in (0, 1]")
        need(0 < self.mutation_sigma <= 0.5, "mutation_sigma", "in (0, 0.5]")
        need(
            0 <= self.min_probability * max(len(self.crossovers), len(self.mutations)) <= 1,
            "min_probability",
            "at most 1 / number of operators",
        )
        need(self.local_steps >= 0, "local_steps", ">= 0")
        need(0 <= self.local_fraction <= 1, "local_fraction", "in [0, 1]")
        need(self.migration_interval >= 1, "migration_interval", ">= 1")
        need(0 <= self.migration_size < self.min_island_size, "migration_size", "between 0 and min_island_size - 1")
        need(self.reallocation_interval >= 1, "reallocation_interval", ">= 1")
        need(self.reallocation_share >= 0, "reallocation_share", ">= 0")
        need(self.stagnation_generations >= 1, "stagnation_generations", ">= 1")
        need(self.duplicate_tolerance >= 0, "duplicate_tolerance", ">= 0")
        need(self.antibump_weight >= 0, "antibump_weight", ">= 0")
        need(self.antibump_distance > 0, "antibump_distance", "> 0 Å")
        need(isinstance(self.scan_after, int) and self.scan_after >= 0, "scan_after", "an integer >= 0")
        need(0.05 <= self.scan_spacing <= 2.0, "scan_spacing", "between 0.05 and 2 Å")
        need(isinstance(self.scan_top, int) and self.scan_top >= 1, "scan_top", "an integer >= 1")
        need(
            isinstance(self.restart_after_scans, int) and self.restart_after_scans >= 0,
            "restart_after_scans",
            "an integer >= 0",
        )
        need(isinstance(self.fix_origin, bool), "fix_origin", "true or false")
        need(self.gradient_cost >= 1, "gradient_cost", ">= 1")
        need(self.checkpoint_seconds > 0, "checkpoint_seconds", "> 0")
