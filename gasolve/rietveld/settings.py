"""Settings of a Rietveld refinement and the ``[refinement]`` table of a run config that gives them.

The table (every key optional; the defaults refine everything the data can carry)::

    [refinement]
    cell = true                         # the cell under the space group's constraints
    zero = true                         # zero shift
    displacement = false                # specimen displacement as well
    profile = true                      # Caglioti U, V, W, eta, its slope, asymmetry
    coordinates = true                  # free coordinates of every site (origin held in polar groups)
    b_iso = "site"                      # "site" (one B per site), "element" (one per element) or "off"
    adp = "iso"                         # "iso", "aniso" (anisotropic U on every non-H site) or a list of
                                        # elements and site labels refined anisotropically, e.g. ["Pb", "S1"]
    preferred_orientation = "auto"      # "auto" (the best low-index direction, kept only if significant),
                                        # [h, k, l] (March-Dollase along that reciprocal-lattice direction) or "off"
    max_iterations = 30                 # least-squares cycles per stage
    anomalous_dispersion = true         # f', f'' of the radiation (Chantler, via xraydb) on every atom
    hydrogens = "riding"                # H (and D) "riding" on their parent atoms (Uiso 1.2 or 1.5 x the parent's),
                                        # "fixed" (held as given, Uiso riding) or "free" (refined like any atom)
    hydrogen_parents = {H1 = "O1"}      # optional: an H's parent, instead of its nearest non-H atom
    surface_roughness = "off"           # "suortti" or "pitschke" (Bragg-Brentano): two parameters refined with B
    absorption = "off"                  # or {geometry = "cylinder", mu_r = 0.3, refine = false} (capillary)
    phases = ["CaF2.cif"]               # further phases of the specimen (CIFs, relative to the config): their
                                        # coordinates and B held, cell refined (with cell), scale solved; weight
                                        # fractions by Hill & Howard
    phase_b_iso = false                 # refine the further phases' B as well (per site or element as b_iso)
    restraints = [                      # soft restraints, added to chi^2 as ((value - target) / sigma)^2
        {atoms = ["S1", "O1"], distance = 1.47, sigma = 0.01},          # Å, nearest symmetry image
        {atoms = ["O1", "S1", "O2"], angle = 109.5, sigma = 1.0},       # degrees, at the middle atom
    ]

Sites whose species carries a charge (a CIF's ``_atom_site_type_symbol`` Ca2+, F1-) scatter with the ion's form
factor. Scale and background are linear and always solved exactly (their terms: ``[pattern.background] terms``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gasolve.errors import InputError
from gasolve.rietveld.corrections import DEFAULT_START, MU_R_MAX, ROUGHNESS_KINDS, IntensityCorrection
from gasolve.rietveld.phases import SecondaryPhase
from gasolve.rietveld.riding import HYDROGEN_MODES

#: Non-linear parameter groups, in vector order.
GROUPS = (
    "cell",
    "zero",
    "profile",
    "preferred_orientation",
    "coordinates",
    "b_iso",
    "u_aniso",
    "surface_roughness",
    "absorption",
    "phase_cell",
    "phase_b_iso",
    "phase_profile",
)
#: The groups a ``[refinement]`` table switches with a boolean.
_SWITCHES = ("cell", "zero", "profile", "coordinates")
_KEYS = (
    *_SWITCHES,
    "displacement",
    "b_iso",
    "adp",
    "preferred_orientation",
    "max_iterations",
    "anomalous_dispersion",
    "hydrogens",
    "hydrogen_parents",
    "surface_roughness",
    "absorption",
    "restraints",
    "phases",
    "phase_b_iso",
)
_B_CHOICES = ("site", "element", "off")
#: The ``adp`` strings; a list names elements and site labels instead.
ADP_CHOICES = ("iso", "aniso")


@dataclass(frozen=True)
class Restraint:
    """A soft restraint on a bond distance or angle.

    Attributes
    ----------
    atoms : tuple of str
        Two site labels (distance) or three (angle at the middle one).
    target : float
        Å for a distance, degrees for an angle.
    sigma : float
        Same unit; the residual is (value - target) / sigma.
    """

    atoms: tuple[str, ...]
    target: float
    sigma: float

    def __post_init__(self) -> None:
        if len(self.atoms) not in (2, 3):
            raise InputError(f"a restraint names 2 atoms (distance) or 3 (angle), got {list(self.atoms)}")
        if len(set(self.atoms)) != len(self.atoms):
            raise InputError(f"a restraint names the same atom twice: {list(self.atoms)}")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise InputError(f"a restraint's sigma must be a positive number, got {self.sigma}")
        if not (math.isfinite(self.target) and self.target > 0):
            raise InputError(f"a restraint's target must be a positive number, got {self.target}")
        if self.kind == "angle" and self.target > 180:
            raise InputError(f"an angle restraint's target is in degrees (0-180], got {self.target}")

    @property
    def kind(self) -> str:
        return "distance" if len(self.atoms) == 2 else "angle"

    @property
    def name(self) -> str:
        return f"{self.kind}({'-'.join(self.atoms)})"


@dataclass(frozen=True)
class RefinementSettings:
    """How the refinement runs.

    Attributes
    ----------
    groups : tuple of str
        Parameter groups refined at all (a subset of :data:`GROUPS`); by default all but ``phase_b_iso`` (a
        further phase's B is held unless asked for: a minor phase's B is ill-determined and trades with its scale).
    b_per : {"site", "element"}
        Of the sites refined isotropically.
    adp : "iso", "aniso" or tuple of str
        Anisotropic displacement parameters (:mod:`gasolve.rietveld.adp`): none, on every non-H site, or on the
        sites whose label or element is listed. They are refined with the B group ("u_aniso" in ``groups``).
    displacement : bool
        Refine the specimen displacement as well as the zero shift.
    background_terms : int
    max_iterations : int
        Per stage.
    shift_tolerance : float
        Converged when every shift is below this fraction of its esd.
    preferred_orientation : "auto", tuple of 3 int, or None
        March-Dollase direction (reciprocal-lattice indices), "auto" to let the refinement choose among the
        low-index ones, None for none. Ignored unless "preferred_orientation" is in ``groups``.
    restraints : tuple of Restraint
    anomalous_dispersion : bool
        Add f' and f'' of the radiation to every atom's form factor (:mod:`gasolve.diffraction.dispersion`).
    hydrogens : {"riding", "fixed", "free"}
        How H (and D) sites are refined (:mod:`gasolve.rietveld.riding`).
    hydrogen_parents : tuple of (str, str)
        (H label, parent label) pairs overriding the nearest non-H atom as parent.
    corrections : tuple of IntensityCorrection
        Specimen corrections (:mod:`gasolve.rietveld.corrections`): at most one surface roughness and one
        absorption. Their parameters are refined when their group is in ``groups`` and the correction's
        ``refine`` is true.
    phases : tuple of SecondaryPhase
        Further phases of the specimen (:mod:`gasolve.rietveld.phases`); their cells are refined with the group
        ``phase_cell``.
    """

    groups: tuple[str, ...] = tuple(g for g in GROUPS if g != "phase_b_iso")
    b_per: str = "site"
    adp: str | tuple[str, ...] = "iso"
    displacement: bool = False
    background_terms: int = 6
    max_iterations: int = 30
    shift_tolerance: float = 0.01
    preferred_orientation: str | tuple[int, int, int] | None = "auto"
    restraints: tuple[Restraint, ...] = ()
    anomalous_dispersion: bool = True
    hydrogens: str = "riding"
    hydrogen_parents: tuple[tuple[str, str], ...] = ()
    corrections: tuple[IntensityCorrection, ...] = ()
    phases: tuple[SecondaryPhase, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.groups) - set(GROUPS)
        if unknown:
            raise InputError(f"unknown refinement groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
        if self.b_per not in ("site", "element"):
            raise InputError(f"b_per must be 'site' or 'element', got {self.b_per!r}")
        object.__setattr__(self, "adp", check_adp(self.adp))  # a list becomes a tuple (frozen, hashable)
        if self.adp != "iso" and "b_iso" not in self.groups:
            raise InputError(f"adp = {self.adp!r} needs the displacement parameters refined (b_iso is off)")
        if self.max_iterations < 1:
            raise InputError(f"max_iterations must be at least 1, got {self.max_iterations}")
        if self.hydrogens not in HYDROGEN_MODES:
            choices = ", ".join(map(repr, HYDROGEN_MODES))
            raise InputError(f"hydrogens must be one of {choices}, got {self.hydrogens!r}")
        kinds = [c.group for c in self.corrections]
        if len(set(kinds)) != len(kinds):
            raise InputError(f"at most one surface-roughness and one absorption correction, got {kinds}")
        po = self.preferred_orientation
        if po is not None and po != "auto":
            if len(po) != 3 or not all(isinstance(i, int) and not isinstance(i, bool) for i in po):
                raise InputError(f"a preferred-orientation direction is 3 integers [h, k, l], got {po!r}")
            if not any(po):
                raise InputError("the preferred-orientation direction [0, 0, 0] is not a lattice direction")

    @property
    def po_direction(self) -> str | tuple[int, int, int] | None:
        """The preferred-orientation setting in force: None when the group is not refined."""
        return self.preferred_orientation if "preferred_orientation" in self.groups else None

    @property
    def refined_groups(self) -> tuple[str, ...]:
        """``groups`` less the correction groups whose correction is absent or held, anisotropic U when no site has
        it and the further phases' cells when there are none."""
        held = {c.group for c in self.corrections if not c.refine}
        present = {c.group for c in self.corrections}
        if self.adp == "iso":
            held.add("u_aniso")
        if not self.phases:
            held |= {"phase_cell", "phase_b_iso", "phase_profile"}
        return tuple(
            g for g in self.groups if g not in held and (g not in ("surface_roughness", "absorption") or g in present)
        )


