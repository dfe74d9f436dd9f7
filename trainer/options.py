"""What the Trainers do: the `model:` and `training:` sections of a config, and the
custom config each Trainer component receives."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

# Applications: their imagenet weights are Keras' own downloads, except efficientnet_lite0's,
# which `tfx-transfer weights import` converts to a local file.
KERAS_APPLICATIONS = ("mobilenet_v1", "mobilenet_v2", "efficientnet_b0", "efficientnet_lite0",
                      "xception", "resnet50")
NO_KERAS_IMAGENET_WEIGHTS = ("efficientnet_lite0",)
# What `tfx-transfer weights import` converts ImageNet weights for (trainer/weights_import/).
IMPORTABLE_WEIGHTS = ("mobilenet_v1", "efficientnet_lite0")
Architecture = Literal["dense", "cnn", "mobilenet_v1", "mobilenet_v2", "efficientnet_b0",
                       "efficientnet_lite0", "xception", "resnet50"]
Role = Literal["pretrain", "transfer", "scratch"]
# What the pretrain Trainer learns from: the source's labels, or the images alone
# (trainer/pretext.py): reconstructing them, or telling by how much each was turned.
PretrainingMethod = Literal["supervised", "autoencoder", "rotation"]
# Layers with weights (BatchNorm counted with its layer) of the project's own bases: what
# reuse_layers may count up to (tests/test_trainer_architectures.py checks them).
REUSABLE_LAYERS = {"dense": 5, "cnn": 3}
# Early stopping of the default from-scratch baseline waits this many epochs: measured here,
# without it 2 of 4 seeds stopped after 6 epochs on eval losses of untrained BatchNorm
# statistics and scored 50% (chance) on the test split; with it they scored 99.5-99.8%.
SCRATCH_WARMUP_EPOCHS = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """The network: a reusable base (backbone) and a classification head."""

    architecture: Architecture = "cnn"
    weights: str | None = Field(
        default=None,
        description="Applications only: a local .h5 / .weights.h5 file, or 'imagenet', which "
        "downloads Keras' own weights (mobilenet_v1 has them; efficientnet_lite0 does not: "
        "convert its ImageNet weights with `tfx-transfer weights import`). Set, the transfer "
        "Trainer starts from it instead of the pretrain Trainer.")
    reuse_layers: int | Literal["all"] = Field(
        default="all", description="How many of the pretrained base's layers with weights to "
        "reuse, from the bottom, a BatchNorm layer counted with the layer it normalises (the "
        "cnn has 3, the dense base 5); the rest are re-initialised and train as fresh layers.")
    dropout: float = Field(default=0.0, ge=0, lt=1, description="Dropout before the output layer.")
    alpha: float = Field(default=1.0, gt=0, le=2, description="mobilenet_v2 only: width "
                         "multiplier; ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3, 1.4.")

    @model_validator(mode="after")
    def _architecture_specific_fields(self) -> "ModelConfig":
        if self.weights is not None and self.architecture not in KERAS_APPLICATIONS:
            raise ValueError(f"weights: only Keras applications {list(KERAS_APPLICATIONS)} "
                             f"load weights; architecture is {self.architecture!r}")
        if self.weights == "imagenet" and self.architecture in NO_KERAS_IMAGENET_WEIGHTS:
            raise ValueError(f"weights: Keras has no imagenet weights for {self.architecture}; "
                             "convert them with `tfx-transfer weights import --architecture "
                             f"{self.architecture}` and give the file")
        if self.alpha != 1.0 and self.architecture != "mobilenet_v2":
            raise ValueError(f"alpha: only mobilenet_v2 has a width multiplier; "
                             f"architecture is {self.architecture!r}")
        if isinstance(self.reuse_layers, int) and self.reuse_layers < 1:
            raise ValueError("reuse_layers: must be 'all' or a positive number of layers")
        available = REUSABLE_LAYERS.get(self.architecture)
        if isinstance(self.reuse_layers, int) and available and self.reuse_layers > available:
            raise ValueError(f"reuse_layers: the {self.architecture} base has {available} "
                             f"layers with weights, {self.reuse_layers} asked for")
        return self


class PhaseConfig(_Strict):
    """One call to `fit`: how long, how fast, when to stop."""

    epochs: int = Field(ge=0, le=10_000)
    learning_rate: float = Field(ge=1e-10, le=10, description="At least 1e-10: smaller "
                                 "rates are 0 or denormal in float32 and train nothing.")
    early_stopping_patience: int | None = Field(
        default=None, ge=1, description="Stop after this many epochs without eval-loss gain "
        "and restore the best weights; None trains every epoch.")
    early_stopping_start: int = Field(
        default=0, ge=0, description="Epochs before early stopping may stop or pick a best "
        "epoch. A fresh network's BatchNorm moving statistics lag its weights for the first "
        "epochs, so its eval loss then says little (a 200-image from-scratch model scored at "
        "chance when stopped on it).")


class FineTuneConfig(PhaseConfig):
    unfreeze: Annotated[int, Strict(), Field(ge=0)] | Literal["all"] = Field(
        default="all", description="How many of the top reused layers with weights train in "
        "fine-tuning, counted as reuse_layers counts; their BatchNorm layers stay frozen.")


class AugmentationConfig(_Strict):
    """Random image changes applied in training only (inside the model, so a no-op at serving)."""

    flip: Literal["none", "horizontal", "vertical", "horizontal_and_vertical"] = "none"
    rotation: float = Field(default=0.0, ge=0, le=0.5, description="Fraction of a full turn.")
    zoom: float = Field(default=0.0, ge=0, lt=1)
    translation: float = Field(default=0.0, ge=0, lt=1, description="Shift by up to this "
                               "fraction of the height and of the width.")
    quarter_turns: bool = Field(
        default=False, description="Turn each image by 0, 1, 2 or 3 quarter turns at random "
        "(square images): with both flips, all 8 symmetries of a square, for images with no "
        "up or down such as solar cells or micrographs.")

    @property
    def enabled(self) -> bool:
        return (self.flip != "none" or self.rotation > 0 or self.zoom > 0
                or self.translation > 0 or self.quarter_turns)


class TrainingConfig(_Strict):
    batch_size: int = Field(default=32, ge=1, le=65_536)
    optimizer: Literal["adam", "sgd", "rmsprop", "nadam"] = "adam"
    pretrain: PhaseConfig = PhaseConfig(epochs=10, learning_rate=1e-3, early_stopping_patience=3)
    frozen: PhaseConfig = PhaseConfig(epochs=5, learning_rate=3e-3)
    fine_tune: FineTuneConfig = FineTuneConfig(epochs=30, learning_rate=1e-4,
                                               early_stopping_patience=5)
    scratch: PhaseConfig | None = Field(
        default=None, description="None: the transfer budget, frozen + fine_tune epochs at the "
        "frozen learning rate with the fine-tune patience after a warm-up of "
        "SCRATCH_WARMUP_EPOCHS, so the baseline is never starved.")
    cache_frozen_features: bool = Field(
        default=True, description="Train the frozen phase's head on base outputs computed "
        "once, of the images as they are: augmentation, if any, starts with fine-tuning.")
    augmentation: AugmentationConfig = AugmentationConfig()
    mixed_precision: bool = Field(default=False, description="mixed_float16 when a GPU is used.")
    deterministic: bool | None = Field(
        default=None, description="Deterministic TF ops, so a run repeats bit for bit. None: "
        "on without a GPU (cheap on CPU), off with one, where deterministic kernels are slower "
        "and some ops have none.")
    reduce_lr_patience: int | None = Field(default=2, ge=1)

    def scratch_phase(self) -> PhaseConfig:
        """The from-scratch baseline's phase: configured, or the transfer's epoch budget."""
        if self.scratch is not None:
            return self.scratch
        epochs = self.frozen.epochs + self.fine_tune.epochs
        return PhaseConfig(epochs=epochs,
                           learning_rate=self.frozen.learning_rate,
                           early_stopping_patience=self.fine_tune.early_stopping_patience,
                           early_stopping_start=min(SCRATCH_WARMUP_EPOCHS, epochs))


class TrainerConfig(_Strict):
    """The `custom_config` of one Trainer component, and so part of its cache key."""

    role: Role
    model: ModelConfig
    training: TrainingConfig
    label_names: list[str] = Field(description="The classes; empty when pretraining without "
                                   "labels.")
    seed: int = 42
    pretraining: PretrainingMethod = Field(
        default="supervised", description="pretrain role only: what the base learns from.")

    @model_validator(mode="after")
    def _labels_where_needed(self) -> "TrainerConfig":
        if self.role != "pretrain" and self.pretraining != "supervised":
            raise ValueError(f"pretraining: only the pretrain Trainer pretrains; the "
                             f"{self.role} Trainer trains a classifier")
        needs_labels = self.pretraining == "supervised"
        if needs_labels and len(self.label_names) < 2:
            raise ValueError(f"label_names: a classifier needs at least 2, got "
                             f"{self.label_names}")
        if not needs_labels and self.label_names:
            raise ValueError(f"label_names: {self.pretraining} pretraining uses no labels, "
                             f"got {self.label_names}")
        return self

    @classmethod
    def for_role(cls, role: Role, model: ModelConfig, training: TrainingConfig,
                 label_names: list[str], seed: int,
                 pretraining: PretrainingMethod = "supervised") -> "TrainerConfig":
        """The settings `role` reads, with every other one at its default, so changing a
        phase re-runs only the Trainers that train it (e.g. `fine_tune` leaves pretraining
        cached). Scratch's phase is resolved here: by default it derives from the transfer's.
        `pretraining` is the pretrain role's method; other roles train classifiers. A
        label-free pretraining reads no labels and no augmentation (nor, for the
        autoencoder, dropout), so they are left out of its key."""
        defaults, model_defaults = TrainingConfig(), ModelConfig()
        unused: dict[str, object] = {"pretrain": defaults.pretrain, "frozen": defaults.frozen,
                                     "fine_tune": defaults.fine_tune, "scratch": None,
                                     "cache_frozen_features": defaults.cache_frozen_features}
        keep = {"pretrain": ("pretrain",), "transfer": ("frozen", "fine_tune",
                                                        "cache_frozen_features"),
                "scratch": ()}[role]
        updates = {key: value for key, value in unused.items() if key not in keep}
        if role == "scratch":
            updates["scratch"] = training.scratch_phase()
        model_updates = {} if role == "transfer" else {
            "reuse_layers": model_defaults.reuse_layers, "weights": model_defaults.weights}
        pretraining = pretraining if role == "pretrain" else "supervised"
        if pretraining != "supervised":
            label_names = []
            updates["augmentation"] = defaults.augmentation
        if pretraining == "autoencoder":
            model_updates["dropout"] = model_defaults.dropout
        return cls(role=role, model=model.model_copy(update=model_updates),
                   training=training.model_copy(update=updates), label_names=label_names,
                   seed=seed, pretraining=pretraining)
