"""Accuracy of the symmetry network: both held-out splits, the paper's Table 2 and Fig. 2, measured RRUFF patterns.

Usage::

    python benchmarks/symmetry_accuracy.py [--checkpoint PATH] [--rruff PATH] [--eval-size N] [--json PATH]

``run_benchmark`` rebuilds the splits of the training run from the config stored in the checkpoint (same data
folder, same seed), renders every structure of both test splits twice, as calculated patterns exactly as in the
paper (Cu Kα1, constant FWHM 0.1°, η 0.5, linear background, no noise) and as augmented ones (random
instrument, noise, background, 2θ range; :mod:`symnet.augment`), and measures top-1 / top-5 accuracy of both
heads with the calibrated probabilities. On the stratified split it also gives the crystal-system confusion
matrix in the paper's Table 2 form and the accuracy per space group (the paper's Fig. 2). Then it classifies the
454 measured RRUFF patterns of ``shared/data/rruff-dev`` (Cu Kα, λ 1.5418 Å, 5-90°), resampled onto the
network's grid through d-spacing, and reports the same figures, plus the share of patterns on which the network
abstains and its accuracy on the others. Writes ``benchmarks/results/symmetry_accuracy.json`` (config, seeds,
versions, machine); ``benchmarks/plot_symmetry.py`` draws the figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results"
RRUFF = REPO.parent / "shared" / "data" / "rruff-dev" / "rruff_dev.npz"
#: Wavelength of the RRUFF patterns (Å), as packaged by Salgado et al. (2023).
RRUFF_WAVELENGTH = 1.5418
#: Published figures the issue compares with (crystal system, space group; top-1).
REFERENCES = {
    "Zaloga et al. 2019 (ICSD calculated, 20% test)": [0.879, 0.772],
    "Park et al. 2017 (ICSD calculated)": [0.9499, 0.8114],
    "AlphaDiffract 2026 (RRUFF measured)": [0.817, 0.662],
}
TARGETS = {"calculated": [0.95, 0.82], "rruff": [0.82, 0.66]}


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """Counts, rows true and columns predicted, shape (n, n)."""
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def metrics(p_system: np.ndarray, p_group: np.ndarray, system: np.ndarray, group: np.ndarray) -> dict:
    """Top-1/top-5 of both heads, and the crystal system implied by the space-group head."""
    from symnet.calibration import top_k_accuracy
    from symnet.labels import system_of_group_matrix

    implied = p_group @ system_of_group_matrix()
    return {
        "n": len(system),
        "system_top1": top_k_accuracy(p_system, system, 1),
        "system_top2": top_k_accuracy(p_system, system, 2),
        "system_from_space_group_top1": top_k_accuracy(implied, system, 1),
        "space_group_top1": top_k_accuracy(p_group, group, 1),
        "space_group_top5": top_k_accuracy(p_group, group, 5),
    }


def abstention(p_group: np.ndarray, group: np.ndarray, threshold: float) -> dict:
    """Share of patterns answered (top probability >= threshold) and the space-group accuracy on them."""
    answered = p_group.max(axis=1) >= threshold
    correct = p_group.argmax(axis=1) == group
    return {
        "threshold": threshold,
        "answered": float(answered.mean()),
        "space_group_top1_answered": float(correct[answered].mean()) if answered.any() else None,
    }


def load_rruff(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(two_theta (8500,), intensity (454, 8500), space group (454,)) of the RRUFF development set."""
    with np.load(path) as data:
        return data["two_theta"], data["intensity"], data["space_group"].astype(np.int64)


