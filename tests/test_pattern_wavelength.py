"""The wavelength a pattern file states (headers, GSAS instrument lines, powder CIF) and how commands choose it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import data_path

from gasolve.diffraction.wavelength import choose_radiation, parse_radiation, radiation_spec
from gasolve.errors import InputError
from gasolve.io.patterns import parse_columns, parse_gsas_std, read_pattern
from gasolve.io.stated_wavelength import gsas_instrument_radiation, stated_radiation

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(
    ("header", "lines"),
    [
        (["1.540593"], ((1.540593, 1.0),)),
        (["0.7093 A"], ((0.7093, 1.0),)),
        (["# Calibrated wavelength = 0.413909"], ((0.413909, 1.0),)),
        (["# NAC, lambda 0.413909 A (11bm_gsas.prm): converted"], ((0.413909, 1.0),)),
        (["# Wavelength: 1.5406 Å"], ((1.5406, 1.0),)),
        (["# wavelength CuKa12 (1.540598 Å x1, 1.544430 Å x0.5); pseudo-Voigt"], ((1.540598, 1.0), (1.54443, 0.5))),
        (["# wavelength = MoKa1"], ((parse_radiation("MoKa1").primary, 1.0),)),
        (["# beta-Si3N4, lab Cu Ka1/Ka2 1.5405/1.5443 A (INST_XRY.PRM)"], ((1.5405, 1.0), (1.5443, 0.5))),
        (
            ["INS  1 ICONS  1.540500  1.544300       0.0         0       0.7    0       0.5"],
            ((1.5405, 1.0), (1.5443, 0.5)),
        ),
        (["INS  1 ICONS 0.4139090    0.0000    0.0000               0.990    0     0.500"], ((0.413909, 1.0),)),
    ],
)
def test_header_forms_that_state_a_wavelength(header, lines):
    radiation = stated_radiation(header, first_line_number=True)
    assert radiation is not None
    np.testing.assert_allclose(radiation.lines, lines, atol=1e-7)


@pytest.mark.parametrize(
    "header",
    [
        [],
        ["  10.000   0.025 159.00  CPD RRRR   PbSO4  Cu Ka X-ray data  22.9.89"],  # "Cu Ka" is no wavelength
        ["# converted from PBSO4.XRA by gsas2xy.py: 2theta(deg) intensity esd"],
        ["# energy-dispersive, wavelength dispersive detector"],
        ["# comment", "1.5406"],  # a lone number counts only as the file's first line
    ],
)
def test_headers_that_state_none(header):
    assert stated_radiation(header, first_line_number=False) is None


def test_bad_or_conflicting_header_wavelengths_are_errors():
    with pytest.raises(InputError, match=r"between 0\.1 and 5"):
        stated_radiation(["# wavelength = 12.0"])
    with pytest.raises(InputError, match="two wavelengths"):
        stated_radiation(["# wavelength 1.5406", "# lambda 0.7093 A"])
    with pytest.raises(InputError, match="not a Kα1/Kα2 doublet"):
        stated_radiation(["# Cu Ka 1.5443/1.5405 A"])
    with pytest.raises(InputError, match=r"line 2.*ICONS"):
        gsas_instrument_radiation("INS   HTYPE   PXCR\nINS  1 ICONS  abc\n")


def test_column_files_with_a_lone_first_number_and_a_header():
    pattern = parse_columns("1.540593\n19.0 49 2\n19.02 50 2\n")
    assert pattern.radiation.lines == ((1.540593, 1.0),) and pattern.n_points == 2
    assert parse_columns("19.0 49\n19.02 50\n").radiation is None
    assert parse_columns("6398\n19.0 49\n19.02 50\n").radiation is None  # a point count, not a wavelength
    with pytest.raises(InputError, match="line 2: expected 2 columns"):
        parse_columns("# comment\n1.5406\n19.0 49\n")
    restricted = parse_columns("# wavelength 1.2\n10 1\n11 2\n12 3\n").restrict(10.5, 12)
    assert restricted.radiation.primary == 1.2


def test_gsas_headers_and_eleven_bm_cons_fxye():
    text = (
        "NAC /nov12/11bmb_1804\n# Calibrated wavelength = 0.413909\n"
        "BANK  1    3   3 CONS      50.00      0.10 0 0 FXYE\n"
        "   50  239.9  16.1\n 50.1  244.1  16.2\n 50.2  224.0  15.6\n"
    )
    pattern = parse_gsas_std(text)
    np.testing.assert_allclose(pattern.two_theta, [0.5, 0.501, 0.502])
    assert pattern.radiation.lines == ((0.413909, 1.0),)


def test_gsas_raw_naming_its_instrument_file(tmp_path):
    raw = (EXAMPLES / "PbSO4.xra").read_text().splitlines()
    raw[0] = "Instrument parameter file:INST_XRY.PRM"
    (tmp_path / "p.xra").write_text("\n".join(raw) + "\n")
    assert read_pattern(tmp_path / "p.xra").radiation is None  # the named file is not there
    (tmp_path / "INST_XRY.PRM").write_text(
        "            123456789012345678901234567890123456789012345678901234567890\n"
        "INS   BANK      1\nINS   HTYPE   PXCR\nINS  1 IRAD     3\n"
        "INS  1 ICONS  1.540500  1.544300       0.0         0       0.7    0       0.5\n"
    )
    assert read_pattern(tmp_path / "p.xra").radiation.lines == ((1.5405, 1.0), (1.5443, 0.5))
    assert read_pattern(EXAMPLES / "PbSO4.xra").radiation is None


def test_shipped_files_powder_cif_and_profex_xye():
    cif = read_pattern(data_path("derived/PbSO4_head_pdcif.cif"))
    xye = read_pattern(data_path("measured/PbSO4-lab-CuKa/PBSO4_XRA_converted.xye"))
    # the powder CIF holds the first 40 points of the same pattern, the wavelength in another data block
    np.testing.assert_allclose(cif.two_theta, xye.two_theta[:40], atol=1e-9)
    np.testing.assert_allclose(cif.y_obs, xye.y_obs[:40])
    np.testing.assert_allclose(cif.sigma, np.round(xye.sigma[:40]))
    assert cif.radiation.lines == ((1.5405, 1.0), (1.5443, 0.5)) and xye.radiation is None
    lab6 = read_pattern(data_path("derived/LaB6_riet-serv_head.xye"))
    assert lab6.radiation.lines == ((1.540593, 1.0),) and lab6.n_points == 40 and lab6.two_theta[0] == 19.0098


def test_powder_cif_errors_name_the_file_and_block():
    with pytest.raises(InputError, match="no powder pattern"):
        read_pattern(data_path("derived/mp-554236_Ca5P3ClO12.cif"))
    text = "data_p\n_pd_meas_2theta_range_min 10\n_pd_meas_2theta_range_max 11\n_pd_meas_2theta_range_inc 0.5\n"
    text += "loop_\n_pd_meas_counts_total\n1\n2\n"
    from gasolve.io.pdcif import parse_powder_cif

    with pytest.raises(InputError, match=r"x.cif \(data_p\).*give 3 points.*holds 2"):
        parse_powder_cif(text, "x.cif")


@pytest.mark.parametrize(
    ("relative", "first"),
    [
        ("measured/riet-serv-lab-profiles/LaB6_16_03_09_0004.xye", 1.540593),
        ("measured/riet-serv-lab-profiles/round-robin/CPD-1A.xye", 1.540593),
        ("measured/NAC-11BM-synchrotron/11BM_NAC.fxye", 0.413909),
        ("measured/jadarite-11BM-synchrotron/11bmb_6231.fxye", 0.413529),
        ("measured/Si3N4-two-phase-lab-CuKa/A_SI3N4_XRA_converted.xye", 1.5405),
    ],
)
def test_real_files_state_their_wavelength(relative, first):
    pattern = read_pattern(data_path(relative))
    assert pattern.radiation.primary == first and pattern.n_points > 1000


def test_choose_radiation():
    stated = parse_radiation("CuKa12")
    with pytest.raises(InputError, match=r"f\.xy: the file states no wavelength; pass --wavelength"):
        choose_radiation(None, None, "f.xy")
    assert choose_radiation(stated, None, "f.xy") == (stated, [])
    assert choose_radiation(None, "MoKa1", "f.xy")[0].primary == parse_radiation("MoKa1").primary
    radiation, notes = choose_radiation(stated, "0.7093", "f.xy")
    assert radiation.primary == 0.7093 and len(notes) == 1 and "disagree, using --wavelength" in notes[0]
    radiation, notes = choose_radiation(stated, "CuKa1", "f.xy")  # same Kα1, Kα2 dropped: said, not a conflict
    assert len(radiation.lines) == 1 and len(notes) == 1 and "disagree" not in notes[0]
    assert choose_radiation(parse_radiation(1.540593), "CuKa1", "f.xy")[1] == []


def test_radiation_spec_gives_a_config_value():
    assert radiation_spec(parse_radiation(0.413909)) == (0.413909, 0.5)
    doublet = stated_radiation(["INS  1 ICONS  1.540500  1.544300       0.0         0       0.7    0       0.6"])
    assert radiation_spec(doublet) == ("CuKa12", 0.6)
    with pytest.raises(InputError, match="matches no named"):
        radiation_spec(stated_radiation(["# lambda 1.3/1.305 A"]))


@pytest.mark.slow
def test_classify_reads_the_stated_wavelength_and_says_when_the_flag_disagrees(capsys):
    from gasolve.cli.main import main

    zno = str(EXAMPLES / "symmetry" / "ZnO.xye")  # its header states CuKa12 (gasolve simulate)
    assert main(["classify", zno, "--json", "--no-index"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["radiation"] == [[1.540598, 1.0], [1.54443, 0.5]] and captured.err == ""
    assert main(["classify", zno, "--json", "--no-index", "--wavelength", "1.7890"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["radiation"] == [[1.789, 1.0]] and "disagree, using --wavelength" in captured.err


def test_commands_refuse_a_pattern_without_a_wavelength(tmp_path, capsys):
    from gasolve.cli.main import main

    plain = tmp_path / "plain.xy"
    plain.write_text("".join(f"{10 + 0.02 * i:.2f} {100 + i % 7}\n" for i in range(3000)))
    for command in (["index", str(plain)], ["classify", str(plain)], ["solve", str(plain), "--composition", "ZnO"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert "plain.xy: the file states no wavelength; pass --wavelength" in err and "\n" not in err
