"""`tfx-transfer compile`: the KFP v2 package of the example config, read back as KFP's protos."""

from __future__ import annotations

import importlib
import os
import re
import tempfile

import pytest

from kubeflow.oss_compat import DRIVER_MODULE, container_of
from kubeflow.runner import ENTRYPOINT, PROJECT_ROOT, build_pipeline, compile_pipeline
from pipeline.config import ConfigError, load_config
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
    assert set(spec.root.dag.tasks) == components
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
    baseline = tasks["served_evaluator"].inputs.artifacts["baseline_model"]
    assert baseline.task_output_artifact.producer_task == "served_model"
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
        parameters = spec.root.dag.tasks[task].inputs.parameters
        path = parameters[key].runtime_value.constant.string_value
        module, name = path.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), name)), path
        # No module file (TFX would import it as user_module_N, which Beam workers can't) and
        # no wheel built from the local checkout.
        assert not {"module_file", "module_path"} & set(parameters), task
    assert "_wheels" not in text


def test_no_local_paths_or_credentials(compiled):
    *_, text = compiled
    for local in {PROJECT_ROOT, tempfile.gettempdir(), "/tmp", "/root", os.path.expanduser("~")}:
        assert not re.search(rf"(?<![\w.:/-]){re.escape(local)}(?=[/\"'\s,]|$)", text), local
    assert not re.search(r"AKIA[0-9A-Z]{16}|PRIVATE KEY|password|secret|token|"
                         r"access_key|credential", text, re.IGNORECASE)


def test_pusher_writes_to_the_clusters_serving_dir(compiled):
    config, spec, _, _ = compiled
    parameters = spec.root.dag.tasks["pusher"].inputs.parameters
    assert parameters["serving_dir"].runtime_value.constant.string_value == \
        config.kubeflow.serving_dir


@pytest.mark.parametrize("override, message", [
    ("kubeflow.serving_dir=/tmp/serving", "local paths"),
    ("kubeflow.components.no_such_step={cpu: 1}", "not in this pipeline"),
    ("kubeflow.image=null", "kubeflow.image"),
])
def test_configs_that_cant_run_on_the_cluster_are_refused(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        compile_pipeline(load_config(EXAMPLE, [override]), tmp_path / "p.yaml")
    assert not (tmp_path / "p.yaml").exists()


def test_packages_must_be_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"\.yaml or \.yml"):
        compile_pipeline(load_config(EXAMPLE), tmp_path / "pipeline.json")
