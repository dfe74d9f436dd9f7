"""`tfx-transfer compile`: the KFP v2 package of the example config, read back as KFP's protos."""

from __future__ import annotations

import importlib
import json
import os
import re
import tempfile

import pytest
import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s

from kubeflow.oss_compat import DRIVER_MODULE, argo_name_problems, container_of, task_name
from kubeflow.runner import ENTRYPOINT, PROJECT_ROOT, build_pipeline, compile_pipeline
from pipeline.config import ConfigError, load_config
from tests.fashion_mnist import write_subset
from tests.kfp_backend import rules
from tests.kubeflow_helpers import EXAMPLE, TRAINERS, parse_args, read_package

# One Trainer with Vertex AI's accelerator names, which must pass through unchanged.
VERTEX_SCRATCH = ("kubeflow.components.scratch_trainer="
                  "{cpu: 8, memory_gb: 32, accelerator: {type: NVIDIA_TESLA_T4, count: 2}}")
EXECUTORS = {"example_gen": "components.image_example_gen.executor.Executor",
             "transform": "tfx.components.transform.executor.Executor",
             "trainer": "tfx.components.trainer.executor.GenericExecutor",
             "evaluator": "tfx.components.evaluator.executor.Executor",
             "pusher": "components.versioned_pusher.executor.Executor"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """The example config compiled through the CLI, as (config, spec, deployment, text)."""
    output = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    args = parse_args(["compile", "-c", EXAMPLE, "--set", VERTEX_SCRATCH, "-o", str(output)])
    assert args.handler(args) == 0
    spec, deployment = read_package(output)
    return load_config(EXAMPLE, [VERTEX_SCRATCH]), spec, deployment, output.read_text()


@pytest.fixture(scope="module")
def components(compiled) -> set[str]:
    """Ids of the pipeline's components that run a container."""
    config = compiled[0]
    nodes = build_pipeline(config, config.kubeflow, enable_cache=True).components
    return {node.id for node in nodes if hasattr(node, "with_platform_config")}


def _container(compiled, task):
    _, spec, deployment, _ = compiled
    return container_of(spec, deployment, task)


def test_package_is_a_kfp_v2_pipeline_spec(compiled):
    config, spec, _, _ = compiled
    assert spec.schema_version == "2.1.0"
    assert spec.pipeline_info.name == config.name
    # The bare YAML has no runtime config: the root must be in the spec itself.
    assert spec.default_pipeline_root == config.kubeflow.pipeline_root


def test_every_component_runs_in_the_image_through_the_entrypoint(compiled, components):
    config, spec, _, _ = compiled
    assert {*TRAINERS, "source_example_gen", "target_example_gen", "pusher"} <= components
    probes = {"source-example-gen-probe", "target-example-gen-probe", "served-model-probe"}
    assert set(spec.root.dag.tasks) == {task_name(c) for c in components} | probes
    for task in components:
        container = _container(compiled, task)
        assert container.image == config.kubeflow.image
        assert tuple(container.command) == ENTRYPOINT
        executor_class = container.args[list(container.args).index("--executor_class_path") + 1]
        expected = next((cls for step, cls in EXECUTORS.items() if task.endswith(step)), None)
        assert expected in (None, executor_class), task
        assert "--direct_num_workers=0" in container.args  # resolved in the pod


def test_trainers_get_the_configured_gpu_and_limits(compiled):
    config, *_ = compiled
    for task in ("pretrain_trainer", "transfer_trainer"):
        resources = _container(compiled, task).resources
        assert resources.accelerator.type == "nvidia.com/gpu"
        assert resources.accelerator.count == config.kubeflow.trainers.accelerator.count == 1
        assert resources.cpu_limit == config.kubeflow.trainers.cpu
        assert resources.memory_limit == config.kubeflow.trainers.memory_gb


def test_vertex_accelerator_names_pass_through(compiled):
    resources = _container(compiled, "scratch_trainer").resources
    assert (resources.accelerator.type, resources.accelerator.count) == ("NVIDIA_TESLA_T4", 2)
    assert (resources.cpu_limit, resources.memory_limit) == (8, 32)


def test_no_other_component_asks_for_a_gpu(compiled, components):
    for task in components - set(TRAINERS):
        assert not _container(compiled, task).resources.HasField("accelerator"), task


def test_example_gen_limits_survive_the_v2_step_builder(compiled):
    # tensorflow/tfx#6146: TFX drops with_platform_config of FileBasedExampleGens.
    config, *_ = compiled
    for task in ("source_example_gen", "target_example_gen"):
        resources = _container(compiled, task).resources
        wanted = config.kubeflow.components[task]
        assert (resources.cpu_limit, resources.memory_limit) == (wanted.cpu, wanted.memory_gb)


def test_nothing_relies_on_the_example_gen_driver(compiled):
    # Open-source KFP runs no lifecycle hooks: the driver step is gone, not silently skipped.
    _, _, deployment, text = compiled
    assert not any(executor.container.HasField("lifecycle")
                   for executor in deployment.executors.values())
    assert DRIVER_MODULE not in text and "preCacheCheck" not in text
    assert tuple(_container(compiled, "source_example_gen").command) == ENTRYPOINT


def test_no_vertex_only_resolver_steps_and_no_dangling_inputs(compiled):
    # Open-source KFP refuses a pipeline with `resolver` executors ("not implemented yet").
    _, spec, deployment, _ = compiled
    assert not any(executor.HasField("resolver") for executor in deployment.executors.values())
    tasks = spec.root.dag.tasks
    # The served-model baseline comes from a container step that reads the serving dir.
    baseline = tasks["served-evaluator"].inputs.artifacts["baseline_model"]
    assert baseline.task_output_artifact.producer_task == "served-model"
    for name, task in tasks.items():
        assert set(task.dependent_tasks) <= set(tasks), name
        declared = spec.components[task.component_ref.name].input_definitions.artifacts
        for key, value in task.inputs.artifacts.items():
            assert value.task_output_artifact.producer_task in tasks, (name, key)
        for key in set(declared) - set(task.inputs.artifacts):
            assert declared[key].is_optional, (name, key)  # left empty, so it must be optional


def test_transform_and_trainers_import_the_installed_code(compiled):
    _, spec, _, text = compiled
    for task, key in (("source_transform", "preprocessing_fn"),
                      ("target_transform", "preprocessing_fn"),
                      ("pretrain_trainer", "run_fn"), ("transfer_trainer", "run_fn"),
                      ("scratch_trainer", "run_fn")):
        parameters = spec.root.dag.tasks[task_name(task)].inputs.parameters
        path = parameters[key].runtime_value.constant.string_value
        module, name = path.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name)), path
        # No module file (TFX would import it as user_module_N, which Beam workers can't) and
        # no wheel built from the local checkout.
        assert not {"module_file", "module_path"} & set(parameters), task
    assert "_wheels" not in text


