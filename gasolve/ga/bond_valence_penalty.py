"""Bond-valence penalty: the global instability index of a model, added to Rwp in selection.

A model whose atoms the pattern cannot yet tell apart (atoms of similar scattering power, a framework of
tetrahedra) can fit the pattern roughly with chemically absurd coordination: V(PO3)3's trap at Rwp 0.10 (the
truth 0.034) has O 1.07 Å from V and 1.55 Å from another O, and a global instability index (GII) of 3.7 v.u.
against the truth's 0.74. Combining the diffraction cost with a measure of chemical sense is the idea of
Putz, Schön and Jansen's Endeavour (*J. Appl. Cryst.* 32 (1999) 864), which adds a potential energy; here the
measure is the bond valence model's GII (Salinas-Sanchez et al., *J. Solid State Chem.* 100 (1992) 201), which
needs only the formula: the bond valence sum of each atom, Σ_j exp((R0_ij - d_ij) / b), against its formal
valence, with R0 and the pair rules of :mod:`gasolve.crystal.bond_valence` (Brese and O'Keeffe's parameters as
pymatgen tabulates them, pymatgen's charge-balanced oxidation states).

The penalty applies to structures with an anion and a cation that both have parameters and a charge-balanced
formula; H, D and the elements X-rays cannot place are left out of the sums (their positions are not searched
for, :data:`gasolve.crystal.xray_visibility.UNDETERMINED_ELEMENTS`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gasolve.crystal import SpaceGroup, UnitCell
from gasolve.crystal.bond_valence import B, formal_valences, pair_parameters
from gasolve.crystal.xray_visibility import UNDETERMINED_ELEMENTS
from gasolve.ga.antibump import identity_first
from gasolve.scoring import bond_valence_kernels

#: Å: neighbours counted in a bond valence sum. Longer than the O/F exchange's 3.2 Å
#: (:data:`gasolve.crystal.bond_valence.CUTOFF`): Ba-I, Cs-Cl and K-O bonds reach 3.3-3.8 Å.
CUTOFF = 4.0
#: Å: shorter distances count as this in a bond valence (a clash is the anti-bump's business; this keeps the sum
#: finite).
DISTANCE_FLOOR = 0.5


class BondValencePenalty:
    """Global instability index (v.u.) of genomes (n_models, 3 n_sites).

    Parameters
    ----------
    cell : UnitCell
    space_group : SpaceGroup
    elements : sequence of str, length n_sites
    multiplicities : sequence of int, length n_sites
        Atoms of each site in the conventional cell (the formula of the cell, for the formal valences).

    Raises
    ------
    ValueError
        If the structure has no pair the bond valence model counts, or no charge-balanced oxidation states
        (:meth:`applies` tells beforehand).
    """

    def __init__(self, cell: UnitCell, space_group: SpaceGroup, elements: Sequence[str], multiplicities: Sequence[int]):
        from gasolve.scoring.kernel_cache import ensure_cached

        ensure_cached()
        elements = list(elements)
        if len(multiplicities) != len(elements):
            raise ValueError(f"{len(elements)} elements but {len(multiplicities)} multiplicities")
        active, valence, r0, sign, counted = _site_tables(elements, multiplicities)
        if not active.any():
            raise ValueError(f"no bond valence penalty for {sorted(set(elements))}: no counted bond or valences")
        self.n_sites = len(elements)
        self.metric = np.ascontiguousarray(cell.metric, dtype=float)
        self.rotations, self.translations, self.compose = identity_first(space_group)
        self.r0, self.sign, self.counted = r0, sign, counted
        self.active, self.valence = active, valence
        reciprocal = np.sqrt(np.diag(np.linalg.inv(self.metric)))  # |a*|, |b*|, |c*| (1/Å)
        self.reach = np.array([math.ceil(CUTOFF * q + 0.5) for q in reciprocal], dtype=np.int64)

    @staticmethod
    def applies(elements: Sequence[str], multiplicities: Sequence[int]) -> bool:
        """Whether the structure has a counted bond between sites with formal valences."""
        return bool(_site_tables(list(elements), multiplicities)[0].any())

    def __call__(self, genomes: np.ndarray) -> np.ndarray:
        """GII of every model.

        Parameters
        ----------
        genomes : ndarray, shape (n_models, 3 n_sites)
            Fractional coordinates, flattened per model.

        Returns
        -------
        ndarray, shape (n_models,)
            v.u.; NaN for a model with a non-finite coordinate.
        """
        genomes = np.asarray(genomes, dtype=float)
        if genomes.ndim != 2 or genomes.shape[1] != 3 * self.n_sites:
            raise ValueError(f"genomes must have shape (n_models, {3 * self.n_sites}), got {genomes.shape}")
        frac = np.ascontiguousarray(genomes.reshape(len(genomes), self.n_sites, 3))
        out = np.empty(len(frac))
        bond_valence_kernels.global_instability_batch(
            frac, self.rotations, self.translations, self.compose, self.metric, self.r0, self.sign, self.counted,
            self.active, self.valence, CUTOFF, B, DISTANCE_FLOOR, self.reach, out,
        )  # fmt: skip
        return out


def _site_tables(elements: list[str], multiplicities: Sequence[int]):
    """active (n_sites,) bool, valence (n_sites,), r0, sign, counted (n_sites, n_sites): the pair parameters with
    the undetermined elements' bonds left out; a site is active when it has a formal valence and a counted
    partner."""
    placed = np.array([e not in UNDETERMINED_ELEMENTS for e in elements])
    r0, sign, counted = pair_parameters(elements)
    counted = counted & placed[:, None] & placed[None, :]
    valence = formal_valences(elements, list(multiplicities))
    if valence is None:
        return np.zeros(len(elements), bool), np.zeros(len(elements)), r0, sign, counted
    active = counted.any(axis=1) & (valence > 0)
    return active, np.asarray(valence, dtype=float), np.nan_to_num(r0), sign, counted
