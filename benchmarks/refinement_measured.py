"""Rietveld refinement (gasolve.rietveld) of measured patterns against published values: corundum (NIST SRM 676a,
lab Cu Kα1+2, COD 1000017), NAC (Na2Ca3Al2F14, APS 11-BM, its GSAS refinement) and gypsum with preferred
orientation (riet-serv lab pattern). Numbers and figures quoted in docs/refinement.md.

Usage::

    python benchmarks/refinement_measured.py [--only corundum,nac,nac_caf2,nac_profiles,si3n4,lab6,pbso4,gypsum,
        nac_aniso,pbso4_aniso]
        [--figures docs/figures]
        [--json benchmarks/results/refinement_measured.json] [--neutral] [--no-dispersion]
        [--roughness suortti|pitschke] [--absorption MU_R[,held]]

Scattering factors: each site takes the species of its CIF's ``_atom_site_type_symbol`` (NAC: Ca2+, Al3+, Na1+,
F1-, as GSAS used; corundum: Al3+, O2-; PbSO4 and LaB6: neutral atoms), and anomalous dispersion f', f'' of the
radiation is on, as in the refinement's defaults. ``--neutral`` takes every site as the neutral atom and
``--no-dispersion`` leaves f', f'' out; ``--roughness`` refines a surface-roughness correction (Suortti or
Pitschke) with B, ``--absorption`` a cylinder absorption correction from a μR (refined, or held with ",held")
(:mod:`gasolve.rietveld.corrections`); such runs are stored under ``variants`` in the JSON, not over the defaults.

``nac_caf2`` refines NAC with the CaF2 that GSAS refined as a second phase (NAC-2015A.EXP, phase 2: its cell and
Uiso, tests/data/derived/CaF2_NAC-2015A_phase2.cif), its cell and scale refined, the profile shared
(:mod:`gasolve.rietveld.phases`); GSAS gives CaF2 1.48 wt% in the 11-BM histogram (MASSFR 0.0148) and a =
5.464617(8) Å.

``nac_profiles`` refines NAC + CaF2 with CaF2's B refined (on the one-width profile), and with the
Thompson-Cox-Hastings profile three ways: from gasolve's Le Bail fit (shape "tch"), with GSAS's own histogram-3
profile held (NAC-2015A.EXP HAP1 3PRCF, type 3: GU 0.978586, GV
-0.126, GW 0.0372878 centideg² of σ², LX 0.208667 centideg, LY 0, S/L = H/L 0.0011), and refined from it.

``si3n4`` refines GSAS's two-phase exercise (α-Si3N4 with a β-Si3N4 contaminant, lab Cu Kα1+2 with GSAS's
wavelengths 1.5405/1.5443 Å and K ratio 0.5) with and without the β phase (A_SI3N4X.EXP's models,
tests/data/derived/Si3N4_*_GSAS_two_phase.cif; GSAS's negative α Uiso set to 0.003 Å²); GSAS gives β 0.98(1.77)
wt% and Rwp 14.20 %.

``nac_aniso`` and ``pbso4_aniso`` refine the same start twice, with isotropic B and with anisotropic U on every
site (``adp = "aniso"``, :mod:`gasolve.rietveld.adp`), on one profile, and compare each U_ij with the published
one (NAC: GSAS's Uani in NAC.cif; PbSO4: Miyake's single-crystal Uani, COD 9000652, carried into Pnma and onto
each site's image by the operator that maps the positions) in our esds.

Each case starts from the published model; the profile (Caglioti U, V, W, η, zero) comes from gasolve's Le Bail
fit on the published cell unless one is given (``PROFILES``: the values that fit gives, so that the slow tests in
tests/test_rietveld_measured.py skip it). The gypsum pattern is stored background-subtracted with 100 counts added
and an esd column sqrt((y - 100)/2); it holds a calcite impurity (its 104 line at 29.4° is the strongest of the
pattern), so points within 0.35° of calcite's lines are left out and the esd is taken as sqrt(max(y - 100, 0.5)).
The gypsum start is the Materials Project structure mp-23690 (PBE) symmetrised to C2/c in the cell of Boeyens &
Ichharam (Z. Kristallogr. NCS 217 (2002) 9); the calcite cell is Graf's (Am. Mineral. 46 (1961) 1283).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gasolve.crystal.cell import UnitCell  # noqa: E402
from gasolve.crystal.cif_io import read_cif  # noqa: E402
from gasolve.crystal.spacegroup import SpaceGroup  # noqa: E402
from gasolve.diffraction.profile import PeakProfile  # noqa: E402
from gasolve.diffraction.reflections import generate_reflections  # noqa: E402
from gasolve.diffraction.wavelength import Radiation, parse_radiation  # noqa: E402
from gasolve.io.patterns import ObservedPattern, read_pattern  # noqa: E402
from gasolve.rietveld import RefinementSettings, refine  # noqa: E402

MEASURED = ROOT.parent / "shared" / "data" / "measured"
NAC_FOLDER = MEASURED / "NAC-11BM-synchrotron"
SHARED = ROOT.parent / "shared" / "data"

#: Published values compared with: (value, esd) or value (no esd given).
CORUNDUM_COD = {"a": (4.7606, 0.0005), "c": (12.994, 0.001), "x(O1)": (0.69365, 0.00003), "z(Al1)": (0.35217, 0.00001)}
#: GSAS (2015) joint TOF/11-BM refinement of NAC: NAC-2015A.EXP, histogram 3 (11-BM, 0.5-50°): Rwp 11.97 %,
#: Rp 9.34 %, Rexp 3.28 %; cell 10.251218(2) Å; coordinates and Uani as NAC.cif gives them (no esds written).
NAC_GSAS_RWP = 0.1197
NAC_GSAS_REXP = 0.0328
#: GSAS's CaF2 in the same refinement: weight fraction in histogram 3 (HAP2 3MASSFR 0.0148(1)) and cell (Å).
NAC_GSAS_CAF2 = {"weight_fraction": (0.0148, 0.0001), "a": (5.464617, 0.000008)}
CAF2_CIF = ROOT / "tests" / "data" / "derived" / "CaF2_NAC-2015A_phase2.cif"
#: 11-BM beam polarisation fraction (11bm_gsas.prm, ICONS line: 0.990).
NAC_POLARISATION = 0.99
#: NIST SRM 660c certified lattice parameter of LaB6 (Å, 22.5 °C) and its expanded uncertainty (k = 2) / 2.
LAB6_CERTIFIED_A = (4.156826, 0.000004)


def lebail_profile(
    structure, pattern, radiation, background_terms: int, polarisation: float | None = None, shape="pseudo-voigt"
) -> tuple[PeakProfile, UnitCell]:
    from gasolve.profile_fit import LeBailSettings, fit_lebail

    settings = LeBailSettings(background_terms=background_terms, polarisation=polarisation, shape=shape)
    fitted = fit_lebail(pattern, structure.cell, structure.space_group, radiation, settings)
    return fitted.profile, fitted.cell


#: Scattering factors of the runs: the CIF's species (ions where it gives charges) and anomalous dispersion, unless
#: main() is told otherwise (module docstring).
SCATTERING = {"neutral": False, "dispersion": True}


def _model(path: Path):
    """The CIF's structure, its sites made neutral when SCATTERING says so."""
    structure = read_cif(path)
    if SCATTERING["neutral"]:
        structure = replace(structure, sites=tuple(replace(s, charge=0) for s in structure.sites))
    return structure


