"""The Trainer module file: `run_fn`, shared by the three Trainers, which differ in role.

- pretrain: trains the architecture on the source task, or on a task without labels
  (trainer/pretext.py: autoencoder, rotation); also leaves a Keras H5 copy.
- transfer: reuses a pretrained base (from fn_args.base_model, or model.weights for a Keras
  application) under a new head: frozen phase, then fine-tune phase (see trainer/phases.py).
- scratch: the same architecture and head from random weights, on the same target data:
  the honest baseline the transfer must beat.

Outputs: the serving SavedModel in fn_args.serving_model_dir (trainer/serving_signatures.py;
a label-free pretraining exports its encoder), per-phase TensorBoard logs and history.csv
under fn_args.model_run_dir.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from trainer.architectures import (ImageShape, assemble, build_augmentation, build_base,
                                   build_head, copy_bottom_layers, count_reused)
from trainer.base_model_file import keras_model_path, load_keras_model, save_keras_model
from trainer.devices import (choose_strategy, is_chief, make_deterministic,
                             model_dir_for, sync_workers, use_mixed_precision)
from trainer.image_inputs import Splits, image_shape, training_splits
from trainer.options import ModelConfig, TrainerConfig
from trainer.phases import CLASSIFIER_LOSS, fine_tune_phase, fit, frozen_phase
from trainer.pretext import pretext_model, pretext_splits
from trainer.serving_signatures import export_encoder, export_serving_model


def classifier(base: keras.Model, config: TrainerConfig) -> tuple[keras.Model, keras.Model]:
    """The full model on `base` with a new head, and that head."""
    head = build_head(base.output_shape[1:], len(config.label_names), config.model.dropout)
    augmentation = build_augmentation(config.training.augmentation, config.seed)
    return assemble(base, head, augmentation), head


def pretrained_base(model_config: ModelConfig, input_shape: ImageShape,
                    base_model: str | None) -> keras.Model:
    """The base to reuse: a Keras application with `model.weights`, else the pretrain model's."""
    if model_config.weights is not None:
        return build_base(model_config, input_shape, weights=model_config.weights)
    if base_model is None:
        raise ValueError("the transfer Trainer needs base_model (a pretrain Trainer's model) "
                         "or model.weights (Keras applications)")
    return load_keras_model(keras_model_path(base_model)).get_layer("base")


def reused_base(model_config: ModelConfig, input_shape: ImageShape,
                base_model: str | None) -> tuple[keras.Model, int]:
    """A fresh base whose bottom `reuse_layers` layers carry the pretrained weights, and
    their number; the layers above stay randomly initialised."""
    base = build_base(model_config, input_shape)
    n_reused = count_reused(base, model_config.reuse_layers)
    copy_bottom_layers(pretrained_base(model_config, input_shape, base_model), base, n_reused)
    logging.info("Reusing %d pretrained layers of the %s base", n_reused,
                 model_config.architecture)
    return base, n_reused


def pretrain(config: TrainerConfig, fn_args: FnArgs, splits: Splits, input_shape: ImageShape,
             strategy: tf.distribute.Strategy) -> keras.Model:
    """Train the whole architecture on the source task, or on a pretext task of its images."""
    supervised = config.pretraining == "supervised"
    with strategy.scope():
        base = build_base(config.model, input_shape)
        model, loss = (classifier(base, config)[0], CLASSIFIER_LOSS) if supervised else (
            pretext_model(config.pretraining, base, input_shape, config.model.dropout))
    fit(model, splits if supervised else pretext_splits(config.pretraining, splits),
        "pretrain", config.training.pretrain, config.training, fn_args.model_run_dir, loss)
    return model


def transfer(config: TrainerConfig, fn_args: FnArgs, splits: Splits, input_shape: ImageShape,
             strategy: tf.distribute.Strategy) -> keras.Model:
    """Reuse the pretrained base under a new head: frozen phase, then fine-tune phase."""
    with strategy.scope():
        base, n_reused = reused_base(config.model, input_shape, fn_args.base_model)
        model, head = classifier(base, config)
    frozen_phase(model, base, head, n_reused, splits, config.training, fn_args.model_run_dir,
                 config.seed)
    fine_tune_phase(model, base, head, n_reused, splits, config.training,
                    fn_args.model_run_dir, config.seed)
    return model


def scratch(config: TrainerConfig, fn_args: FnArgs, splits: Splits, input_shape: ImageShape,
            strategy: tf.distribute.Strategy) -> keras.Model:
    """The baseline: the transfer model's architecture from random weights, one phase."""
    with strategy.scope():
        model, _ = classifier(build_base(config.model, input_shape), config)
    fit(model, splits, "scratch", config.training.scratch_phase(), config.training,
        fn_args.model_run_dir)
    return model


_ROLES = {"pretrain": pretrain, "transfer": transfer, "scratch": scratch}


def trainer_config(custom_config: dict) -> TrainerConfig:
    """The Trainer's custom_config; TFX's Vertex AI Trainer hands every replica its own keys
    (ai_platform_*) beside ours."""
    return TrainerConfig.model_validate({key: value for key, value in custom_config.items()
                                         if not key.startswith("ai_platform_")})


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point; fn_args.custom_config is a TrainerConfig dump."""
    config = trainer_config(fn_args.custom_config)
    strategy = choose_strategy()  # First: a multi-worker strategy must precede other TF calls.
    make_deterministic(config.seed, config.training.deterministic)
    use_mixed_precision(config.training.mixed_precision)
    # Every worker of a cluster trains and logs, but only the chief's logs are kept.
    fn_args.model_run_dir = model_dir_for(strategy, fn_args.model_run_dir)
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    splits = training_splits(fn_args, tft_output, config.training.batch_size, config.seed)

    model = _ROLES[config.role](config, fn_args, splits, image_shape(tft_output), strategy)

    # H5 first: exporting attaches the Transform layer, which H5 cannot hold.
    if config.role == "pretrain" and is_chief(strategy):
        save_keras_model(model, keras_model_path(fn_args.serving_model_dir))
    export_dir = model_dir_for(strategy, fn_args.serving_model_dir)
    if config.pretraining == "supervised":
        export_serving_model(model, tft_output, config.label_names, export_dir)
    else:
        export_encoder(model.get_layer("base"), tft_output, export_dir)
    # TFX checks, on every worker, that the model exists: wait until the chief wrote it.
    sync_workers(strategy)
    logging.info("%s model written to %s", config.role, fn_args.serving_model_dir)
