"""The open-source KFP v2 driver, launcher and cache, running a compiled package's tasks in
the project's image (tests/kfp_backend/pods.py), on a real object store and ML Metadata.

Each rule is the backend's, read from kubeflow/pipelines 2.14-2.17 (docs/kubeflow.md has the
table by version):

* order, `backend/src/v2/compiler/argocompiler/dag.go` and Argo: a task starts once its
  `dependentTasks` succeeded; independent ready tasks run at once (no parallelism limit); after
  a failure no new task starts, running ones finish.
* pipeline root, `driver/root_dag.go`, `config/env.go`: the run's runtimeConfig root, else the
  `kfp-launcher` ConfigMap's, else `minio://mlpipeline/v2/artifacts`; the package's
  `defaultPipelineRoot` is never read.
* driver, `driver/driver.go`, `resolve.go`: upstream artifacts are handed over as ML Metadata
  reads them back (tests/kfp_backend/metadata.py): name = MLMD id, `instanceSchema: ""`, the
  metadata as MLMD converted it; each output artifact gets
  `<root>/<pipeline>/<run>/<task>/<uuid>/<key>`, the output file
  `LocalPathForURI(<task root>)/output_metadata.json`; with `publish_logs` (on by default)
  `provisionOutputs` adds the output `executor-logs` of type `system.Artifact`; a STRING input
  parameter takes any value as JSON text, other types must match.
* cache, `cacheutils/cache.go: GenerateCacheKey`, `driver/container.go`: the key is input
  artifact names, input parameter values, output artifact specs without URIs (executor-logs
  included), output parameter types, image and raw command + args; only tasks with
  `cachingOptions.enableCache`; a hit links the earlier execution's artifacts and parameters
  and runs no pod.
* launcher, `component/launcher_v2.go`, `objectstore/object_store.go`: inputs downloaded to
  `/gcs|s3|minio/<bucket>/<key>` (every object under the key, no delimiter: a zero-byte `dir/`
  marker becomes an empty file, and a key below it then fails); parent dirs of outputs
  created; `{{$}}` and `{{$.inputs.parameters[...]}}` substituted; the command's output
  written to the executor-logs file too; the executor output read strictly (missing: empty);
  its `uri` overrides the artifact's, its metadata is merged; output parameters from
  `parameterValues`, else their files, converted by declared type (`TextToPbValue`); every
  file under each output's local path uploaded (missing: skipped, empty dirs vanish), the URI
  required under `<root>/<pipeline>/<run>`; each output recorded in ML Metadata
  (`RecordArtifact`), a failure there failing the task.
* pods, `driver/k8s.go`: the container's env, secrets as env and PVCs from the platform spec,
  in the image with the backend's security context (tests/kfp_backend/pods.py).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from tests.kfp_backend import pods, rules
from tests.kfp_backend.metadata import Artifact, MetadataStore, RecordFailed
from tests.kfp_backend.store import ObjectStore

MOUNTS = ("gcs", "s3", "minio")
OUTPUT_PARAMETERS_DIR = "/tmp/kfp/outputs"  # driver.go: provisionOutputs
LAUNCHER_DEFAULT_ROOT = "minio://mlpipeline/v2/artifacts"  # config/env.go: defaultPipelineRoot
EXECUTOR_LOGS = "executor-logs"  # driver.go: provisionOutputs, with publish_logs
# The JSON kinds a non-STRING input parameter must be (driver.go: resolveInputs).
PARAMETER_KINDS = {"NUMBER_INTEGER": (int, float), "NUMBER_DOUBLE": (int, float),
                   "BOOLEAN": (bool,), "LIST": (list,), "STRUCT": (dict,)}


class TaskFailed(RuntimeError):
    """A task's pod (or the driver or launcher around it) failed."""


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
    started: float = 0.0