#: Specimen corrections of the runs (``--roughness``, ``--absorption``); none by default.
CORRECTIONS: list = []


def _settings(settings: RefinementSettings | None, **defaults) -> RefinementSettings:
    settings = settings or RefinementSettings(**defaults)
    return replace(settings, anomalous_dispersion=SCATTERING["dispersion"], corrections=tuple(CORRECTIONS))


def _lab_refinement(start: Path, pattern_file: Path, terms: int, profile, settings):
    """Refine the CIF ``start`` against a laboratory Cu Kα1+2 pattern with ``terms`` background terms; the profile
    and cell from gasolve's Le Bail fit unless ``profile`` is given."""
    structure = _model(start)
    pattern = read_pattern(pattern_file)
    radiation = parse_radiation("CuKa12")
    if profile is None:
        profile, cell = lebail_profile(structure, pattern, radiation, terms)
        structure = replace(structure, cell=cell)
    return refine(structure, pattern, radiation, profile, _settings(settings, background_terms=terms))


def corundum(profile: PeakProfile | None = None, settings: RefinementSettings | None = None):
    """Refine COD 1000017 against SRM 676a (10-135°, 10 background terms). Returns (result, reference)."""
    folder = MEASURED / "corundum-SRM676a-lab-CuKa"
    start = folder / "corundum_COD1000017_copied_from_XRed.cif"
    return _lab_refinement(start, folder / "row_Cu_676a.xy", 10, profile, settings), CORUNDUM_COD


def nac(
    profile: PeakProfile | None = None,
    settings: RefinementSettings | None = None,
    lo=0.5,
    hi=50.0,
    polarisation: float | None = NAC_POLARISATION,
):
    """Refine NAC.cif (GSAS's refined model, Uani -> Uiso) against the 11-BM pattern. Returns (result, published).

    ``polarisation``: the beam polarisation fraction (GSAS's ICONS 0.99 in 11bm_gsas.prm); None for the
    unpolarised laboratory form, as before it could be set.
    """
    structure, pattern, radiation, profile = _nac_start(profile, lo, hi, polarisation)
    settings = _settings(settings, background_terms=10)
    return refine(structure, pattern, radiation, profile, settings), read_cif(NAC_FOLDER / "NAC.cif")