def parse_refinement(data: Any, source: str) -> RefinementSettings:
    """Read a ``[refinement]`` table (module docstring) into :class:`RefinementSettings`.

    Parameters
    ----------
    data : dict or None
        The table as parsed from TOML; None (no table) gives the defaults.
    source : str
        The config file, named in every error.

    Raises
    ------
    InputError
        Naming ``source``, ``[refinement]`` and the key: an unknown key, a value of the wrong type, a direction
        that is not 3 integers, a restraint without 2-3 atoms or a positive target and sigma.
    """
    if data is None:
        return RefinementSettings()

    def error(key: str | None, message: str) -> InputError:
        return InputError(message, f"{source}: [refinement]" + (f" {key}" if key else ""))

    if not isinstance(data, dict):
        raise error(None, "expected a table")
    for key in data:
        if key not in _KEYS:
            raise error(key, f"unknown key; allowed: {', '.join(_KEYS)}")
    groups = []
    for key in _SWITCHES:
        value = data.get(key, True)
        if not isinstance(value, bool):
            raise error(key, f"expected true or false, got {value!r}")
        if value:
            groups.append(key)
    if "cell" in groups:
        groups.append("phase_cell")
    if "profile" in groups:
        groups.append("phase_profile")
    displacement = data.get("displacement", False)
    if not isinstance(displacement, bool):
        raise error("displacement", f"expected true or false, got {displacement!r}")
    b_iso = data.get("b_iso", "site")
    if b_iso not in _B_CHOICES:
        raise error("b_iso", f"expected one of {', '.join(map(repr, _B_CHOICES))}, got {b_iso!r}")
    if b_iso != "off":
        groups += ["b_iso", "u_aniso"]  # u_aniso refined when adp names any site (refined_groups)
    phase_b = data.get("phase_b_iso", False)
    if not isinstance(phase_b, bool):
        raise error("phase_b_iso", f"expected true or false, got {phase_b!r}")
    if phase_b:
        if b_iso == "off":
            raise error("phase_b_iso", 'refining the further phases\' B needs b_iso on, but b_iso = "off"')
        groups.append("phase_b_iso")
    adp = data.get("adp", "iso")
    try:
        adp = check_adp(adp)
    except InputError as bad:
        raise error("adp", bad.message) from bad
    if adp != "iso" and b_iso == "off":
        raise error("adp", f'{adp!r} needs the displacement parameters refined, but b_iso = "off"')
    po: Any = data.get("preferred_orientation", "auto")
    if po == "off":
        po = None
    elif po != "auto":
        if not (isinstance(po, list) and len(po) == 3 and all(type(i) is int for i in po)):
            raise error("preferred_orientation", f'expected "auto", "off" or 3 integers [h, k, l], got {po!r}')
        if not any(po):
            raise error("preferred_orientation", "[0, 0, 0] is not a lattice direction")
        po = tuple(po)
    if po is not None:
        groups.append("preferred_orientation")
    groups += ["surface_roughness", "absorption"]  # refined when their correction is given (refined_groups)
    dispersion = data.get("anomalous_dispersion", True)
    if not isinstance(dispersion, bool):
        raise error("anomalous_dispersion", f"expected true or false, got {dispersion!r}")
    iterations = data.get("max_iterations", 30)
    if type(iterations) is not int or iterations < 1:
        raise error("max_iterations", f"expected a positive integer, got {iterations!r}")
    hydrogens = data.get("hydrogens", "riding")
    if hydrogens not in HYDROGEN_MODES:
        raise error("hydrogens", f"expected one of {', '.join(map(repr, HYDROGEN_MODES))}, got {hydrogens!r}")
    parents = data.get("hydrogen_parents", {})
    if not (isinstance(parents, dict) and all(isinstance(v, str) for v in parents.values())):
        raise error("hydrogen_parents", f'expected a table of H label = "parent label", got {parents!r}')
    corrections = []
    roughness = data.get("surface_roughness", "off")
    if roughness not in ("off", *ROUGHNESS_KINDS):
        choices = ", ".join(map(repr, ("off", *ROUGHNESS_KINDS)))
        raise error("surface_roughness", f"expected one of {choices}, got {roughness!r}")
    if roughness != "off":
        corrections.append(IntensityCorrection(roughness, DEFAULT_START[roughness]))
    absorption = _absorption(data.get("absorption", "off"), error)
    if absorption is not None:
        corrections.append(absorption)
    restraints = data.get("restraints", [])
    if not isinstance(restraints, list):
        raise error("restraints", f"expected a list of tables, got {restraints!r}")
    parsed = tuple(_restraint(item, i, error) for i, item in enumerate(restraints))
    phases = _phases(data.get("phases", []), source, error)
    return RefinementSettings(
        groups=tuple(g for g in GROUPS if g in groups),
        b_per="element" if b_iso == "element" else "site",
        adp=adp,
        displacement=displacement,
        max_iterations=iterations,
        preferred_orientation=po,
        restraints=parsed,
        anomalous_dispersion=dispersion,
        hydrogens=hydrogens,
        hydrogen_parents=tuple(parents.items()),
        corrections=tuple(corrections),
        phases=phases,
    )