@dataclass
class Backend:
    """One KFP deployment: its object store, ML Metadata, secrets, PVCs and cache, across
    runs. hosts: in-cluster names the pods resolve (e.g. the store's service)."""

    store: ObjectStore
    metadata: MetadataStore
    secrets: dict[str, dict[str, str]]
    work_dir: Path
    volumes: dict[str, Path] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    publish_logs: bool = True
    parallelism: int = 4
    _cache: dict[str, TaskRun] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, package: Path, run_id: str, pipeline_root: str | None = None
            ) -> dict[str, TaskRun]:
        """Run the package's tasks, each once its dependencies succeeded; return them by task
        name. pipeline_root is the run's runtimeConfig root (kfp.Client's pipeline_root)."""
        spec, platform = rules.read_package(package.read_text(encoding="utf-8"))
        root = (pipeline_root or LAUNCHER_DEFAULT_ROOT).rstrip("/")
        problems = rules.problems(spec, root)
        if problems:
            raise ValueError("the backend refuses the run: " + "; ".join(problems))
        deployment = json_format.ParseDict(json_format.MessageToDict(spec.deployment_spec),
                                           pb.PipelineDeploymentConfig())
        kubernetes = platform.platforms["kubernetes"].deployment_spec.executors \
            if "kubernetes" in platform.platforms else {}

        def start(name: str, runs: dict[str, TaskRun]) -> TaskRun:
            task = spec.root.dag.tasks[name]
            component = spec.components[task.component_ref.name]
            executor = deployment.executors[component.executor_label]
            return self._task(spec, root, run_id, name, task, component, executor.container,
                              kubernetes.get(component.executor_label), runs)

        return self._schedule(spec, start)

    def _schedule(self, spec: pb.PipelineSpec, start) -> dict[str, TaskRun]:
        """Argo's DAG: every ready task started at once; after a failure, none."""
        tasks = spec.root.dag.tasks
        runs: dict[str, TaskRun] = {}
        running: dict[Future, str] = {}
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            while True:
                if failure is None:
                    for name in sorted(tasks):
                        if (name not in runs and name not in running.values()
                                and set(tasks[name].dependent_tasks) <= set(runs)):
                            running[pool.submit(start, name, dict(runs))] = name
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    if future.exception() is not None:
                        failure = failure or future.exception()
                    else:
                        runs[name] = future.result()
        if failure is not None:
            raise failure
        if len(runs) < len(tasks):
            raise ValueError("the DAG has a cycle")
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
        executor_input = _executor_input(parameters, inputs, component, task_root,
                                         self.publish_logs)
        fingerprint = _cache_key(executor_input, component, container, k8s_config)
        with self._lock:
            cached = self._cache.get(fingerprint) if task.caching_options.enable_cache else None
        if cached is not None:
            return TaskRun(name, "CACHED", time.monotonic() - started, cached.outputs,
                           cached.parameters, fingerprint, started=started)
        log = self.work_dir / run_id / f"{name}.log"
        run_root = f"{root}/{spec.pipeline_info.name}/{run_id}"
        outputs, out_parameters = self._launch(run_root, name, executor_input, component,
                                               container, k8s_config, log)
        run = TaskRun(name, "COMPLETE", time.monotonic() - started, outputs, out_parameters,
                      fingerprint, log, started)
        if task.caching_options.enable_cache:
            with self._lock:
                self._cache[fingerprint] = run
        return run

    # The launcher.

    def _launch(self, run_root, name, executor_input: pb.ExecutorInput, component, container,
                k8s_config, log: Path) -> tuple[dict[str, Artifact], dict[str, Any]]:
        pod = log.parent / f"{name}.pod"
        shutil.rmtree(pod, ignore_errors=True)
        for mount in (*MOUNTS, "tmp-kfp"):
            (pod / mount).mkdir(parents=True)
        for artifact_list in executor_input.inputs.artifacts.values():
            for artifact in artifact_list.artifacts:
                self._download(artifact.uri, pod)
        for artifact_list in executor_input.outputs.artifacts.values():
            Path(_host(pod, artifact_list.artifacts[0].uri)).parent.mkdir(parents=True,
                                                                          exist_ok=True)
        command = _substitute([*container.command, *container.args], executor_input)
        env = {**{item.name: item.value for item in container.env},
               **self._secret_env(k8s_config)}
        mounts = {str(pod / m): f"/{m}" for m in MOUNTS} | {str(pod / "tmp-kfp"): "/tmp/kfp"}
        mounts |= self._volumes(k8s_config)
        try:
            pods.run(command, env=env, mounts=mounts, hosts=self.hosts, log=log)
        except pods.PodFailed as error:
            raise TaskFailed(str(error)) from error
        finally:
            self._write_executor_logs(executor_input, pod, log)
        output = _executor_output(pod, executor_input.outputs.output_file)
        parameters = _output_parameters(executor_input, component, output, pod)
        outputs = {}
        for key, artifact_list in executor_input.outputs.artifacts.items():
            artifact = artifact_list.artifacts[0]
            if output.artifacts.get(key) and output.artifacts[key].artifacts:
                _merge(output.artifacts[key].artifacts[0], artifact)
            self._upload(run_root, artifact.uri, pod)
            try:
                with self._lock:
                    outputs[key] = self.metadata.record(key, _schema(artifact.type),
                                                        artifact.uri, artifact.metadata,
                                                        self._session_info())
            except RecordFailed as error:
                raise TaskFailed(f"{name}: failed to record output artifact {key!r}: "
                                 f"{error}") from error
        return outputs, parameters

    def _write_executor_logs(self, executor_input: pb.ExecutorInput, pod: Path,
                             log: Path) -> None:
        """launcher_v2.go: getLogWriter tees the command's output into the log artifact."""
        logs = executor_input.outputs.artifacts.get(EXECUTOR_LOGS)
        if logs is not None and log.exists():
            shutil.copyfile(log, _host(pod, logs.artifacts[0].uri))

    def _session_info(self) -> str:
        return json.dumps({"Provider": "minio", "Params": {
            "endpoint": self.store.endpoint.split("://", 1)[1], "disableSSL": "true",
            "fromEnv": "false", "secretName": "mlpipeline-minio-artifact",
            "accessKeyKey": "accesskey", "secretKeyKey": "secretkey"}})

    def _secret_env(self, k8s_config) -> dict[str, str]:
        if k8s_config is None:
            return {}
        env = {}
        for secret in json_format.MessageToDict(k8s_config).get("secretAsEnv", []):
            values = self.secrets[secret["secretName"]]
            for item in secret["keyToEnv"]:
                env[item["envVar"]] = values[item["secretKey"]]
        return env

    def _volumes(self, k8s_config) -> dict[str, str]:
        """driver/k8s.go: each pvcMount of the platform spec, from the deployment's PVCs."""
        if k8s_config is None:
            return {}
        mounts = {}
        for pvc in json_format.MessageToDict(k8s_config).get("pvcMount", []):
            claim = pvc.get("constant") or pvc.get("pvcName")
            if claim not in self.volumes:
                raise TaskFailed(f"persistentvolumeclaim {claim!r} not found")
            mounts[str(self.volumes[claim])] = pvc["mountPath"]
        return mounts

    def _download(self, uri: str, pod: Path) -> None:
        bucket, key = _bucket_key(uri)
        local = Path(_host(pod, uri))
        client = self.store.client()
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
            target.write_bytes(client.get_object(Bucket=bucket, Key=object_key)["Body"].read())

    def _upload(self, run_root: str, uri: str, pod: Path) -> None:
        if not uri.startswith(run_root):
            raise TaskFailed(f"URI {uri} does not have expected bucket prefix {run_root}")
        bucket, key = _bucket_key(uri)
        local = Path(_host(pod, uri))
        if not local.exists():
            return  # "Local filepath does not exist": skipped, still recorded
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file())
        client = self.store.client()
        for path in files:
            object_key = key if path == local else f"{key}/{path.relative_to(local).as_posix()}"
            client.put_object(Bucket=bucket, Key=object_key, Body=path.read_bytes())


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
        if key in values:
            values[key] = _input_parameter(key, values[key], definition.parameter_type)
    return values