def nac_with_caf2(
    profile: PeakProfile | None = None, settings: RefinementSettings | None = None, shape: str = "pseudo-voigt"
):
    """NAC with GSAS's CaF2 as a second phase (module docstring), the profile of ``shape`` (a Le Bail fit's unless
    ``profile`` is given). CaF2's B is held at GSAS's values, as GSAS held them (no U flag on phase 2's atoms), unless
    ``settings`` say otherwise. Returns (result, published)."""
    from gasolve.rietveld import SecondaryPhase
    from gasolve.rietveld.settings import GROUPS

    structure, pattern, radiation, profile = _nac_start(profile, 0.5, 50.0, NAC_POLARISATION, shape)
    settings = settings or RefinementSettings(
        background_terms=10, groups=tuple(g for g in GROUPS if g != "phase_b_iso")
    )
    settings = replace(_settings(settings), phases=(SecondaryPhase("CaF2", read_cif(CAF2_CIF)),))
    return refine(structure, pattern, radiation, profile, settings), read_cif(NAC_FOLDER / "NAC.cif")


#: GSAS's two-phase Si3N4 exercise (A_SI3N4X.EXP): β weight fraction (HAP2 1MASSFR) and Rwp.
SI3N4_GSAS = {"beta_weight_fraction": (0.0098, 0.0177), "rwp": 0.1420}


def si3n4(with_beta: bool = True):
    """α-Si3N4 with (or without) its β contaminant as a further phase (module docstring); the profile from a Le
    Bail fit of the α cell. Returns the result."""
    from gasolve.rietveld import SecondaryPhase

    folder = ROOT / "tests" / "data" / "derived"
    alpha = _model(folder / "Si3N4_alpha_GSAS_two_phase.cif")
    beta = SecondaryPhase("beta_Si3N4", _model(folder / "Si3N4_beta_GSAS_two_phase.cif"))
    pattern = read_pattern(MEASURED / "Si3N4-two-phase-lab-CuKa" / "A_SI3N4_XRA_converted.xye")
    radiation = Radiation(((1.5405, 2.0 / 3.0), (1.5443, 1.0 / 3.0)), "CuKa12 (GSAS INST_XRY.PRM)")
    profile, cell = lebail_profile(alpha, pattern, radiation, 8)
    from gasolve.rietveld.settings import GROUPS

    groups = tuple(g for g in GROUPS if g != "phase_b_iso")  # β's U held, as GSAS held it (no U flag)
    settings = _settings(None, background_terms=8, preferred_orientation=None, groups=groups)
    settings = replace(settings, phases=(beta,) if with_beta else ())
    return refine(replace(alpha, cell=cell), pattern, radiation, profile, settings)


#: GSAS's profile of NAC's 11-BM histogram as a gasolve PeakProfile: type 3 gives the Gaussian's variance σ² in
#: centidegrees², so FWHM² = 8 ln 2 σ² · 10⁻⁴ deg²; LX in centidegrees; S/L = H/L (GSAS's asymmetry) is SH/L.
_SIGMA2_TO_FWHM2 = 8.0 * np.log(2.0) * 1e-4
NAC_GSAS_PROFILE = PeakProfile(
    caglioti=(_SIGMA2_TO_FWHM2 * 0.978586, _SIGMA2_TO_FWHM2 * -0.126, _SIGMA2_TO_FWHM2 * 0.0372878),
    lorentzian=(0.00208667, 0.0),
    axial=0.0011,
    polarisation=NAC_POLARISATION,
)


def nac_profiles() -> dict:
    """NAC + CaF2 with the Thompson-Cox-Hastings profile (Le Bail start, GSAS's held, GSAS's as the start) and with
    CaF2's B refined (module docstring); each with its figures, the CaF2 comparison and the count within 3 esds."""
    from gasolve.rietveld.settings import GROUPS

    held = RefinementSettings(
        background_terms=10, groups=tuple(g for g in GROUPS if g not in ("profile", "phase_profile", "phase_b_iso"))
    )
    refined = RefinementSettings(background_terms=10, groups=tuple(g for g in GROUPS if g != "phase_b_iso"))
    runs = {
        "tch_lebail": lambda: nac_with_caf2(shape="tch"),
        "gsas_profile_held": lambda: nac_with_caf2(NAC_GSAS_PROFILE, held),
        "gsas_profile_refined": lambda: nac_with_caf2(NAC_GSAS_PROFILE, refined),
        "caf2_b_refined": lambda: nac_with_caf2(settings=RefinementSettings(background_terms=10, groups=GROUPS)),
    }
    out = {}
    for name, run in runs.items():
        start = time.perf_counter()
        result, published = run()
        rows = compare_nac(result, published)
        p = result.profile
        out[name] = {
            **_summary(result, time.perf_counter() - start),
            "profile": {"caglioti": p.caglioti, "lorentzian": p.lorentzian, "axial": p.axial, "zero": p.zero},
            "caf2": compare_caf2(result),
            "comparison": rows,
            "within": _within(rows, result),
        }
    return out


