"""The calculated pattern of a parameter vector, from the engine's own pieces.

y_calc = s P(cell, zero, profile) I(x, B, cell, r) + B_bg c, with P the peak-shape matrix of
:func:`gasolve.diffraction.profile.build_peak_matrix`, I = |F|² from the form factors of
:mod:`gasolve.diffraction.form_factors` and the symmetry terms of :func:`gasolve.scoring.problem.symmetry_terms`
(the same sum over operators as the scoring kernels), and the Chebyshev background of
:mod:`gasolve.diffraction.background`. The reflection list is generated once (with a margin on d) and the d of each
reflection follows the refined reciprocal metric, as in the Le Bail fit. Each site scatters with
f = f0 + f' + i f'': f0 of the neutral atom (IT92) or, for a site whose species carries a charge, of the ion
(Waasmaier-Kirfel), and by default the anomalous dispersion f', f'' of :mod:`gasolve.diffraction.dispersion` for the
radiation. With f'' the Friedel mates differ in a non-centrosymmetric structure, and a powder line holds both:
I = (|F(h)|² + |F(-h)|²)/2, with F(-h) = Σ_j f_j T_j Σ_ops e^{-2πi(hRx + ht)} (the same f_j, not its conjugate).
I = |F|² times the March-Dollase
correction of :mod:`gasolve.rietveld.orientation` when a preferred-orientation direction is given, and times the
specimen corrections of :mod:`gasolve.rietveld.corrections` (surface roughness, cylinder absorption: a factor of
each reflection's Bragg angle at the first emission line's wavelength) when the settings give any. Restraints
(:mod:`gasolve.rietveld.restraints`) add their squared residuals to χ². H sites ride on their parents
(:mod:`gasolve.rietveld.riding`): their coordinates and B follow the parent's, and the parent's derivatives carry
theirs. Sites refined anisotropically (:mod:`gasolve.rietveld.adp`) have no B: each operator term of F carries
the Debye-Waller factor of its image, T = exp(-2π² (hR) U* (hR)ᵀ) with U* = N U N, U = C p the site's tensor from
its free components p under the site symmetry; a riding H on such a parent takes u_ratio · 8π² Ueq(parent).

Derivatives of the peak part P I: analytic for the coordinates, B, the March-Dollase r and the specimen corrections
(∂I/∂x = 2 Re(F* ∂F/∂x) P_MD with ∂F/∂x = 2πi f h R e^{2πi(hRx + ht)}, ∂F/∂B = -s² f e^{...}; with f'' the
mean of that over h and -h; for an anisotropic site ∂F/∂U*_m = -2π² f Σ_ops (hR)_i (hR)_j T e^{...},
carried to p through U* = N C p;
∂I/∂r = |F|² ∂P_MD/∂r, and of a correction's parameter |F|² P_MD ∂K/∂p). Those of the cell, zero
shift and profile, which move the peaks: analytic too (:mod:`gasolve.rietveld.shape_jacobian`: one pass over P's
entries gives P and its derivatives), with the intensities' share of a cell derivative (form factors, B and the
corrections through d) by central differences of I alone.
Restraint derivatives: central differences (cheap: no pattern).

Known limit: the engine cuts each peak at ``cutoff`` FWHM without tapering, so χ² jumps a little whenever a
window edge crosses a data point (on measured PbSO4, η ≈ 0.75-0.97, a dropped Lorentzian tail is a few counts per
point). Two refinements from different starts then stop at slightly different χ² (Rwp 8.449 % and 8.416 %) with
every parameter within 0.3 esd of the other's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse

from gasolve.crystal.origin import origin_fixing_slots
from gasolve.crystal.snap import SpecialPositionSnap
from gasolve.crystal.special_positions import settle
from gasolve.crystal.structure import U_TO_B, Structure
from gasolve.crystal.wyckoff import SiteMap
from gasolve.crystal.xray_visibility import UNDETERMINED_ELEMENTS
from gasolve.diffraction.background import chebyshev_basis
from gasolve.diffraction.dispersion import Dispersion
from gasolve.diffraction.dispersion import anomalous_dispersion as dispersion_for
from gasolve.diffraction.form_factors import check_species, debye_waller, species_form_factor
from gasolve.diffraction.profile import PeakProfile, peak_positions
from gasolve.diffraction.reflections import ReflectionList, generate_reflections
from gasolve.diffraction.wavelength import Radiation
from gasolve.errors import InputError
from gasolve.io.patterns import ObservedPattern
from gasolve.profile_fit.lattice import LatticeConstraint
from gasolve.rietveld import adp as adp_tensors
from gasolve.rietveld.corrections import IntensityCorrection, cylinder_path_lengths
from gasolve.rietveld.orientation import cos2_to_direction, equivalent_reflections, march_dollase
from gasolve.rietveld.parameters import ParameterLayout
from gasolve.rietveld.phases import FurtherPhases, SecondaryPhase
from gasolve.rietveld.restraints import RestraintSet
from gasolve.rietveld.riding import carry_derivatives, find_riding, ride
from gasolve.rietveld.shape_jacobian import peak_shape_jacobian, peak_shape_matrix
from gasolve.scoring.problem import d_spacing_limits, symmetry_terms

_AXES = "xyz"
#: Sites this close (Å) to a special position are put on it before the refinement.
SNAP_DISTANCE = 0.02
#: Margin on the reflection list's d range, so that a refined cell or profile does not run out of reflections.
D_MARGIN = 0.03


@dataclass(frozen=True)
class LinearFit:
    """Scale and background at their weighted least-squares optimum for one vector.

    Attributes
    ----------
    scale : float
    background : ndarray, shape (background_terms,)
    peaks : ndarray, shape (n_points,)
        P I for unit scale.
    y_calc : ndarray, shape (n_points,)
    phase_scales : ndarray, shape (n_phases,)
        Scales of the further phases (:mod:`gasolve.rietveld.phases`).
    phase_peaks : ndarray, shape (n_points, n_phases)
        Their P I for unit scale.
    """

    scale: float
    background: np.ndarray
    peaks: np.ndarray
    y_calc: np.ndarray
    phase_scales: np.ndarray = field(default_factory=lambda: np.zeros(0))
    phase_peaks: np.ndarray | None = None


class RietveldModel:
    """Fixed tables of one refinement and the map from a parameter vector to the calculated pattern.

    Parameters
    ----------
    structure : Structure
        Starting model; sites on special positions must sit exactly on them (to 1e-6), as a CIF gives them.
    pattern : ObservedPattern
        Restricted to the range to fit.
    radiation : Radiation
    profile : PeakProfile
        Starting profile; its cutoff and monochromator angle stay fixed.
    background_terms : int
        Chebyshev terms, solved exactly with the scale.
    b_per : {"site", "element"}
        One B per site, or one per element (constrained equal on all sites of an element), for the sites refined
        isotropically.
    adp : "iso", "aniso" or sequence of str
        Anisotropic U on no site, on every non-H site, or on the sites whose label or element is listed
        (:mod:`gasolve.rietveld.adp`); their free components under the site symmetry (group ``u_aniso``) replace
        their B, starting from the site's ``u_aniso`` (a CIF's U_ij, projected onto the site symmetry's allowed
        tensors, with a warning when it breaks them) or, without one, from the isotropic tensor of its B. A site
        with a ``u_aniso`` and B = 0 (no U_iso_or_equiv in its CIF) starts from B = 8π² Ueq.
    displacement : bool
        Refine the specimen displacement besides the zero shift.
    preferred_orientation : tuple of 3 int, optional
        March-Dollase direction (reciprocal-lattice indices); adds the parameter ``r_PO`` (start 1, random).
        :meth:`set_orientation` changes it.
    restraints : sequence of Restraint
        Soft restraints (images chosen at the starting model).
    anomalous_dispersion : bool
        Add f' and f'' of the radiation (Chantler, mean over its lines) to every atom's form factor.
    hydrogens : {"riding", "fixed", "free"}
        H (and D) sites ride on their parent atoms, are held as started, or are refined like any atom
        (:mod:`gasolve.rietveld.riding`).
    hydrogen_parents : mapping of str to str, optional
        H label -> parent label, instead of the nearest non-H atom.
    corrections : sequence of IntensityCorrection
        Specimen corrections on every reflection's intensity (:mod:`gasolve.rietveld.corrections`): surface
        roughness (Suortti or Pitschke) and cylinder absorption; their parameters follow B in the vector.
    phases : sequence of SecondaryPhase
        Further phases of the specimen (:mod:`gasolve.rietveld.phases`): structure held, cell refined (group
        ``phase_cell``, last in the vector) and B (group ``phase_b_iso``, one per site or element as ``b_per``),
        scale solved with the main one; coordinates held; zero and profile shared, except that with the
        Thompson-Cox-Hastings profile each phase has its own Lorentzian X, Y (group ``phase_profile``).
    """

    def __init__(
        self,
        structure: Structure,
        pattern: ObservedPattern,
        radiation: Radiation,
        profile: PeakProfile,
        background_terms: int = 6,
        b_per: str = "site",
        adp="iso",
        displacement: bool = False,
        preferred_orientation: tuple[int, int, int] | None = None,
        restraints=(),
        anomalous_dispersion: bool = True,
        hydrogens: str = "riding",
        hydrogen_parents=None,
        corrections: tuple[IntensityCorrection, ...] = (),
        phases: tuple[SecondaryPhase, ...] = (),
    ):
        if b_per not in ("site", "element"):
            raise InputError(f"b_per must be 'site' or 'element', got {b_per!r}")
        if background_terms < 1:
            raise InputError(f"the refinement needs at least 1 background term, got {background_terms}")
        structure = _b_from_ueq(structure)
        self.structure = structure
        self.pattern = pattern
        self.radiation = radiation
        self.base_profile = profile
        self.space_group = structure.space_group
        self.root_w = np.sqrt(pattern.weights)
        self.basis = chebyshev_basis(pattern.two_theta, background_terms)
        self.constraint = LatticeConstraint.for_group(self.space_group)
        self.labels = [s.label for s in structure.sites]
        self.elements = structure.elements
        self.occupancy = np.array([s.occupancy for s in structure.sites])
        self.charges = [s.charge for s in structure.sites]
        #: f' and f'' (Chantler) of every element, or None without anomalous dispersion.
        self.dispersion: Dispersion | None = dispersion_for(self.elements, radiation) if anomalous_dispersion else None
        pairs = [self.dispersion.of(el) for el in self.elements] if self.dispersion else [(0.0, 0.0)] * len(self.labels)
        self.f_prime = np.array([p[0] for p in pairs])
        self.f_double_prime = np.array([p[1] for p in pairs])
        check_species(structure.sites)  # an ion the f0 table lacks fails here, not mid-fit

        # A CIF's rounded coordinates put a site a little off its special position: put it on, so that it is
        # refined as a Wyckoff site (within SNAP_DISTANCE; a site further off is taken as general).
        snapper = SpecialPositionSnap.build(
            structure.cell, self.space_group, np.ones(structure.n_sites, bool), SNAP_DISTANCE
        )
        settled = settle(self.space_group, snapper.snap(structure.frac[None])[0][0])
        if settled.labels is not None:
            self.site_map = SiteMap.from_labels(self.space_group, list(settled.labels))
            frac0 = settled.frac
        else:  # a setting without Wyckoff tables: every site general
            self.site_map = SiteMap.general(self.space_group, structure.n_sites)
            frac0 = structure.frac
        self.wyckoff = settled.labels
        self.multiplicity = np.array([len(self.space_group.orbit(x)) for x in frac0], dtype=float)
        genome = _genome_of(self.site_map, frac0)
        held = origin_fixing_slots(self.space_group, self.elements, self.site_map.matrix)
        #: The constraint on every H site (:mod:`gasolve.rietveld.riding`).
        self.hydrogens = find_riding(
            structure.cell,
            self.space_group,
            frac0,
            self.elements,
            self.labels,
            self.site_map.matrix,
            hydrogens,
            hydrogen_parents,
        )
        self._riders = tuple(h for h in self.hydrogens if h.rides)
        not_free = np.zeros((structure.n_sites, 3), dtype=bool)
        for rider in self.hydrogens:
            not_free[rider.site] = rider.status != "free"  # riding or held: no coordinate parameters
        self.free_slots = np.flatnonzero(~self.site_map.fixed & ~held & ~not_free.ravel())
        self.origin_slots = np.flatnonzero(held)
        self.genome0 = genome

        d_min, d_max = d_spacing_limits(pattern.two_theta, radiation, profile)
        reflections = generate_reflections(structure.cell, self.space_group, d_min * (1 - D_MARGIN), d_max * 1.5)
        self.hkl = reflections.hkl
        self.refl_multiplicity = reflections.multiplicity
        rotations, translations, self.centric, self.symmetry_factor = symmetry_terms(self.space_group)
        hkl = self.hkl.astype(float)
        self.hr = np.einsum("ki,sij->sjk", hkl, rotations)  # (n_terms, 3, n_refl)
        self.ht = np.einsum("ki,si->sk", hkl, translations)  # (n_terms, n_refl)

        # B of a constrained H is u_ratio times its parent's; an H held without a parent keeps its B (b_offset)
        constrained = {h.site: h for h in self.hydrogens if h.b_constrained}
        held_b = {h.site for h in self.hydrogens if h.status != "free" and not h.b_constrained}
        self.aniso_sites = self._anisotropic_sites(adp)
        own = [
            i
            for i in range(structure.n_sites)
            if i not in constrained and i not in held_b and i not in self.aniso_sites
        ]
        if b_per == "site":
            b_names = [f"B({self.labels[i]})" for i in own]
            self.b_map = np.eye(structure.n_sites)[:, own]
            b0 = [structure.sites[i].b_iso for i in own]
        else:
            unique = list(dict.fromkeys(self.elements[i] for i in own))
            b_names = [f"B({el})" for el in unique]
            self.b_map = np.array([[float(el == u and i in own) for u in unique] for i, el in enumerate(self.elements)])
            b0 = [float(np.mean([structure.sites[i].b_iso for i in own if self.elements[i] == u])) for u in unique]
        self.b_map = self.b_map.reshape(structure.n_sites, len(b_names))
        for site, rider in constrained.items():
            self.b_map[site] = rider.u_ratio * self.b_map[rider.parent]
        #: B (Å²) of the sites whose B is no parameter's (an H held without a parent), shape (n_sites,).
        self.b_offset = np.array([s.b_iso if i in held_b else 0.0 for i, s in enumerate(structure.sites)])

        # Anisotropic sites: U (6,) = u_map[a] @ x[u_idx], the site-symmetry basis of each (RREF: each parameter
        # is one named component), started from the site's given U (a CIF's aniso loop, projected onto the basis)
        # or else from the isotropic tensor of its B.
        u_names, u0, blocks = [], [], []
        for i in self.aniso_sites:
            basis = adp_tensors.site_basis(self.space_group, frac0[i], structure.cell)
            blocks.append(basis)
            u_names += [f"{adp_tensors.U_COMPONENTS[m]}({self.labels[i]})" for m in adp_tensors.pivots(basis)]
            u0 += list(self._start_u(i, frac0[i], basis))
        #: U (CIF convention, 6-vector) of each anisotropic site from the u_aniso parameters, shape
        #: (n_aniso, 6, n_u).
        self.u_map = np.zeros((len(self.aniso_sites), 6, len(u_names)))
        column = 0
        for a, basis in enumerate(blocks):
            self.u_map[a, :, column : column + basis.shape[1]] = basis
            column += basis.shape[1]
        #: (H site, index of its anisotropic parent among aniso_sites, Uiso(H)/Ueq(parent)).
        self._aniso_riders = tuple(
            (site, self.aniso_sites.index(rider.parent), rider.u_ratio)
            for site, rider in constrained.items()
            if rider.parent in self.aniso_sites
        )

        self.po_direction = None if preferred_orientation is None else tuple(preferred_orientation)
        po_names = ["r_PO"] if self.po_direction is not None else []
        self.equivalents = equivalent_reflections(self.space_group, self.hkl) if po_names else None
        self.restraints = RestraintSet(restraints, self.labels, self.space_group, structure.cell, self.frac_of(genome))

        # the pseudo-Voigt of one width (η and its slope) or Thompson-Cox-Hastings (Lorentzian X, Y)
        self.profile_names = ["U", "V", "W"] + (["X", "Y"] if profile.tch else ["eta", "eta_slope"])
        if profile.axial > 0:
            self.profile_names.append("axial")
        elif any(profile.asymmetry):
            self.profile_names += ["P1", "P2"]
        zero_names = ["zero"] + (["displacement"] if displacement else [])
        coordinate_names = [f"{_AXES[slot % 3]}({self.labels[slot // 3]})" for slot in self.free_slots]
        self.corrections = tuple(corrections)
        kinds = [c.kind for c in self.corrections]
        if len(set(c.group for c in self.corrections)) != len(kinds):
            raise InputError(f"at most one surface-roughness and one absorption correction, got {kinds}")
        correction_names = [name for c in self.corrections for name in c.names]
        names = [f"metric{k}" for k in range(self.constraint.n_free)] + zero_names + self.profile_names + po_names
        names += coordinate_names + b_names + u_names + correction_names
        groups = ["cell"] * self.constraint.n_free + ["zero"] * len(zero_names) + ["profile"] * len(self.profile_names)
        groups += ["preferred_orientation"] * len(po_names)
        groups += ["coordinates"] * len(coordinate_names) + ["b_iso"] * len(b_names) + ["u_aniso"] * len(u_names)
        groups += [c.group for c in self.corrections for _ in c.names]
        self.phases = tuple(phases)
        # with the Thompson-Cox-Hastings profile each further phase has its own Lorentzian (sample size and strain)
        own_lorentzian = ("X", "Y") if profile.tch else ()
        models = tuple(
            RietveldModel(
                p.structure,
                pattern,
                radiation,
                profile,
                background_terms=1,
                b_per=b_per,
                displacement=displacement,
                anomalous_dispersion=anomalous_dispersion,
                hydrogens="fixed",
            )
            for p in self.phases
        )
        #: The further phases (:class:`gasolve.rietveld.phases.FurtherPhases`), their parameters last in the vector.
        self.further = FurtherPhases(self.phases, models, own_lorentzian)
        further_names, further_groups, further_start = self.further.parameters()
        names += further_names
        groups += further_groups
        self.layout = ParameterLayout(tuple(names), tuple(groups))
        start = {
            "zero": profile.zero,
            "displacement": profile.displacement,
            "U": profile.caglioti[0],
            "V": profile.caglioti[1],
            "W": profile.caglioti[2],
            "eta": profile.eta,
            "eta_slope": profile.eta_slope,
            "axial": profile.axial,
            "P1": profile.asymmetry[0],
            "P2": profile.asymmetry[1],
            "X": profile.lorentzian[0] if profile.tch else 0.0,
            "Y": profile.lorentzian[1] if profile.tch else 0.0,
        }
        x0 = list(self.constraint.coefficients(structure.cell))
        x0 += [start[n] for n in zero_names + self.profile_names] + [1.0] * len(po_names)
        x0 += list(genome.ravel()[self.free_slots]) + list(b0) + u0
        #: sin θ of the pattern's lowest angle (bounds Pitschke's τ).
        self.sin_theta_min = float(np.sin(np.radians(max(pattern.two_theta[0], 1e-3) / 2)))
        self.correction_lower, self.correction_upper = [], []
        for correction in self.corrections:
            low, high = correction.bounds(self.sin_theta_min)
            self.correction_lower += list(low)
            self.correction_upper += list(high)
            x0 += list(np.clip(correction.start, low, np.where(high > low, high, low)))
        x0 += further_start
        self.x0 = np.array(x0, dtype=float)
        self.further.bind(self.layout, [n for n in zero_names + self.profile_names if n not in own_lorentzian])
        self._cell_idx = self.layout.indices("cell")
        self._shape_idx = self.layout.indices(("cell", "zero", "profile"))
        self._coord_idx = self.layout.indices("coordinates")
        self._b_idx = self.layout.indices("b_iso")
        self._u_idx = self.layout.indices("u_aniso")
        #: (hR)_i (hR)_j of each operator term, shape (n_terms, 6, n_refl) (None without anisotropic sites).
        self._hr_quadratic = adp_tensors.quadratic_terms(self.hr) if self.aniso_sites else None
        self._po_idx = self.layout.indices("preferred_orientation")
        self._corr_idx = self.layout.indices(("surface_roughness", "absorption"))
        self._paths: tuple[bytes, tuple] | None = None  # cylinder path lengths of the last cell
        #: The last few peak matrices by their cell, zero and profile entries, most recent last: a Jacobian's
        #: shifted vectors and a rejected step leave the current vector's matrix in place.
        self._peak_cache: dict[bytes, scipy.sparse.csc_matrix] = {}

    # ----------------------------------------------------------------------------------------------------------
    # Parameter vector -> physical quantities

    @property
    def n_parameters(self) -> int:
        return len(self.layout)

    @property
    def background_terms(self) -> int:
        return self.basis.shape[1]

    def profile(self, x: np.ndarray) -> PeakProfile:
        """The peak profile of vector ``x``; raises InputError when it is not valid over the pattern."""
        i = self.layout.index
        get = {name: float(x[i(name)]) for name in self.layout.names if name in _PROFILE_KEYS}
        base = self.base_profile
        asym = list(base.asymmetry)
        if "P1" in get:
            asym[0], asym[1] = get["P1"], get["P2"]
        profile = replace(
            base,
            caglioti=(get["U"], get["V"], get["W"]),
            eta=get.get("eta", base.eta),
            eta_slope=get.get("eta_slope", base.eta_slope),
            lorentzian=(get["X"], get["Y"]) if base.tch else None,
            zero=get["zero"],
            displacement=get.get("displacement", base.displacement),
            axial=get.get("axial", base.axial),
            asymmetry=tuple(asym),
        )
        profile.fwhm(self.pattern.two_theta)
        profile.eta_at(self.pattern.two_theta)
        return profile

    def reciprocal_metric(self, x: np.ndarray) -> np.ndarray:
        return self.constraint.reciprocal_metric(x[self._cell_idx])

    def cell(self, x: np.ndarray):
        return self.constraint.cell(x[self._cell_idx])

    def reflections(self, x: np.ndarray) -> ReflectionList:
        d = self.constraint.d_spacing(x[self._cell_idx], self.hkl)
        return ReflectionList(self.hkl, d, self.refl_multiplicity)

    def genome(self, x: np.ndarray) -> np.ndarray:
        """Genome slots (n_sites, 3) of ``x``: the free ones from the vector, the rest as started."""
        flat = self.genome0.ravel().copy()
        flat[self.free_slots] = x[self._coord_idx]
        return flat.reshape(-1, 3)

    def frac(self, x: np.ndarray) -> np.ndarray:
        """Fractional coordinates (n_sites, 3), not wrapped; riding H on their parents."""
        frac = self.frac_of(self.genome(x))
        if self._riders:
            frac = ride(frac, self.cell(x).metric, self._riders)
        return frac

    def frac_of(self, genome: np.ndarray) -> np.ndarray:
        """Fractional coordinates (n_sites, 3) of genome slots (n_sites, 3)."""
        return np.einsum("sij,sj->si", self.site_map.matrix, genome) + self.site_map.offset

    def set_orientation(self, direction: tuple[int, int, int]) -> None:
        """Change the March-Dollase direction (the model must have been built with one)."""
        if self.po_direction is None:
            raise ValueError("this model has no preferred-orientation parameter")
        self.po_direction = tuple(int(i) for i in direction)

    def orientation_factor(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """March-Dollase P (n_refl,) and ∂P/∂r of ``x``; ones and zeros without preferred orientation."""
        if self.po_direction is None:
            return np.ones(len(self.hkl)), np.zeros(len(self.hkl))
        cos2 = cos2_to_direction(self.equivalents, self.po_direction, self.reciprocal_metric(x))
        return march_dollase(cos2, float(x[self._po_idx[0]]))

    def b_iso(self, x: np.ndarray) -> np.ndarray:
        """Isotropic B (Å²) of every site, shape (n_sites,); a constrained H's is a multiple of its parent's (of
        8π² Ueq for an anisotropic parent); 0 for the anisotropic sites, whose T is in the operator terms."""
        b = self.b_map @ x[self._b_idx] + self.b_offset
        if self._aniso_riders:
            b = b + self._rider_b_map(x) @ x[self._u_idx]
        return b

    def b_equivalent(self, x: np.ndarray) -> np.ndarray:
        """B (Å²) of every site with 8π² Ueq for the anisotropic ones, shape (n_sites,)."""
        b = self.b_iso(x)
        if self.aniso_sites:
            b[self.aniso_sites] = U_TO_B * adp_tensors.u_equivalent(self.u_aniso(x), self.cell(x))
        return b

    def u_aniso(self, x: np.ndarray) -> np.ndarray:
        """U (Å², CIF convention: U11, U22, U33, U12, U13, U23) of each anisotropic site, shape (n_aniso, 6)."""
        return np.einsum("amp,p->am", self.u_map, x[self._u_idx])

    def _rider_b_map(self, x: np.ndarray) -> np.ndarray:
        """∂B/∂p (n_sites, n_u) of the H riding on anisotropic parents: u_ratio · 8π² g(cell) · C (the cell's g
        of Ueq = g · U, :func:`gasolve.rietveld.adp.u_equivalent_weights`)."""
        weights = adp_tensors.u_equivalent_weights(self.cell(x))
        out = np.zeros((self.structure.n_sites, len(self._u_idx)))
        for site, a, ratio in self._aniso_riders:
            out[site] = ratio * U_TO_B * weights @ self.u_map[a]
        return out

    def _start_u(self, site: int, frac: np.ndarray, basis: np.ndarray) -> np.ndarray:
        """Free components (k,) of the starting U of anisotropic ``site``, now at ``frac`` (3,) (its Wyckoff
        representative, possibly another image of the given position): the site's ``u_aniso`` carried onto that
        image and projected onto ``basis`` (6, k), with a :class:`~gasolve.rietveld.adp.SiteSymmetryWarning` when
        it breaks the site symmetry by more than :data:`~gasolve.rietveld.adp.SYMMETRY_TOLERANCE`; without one,
        the isotropic tensor of its B."""
        given = self.structure.sites[site]
        reciprocal = self.structure.cell.reciprocal_metric
        if given.u_aniso is None:
            return np.linalg.lstsq(basis, adp_tensors.isotropic(given.b_iso / U_TO_B, reciprocal), rcond=None)[0]
        group = self.space_group
        images = np.einsum("sij,j->si", group.rotations, np.array(given.frac)) + group.translations
        delta = images - frac
        delta -= np.round(delta)
        rotation = group.rotations[int(np.argmin(np.abs(delta).max(axis=1)))]
        u = adp_tensors.carried(np.array(given.u_aniso), rotation, reciprocal)
        p, off = adp_tensors.project(u, basis)
        if off > adp_tensors.SYMMETRY_TOLERANCE:
            warnings.warn(
                f"site {given.label}: its anisotropic U breaks the site symmetry by up to {off:.5f} A^2 (more "
                f"than {adp_tensors.SYMMETRY_TOLERANCE:g}); the refinement starts from the nearest allowed tensor",
                adp_tensors.SiteSymmetryWarning,
                stacklevel=2,
            )
        return p

    def _anisotropic_sites(self, adp) -> list[int]:
        """Indices of the sites ``adp`` names (constructor); H and D only when named by label and free."""
        hydrogen = [el in UNDETERMINED_ELEMENTS for el in self.elements]
        if adp == "iso":
            return []
        if adp == "aniso":
            return [i for i in range(len(self.labels)) if not hydrogen[i]]
        if isinstance(adp, str) or not len(adp):
            raise InputError(f'[refinement] adp: expected "iso", "aniso" or a list of names, got {adp!r}')
        chosen = set()
        for name in adp:
            by_label = [i for i, label in enumerate(self.labels) if label == name]
            by_element = [i for i, el in enumerate(self.elements) if el == name and not hydrogen[i]]
            if not by_label and not by_element:
                raise InputError(
                    f"[refinement] adp names {name!r}, which is neither a site label ({', '.join(self.labels)}) "
                    f"nor an element ({', '.join(dict.fromkeys(self.elements))}) of the model"
                )
            chosen.update(by_label or by_element)
        riders = {h.site: h for h in self.hydrogens}
        for i in sorted(chosen):
            if hydrogen[i] and riders.get(i) is not None and riders[i].status != "free":
                raise InputError(
                    f"[refinement] adp names {self.labels[i]}, an H site refined as {riders[i].status!r}; "
                    'anisotropic U needs hydrogens = "free"'
                )
        return sorted(chosen)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds of every parameter, shape (n_parameters,) each: B >= 0, W > 0, η and the axial
        asymmetry >= 0, r_PO >= 0.05, the corrections' physical ranges (:mod:`gasolve.rietveld.corrections`);
        -inf and +inf elsewhere."""
        lower = np.full(self.n_parameters, -np.inf)
        upper = np.full(self.n_parameters, np.inf)
        lower[self._b_idx] = 0.0
        lower[self.layout.indices(("phase_b_iso", "phase_profile"))] = 0.0
        for name in ("W", "eta", "axial", "X", "Y"):
            if name in self.layout.names:
                lower[self.layout.index(name)] = 1e-8 if name == "W" else 0.0
        lower[self._po_idx] = 0.05
        lower[self._corr_idx] = self.correction_lower
        upper[self._corr_idx] = self.correction_upper
        return lower, upper

    def linear_constraints(self) -> tuple[np.ndarray, np.ndarray]:
        """Linear inequalities A x <= b every vector must meet besides its bounds: η + slope·2θ in [0, 1] at both
        ends of the data (the profile is refused otherwise), shapes (4, n_parameters) and (4,); none, shapes (0,
        n_parameters) and (0,), for the Thompson-Cox-Hastings profile, whose η is always in [0, 1]."""
        if self.base_profile.tch:
            return np.zeros((0, self.n_parameters)), np.zeros(0)
        i, j = self.layout.index("eta"), self.layout.index("eta_slope")
        matrix = np.zeros((4, self.n_parameters))
        bound = np.zeros(4)
        for row, (end, sign) in enumerate(
            (e, s) for e in (self.pattern.two_theta[0], self.pattern.two_theta[-1]) for s in (1.0, -1.0)
        ):
            matrix[row, i], matrix[row, j] = sign, sign * end
            bound[row] = 1.0 if sign > 0 else 0.0
        return matrix, bound

    def correction_factor(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The product K (n_refl,) of the specimen corrections and ∂K/∂p of their parameters, shape
        (n_correction_parameters, n_refl), in vector order; ones and an empty array without corrections."""
        n_refl = len(self.hkl)
        if not self.corrections:
            return np.ones(n_refl), np.zeros((0, n_refl))
        wavelength = self.radiation.lines[0][0]
        d = self.constraint.d_spacing(x[self._cell_idx], self.hkl)
        sin_theta = np.clip(wavelength / (2.0 * d), 1e-6, 1.0)
        two_theta = 2.0 * np.degrees(np.arcsin(sin_theta))
        factors, derivatives = [], []
        start = 0
        for correction in self.corrections:
            values = x[self._corr_idx[start : start + len(correction.names)]]
            start += len(correction.names)
            paths = None
            if correction.kind == "cylinder":
                key = d.tobytes()
                if self._paths is None or self._paths[0] != key:
                    self._paths = (key, cylinder_path_lengths(two_theta))
                paths = self._paths[1]
            factor, derivative = correction.factor(sin_theta, two_theta, values, paths)
            factors.append(factor)
            derivatives.append(derivative)
        total = np.prod(factors, axis=0)
        rows = []
        for k, derivative in enumerate(derivatives):
            others = np.prod([f for j, f in enumerate(factors) if j != k], axis=0) if len(factors) > 1 else 1.0
            rows.append(derivative * others)
        return total, np.vstack(rows)

    def dormant(self, x: np.ndarray) -> np.ndarray:
        """Indices of the correction parameters that have no effect at ``x`` (their partner switches the
        correction off: :meth:`IntensityCorrection.dormant`); the least squares holds them."""
        out = []
        start = 0
        for correction in self.corrections:
            index = self._corr_idx[start : start + len(correction.names)]
            start += len(correction.names)
            out += list(index[correction.dormant(x[index])])
        return np.array(out, dtype=int)

    def structure_of(self, x: np.ndarray) -> Structure:
        """The refined structure: cell, coordinates (wrapped into [0, 1)) and B of ``x`` (8π² Ueq for the
        anisotropic sites, which carry their U in ``u_aniso``; the isotropic sites have none)."""
        frac = self.frac(x)
        frac = frac - np.floor(frac)
        u = dict(zip(self.aniso_sites, map(tuple, self.u_aniso(x)), strict=True))
        sites = tuple(
            replace(site, frac=tuple(map(float, f)), b_iso=float(max(b, 0.0)), u_aniso=u.get(i))
            for i, (site, f, b) in enumerate(zip(self.structure.sites, frac, self.b_equivalent(x), strict=True))
        )
        return replace(self.structure, cell=self.cell(x), sites=sites, _cache={})

    # ----------------------------------------------------------------------------------------------------------
    # Pattern

    def peak_matrix(self, x: np.ndarray) -> scipy.sparse.csc_matrix:
        """P (n_points, n_refl) of ``x``; cached on the cell, zero and profile entries (a coordinate or B step
        reuses it)."""
        key = np.ascontiguousarray(x[self._shape_idx]).tobytes()
        if key in self._peak_cache:
            self._peak_cache[key] = self._peak_cache.pop(key)  # most recently used last
            return self._peak_cache[key]
        reflections = self.reflections(x)
        profile = self.profile(x)
        near = self._near_the_data(reflections, profile)
        sub = peak_shape_matrix(self.pattern.two_theta, reflections.subset(near), self.radiation, profile)
        columns = np.flatnonzero(near)
        select = scipy.sparse.csr_matrix(
            (np.ones(len(columns)), (np.arange(len(columns)), columns)), shape=(len(columns), len(near))
        )
        matrix = (sub @ select).tocsc()
        self._peak_cache[key] = matrix
        while len(self._peak_cache) > PEAK_CACHE_SIZE:
            del self._peak_cache[next(iter(self._peak_cache))]
        return matrix

    def _window(self, profile: PeakProfile) -> float:
        """Degrees beyond the data within which a peak centre is kept (see :meth:`_near_the_data`)."""
        ends = np.array([self.pattern.two_theta[0], self.pattern.two_theta[-1]])
        return 2.0 * profile.cutoff * float(np.max(profile.fwhm(ends)))

    def _near_the_data(self, reflections: ReflectionList, profile: PeakProfile) -> np.ndarray:
        """Reflections whose peak can reach the data: centre (any emission line) within twice the cutoff window
        (cutoff × the larger FWHM at the range's ends) of the range, shape (n_refl,) bool. The others add nothing
        to the pattern. A reflection kept beyond the data where η + slope·2θ leaves [0, 1] has its η clipped
        (:func:`gasolve.rietveld.shape_jacobian.profile_lines`), so that the pattern stays continuous there."""
        two_theta = self.pattern.two_theta
        ends = np.array([two_theta[0], two_theta[-1]])
        window = self._window(profile)
        near = np.zeros(len(reflections.hkl), dtype=bool)
        for wavelength, _ in self.radiation.lines:
            centre = peak_positions(reflections, wavelength, profile)
            near |= (centre > ends[0] - window) & (centre < ends[1] + window)
        return near

    def _site_terms(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Scattering power w (n_sites, n_refl; complex with f''), the operator sums E (n_sites, n_refl), their
        derivatives dE/dfrac (n_sites, 3, n_refl), stol2 (n_refl,) and the operator terms of the anisotropic
        sites (n_terms, n_aniso, n_refl: T cos φ when centric, T e^{iφ} otherwise)."""
        reflections = self.reflections(x)
        stol2 = reflections.stol2
        b_iso = self.b_iso(x)
        scale = self.occupancy * self.multiplicity / self.space_group.n_ops * self.symmetry_factor
        w = np.array(
            [
                (species_form_factor(el, q, stol2) + fp) * debye_waller(b, stol2) * s
                for el, q, fp, b, s in zip(self.elements, self.charges, self.f_prime, b_iso, scale, strict=True)
            ]
        )
        if np.any(self.f_double_prime):
            w = w + 1j * (self.f_double_prime * scale)[:, None] * debye_waller(b_iso, stol2)
        phase = 2.0 * np.pi * (np.einsum("sak,ja->sjk", self.hr, self.frac(x)) + self.ht[:, None, :])
        aniso = self.aniso_sites
        t = None
        if aniso:  # each image's own T (module docstring); 1 for the isotropic sites, whose T is in w
            u_star = adp_tensors.fractional(self.u_aniso(x), self.reciprocal_metric(x))
            t = np.ones(phase.shape)
            t[:, aniso] = np.exp(-2.0 * np.pi**2 * np.einsum("smk,jm->sjk", self._hr_quadratic, u_star))
        if self.centric:
            terms = np.cos(phase) if t is None else np.cos(phase) * t
            sines = np.sin(phase) if t is None else np.sin(phase) * t
            de = -2.0 * np.pi * np.einsum("sjk,sak->jak", sines, self.hr)
        else:
            terms = np.exp(1j * phase) if t is None else np.exp(1j * phase) * t
            de = 2j * np.pi * np.einsum("sjk,sak->jak", terms, self.hr)
        return w, terms.sum(axis=0), de, stol2, terms[:, aniso]

    def structure_factors_squared(self, x: np.ndarray) -> np.ndarray:
        """|F|² of every reflection, shape (n_refl,): the mean of |F(h)|² and |F(-h)|² (equal without f'')."""
        w, e = self._site_terms(x)[:2]
        if not np.iscomplexobj(w):
            return np.abs(np.sum(w * e, axis=0)) ** 2
        return 0.5 * (np.abs(np.sum(w * e, axis=0)) ** 2 + np.abs(np.sum(w * np.conj(e), axis=0)) ** 2)

    def intensities(self, x: np.ndarray) -> np.ndarray:
        """|F|² times the March-Dollase correction and the specimen corrections of every reflection, shape
        (n_refl,)."""
        return self.structure_factors_squared(x) * self.orientation_factor(x)[0] * self.correction_factor(x)[0]

    def intensity_derivatives(self, x: np.ndarray) -> np.ndarray:
        """∂I/∂x for the coordinate, B, U, r_PO and correction entries of the vector (analytic), shape
        (n_refl, n_coord + n_b + n_u + n_po + n_corrections), in that order."""
        w, e, de, stol2, terms = self._site_terms(x)
        f = np.sum(w * e, axis=0)
        po, d_po = self.orientation_factor(x)
        k_corr, d_corr = self.correction_factor(x)
        if np.iscomplexobj(w):  # the mean over h and -h: F(-h) sums w e* (module docstring)
            f_minus = np.sum(w * np.conj(e), axis=0)
            d_frac = np.real(np.conj(f)[None, None, :] * w[:, None, :] * de)
            d_frac += np.real(np.conj(f_minus)[None, None, :] * w[:, None, :] * np.conj(de))
            d_site_b = np.real((np.conj(f)[None, :] * e + np.conj(f_minus)[None, :] * np.conj(e)) * w)
            d_site_b *= -stol2[None, :]
            squared = 0.5 * (np.abs(f) ** 2 + np.abs(f_minus) ** 2)
        else:
            d_frac = 2.0 * np.real(np.conj(f)[None, None, :] * w[:, None, :] * de)  # (n_sites, 3, n_refl)
            d_site_b = 2.0 * np.real(np.conj(f)[None, :] * (-stol2)[None, :] * w * e)  # (n_sites, n_refl)
            squared = np.abs(f) ** 2
        d_frac = carry_derivatives(d_frac, self._riders)  # the riding H's share goes to their parents
        d_genome = np.einsum("sia,sik->sak", self.site_map.matrix, d_frac).reshape(-1, len(f))
        d_b = self.b_map.T @ d_site_b
        d_u = np.zeros((len(self._u_idx), len(f)))
        if self.aniso_sites:
            # ∂E/∂U*_m = -2π² Σ_s (hR)_i (hR)_j T e^{iφ}; U*_m = n_i n_j U_m; U = C p
            d_e = -2.0 * np.pi**2 * np.einsum("smk,sak->amk", self._hr_quadratic, terms)
            w_aniso = w[self.aniso_sites][:, None, :]
            if np.iscomplexobj(w):
                d_u_star = np.real(np.conj(f)[None, None, :] * w_aniso * d_e)
                d_u_star += np.real(np.conj(f_minus)[None, None, :] * w_aniso * np.conj(d_e))
            else:
                d_u_star = 2.0 * np.real(np.conj(f)[None, None, :] * w_aniso * d_e)
            n = adp_tensors.reciprocal_lengths(self.reciprocal_metric(x))
            scale_u = np.array([n[i] * n[j] for i, j in adp_tensors.PAIRS])
            d_u = np.einsum("amk,m,amp->pk", d_u_star, scale_u, self.u_map)
            if self._aniso_riders:  # the riding H's B follows its parent's Ueq
                d_u += self._rider_b_map(x).T @ d_site_b
        columns = np.concatenate([d_genome[self.free_slots], d_b, d_u]) * (po * k_corr)[None, :]
        if self.po_direction is not None:
            columns = np.concatenate([columns, (squared * d_po * k_corr)[None, :]])
        columns = np.concatenate([columns, squared * po * d_corr])
        return columns.T

    def peaks(self, x: np.ndarray) -> np.ndarray:
        """P I for unit scale, shape (n_points,)."""
        return np.asarray(self.peak_matrix(x) @ self.intensities(x)).ravel()

    def phase_peaks(self, x: np.ndarray) -> np.ndarray:
        """P I for unit scale of every further phase, shape (n_points, n_phases)."""
        return self.further.peaks(x, self.pattern.n_points)

    def linear_fit(self, x: np.ndarray, peaks: np.ndarray | None = None) -> LinearFit:
        """Scales (this phase's and the further phases') and background at their weighted least-squares optimum
        (variable projection)."""
        peaks = self.peaks(x) if peaks is None else peaks
        others = self.phase_peaks(x)
        n_scales = 1 + others.shape[1]
        design = np.column_stack([peaks, others, self.basis]) * self.root_w[:, None]
        solution = np.linalg.lstsq(design, self.root_w * self.pattern.y_obs, rcond=None)[0]
        y_calc = peaks * solution[0] + others @ solution[1:n_scales] + self.basis @ solution[n_scales:]
        return LinearFit(float(solution[0]), solution[n_scales:], peaks, y_calc, solution[1:n_scales], others)

    def linear_columns(self, fit: LinearFit) -> np.ndarray:
        """The columns of the linear parameters (scales, then background), unweighted, shape (n_points,
        n_scales + background_terms)."""
        others = fit.phase_peaks if fit.phase_peaks is not None else np.zeros((self.pattern.n_points, 0))
        return np.column_stack([fit.peaks, others, self.basis])

    def scaled_derivatives(self, x: np.ndarray, free: np.ndarray, fit: LinearFit) -> np.ndarray:
        """∂y_calc/∂x_j at the fit's scales for the parameters ``free``, shape (n_points, len(free)): this phase's
        s ∂(P I)/∂x_j, plus each further phase's s_p ∂(P_p I_p)/∂x_j through the zero, profile, its own cell and
        its own B."""
        free = np.asarray(free, dtype=int)
        out = self.peak_derivatives(x, free) * fit.scale
        self.further.add_derivatives(out, x, free, fit.phase_scales)
        return out

    def pattern_chi2(self, x: np.ndarray) -> float:
        """Σ w (y_obs - y_calc)² at the optimal scale and background; +inf for a vector with no valid profile."""
        try:
            fit = self.linear_fit(x)
        except InputError:
            return float("inf")
        return float(np.sum(self.pattern.weights * (self.pattern.y_obs - fit.y_calc) ** 2))

    def chi2(self, x: np.ndarray) -> float:
        """The pattern's χ² plus the restraints' Σ ((value - target) / σ)²."""
        return self.pattern_chi2(x) + float(np.sum(self.restraint_residuals(x) ** 2))

    def restraint_values(self, x: np.ndarray) -> np.ndarray:
        """Restrained distances (Å) and angles (degrees) of ``x``, shape (n_restraints,)."""
        return self.restraints.values(self.frac(x), self.cell(x))

    def restraint_residuals(self, x: np.ndarray) -> np.ndarray:
        """(target - value) / σ of every restraint, shape (n_restraints,)."""
        if not len(self.restraints):
            return np.zeros(0)
        return self.restraints.residuals(self.frac(x), self.cell(x))

    def restraint_jacobian(self, x: np.ndarray, free: np.ndarray) -> np.ndarray:
        """∂(value / σ)/∂x_j of the restraints for the parameters ``free`` (central differences over the cell
        and coordinate entries; zero for the others), shape (n_restraints, len(free))."""
        free = np.asarray(free, dtype=int)
        out = np.zeros((len(self.restraints), len(free)))
        if not len(self.restraints):
            return out
        moving = set(self._cell_idx.tolist()) | set(self._coord_idx.tolist())
        for column, j in enumerate(free):
            if int(j) not in moving:
                continue
            h = 1e-6 * max(abs(x[j]), 1.0) if j in self._cell_idx else 1e-6
            plus, minus = x.copy(), x.copy()
            plus[j] += h
            minus[j] -= h
            out[:, column] = (self.restraint_residuals(minus) - self.restraint_residuals(plus)) / (2 * h)
        return out

    def peak_derivatives(self, x: np.ndarray, free: np.ndarray) -> np.ndarray:
        """∂(P I)/∂x_j for the parameters ``free`` (indices), shape (n_points, len(free)).

        Coordinates, B, U, r_PO and the specimen corrections analytic (P ∂I/∂x); cell, zero and profile from
        :meth:`shape_derivatives`.
        """
        free = np.asarray(free, dtype=int)
        out = np.zeros((self.pattern.n_points, len(free)))
        structural = np.concatenate([self._coord_idx, self._b_idx, self._u_idx, self._po_idx, self._corr_idx])
        analytic = np.isin(free, structural)
        # a further phase's cell or B: no effect on this phase
        other_phase = np.isin(free, self.further.indices)
        if np.any(analytic):
            columns = self.intensity_derivatives(x)
            where = {int(p): k for k, p in enumerate(structural)}
            picked = columns[:, [where[int(p)] for p in free[analytic]]]
            out[:, analytic] = np.asarray(self.peak_matrix(x) @ picked)
        shape = np.flatnonzero(~analytic & ~other_phase)
        if len(shape):
            out[:, shape] = self.shape_derivatives(x, free[shape])
        return out

    def shape_derivatives(self, x: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """∂(P I)/∂x_j for cell, zero and profile entries ``indices``, shape (n_points, len(indices)).

        ∂P/∂x_j I analytic, from one pass over P's entries (:func:`gasolve.rietveld.shape_jacobian.
        peak_shape_jacobian`); for the cell, plus P ∂I/∂g_j, the intensities' own dependence on the cell (form
        factors, B, corrections and March-Dollase through d and the metric) by central differences of I alone
        (no peak matrix).
        """
        indices = np.asarray(indices, dtype=int)
        reflections = self.reflections(x)
        profile = self.profile(x)
        near = self._near_the_data(reflections, profile)
        cell_columns = [c for c, j in enumerate(indices) if j in self._cell_idx]
        other_columns = [c for c in range(len(indices)) if c not in cell_columns]
        basis = self.constraint.basis[[int(np.flatnonzero(self._cell_idx == indices[c])[0]) for c in cell_columns]]
        hkl = self.hkl[near].astype(float)
        cell_gradient = np.einsum("ni,jik,nk->nj", hkl, basis, hkl)  # ∂(1/d²)/∂g_j: the metric is linear in g
        names = tuple(self.layout.names[indices[c]] for c in other_columns)
        jacobian = peak_shape_jacobian(
            self.pattern.two_theta, reflections.subset(near), self.radiation, profile, cell_gradient, names
        )
        intensities = self.intensities(x)
        moved = jacobian.apply(intensities[near])
        out = np.empty((self.pattern.n_points, len(indices)))
        out[:, cell_columns + other_columns] = moved
        if cell_columns:
            matrix = self.peak_matrix(x)
            for c in cell_columns:
                j = indices[c]
                h = INTENSITY_CELL_STEP * max(abs(float(x[j])), 1e-6)
                plus, minus = x.copy(), x.copy()
                plus[j] += h
                minus[j] -= h
                d_intensity = (self.intensities(plus) - self.intensities(minus)) / (2.0 * h)
                out[:, c] += np.asarray(matrix @ d_intensity).ravel()
        return out


#: Peak matrices kept by :meth:`RietveldModel.peak_matrix`.
PEAK_CACHE_SIZE = 4
#: Relative step of the central differences of the intensities in a cell coefficient (:meth:`shape_derivatives`).
INTENSITY_CELL_STEP = 1e-5

_PROFILE_KEYS = ("U", "V", "W", "eta", "eta_slope", "X", "Y", "axial", "P1", "P2", "zero", "displacement")


def _b_from_ueq(structure: Structure) -> Structure:
    """``structure`` with B = 8π² Ueq on the sites that have a U (``u_aniso``) but no B (a CIF with an aniso loop
    and no U_iso_or_equiv): the start of a site refined isotropically, and of a riding H's parent."""
    missing = [s.b_iso == 0 and s.u_aniso is not None for s in structure.sites]
    if not any(missing):
        return structure
    sites = tuple(
        replace(s, b_iso=U_TO_B * max(float(adp_tensors.u_equivalent(np.array(s.u_aniso), structure.cell)), 0.0))
        if fill
        else s
        for s, fill in zip(structure.sites, missing, strict=True)
    )
    return replace(structure, sites=sites, _cache={})


def _genome_of(site_map: SiteMap, frac: np.ndarray) -> np.ndarray:
    """Genome slots (n_sites, 3) that give ``frac`` through the site map (least squares per site; exact for a
    point on the position)."""
    genome = np.zeros_like(frac)
    for i, (matrix, offset) in enumerate(zip(site_map.matrix, site_map.offset, strict=True)):
        delta = frac[i] - offset
        solution = np.linalg.lstsq(matrix, delta, rcond=None)[0]
        genome[i] = np.where(np.any(matrix != 0, axis=0), solution, 0.0)
    return genome
