"""Where training runs: distribution strategy, mixed precision, seeds, who writes the model."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Sequence

import tensorflow as tf
import tf_keras as keras
from absl import logging


def worker_count() -> int:
    """Workers (chief included) named by TF_CONFIG; 1 when it is unset."""
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


def choose_strategy(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """MultiWorkerMirrored for a TF_CONFIG cluster, Mirrored over several `devices` (default:
    the visible GPUs), else the default one-device strategy."""
    if worker_count() > 1:
        strategy: tf.distribute.Strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        devices = list(devices) if devices is not None else [
            device.name for device in tf.config.list_logical_devices("GPU")]
        strategy = (tf.distribute.MirroredStrategy(devices) if len(devices) > 1
                    else tf.distribute.get_strategy())
    logging.info("Training with %s on %d replica(s)", type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    return strategy


def use_mixed_precision(requested: bool) -> bool:
    """mixed_float16 when requested and a GPU is present (CPUs only get slower); else float32."""
    enabled = requested and bool(tf.config.list_physical_devices("GPU"))
    # Always set: the policy is process-global and must not leak from an earlier run.
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")
    return enabled


def make_deterministic(seed: int, deterministic: bool | None = None) -> bool:
    """Seed Python, NumPy and TensorFlow; with `deterministic` (None: when no GPU is visible,
    where it costs little) also make TF ops deterministic, so runs repeat bit for bit.
    Returns whether ops were made deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic is None:
        deterministic = not tf.config.list_physical_devices("GPU")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    else:  # also when an earlier run of this process turned it on
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    return deterministic


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model: always, except on non-chief cluster workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def shard_policy(num_files: int) -> tf.data.experimental.AutoShardPolicy:
    """How a multi-worker strategy splits a dataset of `num_files` files among the workers.

    By file (AUTO) when every worker gets one, so each byte is read once; else by element
    (DATA: every worker reads all and keeps its share). AUTO alone would fail there: it
    refuses FILE sharding with fewer files than workers instead of falling back.
    """
    if num_files >= worker_count():
        return tf.data.experimental.AutoShardPolicy.AUTO
    return tf.data.experimental.AutoShardPolicy.DATA


def sync_workers(strategy: tf.distribute.Strategy) -> None:
    """Return once every worker got here (an all-reduce); at once without a cluster."""
    if worker_count() > 1:
        strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.constant, (1.0,)), axis=None)


def model_dir_for(strategy: tf.distribute.Strategy, model_dir: str) -> str:
    """`model_dir` on the chief; a throw-away directory elsewhere, since every worker of a
    multi-worker strategy must save (saving runs collective ops) but only one may publish."""
    return model_dir if is_chief(strategy) else tempfile.mkdtemp(prefix="worker_model_")
