"""Distribution strategy and precision choices; MirroredStrategy over two logical CPUs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
import tf_keras as keras

from tests.trainer_fixtures import PROJECT_ROOT
from trainer.devices import (choose_strategy, is_chief, make_deterministic, model_dir_for,
                             use_mixed_precision, worker_count)


def test_one_device_uses_the_default_strategy():
    strategy = choose_strategy()
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert is_chief(strategy) and model_dir_for(strategy, "/models/x") == "/models/x"


def test_worker_count_reads_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert worker_count() == 1
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
        "task": {"type": "worker", "index": 0}}))
    assert worker_count() == 3


def test_mixed_precision_only_on_a_gpu():
    assert use_mixed_precision(True) is False  # the test machines have no GPU
    assert keras.mixed_precision.global_policy().name == "float32"


@pytest.mark.parametrize("setting, expected", [
    (None, not tf.config.list_physical_devices("GPU")), (True, True), (False, False)])
def test_determinism_is_a_switch_on_by_default_without_a_gpu(setting, expected):
    from tensorflow.python.framework import config as tf_config

    before = tf_config.is_op_determinism_enabled()
    tf_config.enable_op_determinism()  # what `False` must undo
    if setting is None:
        tf_config.disable_op_determinism()
    try:
        assert make_deterministic(1, setting) is expected  # the test machines have no GPU
        assert tf_config.is_op_determinism_enabled() is expected
    finally:
        (tf_config.enable_op_determinism if before else tf_config.disable_op_determinism)()


# Logical devices must be configured before TensorFlow initialises its devices: a new process.
_MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from trainer.architectures import assemble, build_head, cnn_base
    from trainer.devices import choose_strategy, make_deterministic
    from trainer.image_inputs import Splits
    from trainer.options import TrainingConfig
    from trainer.phases import fine_tune_phase, frozen_phase

    make_deterministic(0)
    strategy = choose_strategy([device.name for device in tf.config.list_logical_devices("CPU")])
    with strategy.scope():
        base = cnn_base((28, 28, 1))
        head = build_head(base.output_shape[1:], 2, 0.0)
        model = assemble(base, head, None)
    images = tf.random.uniform([32, 28, 28, 1], seed=1)
    data = tf.data.Dataset.from_tensor_slices((images, tf.constant([0, 1] * 16, tf.int64)))
    splits = Splits(train=data.batch(16), eval=data.batch(16))
    training = TrainingConfig.model_validate({
        "batch_size": 16, "frozen": {"epochs": 1, "learning_rate": 1e-2},
        "fine_tune": {"epochs": 1, "learning_rate": 1e-2, "unfreeze": 1}})
    start = [w.numpy() for w in model.weights]
    frozen_phase(model, base, head, 3, splits, training, os.environ["RUN_DIR"], 0)
    fine_tune_phase(model, base, head, 3, splits, training, os.environ["RUN_DIR"], 0)
    changed = [w.name for w, s in zip(model.weights, start) if not np.array_equal(w.numpy(), s)]
    print(json.dumps({"strategy": type(strategy).__name__,
                      "replicas": strategy.num_replicas_in_sync,
                      "variable_devices": sorted({v.device for v in head.weights[0].values}),
                      "changed": changed}))
""")


def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path):
    env = {**os.environ, "RUN_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", _MIRRORED_SCRIPT], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["strategy"] == "MirroredStrategy" and report["replicas"] == 2
    assert len(report["variable_devices"]) == 2  # each variable mirrored on both CPUs
    assert set(report["changed"]) == {"probabilities/kernel:0", "probabilities/bias:0",
                                      "conv3/kernel:0"}
