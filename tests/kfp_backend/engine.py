"""The open-source KFP v2 driver, launcher and cache, running a compiled package task by task.

Each rule is the backend's, read from kubeflow/pipelines 2.17:

* order and inputs, `backend/src/v2/driver/driver.go`, `resolve.go`, `metadata/converter.go`:
  a task runs after its `dependentTasks`; upstream artifacts are handed over as the MLMD
  artifact's id (name), URI and metadata, typed `instanceSchema: ""` (no TFX type); task
  output parameters come from the producer's recorded outputs; each output artifact gets
  `<root>/<pipeline>/<run>/<task>/<uuid>/<key>` and the output file
  `LocalPathForURI(<task root>)/output_metadata.json`.
* cache, `backend/src/v2/cacheutils/cache.go: GenerateCacheKey` and `driver/container.go`:
  the key is input artifact names, input parameter values, output artifact specs without
  URIs, output parameter types, image and raw command + args (no env); only tasks with
  `cachingOptions.enableCache`; a hit links the earlier execution's very artifacts and
  output parameters, and runs no pod.
* launcher, `backend/src/v2/component/launcher_v2.go` and `objectstore/object_store.go`:
  inputs downloaded from the store to `/gcs|s3|minio/<bucket>/<key>` (every object under the
  key, no delimiter: a zero-byte `dir/` marker becomes an empty file, and a key below it
  then fails with "not a directory"); parent dirs of outputs created; `{{$}}` and the
  `{{$.inputs.parameters[...]}}` placeholders substituted; the command run; the executor
  output read strictly (a missing file is an empty output); a `uri` in it overrides the
  artifact's and its metadata is merged; output parameters from `parameterValues`, else
  their files (missing: an error); every file under each output's local path uploaded
  (a missing path is skipped, empty dirs vanish), the key required under the root's bucket.
* pods: a fresh filesystem for the launcher's paths (a private mount namespace binding empty
  dirs on /gcs, /s3, /minio and /tmp/kfp), the container's env, and secrets as env from the
  platform spec (`driver/k8s.go`); other Kubernetes settings are checked, not applied.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import posixpath
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from tests.kfp_backend import rules
from tests.kfp_backend.store import ObjectStore

MOUNTS = ("gcs", "s3", "minio")
OUTPUT_PARAMETERS_DIR = "/tmp/kfp/outputs"  # driver.go: provisionOutputs
# kubeflow/Dockerfile's ENV: what every container starts with.
IMAGE_ENV = {"TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1"}


class TaskFailed(RuntimeError):
    """A task's pod (or the launcher around it) failed; the message ends with its log."""


@dataclass
class Artifact:
    """An artifact as ML Metadata records it."""

    id: int
    uri: str
    schema: str
    metadata: dict[str, Any]


@dataclass
class TaskRun:
    """One task of one run: executed (COMPLETE) or taken from the cache (CACHED)."""

    name: str
    state: str
    seconds: float
    outputs: dict[str, Artifact]
    parameters: dict[str, Any]
    fingerprint: str | None = None
    log: Path | None = None