def test_no_local_paths_or_credentials(compiled):
    *_, text = compiled
    pipeline_spec, platform_spec = text.split("\n---\n")
    for local in {PROJECT_ROOT, tempfile.gettempdir(), "/tmp", "/root", os.path.expanduser("~")}:
        assert not re.search(rf"(?<![\w.:/-]){re.escape(local)}(?=[/\"'\s,]|$)", text), local
    assert not re.search(r"AKIA[0-9A-Z]{16}|PRIVATE KEY|password|secret|token|"
                         r"access_key|credential", pipeline_spec, re.IGNORECASE)
    # The platform spec names secrets and their keys; their values stay in the cluster.
    platform = yaml.safe_load(platform_spec)["platforms"]["kubernetes"]["deploymentSpec"]
    for executor in platform["executors"].values():
        for secret in executor["secretAsEnv"]:
            assert secret["secretName"] == "mlpipeline-minio-artifact"
            assert {item["secretKey"] for item in secret["keyToEnv"]} == {"accesskey",
                                                                          "secretkey"}


def test_pusher_writes_to_the_clusters_serving_dir(compiled):
    config, spec, _, _ = compiled
    parameters = spec.root.dag.tasks["pusher"].inputs.parameters
    assert parameters["serving_dir"].runtime_value.constant.string_value == \
        config.kubeflow.serving_dir


