"""Weak superstructure reflections: does the Pawley fit of a supercell find intensity where its subcell has none?

A superstructure whose ordering hardly changes the scattering (Li/Nb order in Li3Nb4O12, H in hydrides,
elements that scatter alike) adds reflections too weak for the peak search: the first twenty lines are then
indexed by the subcell as well as by the true cell, and M20 prefers the smaller. A crystallographer looks at the
Pawley fit instead: with the supercell, reflections between the subcell's pick up intensity, well beyond their
standard uncertainties, where no observed line lies. This module makes that test:

- the supercell's extra reflections are those farther than :data:`ISOLATION` FWHM from every reflection of the
  subcell and from every observed line (an observed line the subcell leaves unindexed may be an impurity, which
  any supercell with a reflection there would fit; those lines are the business of
  :func:`gasolve.indexing.subcells.extra_lines_by_chance`);
- nor within :data:`EDGE` FWHM of the ends of the fitted range: a reflection there, or beyond it with its tail in
  the range, takes up the tail of a real reflection just outside it that the subcell's list lacks (simulated
  Th(FeGe)2, I4/mmm: its √2a × 2c supercell found z = 7.2, 4.4 and 4.2 at 80.2-82.1° for a range ending at 80°);
- each extra reflection's Pawley intensity over its standard uncertainty (the inverse normal matrix of the linear
  parameters scaled by the reduced χ², :class:`gasolve.profile_fit.lebail.LeBailResult`), z = I / σ(I);
- under no superstructure, each z is a standard normal variable, and the statistic S = Σ max(z, 0)² follows the
  chi-bar-squared law of a one-sided test (Kudô, Biometrika 50 (1963) 403; Shapiro, Int. Stat. Rev. 56 (1988) 49):
  P(S ≥ s) = Σ_k C(n, k) 2⁻ⁿ P(χ²_k ≥ s);
- σ(I) from the normal matrix assumes independent points. Where the noise is correlated (a smoothed, interpolated
  or rescaled measured pattern) it is too small, and so every z too large, both ways. A reflection without
  intensity gives a z symmetric about 0 and intensities are not negative, so the negative z measure the noise of
  the z alone: with at least :data:`MIN_NEGATIVE` of them, when Σ z² over the m negative ones exceeds χ²_m at a
  chance below :data:`NOISE_LEVEL`, the z are divided by s = √(mean z² over z < 0) (never made larger). RRUFF
  pattern 207 (Imm2, measured; the residuals of its fit correlated over more than 10 steps, lag-1 0.12): 13 of
  249 extra reflections of a doubled oP cell had z < −2 where about 6 would, s = 1.19, and its chance went from
  2·10⁻¹⁴ to 3·10⁻⁵ (2·10⁻² without the strongest), no longer supported. Simulated patterns with white noise
  keep their z: Te(HO2)2's negative z give s = 1.07, within chance (its chance without the strongest would
  otherwise go from 4·10⁻⁷ to 10⁻⁵ and its true cell lose its place); Li3Nb4O12 and Ba2SmNbO6 have fewer than
  :data:`MIN_NEGATIVE`.
- the supercell is supported when that probability is below :data:`LEVEL`, far below a conventional level (the
  profile function's misfit leaks into extra reflections on the tails of strong peaks: a doubled cell of
  simulated Yb(MgSb)2, with no superstructure, reached 8·10⁻⁴), and stays below it with the strongest extra
  reflection left out: one weak impurity line under the peak search's threshold is not a superstructure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, chi2

#: A supercell's weak reflections support it when their statistic has a chance below this (module docstring).
#: Li3Nb4O12 of the indexing benchmark (R3, c = 28.1 Å behind its subcell of c = 14.05 Å): 33 extra reflections,
#: S = 512, chance 4·10⁻⁹⁴, 6·10⁻¹³ without the strongest; LiMgH3 and Hf2MoRh, whose ordering is weaker, about
#: 10⁻⁴, are not supported.
LEVEL = 1e-6
#: A supercell's extra reflections away from the lines carry nothing when at least :data:`SILENT_REFLECTIONS` of
#: them give a statistic that chance exceeds with a probability above this. Its extra lines that catch observed
#: lines, however unlikely by chance, are then impurity lines: a superstructure that shows in observed lines shows
#: in its weak reflections too (the true mP cell of simulated Te(HO2)2: chance 7·10⁻¹² from 39 of them), whereas
#: the mP cell of simulated CdBi3O7 (Cm; tune half) caught 3 of the 7 lines its mC subcell leaves out (binomial
#: chance 0.006: three impurity lines) with 44 extra reflections at chance 0.76.
SILENT_LEVEL = 0.05
#: ... the fewest extra reflections for that judgement.
SILENT_REFLECTIONS = 20
#: The fewest negative z that set the noise scale of the z (module docstring); with fewer the z are used as they are.
MIN_NEGATIVE = 10
#: ... and scale them only when the negative z scatter more than unit normal ones at a chance below this.
NOISE_LEVEL = 0.01
#: Extra reflections are counted this many FWHM away from the subcell's reflections and the observed lines.
ISOLATION = 1.5
#: ... and this many FWHM inside the ends of the fitted range.
EDGE = 10.0


@dataclass(frozen=True)
class PawleyReflections:
    """The reflections of a Pawley fit, for the test of weak superstructure reflections.

    Attributes
    ----------
    two_theta : ndarray, shape (n_refl,)
        Peak positions in the pattern (degrees; the fitted zero included).
    intensity, esd : ndarray, shape (n_refl,)
        Fitted intensities and their standard uncertainties (infinite where a reflection has no intensity in the
        range).
    fwhm : ndarray, shape (n_refl,)
        Peak widths at the positions (degrees).
    fitted_range : (float, float)
        First and last 2θ of the fitted pattern (degrees).
    """

    two_theta: np.ndarray
    intensity: np.ndarray
    esd: np.ndarray
    fwhm: np.ndarray
    fitted_range: tuple[float, float]

    @classmethod
    def from_fit(cls, result, wavelength: float) -> PawleyReflections:
        """The reflections of a :class:`gasolve.profile_fit.lebail.LeBailResult` fitted with
        ``intensity_covariance`` (``wavelength``: the primary line, Å)."""
        if result.intensity_esd is None:
            raise ValueError("the Pawley fit was run without intensity_covariance")
        positions = result.reflections.two_theta(wavelength, result.profile.zero)
        fitted = (float(result.two_theta[0]), float(result.two_theta[-1]))
        return cls(positions, result.intensities, result.intensity_esd, result.profile.fwhm(positions), fitted)


@dataclass(frozen=True)
class WeakLines:
    """What a supercell's extra reflections away from every line carry in its Pawley fit.

    Attributes
    ----------
    n_reflections : int
        n, extra reflections tested (distinct positions).
    statistic : float
        S = Σ max(z, 0)², z = I / σ(I).
    p_value : float
        P(S' ≥ S) under no superstructure (chi-bar-squared law; 1 without reflections).
    p_value_without_strongest : float
        The same with the largest z left out (n - 1 reflections).
    noise_scale : float
        s, by which the z were divided (>= 1; 1 when too few were negative).
    """

    n_reflections: int
    statistic: float
    p_value: float
    p_value_without_strongest: float
    noise_scale: float = 1.0

    @property
    def supported(self) -> bool:
        """The extra reflections carry intensity beyond chance (:data:`LEVEL`), without the strongest too."""
        return max(self.p_value, self.p_value_without_strongest) < LEVEL

    @property
    def silent(self) -> bool:
        """Enough extra reflections (:data:`SILENT_REFLECTIONS`) carry no more than chance gives
        (:data:`SILENT_LEVEL`)."""
        return self.n_reflections >= SILENT_REFLECTIONS and self.p_value > SILENT_LEVEL


def chi_bar_squared_sf(statistic: float, n: int) -> float:
    """P(S ≥ ``statistic``) for S = Σ max(z_i, 0)² over ``n`` independent standard normal z_i.

    Parameters
    ----------
    statistic : float
        >= 0.
    n : int
        >= 0.

    Returns
    -------
    float
        Σ_{k=1..n} C(n, k) 2⁻ⁿ P(χ²_k ≥ statistic), plus 2⁻ⁿ when ``statistic`` is 0 (all z <= 0).
    """
    if n <= 0:
        return 1.0
    k = np.arange(1, n + 1)
    tail = float(np.sum(binom.pmf(k, n, 0.5) * chi2.sf(statistic, k)))
    if statistic <= 0.0:
        tail += 0.5**n
    return min(tail, 1.0)


def weak_superstructure_lines(
    supercell: PawleyReflections, subcell_two_theta: np.ndarray, observed_two_theta: np.ndarray
) -> WeakLines:
    """The test of the module docstring.

    Parameters
    ----------
    supercell : PawleyReflections
        The Pawley fit of the supercell.
    subcell_two_theta : ndarray, shape (n_sub,)
        Reflection positions of the subcell (degrees, in the pattern).
    observed_two_theta : ndarray, shape (n_lines,)
        Lines found by the peak search in the fitted range (degrees).

    Returns
    -------
    WeakLines
    """
    two_theta = np.asarray(supercell.two_theta, dtype=float)
    fwhm = np.asarray(supercell.fwhm, dtype=float)
    reach = ISOLATION * fwhm
    low, high = supercell.fitted_range
    inside = (two_theta >= low + EDGE * fwhm) & (two_theta <= high - EDGE * fwhm)
    isolated = inside & np.isfinite(supercell.esd) & (supercell.esd > 0)
    for others in (np.asarray(subcell_two_theta, dtype=float), np.asarray(observed_two_theta, dtype=float)):
        if len(others):
            nearest = np.min(np.abs(two_theta[:, None] - others[None, :]), axis=1)
            isolated &= nearest > reach
    # Reflections of one equal-d group share one intensity (and its esd): count each position once.
    _, first = np.unique(np.round(two_theta[isolated], 6), return_index=True)
    z = (supercell.intensity[isolated] / supercell.esd[isolated])[first]
    scale = noise_scale(z)
    squares = np.sort(np.clip(z / scale, 0.0, None) ** 2)
    statistic = float(np.sum(squares))
    without = float(np.sum(squares[:-1]))
    return WeakLines(
        len(z), statistic, chi_bar_squared_sf(statistic, len(z)), chi_bar_squared_sf(without, len(z) - 1), scale
    )


def noise_scale(z: np.ndarray) -> float:
    """The noise scale of the z of reflections, from their negative values (module docstring).

    Parameters
    ----------
    z : ndarray, shape (n,)
        I / σ(I) of each reflection.

    Returns
    -------
    float
        √(mean z² over z < 0); 1 with fewer than :data:`MIN_NEGATIVE` negative z, or when their Σ z² is within
        chance of a χ² with as many degrees of freedom (:data:`NOISE_LEVEL`).
    """
    negative = np.asarray(z, dtype=float)
    negative = negative[negative < 0]
    if len(negative) < MIN_NEGATIVE:
        return 1.0
    total = float(np.sum(negative**2))
    if chi2.sf(total, len(negative)) >= NOISE_LEVEL:
        return 1.0
    return float(np.sqrt(total / len(negative)))