@dataclass
class Backend:
    """One KFP deployment: its object store, secrets, ML Metadata and cache, across runs."""

    store: ObjectStore
    secrets: dict[str, dict[str, str]]
    work_dir: Path
    python_bin: str
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _cache: dict[str, TaskRun] = field(default_factory=dict)

    def run(self, package: Path, run_id: str, pipeline_root: str | None = None
            ) -> dict[str, TaskRun]:
        """Run every task of the package in dependency order; return them by task name."""
        spec, platform = rules.read_package(package.read_text(encoding="utf-8"))
        root = (pipeline_root or spec.default_pipeline_root).rstrip("/")
        problems = rules.problems(spec, root)
        if problems:
            raise ValueError("the backend refuses the run: " + "; ".join(problems))
        deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                           pb.PipelineDeploymentConfig())
        kubernetes = platform.platforms["kubernetes"].deployment_spec.executors \
            if "kubernetes" in platform.platforms else {}
        runs: dict[str, TaskRun] = {}
        for name in _order(spec):
            task = spec.root.dag.tasks[name]
            component = spec.components[task.component_ref.name]
            executor = deployment.executors[component.executor_label]
            config = kubernetes.get(component.executor_label)
            runs[name] = self._task(spec, root, run_id, name, task, component,
                                    executor.container, config, runs)
        return runs

    # The driver.

    def _task(self, spec, root, run_id, name, task, component, container, k8s_config,
              runs) -> TaskRun:
        started = time.monotonic()
        parameters = _parameters(task, component, runs)
        inputs = {key: runs[source.task_output_artifact.producer_task]
                  .outputs[source.task_output_artifact.output_artifact_key]
                  for key, source in task.inputs.artifacts.items()}
        task_root = f"{root}/{spec.pipeline_info.name}/{run_id}/{name}/{uuid.uuid4()}"
        executor_input = _executor_input(parameters, inputs, component, task_root)
        fingerprint = _cache_key(executor_input, component, container, k8s_config)
        if task.caching_options.enable_cache and fingerprint in self._cache:
            cached = self._cache[fingerprint]
            return TaskRun(name, "CACHED", time.monotonic() - started, cached.outputs,
                           cached.parameters, fingerprint)
        log = self.work_dir / run_id / f"{name}.log"
        outputs, out_parameters = self._launch(root, name, executor_input, container,
                                               k8s_config, log)
        run = TaskRun(name, "COMPLETE", time.monotonic() - started, outputs, out_parameters,
                      fingerprint, log)
        if task.caching_options.enable_cache:
            self._cache[fingerprint] = run
        return run

    # The launcher.

    def _launch(self, root, name, executor_input: pb.ExecutorInput, container, k8s_config,
                log: Path) -> tuple[dict[str, Artifact], dict[str, Any]]:
        pod = log.parent / f"{name}.pod"
        shutil.rmtree(pod, ignore_errors=True)
        for mount in (*MOUNTS, "tmp-kfp", "home"):
            (pod / mount).mkdir(parents=True)
        for artifact_list in executor_input.inputs.artifacts.values():
            for artifact in artifact_list.artifacts:
                self._download(artifact.uri, pod)
        for artifact_list in executor_input.outputs.artifacts.values():
            Path(_host(pod, artifact_list.artifacts[0].uri)).parent.mkdir(parents=True,
                                                                          exist_ok=True)
        command = _substitute([*container.command, *container.args], executor_input)
        env = {"PATH": f"{self.python_bin}:/usr/local/bin:/usr/bin:/bin",
               "HOME": str(pod / "home"), **IMAGE_ENV,
               **{item.name: item.value for item in container.env},
               **self._secret_env(k8s_config)}
        _run_in_pod(command, env, pod, log)
        output = _executor_output(pod, executor_input.outputs.output_file)
        parameters = _output_parameters(executor_input, output, pod)
        outputs = {}
        for key, artifact_list in executor_input.outputs.artifacts.items():
            artifact = artifact_list.artifacts[0]
            if output.artifacts.get(key) and output.artifacts[key].artifacts:
                _merge(output.artifacts[key].artifacts[0], artifact)
            self._upload(root, artifact.uri, pod)
            metadata = json_format.MessageToDict(artifact.metadata)
            metadata |= {"display_name": key, "store_session_info": "{}"}
            outputs[key] = Artifact(next(self._ids), artifact.uri,
                                    _schema(artifact.type), metadata)
        return outputs, parameters

    def _secret_env(self, k8s_config) -> dict[str, str]:
        if k8s_config is None:
            return {}
        env = {}
        for secret in json_format.MessageToDict(k8s_config).get("secretAsEnv", []):
            values = self.secrets[secret["secretName"]]
            for item in secret["keyToEnv"]:
                env[item["envVar"]] = values[item["secretKey"]]
        return env

    def _download(self, uri: str, pod: Path) -> None:
        bucket, key = _bucket_key(uri)
        local = Path(_host(pod, uri))
        for object_key in self.store.keys(bucket, key):
            if object_key != key and not object_key.startswith(key + "/"):
                continue  # a sibling prefix (isBlobKeyUnderPrefix)
            relative = posixpath.relpath(object_key, key)
            target = local if relative == "." else local / relative
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as error:
                raise TaskFailed(f"failed to download input artifact from remote storage URI "
                                 f"{uri}: mkdir {target.parent}: not a directory") from error
            body = self.store.client().get_object(Bucket=bucket, Key=object_key)["Body"]
            target.write_bytes(body.read())

    def _upload(self, root: str, uri: str, pod: Path) -> None:
        root_bucket, _ = _bucket_key(root)
        bucket, key = _bucket_key(uri)
        if bucket != root_bucket or not uri.startswith(root.split("://")[0]):
            raise TaskFailed(f"URI {uri} does not have expected bucket prefix {root_bucket}")
        local = Path(_host(pod, uri))
        if not local.exists():
            return  # "Local filepath does not exist": skipped, still recorded
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        for path in files:
            object_key = key if path == local else f"{key}/{path.relative_to(local).as_posix()}"
            self.store.client().put_object(Bucket=bucket, Key=object_key, Body=path.read_bytes())


