"""Space groups in every common spelling, checked against spglib's and pymatgen's tables, and cells that contradict
the group's metric refused with the key and the expected constraint."""

from __future__ import annotations

import numpy as np
import pytest
import spglib
from pymatgen.symmetry.groups import SpaceGroup as PymatgenSpaceGroup

from gasolve.cli.main import main
from gasolve.config import load_run_config
from gasolve.crystal.cell import UnitCell
from gasolve.crystal.spacegroup import SpaceGroup
from gasolve.errors import InputError


def _operations(rotations, translations) -> set:
    """Operators as a set of (R, t mod 1 in 24ths), comparable across libraries."""
    return {
        (tuple(np.rint(r).astype(int).ravel()), tuple(np.round(np.mod(t, 1.0) * 24).astype(int) % 24))
        for r, t in zip(rotations, translations, strict=True)
    }


def _spglib(hall_number: int) -> set:
    data = spglib.get_symmetry_from_database(hall_number)
    return _operations(data["rotations"], data["translations"])


def _gasolve(symbol) -> set:
    group = SpaceGroup.from_symbol(symbol)
    return _operations(group.rotations, group.translations)


def _origin_choice(choice: str) -> str:
    """':1', ':2', ':H' or ':R' from spglib's setting choice ('2', '1cab', 'H'), else ''."""
    return f":{choice[0]}" if choice and choice[0] in "12HR" else ""


def _e_glide_settings() -> set[int]:
    """Hall numbers whose symbol with an e glide names two settings (Cmme is C m m a and C m m b): ambiguous."""
    seen: dict[str, list[int]] = {}
    for hall in range(1, 531):
        kind = spglib.get_spacegroup_type(hall)
        seen.setdefault(kind.international_full + _origin_choice(kind.choice), []).append(hall)
    return {hall for halls in seen.values() if len(halls) > 1 for hall in halls}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_every_setting_of_spglib_by_hall_symbol_and_by_name():
    ambiguous = _e_glide_settings()
    assert len(ambiguous) == 18  # Cmme, Ccce, Cmce... in pairs of settings; nothing else collides
    for hall in range(1, 531):
        kind = spglib.get_spacegroup_type(hall)
        expected = _spglib(hall)
        assert _gasolve(f"Hall: {kind.hall_symbol}") == expected, (hall, kind.hall_symbol)
        if hall in ambiguous:
            continue
        choice = _origin_choice(kind.choice)
        parts = [part.strip() for part in kind.international.split("=")]
        setting = parts[1] if len(parts) > 1 else parts[0]  # 'P 2_1 = P 1 1 2_1': the setting's own symbol
        for symbol in (setting + choice, kind.international_full + choice):  # 'P 1 1 2_1', 'P 2/m 2/m 2/m'
            assert _gasolve(symbol) == expected, (hall, symbol)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("number", range(1, 231))
def test_standard_names_of_pymatgen_and_spglib(number):
    expected = _gasolve(number)
    pymatgen = PymatgenSpaceGroup.from_int_number(number)
    assert _gasolve(pymatgen.symbol) == expected  # 'P12_1/m1', 'R-3m' (hexagonal axes), 'Fd-3m'
    assert SpaceGroup.from_symbol(pymatgen.symbol).number == number
    standard = next(h for h in range(1, 531) if spglib.get_spacegroup_type(h).number == number)
    short = spglib.get_spacegroup_type(standard).international_short  # 'P2_1/m', the spelling of pymatgen's CIFs
    assert SpaceGroup.from_symbol(short).number == number
    assert len(SpaceGroup.from_symbol(short).rotations) == len(pymatgen.symmetry_ops)


@pytest.mark.parametrize(
    ("spelling", "xhm"),
    [
        ("P2_1/m", "P 1 21/m 1"),
        ("P 21/m", "P 1 21/m 1"),
        ("P121/m1", "P 1 21/m 1"),
        ("P 1 21/m 1", "P 1 21/m 1"),
        ("p21/m", "P 1 21/m 1"),
        ("P 1 21/n 1", "P 1 21/n 1"),
        ("P21/n", "P 1 21/n 1"),
        ("Pbnm", "P b n m"),
        ("P6(3)mc", "P 63 m c"),
        ("P6_3mc", "P 63 m c"),
        ("P 6_{3}/m", "P 63/m"),
        ("P\u22121", "P -1"),
        ("R-3m:H", "R -3 m:H"),
        ("R-3m", "R -3 m:H"),
        ("R3:R", "R 3:R"),
        ("R3m:R", "R 3 m:R"),
        ("Fd-3m", "F d -3 m:2"),  # origin choice 2 (at the inversion centre) unless ':1' is given
        ("Fd-3m:1", "F d -3 m:1"),
        ("-P 2ybc", "P 1 21/c 1"),
        ("Hall: P 2", "P 1 1 2"),  # a Hall symbol that is also a Hermann-Mauguin one needs the prefix
        ("P 2", "P 1 2 1"),
        ("14", "P 1 21/c 1"),
        (62, "P n m a"),
        ("P 21/n 21/m 21/a", "P n m a"),
    ],
)
def test_common_spellings(spelling, xhm):
    assert SpaceGroup.from_symbol(spelling).symbol == xhm