def compare_caf2(result) -> dict:
    """CaF2's weight fraction and cell against GSAS's, and the ratio of the two cells (which a wavelength or zero
    calibration leaves alone) against GSAS's ratio."""
    (phase,) = result.phases
    w, w_esd = NAC_GSAS_CAF2["weight_fraction"]
    a, a_esd = NAC_GSAS_CAF2["a"]
    ratio = result.structure.cell.a / phase.cell[0]
    return {
        "weight_fraction": [phase.weight_fraction, phase.weight_fraction_esd],
        "gsas_weight_fraction": [w, w_esd],
        "a": [phase.cell[0], float(phase.cell_esd[0])],
        "gsas_a": [a, a_esd],
        "cell_ratio_nac_over_caf2": ratio,
        "gsas_cell_ratio": 10.251218 / a,
    }


def _nac_start(profile: PeakProfile | None, lo: float, hi: float, polarisation: float | None, shape="pseudo-voigt"):
    """NAC.cif's model, the 11-BM pattern over [lo, hi] degrees, its radiation and the profile (a Le Bail fit, which
    also gives the cell, when ``profile`` is None)."""
    structure = _model(NAC_FOLDER / "NAC.cif")
    full = read_pattern(NAC_FOLDER / "11BM_NAC_converted.xye")
    keep = (full.two_theta >= lo) & (full.two_theta <= hi)
    pattern = ObservedPattern(full.two_theta[keep], full.y_obs[keep], full.sigma[keep])
    radiation = Radiation(((0.413909, 1.0),), "11-BM")
    if profile is None:
        profile, cell = lebail_profile(structure, pattern, radiation, 10, polarisation, shape)
        structure = replace(structure, cell=cell)
    else:
        profile = replace(profile, polarisation=polarisation)
    return structure, pattern, radiation, profile


def lab6(profile: PeakProfile | None = None, settings: RefinementSettings | None = None):
    """Refine LaB6 (literature start, Pm-3m) against NIST SRM 660c on a lab Cu Kα1+2 diffractometer (GSAS-II's
    CWInstDemo data, 15-125°, 12 background terms). Returns (result, start)."""
    folder = MEASURED / "LaB6-SRM660-lab-CuKa"
    start = folder / "LaB6_literature.cif"
    return _lab_refinement(start, folder / "NIST660CBI_converted.xye", 12, profile, settings), read_cif(start)


#: GSAS-I refinement of the round-robin pattern (PBSO4X.EXP, PBSO4X_refined_phase1.cif): a, b, c (Å) and esds,
#: Rwp 12.43 %, Rexp 4.94 %; its coordinates are the starting model's (Miyake et al. 1978), not refined there.
PBSO4_GSAS_CELL = ((8.482371, 0.000117), (5.400051, 0.000077), (6.961979, 0.000100))
PBSO4_GSAS_RWP = 0.1243
#: The profile gasolve's Le Bail fit gives on the PbSO4 pattern (as in tests/test_rietveld_pbso4.py), so that the
#: benchmark measures the refinement, not the 150 s Le Bail fit.
PBSO4_LEBAIL_PROFILE = PeakProfile(
    caglioti=(0.00916, 0.01008, 0.00272), eta=0.752, eta_slope=0.00138, zero=-0.0109, axial=0.0276
)
#: The published single-crystal model's sites (COD 9000652, Miyake et al., Am. Mineral. 63 (1978) 506, setting
#: Pbnm) in the order of PBSO4X_refined_phase1.cif's sites (Pb, S, O1, O2, O3 there; PB1, S2, O3, O4, O5 here).
PBSO4_MIYAKE_ORDER = ("Pb", "S", "O1", "O2", "O3")


def pbso4(settings: RefinementSettings | None = None, adp: str = "iso"):
    """Refine the GSAS model of the round robin (PBSO4X_refined_phase1.cif) against examples/PbSO4.xra with the
    example's range and 12 background terms, 12 cycles per stage as tests/test_rietveld_pbso4.py (``adp``: the
    displacement model when no settings are given). Returns (result, start)."""
    from gasolve.config import load_observed, load_run_config

    config = load_run_config(ROOT / "examples" / "PbSO4.toml")
    structure = _model(MEASURED / "PbSO4-lab-CuKa" / "PBSO4X_refined_phase1.cif")
    settings = _settings(settings, background_terms=config.pattern.background_terms, max_iterations=12, adp=adp)
    result = refine(structure, load_observed(config), config.pattern.radiation, PBSO4_LEBAIL_PROFILE, settings)
    return result, structure


def _miyake_b() -> list[float]:
    """B = 8π² Ueq (Å²) of COD 9000652's sites (orthorhombic: Ueq is the mean of U11, U22, U33)."""
    import gemmi

    small = gemmi.read_small_structure(str(MEASURED / "PbSO4-lab-CuKa" / "anglesite_COD9000652_from_riet-serv.cif"))
    by_label = {site.label: site.aniso for site in small.sites}
    return [8 * np.pi**2 * (by_label[k].u11 + by_label[k].u22 + by_label[k].u33) / 3 for k in PBSO4_MIYAKE_ORDER]


