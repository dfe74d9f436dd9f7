"""Multi-worker Trainers on Kubeflow: compiled to TFX's Vertex AI Trainer, whose pod launches a
CustomJob of one chief and N-1 workers. No cluster here: the compiled spec is read back, and
the CustomJob request TFX's own Vertex client builds from it is parsed by the Vertex AI client
library's CustomJob type; the replicas' run_fn accepts the config it is handed."""

from __future__ import annotations

import json

import pytest
from google.cloud.aiplatform_v1.types.custom_job import CustomJob
from tfx.extensions.google_cloud_ai_platform import training_clients
from tfx.types import standard_artifacts

from pipeline.kubeflow_config import MultiWorkerTraining
from pipeline.config import ConfigError, load_config
from tests.kubeflow_helpers import EXAMPLE, TRAINERS, parse_args, read_package
from trainer.module import trainer_config

MULTI_WORKER = "kubeflow.multi_worker={project: my-project, region: europe-west4, replicas: 4}"
# The replicas see the Trainer's artifacts only through Vertex's /gcs/ mount.
GCS_ROOT = "kubeflow.pipeline_root=gs://my-bucket/tfx-transfer/root"
VERTEX_EXECUTOR = "tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor"
TFX_EXECUTOR = "tfx.components.trainer.executor.GenericExecutor"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    output = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    args = parse_args(["compile", "-c", EXAMPLE, "--set", MULTI_WORKER, "--set", GCS_ROOT,
                       "-o", str(output)])
    assert args.handler(args) == 0
    return load_config(EXAMPLE, [MULTI_WORKER, GCS_ROOT]), *read_package(output)


def executor_of(deployment, task: str):
    return deployment.executors[f"{task}_executor"].container


def custom_config_of(spec, task: str) -> dict:
    parameters = spec.root.dag.tasks[task.replace("_", "-")].inputs.parameters
    return json.loads(parameters["custom_config"].runtime_value.constant.string_value)


def test_only_the_named_trainer_launches_a_custom_job(compiled):
    _, spec, deployment = compiled
    classes = {task: list(executor_of(deployment, task).args)[1] for task in TRAINERS}
    assert classes == {"pretrain_trainer": VERTEX_EXECUTOR, "transfer_trainer": TFX_EXECUTOR,
                       "scratch_trainer": TFX_EXECUTOR}
    assert not any(key.startswith("ai_platform_") for key in custom_config_of(
        spec, "transfer_trainer"))


def test_the_launcher_pod_is_small_and_the_gpus_go_to_the_replicas(compiled):
    _, spec, deployment = compiled
    launcher = executor_of(deployment, "pretrain_trainer").resources
    assert (launcher.cpu_limit, launcher.memory_limit) == (1, 2)
    assert not launcher.HasField("accelerator")
    assert executor_of(deployment, "transfer_trainer").resources.accelerator.count == 1
    pools = custom_config_of(spec, "pretrain_trainer")["ai_platform_training_args"][
        "job_spec"]["worker_pool_specs"]
    assert [pool["replica_count"] for pool in pools] == [1, 3]
    assert {pool["machine_spec"]["accelerator_type"] for pool in pools} == {"NVIDIA_TESLA_T4"}


def test_tfx_builds_a_valid_custom_job_from_the_compiled_config(compiled):
    config, spec, _ = compiled
    custom_config = custom_config_of(spec, "pretrain_trainer")
    assert custom_config["ai_platform_enable_vertex"] is True
    assert custom_config["ai_platform_vertex_region"] == "europe-west4"
    job_args = dict(custom_config["ai_platform_training_args"])
    assert job_args.pop("project") == "my-project"  # TFX's runner takes it out the same way
    model, examples = standard_artifacts.Model(), standard_artifacts.Examples()
    model.uri, examples.uri = "gs://bucket/model", "gs://bucket/examples"
    exec_properties = {"custom_config": json.dumps(custom_config),
                       "run_fn": "trainer.module.run_fn"}
    # TFX's own request builder, without its constructor (which needs Google credentials).
    client = training_clients.VertexJobClient.__new__(training_clients.VertexJobClient)
    job = client.create_training_job({"examples": [examples]}, {"model": [model]},
                                     exec_properties, TFX_EXECUTOR, job_args, None, None)
    request = CustomJob(job)  # raises on a field or type the Vertex AI API doesn't have
    pools = request.job_spec.worker_pool_specs
    assert [pool.replica_count for pool in pools] == [1, 3]
    for pool in pools:
        assert pool.container_spec.image_uri == config.kubeflow.image
        assert pool.machine_spec.machine_type == "n1-standard-8"
        assert pool.machine_spec.accelerator_count == 1
        command = list(pool.container_spec.command)
        assert command[:3] == ["python", "-m", "tfx.scripts.run_executor"]
        assert command[command.index("--executor_class_path") + 1] == TFX_EXECUTOR


def test_every_replica_reads_its_trainer_config_despite_vertex_keys(compiled):
    _, spec, _ = compiled
    custom_config = custom_config_of(spec, "pretrain_trainer")
    assert trainer_config(custom_config).role == "pretrain"
    with pytest.raises(ValueError, match="unknown_key"):
        trainer_config({**custom_config, "unknown_key": 1})


@pytest.mark.parametrize("override, message", [
    ("kubeflow.multi_worker={project: my-project, region: europe-west4, replicas: 1}",
     "greater than or equal to 2"),
    ("kubeflow.multi_worker={project: my-project, region: europe-west4, replicas: 2, "
     "trainers: [evaluator]}", "not Trainers"),
    ("kubeflow.multi_worker={region: europe-west4, replicas: 2}", "project"),
])
def test_bad_multi_worker_settings_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(EXAMPLE, [override, GCS_ROOT])


@pytest.mark.parametrize("root", ["minio://mlpipeline/tfx-transfer/root", "s3://bucket/root"])
def test_multi_worker_needs_a_gcs_pipeline_root(root):
    """TFX's Vertex client hands the replicas the launcher's local paths (/minio/..., /s3/...),
    which exist only in the Trainer's own pod."""
    with pytest.raises(ConfigError, match=r"kubeflow\.multi_worker needs "
                       r"kubeflow\.pipeline_root on gs://, not '" + root):
        load_config(EXAMPLE, [MULTI_WORKER, f"kubeflow.pipeline_root={root}"])
    assert load_config(EXAMPLE, [f"kubeflow.pipeline_root={root}"]).kubeflow.multi_worker is None
    assert load_config(EXAMPLE, [MULTI_WORKER, GCS_ROOT]).kubeflow.multi_worker.replicas == 4


def test_worker_pools_without_accelerators_train_on_cpu():
    settings = MultiWorkerTraining(project="my-project", region="europe-west4", replicas=2,
                                   accelerator=None)
    assert [pool["machine_spec"] for pool in settings.worker_pool_specs("image")] == [
        {"machine_type": "n1-standard-8"}] * 2
