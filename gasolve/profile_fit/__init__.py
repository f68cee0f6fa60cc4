"""Profile fitting of measured patterns with a known cell and space group (Pawley-type, intensities eliminated)."""

from gasolve.profile_fit.lattice import LatticeConstraint, cell_from_reciprocal_metric, metric_basis
from gasolve.profile_fit.lebail import LeBailResult, LeBailSettings, equal_d_groups, fit_lebail

__all__ = [
    "LatticeConstraint",
    "LeBailResult",
    "LeBailSettings",
    "cell_from_reciprocal_metric",
    "equal_d_groups",
    "fit_lebail",
    "metric_basis",
]
