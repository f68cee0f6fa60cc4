"""From a chemical formula to structure hypotheses: composition, candidate Z, Wyckoff assignments.

A hypothesis is one way of placing the atoms of Z formula units on the Wyckoff positions of the space group
(issue 12, items 4-5). :mod:`.composition` parses the formula, :mod:`.z_candidates` proposes Z from the cell
volume and the group's multiplicities, :mod:`.assignments` lists the assignments lazily in order of increasing
free parameters, and counts them without listing.
"""

from gasolve.hypotheses.assignments import (
    Assignment,
    Route,
    WyckoffSlot,
    canonicaliser,
    choose_route,
    count_assignments,
    deduplicate,
    enumerate_assignments,
    letter_map,
    normalizer_canonicaliser,
    wyckoff_slots,
)
from gasolve.hypotheses.composition import parse_composition
from gasolve.hypotheses.z_candidates import ZCandidate, check_z, z_candidates

__all__ = [
    "Assignment",
    "Route",
    "WyckoffSlot",
    "ZCandidate",
    "canonicaliser",
    "check_z",
    "choose_route",
    "count_assignments",
    "deduplicate",
    "enumerate_assignments",
    "letter_map",
    "normalizer_canonicaliser",
    "parse_composition",
    "wyckoff_slots",
    "z_candidates",
]
