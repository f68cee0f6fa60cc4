"""X-ray atomic form factors f0: neutral atoms from gemmi's International Tables Vol. C (1992) four-Gaussian
coefficients, ions from xraydb's Waasmaier-Kirfel table.

f0(s) = sum_i a_i exp(-b_i s²) + c with s = sin θ / λ (Å⁻¹); Table 6.1.1.4 of ITC, neutral atoms, as
tabulated in gemmi (``gemmi.Element(symbol).it92``). An ion (a site's species with a charge, as a CIF's
``_atom_site_type_symbol`` Ca2+ or F1- gives it) takes its f0 from the five-Gaussian fit of Waasmaier & Kirfel,
Acta Cryst. A51 (1995) 416, through ``xraydb.f0`` (the table the Rietveld programs use for ions). Neutral atoms keep
IT92 in every part of gasolve; ions are used by the Rietveld refinement (:mod:`gasolve.rietveld`). Anomalous
dispersion is in :mod:`gasolve.diffraction.dispersion`.
"""

from __future__ import annotations

import gemmi
import numpy as np

from gasolve.crystal.structure import element_symbol
from gasolve.errors import InputError


def species_name(element: str, charge: int) -> str:
    """The species symbol of an element and charge as CIF and xraydb write it: 'Ca2+', 'F1-', 'O' (neutral)."""
    if charge == 0:
        return element
    return f"{element}{abs(charge)}{'+' if charge > 0 else '-'}"


def it92_coefficients(element: str) -> tuple[np.ndarray, np.ndarray, float]:
    """IT92 coefficients (a (4,), b (4,) Å², c) of a neutral atom."""
    coefs = gemmi.Element(element_symbol(element)).it92.get_coefs()
    return np.array(coefs[0:4]), np.array(coefs[4:8]), float(coefs[8])


def form_factor(element: str, stol2: np.ndarray) -> np.ndarray:
    """Atomic form factor f0 (electrons) of a neutral atom at (sin θ / λ)² = ``stol2`` (Å⁻², any shape)."""
    a, b, c = it92_coefficients(element)
    stol2 = np.asarray(stol2, dtype=float)
    return np.einsum("i,...i->...", a, np.exp(-np.multiply.outer(stol2, b))) + c


def ion_names(element: str) -> list[str]:
    """The ions of ``element`` in the Waasmaier-Kirfel table (xraydb's names, e.g. ['Ca2+'])."""
    import xraydb

    return [name for name in xraydb.f0_ions(element_symbol(element)) if name != element_symbol(element)]


def species_form_factor(element: str, charge: int, stol2: np.ndarray) -> np.ndarray:
    """f0 (electrons) of an atom (charge 0: IT92, as :func:`form_factor`) or an ion (Waasmaier-Kirfel, xraydb) at
    (sin θ / λ)² = ``stol2`` (Å⁻², any shape).

    Raises
    ------
    InputError
        The table has no such ion; the message lists the ions it has for the element.
    """
    if charge == 0:
        return form_factor(element, stol2)
    import xraydb

    name = species_name(element_symbol(element), int(charge))
    known = ion_names(element)
    if name not in known:
        listed = ", ".join(known) if known else "none"
        raise InputError(
            f"no X-ray form factor for the ion {name} in the Waasmaier-Kirfel table (xraydb); "
            f"its ions of {element_symbol(element)}: {listed}. Give the neutral atom instead"
        )
    stol2 = np.asarray(stol2, dtype=float)
    return np.asarray(xraydb.f0(name, np.sqrt(stol2).ravel()), dtype=float).reshape(stol2.shape)


def check_species(sites, source: str | None = None) -> None:
    """Raise InputError, naming ``source`` (the file) and the site, for a site whose ion the f0 table lacks.

    ``sites``: objects with ``label``, ``element`` and ``charge`` (:class:`gasolve.crystal.structure.Site`).
    """
    for site in sites:
        try:
            species_form_factor(site.element, site.charge, np.zeros(1))
        except InputError as error:
            where = f"{source}: site {site.label}" if source else f"site {site.label}"
            raise InputError(error.message, where) from None


def debye_waller(b_iso: float | np.ndarray, stol2: np.ndarray) -> np.ndarray:
    """Isotropic Debye-Waller factor exp(-B s²), B in Å², s² = (sin θ / λ)² in Å⁻²."""
    return np.exp(-np.multiply.outer(np.asarray(b_iso, dtype=float), np.asarray(stol2, dtype=float)))
