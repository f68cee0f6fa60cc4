"""Further crystalline phases of a refinement and the weight fractions of all phases.

A measured specimen often holds a second phase: NAC (Na2Ca3Al2F14) from APS 11-BM holds about 1.5 % CaF2, which
GSAS refined as a second phase; a gypsum holds calcite. A phase given by its CIF adds its calculated pattern to the
model, y = s P I + Σ_p s_p P_p I_p + B c. Its coordinates and occupancies are held as its CIF gives them; its cell
is refined under its space group's constraints (group ``phase_cell``) and its B per site or per element (group
``phase_b_iso``, started from the CIF's), its scale s_p is solved exactly with the main scale and the background
(variable projection), and it shares the instrument: the zero shift, the specimen displacement and the profile of
the main phase. With the Thompson-Cox-Hastings profile, the Gaussian U, V, W (the instrument) and the asymmetry
are shared, and each phase has its own Lorentzian X / cos θ + Y tan θ (crystallite size and strain, group
``phase_profile``), as in GSAS-II's per-phase size and microstrain.

Weight fractions follow Hill & Howard, J. Appl. Cryst. 20 (1987) 467: with I = |F|² of one cell and no 1/V² in
the model, the scale of a phase is proportional to its weight fraction over the mass and volume of its cell, so
W_p = s_p M_p V_p / Σ_i s_i M_i V_i, M the mass of one cell's contents (atomic masses from ASE) and V its volume.
Microabsorption (Brindley) is not corrected: the fractions hold for phases of similar absorption or fine powders.
Their esds follow from the covariance of the scales (with every other refined parameter's correlation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gasolve.crystal.structure import Structure
from gasolve.errors import InputError


@dataclass(frozen=True)
class SecondaryPhase:
    """A further phase of the specimen.

    Attributes
    ----------
    name : str
        Names its parameters (``"CaF2:metric0"``) and its rows in the outputs; unique within a refinement.
    structure : Structure
        Coordinates, occupancies and B held; the cell starts from it.
    source : str
        The CIF it was read from ("" when built in memory), written back to a config.
    """

    name: str
    structure: Structure
    source: str = ""

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in " :()[]"):
            raise InputError(f"a phase name must be non-empty without spaces, colons or brackets, got {self.name!r}")


@dataclass(frozen=True)
class PhaseResult:
    """One phase at the refined vector.

    Attributes
    ----------
    name : str
    scale, scale_esd : float
        The phase's scale (y = s P |F|²) and its esd.
    cell : tuple of 6 float
        a, b, c (Å), α, β, γ (degrees).
    cell_esd : ndarray, shape (6,)
    weight_fraction, weight_fraction_esd : float
        Hill-Howard weight fraction (0-1) and its esd.
    b_iso : tuple of (str, float, float)
        Each B parameter of the phase (``"B(Ca1)"`` or ``"B(Ca)"``): name, value (Å²) and esd (0 when held).
    lorentzian : tuple of (str, float, float)
        With the Thompson-Cox-Hastings profile, the phase's own Lorentzian ``"X"`` and ``"Y"`` (degrees) with
        their esds; empty otherwise.
    """

    name: str
    scale: float
    scale_esd: float
    cell: tuple[float, ...]
    cell_esd: np.ndarray
    weight_fraction: float
    weight_fraction_esd: float
    b_iso: tuple[tuple[str, float, float], ...] = ()
    lorentzian: tuple[tuple[str, float, float], ...] = ()


def cell_mass(structure: Structure) -> float:
    """Mass of one unit cell's contents (atomic mass units): Σ occupancy × orbit size × atomic mass."""
    from ase.data import atomic_masses, atomic_numbers

    total = 0.0
    for site in structure.sites:
        orbit = len(structure.space_group.orbit(np.asarray(site.frac, dtype=float)))
        total += site.occupancy * orbit * float(atomic_masses[atomic_numbers[site.element]])
    return total


