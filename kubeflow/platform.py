"""Kubernetes settings of the pods: KFP's platform spec, the package's second YAML document.

The API server takes a multi-document package: the pipelineSpec, then a PlatformSpec whose
`platforms.kubernetes.deploymentSpec.executors.<executor label>` holds each executor's
KubernetesExecutorConfig (`backend/src/apiserver/template/v2_template.go`), which the driver
applies to the pod (`backend/src/v2/driver/k8s.go: extendPodSpecPatch`). Messages are built
with kfp-kubernetes 1.0.0's protos (the last release for kfp 2.5); its proto predates
tolerations, which are written as the backend's `kubernetes_executor_config.proto` defines
them (KFP 2.17: `repeated Toleration tolerations = 12`, Toleration `key`, `operator`, `value`,
`effect`, `toleration_seconds`).
"""

from __future__ import annotations

from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from pipeline.kubeflow_config import KubeflowConfig, Resources, SecretEnv, Toleration

ContainerSpec = pb.PipelineDeploymentConfig.PipelineContainerSpec


def _secret_env(secret: SecretEnv) -> k8s.SecretAsEnv:
    return k8s.SecretAsEnv(secret_name=secret.secret, key_to_env=[
        k8s.SecretAsEnv.SecretKeyToEnvMap(secret_key=key, env_var=name)
        for name, key in sorted(secret.env.items())])


def _uses_s3(kubeflow: KubeflowConfig) -> bool:
    uris = (kubeflow.pipeline_root or "", kubeflow.serving or "")
    return any(uri.startswith(("s3://", "minio://")) for uri in uris)


def executor_config(kubeflow: KubeflowConfig, resources: Resources | None) -> dict:
    """One executor's KubernetesExecutorConfig as the JSON the backend reads."""
    config = k8s.KubernetesExecutorConfig()
    secrets = list(kubeflow.secrets_as_env)
    if _uses_s3(kubeflow) and kubeflow.object_store.credentials is not None:
        secrets.insert(0, kubeflow.object_store.credentials)
    config.secret_as_env.extend(_secret_env(secret) for secret in secrets)
    config.pvc_mount.extend(k8s.PvcMount(constant=volume.pvc, mount_path=volume.mount_path)
                            for volume in kubeflow.volumes)
    if resources is not None and resources.node_selector:
        config.node_selector.labels.update(resources.node_selector)
    as_json = json_format.MessageToDict(config)
    if resources is not None and resources.tolerations:
        as_json["tolerations"] = [_toleration(toleration) for toleration in resources.tolerations]
    return as_json


def _toleration(toleration: Toleration) -> dict:
    """The backend's Toleration message as proto JSON (camelCase, unset fields left out)."""
    fields = {"key": toleration.key, "operator": toleration.operator,
              "value": toleration.value, "effect": toleration.effect,
              "tolerationSeconds": toleration.toleration_seconds}
    return {name: value for name, value in fields.items() if value is not None}


def object_store_env(kubeflow: KubeflowConfig) -> dict[str, str]:
    """Variables every pod's own object-store client reads (kubeflow/storage.py)."""
    if not _uses_s3(kubeflow):
        return {}
    env = {"AWS_REGION": kubeflow.object_store.region}
    if kubeflow.object_store.endpoint:
        env["AWS_ENDPOINT_URL"] = kubeflow.object_store.endpoint
    return env


def add_env(container: ContainerSpec, env: dict[str, str]) -> None:
    """Container variables (TFX's compiler drops them, tensorflow/tfx#7765; the driver sets
    them, `backend/src/v2/driver/driver.go: initPodSpecPatch`)."""
    for name, value in sorted(env.items()):
        container.env.add(name=name, value=value)


def platform_spec(spec: pb.PipelineSpec, kubeflow: KubeflowConfig,
                  resources_by_task: dict[str, Resources | None]) -> pb.PlatformSpec:
    """The PlatformSpec with every executor's Kubernetes settings; empty when there are none."""
    platform = pb.PlatformSpec()
    for name, task in sorted(spec.root.dag.tasks.items()):
        label = spec.components[task.component_ref.name].executor_label
        config = executor_config(kubeflow, resources_by_task.get(name))
        if config:
            platform.platforms["kubernetes"].deployment_spec.executors[label].update(config)
    return platform