def read_phase(path) -> SecondaryPhase:
    """The further phase of the CIF ``path``, named by its file's stem, its source the absolute path."""
    from pathlib import Path

    from gasolve.crystal.cif_io import read_cif

    path = Path(path).resolve()
    return SecondaryPhase(path.stem, read_cif(path), str(path))


def _phases(value: Any, source: str, error) -> tuple[SecondaryPhase, ...]:
    """The ``phases`` key: a list of CIF paths (relative to the config's folder), each read into a phase named
    by its file's stem."""
    from pathlib import Path

    if not (isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)):
        raise error("phases", f'expected a list of CIF files, e.g. ["CaF2.cif"], got {value!r}')
    out = []
    for i, name in enumerate(value):
        path = Path(name)
        if not path.is_absolute():
            path = Path(source).resolve().parent / path
        if not path.is_file():
            raise error(f"phases[{i}]", f"no such CIF file: {path}")
        try:
            out.append(read_phase(path))
        except InputError as bad:
            raise error(f"phases[{i}]", f"{path}: {bad.message}") from bad
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise error("phases", f"two phases have the same file name {names}: each phase is named by its file's stem")
    return tuple(out)


def check_adp(value: Any) -> str | tuple[str, ...]:
    """The ``adp`` setting checked: "iso", "aniso", or a non-empty list (tuple) of distinct element symbols and
    site labels, returned as a tuple. Whether the names exist in the model is checked when the model is built
    (:class:`gasolve.rietveld.model.RietveldModel`). Raises InputError otherwise."""
    if isinstance(value, str):
        if value not in ADP_CHOICES:
            raise InputError(f'expected "iso", "aniso" or a list of elements and site labels, got {value!r}')
        return value
    if not (isinstance(value, list | tuple) and value and all(isinstance(v, str) and v.strip() for v in value)):
        raise InputError(f'expected "iso", "aniso" or a non-empty list of elements and site labels, got {value!r}')
    if len(set(value)) != len(value):
        raise InputError(f"a name is listed twice: {list(value)}")
    return tuple(value)