def compare_pbso4(result, start) -> list[dict]:
    """Cell against GSAS's (its esds); each site's distance (Å) to the start (Miyake's coordinates, rounded);
    B against Miyake's 8π² Ueq."""
    cell = result.structure.cell.parameters[:3]
    rows = []
    for k, name in enumerate("abc"):
        published, published_esd = PBSO4_GSAS_CELL[k]
        esd = float(result.cell_esd[k])
        combined = float(np.hypot(esd, published_esd))
        row = {"name": name, "refined": cell[k], "esd": esd, "published": published, "published_esd": published_esd}
        rows.append({**row, "difference_over_combined_esd": (cell[k] - published) / combined})
    for site, reference in zip(result.structure.sites, start.sites, strict=True):
        images = result.structure.space_group.orbit(np.array(reference.frac))
        delta = images - np.array(site.frac)
        delta -= np.round(delta)
        distance = float(np.min(result.structure.cell.distance(np.zeros(3), delta)))
        rows.append({"name": f"distance({site.label})", "refined": distance, "published": 0.0})
    for i, (site, b) in enumerate(zip(result.structure.sites, _miyake_b(), strict=True)):
        esd = float(result.b_esd[i])
        rows.append({"name": f"B({site.label})", "refined": site.b_iso, "esd": esd, "published": b,
                     "difference_over_esd": (site.b_iso - b) / esd if esd > 0 else None})  # fmt: skip
    return rows


def compare_lab6(result) -> list[dict]:
    """a against the SRM 660c certificate (4.156826(8) Å at 22.5 °C); x(B) against the literature start."""
    x, x_esd = _value(result, "x(B1)")
    rows = [
        {"name": "a", "refined": result.structure.cell.a, "esd": float(result.cell_esd[0]),
         "published": LAB6_CERTIFIED_A[0], "published_esd": LAB6_CERTIFIED_A[1]},
        {"name": "x(B1)", "refined": x, "esd": x_esd, "published": 0.1975, "published_esd": 0.0},
    ]  # fmt: skip
    for i, site in enumerate(result.structure.sites):
        rows.append({"name": f"B({site.label})", "refined": site.b_iso, "esd": float(result.b_esd[i])})
    for row in rows:
        if "published" in row:
            combined = float(np.hypot(row["esd"], row["published_esd"]))
            row["difference_over_combined_esd"] = (row["refined"] - row["published"]) / combined
    return rows


def gypsum_start():
    """mp-23690 (CaSO4·2H2O, PBE) symmetrised to C2/c by pymatgen, in the published cell, B 1.5 Å²."""
    from pymatgen.core import Structure as PMGStructure
    from pymatgen.io.cif import CifWriter
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    csv.field_size_limit(1 << 30)
    with gzip.open(SHARED / "mp-structures" / "structures.csv.gz", "rt") as stream:
        text = next(row["cif"] for row in csv.DictReader(stream) if row["material_id"] == "mp-23690")
    refined = SpacegroupAnalyzer(PMGStructure.from_str(text, fmt="cif"), symprec=0.1).get_refined_structure()
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gypsum.cif"
        CifWriter(refined, symprec=0.1).write_file(path)
        structure = read_cif(path)
    cell = UnitCell(6.2845, 15.2079, 5.6776, 90.0, 114.09, 90.0)
    return replace(structure, cell=cell, sites=tuple(replace(s, b_iso=1.5) for s in structure.sites), name="gypsum")


def gypsum_pattern(lo: float = 8.0, hi: float = 70.0, window: float = 0.35) -> ObservedPattern:
    """The gypsum pattern without calcite's lines (module docstring)."""
    data = np.loadtxt(MEASURED / "riet-serv-lab-profiles" / "17_06_01_0001_gyspum_100_pref_orient.xye")
    keep = (data[:, 0] >= lo) & (data[:, 0] <= hi)
    calcite = UnitCell(4.9896, 4.9896, 17.0610, 90.0, 90.0, 120.0)
    lines = generate_reflections(calcite, SpaceGroup.from_symbol("R-3c"), 1.3).two_theta(1.5406)
    for line in lines:
        keep &= np.abs(data[:, 0] - line) > window
    y = data[keep, 1]
    return ObservedPattern(data[keep, 0], y, np.sqrt(np.maximum(y - 100.0, 0.5)))


def gypsum(preferred_orientation="auto"):
    """Refine gypsum with March-Dollase chosen by the refinement ("auto") or none (None)."""
    profile = PeakProfile(caglioti=(0.01, -0.005, 0.006), eta=0.5, axial=0.02)
    settings = _settings(
        None, background_terms=6, b_per="element", preferred_orientation=preferred_orientation, max_iterations=20
    )
    return refine(gypsum_start(), gypsum_pattern(), parse_radiation("CuKa12"), profile, settings)


def _value(result, name: str) -> tuple[float, float]:
    unc = result.uncertainties
    k = unc.names.index(name)
    return float(unc.values[k]), float(unc.esd[k])


