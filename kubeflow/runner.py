"""Compile a config's pipeline into a Kubeflow Pipelines package: the KFP v2 IR as YAML."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from kubeflow import caching, oss_compat, platform
from pipeline.config import ConfigError, PipelineConfig
from pipeline.kubeflow_config import KubeflowConfig, Resources

log = logging.getLogger(__name__)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# kfp.Client takes .yaml/.yml (or archives); TFX's .json default is Vertex's PipelineJob.
PACKAGE_SUFFIXES = (".yaml", ".yml")
# Every executor runs through kubeflow/entrypoint.py, which wraps TFX's own entrypoint.
ENTRYPOINT = ("python", "-m", "kubeflow.entrypoint")


def settings(config: PipelineConfig) -> KubeflowConfig:
    """The config's `kubeflow:` section, with the settings compiling needs."""
    kubeflow: KubeflowConfig = config.kubeflow
    missing = [key for key in ("image", "pipeline_root") if getattr(kubeflow, key) is None]
    if missing:
        raise ConfigError(f"kubeflow.{missing[0]}: needed to compile for Kubeflow "
                          f"(see configs/kubeflow_example.yaml)")
    return kubeflow


def resource_spec(resources: Resources) -> oss_compat.ResourceSpec:
    """The KFP ResourceSpec proto that `with_platform_config` takes."""
    spec = oss_compat.ResourceSpec()
    if resources.cpu is not None:
        spec.cpu_limit = resources.cpu
    if resources.memory_gb is not None:
        spec.memory_limit = resources.memory_gb
    if resources.accelerator is not None:
        spec.accelerator.type = resources.accelerator.type
        spec.accelerator.count = resources.accelerator.count
    return spec


def multi_worker_trainers(kubeflow: KubeflowConfig) -> dict[str, Callable[..., Any]]:
    """By Trainer id, TFX's Vertex AI Trainer for those `kubeflow.multi_worker` names: its pod
    launches a CustomJob of one chief and N-1 workers, each running TFX's Trainer executor on
    the image; Vertex gives each its TF_CONFIG, and run_fn trains with
    MultiWorkerMirroredStrategy."""
    settings = kubeflow.multi_worker
    if settings is None:
        return {}
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer import executor
    from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer

    vertex = {constants.ENABLE_VERTEX_KEY: True, constants.VERTEX_REGION_KEY: settings.region,
              executor.TRAINING_ARGS_KEY: {
                  "project": settings.project,
                  "job_spec": {"worker_pool_specs": settings.worker_pool_specs(kubeflow.image)}}}

    def vertex_trainer(custom_config: dict[str, Any], **kwargs: Any) -> Trainer:
        return Trainer(custom_config={**custom_config, **vertex}, **kwargs)

    return {trainer_id: vertex_trainer for trainer_id in settings.trainers}


def build_pipeline(config: PipelineConfig, kubeflow: KubeflowConfig, *, enable_cache: bool):
    """The TFX pipeline of the config as the cluster sees it, with per-component resources."""
    from pipeline.pipeline import create_pipeline  # imports TFX: slow, so only when compiling

    # The image has the project installed: Transform and Trainer import their functions by
    # name in every pod and Beam worker; nothing is packaged from this checkout while compiling.
    pipeline = create_pipeline(
        config.model_copy(update={"serving_dir": kubeflow.serving}), installed_code=True,
        trainer_components=multi_worker_trainers(kubeflow), pipeline_root=kubeflow.pipeline_root,
        beam_pipeline_args=list(kubeflow.beam_pipeline_args), enable_cache=enable_cache)
    # Resolvers and importers run no container, so they take no resources.
    containers = [node for node in pipeline.components if hasattr(node, "with_platform_config")]
    ids = [component.id for component in containers]
    unknown = sorted(set(kubeflow.components) - set(ids))
    if unknown:
        raise ConfigError(f"kubeflow.components: {unknown} are not in this pipeline; "
                          f"its components are {ids}")
    for component in containers:
        resources = kubeflow.resources_for(component.id)
        if resources is not None:
            component.with_platform_config(resource_spec(resources))
    return pipeline


