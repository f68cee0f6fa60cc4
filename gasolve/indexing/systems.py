"""Crystal-system parametrisations of the reciprocal metric used by the dichotomy indexing.

For every crystal system, Q(hkl) = 1/d² (Å⁻²) is linear in a few reciprocal parameters R:

========== ================================ =========================================================
system     columns of Q = Σ coef_j(hkl) R_j  R in terms of the direct cell
========== ================================ =========================================================
cubic      h²+k²+l²                          1/a²
tetragonal h²+k², l²                         1/a², 1/c²
hexagonal  h²+hk+k², l²                      4/(3a²), 1/c²
orthorhom. h², k², l²                        1/a², 1/b², 1/c²
monoclinic h², k², l², hl  (b unique)        1/(a sin β)², 1/b², 1/(c sin β)², -2 cos β/(a c sin² β)
triclinic  h², k², l², kl, hl, hk            a*², b*², c*², 2b*c* cos α*, 2a*c* cos β*, 2a*b* cos γ*
========== ================================ =========================================================

Because Q is linear in R, the range of Q(hkl) over a box of R values is exact: each term takes its extreme at
one end of its interval. The search boxes are laid out in direct space (lengths in Å, β in degrees) as in
DICVOL (Boultif & Louër, J. Appl. Cryst. 24 (1991) 987-993) and mapped to R intervals with interval arithmetic,
which can only widen them (a box that holds the true cell is never rejected). Triclinic boxes are laid out on the
reciprocal parameters themselves (:mod:`gasolve.indexing.triclinic`), as in DICVOL91/04.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Crystal systems searched, from the highest symmetry down (the order in which DICVOL examines them).
SYSTEMS = ("cubic", "tetragonal", "hexagonal", "orthorhombic", "monoclinic", "triclinic")


@dataclass(frozen=True)
class SystemParametrisation:
    """How one crystal system maps Miller indices and direct cells to the linear form of Q.

    Attributes
    ----------
    name : str
    n_lengths : int
        Independent cell lengths searched (1 to 3).
    has_angle : bool
        True when β (monoclinic) is searched too.
    n_shears : int
        Cross terms D, E, F of the reciprocal metric searched besides A, B, C (triclinic).
    """

    name: str
    n_lengths: int
    has_angle: bool
    n_shears: int = 0

    @property
    def n_parameters(self) -> int:
        return self.n_lengths + (1 if self.has_angle else 0) + self.n_shears


PARAMETRISATIONS = {
    "cubic": SystemParametrisation("cubic", 1, False),
    "tetragonal": SystemParametrisation("tetragonal", 2, False),
    "hexagonal": SystemParametrisation("hexagonal", 2, False),
    "orthorhombic": SystemParametrisation("orthorhombic", 3, False),
    "monoclinic": SystemParametrisation("monoclinic", 3, True),
    "triclinic": SystemParametrisation("triclinic", 3, False, n_shears=3),
}


def miller_indices(system: str, max_lengths: np.ndarray, q_max: float) -> np.ndarray:
    """Indices that can give a line with Q <= ``q_max`` in some cell with lengths up to ``max_lengths``.

    One index of each pair of Friedel mates and of each set that gives the same Q in the system.

    Parameters
    ----------
    system : str
    max_lengths : ndarray, shape (3,)
        Largest a, b, c searched (Å); for monoclinic, lengths divided by sin β_max already.
    q_max : float
        Å⁻².

    Returns
    -------
    ndarray, shape (n_hkl, 3), int64
    """
    limits = [math.floor(length * math.sqrt(q_max)) + 1 for length in max_lengths]
    h = np.arange(0, limits[0] + 1)
    k = np.arange(0, limits[1] + 1)
    lo_l = -limits[2] if system in ("monoclinic", "triclinic") else 0
    if system == "triclinic":
        k = np.arange(-limits[1], limits[1] + 1)
    l_index = np.arange(lo_l, limits[2] + 1)
    hkl = np.stack(np.meshgrid(h, k, l_index, indexing="ij"), axis=-1).reshape(-1, 3)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    if system == "triclinic":
        # One of each Friedel pair: h > 0, or h = 0 and k > 0, or h = k = 0 and l > 0.
        hkl = hkl[(hkl[:, 0] > 0) | ((hkl[:, 0] == 0) & ((hkl[:, 1] > 0) | ((hkl[:, 1] == 0) & (hkl[:, 2] > 0))))]
        return hkl
    if system == "monoclinic":
        # (h k l) and (-h k -l) are Friedel-equivalent up to k -> -k, which Q ignores; keep h >= 0, and for
        # h = 0 keep l >= 0.
        hkl = hkl[(hkl[:, 0] > 0) | (hkl[:, 2] >= 0)]
    coefficients = coefficient_matrix(system, hkl)
    # The smallest Q any searched cell can give is at the largest lengths: drop indices beyond q_max there.
    keep = np.ones(len(hkl), dtype=bool)
    if system != "monoclinic":
        a, b, c = (float(x) for x in max_lengths)
        smallest = coefficients @ reciprocal_parameters(system, (a, b, c, 90.0, 90.0, 90.0))
        keep = smallest <= q_max * (1 + 1e-9)
    hkl = hkl[keep]
    if system in ("cubic", "tetragonal", "hexagonal"):
        # Indices with the same coefficients give the same Q in every cell of the system: keep one of each.
        _, first = np.unique(coefficient_matrix(system, hkl), axis=0, return_index=True)
        hkl = hkl[np.sort(first)]
    return hkl


def box_cell(system: str, point: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """The cell ``(a, b, c, alpha, beta, gamma)`` of a point of the search space (lengths in Å, then β).

    Parameters
    ----------
    system : str
    point : ndarray, shape (n_parameters,)
        As :data:`PARAMETRISATIONS` lays it out: cubic (a,), tetragonal and hexagonal (a, c), orthorhombic
        (a, b, c), monoclinic (a, b, c, β), triclinic the reciprocal parameters (A, B, C, D, E, F) (Å⁻²).
    """
    x = [float(v) for v in point]
    if system == "triclinic":
        cell = direct_cell("triclinic", np.array(x))
        if cell is None:
            raise ValueError(f"{x} are not the reciprocal parameters of a lattice")
        return cell
    if system == "cubic":
        return (x[0], x[0], x[0], 90.0, 90.0, 90.0)
    if system in ("tetragonal", "hexagonal"):
        return (x[0], x[0], x[1], 90.0, 90.0, 120.0 if system == "hexagonal" else 90.0)
    if system == "orthorhombic":
        return (x[0], x[1], x[2], 90.0, 90.0, 90.0)
    return (x[0], x[1], x[2], 90.0, x[3], 90.0)


def coefficient_matrix(system: str, hkl: np.ndarray) -> np.ndarray:
    """Coefficients of the reciprocal parameters in Q(hkl).

    Parameters
    ----------
    system : str
    hkl : ndarray, shape (n, 3)

    Returns
    -------
    ndarray, shape (n, n_parameters), float64
    """
    h, k, l_index = (np.asarray(hkl, dtype=float)[:, i] for i in range(3))
    if system == "cubic":
        columns = [h**2 + k**2 + l_index**2]
    elif system == "tetragonal":
        columns = [h**2 + k**2, l_index**2]
    elif system == "hexagonal":
        columns = [h**2 + h * k + k**2, l_index**2]
    elif system == "orthorhombic":
        columns = [h**2, k**2, l_index**2]
    elif system == "monoclinic":
        columns = [h**2, k**2, l_index**2, h * l_index]
    elif system == "triclinic":
        columns = [h**2, k**2, l_index**2, k * l_index, h * l_index, h * k]
    else:
        raise ValueError(f"unknown crystal system {system!r}")
    return np.stack(columns, axis=1)


def reciprocal_parameters(system: str, cell: tuple[float, ...]) -> np.ndarray:
    """Reciprocal parameters R of a direct cell ``(a, b, c, alpha, beta, gamma)`` (Å, degrees)."""
    if system == "triclinic":
        g_star = np.linalg.inv(_direct_metric(cell))
        return np.array(
            [g_star[0, 0], g_star[1, 1], g_star[2, 2], 2 * g_star[1, 2], 2 * g_star[0, 2], 2 * g_star[0, 1]]
        )
    a, b, c, _, beta, _ = cell
    if system == "cubic":
        return np.array([1 / a**2])
    if system == "tetragonal":
        return np.array([1 / a**2, 1 / c**2])
    if system == "hexagonal":
        return np.array([4 / (3 * a**2), 1 / c**2])
    if system == "orthorhombic":
        return np.array([1 / a**2, 1 / b**2, 1 / c**2])
    s = math.sin(math.radians(beta))
    return np.array([1 / (a * s) ** 2, 1 / b**2, 1 / (c * s) ** 2, -2 * math.cos(math.radians(beta)) / (a * c * s**2)])


def direct_cell(system: str, parameters: np.ndarray) -> tuple[float, float, float, float, float, float] | None:
    """Direct cell of reciprocal parameters R, or None when they describe no lattice."""
    p = np.asarray(parameters, dtype=float)
    if np.any(p[: min(len(p), 3)] <= 0):
        return None
    if system == "cubic":
        a = 1 / math.sqrt(p[0])
        return (a, a, a, 90.0, 90.0, 90.0)
    if system == "tetragonal":
        a = 1 / math.sqrt(p[0])
        return (a, a, 1 / math.sqrt(p[1]), 90.0, 90.0, 90.0)
    if system == "hexagonal":
        a = math.sqrt(4 / (3 * p[0]))
        return (a, a, 1 / math.sqrt(p[1]), 90.0, 90.0, 120.0)
    if system == "orthorhombic":
        return (1 / math.sqrt(p[0]), 1 / math.sqrt(p[1]), 1 / math.sqrt(p[2]), 90.0, 90.0, 90.0)
    if system == "triclinic":
        big_a, big_b, big_c, big_d, big_e, big_f = p
        g_star = np.array([[big_a, big_f / 2, big_e / 2], [big_f / 2, big_b, big_d / 2], [big_e / 2, big_d / 2, big_c]])
        if np.linalg.eigvalsh(g_star)[0] <= 1e-12 * big_c:
            return None
        g = np.linalg.inv(g_star)
        lengths = np.sqrt(np.diag(g))
        angles = [math.degrees(math.acos(g[i, j] / (lengths[i] * lengths[j]))) for i, j in ((1, 2), (0, 2), (0, 1))]
        return (float(lengths[0]), float(lengths[1]), float(lengths[2]), *angles)
    big_a, big_b, big_c, big_e = p
    cos_beta_star = big_e / (2 * math.sqrt(big_a * big_c))
    if not -1 < cos_beta_star < 1:
        return None
    # a* = sqrt(A), c* = sqrt(C), beta* = acos(E / (2 a* c*)); beta = 180 - beta*.
    beta_star = math.acos(cos_beta_star)
    sin_beta = math.sin(beta_star)
    a = 1 / (math.sqrt(big_a) * sin_beta)
    c = 1 / (math.sqrt(big_c) * sin_beta)
    return (a, 1 / math.sqrt(big_b), c, 90.0, 180.0 - math.degrees(beta_star), 90.0)


def _direct_metric(cell: tuple[float, ...]) -> np.ndarray:
    a, b, c = cell[:3]
    ca, cb, cg = (math.cos(math.radians(x)) for x in cell[3:6])
    return np.array([[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]])


def box_reciprocal_bounds(system: str, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intervals of the reciprocal parameters over a box of direct parameters.

    Parameters
    ----------
    system : str
    lo, hi : ndarray, shape (n_boxes, n_parameters)
        Lengths (Å) then, for monoclinic, β (degrees, 90 <= β < 180).

    Returns
    -------
    r_lo, r_hi : ndarray, shape (n_boxes, n_reciprocal)
    """
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if system == "cubic":
        return 1 / hi**2, 1 / lo**2
    if system == "tetragonal":
        return 1 / hi**2, 1 / lo**2
    if system == "hexagonal":
        scale = np.array([4 / 3, 1.0])
        return scale / hi**2, scale / lo**2
    if system == "orthorhombic":
        return 1 / hi**2, 1 / lo**2
    if system == "triclinic":
        # Triclinic boxes are laid out on the reciprocal parameters themselves.
        return lo.copy(), hi.copy()
    a_lo, b_lo, c_lo, beta_lo = lo.T
    a_hi, b_hi, c_hi, beta_hi = hi.T
    # For 90 <= beta < 180, sin beta falls and -cos beta rises with beta.
    s_lo = np.sin(np.radians(np.maximum(beta_lo, beta_hi)))
    s_hi = np.sin(np.radians(beta_lo))
    m_lo = -np.cos(np.radians(beta_lo))  # >= 0
    m_hi = -np.cos(np.radians(beta_hi))
    r_lo = np.stack(
        [1 / (a_hi * s_hi) ** 2, 1 / b_hi**2, 1 / (c_hi * s_hi) ** 2, 2 * m_lo / (a_hi * c_hi * s_hi**2)], axis=1
    )
    r_hi = np.stack(
        [1 / (a_lo * s_lo) ** 2, 1 / b_lo**2, 1 / (c_lo * s_lo) ** 2, 2 * m_hi / (a_lo * c_lo * s_lo**2)], axis=1
    )
    return r_lo, r_hi


