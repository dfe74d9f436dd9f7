"""The two transfer phases on a pretrained cnn: what is frozen stays bit-identical, what is
thawed trains, reused BatchNorm statistics never move while re-initialised ones learn, and
frozen-layer caching changes nothing."""

import logging
import os

import numpy as np
import pytest
import tensorflow_transform as tft

from tests.trainer_fixtures import fn_args, pretrained_cnn, task_b, trainer_config
from trainer.architectures import application_base, base_layers
from trainer.base_model_file import keras_model_path, load_keras_model
from trainer.devices import make_deterministic
from trainer.image_inputs import Splits, training_splits
from trainer.module import classifier, reused_base
from trainer.options import AugmentationConfig, TrainingConfig
from trainer.phases import fine_tune_phase, frozen_bottom, frozen_phase


def setup(tmp_path, model: dict | None = None, **training):
    """A transfer classifier on the pretrained base, its parts and the task-B splits."""
    config = trainer_config("transfer", task_b(), model, **training)
    make_deterministic(config.seed)
    args = fn_args(task_b(), config, str(tmp_path), base_model=pretrained_cnn())
    splits = training_splits(args, tft.TFTransformOutput(args.transform_graph_path),
                             config.training.batch_size, config.seed)
    base, n_reused = reused_base(config.model, (28, 28, 1), args.base_model)
    model, head = classifier(base, config)
    return config, args, splits, model, base, head, n_reused


def weights_by_name(model) -> dict[str, np.ndarray]:
    return {weight.name: weight.numpy().copy() for weight in model.weights}


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if not np.array_equal(before[name], after[name])}


def accuracy(model, splits: Splits) -> float:
    """Eval-split accuracy of `model`, compiled or not."""
    hits = [np.argmax(model(images, training=False), axis=-1) == labels.numpy()
            for images, labels in splits.eval]
    return float(np.mean(np.concatenate(hits)))


def test_frozen_phase_trains_only_the_head(tmp_path):
    config, args, splits, model, base, head, n_reused = setup(
        tmp_path, cache_frozen_features=False)
    base_before, head_before = weights_by_name(base), weights_by_name(head)
    frozen_phase(model, base, head, n_reused, splits, config.training, args.model_run_dir,
                 config.seed)
    assert changed(base_before, weights_by_name(base)) == set()
    assert changed(head_before, weights_by_name(head)) == set(head_before)


def test_fine_tune_trains_the_top_layers_only_and_keeps_batchnorm_statistics(tmp_path):
    config, args, splits, model, base, head, n_reused = setup(tmp_path)
    frozen_phase(model, base, head, n_reused, splits, config.training, args.model_run_dir,
                 config.seed)
    before = weights_by_name(base)
    fine_tune_phase(model, base, head, n_reused, splits, config.training,
                    args.model_run_dir, config.seed)
    # unfreeze=1: the top layer with weights, conv3; its BatchNorm layer bn3 stays frozen.
    assert changed(before, weights_by_name(base)) == {"conv3/kernel:0"}
    assert [layer.name for layer in base_layers(base) if layer.trainable and layer.weights] == [
        "conv3"]


def test_unfreeze_counts_layers_with_weights(tmp_path):
    config, args, splits, model, base, head, n_reused = setup(
        tmp_path, fine_tune={"epochs": 1, "learning_rate": 1e-4, "unfreeze": 2})
    frozen_phase(model, base, head, n_reused, splits, config.training, args.model_run_dir,
                 config.seed)
    before = weights_by_name(base)
    fine_tune_phase(model, base, head, n_reused, splits, config.training,
                    args.model_run_dir, config.seed)
    assert changed(before, weights_by_name(base)) == {"conv2/kernel:0", "conv3/kernel:0"}


def test_partial_reuse_copies_the_bottom_layers_and_trains_the_rest(tmp_path):
    config, args, splits, model, base, head, n_reused = setup(
        tmp_path, model={"reuse_layers": 1})
    pretrained = weights_by_name(
        load_keras_model(keras_model_path(args.base_model)).get_layer("base"))
    start = weights_by_name(base)
    # conv1 and bn1 are reused; blocks 2 and 3 start from random weights.
    assert n_reused == 1
    assert changed(pretrained, start) == {
        name for name in start if name.split("/")[0] in ("conv2", "bn2", "conv3", "bn3")}

    frozen_phase(model, base, head, n_reused, splits, config.training, args.model_run_dir,
                 config.seed)
    after = weights_by_name(base)
    # The fresh layers train as fresh layers, BatchNorm statistics included; the reused
    # BatchNorm keeps its pretrained statistics.
    assert changed(start, after) == {name for name in start if name.split("/")[0] in (
        "conv2", "bn2", "conv3", "bn3")}
    assert {"bn2/moving_mean:0", "bn3/moving_variance:0"} <= changed(start, after)


