"""Bond-valence penalty: the global instability index of a model, added to Rwp in selection.

A model whose atoms the pattern cannot yet tell apart (atoms of similar scattering power, a framework of
tetrahedra) can fit the pattern roughly with chemically absurd coordination: V(PO3)3's trap at Rwp 0.10 (the
truth 0.034) has O 1.07 Å from V and 1.55 Å from another O, and a global instability index (GII) of 3.7 v.u.
against the truth's 0.74. Combining the diffraction cost with a measure of chemical sense is the idea of
Putz, Schön and Jansen's Endeavour (*J. Appl. Cryst.* 32 (1999) 864), which adds a potential energy; here the
measure is the bond valence model's GII (Salinas-Sanchez et al., *J. Solid State Chem.* 100 (1992) 201), which
needs only the formula: the bond valence sum of each atom, Σ_j exp((R0_ij - d_ij) / b_ij), against its formal
valence. The oxidation states are pymatgen's most probable charge-balanced guess for the cell's composition; a
bond joins a cation and an anion (opposite states). R0 and b are those of the IUCr's accumulated table
(bvparm2020.cif, I. D. Brown, averaged over its entries for the pair of ions, as the ``ions`` package ships it),
and where the table has no entry for the pair, Brese and O'Keeffe's generic R0 from the elements' r and c
(*Acta Cryst.* B47 (1991) 192, as pymatgen tabulates them) with their b = 0.37 Å. With the generic R0 alone,
real structures come out overbonded (Si-O R0 1.68 Å instead of 1.6275: SiO4 sums near 5.1 v.u.), so that the
penalty's minimum moved away from the truth.

The penalty applies to structures with a cation and an anion that have parameters and a charge-balanced
formula with integer oxidation states (not to mixed valence: Yb6Co30P19's guess of Co 1.23+ and P 2.58- gives
its true structure a GII of 2.5 v.u.); H, D and the elements X-rays cannot place are left out of the sums
(their positions are not searched for, :data:`gasolve.crystal.xray_visibility.UNDETERMINED_ELEMENTS`). Their
counter-ions' sums then lack their bonds, so where the formula holds H+ only the cations' sums enter the index:
with the anions counted, the true structures of CuH2SO5 and Si2H2O5 have a GII of 0.60 and 0.56 v.u. (their O
donors underbonded), with the cations alone 0.18 and 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gasolve.crystal import SpaceGroup, UnitCell
from gasolve.crystal.bond_valence import oxidation_states
from gasolve.crystal.xray_visibility import UNDETERMINED_ELEMENTS
from gasolve.ga.antibump import identity_first
from gasolve.scoring import bond_valence_kernels

#: Å: neighbours counted in a bond valence sum. Longer than the O/F exchange's 3.2 Å
#: (:data:`gasolve.crystal.bond_valence.CUTOFF`): Ba-I, Cs-Cl and K-O bonds reach 3.3-3.8 Å.
CUTOFF = 4.0
#: Å: Brese and O'Keeffe's b, with their generic R0.
GENERIC_B = 0.37
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

    def __init__(
        self,
        cell: UnitCell,
        space_group: SpaceGroup,
        elements: Sequence[str],
        multiplicities: Sequence[int],
        tables: tuple | None = None,
    ):
        from gasolve.scoring.kernel_cache import ensure_cached

        ensure_cached()
        elements = list(elements)
        if len(multiplicities) != len(elements):
            raise ValueError(f"{len(elements)} elements but {len(multiplicities)} multiplicities")
        active, valence, r0, b, sign, counted = site_tables(elements, multiplicities) if tables is None else tables
        if not active.any():
            raise ValueError(f"no bond valence penalty for {sorted(set(elements))}: no counted bond or valences")
        self.n_sites = len(elements)
        self.metric = np.ascontiguousarray(cell.metric, dtype=float)
        self.rotations, self.translations, self.compose = identity_first(space_group)
        self.r0, self.b, self.sign, self.counted = r0, b, sign, counted
        self.active, self.valence = active, valence
        reciprocal = np.sqrt(np.diag(np.linalg.inv(self.metric)))  # |a*|, |b*|, |c*| (1/Å)
        self.reach = CUTOFF * reciprocal

    @staticmethod
    def applies(elements: Sequence[str], multiplicities: Sequence[int]) -> bool:
        """Whether the structure has a counted bond between sites with formal valences."""
        return bool(site_tables(list(elements), multiplicities)[0].any())

    @classmethod
    def if_applies(
        cls, cell: UnitCell, space_group: SpaceGroup, elements: Sequence[str], multiplicities: Sequence[int]
    ) -> BondValencePenalty | None:
        """The penalty of the structure, or None where it does not apply (the tables are built once)."""
        tables = site_tables(list(elements), multiplicities)
        return cls(cell, space_group, elements, multiplicities, tables) if tables[0].any() else None

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
        return self._run(genomes.reshape(len(genomes), self.n_sites, 3), with_gradient=False)[0]

    def value_and_gradient(self, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """GII of every model and its gradient with respect to the fractional coordinates.

        Parameters
        ----------
        frac : ndarray, shape (n_models, n_sites, 3)

        Returns
        -------
        values : ndarray, shape (n_models,)
            v.u.
        gradient : ndarray, shape (n_models, n_sites, 3)
            v.u. per unit of fractional coordinate; each site's multiplicity held constant.
        """
        frac = np.asarray(frac, dtype=float)
        if frac.ndim != 3 or frac.shape[1:] != (self.n_sites, 3):
            raise ValueError(f"frac must have shape (n_models, {self.n_sites}, 3), got {frac.shape}")
        return self._run(frac, with_gradient=True)

    def _run(self, frac: np.ndarray, with_gradient: bool) -> tuple[np.ndarray, np.ndarray]:
        frac = np.ascontiguousarray(frac, dtype=float)
        out = np.empty(len(frac))
        grad = np.empty(frac.shape if with_gradient else (0, self.n_sites, 3))
        bond_valence_kernels.global_instability_batch(
            frac, self.rotations, self.translations, self.compose, self.metric, self.r0, self.sign, self.counted,
            self.active, self.valence, CUTOFF, self.b, DISTANCE_FLOOR, self.reach, with_gradient, out, grad,
        )  # fmt: skip
        return out, grad


def site_tables(elements: Sequence[str], multiplicities: Sequence[int]):
    """The penalty's tables for the sites of a structure.

    Returns
    -------
    active : ndarray, shape (n_sites,), bool
        Sites whose bond valence sums enter the index: a formal valence and a counted partner; where the formula
        holds an element X-rays cannot place (H+), only the ions of its sign (the cations), whose sums it does not
        enter.
    valence : ndarray, shape (n_sites,)
        |oxidation state| (0 where there is none).
    r0, b : ndarray, shape (n_sites, n_sites)
        Å, per pair of sites (0 where the pair is not counted).
    sign : ndarray, shape (n_sites, n_sites)
        +1 where the first site is the pair's cation, -1 where it is the anion.
    counted : ndarray, shape (n_sites, n_sites), bool
        Cation-anion pairs of placed elements with parameters.
    """
    elements = list(elements)
    n = len(elements)
    states = oxidation_states(elements, list(multiplicities))
    r0, b, sign = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    counted = np.zeros((n, n), dtype=bool)
    if states is None or np.any(np.abs(states - np.round(states)) > 1e-6):
        # no charge-balanced guess, or only with mean states (mixed valence: Fe3O4, Yb6Co30P19 with Co 1.23+),
        # whose valences and table entries the cell's sites do not have one by one
        return np.zeros(n, bool), np.zeros(n), r0, b, sign, counted
    placed = [e not in UNDETERMINED_ELEMENTS for e in elements]
    for i in range(n):
        for j in range(n):
            if not (placed[i] and placed[j]) or states[i] * states[j] >= 0:
                continue
            cation, anion = (i, j) if states[i] > 0 else (j, i)
            found = bond_parameters(elements[cation], int(states[cation]), elements[anion], int(states[anion]))
            if found is not None:
                r0[i, j], b[i, j] = found
                sign[i, j] = 1.0 if i == cation else -1.0
                counted[i, j] = True
    active = counted.any(axis=1) & (states != 0)
    for element, state in zip(elements, states, strict=True):
        if element in UNDETERMINED_ELEMENTS and state != 0:
            # its bonds are missing from its counter-ions' sums (O-H of a hydroxide or a hydrate: an O donor's
            # sum near 1.2 v.u. for its formal 2): only the ions of its own sign are counted
            active &= np.sign(states) == np.sign(state)
    return active, np.abs(states), r0, b, sign, counted


def bond_parameters(cation: str, cation_state: int, anion: str, anion_state: int) -> tuple[float, float] | None:
    """(R0, b) in Å of a cation-anion bond: the IUCr table's mean over its entries for the two ions, else Brese and
    O'Keeffe's generic R0 with b = 0.37 Å; None where neither has the pair."""
    from ions.data import bv_data

    entry = bv_data.get(cation, {}).get(cation_state, {}).get(anion, {}).get(anion_state)
    if entry is not None:
        return float(entry["r0"]), float(entry["b"])
    return _generic_r0(cation, anion)


def _generic_r0(cation: str, anion: str) -> tuple[float, float] | None:
    """Brese and O'Keeffe's R0 = r_c + r_a - r_c r_a (√c_c - √c_a)² / (c_c r_c + c_a r_a) and b = 0.37 Å."""
    from pymatgen.analysis.bond_valence import BV_PARAMS
    from pymatgen.core import Element

    known = [BV_PARAMS.get(Element(e)) for e in (cation, anion)]
    if None in known:
        return None
    (rc, cc), (ra, ca) = ((p["r"], p["c"]) for p in known)
    return rc + ra - rc * ra * (math.sqrt(cc) - math.sqrt(ca)) ** 2 / (cc * rc + ca * ra), GENERIC_B