def local_path_prefixes() -> list[str]:
    """Paths that exist only where the compile runs: the checkout, temp and home dirs."""
    candidates = {PROJECT_ROOT, tempfile.gettempdir(), os.path.expanduser("~")}
    return sorted(path.rstrip("/") for path in candidates if path.rstrip("/"))


def find_local_paths(spec: pb.PipelineSpec, prefixes: list[str]) -> list[str]:
    """Strings of the spec that hold a path under one of the prefixes."""
    # A prefix counts at the start of a path, not inside one: gs://bucket/tmp is fine.
    pattern = re.compile(r"(?<![\w.:/-])(?:%s)(?=[/\"'\s,]|$)" % "|".join(map(re.escape,
                                                                               prefixes)))
    found: list[str] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and pattern.search(value):
            found.append(value)

    walk(json_format.MessageToDict(spec))
    return found


def write_package(spec: pb.PipelineSpec, platform_spec: pb.PlatformSpec, path: Path) -> None:
    """Write the package kfp.Client and the KFP UI take: the bare pipelineSpec YAML, then the
    PlatformSpec as a second document when there are Kubernetes settings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# PIPELINE DEFINITION\n# Name: {spec.pipeline_info.name}\n"
              f"# Compiled by `tfx-transfer compile` ({spec.sdk_version}) for Kubeflow "
              "Pipelines; see docs/kubeflow.md.\n")
    documents = [json_format.MessageToDict(spec)]
    if platform_spec.platforms:
        documents.append(json_format.MessageToDict(platform_spec))
    path.write_text(header + yaml.safe_dump_all(documents, sort_keys=True), encoding="utf-8")


def _tfx_spec(pipeline, kubeflow: KubeflowConfig) -> pb.PipelineSpec:
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    runner = v2.KubeflowV2DagRunner(v2.KubeflowV2DagRunnerConfig(
        default_image=kubeflow.image, default_commands=list(ENTRYPOINT),
        # 2.1 is the schema KFP 2.x's backend reads; it also passes each executor its
        # inputs' declared types, which kubeflow/entrypoint.py needs.
        use_pipeline_spec_2_1=True))
    job = runner.run(pipeline, write_out=False)
    return json_format.ParseDict(job["pipelineSpec"], pb.PipelineSpec())


def compile_pipeline(config: PipelineConfig, output: str | os.PathLike[str], *,
                     enable_cache: bool = True) -> tuple[pb.PipelineSpec, pb.PlatformSpec]:
    """Compile the config's pipeline with TFX's KubeflowV2DagRunner, make it run on
    open-source KFP and Vertex alike, and write the package to output."""
    output = Path(output)
    if output.suffix not in PACKAGE_SUFFIXES:
        raise ConfigError(f"--output {output}: Kubeflow Pipelines takes a .yaml or .yml file")
    kubeflow = settings(config)
    pipeline = build_pipeline(config, kubeflow, enable_cache=enable_cache)
    spec = _tfx_spec(pipeline, kubeflow)
    deployment = oss_compat.deployment_of(spec)
    resources = {node.id: node.platform_config for node in pipeline.components
                 if getattr(node, "platform_config", None) is not None}
    changes = oss_compat.make_portable(spec, deployment, resources, kubeflow.pipeline_root)
    changes["probes added"] = caching.add_probes(spec, deployment, kubeflow.image)
    changes["uncached"] = caching.set_caching(spec, enable_cache)
    for executor in deployment.executors.values():
        platform.add_env(executor.container, platform.object_store_env(kubeflow))
    oss_compat.store_deployment(spec, deployment)
    log.info("Open-source KFP fixes: %s", changes)
    problems = oss_compat.argo_name_problems(spec)
    if problems:
        raise ConfigError("the compiled pipeline breaks Kubeflow's naming rules: "
                          + "; ".join(problems))
    leaked = find_local_paths(spec, local_path_prefixes())
    if leaked:
        raise ConfigError(f"the compiled pipeline refers to local paths that pods can't see: "
                          f"{leaked[:3]}; put data, weights and outputs on shared storage")
    by_task = {oss_compat.task_name(node.id): kubeflow.resources_for(node.id)
               for node in pipeline.components}
    platform_spec = platform.platform_spec(spec, kubeflow, by_task)
    write_package(spec, platform_spec, output)
    return spec, platform_spec
