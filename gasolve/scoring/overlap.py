"""Dynamical occupancy correction: atoms that sit on, or drift onto, a special position or each other.

A site on the general position is expanded by all n_ops operators of the group. When it lies on a mirror, an
axis or an inversion centre, some of its images coincide, and it scatters as too many atoms. FOX corrects this
during the search (Favre-Nicolin & Černý, J. Appl. Cryst. 35 (2002) 734, "dynamical occupancy correction";
ObjCryst++ ``Crystal::CalcDynPopCorr``): every atom's occupancy is divided by the number of identical atoms that
overlap it, counted with a weight that falls smoothly with their distance.

Here, for site j of model m, with a_i = multiplicity_i / n_ops the weight of one image of site i (1 on the
general position; 1/g on a Wyckoff position whose site-symmetry group has order g, where g images coincide)::

    W_j = Σ_i∈partners(j) a_i Σ_s w(|R_s x_i + t_s - x_j|²),    c_j = 1 / W_j,

the distance taken to the nearest lattice image, in the cell's metric. ``partners(j)`` is j alone (only its own
symmetry copies) or, with ``identical``, every site of j's element. The identity image of j itself gives
w(0) = 1, so a site far from everything keeps c = 1; a general site on a mirror has two coinciding images and
c = 1/2 (4 atoms from the 8 operators); a site given on its Wyckoff position keeps c = 1 until it drifts onto a
position of still higher symmetry. Each image of site j then scatters with weight a_j c_j occupancy_j.

The overlap weight is a smooth step in the distance d, with a plateau up to the merge distance r/2::

    w(d) = 1                 for d <= r/2,
    w(d) = (1 - t²)²         for r/2 < d < r,  t = (d - r/2) / (r/2),
    w(d) = 0                 beyond r,

so w and its slope are continuous everywhere (the slope is zero at r/2 and at r), and Rwp keeps a continuous
gradient. This follows FOX's weight, which is 1 up to a merge distance of 0.5 Å and falls linearly to 0 at
1 Å (``CalcDynPopCorr(1., .5)``); the linear ramp is made smooth here because the GA refines every offspring by
L-BFGS on the analytic gradient. Two images closer than r/2 count as one atom, as FOX merges them; the search
also snaps general sites that close to their special position (:mod:`gasolve.crystal.snap`). The default radius,
r = 0.8 Å (merge distance 0.4 Å), lies below half the shortest distance between two identical bonded atoms in
real structures (C≡C 1.20 Å, O-O in peroxides 1.49 Å), so bonded atoms are never merged.

The nearest lattice image is found by rounding the fractional difference. That is exact for every distance
below half the smallest interplanar spacing of the cell faces, so the radius must stay below that
(:meth:`OverlapTables.build` checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba
import numpy as np

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.crystal.structure import element_symbol
from gasolve.errors import InputError
from gasolve.scoring.kernels import JIT

#: Default overlap radius r (Å) of the weight w(d); two images closer than r/2 are one atom.
DEFAULT_OVERLAP_RADIUS = 0.8


def merge_distance(radius: float) -> float:
    """Distance (Å) below which two images count as one atom: half the overlap radius."""
    return 0.5 * radius


def overlap_weight(distance: np.ndarray, radius: float) -> np.ndarray:
    """w(d) of the module docstring for distances ``distance`` (Å, any shape) and overlap radius r (Å)."""
    d = np.asarray(distance, dtype=float)
    half = merge_distance(radius)
    t = np.clip((d - half) / half, 0.0, 1.0)
    return (1.0 - t**2) ** 2


@dataclass(frozen=True)
class OverlapTables:
    """What the correction needs, fixed by the cell, the group and the sites.

    Attributes
    ----------
    rotations : ndarray, shape (n_ops, 3, 3), float
        All operators of the group, centring included.
    translations : ndarray, shape (n_ops, 3)
    metric : ndarray, shape (3, 3)
        Direct metric tensor G (Å²).
    image_weight : ndarray, shape (n_sites,)
        a_i = multiplicity_i / n_ops.
    partners : ndarray, shape (n_sites, n_sites), bool
        partners[j, i]: images of site i count against site j (the diagonal always).
    radius : float
        Overlap radius r (Å).
    identical : bool
        Whether other sites of the same element count.
    """

    rotations: np.ndarray = field(repr=False)
    translations: np.ndarray = field(repr=False)
    metric: np.ndarray = field(repr=False)
    image_weight: np.ndarray
    partners: np.ndarray = field(repr=False)
    radius: float
    identical: bool

    @classmethod
    def build(
        cls,
        cell: UnitCell,
        space_group: SpaceGroup,
        elements: list[str] | tuple[str, ...],
        site_multiplicity: np.ndarray | None = None,
        radius: float = DEFAULT_OVERLAP_RADIUS,
        identical: bool = False,
    ) -> OverlapTables:
        """Tables of the correction.

        Parameters
        ----------
        cell, space_group : the lattice and the symmetry.
        elements : sequence of str, length n_sites
        site_multiplicity : ndarray, shape (n_sites,), optional
            Positions each site generates (its Wyckoff multiplicity); default: general positions.
        radius : float
            Overlap radius r (Å), 0 < r < half the smallest interplanar spacing of the cell faces.
        identical : bool
            Also count the images of other sites of the same element (FOX's full rule).

        Raises
        ------
        InputError
            For a radius out of range.
        """
        n_ops = space_group.n_ops
        elements = [element_symbol(e) for e in elements]
        n_sites = len(elements)
        multiplicity = (
            np.full(n_sites, n_ops, dtype=float) if site_multiplicity is None else np.asarray(site_multiplicity, float)
        )
        if multiplicity.shape != (n_sites,):
            raise ValueError(f"expected {n_sites} site multiplicities, got shape {multiplicity.shape}")
        spacing = float(np.min(1.0 / np.sqrt(np.diag(cell.reciprocal_metric))))
        if not (np.isfinite(radius) and 0.0 < radius < 0.5 * spacing):
            raise InputError(
                f"the overlap radius must be a positive distance below {0.5 * spacing:.3f} Å (half the smallest "
                f"interplanar spacing of the cell faces), got {radius}"
            )
        same = np.array([[a == b for b in elements] for a in elements], dtype=bool)
        partners = same if identical else np.eye(n_sites, dtype=bool)
        return cls(
            rotations=np.ascontiguousarray(space_group.rotations, dtype=float),
            translations=np.ascontiguousarray(space_group.translations, dtype=float),
            metric=np.ascontiguousarray(cell.metric, dtype=float),
            image_weight=multiplicity / n_ops,
            partners=np.ascontiguousarray(partners),
            radius=float(radius),
            identical=bool(identical),
        )

    @property
    def n_sites(self) -> int:
        return len(self.image_weight)

    def kernel_args(self) -> tuple:
        """The tables in the order the kernels of :mod:`gasolve.scoring.occupancy_kernels` take them."""
        return (self.rotations, self.translations, self.metric, self.image_weight, self.partners, self.radius)

    def factors(self, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Occupancy factors c and their derivatives for a batch of models.

        The scorer computes the same inside its kernels, model by model; this is for inspection and output.

        Parameters
        ----------
        frac : ndarray, shape (n_models, n_sites, 3)
            Fractional coordinates.

        Returns
        -------
        correction : ndarray, shape (n_models, n_sites)
            c_j = 1 / W_j (module docstring).
        jacobian : ndarray, shape (n_models, n_sites, n_sites, 3)
            jacobian[m, j, i] = dc_j / dx_i per unit of fractional coordinate.
        """
        frac = np.ascontiguousarray(frac, dtype=np.float64)
        if frac.ndim != 3 or frac.shape[1:] != (self.n_sites, 3):
            raise ValueError(f"expected coordinates of shape (n_models, {self.n_sites}, 3), got {frac.shape}")
        correction = np.empty((len(frac), self.n_sites))
        jacobian = np.empty((len(frac), self.n_sites, self.n_sites, 3))
        for m in range(len(frac)):
            model_factors(frac[m], *self.kernel_args(), True, correction[m], jacobian[m])
        return correction, jacobian


@numba.njit(inline="always", **JIT)
def _nearest_integer(value):
    """Nearest integer of ``value``: differences are reduced to the nearest lattice image."""
    return math.floor(value + 0.5)


@numba.njit(**JIT)
def model_factors(x, rotations, translations, metric, image_weight, partners, radius, want_jacobian, correction, jac):
    """c_j = 1 / W_j of one model (module docstring) into ``correction`` (n_sites,), and dc_j/dx_i into ``jac``
    (n_sites, n_sites, 3) when ``want_jacobian``. x (n_sites, 3) fractional.

    d² = δᵀGδ with δ = R_s x_i + t_s - x_j rounded to the nearest lattice image; ∂d/∂δ = Gδ/d, ∂δ/∂x_i = R_s,
    ∂δ/∂x_j = -I (both when i = j); dc_j/dx = -c_j² dW_j/dx. Called per model inside the scorer's parallel
    kernels, so the correction adds no parallel region of its own.
    """
    n_sites = x.shape[0]
    n_ops = rotations.shape[0]
    half = 0.5 * radius
    half2 = half * half
    radius2 = radius * radius
    for j in range(n_sites):
        if want_jacobian:
            for i in range(n_sites):
                jac[j, i, 0] = 0.0
                jac[j, i, 1] = 0.0
                jac[j, i, 2] = 0.0
        total = 0.0
        for i in range(n_sites):
            if not partners[j, i]:
                continue
            a_i = image_weight[i]
            for s in range(n_ops):
                r = rotations[s]
                d0 = r[0, 0] * x[i, 0] + r[0, 1] * x[i, 1] + r[0, 2] * x[i, 2] + translations[s, 0] - x[j, 0]
                d1 = r[1, 0] * x[i, 0] + r[1, 1] * x[i, 1] + r[1, 2] * x[i, 2] + translations[s, 1] - x[j, 1]
                d2 = r[2, 0] * x[i, 0] + r[2, 1] * x[i, 1] + r[2, 2] * x[i, 2] + translations[s, 2] - x[j, 2]
                d0 -= _nearest_integer(d0)
                d1 -= _nearest_integer(d1)
                d2 -= _nearest_integer(d2)
                g0 = metric[0, 0] * d0 + metric[0, 1] * d1 + metric[0, 2] * d2
                g1 = metric[1, 0] * d0 + metric[1, 1] * d1 + metric[1, 2] * d2
                g2 = metric[2, 0] * d0 + metric[2, 1] * d1 + metric[2, 2] * d2
                dist2 = d0 * g0 + d1 * g1 + d2 * g2
                if dist2 >= radius2:
                    continue
                if dist2 <= half2:
                    total += a_i
                    continue
                dist = math.sqrt(dist2)
                t = (dist - half) / half
                total += a_i * (1.0 - t * t) * (1.0 - t * t)
                if not want_jacobian:
                    continue
                # dW/dδ = a_i (dw/dd) Gδ / d with dw/dd = -4 t (1 - t²) / (r/2)
                slope = -4.0 * a_i * t * (1.0 - t * t) / (half * dist)
                gd0 = slope * g0
                gd1 = slope * g1
                gd2 = slope * g2
                jac[j, j, 0] -= gd0
                jac[j, j, 1] -= gd1
                jac[j, j, 2] -= gd2
                for b in range(3):
                    jac[j, i, b] += r[0, b] * gd0 + r[1, b] * gd1 + r[2, b] * gd2
        c_j = 1.0 / total
        correction[j] = c_j
        if want_jacobian:
            for i in range(n_sites):
                for a in range(3):
                    jac[j, i, a] *= -c_j * c_j
