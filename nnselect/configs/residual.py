"""gasolve's improved setting: ResidualCNN, class-balanced BCE with logits, split by GA run (no leakage)."""

from nnselect.configs import TrainConfig


def get_config() -> TrainConfig:
    """Same schedule and optimiser as the paper's, so that epochs compare one to one."""
    return TrainConfig(
        model="ResidualCNN",
        loss="bce",
        positive_weight="balanced",
        learning_rate=5e-4,
        epochs=100,
        patterns_per_epoch=1200,
        batch_size=50,
        label_radius=0.1,
        split="run",
        seed=0,
    )