@pytest.mark.parametrize("override, message", [
    ("kubeflow.serving_dir=/tmp/serving", "launcher"),
    ("kubeflow.components.no_such_step={cpu: 1}", "not in this pipeline"),
    ("kubeflow.image=null", "kubeflow.image"),
])
def test_configs_that_cant_run_on_the_cluster_are_refused(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        compile_pipeline(load_config(EXAMPLE, [override]), tmp_path / "p.yaml")
    assert not (tmp_path / "p.yaml").exists()


def test_datasets_on_the_compiling_machine_are_refused(tmp_path):
    data = write_subset(str(tmp_path / "fashion-mnist"), n_train=120, n_test=20)
    with pytest.raises(ConfigError, match="local paths that pods can't see"):
        compile_pipeline(load_config(EXAMPLE, [f"target.path={data}"]), tmp_path / "p.yaml")


def test_packages_must_be_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"\.yaml or \.yml"):
        compile_pipeline(load_config(EXAMPLE), tmp_path / "pipeline.json")


def test_the_backend_accepts_every_generated_name_and_the_root(compiled):
    config, spec, _, text = compiled
    assert rules.problems(spec, config.kubeflow.pipeline_root) == []
    names = rules.argo_task_names(spec)
    assert "pretrain-trainer-driver" in names and len(names) == len(set(names))


def test_names_argo_refuses_are_caught_by_the_compile_and_the_backend(compiled):
    config, spec, _, _ = compiled
    broken = type(spec)()
    broken.CopyFrom(spec)
    # What TFX emits (component ids as task keys), and a key that would start with a digit.
    broken.root.dag.tasks["pretrain_trainer"].CopyFrom(spec.root.dag.tasks["pretrain-trainer"])
    broken.root.dag.tasks["2nd-trainer"].CopyFrom(spec.root.dag.tasks["pretrain-trainer"])
    found = rules.problems(broken, config.kubeflow.pipeline_root)
    assert {problem.split(":")[0] for problem in found} == {
        "pretrain_trainer", "pretrain_trainer-driver", "2nd-trainer", "2nd-trainer-driver"}
    assert len(argo_name_problems(broken)) == 4


def test_a_root_the_launcher_rejects_is_refused_by_the_backend_too(compiled):
    config, spec, _, _ = compiled
    assert rules.problems(spec, "/mnt/volume/root") == [
        "/mnt/volume/root: unsupported storage scheme for the launcher"]


def test_spans_and_the_served_model_are_probed_on_every_run(compiled):
    _, spec, deployment, _ = compiled
    tasks = spec.root.dag.tasks
    uncached = {name for name, task in tasks.items() if not task.caching_options.enable_cache}
    assert uncached == {"source-example-gen-probe", "target-example-gen-probe",
                        "served-model-probe"}
    for example_gen in ("source-example-gen", "target-example-gen"):
        parameters = tasks[example_gen].inputs.parameters
        for key in ("span", "input_fingerprint", "input_config"):
            source = parameters[key].task_output_parameter
            assert (source.producer_task, source.output_parameter_key) == (
                f"{example_gen}-probe", key)
        # TFX's entrypoint types exec properties by the inputs spec on its command line.
        args = list(_container(compiled, example_gen).args)
        inputs_spec = json.loads(args[args.index("--json_serialized_inputs_spec_args") + 1])
        assert inputs_spec["parameters"]["span"]["parameterType"] == "NUMBER_INTEGER"
    served = tasks["served-model"].inputs.parameters["served_baseline"].task_output_parameter
    assert served.producer_task == "served-model-probe"
    probe = tasks["served-model-probe"]
    assert probe.inputs.artifacts["candidate"].task_output_artifact.producer_task == \
        "transfer-trainer"
    container = _container(compiled, "served-model-probe")
    assert tuple(container.command) == ("python", "-m", "kubeflow.probes")
    assert list(container.args) == ["served", "--executor_input", "{{$}}"]


def test_pods_reach_the_object_store_through_env_and_the_secret(compiled):
    config, _, deployment, _ = compiled
    for executor in deployment.executors.values():
        env = {item.name: item.value for item in executor.container.env}
        assert env == {"AWS_ENDPOINT_URL": config.kubeflow.object_store.endpoint,
                       "AWS_REGION": "us-east-1"}


def _platform(compiled) -> dict[str, dict]:
    *_, text = compiled
    _, platform = rules.read_package(text)
    return {label: json_format.MessageToDict(config) for label, config in
            platform.platforms["kubernetes"].deployment_spec.executors.items()}