def run_benchmark(
    checkpoint_path: Path | None = None, rruff_path: Path = RRUFF, eval_size: int = 0, progress: bool = True
) -> dict:
    """Measure a checkpoint; returns the result dict (see the module docstring)."""
    from benchmarks.convergence import machine_info
    from benchmarks.provenance import versions
    from symnet.calibration import softmax
    from symnet.classify import Classifier, pattern_input
    from symnet.configs import SymmetryConfig
    from symnet.labels import N_SPACE_GROUPS, N_SYSTEMS, crystal_system_index
    from symnet.pipeline import labels_of
    from symnet.train import fixed_inputs, load_data, predict_logits, subsample

    started = time.time()
    classifier = Classifier(checkpoint_path)
    meta = classifier.meta
    config = SymmetryConfig.from_dict(meta.config)
    grid = classifier.grid
    peaks, _, splits = load_data(config)

    def probabilities(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, g = predict_logits(classifier.model, inputs)
        return softmax(s, meta.temperature_system), softmax(g, meta.temperature_space_group)

    result: dict = {
        "checkpoint": str(classifier.path),
        "model": meta.model,
        "model_options": meta.model_options,
        "grid": meta.grid,
        "temperatures": [meta.temperature_system, meta.temperature_space_group],
        "training": meta.info,
        "splits": {k: len(v) for k, v in splits.to_dict().items()},
        "eval_size": eval_size,
        "references": REFERENCES,
        "targets": TARGETS,
    }
    for name, index in (("test", splits.test), ("composition_test", splits.composition_test)):
        index = subsample(index, eval_size, config.train.seed + 3)
        system, group = labels_of(peaks, index)
        for k, (kind, paper) in enumerate((("calculated", True), ("augmented", False))):
            p_system, p_group = probabilities(fixed_inputs(peaks, index, grid, config, 20 + k, paper))
            entry = metrics(p_system, p_group, system, group)
            entry["abstention"] = abstention(p_group, group, meta.abstain_threshold)
            if name == "test" and kind == "calculated":
                entry["confusion_system"] = confusion_matrix(system, p_system.argmax(1), N_SYSTEMS).tolist()
                correct = p_group.argmax(1) == group
                entry["per_space_group"] = {
                    "n": np.bincount(group, minlength=N_SPACE_GROUPS).tolist(),
                    "correct": np.bincount(group, weights=correct, minlength=N_SPACE_GROUPS).astype(int).tolist(),
                    "train_n": np.bincount(peaks.space_group[splits.train] - 1, minlength=N_SPACE_GROUPS).tolist(),
                }
            result[f"{name}_{kind}"] = entry
            if progress:
                print(f"{name} {kind}: {json.dumps({k: v for k, v in entry.items() if 'top' in k})}", flush=True)
    if rruff_path is not None and Path(rruff_path).is_file():
        two_theta, intensity, space_group = load_rruff(Path(rruff_path))
        inputs = np.stack([pattern_input(two_theta, y, RRUFF_WAVELENGTH, grid, "rruff") for y in intensity])
        p_system, p_group = probabilities(inputs)
        system, group = crystal_system_index(space_group), space_group - 1
        entry = metrics(p_system, p_group, system, group)
        entry["abstention"] = abstention(p_group, group, meta.abstain_threshold)
        entry["confusion_system"] = confusion_matrix(system, p_system.argmax(1), N_SYSTEMS).tolist()
        entry["wavelength"] = RRUFF_WAVELENGTH
        result["rruff"] = entry
        if progress:
            print(f"rruff: {json.dumps({k: v for k, v in entry.items() if 'top' in k})}", flush=True)
    result["seconds"] = time.time() - started
    result["versions"] = versions("jax", "flax", "optax", "pyxtal", "gemmi")
    result["machine"] = machine_info()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="default: the checkpoint shipped with gasolve")
    parser.add_argument("--rruff", type=Path, default=RRUFF)
    parser.add_argument("--eval-size", type=int, default=0, help="structures per test split (0: all)")
    parser.add_argument("--json", type=Path, default=RESULTS / "symmetry_accuracy.json")
    args = parser.parse_args(argv)
    result = run_benchmark(args.checkpoint, args.rruff, args.eval_size)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
