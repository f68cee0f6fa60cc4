"""A tiny setting for tests: small networks, one short epoch, small batches."""

from nnselect.configs import TrainConfig


def get_config() -> TrainConfig:
    """One epoch of 32 patterns with a small PaperCNN; tests replace the data set path and the model."""
    return TrainConfig(
        model="PaperCNN",
        model_options={"features": [8, 8, 8], "pools": [4, 4, 4], "hidden": [16, 16]},
        loss="mse",
        learning_rate=5e-4,
        epochs=1,
        patterns_per_epoch=32,
        batch_size=8,
        eval_batch_size=16,
        label_radius=0.1,
        split="model",
        validation_size=0,
        transfer_portions=2,
        scale_sample=64,
        seed=0,
    )
