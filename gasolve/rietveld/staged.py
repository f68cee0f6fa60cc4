"""The staged refinement program: scale and background, then cell, zero shift and profile, then coordinates, then
B, then everything together (the order GSAS-II's and TOPAS's tutorials follow: the parameters that move whole
peaks before those that share out intensity among them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gasolve.crystal.structure import Structure
from gasolve.diffraction.fit_metrics import FitMetrics, bragg_r, fit_metrics
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.rietveld.esd import Uncertainties, cell_esd, uncertainties
from gasolve.rietveld.lm import SingularMatrixError, levenberg_marquardt
from gasolve.rietveld.model import RietveldModel
from gasolve.rietveld.parameters import GROUPS

#: The default program: (stage name, parameter groups released, cumulatively within the stage).
DEFAULT_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("scale/background", ()),
    ("cell/zero/profile", ("cell", "zero", "profile")),
    ("coordinates", ("coordinates",)),
    ("B", ("b_iso",)),
    ("all", GROUPS),
)


@dataclass(frozen=True)
class RefinementSettings:
    """How the refinement runs.

    Attributes
    ----------
    groups : tuple of str
        Parameter groups refined at all (a subset of :data:`gasolve.rietveld.parameters.GROUPS`).
    b_per : {"site", "element"}
    displacement : bool
        Refine the specimen displacement as well as the zero shift.
    background_terms : int
    max_iterations : int
        Per stage.
    shift_tolerance : float
        Converged when every shift is below this fraction of its esd.
    """

    groups: tuple[str, ...] = GROUPS
    b_per: str = "site"
    displacement: bool = False
    background_terms: int = 6
    max_iterations: int = 30
    shift_tolerance: float = 0.01

    def __post_init__(self) -> None:
        unknown = set(self.groups) - set(GROUPS)
        if unknown:
            raise InputError(f"unknown refinement groups {sorted(unknown)}; known: {', '.join(GROUPS)}")


@dataclass(frozen=True)
class StageReport:
    name: str
    rwp: float
    iterations: int
    converged: bool


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
    cell_esd : ndarray, shape (6,)
    stages : tuple of StageReport
    error : str or None
        Why the refinement stopped early (e.g. a singular matrix); the structure is then the last sound one.
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


def _lower_bounds(model: RietveldModel) -> np.ndarray:
    lower = np.full(model.n_parameters, -np.inf)
    lower[model.layout.indices("b_iso")] = 0.0
    for name in ("W", "eta", "axial"):
        if name in model.layout.names:
            lower[model.layout.index(name)] = 1e-8 if name == "W" else 0.0
    return lower


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
    """
    settings = settings or RefinementSettings()
    model = RietveldModel(
        structure,
        pattern,
        radiation,
        profile,
        background_terms=settings.background_terms,
        b_per=settings.b_per,
        displacement=settings.displacement,
    )
    lower = _lower_bounds(model)
    x = model.x0.copy()
    reports = []
    released: list[str] = []
    error = None
    norm = float(np.sum(pattern.weights * pattern.y_obs**2))
    for name, groups in stages:
        groups = [g for g in groups if g in settings.groups]
        free = model.layout.indices(groups) if groups else np.zeros(0, dtype=int)
        released = sorted(set(released) | set(groups))
        try:
            result = levenberg_marquardt(
                model,
                x,
                free,
                max_iterations=settings.max_iterations,
                shift_tolerance=settings.shift_tolerance,
                lower=lower,
            )
        except SingularMatrixError as singular:
            error = f"stage {name}: {singular}"
            x = singular.last_sound
            break
        x = result.x
        reports.append(
            StageReport(name, float(np.sqrt(result.chi2_history[-1] / norm)), result.iterations, result.converged)
        )
    free = model.layout.indices(released) if released else np.zeros(0, dtype=int)
    return summarise(model, x, free, tuple(reports), error)


def summarise(model: RietveldModel, x: np.ndarray, free: np.ndarray, stages=(), error=None) -> RefinementResult:
    """Figures of merit and esds of the vector ``x`` with the entries ``free`` refined."""
    fit = model.linear_fit(x)
    pattern = model.pattern
    n_parameters = len(free) + 1 + model.background_terms
    metrics = fit_metrics(pattern.y_obs, fit.y_calc, pattern.weights, n_parameters)
    peak_matrix = model.peak_matrix(x)
    background = model.basis @ fit.background
    r_bragg = bragg_r(peak_matrix, fit.scale * model.intensities(x), pattern.y_obs, background)
    unc = uncertainties(model, x, free)
    esd_of = dict(zip(unc.names, unc.esd, strict=True))
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
    )
