"""File formats: powder patterns (text columns, GSAS STD)."""

from gasolve.io.patterns import ObservedPattern, parse_columns, parse_gsas_std, read_pattern, write_xye

__all__ = ["ObservedPattern", "parse_columns", "parse_gsas_std", "read_pattern", "write_xye"]