def test_cached_frozen_phase_matches_uncached(tmp_path, caplog):
    accuracies = {}
    for cache in (False, True):
        config, args, splits, model, base, head, n_reused = setup(
            tmp_path / str(cache), cache_frozen_features=cache,
            frozen={"epochs": 4, "learning_rate": 3e-3})
        base_before = weights_by_name(base)
        with caplog.at_level(logging.INFO, logger="absl"):
            frozen_phase(model, base, head, n_reused, splits, config.training,
                         args.model_run_dir, config.seed)
        assert changed(base_before, weights_by_name(base)) == set()
        accuracies[cache] = accuracy(model, splits)  # the head, back on the base
        assert os.path.exists(os.path.join(args.model_run_dir, "frozen", "history.csv"))
    n_examples = 80 + 60
    assert f"{n_examples * (128 * 4 + 8)} bytes" in caplog.text
    assert accuracies[True] > 0.8
    assert accuracies[True] == pytest.approx(accuracies[False], abs=0.05)


def test_fine_tuning_the_top_trains_on_the_frozen_bottom_computed_once(tmp_path, caplog):
    results = {}
    for cache in (False, True):
        config, args, splits, model, base, head, n_reused = setup(
            tmp_path / str(cache), cache_frozen_features=cache,
            fine_tune={"epochs": 3, "learning_rate": 1e-3, "unfreeze": 1})
        frozen_phase(model, base, head, n_reused, splits, config.training, args.model_run_dir,
                     config.seed)
        before = weights_by_name(base)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="absl"):
            fine_tune_phase(model, base, head, n_reused, splits, config.training,
                            args.model_run_dir, config.seed)
        # conv3 trains either way (and back on the base); its BatchNorm statistics stay.
        assert changed(before, weights_by_name(base)) == {"conv3/kernel:0"}
        results[cache] = accuracy(model, splits), caplog.text
    # Cached: the output of pool2 (7x7x64), the layer below conv3, of 80 + 60 images.
    assert f"{(80 + 60) * (7 * 7 * 64 * 4 + 8)} bytes" in results[True][1]
    assert "Frozen-layer cache" not in results[False][1]
    assert results[True][0] == pytest.approx(results[False][0], abs=0.05)


def test_the_bottom_is_cut_below_a_residual_block_never_inside(tmp_path):
    base = application_base("efficientnet_lite0", (32, 32, 3), weights=None)
    training = TrainingConfig()
    for layer in base_layers(base):
        layer.trainable = layer.name == "block2b_project_conv"
    # Block 2b adds its input back after its projection: the cut is that input, block 2a's
    # output, not the layer below the projection, whose output the add does not read.
    assert frozen_bottom(base, training) is base.get_layer("block2a_project_bn").output
    augmented = training.model_copy(update={"augmentation": AugmentationConfig(flip="vertical")})
    assert frozen_bottom(base, augmented) is None
    assert frozen_bottom(base, training.model_copy(update={"cache_frozen_features": False})) is None


def test_runs_repeat_exactly(tmp_path):
    heads = []
    for run in range(2):
        config, args, splits, model, base, head, n_reused = setup(
            tmp_path / str(run), cache_frozen_features=False)
        frozen_phase(model, base, head, n_reused, splits, config.training,
                     args.model_run_dir, config.seed)
        heads.append(weights_by_name(head))
    assert heads[0].keys() == heads[1].keys()
    assert changed(heads[0], heads[1]) == set()


@pytest.mark.parametrize("start, least_epochs", [(0, 2), (4, 6)])
def test_early_stopping_waits_for_the_warm_up(tmp_path, start, least_epochs):
    """An eval loss that only worsens stops training after `patience` epochs, counted from the
    warm-up's end: the default scratch baseline's protection against stopping on untrained
    BatchNorm statistics."""
    import tf_keras as keras

    from trainer.options import PhaseConfig, TrainingConfig
    from trainer.phases import compile_for, train_callbacks

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    compile_for(model, "adam", 0.05)
    phase = PhaseConfig(epochs=20, learning_rate=0.05, early_stopping_patience=1,
                        early_stopping_start=start)
    history = model.fit(x, y, validation_data=(x, 1 - y), epochs=20, verbose=0,
                        callbacks=train_callbacks("p", phase, TrainingConfig(), str(tmp_path)))
    assert len(history.history["loss"]) == least_epochs


def test_the_default_scratch_baseline_warms_up_before_early_stopping():
    from trainer.options import SCRATCH_WARMUP_EPOCHS, TrainingConfig

    phase = TrainingConfig().scratch_phase()
    assert phase.early_stopping_start == SCRATCH_WARMUP_EPOCHS == 10
    short = TrainingConfig(frozen={"epochs": 1, "learning_rate": 1e-3},
                           fine_tune={"epochs": 2, "learning_rate": 1e-4}).scratch_phase()
    assert short.early_stopping_start == 3