def _input_parameter(key: str, value: Any, declared: int) -> Any:
    """driver.go: resolveInputs: a STRING takes anything (non-strings as JSON text); other
    types must already be of their kind."""
    expected = pb.ParameterType.ParameterTypeEnum.Name(declared)
    if expected == "STRING":
        return value if isinstance(value, str) else json.dumps(value)
    kinds = PARAMETER_KINDS.get(expected, ())
    if kinds and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
        raise TaskFailed(f'input parameter "{key}" type mismatch: expect {expected}, '
                         f"got {type(value).__name__}")
    return value


def _executor_input(parameters, inputs: dict[str, Artifact], component, task_root: str,
                    publish_logs: bool) -> pb.ExecutorInput:
    executor_input = pb.ExecutorInput()
    for key, value in parameters.items():
        json_format.ParseDict(value, executor_input.inputs.parameter_values[key])
    for key, artifact in inputs.items():
        handed = executor_input.inputs.artifacts[key].artifacts.add()
        handed.name, handed.uri = str(artifact.id), artifact.uri
        handed.type.instance_schema = ""  # GetOutputArtifactsByExecutionId: no schema
        handed.metadata.update(artifact.metadata)
    outputs = dict(component.output_definitions.artifacts)
    if publish_logs:
        outputs[EXECUTOR_LOGS] = pb.ComponentOutputsSpec.ArtifactSpec(
            artifact_type=pb.ArtifactTypeSchema(schema_title="system.Artifact"))
    for key, spec in outputs.items():
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


