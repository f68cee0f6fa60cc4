"""The two shipped networks load and predict exactly as when they were trained.

``examples/K4PbO4_nn.msgpack`` (selection network) scores fixed K4SnO4 models on the example's pattern, and
``symnet/data/symnet.msgpack`` (symmetry network) classifies the shipped patterns; both are compared with
``tests/data/shipped_networks_reference.npz``, recorded before the ResidualCNN backbone was shared between the two
packages. A weight put in the wrong place (a renamed or mis-mapped parameter, a changed head) moves the outputs far
beyond the tolerance, which only absorbs float32 differences between machines.

Regenerate the reference (only after a deliberate change of the networks) with
``python tests/test_shipped_networks.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flax")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
REFERENCE = Path(__file__).resolve().parent / "data" / "shipped_networks_reference.npz"
#: float32 networks: summation order differs between CPUs, GPUs, XLA versions and batch sizes (jax 0.10.2 moved
#: the symmetry network's probabilities by up to 1.0e-3 from those recorded with an earlier jax); a misplaced weight
#: or a changed input changes them by far more than this.
ATOL = 3e-3


def _selection_models() -> np.ndarray:
    """The true K4SnO4 structure, 5 copies moved by 0.01 (fractional) and 5 random models, shape (11, 9, 3)."""
    from gasolve.crystal import read_cif

    truth = read_cif(EXAMPLES / "K4SnO4.cif").frac
    rng = np.random.default_rng(20261203)
    near = (truth[None] + rng.normal(0, 0.01, (5, 9, 3))) % 1.0
    far = rng.random((5, 9, 3))
    return np.concatenate([truth[None] % 1.0, near, far])


def selection_probabilities(frac: np.ndarray) -> np.ndarray:
    """Per-site probabilities of the shipped selection network on K4SnO4 models, shape (n_models, 9)."""
    from gasolve.config import load_observed, load_run_config
    from gasolve.scoring import ScoringProblem
    from nnselect.selector import SiteSelector

    config = load_run_config(EXAMPLES / "K4SnO4.toml")
    s, p = config.structure, config.pattern
    problem = ScoringProblem.build(
        s.cell, s.space_group, list(s.sites), load_observed(config), p.radiation, p.profile, p.background_terms
    )
    selector = SiteSelector(EXAMPLES / "K4PbO4_nn.msgpack", problem, batch_size=8)
    return selector.probabilities(frac).astype(np.float64)


def _pattern_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.xye")) + sorted((EXAMPLES / "symmetry").glob("*.xye"))


def symmetry_probabilities(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated crystal-system (n, 7) and space-group (n, 230) probabilities of the shipped symmetry network."""
    from gasolve.diffraction.wavelength import parse_radiation
    from gasolve.io.patterns import read_pattern
    from symnet.classify import Classifier, pattern_input

    classifier = Classifier()
    wavelength = parse_radiation("CuKa1").primary
    patterns = [read_pattern(path) for path in files]
    inputs = np.stack([pattern_input(p.two_theta, p.y_obs, wavelength, classifier.grid, p.source) for p in patterns])
    results = classifier.classify_inputs(inputs)
    return (
        np.stack([r.system_probabilities for r in results]).astype(np.float64),
        np.stack([r.space_group_probabilities for r in results]).astype(np.float64),
    )


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


def test_shipped_selection_network_predicts_as_recorded(reference):
    frac = _selection_models()
    np.testing.assert_allclose(frac, reference["selection_frac"], rtol=0, atol=1e-12)
    probabilities = selection_probabilities(frac)
    np.testing.assert_allclose(probabilities, reference["selection_probabilities"], rtol=0, atol=ATOL)
    # The reference itself is meaningful: the truth scores far above the random models.
    assert probabilities[0].mean() > 0.5 > 0.05 > probabilities[6:].mean()


def test_shipped_symmetry_network_predicts_as_recorded(reference):
    files = _pattern_files()
    assert [str(f.relative_to(ROOT)) for f in files] == list(reference["symmetry_files"])
    p_system, p_group = symmetry_probabilities(files)
    np.testing.assert_allclose(p_system, reference["symmetry_system_probabilities"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(p_group, reference["symmetry_space_group_probabilities"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(p_system.sum(axis=1), 1.0, atol=1e-5)


def _write_reference() -> None:
    frac = _selection_models()
    files = _pattern_files()
    p_system, p_group = symmetry_probabilities(files)
    np.savez_compressed(
        REFERENCE,
        selection_frac=frac,
        selection_probabilities=selection_probabilities(frac),
        symmetry_files=np.array([str(f.relative_to(ROOT)) for f in files]),
        symmetry_system_probabilities=p_system,
        symmetry_space_group_probabilities=p_group,
    )
    print(f"wrote {REFERENCE}")


if __name__ == "__main__":
    _write_reference()