def box_volume_range(system: str, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest cell volume (Å³) over boxes of direct parameters, shape (n_boxes,) each."""
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if system == "cubic":
        return lo[:, 0] ** 3, hi[:, 0] ** 3
    if system == "tetragonal":
        return lo[:, 0] ** 2 * lo[:, 1], hi[:, 0] ** 2 * hi[:, 1]
    if system == "hexagonal":
        f = math.sqrt(3) / 2
        return f * lo[:, 0] ** 2 * lo[:, 1], f * hi[:, 0] ** 2 * hi[:, 1]
    if system == "orthorhombic":
        return np.prod(lo, axis=1), np.prod(hi, axis=1)
    if system == "triclinic":
        from gasolve.indexing.triclinic import determinant_lower, determinant_upper

        # V = 1 / √det G*; a box whose metric may be singular reaches any volume.
        det_lo, det_hi = determinant_lower(lo, hi), determinant_upper(lo, hi)
        v_hi = np.where(det_lo > 0, 1 / np.sqrt(np.maximum(det_lo, 1e-300)), np.inf)
        return 1 / np.sqrt(np.maximum(det_hi, 1e-300)), v_hi
    s_lo = np.sin(np.radians(np.maximum(lo[:, 3], hi[:, 3])))
    s_hi = np.sin(np.radians(lo[:, 3]))
    return np.prod(lo[:, :3], axis=1) * s_lo, np.prod(hi[:, :3], axis=1) * s_hi