def _absorption(value: Any, error) -> IntensityCorrection | None:
    """The ``absorption`` key: "off", or {geometry = "cylinder", mu_r = number in [0, MU_R_MAX], refine = bool}."""
    if value == "off":
        return None
    if not isinstance(value, dict):
        raise error("absorption", f'expected "off" or {{geometry = "cylinder", mu_r = 0.3}}, got {value!r}')
    for name in value:
        if name not in ("geometry", "mu_r", "refine"):
            raise error(f"absorption.{name}", "unknown key; allowed: geometry, mu_r, refine")
    if value.get("geometry") != "cylinder":
        geometry = value.get("geometry")
        raise error("absorption.geometry", f'expected "cylinder" (Debye-Scherrer capillary), got {geometry!r}')
    mu_r = value.get("mu_r", 0.0)
    if isinstance(mu_r, bool) or not isinstance(mu_r, int | float) or not 0 <= mu_r <= MU_R_MAX:
        raise error("absorption.mu_r", f"expected a number in [0, {MU_R_MAX:g}] (μ times the radius), got {mu_r!r}")
    refine = value.get("refine", True)
    if not isinstance(refine, bool):
        raise error("absorption.refine", f"expected true or false, got {refine!r}")
    return IntensityCorrection("cylinder", (float(mu_r),), refine)


