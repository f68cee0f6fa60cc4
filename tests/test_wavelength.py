"""Named X-ray lines: single lines and Kα1+Kα2 doublets, case-insensitive, from ASE's and pymatgen's tables."""

from __future__ import annotations

import pytest
from ase.utils.xrdebye import wavelengths as ase_wavelengths

from gasolve.diffraction.wavelength import KALPHA2_RATIO, doublet_names, named_wavelengths, parse_radiation
from gasolve.errors import InputError

#: Kα1, Kα2 (Å) from Bearden, Rev. Mod. Phys. 39 (1967) 78 (International Tables C, Table 4.2.2.1), an oracle
#: independent of the libraries' tables; agreement within 3e-4 Å (the tables differ in the 5th digit).
BEARDEN = {"Cu": (1.540562, 1.544390), "Mo": (0.709300, 0.713590), "Co": (1.788965, 1.792850)}


@pytest.mark.parametrize("spec", ["MoKa12", "mokA12", "CoKa12", "COKA12", "CuKa12", "cuKα12"])
def test_doublet_names_give_two_lines_with_the_kalpha2_ratio(spec):
    radiation = parse_radiation(spec, kalpha2_ratio=0.47)
    element = spec[:2].capitalize()
    (alpha1, w1), (alpha2, w2) = radiation.lines
    assert radiation.name == f"{element}Ka12"
    assert (w1, w2) == (1.0, 0.47)
    assert alpha1 == pytest.approx(BEARDEN[element][0], abs=3e-4)
    assert alpha2 == pytest.approx(BEARDEN[element][1], abs=3e-4)
    assert radiation.primary == alpha1


@pytest.mark.parametrize(("spec", "element", "line"), [("MoKa1", "Mo", 0), ("moka2", "Mo", 1), ("COKA1", "Co", 0)])
def test_single_lines(spec, element, line):
    radiation = parse_radiation(spec)
    assert len(radiation.lines) == 1
    assert radiation.lines[0] == (pytest.approx(BEARDEN[element][line], abs=3e-4), 1.0)


def test_ase_values_win_for_copper_and_every_kalpha_doublet_is_offered():
    assert parse_radiation("CuKa1").primary == ase_wavelengths["CuKa1"]
    assert parse_radiation("CuKa12").lines == (
        (ase_wavelengths["CuKa1"], 1.0),
        (ase_wavelengths["CuKa2"], KALPHA2_RATIO),
    )
    table = named_wavelengths()
    names = doublet_names(table)
    assert {"CuKa12", "MoKa12", "CoKa12"} <= set(names)
    for name in names:
        (alpha1, _), (alpha2, _) = parse_radiation(name.upper()).lines
        assert alpha1 == table[name[:-1]] and alpha2 == table[name[:-2] + "2"]
        assert 0 < alpha2 - alpha1 < 0.01 * alpha1  # Kα2 slightly longer than Kα1


def test_numbers_and_unknown_names():
    assert parse_radiation("0.7093").lines == ((0.7093, 1.0),)
    assert parse_radiation(1.0).name == "1"
    with pytest.raises(InputError, match=r"unknown wavelength 'MoKa3'.*MoKa12"):
        parse_radiation("MoKa3")
