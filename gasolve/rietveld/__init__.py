"""Joint least-squares Rietveld refinement (issue 14): coordinates, B, cell, zero shift, profile, scale and
background of one phase against one pattern, with esds.

``parameters`` names the parameter vector and its groups, ``model`` computes the pattern of a vector with the
engine's profile, reflection and form-factor code, ``lm`` is the damped Gauss-Newton (Levenberg-Marquardt) step
with the scale and background eliminated exactly, ``esd`` the standard uncertainties, ``staged`` the program.
"""

from gasolve.rietveld.lm import SingularMatrixError
from gasolve.rietveld.model import RietveldModel
from gasolve.rietveld.staged import RefinementResult, RefinementSettings, refine

__all__ = ["RefinementResult", "RefinementSettings", "RietveldModel", "SingularMatrixError", "refine"]
