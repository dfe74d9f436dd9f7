"""The checks the open-source KFP backend applies to a package before a run exists.

Written from kubeflow/pipelines 2.17 and the Argo it vendors (argo-workflows v4.0.8), not from
this project's code, so that they check it independently.
"""

from __future__ import annotations

import re

import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

# backend/src/apiserver/template/template.go: SCHEMA_VERSION_2_1_0, the only one accepted.
SCHEMA_VERSION = "2.1.0"
# argo-workflows workflow/validate/validate.go: workflowFieldNameFmt (anchored), its maximum
# length, and "name cannot begin with a digit when using either 'depends' or 'dependencies'".
ARGO_FIELD_NAME = re.compile(r"^[a-zA-Z0-9][-a-zA-Z0-9]*$")
ARGO_FIELD_MAX_LENGTH = 128
# validate.go: paramOrArtifactNameRegex; the compiler names workflow parameters
# `kubernetes-<component name>` (argocompiler/container.go).
ARGO_PARAMETER_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")
# validate.go: maxCharsInObjectName, for the workflow named after pipelineInfo.name.
ARGO_OBJECT_NAME_MAX_LENGTH = 63
# backend/src/v2/component/launcher_v2.go: LocalPathForURI, the schemes it maps.
LAUNCHER_SCHEMES = {"gs://": "/gcs/", "s3://": "/s3/", "minio://": "/minio/"}


def read_package(text: str) -> tuple[pb.PipelineSpec, pb.PlatformSpec]:
    """The documents as backend/src/apiserver/template/v2_template.go reads them: a strict
    PipelineSpec (unknown fields make it 'no pipeline spec'), then an optional PlatformSpec."""
    documents = [document for document in yaml.safe_load_all(text) if document is not None]
    spec = json_format.ParseDict(documents[0], pb.PipelineSpec())  # strict, like protojson
    if not spec.pipeline_info.name or not spec.HasField("root"):
        raise ValueError("no pipeline spec is provided")
    platform = pb.PlatformSpec()
    for document in documents[1:]:
        json_format.ParseDict(document, platform)
        if "kubernetes" not in platform.platforms:
            raise ValueError("a second document that is not a Kubernetes platform spec")
    if len(documents) > 2:
        raise ValueError("multiple platform specs provided")
    return spec, platform


def argo_task_names(spec: pb.PipelineSpec) -> list[str]:
    """The Argo DAG task names the compiler makes of the root DAG: each task key as it is,
    and `<key>-driver` (backend/src/v2/compiler/argocompiler/dag.go), plus the root's own."""
    names = ["root", "root-driver"]
    for key in spec.root.dag.tasks:
        names += [key, f"{key}-driver"]
    return names


def problems(spec: pb.PipelineSpec, pipeline_root: str) -> list[str]:
    """What makes the API server refuse the run, or the launcher fail every task."""
    found = []
    if spec.schema_version != SCHEMA_VERSION:
        found.append(f"KFP only supports schema version {SCHEMA_VERSION}, but the pipeline "
                     f"spec has version {spec.schema_version}")
    names = argo_task_names(spec)
    for name in names:
        if not ARGO_FIELD_NAME.match(name) or len(name) > ARGO_FIELD_MAX_LENGTH:
            found.append(f"{name}: invalid Argo task name")
        elif name[0].isdigit():
            found.append(f"{name}: name cannot begin with a digit when using 'depends'")
    found += [f"{name}: duplicate Argo task name" for name in sorted(set(names))
              if names.count(name) > 1]
    found += [f"kubernetes-{name}: invalid Argo parameter name" for name in spec.components
              if not ARGO_PARAMETER_NAME.match(f"kubernetes-{name}")]
    if len(spec.pipeline_info.name) > ARGO_OBJECT_NAME_MAX_LENGTH:
        found.append(f"{spec.pipeline_info.name}: longer than a workflow name may be")
    if not pipeline_root.startswith(tuple(LAUNCHER_SCHEMES)):
        found.append(f"{pipeline_root}: unsupported storage scheme for the launcher")
    for key, task in spec.root.dag.tasks.items():
        for dependency in task.dependent_tasks:
            if dependency not in spec.root.dag.tasks:
                found.append(f"{key}: depends on unknown task {dependency}")
    return found
