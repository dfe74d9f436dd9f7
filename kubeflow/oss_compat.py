"""Post-processing of TFX's KFP v2 IR so that it runs on open-source Kubeflow Pipelines too.

TFX's KubeflowV2DagRunner targets Vertex AI Pipelines. What it emits that doesn't hold on
the open-source KFP v2 backend (see docs/kubeflow.md, "Open-source KFP"):

* Task keys are the component ids (`source_example_gen`). The backend makes each task an Argo
  DAG task of exactly that name plus a `<key>-driver` twin
  (`backend/src/v2/compiler/argocompiler/dag.go`), and the API server validates them with
  Argo's `[a-zA-Z0-9][-a-zA-Z0-9]*`, at most 128 characters, no leading digit
  (argo-workflows `workflow/validate/validate.go`): underscores become hyphens.

* FileBasedExampleGens get a `lifecycle.preCacheCheck` hook running TFX's ExampleGen driver
  before the executor. Only Vertex runs it; ImageExampleGen resolves its span itself, so the
  hook is removed and nothing in the spec relies on it.
* The step builder drops `with_platform_config` resources of FileBasedExampleGens
  (tensorflow/tfx#6146); they are put back.

A third, Resolvers (ML Metadata queries only Vertex runs), is avoided in the pipeline itself:
the served-model baseline comes from the ServedModel component, which reads the serving dir.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

ResourceSpec = pb.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
ContainerSpec = pb.PipelineDeploymentConfig.PipelineContainerSpec
DRIVER_MODULE = "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"
# Argo's workflowFieldNameFmt and workflowFieldMaxLength (workflow/validate/validate.go).
ARGO_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
ARGO_NAME_MAX_LENGTH = 128
# The Argo DAG tasks the backend makes of one pipeline task (argocompiler/dag.go).
ARGO_TASK_SUFFIXES = ("", "-driver")


def task_name(component_id: str) -> str:
    """The pipeline task key of a TFX component id: an Argo name."""
    return component_id.replace("_", "-").replace(".", "-")


def argo_name_problems(spec: pb.PipelineSpec) -> list[str]:
    """Argo names the backend would make of the spec's tasks that Argo refuses or repeats."""
    problems, seen = [], set()
    for key in sorted(spec.root.dag.tasks):
        for name in (key + suffix for suffix in ARGO_TASK_SUFFIXES):
            if not ARGO_NAME.match(name) or name[0].isdigit() or len(name) > ARGO_NAME_MAX_LENGTH:
                problems.append(f"{name!r}: not an Argo task name ([a-zA-Z0-9][-a-zA-Z0-9]*, "
                                f"at most {ARGO_NAME_MAX_LENGTH}, no leading digit)")
            if name in seen:
                problems.append(f"{name!r}: two Argo tasks of that name")
            seen.add(name)
    return problems


def rename_tasks(spec: pb.PipelineSpec) -> dict[str, str]:
    """Re-key the root DAG's tasks by task_name, with every reference to them; return old ->
    new. Component names and executor labels stay: the backend turns neither into Argo names
    for container components."""
    renamed = {key: task_name(key) for key in spec.root.dag.tasks}
    tasks = {renamed[key]: task for key, task in spec.root.dag.tasks.items()}
    spec.root.dag.ClearField("tasks")
    for key, task in tasks.items():
        task.task_info.name = key
        dependencies = [renamed.get(name, name) for name in task.dependent_tasks]
        task.ClearField("dependent_tasks")
        task.dependent_tasks.extend(dependencies)
        for artifact in task.inputs.artifacts.values():
            if artifact.HasField("task_output_artifact"):
                producer = artifact.task_output_artifact.producer_task
                artifact.task_output_artifact.producer_task = renamed.get(producer, producer)
        for parameter in task.inputs.parameters.values():
            if parameter.HasField("task_output_parameter"):
                producer = parameter.task_output_parameter.producer_task
                parameter.task_output_parameter.producer_task = renamed.get(producer, producer)
        spec.root.dag.tasks[key].CopyFrom(task)
    return {old: new for old, new in renamed.items() if old != new}


def deployment_of(spec: pb.PipelineSpec) -> pb.PipelineDeploymentConfig:
    """The executors of a spec, typed (the spec holds them as a plain Struct)."""
    return json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                 pb.PipelineDeploymentConfig())


def container_of(spec: pb.PipelineSpec, deployment: pb.PipelineDeploymentConfig,
                 component_id: str) -> ContainerSpec:
    """The container a pipeline task runs in, found through its component's executor label."""
    tasks = spec.root.dag.tasks
    key = component_id if component_id in tasks else task_name(component_id)
    component = tasks[key].component_ref.name
    label = spec.components[component].executor_label
    return deployment.executors[label].container


def strip_lifecycle_hooks(deployment: pb.PipelineDeploymentConfig) -> list[str]:
    """Remove pre-cache-check hooks (the ExampleGen driver); return the executors changed."""
    stripped = []
    for label, executor in sorted(deployment.executors.items()):
        if executor.container.HasField("lifecycle"):
            executor.container.ClearField("lifecycle")
            stripped.append(label)
    return stripped


def restore_resources(spec: pb.PipelineSpec, deployment: pb.PipelineDeploymentConfig,
                      resources: Mapping[str, ResourceSpec]) -> list[str]:
    """Give components the resources TFX dropped; return the component ids fixed."""
    restored = []
    for component_id, resource_spec in sorted(resources.items()):
        container = container_of(spec, deployment, component_id)
        if container.resources != resource_spec:
            container.resources.CopyFrom(resource_spec)
            restored.append(component_id)
    return restored


def store_deployment(spec: pb.PipelineSpec, deployment: pb.PipelineDeploymentConfig) -> None:
    """Write the typed executors back into the spec's Struct."""
    spec.deployment_spec.Clear()
    spec.deployment_spec.update(json_format.MessageToDict(deployment))


def make_portable(spec: pb.PipelineSpec, deployment: pb.PipelineDeploymentConfig,
                  resources: Mapping[str, ResourceSpec],
                  pipeline_root: str) -> dict[str, list[str]]:
    """Apply every fix in place; return what was changed, for the compile log."""
    # A bare pipelineSpec YAML has no runtime config, where TFX puts the pipeline root.
    spec.default_pipeline_root = pipeline_root
    changes = {"lifecycle hooks removed": strip_lifecycle_hooks(deployment),
               "resources restored": restore_resources(spec, deployment, resources)}
    changes["tasks renamed"] = [f"{old} -> {new}" for old, new in rename_tasks(spec).items()]
    return changes