def _order(spec: pb.PipelineSpec) -> list[str]:
    """Tasks in an order where each comes after its dependentTasks."""
    tasks = spec.root.dag.tasks
    done: list[str] = []
    while len(done) < len(tasks):
        ready = sorted(name for name, task in tasks.items() if name not in done
                       and set(task.dependent_tasks) <= set(done))
        if not ready:
            raise ValueError("the DAG has a cycle")
        done.append(ready[0])
    return done


def _parameters(task, component, runs) -> dict[str, Any]:
    values = {}
    for key, source in task.inputs.parameters.items():
        if source.HasField("runtime_value"):
            values[key] = json_format.MessageToDict(source.runtime_value.constant)
        elif source.HasField("task_output_parameter"):
            producer = runs[source.task_output_parameter.producer_task]
            value = producer.parameters.get(source.task_output_parameter.output_parameter_key)
            if value is None:
                raise TaskFailed(f"{key}: no value from {producer.name}")
            values[key] = value
        else:
            raise NotImplementedError(f"{key}: only constants and task outputs are used here")
    for key, definition in component.input_definitions.parameters.items():
        if key not in values and definition.HasField("default_value"):
            values[key] = json_format.MessageToDict(definition.default_value)
        expected = pb.ParameterType.ParameterTypeEnum.Name(definition.parameter_type)
        if expected == "STRING" and key in values and not isinstance(values[key], str):
            values[key] = json.dumps(values[key])  # resolveInputs: non-strings become JSON
    return values


def _executor_input(parameters, inputs: dict[str, Artifact], component,
                    task_root: str) -> pb.ExecutorInput:
    executor_input = pb.ExecutorInput()
    for key, value in parameters.items():
        json_format.ParseDict(value, executor_input.inputs.parameter_values[key])
    for key, artifact in inputs.items():
        handed = executor_input.inputs.artifacts[key].artifacts.add()
        handed.name, handed.uri = str(artifact.id), artifact.uri
        handed.type.instance_schema = ""  # GetOutputArtifactsByExecutionId: no schema
        handed.metadata.update(artifact.metadata)
    for key, spec in component.output_definitions.artifacts.items():
        output = executor_input.outputs.artifacts[key].artifacts.add()
        output.name, output.uri = key, f"{task_root}/{key}"
        output.type.CopyFrom(spec.artifact_type)
        if spec.HasField("metadata"):
            output.metadata.CopyFrom(spec.metadata)
    for key in component.output_definitions.parameters:
        executor_input.outputs.parameters[key].output_file = f"{OUTPUT_PARAMETERS_DIR}/{key}"
    executor_input.outputs.output_file = _local(task_root) + "/output_metadata.json"
    return executor_input