def _executor_output(pod: Path, output_file: str) -> pb.ExecutorOutput:
    path = Path(_host_path(pod, output_file))
    if not path.exists():
        return pb.ExecutorOutput()  # "output metadata file does not exist"
    return json_format.Parse(path.read_text(), pb.ExecutorOutput())  # strict, like protojson


def _output_parameters(executor_input, component, output: pb.ExecutorOutput,
                       pod: Path) -> dict[str, Any]:
    """launcher_v2.go: collectOutputParameters: parameterValues as they are, else the file's
    text converted by the declared type (converter.go: TextToPbValue)."""
    values = json_format.MessageToDict(output).get("parameterValues", {})
    for key, parameter in executor_input.outputs.parameters.items():
        if key in values:
            continue
        path = pod / "tmp-kfp" / posixpath.relpath(parameter.output_file, "/tmp/kfp")
        if not path.exists():
            raise TaskFailed(f"failed to read output parameter name={key!r} path={path}")
        declared = component.output_definitions.parameters[key].parameter_type
        values[key] = text_to_value(key, path.read_text(), declared)
    return values


def text_to_value(key: str, text: str, declared: int) -> Any:
    """converter.go: TextToPbValue: the text of an output parameter file as its type."""
    expected = pb.ParameterType.ParameterTypeEnum.Name(declared)
    try:
        if expected == "STRING":
            return text
        if expected == "NUMBER_INTEGER":
            if "_" in text:  # Python's int() takes digit separators, Go's ParseInt doesn't
                raise ValueError(f"strconv.ParseInt: parsing {text.strip()!r}: invalid syntax")
            return float(int(text.strip(), 10))
        if expected == "NUMBER_DOUBLE":
            return float(text.strip())
        if expected == "BOOLEAN":
            return _parse_bool(text.strip())
        value = json.loads(text)
        if not isinstance(value, list if expected == "LIST" else dict):
            raise ValueError(f"unexpected type {type(value).__name__}")
        return value
    except ValueError as error:
        raise TaskFailed(f"failed to read output parameter name={key!r} type={expected}: "
                         f"TextToPbValue(text={text!r}) failed: {error}") from error


def _parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"strconv.ParseBool: parsing {text!r}: invalid syntax")


def _merge(source: pb.RuntimeArtifact, target: pb.RuntimeArtifact) -> None:
    """launcher_v2.go: mergeRuntimeArtifacts."""
    if source.uri:
        target.uri = source.uri
    for key, value in source.metadata.fields.items():
        target.metadata.fields[key].CopyFrom(value)


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
    """Where the pod's local path is on this machine (the dirs mounted into the pod)."""
    if local.startswith("/tmp/kfp/"):
        return str(pod / "tmp-kfp" / local[len("/tmp/kfp/"):])
    return str(pod / local.lstrip("/"))


def _host(pod: Path, uri: str) -> str:
    return _host_path(pod, _local(uri))
