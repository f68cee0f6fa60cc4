"""Joint least-squares Rietveld refinement (issue 14): coordinates, B or anisotropic U, cell, zero shift, profile,
March-Dollase preferred orientation, specimen corrections, scale and background of one phase against one pattern,
with soft restraints and esds; further phases of the specimen with their cells, scales and weight fractions.

``parameters`` names the parameter vector and its groups, ``model`` computes the pattern of a vector with the
engine's profile, reflection and form-factor code, ``lm`` is the damped Gauss-Newton (Levenberg-Marquardt) step
with the scale and background eliminated exactly, ``esd`` the standard uncertainties, ``staged`` the program,
``orientation`` the March-Dollase correction, ``corrections`` the specimen corrections (surface roughness, cylinder
absorption), ``adp`` the anisotropic displacement parameters (site-symmetry constraints, Ueq), ``restraints``
the soft restraints, ``phases`` the further phases and weight fractions, ``settings`` the ``[refinement]`` table.
"""

from gasolve.rietveld.lm import SingularMatrixError
from gasolve.rietveld.model import RietveldModel
from gasolve.rietveld.phases import SecondaryPhase
from gasolve.rietveld.settings import RefinementSettings, Restraint, parse_refinement
from gasolve.rietveld.staged import RefinementResult, refine

#: The name the pipeline calls: ``refine_structure(structure, observed, radiation, profile, settings)``.
refine_structure = refine

__all__ = [
    "RefinementResult",
    "RefinementSettings",
    "Restraint",
    "RietveldModel",
    "SecondaryPhase",
    "SingularMatrixError",
    "parse_refinement",
    "refine",
    "refine_structure",
]