def compare_corundum(result) -> list[dict]:
    cell = result.structure.cell
    rows = [
        ("a", cell.a, result.cell_esd[0]),
        ("c", cell.c, result.cell_esd[2]),
        ("x(O1)", *_value(result, "x(O1)")),
        ("z(Al1)", *_value(result, "z(Al1)")),
    ]
    out = []
    for name, value, esd in rows:
        published, published_esd = CORUNDUM_COD[name]
        combined = float(np.hypot(esd, published_esd))
        out.append(
            {"name": name, "refined": value, "esd": esd, "published": published, "published_esd": published_esd,
             "difference_over_combined_esd": (value - published) / combined}
        )  # fmt: skip
    return out


def compare_nac(result, published) -> list[dict]:
    out = [{"name": "a", "refined": result.structure.cell.a, "esd": float(result.cell_esd[0]), "published": 10.251218}]
    for site, reference, esd in zip(result.structure.sites, published.sites, result.coordinate_esd, strict=True):
        for axis, label in enumerate("xyz"):
            if esd[axis] > 0:
                out.append({"name": f"{label}({site.label})", "refined": site.frac[axis], "esd": float(esd[axis]),
                            "published": reference.frac[axis]})  # fmt: skip
    for i, (site, reference) in enumerate(zip(result.structure.sites, published.sites, strict=True)):
        out.append({"name": f"B({site.label})", "refined": site.b_iso, "esd": float(result.b_esd[i]),
                    "published": reference.b_iso})  # fmt: skip
    for row in out:
        row["difference_over_esd"] = (row["refined"] - row["published"]) / row["esd"] if row["esd"] > 0 else None
    return out


def _published_u(result, small, positions=None) -> dict[str, np.ndarray]:
    """Published U (6-vector, CIF convention, Å²) of each of the result's sites, in the result's setting and on
    the image the result's site is: the published site at ``positions`` (n_sites, 3; default the small
    structure's, in the same order) is carried onto the refined site by the operator (R, t) of the space group
    that maps it there, and its U by R U Rᵀ. ``small`` is a gemmi.SmallStructure whose sites are in the order of
    the result's."""
    from gasolve.rietveld.adp import six, tensor

    group = result.structure.space_group
    out = {}
    for k, (site, published) in enumerate(zip(result.structure.sites, small.sites, strict=True)):
        start = np.array(published.fract.tolist()) if positions is None else positions[k]
        images = np.einsum("sij,j->si", group.rotations, start) + group.translations
        delta = images - np.array(site.frac)
        delta -= np.round(delta)
        rotation = group.rotations[int(np.argmin(np.abs(delta).max(axis=1)))]
        a = published.aniso
        u = np.array([a.u11, a.u22, a.u33, a.u12, a.u13, a.u23])
        out[site.label] = six(rotation @ tensor(u) @ rotation.T)
    return out


def compare_u(result, published_u: dict[str, np.ndarray]) -> list[dict]:
    """Each refined U_ij against the published one, in our esds (the components the site symmetry leaves free or
    ties to a free one: esd > 0); Ueq as 8π² Ueq (B) too."""
    from gasolve.rietveld.adp import U_COMPONENTS, u_equivalent

    rows = []
    for i in result.model.aniso_sites:
        label = result.structure.sites[i].label
        for m, name in enumerate(U_COMPONENTS):
            esd = float(result.u_aniso_esd[i, m])
            value, published = float(result.u_aniso[i, m]), float(published_u[label][m])
            rows.append({"name": f"{name}({label})", "refined": value, "esd": esd, "published": published,
                         "difference_over_esd": (value - published) / esd if esd > 0 else None})  # fmt: skip
        b_eq = float(8 * np.pi**2 * u_equivalent(published_u[label], result.structure.cell))
        esd = float(result.b_esd[i])
        b = result.structure.sites[i].b_iso
        rows.append({"name": f"Beq({label})", "refined": b, "esd": esd, "published": b_eq,
                     "difference_over_esd": (b - b_eq) / esd if esd > 0 else None})  # fmt: skip
    return rows


def _within(rows, result, names=None) -> dict:
    """How many rows (with an esd) lie within 3 esds, and which, counting each refined parameter once: the cell's
    a, B (or 8π² Ueq) and the rows named like a parameter of the refinement (x(Al1) of a site on a 3-fold axis,
    not its y and z, which follow; U11 and U12 there, not U22, U33, U13, U23)."""
    parameters = set(result.uncertainties.names)

    def counted(name: str) -> bool:
        return name == "a" or name.startswith(("B(", "Beq(")) or name in parameters

    picked = [r for r in rows if r.get("difference_over_esd") is not None and counted(r["name"])]
    picked = [r for r in picked if names is None or names(r["name"])]
    inside = [r["name"] for r in picked if abs(r["difference_over_esd"]) <= 3]
    return {"within_3_esd": len(inside), "of": len(picked), "names": inside}


