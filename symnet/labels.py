"""Space-group labels: numbers 1-230, short Hermann-Mauguin symbols and the seven crystal systems (from gemmi).

The crystal-system order is the paper's Table 2 order: triclinic, monoclinic, orthorhombic, trigonal (the paper's
"rhombohedral"), hexagonal, tetragonal, cubic. Class indices are 0-based: space group ``n`` is class ``n - 1``.
"""

from __future__ import annotations

import re
from functools import cache

import gemmi
import numpy as np

#: Crystal systems in the paper's Table 2 order (class index = position).
CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "trigonal", "hexagonal", "tetragonal", "cubic")
N_SYSTEMS = len(CRYSTAL_SYSTEMS)
N_SPACE_GROUPS = 230


@cache
def _system_of_group() -> np.ndarray:
    table = np.empty(N_SPACE_GROUPS, dtype=np.int64)
    for number in range(1, N_SPACE_GROUPS + 1):
        name = gemmi.find_spacegroup_by_number(number).crystal_system_str()
        table[number - 1] = CRYSTAL_SYSTEMS.index(name)
    table.setflags(write=False)
    return table


def crystal_system_index(space_group: np.ndarray | int) -> np.ndarray:
    """Crystal-system class (0-6, :data:`CRYSTAL_SYSTEMS`) of space-group numbers 1-230, same shape."""
    number = np.asarray(space_group, dtype=np.int64)
    if np.any((number < 1) | (number > N_SPACE_GROUPS)):
        raise ValueError("space-group numbers must lie in 1-230")
    return _system_of_group()[number - 1]


def system_of_group_matrix() -> np.ndarray:
    """One-hot map from space-group class to crystal-system class, shape (230, 7), float32."""
    matrix = np.zeros((N_SPACE_GROUPS, N_SYSTEMS), dtype=np.float32)
    matrix[np.arange(N_SPACE_GROUPS), _system_of_group()] = 1.0
    return matrix


@cache
def space_group_symbol(number: int) -> str:
    """Short Hermann-Mauguin symbol with screw axes written ``2_1`` (e.g. 14 -> ``'P2_1/c'``, 62 -> ``'Pnma'``)."""
    group = gemmi.find_spacegroup_by_number(int(number))
    tokens = group.hm.split()
    if 3 <= group.number <= 15:  # monoclinic: the short symbol drops the unit axes (P 1 21/c 1 -> P21/c)
        tokens = [tokens[0]] + [t for t in tokens[1:] if t != "1"]
    screw = re.compile(r"^(\d)(\d)")
    return "".join(screw.sub(lambda m: f"{m[1]}_{m[2]}" if m[2] < m[1] else m[0], t) for t in tokens)
