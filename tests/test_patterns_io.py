"""Observed-pattern readers: formats, weights, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path

from gasolve.errors import InputError
from gasolve.io.patterns import parse_columns, parse_gsas_std, read_pattern, write_xye


def test_three_columns_with_comments_and_header():
    text = "# a comment\n2theta intensity esd\n10.0 100 10\n10.5 144 12\n! another\n11.0 81 9\n"
    pattern = parse_columns(text)
    np.testing.assert_array_equal(pattern.two_theta, [10.0, 10.5, 11.0])
    np.testing.assert_array_equal(pattern.weights, [1 / 100, 1 / 144, 1 / 81])


def test_two_columns_get_counting_statistics_and_csv_separators():
    pattern = parse_columns("10,100\n10.5,0\n11,49\n")
    np.testing.assert_array_equal(pattern.sigma, [10.0, 1.0, 7.0])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("10 1\n9 2\n", "increase"),
        ("10 1\n10 2\n", "increase"),
        ("10 nan\n11 2\n", "finite"),
        ("10 1 1\n11 2\n", "line 2: expected 3 columns"),
        ("10 1 1 1\n11 2 2 2\n", "expected 2 columns"),
        ("10 1\n11 abc\n", "line 2: expected numbers"),
        ("# only comments\n", "no data"),
        ("10 5 0\n11 5 1\n", "esd must be positive"),
        ("10 5\n", "at least 2 points"),
    ],
)
def test_bad_text_patterns(text, fragment):
    with pytest.raises(InputError, match=fragment) as info:
        parse_columns(text, "bad.xy")
    assert "bad.xy" in str(info.value)


def test_files_empty_binary_missing(tmp_path):
    empty = tmp_path / "empty.xy"
    empty.write_text("")
    binary = tmp_path / "image.dat"
    binary.write_bytes(b"\x89PNG\x00\x00\x01\x02" * 20)
    for path, fragment in [(empty, "empty"), (binary, "binary"), (tmp_path / "none.xye", "cannot read")]:
        with pytest.raises(InputError, match=fragment) as info:
            read_pattern(path)
        assert str(path) in str(info.value)


def test_write_then_read_round_trip(tmp_path):
    path = tmp_path / "p.xye"
    two_theta = np.linspace(5, 10, 11)
    write_xye(path, two_theta, two_theta**2, np.sqrt(two_theta), ["made here"])
    pattern = read_pattern(path)
    np.testing.assert_allclose(pattern.y_obs, two_theta**2, rtol=1e-6)
    assert path.read_text().startswith("# made here")


def test_restrict_range_inside_and_outside():
    pattern = parse_columns("\n".join(f"{5 + 0.5 * i} {i}" for i in range(21)))
    assert pattern.restrict(6, 8).n_points == 5
    with pytest.raises(InputError, match="outside the data"):
        pattern.restrict(4, 8)
    with pytest.raises(InputError, match="empty"):
        pattern.restrict(8, 6)


def test_gsas_std_matches_its_three_column_conversion():
    raw = read_pattern(shared_path("measured/PbSO4-lab-CuKa/PBSO4.XRA"))
    converted = read_pattern(shared_path("measured/PbSO4-lab-CuKa/PBSO4_XRA_converted.xye"))
    assert raw.n_points == 6001
    np.testing.assert_allclose(raw.two_theta, converted.two_theta, atol=1e-9)
    np.testing.assert_array_equal(raw.y_obs, converted.y_obs)
    np.testing.assert_allclose(raw.sigma, converted.sigma, rtol=1e-3)


def test_gsas_std_inline_and_errors():
    text = "title\nBANK 1 4 1 CONST 1000 2.5 0 0 STD\n     100     121      81      64\n"
    pattern = parse_gsas_std(text, "x.gsa")
    np.testing.assert_allclose(pattern.two_theta, [10.0, 10.025, 10.05, 10.075])
    np.testing.assert_array_equal(pattern.sigma, [10, 11, 9, 8])
    with pytest.raises(InputError, match="announces 6 points"):
        parse_gsas_std(text.replace("BANK 1 4", "BANK 1 6"), "x.gsa")
    with pytest.raises(InputError, match="no BANK"):
        parse_gsas_std("nothing here\n", "x.gsa")
