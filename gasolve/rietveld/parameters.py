"""The refined parameter vector: names, groups and finite-difference steps.

Groups follow refinement programs (GSAS-II, TOPAS): ``cell`` (free coefficients of the reciprocal metric under the
space group's constraints, :class:`gasolve.profile_fit.lattice.LatticeConstraint`), ``zero`` (zero shift and,
optionally, specimen displacement, degrees), ``profile`` (Caglioti U, V, W in degrees², η, its slope per degree,
and the asymmetry the starting profile has: Finger-Cox-Jephcoat SH/L or Bérar-Baldinozzi P1, P2),
``preferred_orientation`` (the March-Dollase ratio r along one direction), ``coordinates`` (the free
coordinates of each site's Wyckoff position, less those that hold the origin in a polar group), ``b_iso``
(one B per site, or one per element, Å²), ``u_aniso`` (the free components of each anisotropic site's U under
its site symmetry, Å², CIF convention: :mod:`gasolve.rietveld.adp`), ``surface_roughness`` (Suortti's p, q or
Pitschke's c, τ), ``absorption`` (a cylinder's μR; :mod:`gasolve.rietveld.corrections`), ``phase_cell`` and
``phase_b_iso`` (the metric coefficients and B of each further phase, :mod:`gasolve.rietveld.phases`) and
``phase_profile`` (its own Thompson-Cox-Hastings Lorentzian X, Y). Scale and
background are linear and never in the vector: they are solved exactly for every vector (variable projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gasolve.rietveld.settings import GROUPS

#: Finite-difference step of a parameter: the group's relative step · |value| + its floor (natural units). Peaks
#: are cut off at a multiple of their FWHM, so P moves by small jumps as a window edge crosses a data point; the
#: steps of the width and position parameters are large enough (1 % of a width, 1/10 of a typical step in 2θ) that
#: these jumps do not swamp the derivative, and small enough that the central difference's O(h²) error stays
#: below 1e-4 of it.
RELATIVE_STEP = {
    "cell": 1e-4,
    "zero": 0.0,
    "profile": 1e-2,
    "preferred_orientation": 1e-4,
    "coordinates": 0.0,
    "b_iso": 1e-4,
    "u_aniso": 1e-4,
    "surface_roughness": 1e-4,
    "absorption": 1e-4,
    "phase_cell": 1e-4,
    "phase_b_iso": 1e-4,
    "phase_profile": 1e-2,
}
STEP_FLOOR = {
    "cell": 1e-8,
    "zero": 2e-3,
    "profile": 1e-4,
    "preferred_orientation": 1e-5,
    "coordinates": 1e-5,
    "b_iso": 1e-3,
    "u_aniso": 1e-5,
    "surface_roughness": 1e-5,
    "absorption": 1e-5,
    "phase_cell": 1e-8,
    "phase_b_iso": 1e-3,
    "phase_profile": 1e-4,
}


@dataclass(frozen=True)
class ParameterLayout:
    """Names and groups of the entries of the parameter vector.

    Attributes
    ----------
    names : tuple of str, length n_parameters
        E.g. ``"metric0"``, ``"zero"``, ``"U"``, ``"x(O5)"``, ``"B(Pb1)"``.
    groups : tuple of str, length n_parameters
        One of :data:`GROUPS` per parameter.
    """

    names: tuple[str, ...]
    groups: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def indices(self, groups) -> np.ndarray:
        """Indices of the parameters in ``groups`` (a group name or a sequence of them), in vector order."""
        wanted = {groups} if isinstance(groups, str) else set(groups)
        unknown = wanted - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown parameter groups {sorted(unknown)}; known: {GROUPS}")
        return np.array([i for i, g in enumerate(self.groups) if g in wanted], dtype=int)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def steps(self, values: np.ndarray) -> np.ndarray:
        """Central-difference step of every parameter, shape (n_parameters,)."""
        floor = np.array([STEP_FLOOR[g] for g in self.groups])
        relative = np.array([RELATIVE_STEP[g] for g in self.groups])
        return relative * np.abs(np.asarray(values, dtype=float)) + floor
