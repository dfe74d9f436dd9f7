"""Bases, heads and augmentation; a Keras application backbone loaded from a local file."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from trainer.architectures import (application_base, assemble, base_layers, build_augmentation,
                                   build_head, cnn_base, count_reused, dense_base,
                                   reusable_layers)
from trainer.base_model_file import load_keras_model, save_keras_model
from trainer.devices import make_deterministic
from trainer.image_inputs import Splits
from trainer.module import classifier, reused_base
from trainer.options import AugmentationConfig, TrainerConfig
from trainer.phases import fine_tune_phase, frozen_phase


def test_dense_base_is_gerons_chapter_11_network():
    base = dense_base((28, 28, 1))
    hidden = base_layers(base)[1:]
    assert base.name == "base" and base_layers(base)[0].name == "flatten"
    assert [layer.units for layer in hidden] == [300, 100, 50, 50, 50]
    assert {layer.activation.__name__ for layer in hidden} == {"selu"}
    assert {type(layer.kernel_initializer).__name__ for layer in hidden} == {"LecunNormal"}


def test_cnn_base_has_three_batchnorm_conv_blocks():
    base = cnn_base((28, 28, 1))
    assert base.output_shape == (None, 128)
    assert [layer.name for layer in base_layers(base)] == [
        "conv1", "bn1", "relu1", "pool1", "conv2", "bn2", "relu2", "pool2",
        "conv3", "bn3", "relu3", "global_pool"]
    assert [[layer.name for layer in unit] for unit in reusable_layers(base)] == [
        ["conv1", "bn1"], ["conv2", "bn2"], ["conv3", "bn3"]]
    assert count_reused(base, "all") == 3 and count_reused(base, 2) == 2
    with pytest.raises(ValueError, match="has 3 layers with weights"):
        count_reused(base, 4)


def test_the_dense_base_counts_its_five_hidden_layers():
    assert count_reused(dense_base((28, 28, 1)), "all") == 5


def test_the_configs_layer_counts_are_the_bases():
    from trainer.options import REUSABLE_LAYERS, ModelConfig

    assert REUSABLE_LAYERS == {"dense": count_reused(dense_base((28, 28, 1)), "all"),
                               "cnn": count_reused(cnn_base((28, 28, 1)), "all")}
    with pytest.raises(ValueError, match="the cnn base has 3 layers with weights, 4 asked"):
        ModelConfig(architecture="cnn", reuse_layers=4)


def test_in_a_branchy_base_each_batchnorm_goes_with_the_conv_it_normalises():
    units = reusable_layers(application_base("resnet50", (32, 32, 3), weights=None))
    # ResNet lists a block's shortcut conv (_0_) before the main path's BatchNorm layers.
    assert len(units) == 53  # the stem, 16 blocks x 3 convs and 4 shortcut convs
    for unit in units:
        conv, *norms = unit
        assert [norm.name for norm in norms] == [conv.name.replace("_conv", "_bn")]


def test_head_pools_feature_maps_and_outputs_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        head = build_head((7, 7, 16), n_classes=3, dropout=0.2)
        assert head(tf.zeros([2, 7, 7, 16])).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert [layer.name for layer in head.layers[1:]] == ["head_pool", "dropout", "probabilities"]


def test_augmentation_acts_in_training_only():
    augmentation = build_augmentation(
        AugmentationConfig(flip="horizontal", rotation=0.1, zoom=0.1, translation=0.1), seed=1)
    assert [type(layer).__name__ for layer in augmentation.layers] == [
        "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation"]
    assert build_augmentation(AugmentationConfig(), seed=1) is None
    base, head = dense_base((28, 28, 1)), build_head((50,), 2, 0.0)
    augmented = assemble(base, head, augmentation)
    plain = assemble(base, head, None)
    images = tf.random.uniform([4, 28, 28, 1], seed=2)
    np.testing.assert_array_equal(augmented(images, training=False), plain(images))
    assert not np.allclose(augmentation(images, training=True), images)


def test_quarter_turns_turn_each_image_by_whole_quarters_in_training_only(tmp_path):
    augmentation = build_augmentation(AugmentationConfig(quarter_turns=True), seed=1)
    images = np.random.default_rng(0).random((64, 5, 5, 1), dtype=np.float32)
    turned = augmentation(images, training=True).numpy()
    turns = [next(k for k in range(4) if np.array_equal(out, np.rot90(image, k)))
             for image, out in zip(images, turned)]  # StopIteration: not a quarter turn
    assert set(turns) == {0, 1, 2, 3}
    np.testing.assert_array_equal(augmentation(images, training=False), images)
    path = str(tmp_path / "model.h5")  # how the pretrain Trainer hands its model on
    save_keras_model(keras.Sequential([keras.Input((5, 5, 1)), augmentation]), path)
    assert "random_quarter_turn" in [layer.name for layer in
                                     load_keras_model(path).layers[0].layers]


@pytest.mark.parametrize("architecture, shape", [("xception", (64, 64, 3)),
                                                 ("mobilenet_v2", (32, 32, 1))])
def test_applications_need_rgb_images_of_their_minimum_size(architecture, shape):
    with pytest.raises(ValueError, match="needs RGB images of at least"):
        application_base(architecture, shape, weights=None)


def test_mobilenet_v2_loads_local_weights_freezes_and_fine_tunes(tmp_path):
    make_deterministic(3)
    source = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                            include_top=False, weights=None, pooling="avg")
    weights_file = str(tmp_path / "mobilenet_v2_0.35.h5")
    source.save_weights(weights_file)
    config = TrainerConfig.model_validate({
        "role": "transfer", "label_names": ["a", "b"],
        "model": {"architecture": "mobilenet_v2", "alpha": 0.35, "weights": weights_file},
        "training": {"batch_size": 8, "frozen": {"epochs": 1, "learning_rate": 1e-2},
                     "fine_tune": {"epochs": 1, "learning_rate": 1e-3, "unfreeze": 10}}})
    base, n_reused = reused_base(config.model, (32, 32, 3), base_model=None)
    assert n_reused == len(reusable_layers(base))
    for loaded, saved in zip(base.weights, source.weights):
        np.testing.assert_array_equal(loaded.numpy(), saved.numpy())

    model, head = classifier(base, config)
    images = tf.random.uniform([16, 32, 32, 3], -1, 1, seed=4)
    labels = tf.constant([0, 1] * 8, tf.int64)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    splits = Splits(train=data, eval=data)
    start = {w.name: w.numpy() for w in base.weights}
    frozen_phase(model, base, head, n_reused, splits, config.training, str(tmp_path), seed=3)
    assert all(np.array_equal(w.numpy(), start[w.name]) for w in base.weights)

    fine_tune_phase(model, base, head, n_reused, splits, config.training, str(tmp_path),
                    config.seed)
    top = {w.name for unit in reusable_layers(base)[-10:] for layer in unit
           if not isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights}
    changed = {w.name for w in base.weights if not np.array_equal(w.numpy(), start[w.name])}
    assert changed and changed <= top
