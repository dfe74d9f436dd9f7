"""MultiWorkerMirroredStrategy for real: two Trainer processes on 127.0.0.1 with a TF_CONFIG each.

Both run the real TFX Trainer executor on trainer/module.py (transfer role, a few steps)
with the same output artifacts, as every replica of a multi-worker training job gets them,
and as a Vertex AI CustomJob (kubeflow.multi_worker) starts them: a chief and a worker in
TF_CONFIG, TFX's ai_platform_* keys in the custom_config. They must end with identical
weights; only the chief may write the serving model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests import trainer_fixtures as fx
from trainer.architectures import build_base
from trainer.base_model_file import keras_model_path, save_keras_model
from trainer.devices import shard_policy
from trainer.module import classifier

TIMEOUT_SECONDS = 300

# One worker process: the Trainer executor on artifacts named in argv[1] (JSON).
_WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    from tfx.components.trainer import executor
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.components.util import examples_utils
    from tfx.proto import example_gen_pb2
    from tests.trainer_fixtures import exec_properties
    from trainer.options import TrainerConfig

    job = json.loads(sys.argv[1])

    def artifact(kind, uri):
        result = kind()
        result.uri = uri
        return result

    examples = artifact(standard_artifacts.Examples, job["examples"])
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    inputs = {"examples": [examples],
              "transform_graph": [artifact(standard_artifacts.TransformGraph, job["transform_graph"])],
              "base_model": [artifact(standard_artifacts.Model, job["base_model"])]}
    outputs = {"model": [artifact(standard_artifacts.Model, os.path.join(job["out"], "model"))],
               "model_run": [artifact(standard_artifacts.ModelRun,
                                      os.path.join(job["out"], "model_run"))]}
    properties = exec_properties(TrainerConfig.model_validate(job["config"]))
    properties["custom_config"] = json.dumps({**json.loads(properties["custom_config"]),
                                              **job["vertex_keys"]})
    executor.GenericExecutor().Do(inputs, outputs, properties)
""")


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now; held open together so they are distinct."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


# What TFX's Vertex AI Trainer adds to the custom_config that every replica receives.
VERTEX_KEYS = {"ai_platform_enable_vertex": True, "ai_platform_vertex_region": "europe-west4",
               "ai_platform_training_args": {"project": "my-project", "job_spec": {}}}


def tf_config(ports: list[int], index: int) -> str:
    """TF_CONFIG of process `index` as Vertex AI writes it: 0 is the chief (worker pool 0),
    the others are workers 0, 1, ... (worker pool 1)."""
    hosts = [f"127.0.0.1:{port}" for port in ports]
    task = {"type": "chief", "index": 0} if index == 0 else {"type": "worker", "index": index - 1}
    return json.dumps({"cluster": {"chief": hosts[:1], "worker": hosts[1:]}, "task": task})


def start_workers(job: dict, root: Path, count: int) -> list[subprocess.Popen]:
    """`count` Trainer processes; each gets its own TMPDIR, where a non-chief's model lands."""
    ports = free_ports(count)
    workers = []
    for index in range(count):
        tmp = root / f"tmp-{index}"
        tmp.mkdir()
        env = {**os.environ, "TF_CONFIG": tf_config(ports, index), "TMPDIR": str(tmp),
               "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
        with open(root / f"worker-{index}.log", "w", encoding="utf-8") as log:
            workers.append(subprocess.Popen(
                [sys.executable, "-c", _WORKER_SCRIPT, json.dumps(job)], cwd=fx.PROJECT_ROOT,
                env=env, stdout=log, stderr=subprocess.STDOUT))
    return workers


def wait_all(workers: list[subprocess.Popen], timeout: float) -> list[int]:
    """Exit codes; every worker still running at the deadline, or after one fails, is killed."""
    deadline = time.monotonic() + timeout
    try:
        while any(worker.poll() is None for worker in workers):
            # A failed worker leaves the others blocked in collectives forever.
            if time.monotonic() > deadline or any(worker.poll() for worker in workers):
                break
            time.sleep(1)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    return [worker.returncode for worker in workers]


def checkpoint_values(saved_model: Path) -> dict[str, np.ndarray]:
    """Every variable of a SavedModel, read from its checkpoint."""
    reader = tf.train.load_checkpoint(str(saved_model / "variables" / "variables"))
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "OPTIMIZER_SLOT" not in name and not name.startswith("_CHECKPOINTABLE")}


def untrained_base_model(task: fx.Task, uri: Path) -> str:
    """A pretrain Model artifact holding only the Keras file the transfer reads, of random
    weights: training it first would add a minute and prove nothing more here."""
    config = fx.trainer_config("pretrain", task)
    model, _ = classifier(build_base(config.model, (28, 28, 1)), config)
    save_keras_model(model, keras_model_path(str(uri / "Format-Serving")))
    return str(uri)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Path:
    """Runs the two workers once; returns their shared output root."""
    task = fx.task_b()
    root = tmp_path_factory.mktemp("multiworker")
    # Without the frozen-feature cache: with it (the default) both workers also end equal,
    # but its extraction adds a minute here.
    config = fx.trainer_config("transfer", task, cache_frozen_features=False,
                               frozen={"epochs": 1, "learning_rate": 3e-3},
                               fine_tune={"epochs": 1, "learning_rate": 1e-3, "unfreeze": 1})
    job = {"examples": task.examples.uri, "transform_graph": task.transform_graph.uri,
           "base_model": untrained_base_model(task, root / "pretrain"),
           "out": str(root / "out"), "config": config.model_dump(), "vertex_keys": VERTEX_KEYS}
    codes = wait_all(start_workers(job, root, 2), TIMEOUT_SECONDS)
    logs = "\n".join((root / f"worker-{i}.log").read_text()[-3000:] for i in range(2))
    assert codes == [0, 0], logs
    return root


def test_sharding_falls_back_to_elements_with_fewer_files_than_workers(monkeypatch):
    policy = tf.data.experimental.AutoShardPolicy
    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 0))
    assert (shard_policy(1), shard_policy(2)) == (policy.DATA, policy.AUTO)
    monkeypatch.delenv("TF_CONFIG")
    assert shard_policy(1) == policy.AUTO


@pytest.mark.slow
def test_both_workers_end_with_the_same_weights(two_workers):
    chief_model = two_workers / "out" / "model" / "Format-Serving"
    [worker_model] = [path.parent for path in (two_workers / "tmp-1").rglob("saved_model.pb")]
    chief, worker = checkpoint_values(chief_model), checkpoint_values(worker_model)
    assert sorted(chief) == sorted(worker) and len(chief) > 10
    different = [name for name in chief if not np.array_equal(chief[name], worker[name])]
    assert different == []


@pytest.mark.slow
def test_only_the_chief_writes_the_model_and_logs(two_workers):
    assert not list((two_workers / "tmp-0").glob("worker_model_*"))  # the chief's were real
    saved = list((two_workers / "out" / "model").rglob("saved_model.pb"))
    assert [path.parent.name for path in saved] == ["Format-Serving"]
    run_dir = two_workers / "out" / "model_run"
    assert sorted(path.parent.name for path in run_dir.rglob("history.csv")) == [
        "fine_tune", "frozen"]
    # TensorBoard event files are named ...tfevents.<time>.<host>.<pid>.<n>.v2
    writers = {path.name.split(".")[-3] for path in run_dir.rglob("events.out.tfevents.*")}
    assert len(writers) == 1