def nac_anisotropic(profile: PeakProfile | None = None) -> dict:
    """NAC refined with isotropic B and with anisotropic U on every site, on the same Le Bail profile (module
    docstring); the x/B comparison of :func:`compare_nac` for both, and U_ij against GSAS's for the second. The B
    run starts from NAC.cif's Ueq, the U run from its Uani (the aniso loop the CIF reader keeps)."""
    import gemmi

    structure, pattern, radiation, profile = _nac_start(profile, 0.5, 50.0, NAC_POLARISATION)
    published = read_cif(NAC_FOLDER / "NAC.cif")
    out = {"profile": [*profile.caglioti, profile.eta, profile.eta_slope, profile.zero, profile.axial]}
    for adp in ("iso", "aniso"):
        start = time.perf_counter()
        result = refine(structure, pattern, radiation, profile, _settings(None, background_terms=10, adp=adp))
        rows = compare_nac(result, published)
        entry = {**_summary(result, time.perf_counter() - start), "comparison": rows}
        entry["x_b_count"] = _within(rows, result)
        if adp == "aniso":
            u_rows = compare_u(result, _published_u(result, gemmi.read_small_structure(str(NAC_FOLDER / "NAC.cif"))))
            entry["u_comparison"] = u_rows
            entry["u_count"] = _within(u_rows, result, lambda n: not n.startswith("Beq"))
            entry["non_positive_definite"] = list(result.non_positive_definite)
        out[adp] = entry
    return out


def pbso4_anisotropic() -> dict:
    """PbSO4 (lab data) refined with isotropic B, with anisotropic U on every site and on Pb alone (module
    docstring)."""
    import gemmi

    small = gemmi.read_small_structure(str(MEASURED / "PbSO4-lab-CuKa" / "anglesite_COD9000652_from_riet-serv.cif"))
    by_label = {site.label: site for site in small.sites}
    ordered = [by_label[k] for k in PBSO4_MIYAKE_ORDER]
    # Pbnm (a', b', c') -> Pnma (a, b, c) = (b', c', a'): x = y', y = z', z = x'; U likewise
    positions = np.array([[s.fract.y, s.fract.z, s.fract.x] for s in ordered])
    for site in ordered:
        a = site.aniso
        site.aniso = gemmi.SMat33d(a.u22, a.u33, a.u11, a.u23, a.u12, a.u13)
    out = {}
    for key, adp in (("iso", "iso"), ("aniso", "aniso"), ("aniso_Pb", ("Pb",))):
        start = time.perf_counter()
        result, start_model = pbso4(adp=adp)
        entry = {**_summary(result, time.perf_counter() - start), "comparison": compare_pbso4(result, start_model)}
        if adp != "iso":
            fake = type("Published", (), {"sites": ordered})
            u_rows = compare_u(result, _published_u(result, fake, positions))
            entry["u_comparison"] = u_rows
            entry["u_count"] = _within(u_rows, result, lambda n: not n.startswith("Beq"))
            entry["non_positive_definite"] = list(result.non_positive_definite)
        out[key] = entry
    return out


def _figures(result, observed, radiation, folder: Path, name: str) -> None:
    from gasolve.plotting import plot_fit, plot_refinement_progress
    from gasolve.rietveld.report import reflection_ticks

    m = result.metrics
    plot_fit(
        folder / f"refinement_{name}.png",
        observed.two_theta,
        observed.y_obs,
        result.y_calc,
        reflection_ticks(result, radiation),
        title=f"{name}: gasolve Rietveld refinement",
        annotation=f"Rwp {m.rwp:.4f}\nRexp {m.rexp:.4f}\nchi2 {m.chi2:.3f}\nR_Bragg {result.r_bragg:.4f}",
    )
    plot_refinement_progress(
        folder / f"refinement_progress_{name}.png",
        [(s.name, list(s.rwp_history)) for s in result.stages],
        title=f"{name}: Rwp per least-squares cycle",
    )


