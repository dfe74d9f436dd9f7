"""Post-processing of TFX's KFP v2 IR so that it runs on open-source Kubeflow Pipelines too.

TFX's KubeflowV2DagRunner targets Vertex AI Pipelines. Two things it emits don't hold on
the open-source KFP v2 backend (see docs/kubeflow.md, "Open-source KFP"):

* FileBasedExampleGens get a `lifecycle.preCacheCheck` hook running TFX's ExampleGen driver
  before the executor. Only Vertex runs it; ImageExampleGen resolves its span itself, so the
  hook is removed and nothing in the spec relies on it.
* The step builder drops `with_platform_config` resources of FileBasedExampleGens
  (tensorflow/tfx#6146); they are put back.

A third, Resolvers (ML Metadata queries only Vertex runs), is avoided in the pipeline itself:
the served-model baseline comes from the ServedModel component, which reads the serving dir.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

ResourceSpec = pb.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
ContainerSpec = pb.PipelineDeploymentConfig.PipelineContainerSpec
DRIVER_MODULE = "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"


def deployment_of(spec: pb.PipelineSpec) -> pb.PipelineDeploymentConfig:
    """The executors of a spec, typed (the spec holds them as a plain Struct)."""
    return json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                 pb.PipelineDeploymentConfig())


def container_of(spec: pb.PipelineSpec, deployment: pb.PipelineDeploymentConfig,
                 component_id: str) -> ContainerSpec:
    """The container a pipeline task runs in, found through its component's executor label."""
    component = spec.root.dag.tasks[component_id].component_ref.name
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


def make_portable(spec: pb.PipelineSpec, resources: Mapping[str, ResourceSpec],
                  pipeline_root: str) -> dict[str, list[str]]:
    """Apply every fix in place; return what was changed, for the compile log."""
    # A bare pipelineSpec YAML has no runtime config, where TFX puts the pipeline root.
    spec.default_pipeline_root = pipeline_root
    deployment = deployment_of(spec)
    changes = {"lifecycle hooks removed": strip_lifecycle_hooks(deployment),
               "resources restored": restore_resources(spec, deployment, resources)}
    spec.deployment_spec.Clear()
    spec.deployment_spec.update(json_format.MessageToDict(deployment))
    return changes
