"""The scorer of a run: problem tables, Wyckoff site map and the dynamical occupancy correction, as configured."""

from __future__ import annotations

import numpy as np

from gasolve.crystal.snap import SpecialPositionSnap
from gasolve.diffraction.profile import PeakProfile
from gasolve.diffraction.wavelength import Radiation
from gasolve.io.patterns import ObservedPattern
from gasolve.scoring.mapped import MappedScorer
from gasolve.scoring.overlap import merge_distance
from gasolve.scoring.problem import ScoringProblem
from gasolve.scoring.scorer import Scorer


def build_scorer(
    structure, observed: ObservedPattern, radiation: Radiation, profile: PeakProfile, background_terms: int
) -> Scorer | MappedScorer:
    """Scorer of a :class:`~gasolve.config.StructureSpec` against an observed pattern.

    Parameters
    ----------
    structure : StructureSpec
        Cell, group, sites, B, optional Wyckoff positions and occupancy-correction settings.
    observed : ObservedPattern
        Restricted to the fitted range.
    radiation, profile : the instrument.
    background_terms : int
        Chebyshev background terms.

    Returns
    -------
    Scorer or MappedScorer
        A plain :class:`Scorer` for general positions without the correction; otherwise a
        :class:`MappedScorer` whose site map puts sites on their Wyckoff positions and, with the correction,
        whose snap puts general sites within reach of a special position onto it
        (:mod:`gasolve.crystal.snap`).
    """
    site_map = structure.site_map()
    problem = ScoringProblem.build(
        structure.cell,
        structure.space_group,
        list(structure.sites),
        observed,
        radiation,
        profile,
        background_terms=background_terms,
        b_iso=np.array(structure.b_iso),
        site_multiplicity=site_map.multiplicity,
    )
    if structure.occupancy_correction:
        problem = problem.with_occupancy_correction(
            site_map.multiplicity, structure.overlap_radius, structure.overlap_identical
        )
    scorer = Scorer(problem)
    if structure.wyckoff is None and not structure.occupancy_correction:
        return scorer
    snap = None
    if structure.occupancy_correction:
        general = site_map.multiplicity == structure.space_group.n_ops
        snap = SpecialPositionSnap.build(
            structure.cell, structure.space_group, general, merge_distance(structure.overlap_radius)
        )
    return MappedScorer(scorer, site_map, snap)