def _restraint(item: Any, index: int, error) -> Restraint:
    key = f"restraints[{index}]"
    if not isinstance(item, dict):
        raise error(key, f"expected a table {{atoms = [...], distance = ..., sigma = ...}}, got {item!r}")
    allowed = ("atoms", "distance", "angle", "sigma")
    for name in item:
        if name not in allowed:
            raise error(f"{key}.{name}", f"unknown key; allowed: {', '.join(allowed)}")
    atoms = item.get("atoms")
    if not (isinstance(atoms, list) and all(isinstance(a, str) for a in atoms)):
        raise error(f"{key}.atoms", f"expected a list of 2 or 3 site labels, got {atoms!r}")
    if len(atoms) not in (2, 3):
        raise error(f"{key}.atoms", f"expected 2 site labels (distance) or 3 (angle), got {len(atoms)}")
    kind = "distance" if len(atoms) == 2 else "angle"
    other = "angle" if kind == "distance" else "distance"
    if other in item:
        raise error(f"{key}.{other}", f"{len(atoms)} atoms make a {kind} restraint; write {kind} = ...")
    for name in (kind, "sigma"):
        value = item.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise error(f"{key}.{name}", f"expected a number, got {value!r}")
    try:
        return Restraint(tuple(atoms), float(item[kind]), float(item["sigma"]))
    except InputError as bad:
        raise error(key, bad.message) from bad


def refinement_table(settings: RefinementSettings) -> dict[str, Any]:
    """The ``[refinement]`` table of ``settings`` (what :func:`parse_refinement` reads back to equal settings; the
    background terms come from ``[pattern.background]`` and are not written)."""
    po = settings.preferred_orientation
    table: dict[str, Any] = {key: key in settings.groups for key in _SWITCHES}
    table["displacement"] = settings.displacement
    table["b_iso"] = settings.b_per if "b_iso" in settings.groups else "off"
    table["phase_b_iso"] = "phase_b_iso" in settings.groups
    table["adp"] = settings.adp if isinstance(settings.adp, str) else list(settings.adp)
    table["preferred_orientation"] = (
        "off" if po is None or "preferred_orientation" not in settings.groups else po if po == "auto" else list(po)
    )
    table["max_iterations"] = settings.max_iterations
    table["anomalous_dispersion"] = settings.anomalous_dispersion
    table["hydrogens"] = settings.hydrogens
    if settings.hydrogen_parents:
        table["hydrogen_parents"] = dict(settings.hydrogen_parents)
    for correction in settings.corrections:
        if correction.kind == "cylinder":
            table["absorption"] = {"geometry": "cylinder", "mu_r": correction.start[0], "refine": correction.refine}
        else:
            table["surface_roughness"] = correction.kind
    if settings.phases:
        table["phases"] = [p.source for p in settings.phases if p.source]
    if settings.restraints:
        table["restraints"] = [
            {"atoms": list(r.atoms), r.kind: r.target, "sigma": r.sigma} for r in settings.restraints
        ]
    return table