def _summary(result, seconds: float) -> dict:
    from gasolve.rietveld.report import atom_types, specimen_corrections

    m = result.metrics
    return {
        "atom_types": atom_types(result),
        "b_iso": {s.label: [s.b_iso, float(e)] for s, e in zip(result.structure.sites, result.b_esd, strict=True)},
        "rwp": m.rwp, "rp": m.rp, "rexp": m.rexp, "chi2": m.chi2, "r_bragg": result.r_bragg,
        "n_points": m.n_points, "n_parameters": m.n_parameters, "seconds": seconds,
        "po_direction": result.po_direction, "stages": [(s.name, s.rwp, s.iterations, s.note) for s in result.stages],
        "correlations_above_0.9": result.uncertainties.high_correlations, "error": result.error,
        "specimen_corrections": specimen_corrections(result),
        "adp": "aniso" if result.model.aniso_sites else "iso",
        "u_aniso": {result.structure.sites[i].label: [list(result.u_aniso[i]), list(result.u_aniso_esd[i])]
                    for i in result.model.aniso_sites},
        "non_positive_definite": list(result.non_positive_definite),
    }  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="corundum,nac,gypsum,lab6")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "refinement_measured.json")
    parser.add_argument("--neutral", action="store_true", help="neutral atoms on every site (not the CIF's ions)")
    parser.add_argument("--no-dispersion", action="store_true", help="leave out f', f''")
    parser.add_argument("--roughness", choices=("suortti", "pitschke"), help="refine a surface-roughness correction")
    parser.add_argument(
        "--absorption", metavar="MU_R[,held]", help="cylinder absorption from μR (refined unless ',held')"
    )
    args = parser.parse_args(argv)
    cases = args.only.split(",")
    args.figures.mkdir(parents=True, exist_ok=True)
    stored: dict = {}
    if args.json.exists():
        stored = json.loads(args.json.read_text())
    SCATTERING.update(neutral=args.neutral, dispersion=not args.no_dispersion)
    from gasolve.rietveld.corrections import DEFAULT_START, IntensityCorrection

    labels = []
    if args.roughness:
        CORRECTIONS.append(IntensityCorrection(args.roughness, DEFAULT_START[args.roughness]))
        labels.append(f"{args.roughness} surface roughness")
    if args.absorption:
        mu_r, _, held = args.absorption.partition(",")
        CORRECTIONS.append(IntensityCorrection("cylinder", (float(mu_r),), refine=held != "held"))
        labels.append(f"cylinder absorption from muR {float(mu_r):g}" + (" held" if held == "held" else " refined"))
    variant = ", ".join(
        [
            *(["neutral atoms"] if args.neutral else []),
            *(["no anomalous dispersion"] if args.no_dispersion else []),
            *labels,
        ]
    )
    report = stored.setdefault("variants", {}).setdefault(variant, {}) if variant else stored
    if variant:
        args.figures = Path(tempfile.mkdtemp(prefix="refinement_variant_"))  # the docs' figures show the defaults
    if "corundum" in cases:
        start = time.perf_counter()
        result, _ = corundum()
        report["corundum"] = {**_summary(result, time.perf_counter() - start), "comparison": compare_corundum(result)}
        _figures(result, result.model.pattern, parse_radiation("CuKa12"), args.figures, "corundum")
    if "nac" in cases:
        start = time.perf_counter()
        result, published = nac()
        report["nac"] = {
            **_summary(result, time.perf_counter() - start),
            "gsas_rwp": NAC_GSAS_RWP,
            "gsas_rexp": NAC_GSAS_REXP,
            "comparison": compare_nac(result, published),
        }
        _figures(result, result.model.pattern, Radiation(((0.413909, 1.0),), "11-BM"), args.figures, "nac")
    if "nac_caf2" in cases:
        start = time.perf_counter()
        result, published = nac_with_caf2()
        rows = compare_nac(result, published)
        report["nac_caf2"] = {
            **_summary(result, time.perf_counter() - start),
            "gsas_rwp": NAC_GSAS_RWP,
            "gsas_rexp": NAC_GSAS_REXP,
            "caf2": compare_caf2(result),
            "comparison": rows,
            "within": _within(rows, result),
        }
        _figures(result, result.model.pattern, Radiation(((0.413909, 1.0),), "11-BM"), args.figures, "nac_caf2")
    if "nac_profiles" in cases:
        report["nac_profiles"] = nac_profiles()
    if "si3n4" in cases:
        start = time.perf_counter()
        result = si3n4(True)
        seconds = time.perf_counter() - start
        alone = si3n4(False)
        (beta,) = result.phases
        report["si3n4"] = {
            **_summary(result, seconds),
            "beta_weight_fraction": [beta.weight_fraction, beta.weight_fraction_esd],
            "beta_cell": [list(beta.cell), [float(e) for e in beta.cell_esd]],
            "gsas": SI3N4_GSAS,
            "without_beta": _summary(alone, 0.0),
        }
        _figures(result, result.model.pattern, result.model.radiation, args.figures, "si3n4")
    if "lab6" in cases:
        start = time.perf_counter()
        result, _ = lab6()
        report["lab6"] = {**_summary(result, time.perf_counter() - start), "comparison": compare_lab6(result)}
        _figures(result, result.model.pattern, parse_radiation("CuKa12"), args.figures, "lab6")
    if "pbso4" in cases:
        start = time.perf_counter()
        result, start_model = pbso4()
        report["pbso4"] = {
            **_summary(result, time.perf_counter() - start),
            "gsas_rwp": PBSO4_GSAS_RWP,
            "comparison": compare_pbso4(result, start_model),
        }
        _figures(result, result.model.pattern, parse_radiation("CuKa12"), args.figures, "pbso4")
    if "nac_aniso" in cases:
        report["nac_aniso"] = nac_anisotropic()
    if "pbso4_aniso" in cases:
        report["pbso4_aniso"] = pbso4_anisotropic()
    if "gypsum" in cases:
        start = time.perf_counter()
        with_po = gypsum("auto")
        seconds = time.perf_counter() - start
        without = gypsum(None)
        report["gypsum"] = {
            **_summary(with_po, seconds),
            "r_po": _value(with_po, "r_PO") if with_po.po_direction else None,
            "without_po": _summary(without, 0.0),
        }
        _figures(with_po, with_po.model.pattern, parse_radiation("CuKa12"), args.figures, "gypsum")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(stored, indent=1, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))
    print(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
