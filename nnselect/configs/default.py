"""The paper's setting: PaperCNN, MSE on sigmoid outputs, Adam 5e-4, 100 epochs of 1,200 patterns, 0.1 Å labels."""

from nnselect.configs import TrainConfig


def get_config() -> TrainConfig:
    """Zaloga et al. (2019) part 2: random 80:20 split by model; the data set path must still be set."""
    return TrainConfig(
        model="PaperCNN",
        loss="mse",
        learning_rate=5e-4,
        epochs=100,
        patterns_per_epoch=1200,
        batch_size=50,
        label_radius=0.1,
        split="model",
        transfer_portions=100,
        seed=0,
    )