def _backend_toleration_type():
    """The backend's Toleration message (kubernetes_platform/proto/
    kubernetes_executor_config.proto, KFP 2.17: key 1, operator 2, value 3, effect 4,
    optional int64 toleration_seconds 5), which kfp-kubernetes 1.0.0 predates."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file = descriptor_pb2.FileDescriptorProto(name="toleration_check.proto",
                                              package="check", syntax="proto3")
    message = file.message_type.add(name="Toleration")
    for number, name, kind in ((1, "key", 9), (2, "operator", 9), (3, "value", 9),
                               (4, "effect", 9), (5, "toleration_seconds", 3)):
        message.field.add(name=name, number=number, type=kind, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.MessageFactory(pool).GetPrototype(
        pool.FindMessageTypeByName("check.Toleration"))


def test_platform_spec_parses_as_kfp_kubernetes_protos(compiled):
    config, spec, _, _ = compiled
    toleration_type = _backend_toleration_type()
    labels = {spec.components[task.component_ref.name].executor_label: name
              for name, task in spec.root.dag.tasks.items()}
    platform = _platform(compiled)
    assert set(platform) == set(labels)  # every pod gets the store's credentials
    for label, executor in platform.items():
        tolerations = executor.pop("tolerations", [])
        parsed = json_format.ParseDict(executor, k8s.KubernetesExecutorConfig())  # strict
        for toleration in tolerations:
            json_format.ParseDict(toleration, toleration_type())  # strict
        # VERTEX_SCRATCH gives scratch_trainer its own entry, which replaces `trainers`.
        trainer = labels[label] in ("pretrain-trainer", "transfer-trainer")
        assert bool(tolerations) == trainer == bool(parsed.node_selector.labels), label
        if trainer:
            assert tolerations == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                    "effect": "NoSchedule"}]
            assert dict(parsed.node_selector.labels) == \
                config.kubeflow.trainers.node_selector
        assert [s.secret_name for s in parsed.secret_as_env] == ["mlpipeline-minio-artifact"]


def test_volumes_and_more_secrets_reach_every_pod(tmp_path):
    output = tmp_path / "pipeline.yaml"
    overrides = ["kubeflow.volumes=[{pvc: datasets, mount_path: /data}]",
                 "kubeflow.secrets_as_env=[{secret: wandb, env: {WANDB_API_KEY: key}}]",
                 "kubeflow.trainers.tolerations=[{key: gpu, operator: Equal, value: 'yes', "
                 "effect: NoExecute, toleration_seconds: 60}]"]
    _, platform = compile_pipeline(load_config(EXAMPLE, overrides), output)
    executors = platform.platforms["kubernetes"].deployment_spec.executors
    for label, struct in executors.items():
        executor = json_format.MessageToDict(struct)
        assert executor["pvcMount"] == [{"constant": "datasets", "mountPath": "/data"}]
        assert [s["secretName"] for s in executor["secretAsEnv"]] == [
            "mlpipeline-minio-artifact", "wandb"]
        if label == "pretrain_trainer_executor":
            assert executor["tolerations"] == [{"key": "gpu", "operator": "Equal",
                                                "value": "yes", "effect": "NoExecute",
                                                "tolerationSeconds": 60}]


def test_without_kubernetes_settings_the_package_is_one_document(tmp_path):
    output = tmp_path / "pipeline.yaml"
    overrides = ["kubeflow.pipeline_root=gs://bucket/root", "kubeflow.serving_dir=null",
                 "kubeflow.trainers={node_selector: {}, tolerations: []}"]
    compile_pipeline(load_config(EXAMPLE, overrides), output)
    assert len(list(yaml.safe_load_all(output.read_text()))) == 1


def test_pretraining_without_labels_compiles_and_keeps_the_backends_rules(tmp_path):
    """The target's unlabelled pool and the autoencoder reach the cluster's components."""
    config = load_config(EXAMPLE, ["source=null", "pretraining.method=autoencoder",
                                   "pretraining.data=target_unlabelled",
                                   "target.eval_label_budget=50"])
    compile_pipeline(config, tmp_path / "p.yaml")
    spec, _ = read_package(tmp_path / "p.yaml")
    assert rules.problems(spec, config.kubeflow.pipeline_root) == []
    text = json.dumps(json_format.MessageToDict(spec))
    assert '\\"labelled\\": false' in text and '\\"beyond_label_budget\\": true' in text
    assert '\\"pretraining\\": \\"autoencoder\\"' in text
