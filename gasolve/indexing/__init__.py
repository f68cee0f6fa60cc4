"""Powder indexing: unit cells from the positions of a pattern's lines (successive dichotomy, DICVOL)."""
