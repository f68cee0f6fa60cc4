"""The staged refinement program: scale and background, then cell, zero shift and profile, then coordinates, then
B (and the anisotropic U, :mod:`gasolve.rietveld.adp`), then B with the specimen corrections (surface roughness,
absorption) when the config gives any, then preferred orientation, then everything together (the order GSAS-II's
and TOPAS's tutorials follow: the parameters that move whole peaks before those that share out intensity among
them; the orientation is chosen on a model whose coordinates are refined, so that it does not absorb a wrong
structure's misfit).

Preferred orientation "auto": at its stage, the March-Dollase r is refined with the coordinates (which may have
taken up some of the texture in the stage before) along each low-index direction distinct under the Laue group
(:func:`gasolve.rietveld.orientation.distinct_directions`); the direction with the
lowest χ² is kept if it lowers χ² by more than :data:`PO_SIGNIFICANCE` times the reduced χ² and by at least
:data:`PO_MIN_RELATIVE` of χ² (a clear improvement, not the few units any extra parameter buys on a pattern with
systematic misfit); otherwise r stays 1 and is not refined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gasolve.crystal.structure import U_TO_B, Structure
from gasolve.diffraction.fit_metrics import FitMetrics, bragg_r, fit_metrics
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import Radiation
from gasolve.io.patterns import ObservedPattern
from gasolve.rietveld import adp
from gasolve.rietveld.esd import Uncertainties, cell_esd, uncertainties
from gasolve.rietveld.lm import SingularMatrixError, levenberg_marquardt
from gasolve.rietveld.model import RietveldModel
from gasolve.rietveld.orientation import distinct_directions
from gasolve.rietveld.phases import PhaseResult, cell_mass, weight_fractions
from gasolve.rietveld.riding import RidingHydrogen
from gasolve.rietveld.settings import GROUPS, RefinementSettings
from gasolve.threads import blas_single_thread

#: The default program: (stage name, parameter groups refined in the stage). The final summary counts every group
#: released by any stage.
DEFAULT_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("scale/background", ()),
    ("cell/zero", ("cell", "phase_cell", "zero")),
    ("cell/zero/profile", ("cell", "phase_cell", "zero", "profile", "phase_profile")),
    ("coordinates", ("coordinates",)),
    ("B", ("b_iso", "u_aniso", "phase_b_iso")),
    ("B/specimen corrections", ("b_iso", "u_aniso", "phase_b_iso", "surface_roughness", "absorption")),
    ("preferred orientation", ("preferred_orientation",)),
    ("all", GROUPS),
)
#: "auto" keeps a preferred-orientation direction when χ² drops by more than this many reduced χ² ...
PO_SIGNIFICANCE = 25.0
#: ... and by at least this fraction of χ².
PO_MIN_RELATIVE = 0.02
#: Least-squares cycles of r and the coordinates along each candidate direction.
PO_TRIAL_ITERATIONS = 8


@dataclass(frozen=True)
class StageReport:
    """One stage: its name, Rwp at its end, cycles, convergence, Rwp after each accepted cycle (the start first)
    and a note (e.g. the preferred-orientation choice)."""

    name: str
    rwp: float
    iterations: int
    converged: bool
    rwp_history: tuple[float, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class RestraintReport:
    """A restraint at the refined model: value and target (Å or degrees), σ, and its χ² contribution."""

    name: str
    value: float
    target: float
    sigma: float
    chi2: float


@dataclass(frozen=True)
class RefinementResult:
    """A refined model and its figures.

    Attributes
    ----------
    structure : Structure
        Refined cell, coordinates and B.
    profile : PeakProfile
    x : ndarray
        The refined parameter vector (``model.layout`` names it).
    metrics : FitMetrics
        Rwp, Rp, Rexp, reduced χ² with every refined parameter counted.
    r_bragg : float
    uncertainties : Uncertainties
    coordinate_esd : ndarray, shape (n_sites, 3)
        esd of each fractional coordinate: 0 where the position fixes it, NaN for the slots holding the origin.
    b_esd : ndarray, shape (n_sites,)
        esd of B; of 8π² Ueq for an anisotropic site.
    u_aniso, u_aniso_esd : ndarray, shape (n_sites, 6)
        U11, U22, U33, U12, U13, U23 (Å², CIF convention) of the anisotropic sites and their esds (0 for a
        component the site symmetry fixes to 0 or ties to another's, whose esd follows from it); NaN rows for the
        isotropic sites.
    non_positive_definite : tuple of str
        Labels of the anisotropic sites whose refined U is not positive definite (a principal value <= 0): not a
        physical displacement; reported, not hidden.
    cell_esd : ndarray, shape (6,)
    stages : tuple of StageReport
    error : str or None
        Why the refinement stopped early (e.g. a singular matrix); the structure is then the last sound one.
    po_direction : tuple of 3 int or None
        The March-Dollase direction refined (None: no preferred orientation).
    restraints : tuple of RestraintReport
    hydrogens : tuple of RidingHydrogen
        The constraint on every H site (:mod:`gasolve.rietveld.riding`): riding, held fixed or free.
    phases : tuple of PhaseResult
        The further phases (:mod:`gasolve.rietveld.phases`): scale, cell and weight fraction with esds.
    weight_fraction, weight_fraction_esd : float or None
        This phase's Hill-Howard weight fraction and its esd; None without further phases.
    """

    structure: Structure
    profile: PeakProfile
    x: np.ndarray
    scale: float
    background: np.ndarray
    y_calc: np.ndarray
    metrics: FitMetrics
    r_bragg: float
    uncertainties: Uncertainties
    coordinate_esd: np.ndarray
    b_esd: np.ndarray
    cell_esd: np.ndarray
    stages: tuple[StageReport, ...]
    model: RietveldModel = field(repr=False)
    error: str | None = None
    po_direction: tuple[int, int, int] | None = None
    restraints: tuple[RestraintReport, ...] = ()
    hydrogens: tuple[RidingHydrogen, ...] = ()
    u_aniso: np.ndarray | None = None
    u_aniso_esd: np.ndarray | None = None
    non_positive_definite: tuple[str, ...] = ()
    phases: tuple[PhaseResult, ...] = ()
    weight_fraction: float | None = None
    weight_fraction_esd: float | None = None


#: Relative χ² change below which a stage before the last stops: it only has to bring its parameters near the
#: minimum for the next stage (GSAS-II's default convergence test is 10⁻³); the last stage, which releases every
#: group together and gives the esds, converges to FINAL_CHI2_TOLERANCE (or the shifts to 0.01 esd).
STAGE_CHI2_TOLERANCE = 1e-4
FINAL_CHI2_TOLERANCE = 1e-7


def refine(
    structure: Structure,
    pattern: ObservedPattern,
    radiation: Radiation,
    profile: PeakProfile,
    settings: RefinementSettings | None = None,
    stages=DEFAULT_STAGES,
) -> RefinementResult:
    """Run the staged refinement of ``structure`` against ``pattern`` (module docstring).

    A stage that meets a singular normal matrix stops the program; the result then holds the last sound model
    and ``error`` names the parameters the data could not determine.

    Parameters
    ----------
    structure : Structure
        Starting model (a CIF's, or a solution's).
    pattern : ObservedPattern
        Restricted to the range to fit.
    radiation : Radiation
    profile : PeakProfile
        Starting profile (a Le Bail fit's, or the instrument's).
    settings : RefinementSettings, optional
        Default: every group, preferred orientation "auto", no restraints.

    Raises
    ------
    InputError
        A restraint naming a site the model does not have; a starting model with no valid pattern.
    """
    # NumPy's BLAS on one thread: the least squares' products and factorisations are small (n_points × a few
    # dozen), and OpenBLAS's threads on shared cores made them 35-350× slower (docs/refinement.md, Time)
    with blas_single_thread():
        return _refine(structure, pattern, radiation, profile, settings, stages)


def _refine(structure, pattern, radiation, profile, settings, stages) -> RefinementResult:
    """The body of :func:`refine`."""
    settings = settings or RefinementSettings()
    po = settings.po_direction
    candidates = distinct_directions(structure.space_group) if po == "auto" else []
    model = RietveldModel(
        structure,
        pattern,
        radiation,
        profile,
        background_terms=settings.background_terms,
        b_per=settings.b_per,
        adp=settings.adp,
        displacement=settings.displacement,
        preferred_orientation=candidates[0] if po == "auto" else po,
        restraints=settings.restraints,
        anomalous_dispersion=settings.anomalous_dispersion,
        hydrogens=settings.hydrogens,
        hydrogen_parents=dict(settings.hydrogen_parents),
        corrections=settings.corrections,
        phases=settings.phases,
    )
    lower, upper = model.bounds()
    x = model.x0.copy()
    reports = []
    released: list[str] = []
    refined_groups = set(settings.refined_groups)
    error = None
    norm = float(np.sum(pattern.weights * pattern.y_obs**2))

    def rwp(values) -> tuple[float, ...]:
        return tuple(float(np.sqrt(v / norm)) for v in values)

    for stage_index, (name, groups) in enumerate(stages):
        groups = [g for g in groups if g in refined_groups]
        if name == "B/specimen corrections" and not any(g in groups for g in ("surface_roughness", "absorption")):
            continue  # no correction to refine: the B stage did this
        note = ""
        try:
            if name == "preferred orientation" and po == "auto" and "preferred_orientation" in groups:
                x, kept, note = _choose_orientation(
                    model, x, candidates, (lower, upper), rwp, "coordinates" in refined_groups
                )
                if not kept:
                    refined_groups.discard("preferred_orientation")
                    groups = []
            free = model.layout.indices(groups) if groups else np.zeros(0, dtype=int)
            released = sorted(set(released) | set(groups))
            last = stage_index == len(stages) - 1
            result = levenberg_marquardt(
                model,
                x,
                free,
                max_iterations=settings.max_iterations,
                shift_tolerance=settings.shift_tolerance,
                chi2_tolerance=FINAL_CHI2_TOLERANCE if last else STAGE_CHI2_TOLERANCE,
                lower=lower,
                upper=upper,
            )
        except SingularMatrixError as singular:
            error = f"stage {name}: {singular}"
            x = singular.last_sound
            break
        x = result.x
        history = rwp(result.pattern_chi2_history)
        reports.append(StageReport(name, history[-1], result.iterations, result.converged, history, note))
    released = [g for g in released if g in refined_groups]
    free = model.layout.indices(released) if released else np.zeros(0, dtype=int)
    direction = model.po_direction if "preferred_orientation" in released else None
    return summarise(model, x, free, tuple(reports), error, direction)


def _choose_orientation(model: RietveldModel, x: np.ndarray, candidates, bounds, rwp, with_coordinates=True):
    """Refine r and the coordinates along every candidate direction; keep the best if significant (module
    docstring).

    Returns the vector to go on from (r = 1 if none is kept), whether one is kept, and a note for the report.
    """
    index = model.layout.indices("preferred_orientation")
    start = x.copy()
    start[index] = 1.0
    chi2_random = model.chi2(start)
    dof = max(model.pattern.n_points - model.n_parameters - 1 - model.background_terms, 1)
    trials = []
    free = np.concatenate([index, model.layout.indices("coordinates") if with_coordinates else []]).astype(int)
    for direction in candidates:
        model.set_orientation(direction)
        result = levenberg_marquardt(
            model, start, free, max_iterations=PO_TRIAL_ITERATIONS, lower=bounds[0], upper=bounds[1]
        )
        trials.append((result.chi2_history[-1], direction, result.x))
    best_chi2, best_direction, best_x = min(trials, key=lambda t: t[0])
    gain = chi2_random - best_chi2
    kept = gain > max(PO_SIGNIFICANCE * chi2_random / dof, PO_MIN_RELATIVE * chi2_random)
    listing = ", ".join(f"[{' '.join(map(str, d))}] r {xx[index[0]]:.3f} Rwp {rwp([c])[0]:.4f}" for c, d, xx in trials)
    head = f"random Rwp {rwp([chi2_random])[0]:.4f}; "
    if kept:
        model.set_orientation(best_direction)
        return best_x, True, head + f"kept [{' '.join(map(str, best_direction))}]; tried " + listing
    model.set_orientation(best_direction)
    return start, False, head + "none kept (no significant gain); tried " + listing


def summarise(
    model: RietveldModel, x: np.ndarray, free: np.ndarray, stages=(), error=None, po_direction=None
) -> RefinementResult:
    """Figures of merit and esds of the vector ``x`` with the entries ``free`` refined."""
    fit = model.linear_fit(x)
    pattern = model.pattern
    n_parameters = len(free) + 1 + len(model.phases) + model.background_terms
    metrics = fit_metrics(pattern.y_obs, fit.y_calc, pattern.weights, n_parameters)
    peak_matrix = model.peak_matrix(x)
    background = model.basis @ fit.background
    if model.phases:  # this phase's R_Bragg: the other phases' peaks are taken off the observed pattern too
        background = background + fit.phase_peaks @ fit.phase_scales
    r_bragg = bragg_r(peak_matrix, fit.scale * model.intensities(x), pattern.y_obs, background)
    unc = uncertainties(model, x, free)
    esd_of = dict(zip(unc.names, unc.esd, strict=True))
    phases, fraction, fraction_esd = _phase_results(model, x, fit, unc, esd_of)
    # Coordinates: x = M g + t per site, so cov_x = M cov_g Mᵀ; the genome slots' esds are independent enough
    # for the report that the diagonal suffices (the Wyckoff maps have one entry per column).
    genome_esd = np.zeros(3 * model.structure.n_sites)
    for slot, index in zip(model.free_slots, model.layout.indices("coordinates"), strict=True):
        genome_esd[slot] = esd_of.get(model.layout.names[index], 0.0)
    held = np.zeros(3 * model.structure.n_sites)
    held[model.origin_slots] = 1.0
    squares = model.site_map.matrix**2
    coordinate_esd = np.sqrt(np.einsum("sij,sj->si", squares, genome_esd.reshape(-1, 3) ** 2))
    # a coordinate fed by a slot that holds the origin of a polar group has no esd of its own
    coordinate_esd[np.einsum("sij,sj->si", squares, held.reshape(-1, 3)) > 0] = np.nan
    b_param_esd = np.array([esd_of.get(model.layout.names[i], 0.0) for i in model.layout.indices("b_iso")])
    b_esd = np.abs(model.b_map) @ b_param_esd
    for rider in model.hydrogens:  # a constrained Uiso has no esd of its own (as SHELXL writes it)
        if rider.status != "free":
            b_esd[rider.site] = 0.0
    u_aniso, u_aniso_esd, beq_esd, bad = _anisotropic(model, x, unc)
    b_esd[model.aniso_sites] = beq_esd
    restraint_reports = tuple(
        RestraintReport(r.name, float(v), r.target, r.sigma, float(((v - r.target) / r.sigma) ** 2))
        for r, v in zip(model.restraints.restraints, model.restraint_values(x), strict=True)
    )
    return RefinementResult(
        structure=model.structure_of(x),
        profile=model.profile(x),
        x=x,
        scale=fit.scale,
        background=fit.background,
        y_calc=fit.y_calc,
        metrics=metrics,
        r_bragg=r_bragg,
        uncertainties=unc,
        coordinate_esd=coordinate_esd,
        b_esd=b_esd,
        cell_esd=cell_esd(model, x, unc.names, unc.covariance),
        stages=tuple(stages),
        model=model,
        error=error,
        po_direction=po_direction,
        restraints=restraint_reports,
        hydrogens=model.hydrogens,
        u_aniso=u_aniso,
        u_aniso_esd=u_aniso_esd,
        non_positive_definite=bad,
        phases=phases,
        weight_fraction=fraction,
        weight_fraction_esd=fraction_esd,
    )


def _named(model: RietveldModel, x: np.ndarray, esd_of: dict, j: int) -> tuple[str, float, float]:
    """A further phase's parameter ``j``: its name without the phase prefix, value and esd (0 when held)."""
    name = model.layout.names[j]
    return name.split(":", 1)[1], float(x[j]), float(esd_of.get(name, 0.0))


def _phase_results(model: RietveldModel, x: np.ndarray, fit, unc: Uncertainties, esd_of: dict):
    """The further phases' results and this phase's weight fraction and its esd (None, None without further
    phases); ``esd_of``: the esd of each name of ``unc``."""
    if not model.phases:
        return (), None, None
    scale_names = ["scale"] + [f"scale({p.name})" for p in model.phases]
    positions = [unc.names.index(n) for n in scale_names]
    scales = np.concatenate([[fit.scale], fit.phase_scales])
    structures = [model.structure] + [p.structure for p in model.phases]
    cells = [model.cell(x)] + [model.further.cell(x, k) for k in range(len(model.phases))]
    masses = np.array([cell_mass(s) for s in structures])
    volumes = np.array([c.volume for c in cells])
    fractions, fraction_esd = weight_fractions(scales, masses, volumes, unc.covariance[np.ix_(positions, positions)])
    results = tuple(
        PhaseResult(
            name=phase.name,
            scale=float(scales[k + 1]),
            scale_esd=float(unc.esd[positions[k + 1]]),
            cell=tuple(float(v) for v in cells[k + 1].parameters),
            cell_esd=cell_esd(model, x, unc.names, unc.covariance, phase=k),
            weight_fraction=float(fractions[k + 1]),
            weight_fraction_esd=float(fraction_esd[k + 1]),
            b_iso=tuple(_named(model, x, esd_of, j) for j in model.further.by_group[k]["phase_b_iso"]),
            lorentzian=tuple(_named(model, x, esd_of, j) for j in model.further.by_group[k]["phase_profile"]),
        )
        for k, phase in enumerate(model.phases)
    )
    return results, float(fractions[0]), float(fraction_esd[0])


def _anisotropic(model: RietveldModel, x: np.ndarray, unc: Uncertainties):
    """U (n_sites, 6) of the anisotropic sites (NaN rows elsewhere), their esds from the covariance of the free
    components carried through U = C p (cov_U = C cov_p Cᵀ), esds of 8π² Ueq (n_aniso,) likewise (Ueq = g · U),
    and the labels of the sites whose U is not positive definite (a principal value <= 0)."""
    n_sites = model.structure.n_sites
    u_all = np.full((n_sites, 6), np.nan)
    esd_all = np.full((n_sites, 6), np.nan)
    beq_esd = np.zeros(len(model.aniso_sites))
    if not model.aniso_sites:
        return u_all, esd_all, beq_esd, ()
    u = model.u_aniso(x)
    cell = model.cell(x)
    weights = adp.u_equivalent_weights(cell)
    names = [model.layout.names[i] for i in model.layout.indices("u_aniso")]
    where = [unc.names.index(n) if n in unc.names else -1 for n in names]
    covariance = np.zeros((len(names), len(names)))
    refined = [k for k, w in enumerate(where) if w >= 0]
    picked = [where[k] for k in refined]
    covariance[np.ix_(refined, refined)] = unc.covariance[np.ix_(picked, picked)]
    bad = []
    for a, site in enumerate(model.aniso_sites):
        c = model.u_map[a]
        cov_u = c @ covariance @ c.T
        u_all[site] = u[a]
        esd_all[site] = np.sqrt(np.maximum(np.diag(cov_u), 0.0))
        beq_esd[a] = U_TO_B * float(np.sqrt(max(weights @ cov_u @ weights, 0.0)))
        if np.min(adp.principal_values(u[a], cell)) <= 0.0:
            bad.append(model.labels[site])
    return u_all, esd_all, beq_esd, tuple(bad)
