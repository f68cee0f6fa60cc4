"""Real-coded GA operators on periodic genes (fractional coordinates), as pure functions of a NumPy Generator.

Genes live on the circle [0, 1): before mixing two parents the second is unwrapped to the image nearest the
first, and every result is wrapped back. Registries map the names a config uses to the functions.

References: SBX and polynomial mutation, Deb & Agrawal, Complex Systems 9 (1995) 115 and Deb & Goyal (1996);
BLX-α, Eshelman & Schaffer (1993); ranking selection, Baker (1985).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def wrap(genes: np.ndarray) -> np.ndarray:
    """Genes folded into [0, 1)."""
    return genes - np.floor(genes)


def nearest_image(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """``other`` shifted by whole cells to lie within 1/2 of ``reference`` gene by gene."""
    delta = other - reference
    return reference + delta - np.round(delta)


def sbx(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, eta: float = 2.0, **_) -> np.ndarray:
    """Simulated binary crossover; one child per parent pair, shape (n, n_genes)."""
    b = nearest_image(a, b)
    u = rng.random(a.shape)
    beta = np.where(u <= 0.5, (2.0 * u) ** (1.0 / (eta + 1.0)), (1.0 / (2.0 * (1.0 - u))) ** (1.0 / (eta + 1.0)))
    sign = np.where(rng.random(a.shape) < 0.5, -1.0, 1.0)
    return wrap(0.5 * (a + b) + sign * 0.5 * beta * (b - a))


def blx(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, alpha: float = 0.3, **_) -> np.ndarray:
    """BLX-α: uniform in the parents' interval extended by α of its length on both sides."""
    b = nearest_image(a, b)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    span = hi - lo
    return wrap(lo - alpha * span + rng.random(a.shape) * (1.0 + 2.0 * alpha) * span)


def arithmetic(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, **_) -> np.ndarray:
    """Whole arithmetic crossover λa + (1-λ)b with one λ ~ U(0, 1) per child."""
    b = nearest_image(a, b)
    lam = rng.random((a.shape[0], 1))
    return wrap(lam * a + (1.0 - lam) * b)


def uniform_atoms(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, **_) -> np.ndarray:
    """Uniform crossover of whole atoms: each site's (x, y, z) comes from one parent, chosen by a fair coin."""
    n, n_genes = a.shape
    mask = rng.random((n, n_genes // 3)) < 0.5
    return np.where(np.repeat(mask, 3, axis=1), a, b)


def _mutation_mask(rng: np.random.Generator, shape: tuple[int, int], rate: float) -> np.ndarray:
    mask = rng.random(shape) < rate
    forced = rng.integers(0, shape[1], size=shape[0])
    mask[np.arange(shape[0]), forced] = True  # every child changes
    return mask


def gaussian_mutation(rng: np.random.Generator, x: np.ndarray, rate: float, sigma: float, **_) -> np.ndarray:
    """Add N(0, sigma²) (fractional units) to a random subset of genes, with periodic wrap."""
    mask = _mutation_mask(rng, x.shape, rate)
    return wrap(x + mask * rng.normal(0.0, sigma, x.shape))


def polynomial_mutation(rng: np.random.Generator, x: np.ndarray, rate: float, eta: float = 20.0, **_) -> np.ndarray:
    """Deb's polynomial mutation on the circle: steps up to half a cell, density ∝ (1 - |δ|)^eta."""
    mask = _mutation_mask(rng, x.shape, rate)
    u = rng.random(x.shape)
    delta = np.where(u < 0.5, (2.0 * u) ** (1.0 / (eta + 1.0)) - 1.0, 1.0 - (2.0 * (1.0 - u)) ** (1.0 / (eta + 1.0)))
    return wrap(x + mask * 0.5 * delta)


def tournament(rng: np.random.Generator, fitness: np.ndarray, n: int, size: int = 3, **_) -> np.ndarray:
    """Indices of ``n`` winners of tournaments of ``size`` (lower fitness wins)."""
    entrants = rng.integers(0, len(fitness), size=(n, size))
    return entrants[np.arange(n), np.argmin(fitness[entrants], axis=1)]


def rank(rng: np.random.Generator, fitness: np.ndarray, n: int, pressure: float = 1.8, **_) -> np.ndarray:
    """Linear ranking selection (Baker 1985): best expected ``pressure`` copies, worst 2 - pressure."""
    m = len(fitness)
    order = np.argsort(fitness, kind="stable")
    if m == 1:
        return np.zeros(n, dtype=int)
    weights = pressure - (2.0 * pressure - 2.0) * np.arange(m) / (m - 1)
    return order[rng.choice(m, size=n, p=weights / weights.sum())]


Crossover = Callable[..., np.ndarray]
CROSSOVERS: dict[str, Crossover] = {"sbx": sbx, "blx": blx, "arithmetic": arithmetic, "uniform": uniform_atoms}
MUTATIONS: dict[str, Callable[..., np.ndarray]] = {"gaussian": gaussian_mutation, "polynomial": polynomial_mutation}
SELECTIONS: dict[str, Callable[..., np.ndarray]] = {"tournament": tournament, "rank": rank}