@pytest.mark.parametrize("spelling", ["P7", "Pnmx", "X 1", "P 21/m/2", 231, 0, "", "Hall: Q 2"])
def test_unknown_space_group_names_examples(spelling):
    with pytest.raises(InputError) as error:
        SpaceGroup.from_symbol(spelling)
    message = str(error.value)
    assert repr(spelling) in message or str(spelling) in message
    if not isinstance(spelling, int):
        assert "P2_1/c" in message and "Hall symbol" in message and "1-230" in message


@pytest.mark.parametrize(
    ("symbol", "constraints"),
    [
        ("P1", []),
        ("P2_1/c", ["alpha = 90°", "gamma = 90°"]),
        ("P 1 1 21/b", ["alpha = 90°", "beta = 90°"]),
        ("Pnma", ["alpha = 90°", "beta = 90°", "gamma = 90°"]),
        ("P4/mmm", ["a = b", "alpha = 90°", "beta = 90°", "gamma = 90°"]),
        ("R-3m", ["a = b", "alpha = 90°", "beta = 90°", "gamma = 120°"]),
        ("R-3m:R", ["a = b = c", "alpha = beta = gamma"]),
        ("P6_3/m", ["a = b", "alpha = 90°", "beta = 90°", "gamma = 120°"]),
        ("Fm-3m", ["a = b = c", "alpha = 90°", "beta = 90°", "gamma = 90°"]),
    ],
)
def test_metric_constraints_from_the_operators(symbol, constraints):
    assert SpaceGroup.from_symbol(symbol).metric_constraints() == constraints


@pytest.mark.parametrize(
    ("symbol", "cell", "fits"),
    [
        ("P6_3/m", (9.37, 9.50, 6.88, 90, 90, 120), False),  # the fluoroapatite cell of issue 12, b mistyped
        ("P6_3/m", (9.37, 9.37, 6.88, 90, 90, 120), True),
        ("P6_3/m", (9.37, 9.375, 6.88, 90, 90, 120.005), True),  # within 1e-3 relative and 0.01°
        ("P6_3/m", (9.37, 9.37, 6.88, 90, 90, 120.02), False),
        ("Pnma", (8.48, 5.40, 6.96, 90.5, 90, 90), False),
        ("Pnma", (8.48, 5.40, 6.96, 90, 90, 90), True),
        ("P2_1/c", (7, 8, 9, 90, 100, 90), True),
        ("P2_1/c", (7, 8, 9, 90, 100, 91), False),
        ("Fm-3m", (9.75, 9.75, 9.78, 90, 90, 90), False),
        ("R-3m:R", (7, 7, 7, 80, 80, 80), True),
        ("R-3m:R", (7, 7, 7, 80, 80, 81), False),
        ("R-3m", (7, 7, 7, 80, 80, 80), False),  # rhombohedral axes given for the hexagonal setting
    ],
)
def test_cells_that_contradict_the_group_are_refused(symbol, cell, fits):
    group = SpaceGroup.from_symbol(symbol)
    if fits:
        group.check_cell(UnitCell(*cell))
        return
    with pytest.raises(InputError) as error:
        group.check_cell(UnitCell(*cell))
    message = str(error.value)
    assert "contradicts" in message and ", ".join(group.metric_constraints()) in message


CONFIG = """[structure]
name = "apatite"
cell = [9.37, 9.50, 6.88, 90, 90, 120]
space_group = "P6_3/m"
sites = ["Ca"]
[pattern]
file = "p.xye"
wavelength = "CuKa1"
[pattern.profile]
fwhm = 0.1
eta = 0.5
[output]
dir = "out"
"""


def test_run_refuses_a_contradicting_cell_with_exit_2_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "p.xye").write_text("".join(f"{10 + 0.1 * i:.2f} {100 + i % 7} 10\n" for i in range(200)))
    config = tmp_path / "run.toml"
    config.write_text(CONFIG)
    with pytest.raises(InputError) as error:
        load_run_config(config)
    assert "[structure] cell" in str(error.value) and "a = b" in str(error.value)
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert "run.toml: [structure] cell:" in err and "a = b" in err and "gamma = 120°" in err
    assert not (tmp_path / "out").exists()
    config.write_text(CONFIG.replace('"P6_3/m"', '"P6_3/x"'))
    assert main(["run", str(config)]) == 2
    err = capsys.readouterr().err
    assert "[structure] space_group:" in err and "'P6_3/x'" in err and "P2_1/c" in err


@pytest.mark.parametrize(
    ("number", "bravais"),
    [(2, "aP"), (15, "mC"), (38, "oC"), (41, "oC"), (62, "oP"), (139, "tI"), (143, "hP"), (166, "hR"), (225, "cF")],
)
def test_bravais_symbol(number, bravais):
    """A-centred orthorhombic groups (Amm2 38, Aea2 41) are oC; trigonal groups of a P lattice hP."""
    from gasolve.crystal.spacegroup import bravais_symbol

    assert bravais_symbol(number) == bravais
