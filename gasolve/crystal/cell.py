"""Unit cell: lattice parameters, direct and reciprocal metric tensors, d-spacings.

Conventions follow International Tables for Crystallography Vol. B, ch. 1.1: the direct metric
G_ij = a_i . a_j (Å²) and the reciprocal metric G* = G^-1 (Å⁻²), so that 1/d² = h^T G* h.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from gasolve.errors import InputError


@dataclass(frozen=True)
class UnitCell:
    """Lattice parameters a, b, c (Å) and alpha, beta, gamma (degrees)."""

    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "alpha", "beta", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise InputError(f"cell parameter {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("a", "b", "c"):
            if getattr(self, name) <= 0:
                raise InputError(f"cell length {name} must be positive, got {getattr(self, name)} Å")
        for name in ("alpha", "beta", "gamma"):
            if not 0 < getattr(self, name) < 180:
                raise InputError(f"cell angle {name} must lie strictly between 0 and 180 degrees")
        if self._volume_factor_squared() <= 1e-10:
            raise InputError(
                f"cell angles alpha={self.alpha}, beta={self.beta}, gamma={self.gamma} cannot close a cell "
                "(each angle must be less than the sum of the other two, and their sum less than 360 degrees)"
            )

    @classmethod
    def from_parameters(cls, parameters) -> UnitCell:
        """Build from a sequence ``[a, b, c, alpha, beta, gamma]``."""
        values = list(parameters)
        if len(values) != 6:
            raise InputError(f"a cell needs 6 numbers [a, b, c, alpha, beta, gamma], got {len(values)}")
        return cls(*(float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in values))

    @property
    def parameters(self) -> tuple[float, float, float, float, float, float]:
        return (self.a, self.b, self.c, self.alpha, self.beta, self.gamma)

    def _volume_factor_squared(self) -> float:
        ca, cb, cg = (math.cos(math.radians(x)) for x in (self.alpha, self.beta, self.gamma))
        return 1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg

    @property
    def volume(self) -> float:
        """Cell volume (Å³)."""
        return self.a * self.b * self.c * math.sqrt(self._volume_factor_squared())

    @property
    def metric(self) -> np.ndarray:
        """Direct metric tensor G, shape (3, 3), Å²."""
        ca, cb, cg = (math.cos(math.radians(x)) for x in (self.alpha, self.beta, self.gamma))
        a, b, c = self.a, self.b, self.c
        return np.array(
            [
                [a * a, a * b * cg, a * c * cb],
                [a * b * cg, b * b, b * c * ca],
                [a * c * cb, b * c * ca, c * c],
            ]
        )

    @property
    def reciprocal_metric(self) -> np.ndarray:
        """Reciprocal metric tensor G* = G⁻¹, shape (3, 3), Å⁻²."""
        return np.linalg.inv(self.metric)

    @property
    def matrix(self) -> np.ndarray:
        """Cartesian basis, rows are a, b, c (Å), a along x and b in the xy plane (PDB/ASE convention)."""
        ca, cb, cg = (math.cos(math.radians(x)) for x in (self.alpha, self.beta, self.gamma))
        sg = math.sin(math.radians(self.gamma))
        cx = self.c * cb
        cy = self.c * (ca - cb * cg) / sg
        cz = math.sqrt(max(self.c * self.c - cx * cx - cy * cy, 0.0))
        return np.array([[self.a, 0.0, 0.0], [self.b * cg, self.b * sg, 0.0], [cx, cy, cz]])

    def d_spacing(self, hkl: np.ndarray) -> np.ndarray:
        """Interplanar spacing d (Å) for Miller indices ``hkl`` of shape (n, 3)."""
        hkl = np.asarray(hkl, dtype=float)
        inv_d2 = np.einsum("ni,ij,nj->n", hkl, self.reciprocal_metric, hkl)
        return 1.0 / np.sqrt(inv_d2)

    def distance(self, frac_a: np.ndarray, frac_b: np.ndarray) -> np.ndarray:
        """Cartesian length (Å) of fractional difference vectors ``frac_b - frac_a`` (broadcast, last axis 3)."""
        delta = np.asarray(frac_b, dtype=float) - np.asarray(frac_a, dtype=float)
        return np.sqrt(np.einsum("...i,ij,...j->...", delta, self.metric, delta))
