"""Train / validation / test splits of the structures.

* Stratified (Zaloga et al. 2019): for every space group with n members, floor(0.2 n) + 1 go to the test split
  ("plus one", so that rare groups are tested), but never all of them (one stays for training).
* By composition: a share of the chemical systems (sorted element sets) is held out whole, so that no compound of
  a test chemical system, nor any polymorph or near-duplicate of it, is seen in training.

Only real (Materials Project) structures are tested. Synthetic crystals only train, and those whose composition
was drawn from a held-out chemical system are dropped. A validation share of the training structures serves
model selection and temperature scaling; the test splits are never used for either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Splits:
    """Indices (into the data set) of each split, each shape (n,), int64, sorted."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    composition_test: np.ndarray

    def to_dict(self) -> dict[str, list[int]]:
        return {name: getattr(self, name).tolist() for name in ("train", "validation", "test", "composition_test")}


def stratified_test(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the test members: floor(fraction n) + 1 of each class of n > 1 members, at most n - 1.

    Parameters
    ----------
    labels : ndarray, shape (n,), int
    fraction : float
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (n,), bool
    """
    labels = np.asarray(labels)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_test = min(int(np.floor(fraction * len(members))) + 1, len(members) - 1)
        if n_test > 0:
            mask[rng.choice(members, size=n_test, replace=False)] = True
    return mask


def make_splits(
    space_group: np.ndarray,
    chemical_system: np.ndarray,
    is_real: np.ndarray,
    rng: np.random.Generator,
    test_fraction: float = 0.2,
    composition_fraction: float = 0.1,
    validation_fraction: float = 0.05,
) -> Splits:
    """All four splits.

    Parameters
    ----------
    space_group : ndarray, shape (n,), int
    chemical_system : ndarray, shape (n,), str
    is_real : ndarray, shape (n,), bool
        True for Materials Project structures, False for synthetic ones.
    rng : numpy.random.Generator
    test_fraction, composition_fraction, validation_fraction : float

    Returns
    -------
    Splits
    """
    space_group = np.asarray(space_group)
    chemical_system = np.asarray(chemical_system)
    is_real = np.asarray(is_real, dtype=bool)
    systems = np.unique(chemical_system[is_real])
    held = rng.choice(systems, size=round(composition_fraction * len(systems)), replace=False)
    in_held = np.isin(chemical_system, held)
    composition_test = is_real & in_held
    candidates = np.flatnonzero(is_real & ~in_held)
    test = np.zeros(len(space_group), dtype=bool)
    test[candidates[stratified_test(space_group[candidates], test_fraction, rng)]] = True
    train_real = np.flatnonzero(is_real & ~in_held & ~test)
    validation = np.zeros(len(space_group), dtype=bool)
    validation[rng.choice(train_real, size=round(validation_fraction * len(train_real)), replace=False)] = True
    train = (is_real & ~in_held & ~test & ~validation) | (~is_real & ~in_held)
    return Splits(*(np.flatnonzero(m) for m in (train, validation, test, composition_test)))