def weight_fractions(
    scales: np.ndarray, masses: np.ndarray, volumes: np.ndarray, covariance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hill-Howard weight fractions and their esds (module docstring).

    Parameters
    ----------
    scales : ndarray, shape (n_phases,)
    masses : ndarray, shape (n_phases,)
        Cell masses (u).
    volumes : ndarray, shape (n_phases,)
        Cell volumes (Å³).
    covariance : ndarray, shape (n_phases, n_phases)
        Of the scales.

    Returns
    -------
    fractions, esd : ndarray, shape (n_phases,) each
    """
    scales = np.asarray(scales, dtype=float)
    weights = np.asarray(masses, dtype=float) * np.asarray(volumes, dtype=float)
    amounts = scales * weights
    total = float(np.sum(amounts))
    if total <= 0:
        nan = np.full(len(scales), np.nan)
        return nan, nan
    fractions = amounts / total
    # ∂W_p/∂s_i = w_i (δ_pi Σ - a_p) / Σ²
    jacobian = (np.eye(len(scales)) * total - amounts[:, None]) * weights[None, :] / total**2
    esd = np.sqrt(np.maximum(np.diag(jacobian @ covariance @ jacobian.T), 0.0))
    return fractions, esd


class FurtherPhases:
    """The further phases of one refinement: a model of each and where its parameters sit in the main vector.

    Each further phase is a :class:`gasolve.rietveld.model.RietveldModel` of its own on the same pattern and
    instrument, built by the main model; its own vector is filled from the main one: the shared entries (zero,
    displacement, profile) and its own (cell, B and, with the Thompson-Cox-Hastings profile, Lorentzian X, Y).
    Only its peaks and their derivatives are used.

    Parameters
    ----------
    phases : tuple of SecondaryPhase
    models : tuple of RietveldModel
        One per phase.
    own_lorentzian : tuple of str
        ``("X", "Y")`` when each phase has its own Lorentzian, else empty.
    """

    def __init__(self, phases: tuple[SecondaryPhase, ...], models: tuple, own_lorentzian: tuple[str, ...] = ()):
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            raise InputError(f"two further phases have the same name: {names}")
        self.phases = tuple(phases)
        self.models = tuple(models)
        self.own_lorentzian = tuple(own_lorentzian)

    def __len__(self) -> int:
        return len(self.phases)

    def _own(self, model) -> list[tuple[str, str, int]]:
        """(name in the phase's vector, group in the main vector, index in the phase's vector) of a phase's own
        parameters: cell coefficients, B, Lorentzian."""
        out = [(model.layout.names[i], "phase_cell", int(i)) for i in model.layout.indices("cell")]
        out += [(model.layout.names[i], "phase_b_iso", int(i)) for i in model.layout.indices("b_iso")]
        out += [(n, "phase_profile", model.layout.index(n)) for n in self.own_lorentzian]
        return out

    def parameters(self) -> tuple[list[str], list[str], list[float]]:
        """Names (``"CaF2:metric0"``, ``"CaF2:B(Ca1)"``, ``"CaF2:X"``), groups and starting values of the
        further phases' own parameters, in the order they follow the main phase's."""
        names, groups, start = [], [], []
        for group in ("phase_cell", "phase_b_iso", "phase_profile"):
            for phase, model in zip(self.phases, self.models, strict=True):
                for name, own_group, index in self._own(model):
                    if own_group == group:
                        names.append(f"{phase.name}:{name}")
                        groups.append(group)
                        start.append(float(model.x0[index]))
        return names, groups, start

    def bind(self, layout, shared: list[str]) -> None:
        """Index the main vector (its ``layout``): the ``shared`` entries and each phase's own."""
        self._shared = np.array([layout.index(n) for n in shared], dtype=int)
        self._model_shared = [np.array([m.layout.index(n) for n in shared], dtype=int) for m in self.models]
        #: Per phase, (index in the main vector, index in the phase's vector) of its own parameters.
        self.own: list[list[tuple[int, int]]] = []
        #: Per phase, the main-vector indices of its own parameters by group (``phase_cell``, ``phase_b_iso``,
        #: ``phase_profile``).
        self.by_group: list[dict[str, np.ndarray]] = []
        #: Per phase, main-vector index -> index in the phase's vector, shared entries included.
        self._mapping: list[dict[int, int]] = []
        for phase, model, shared_there in zip(self.phases, self.models, self._model_shared, strict=True):
            own = [(layout.index(f"{phase.name}:{name}"), index, group) for name, group, index in self._own(model)]
            self.own.append([(here, there) for here, there, _ in own])
            groups = ("phase_cell", "phase_b_iso", "phase_profile")
            self.by_group.append({g: np.array([here for here, _, og in own if og == g], dtype=int) for g in groups})
            mapping = {int(j): int(i) for j, i in zip(self._shared, shared_there, strict=True)}
            self._mapping.append(mapping | {here: there for here, there, _ in own})
        self.indices = np.array(sorted(j for pairs in self.own for j, _ in pairs), dtype=int)

    def vector(self, x: np.ndarray, k: int) -> np.ndarray:
        """Phase ``k``'s own vector at the main vector ``x``."""
        out = self.models[k].x0.copy()
        out[self._model_shared[k]] = x[self._shared]
        for here, there in self.own[k]:
            out[there] = x[here]
        return out

    def cell(self, x: np.ndarray, k: int):
        """Phase ``k``'s cell at ``x``."""
        return self.models[k].cell(self.vector(x, k))

    def peaks(self, x: np.ndarray, n_points: int) -> np.ndarray:
        """P I for unit scale of every phase, shape (n_points, n_phases)."""
        columns = [model.peaks(self.vector(x, k)) for k, model in enumerate(self.models)]
        return np.column_stack(columns) if columns else np.zeros((n_points, 0))

    def add_derivatives(self, out: np.ndarray, x: np.ndarray, free: np.ndarray, scales: np.ndarray) -> None:
        """Add Σ_p s_p ∂(P_p I_p)/∂x_j for the main-vector entries ``free`` to ``out`` (n_points, len(free)): through
        the shared entries and each phase's own."""
        for k, model in enumerate(self.models):
            mapping = self._mapping[k]
            columns = [c for c, j in enumerate(free) if int(j) in mapping]
            if columns:
                indices = np.array([mapping[int(free[c])] for c in columns], dtype=int)
                out[:, columns] += scales[k] * model.peak_derivatives(self.vector(x, k), indices)