def _cache_key(executor_input: pb.ExecutorInput, component, container, k8s_config) -> str:
    key = {
        "inputArtifactNames": {k: {"artifactNames": [a.name for a in v.artifacts]}
                               for k, v in executor_input.inputs.artifacts.items()},
        "inputParameterValues": json_format.MessageToDict(executor_input.inputs)
        .get("parameterValues", {}),
        "outputArtifactsSpec": {k: {"name": k, "type": json_format.MessageToDict(
            v.artifacts[0].type)} for k, v in executor_input.outputs.artifacts.items()},
        "outputParametersSpec": {k: pb.ParameterType.ParameterTypeEnum.Name(v.parameter_type)
                                 for k, v in component.output_definitions.parameters.items()},
        "containerSpec": {"image": container.image,
                          "cmdArgs": [*container.command, *container.args],
                          "pvcNames": sorted(m.get("constant", "") for m in (
                              json_format.MessageToDict(k8s_config).get("pvcMount", [])
                              if k8s_config is not None else []))},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def _substitute(command: list[str], executor_input: pb.ExecutorInput) -> list[str]:
    """launcher_v2.go: compileCmdAndArgs / getPlaceholders, for what this project uses."""
    serialized = json_format.MessageToJson(executor_input, indent=None)
    values = json_format.MessageToDict(executor_input.inputs).get("parameterValues", {})
    result = []
    for arg in command:
        arg = arg.replace("{{$}}", serialized)
        for key, value in values.items():
            text = value if isinstance(value, str) else json.dumps(value)
            arg = arg.replace(f"{{{{$.inputs.parameters['{key}']}}}}", text)
        if "{{$." in arg:
            raise TaskFailed(f"placeholder the launcher leaves unresolved: {arg[:200]}")
        result.append(arg)
    return result


def _run_in_pod(command: list[str], env: dict[str, str], pod: Path, log: Path) -> None:
    """The command with the pod's own empty /gcs, /s3, /minio and /tmp/kfp, in a private
    mount namespace (so nothing of an earlier task, or of the host, is there)."""
    for mount in MOUNTS:
        os.makedirs(f"/{mount}", exist_ok=True)
    os.makedirs("/tmp/kfp", exist_ok=True)
    binds = " && ".join([f'mount --bind "$POD/{m}" /{m}' for m in MOUNTS]
                        + ['mount --bind "$POD/tmp-kfp" /tmp/kfp', 'exec "$@"'])
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", binds, "sh",
             *command], env={**env, "POD": str(pod)}, cwd=pod / "home", stdout=out,
            stderr=subprocess.STDOUT, timeout=1800, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-4000:]
        raise TaskFailed(f"{log.stem}: exit code {result.returncode}; log {log}:\n{tail}")


def _executor_output(pod: Path, output_file: str) -> pb.ExecutorOutput:
    path = Path(_host_path(pod, output_file))
    if not path.exists():
        return pb.ExecutorOutput()  # "output metadata file does not exist"
    return json_format.Parse(path.read_text(), pb.ExecutorOutput())  # strict, like protojson


def _output_parameters(executor_input, output: pb.ExecutorOutput, pod: Path) -> dict[str, Any]:
    values = json_format.MessageToDict(output).get("parameterValues", {})
    for key, parameter in executor_input.outputs.parameters.items():
        if key not in values:
            path = pod / "tmp-kfp" / os.path.relpath(parameter.output_file, "/tmp/kfp")
            if not path.exists():
                raise TaskFailed(f"failed to read output parameter name={key!r} path={path}")
            values[key] = path.read_text()
    return values


def _merge(source: pb.RuntimeArtifact, target: pb.RuntimeArtifact) -> None:
    """launcher_v2.go: mergeRuntimeArtifacts."""
    if source.uri:
        target.uri = source.uri
    if source.HasField("metadata"):
        merged = json_format.MessageToDict(target.metadata) | json_format.MessageToDict(
            source.metadata)
        target.metadata.Clear()
        target.metadata.update(merged)


def _schema(type_schema: pb.ArtifactTypeSchema) -> str:
    """launcher_v2.go: getArtifactSchema."""
    if type_schema.WhichOneof("kind") == "schema_title":
        return "title: " + type_schema.schema_title
    return type_schema.instance_schema


def _bucket_key(uri: str) -> tuple[str, str]:
    scheme, rest = uri.split("://", 1)
    if scheme not in ("s3", "minio"):
        raise TaskFailed(f"{uri}: this stand-in has an S3-compatible store only")
    bucket, _, key = rest.partition("/")
    return bucket, key.rstrip("/")


def _local(uri: str) -> str:
    for scheme, mount in rules.LAUNCHER_SCHEMES.items():
        if uri.startswith(scheme):
            return mount + uri[len(scheme):]
    raise TaskFailed(f"failed to generate local path for URI {uri}: unsupported storage scheme")


def _host_path(pod: Path, local: str) -> str:
    """Where the pod's local path is on this machine (the dirs bound into the pod)."""
    if local.startswith("/tmp/kfp/"):
        return str(pod / "tmp-kfp" / local[len("/tmp/kfp/"):])
    return str(pod / local.lstrip("/"))


def _host(pod: Path, uri: str) -> str:
    return _host_path(pod, _local(uri))
