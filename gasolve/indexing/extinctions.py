"""Space groups from systematic extinctions: Pawley intensities scored against every extinction class of a lattice.

What is implemented, in the spirit of ExtSym (Markvardsen, David, Johnson & Shankland, Acta Cryst. A57 (2001)
47-54), with independent overlap groups in place of its full multivariate Gaussian:

1. **Candidates.** Every setting in gemmi's table of the lattice's crystal system(s) and centring whose metric
   the cell satisfies (monoclinic unique axis, the six orthorhombic axis orders, hexagonal axes for R) is a
   candidate; origin choices are kept once. Groups whose absent reflections (``SpaceGroup.is_absent``, read from
   gemmi's operators) coincide on a probe grid of indices form one **extinction class**.
2. **Intensities.** The pattern is fitted in the lattice's holohedral symmorphic group (only the centring
   removes reflections) by :func:`gasolve.profile_fit.lebail.fit_lebail`; its intensities and their covariance
   (inverse normal matrix times the reduced χ²) are the data. A holohedral reflection is absent in a group only
   when every reflection of its holohedral orbit is (in Pa-3, 012 is absent and 021 is not: their sum is present).
3. **Overlap.** Reflections closer than ``overlap_fraction`` of the FWHM, or whose intensities correlate by more
   than ``max_correlation`` (e.g. through the Kα2 line), form one group: its intensity is their sum, its variance
   the sum of their covariances. A group is *absent* in a class when all its members are, and otherwise carries no
   information about that class (an absent reflection under an allowed one cannot be seen).
4. **Likelihood of a group.** Absent: its intensity I is Gaussian about zero with its esd σ. Present: the true
   intensity J follows Wilson's acentric (exponential) distribution of mean Σ, observed with the same Gaussian
   error, so p(I) = (1/Σ) exp(σ²/2Σ² - I/Σ) Φ(I/σ - σ/Σ) (the exponential convolved with the Gaussian). Σ is the
   mean per-reflection intensity of the nearest ``n_neighbours`` groups in 1/d² that no candidate makes absent,
   clipped at zero, times the group's size. Wilson's ε factors and centric statistics are left out. With
   ``contamination`` c > 0 an absent group's intensity may also be a foreign line (an impurity, a Kβ or tungsten
   line at the position of an absent reflection) with probability c, distributed as a present group, so that one
   such line costs a class at most log(1/c) instead of ruling it out.
5. **Ranking.** A class's log-likelihood, relative to the lattice without extinctions, is the sum over its absent
   groups of log p_absent - log p_present. Classes are ranked by it; exact ties (the same informative groups
   absent) go to the class with fewer absences on the probe grid, then to the one with more symmetry operators.
6. **Prior.** A space group's posterior is proportional to its class's likelihood times a prior probability: a
   caller's function of the space-group number (the symmetry network's, for instance), shared equally by the
   settings of one number, mixed with ``prior_floor`` of a uniform prior so that no group is ruled out by the
   prior alone; uniform when no function is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import gemmi
import numpy as np
from scipy.special import log_ndtr

from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError

#: Crystal systems (gemmi's names) of each lattice letter of a Bravais symbol.
_SYSTEMS_OF_LATTICE = {
    "a": ("triclinic",),
    "m": ("monoclinic",),
    "o": ("orthorhombic",),
    "t": ("tetragonal",),
    "h": ("trigonal", "hexagonal"),
    "c": ("cubic",),
}


@dataclass(frozen=True)
class ExtinctionSettings:
    """How the extinction classes are scored.

    Attributes
    ----------
    overlap_fraction : float
        Reflections closer than this fraction of the FWHM are one group.
    max_correlation : float
        Reflections whose intensities correlate by more than this (absolute value) are one group.
    n_neighbours : int
        Groups averaged for the Wilson mean intensity at each d.
    probe_index : int
        Largest |h|, |k|, |l| of the probe grid that defines the classes.
    prior_floor : float
        Share of a uniform prior mixed into the caller's prior.
    n_evidence : int
        Most decisive absent groups reported per class.
    contamination : float
        Probability that the position of an absent group carries a line of something else (an impurity, or a
        Kβ or tungsten line): its intensity then follows the present distribution, and one such group costs a
        class at most log(1/contamination) (module docstring, step 4). 0: every violation counts in full.
    """

    overlap_fraction: float = 0.5
    max_correlation: float = 0.5
    n_neighbours: int = 20
    probe_index: int = 8
    prior_floor: float = 0.01
    n_evidence: int = 5
    contamination: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.overlap_fraction <= 5:
            raise InputError(f"overlap_fraction must be in (0, 5], got {self.overlap_fraction}")
        if not 0 < self.max_correlation <= 1:
            raise InputError(f"max_correlation must be in (0, 1], got {self.max_correlation}")
        if self.n_neighbours < 1 or self.probe_index < 1 or self.n_evidence < 0:
            raise InputError("n_neighbours and probe_index must be >= 1, n_evidence >= 0")
        if not 0 <= self.prior_floor <= 1:
            raise InputError(f"prior_floor must be in [0, 1], got {self.prior_floor}")
        if not 0 <= self.contamination < 1:
            raise InputError(f"contamination must be in [0, 1), got {self.contamination}")


# ---- candidates and classes -------------------------------------------------------------------------------------


def candidate_groups(cell: UnitCell, bravais: str) -> list[SpaceGroup]:
    """Every space-group setting of the lattice that the cell's metric allows.

    Parameters
    ----------
    cell : UnitCell
        Conventional cell of the lattice.
    bravais : str
        Bravais symbol (aP, mP, mC, oP, oC, oI, oF, tP, tI, hP, hR, cP, cI, cF); hR in hexagonal axes.

    Returns
    -------
    list of SpaceGroup
        In gemmi's table order; of two origin choices only the second (gasolve's default) is kept.
    """
    if len(bravais) != 2 or bravais[0] not in _SYSTEMS_OF_LATTICE:
        raise InputError(f"unknown Bravais lattice {bravais!r}; expected aP, mP, mC, oP, ..., cF")
    systems, letter = _SYSTEMS_OF_LATTICE[bravais[0]], bravais[1]
    found: dict[str, SpaceGroup] = {}
    for entry in gemmi.spacegroup_table():
        if entry.crystal_system_str() not in systems or entry.hm[0] != letter:
            continue
        if letter == "R" and entry.ext != "H":
            continue
        if entry.hm in found and entry.ext != "2":
            continue
        group = SpaceGroup.from_gemmi(entry)
        try:
            group.check_cell(cell)
        except InputError:
            continue
        found[entry.hm] = group
    if not found:
        raise InputError(f"no space group of lattice {bravais} fits the cell {cell.parameters}")
    return list(found.values())


def absent_in_holohedry(group: SpaceGroup, hkl: np.ndarray, holohedry: SpaceGroup) -> np.ndarray:
    """Whether every reflection of each holohedral orbit is absent in ``group``.

    Parameters
    ----------
    group : SpaceGroup
    hkl : ndarray, shape (n, 3), int
        One representative per orbit of the holohedral Laue group.
    holohedry : SpaceGroup
        The lattice's holohedral group (its rotations give the orbits).

    Returns
    -------
    ndarray, shape (n,), bool
    """
    hkl = np.asarray(hkl, dtype=np.int64)
    orbit = np.einsum("ni,sij->nsj", hkl, holohedry.primitive_rotations)
    n, s = orbit.shape[:2]
    return group.is_absent(orbit.reshape(-1, 3)).reshape(n, s).all(axis=1)


def probe_indices(probe_index: int) -> np.ndarray:
    """All (h, k, l) with |h|, |k|, |l| <= ``probe_index`` except 000; shape (n, 3)."""
    axis = np.arange(-probe_index, probe_index + 1)
    hkl = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return hkl[np.any(hkl != 0, axis=1)]


@dataclass(frozen=True)
class ExtinctionClass:
    """Space groups (settings of one cell) with the same systematic absences.

    Attributes
    ----------
    groups : tuple of SpaceGroup
        Most symmetry operators first.
    n_absent : int
        Absent reflections on the probe grid (centring included).
    absent_probe : ndarray, shape (n_probe,), bool
    """

    groups: tuple[SpaceGroup, ...]
    n_absent: int
    absent_probe: np.ndarray = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        """The members' symbols in the cell's setting, e.g. ``P n m a / P n 21 a``."""
        return " / ".join(group.symbol for group in self.groups)


def extinction_classes(groups: list[SpaceGroup], probe_index: int = 8) -> list[ExtinctionClass]:
    """Partition of ``groups`` by their absent reflections on the probe grid, fewest absences first.

    Parameters
    ----------
    groups : list of SpaceGroup
    probe_index : int

    Returns
    -------
    list of ExtinctionClass
    """
    hkl = probe_indices(probe_index)
    by_key: dict[bytes, list[tuple[SpaceGroup, np.ndarray]]] = {}
    for group in groups:
        absent = group.is_absent(hkl)
        by_key.setdefault(np.packbits(absent).tobytes(), []).append((group, absent))
    classes = []
    for members in by_key.values():
        ordered = sorted((g for g, _ in members), key=lambda g: (-g.n_ops, g.number))
        absent = members[0][1]
        classes.append(ExtinctionClass(tuple(ordered), int(absent.sum()), absent))
    return sorted(classes, key=lambda c: (c.n_absent, -c.groups[0].n_ops, c.groups[0].number))


# ---- intensities and their groups -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntensityGroups:
    """Pawley intensities summed over groups of overlapping reflections.

    Attributes
    ----------
    label : ndarray, shape (n_refl,), int
        Group of each reflection; -1 for a reflection without information (outside the range).
    intensity, esd : ndarray, shape (n_groups,)
        Summed intensity and its standard uncertainty.
    inv_d2 : ndarray, shape (n_groups,)
        Mean 1/d² (Å⁻²) of the members.
    size : ndarray, shape (n_groups,), int
        Members.
    """

    label: np.ndarray
    intensity: np.ndarray
    esd: np.ndarray
    inv_d2: np.ndarray
    size: np.ndarray


def overlap_labels(
    two_theta: np.ndarray, fwhm: np.ndarray, covariance: np.ndarray, settings: ExtinctionSettings
) -> np.ndarray:
    """Groups of overlapping reflections (connected components of the overlap relation).

    Two reflections overlap when |Δ2θ| < ``overlap_fraction`` × FWHM or their intensities correlate by more
    than ``max_correlation``.

    Parameters
    ----------
    two_theta, fwhm : ndarray, shape (n_refl,)
        Degrees.
    covariance : ndarray, shape (n_refl, n_refl)
        Of the intensities; a non-finite variance marks a reflection without information.

    Returns
    -------
    ndarray, shape (n_refl,), int
        0 ... n_groups - 1; -1 for reflections without information.
    """
    import scipy.sparse
    from scipy.sparse.csgraph import connected_components

    variance = np.diag(covariance)
    usable = np.isfinite(variance) & (variance > 0)
    index = np.flatnonzero(usable)
    sub = covariance[np.ix_(index, index)]
    sd = np.sqrt(np.diag(sub))
    correlation = sub / sd[:, None] / sd[None, :]
    close = np.abs(two_theta[index, None] - two_theta[None, index]) < settings.overlap_fraction * np.maximum(
        fwhm[index, None], fwhm[None, index]
    )
    linked = close | (np.abs(correlation) > settings.max_correlation)
    _, component = connected_components(scipy.sparse.csr_matrix(linked), directed=False)
    label = np.full(len(two_theta), -1)
    label[index] = component
    return label


def group_intensities(
    intensities: np.ndarray, covariance: np.ndarray, inv_d2: np.ndarray, label: np.ndarray
) -> IntensityGroups:
    """Sum the intensities of each overlap group.

    Parameters
    ----------
    intensities : ndarray, shape (n_refl,)
    covariance : ndarray, shape (n_refl, n_refl)
    inv_d2 : ndarray, shape (n_refl,)
        Å⁻².
    label : ndarray, shape (n_refl,), int
        From :func:`overlap_labels`.

    Returns
    -------
    IntensityGroups
    """
    n_groups = int(label.max()) + 1 if np.any(label >= 0) else 0
    total, variance, mean_q, size = (np.zeros(n_groups) for _ in range(4))
    for g in range(n_groups):
        members = np.flatnonzero(label == g)
        total[g] = intensities[members].sum()
        variance[g] = covariance[np.ix_(members, members)].sum()
        mean_q[g] = inv_d2[members].mean()
        size[g] = len(members)
    return IntensityGroups(label, total, np.sqrt(np.maximum(variance, 1e-300)), mean_q, size.astype(int))


def wilson_mean(groups: IntensityGroups, reference: np.ndarray, n_neighbours: int) -> np.ndarray:
    """Expected intensity of each group if present: its size times the mean per-reflection intensity (clipped at
    zero) of the ``n_neighbours`` reference groups nearest in 1/d².

    Parameters
    ----------
    groups : IntensityGroups
    reference : ndarray, shape (n_groups,), bool
        Groups that no candidate makes absent (all groups when there are none).
    n_neighbours : int

    Returns
    -------
    ndarray, shape (n_groups,)
        Positive.
    """
    if not np.any(reference):
        reference = np.ones(len(groups.intensity), dtype=bool)
    per_reflection = np.maximum(groups.intensity[reference] / groups.size[reference], 0.0)
    q_ref = groups.inv_d2[reference]
    k = min(n_neighbours, len(q_ref))
    distance = np.abs(groups.inv_d2[:, None] - q_ref[None, :])
    nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
    local = per_reflection[nearest].mean(axis=1)
    floor = 1e-6 * max(float(per_reflection.max(initial=0.0)), 1e-300)
    return groups.size * np.maximum(local, floor)


def log_likelihood_ratio(
    intensity: np.ndarray, esd: np.ndarray, mean: np.ndarray, contamination: float = 0.0
) -> np.ndarray:
    """log p(I | absent) - log p(I | present), elementwise.

    Absent: I ~ N(0, σ²), or with probability ``contamination`` a foreign line distributed as a present group.
    Present: I = J + e, J ~ Exp(mean Σ), e ~ N(0, σ²), whose density is (1/Σ) exp(σ²/(2Σ²) - I/Σ) Φ(I/σ - σ/Σ).

    Parameters
    ----------
    intensity, esd, mean : ndarray, shape (n,)
        I, σ > 0, Σ > 0.
    contamination : float
        In [0, 1); the ratio is then at least log(contamination).

    Returns
    -------
    ndarray, shape (n,)
        Positive where the intensity favours absence.
    """
    i, s, m = (np.asarray(x, dtype=float) for x in (intensity, esd, mean))
    log_absent = -0.5 * (i / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)
    log_present = -np.log(m) + 0.5 * (s / m) ** 2 - i / m + log_ndtr(i / s - s / m)
    if contamination <= 0.0:
        return log_absent - log_present
    return np.logaddexp(math.log1p(-contamination) + log_absent - log_present, math.log(contamination))


# ---- scoring and ranking ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassScore:
    """One extinction class scored against a pattern.

    Attributes
    ----------
    extinction_class : ExtinctionClass
    log_likelihood : float
        Relative to the lattice without extinctions (natural log).
    probability : float
        exp(log_likelihood), normalised over the classes (a uniform prior over classes).
    n_informative : int
        Groups absent in this class that were scored.
    evidence : tuple of dict
        The most decisive absent groups: their hkl, 2θ, intensity, esd, expected intensity and log-ratio.
    """

    extinction_class: ExtinctionClass
    log_likelihood: float
    probability: float
    n_informative: int
    evidence: tuple[dict, ...] = ()

    def as_dict(self) -> dict:
        return {
            "class": self.extinction_class.name,
            "space_groups": [g.symbol for g in self.extinction_class.groups],
            "log_likelihood": round(float(self.log_likelihood), 4),
            "probability": round(float(self.probability), 6),
            "n_absent_scored": self.n_informative,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class GroupScore:
    """A space group (a setting of the cell) with its evidence.

    Attributes
    ----------
    group : SpaceGroup
    class_score : ClassScore
    prior : float
        Prior probability of this setting (normalised over the candidates).
    prior_in_class : float
        The prior normalised within the class.
    posterior : float
    """

    group: SpaceGroup
    class_score: ClassScore
    prior: float
    prior_in_class: float
    posterior: float

    def as_dict(self) -> dict:
        return {
            "number": self.group.number,
            "symbol": self.group.symbol,
            "standard_symbol": gemmi.find_spacegroup_by_number(self.group.number).xhm(),
            "class": self.class_score.extinction_class.name,
            "class_log_likelihood": round(float(self.class_score.log_likelihood), 4),
            "prior": round(float(self.prior), 6),
            "prior_in_class": round(float(self.prior_in_class), 6),
            "posterior": round(float(self.posterior), 6),
        }


def score_classes(
    classes: list[ExtinctionClass],
    hkl: np.ndarray,
    two_theta: np.ndarray,
    fwhm: np.ndarray,
    intensities: np.ndarray,
    covariance: np.ndarray,
    inv_d2: np.ndarray,
    holohedry: SpaceGroup,
    settings: ExtinctionSettings | None = None,
) -> list[ClassScore]:
    """Log-likelihood of each class given Pawley intensities (module docstring, steps 2-5), best first.

    Parameters
    ----------
    classes : list of ExtinctionClass
    hkl : ndarray, shape (n_refl, 3), int
        Reflections of the holohedral fit (one per holohedral orbit).
    two_theta, fwhm : ndarray, shape (n_refl,)
        Degrees, primary line.
    intensities : ndarray, shape (n_refl,)
    covariance : ndarray, shape (n_refl, n_refl)
    inv_d2 : ndarray, shape (n_refl,)
        Å⁻².
    holohedry : SpaceGroup
    settings : ExtinctionSettings, optional

    Returns
    -------
    list of ClassScore
    """
    settings = settings or ExtinctionSettings()
    label = overlap_labels(two_theta, fwhm, covariance, settings)
    groups = group_intensities(intensities, covariance, inv_d2, label)
    n_groups = len(groups.intensity)
    # A group is absent in a class when every member is; a class's absent members come from its first group
    # (all members of a class share their absences).
    member_absent = [absent_in_holohedry(c.groups[0], hkl, holohedry) for c in classes]
    group_absent = np.zeros((len(classes), n_groups), dtype=bool)
    any_absent = np.zeros(n_groups, dtype=bool)
    for row, absent in enumerate(member_absent):
        used = label >= 0
        n_present = np.bincount(label[used], weights=~absent[used], minlength=n_groups)
        n_absent = np.bincount(label[used], weights=absent[used], minlength=n_groups)
        group_absent[row] = (n_present == 0) & (n_absent > 0)
        any_absent |= n_absent > 0
    mean = wilson_mean(groups, ~any_absent, settings.n_neighbours)
    ratio = log_likelihood_ratio(groups.intensity, groups.esd, mean, settings.contamination)
    log_l = group_absent.astype(float) @ ratio
    shifted = np.exp(log_l - log_l.max()) if len(log_l) else log_l
    probability = shifted / shifted.sum()
    scores = []
    for row, extinction_class in enumerate(classes):
        informative = np.flatnonzero(group_absent[row])
        decisive = informative[np.argsort(-np.abs(ratio[informative]))][: settings.n_evidence]
        evidence = tuple(
            {
                "hkl": [[int(x) for x in hkl[i]] for i in np.flatnonzero(label == g)],
                "two_theta": round(float(np.mean(two_theta[label == g])), 4),
                "intensity": float(groups.intensity[g]),
                "esd": float(groups.esd[g]),
                "expected_if_present": float(mean[g]),
                "log_ratio": round(float(ratio[g]), 4),
            }
            for g in decisive
        )
        scores.append(
            ClassScore(extinction_class, float(log_l[row]), float(probability[row]), len(informative), evidence)
        )
    order = sorted(
        range(len(scores)),
        key=lambda r: (-round(scores[r].log_likelihood, 6), classes[r].n_absent, -classes[r].groups[0].n_ops),
    )
    return [scores[r] for r in order]


def rank_space_groups(
    scores: list[ClassScore], prior: Callable[[int], float] | None = None, prior_floor: float = 0.01
) -> list[GroupScore]:
    """Space groups by posterior ∝ class likelihood × prior (module docstring, step 6), best first.

    Parameters
    ----------
    scores : list of ClassScore
    prior : callable, optional
        Probability of a space-group number (1-230), e.g. the symmetry network's; uniform when None.
    prior_floor : float
        Share of a uniform prior mixed in.

    Returns
    -------
    list of GroupScore
        Ties in posterior keep the order of the classes.
    """
    members = [(score, group) for score in scores for group in score.extinction_class.groups]
    if not members:
        return []
    numbers = [group.number for _, group in members]
    settings_of = {n: numbers.count(n) for n in set(numbers)}
    raw = np.array([(prior(n) if prior is not None else 1.0) / settings_of[n] for n in numbers], dtype=float)
    raw = np.where(np.isfinite(raw) & (raw > 0), raw, 0.0)
    raw = raw / raw.sum() if raw.sum() > 0 else np.full(len(raw), 1.0 / len(raw))
    weights = (1.0 - prior_floor) * raw + prior_floor / len(raw)
    log_l = np.array([score.log_likelihood for score, _ in members])
    posterior = np.exp(log_l - log_l.max()) * weights
    posterior /= posterior.sum()
    class_total: dict[int, float] = {}
    for (score, _), w in zip(members, weights, strict=True):
        class_total[id(score)] = class_total.get(id(score), 0.0) + w
    ranked = [
        GroupScore(group, score, float(w), float(w / class_total[id(score)]), float(p))
        for (score, group), w, p in zip(members, weights, posterior, strict=True)
    ]
    order = sorted(range(len(ranked)), key=lambda i: -round(ranked[i].posterior, 12))
    return [ranked[i] for i in order]


@dataclass(frozen=True)
class SpaceGroupAnalysis:
    """Extinction classes and space groups of one cell, best first.

    Attributes
    ----------
    cell : tuple of float
        Refined by the holohedral fit.
    bravais : str
    classes : tuple of ClassScore
    space_groups : tuple of GroupScore
    pawley_rwp : float
    """

    cell: tuple[float, ...]
    bravais: str
    classes: tuple[ClassScore, ...]
    space_groups: tuple[GroupScore, ...]
    pawley_rwp: float

    def as_dict(self, top: int = 5) -> dict:
        return {
            "cell": [round(float(x), 6) for x in self.cell],
            "bravais": self.bravais,
            "pawley_rwp": round(float(self.pawley_rwp), 6),
            "extinction_classes": [c.as_dict() for c in self.classes[:top]],
            "ranked_space_groups": [g.as_dict() for g in self.space_groups[:top]],
        }


def analyse_fit(fit, bravais: str, prior=None, settings: ExtinctionSettings | None = None) -> SpaceGroupAnalysis:
    """Extinction analysis of a holohedral Pawley fit.

    Parameters
    ----------
    fit : gasolve.profile_fit.lebail.LeBailResult
        Fitted in the holohedral group of ``bravais`` (:data:`gasolve.indexing.pattern.HOLOHEDRY`) with
        ``LeBailSettings(intensity_covariance=True)``.
    bravais : str
    prior : callable, optional
        Probability of a space-group number.
    settings : ExtinctionSettings, optional

    Returns
    -------
    SpaceGroupAnalysis
    """
    from gasolve.indexing.pattern import HOLOHEDRY

    settings = settings or ExtinctionSettings()
    if fit.intensity_covariance is None:
        raise InputError("the Pawley fit has no intensity covariance; extinctions cannot be scored")
    holohedry = SpaceGroup.from_symbol(HOLOHEDRY[bravais])
    classes = extinction_classes(candidate_groups(fit.cell, bravais), settings.probe_index)
    wavelength = fit.wavelengths[0]
    d = fit.reflections.d_spacing
    two_theta = np.degrees(2.0 * np.arcsin(np.clip(wavelength / (2.0 * d), 0.0, 1.0)))
    inside = (two_theta >= fit.two_theta[0]) & (two_theta <= fit.two_theta[-1])
    covariance = np.array(fit.intensity_covariance, dtype=float)
    covariance[~inside, ~inside] = np.inf  # reflections outside the measured range: no information
    scores = score_classes(
        classes,
        fit.reflections.hkl,
        two_theta,
        fit.profile.fwhm(two_theta),
        fit.intensities,
        covariance,
        1.0 / d**2,
        holohedry,
        settings,
    )
    ranked = rank_space_groups(scores, prior, settings.prior_floor)
    return SpaceGroupAnalysis(tuple(fit.cell.parameters), bravais, tuple(scores), tuple(ranked), fit.metrics.rwp)


def determine_space_group(
    pattern,
    radiation,
    cell: tuple[float, ...] | UnitCell,
    bravais: str,
    prior: Callable[[int], float] | None = None,
    settings: ExtinctionSettings | None = None,
) -> SpaceGroupAnalysis:
    """Fit the pattern in the lattice's holohedral group and rank its space groups (module docstring).

    Parameters
    ----------
    pattern : gasolve.io.patterns.ObservedPattern
        Restricted to the range to use.
    radiation : gasolve.diffraction.wavelength.Radiation
    cell : tuple of 6 float or UnitCell
        Conventional cell (Å, degrees), within about 1 % of the truth.
    bravais : str
    prior : callable, optional
        Probability of a space-group number (the symmetry network's); uniform when None.
    settings : ExtinctionSettings, optional

    Returns
    -------
    SpaceGroupAnalysis

    Raises
    ------
    InputError
        When the Pawley fit fails or the lattice is unknown.
    """
    from gasolve.indexing.pattern import HOLOHEDRY
    from gasolve.profile_fit.lebail import LeBailSettings, fit_lebail

    if bravais not in HOLOHEDRY:
        raise InputError(f"unknown Bravais lattice {bravais!r}; expected one of {', '.join(HOLOHEDRY)}")
    cell = cell if isinstance(cell, UnitCell) else UnitCell(*cell)
    group = SpaceGroup.from_symbol(HOLOHEDRY[bravais])
    fit = fit_lebail(pattern, cell, group, radiation, LeBailSettings(intensity_covariance=True))
    return analyse_fit(fit, bravais, prior, settings)


def index_and_rank(
    pattern,
    radiation,
    prior: Callable[[int], float] | None = None,
    min_m20: float = 10.0,
    settings: ExtinctionSettings | None = None,
    indexing=None,
    min_lines: int = 12,
) -> tuple[SpaceGroupAnalysis | None, str]:
    """Index a pattern and, when its best cell is sound, rank its space groups from the extinctions.

    Parameters
    ----------
    pattern : gasolve.io.patterns.ObservedPattern
    radiation : gasolve.diffraction.wavelength.Radiation
    prior : callable, optional
        Probability of a space-group number.
    min_m20 : float
        De Wolff M20 the best cell needs.
    min_lines : int
        Lines the best cell must have been found from: de Wolff's figure over fewer than 20 lines flatters a cell
        (a Cu Kα2 pattern read as Kα1 gave M8 = 142 for a wrong rhombohedral cell of cubic Cu2O).
    settings : ExtinctionSettings, optional
    indexing : gasolve.indexing.pattern.IndexingSettings, optional
        Default: the benchmarked settings (three candidates Pawley-checked, so that nested cells are compared). Its
        peak search's ``calibrate_noise`` also decides whether σ is taken from the scatter for the extinction fit.

    Returns
    -------
    analysis : SpaceGroupAnalysis or None
        None when the pattern does not index soundly or the holohedral fit fails.
    reason : str
        Why there is no analysis, or the cell's figure of merit.
    """
    from gasolve.diffraction.noise import NoiseModel, calibrated_pattern
    from gasolve.indexing.pattern import IndexingSettings, index_pattern

    indexing = indexing or IndexingSettings()
    scaled = ""
    if indexing.peak_search.calibrate_noise:  # σ from the scatter for the extinction fit too, as index_pattern does
        stated = pattern.sigma
        pattern, noise = calibrated_pattern(pattern)
        if noise != NoiseModel():
            scaled = f"; σ from the scatter, {noise.inflation(stated):.1f} times the stated esds"
    try:
        result = index_pattern(pattern, radiation, indexing)
    except InputError as error:
        return None, f"not indexed: {error}"
    if not result.candidates or result.candidates[0].solution.m20 < min_m20:
        best = f"best M20 {result.candidates[0].solution.m20:.1f}" if result.candidates else "no cell"
        return None, f"not indexed soundly ({best} < {min_m20:g})"
    best = result.candidates[0]
    if best.solution.n_lines < min_lines:
        return None, f"too few lines for a sound figure of merit ({best.solution.n_lines} < {min_lines})"
    cell = best.pawley_cell or best.solution.cell
    try:
        analysis = determine_space_group(pattern, radiation, cell, best.solution.bravais, prior, settings)
    except InputError as error:
        return None, f"holohedral fit failed: {error}"
    return analysis, f"{best.solution.bravais} cell, M20 {best.solution.m20:.1f}{scaled}"
