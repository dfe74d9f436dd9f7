"""The KFP backend stand-in's own rules (tests/kfp_backend), each on a one- or two-task package
run in the project's image: what the backend does that the pipeline test relies on, shown to
fail where the backend would fail. The rules' sources are in tests/kfp_backend/engine.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.kfp_backend import pods
from tests.kfp_backend.engine import (EXECUTOR_LOGS, LAUNCHER_DEFAULT_ROOT, Backend, TaskFailed,
                                      text_to_value)
from tests.kfp_backend.metadata import mariadb
from tests.kfp_backend.store import ACCESS_KEY, SECRET_KEY, seaweedfs

BUCKET = "mlpipeline"
ROOT = f"minio://{BUCKET}/rules"
# A task's program: reads the executor input ({{$}}), writes the executor output.
WRITE_OUTPUT = """
import json, os, sys
executor_input = json.loads(sys.argv[1])
output = json.loads(sys.argv[2])
path = executor_input["outputs"]["outputFile"]
os.makedirs(os.path.dirname(path), exist_ok=True)
for key, items in executor_input["outputs"].get("artifacts", {}).items():
    local = "/" + items["artifacts"][0]["uri"].replace("://", "/", 1)
    if key != "executor-logs":
        os.makedirs(os.path.dirname(local), exist_ok=True)
        open(local, "w").write(key)
for key, text in json.loads(sys.argv[3]).items():
    target = executor_input["outputs"]["parameters"][key]["outputFile"]
    os.makedirs(os.path.dirname(target), exist_ok=True)
    open(target, "w").write(text)
open(path, "w").write(json.dumps(output))
print("done", flush=True)
"""
SCHEMA = 'feature {\n  name: "x"\n  type: INT\n}\n'


def task(output: dict | None = None, files: dict | None = None, *, command=None,
         artifacts: dict | None = None, parameters: dict | None = None, after=(),
         inputs: dict | None = None) -> dict:
    """One task: by default WRITE_OUTPUT with that executor output and output-parameter files;
    artifacts key -> type schema, parameters key -> declared type."""
    return {"command": command or ["python", "-c", WRITE_OUTPUT, "{{$}}",
                                   json.dumps(output or {}), json.dumps(files or {})],
            "artifacts": artifacts if artifacts is not None else {"out": "system.Artifact"},
            "parameters": parameters or {}, "after": list(after), "inputs": inputs or {}}


def package(path: Path, tasks: dict[str, dict], default_root: str = ROOT,
            pvc: dict[str, str] | None = None, image: str = pods.IMAGE) -> Path:
    """A package as the KFP SDK compiles one (schema 2.1.0), tasks uncached."""
    components, executors, dag, platform = {}, {}, {}, {}
    for name, spec in tasks.items():
        outputs: dict = {}
        if spec["artifacts"]:
            outputs["artifacts"] = {
                key: {"artifactType": {"instanceSchema": f"title: {kind}\ntype: object\n"}
                      if kind.startswith("tfx.") else {"schemaTitle": kind}}
                for key, kind in spec["artifacts"].items()}
        if spec["parameters"]:
            outputs["parameters"] = {k: {"parameterType": v}
                                     for k, v in spec["parameters"].items()}
        components[f"comp-{name}"] = {"executorLabel": f"exec-{name}",
                                      "outputDefinitions": outputs}
        if spec["inputs"]:
            components[f"comp-{name}"]["inputDefinitions"] = {"parameters": {
                key: {"parameterType": "STRING"} for key in spec["inputs"]}}
        executors[f"exec-{name}"] = {"container": {"image": image,
                                                   "command": spec["command"]}}
        dag[name] = {"componentRef": {"name": f"comp-{name}"}, "taskInfo": {"name": name},
                     "cachingOptions": {}, "dependentTasks": spec["after"]}
        if spec["inputs"]:
            dag[name]["inputs"] = {"parameters": {
                key: {"runtimeValue": {"constant": value}}
                for key, value in spec["inputs"].items()}}
        if pvc:
            platform[f"exec-{name}"] = {"pvcMount": [
                {"constant": claim, "mountPath": mount} for claim, mount in pvc.items()]}
    documents = [{"components": components, "deploymentSpec": {"executors": executors},
                  "pipelineInfo": {"name": "rules"}, "root": {"dag": {"tasks": dag}},
                  "schemaVersion": "2.1.0", "sdkVersion": "kfp-2.5.0",
                  "defaultPipelineRoot": default_root}]
    if platform:
        documents.append({"platforms": {"kubernetes": {"deploymentSpec": {
            "executors": platform}}}})
    path.write_text(yaml.safe_dump_all(documents))
    return path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    work = tmp_path_factory.mktemp("kfp-rules")
    pods.image()
    with seaweedfs((BUCKET,), work) as store, mariadb(work) as metadata:
        yield store, metadata, work


@pytest.fixture
def backend(deployment, tmp_path):
    store, metadata, _ = deployment
    claim = tmp_path / "claim"
    claim.mkdir()
    return Backend(store, metadata, {"mlpipeline-minio-artifact": {
        "accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}}, tmp_path,
        volumes={"data": claim})


def test_metadata_comes_back_as_ml_metadata_stores_it(backend, tmp_path):
    metadata = {"flag": True, "count": 3, "names": ["a", "b"], "nested": {"a": [1]}, "s": "x"}
    output = {"artifacts": {"out": {"artifacts": [{"metadata": metadata}]}}}
    runs = backend.run(package(tmp_path / "p.yaml", {"writer": task(output)}), "r")
    assert runs["writer"].outputs["out"].metadata == {
        "flag": 1.0, "count": 3.0, "names": {"list": ["a", "b"]},
        "nested": {"struct": {"a": [1.0]}}, "s": "x",
        "display_name": "out", "store_session_info": backend._session_info()}


def test_a_null_in_output_metadata_fails_the_task(backend, tmp_path):
    output = {"artifacts": {"out": {"artifacts": [{"metadata": {"ok": 1, "served": None}}]}}}
    with pytest.raises(TaskFailed, match="failed to record output artifact 'out'.*null"):
        backend.run(package(tmp_path / "p.yaml", {"writer": task(output)}), "r")


def test_output_parameters_are_converted_by_their_declared_type(backend, tmp_path):
    tasks = {"writer": task(files={"flag": "true", "n": "42\n", "items": "[1]"},
                            parameters={"flag": "BOOLEAN", "n": "NUMBER_INTEGER",
                                        "items": "LIST"})}
    runs = backend.run(package(tmp_path / "p.yaml", tasks), "r")
    assert runs["writer"].parameters == {"flag": True, "n": 42.0, "items": [1]}
    bad = {"writer": task(files={"flag": "yes"}, parameters={"flag": "BOOLEAN"})}
    with pytest.raises(TaskFailed, match="name='flag' type=BOOLEAN.*TextToPbValue"):
        backend.run(package(tmp_path / "bad.yaml", bad), "r2")


@pytest.mark.parametrize("text, declared, expected", [
    ("3", "NUMBER_INTEGER", 3.0), (" 3 ", "NUMBER_INTEGER", 3.0), ("2.5", "NUMBER_DOUBLE", 2.5),
    ("1", "BOOLEAN", True), ("F", "BOOLEAN", False), ('{"a": 1}', "STRUCT", {"a": 1}),
    (" text\n", "STRING", " text\n"),
])
def test_output_parameter_text_as_go_parses_it(text, declared, expected):
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb
    assert text_to_value("p", text, pb.ParameterType.ParameterTypeEnum.Value(declared)) == expected


@pytest.mark.parametrize("text, declared", [
    ("3.0", "NUMBER_INTEGER"), ("1_000", "NUMBER_INTEGER"), ("yes", "BOOLEAN"),
    ('{"a": 1}', "LIST"), ("[1]", "STRUCT"),
])
def test_output_parameter_text_go_refuses(text, declared):
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb
    with pytest.raises(TaskFailed, match="TextToPbValue"):
        text_to_value("p", text, pb.ParameterType.ParameterTypeEnum.Value(declared))


def test_the_package_root_is_ignored_and_uploads_stay_under_the_run(backend, deployment,
                                                                    tmp_path):
    store, _, _ = deployment
    path = package(tmp_path / "p.yaml", {"writer": task()}, default_root=f"{ROOT}/ignored")
    runs = backend.run(path, "no-root")
    # No root in the run's runtimeConfig: the launcher's default, not defaultPipelineRoot.
    assert runs["writer"].outputs["out"].uri.startswith(f"{LAUNCHER_DEFAULT_ROOT}/rules/no-root/")
    elsewhere = {"artifacts": {"out": {"artifacts": [{"uri": f"{ROOT}/other-run/out"}]}}}
    with pytest.raises(TaskFailed, match="does not have expected bucket prefix"):
        backend.run(package(tmp_path / "q.yaml", {"writer": task(elsewhere)}), "r", ROOT)
    assert not store.keys(BUCKET, "rules/other-run/")


def test_every_task_gets_and_publishes_an_executor_logs_output(backend, deployment, tmp_path):
    store, _, _ = deployment
    runs = backend.run(package(tmp_path / "p.yaml", {"writer": task()}), "logs", ROOT)
    logs = runs["writer"].outputs[EXECUTOR_LOGS]
    assert logs.schema == "title: system.Artifact"
    body = store.client().get_object(Bucket=BUCKET, Key=logs.uri.split(f"{BUCKET}/", 1)[1])
    assert b"done" in body["Body"].read()
    backend.publish_logs = False
    assert EXECUTOR_LOGS not in backend.run(
        package(tmp_path / "q.yaml", {"writer": task()}), "nologs", ROOT)["writer"].outputs


def test_a_task_needing_a_dropped_capability_fails(backend, tmp_path):
    # chown needs CAP_CHOWN, which the backend's security context drops (ALL).
    chown = task(command=["sh", "-c", "touch /tmp/f && chown 65534 /tmp/f"], artifacts={})
    with pytest.raises(TaskFailed, match="Operation not permitted"):
        backend.run(package(tmp_path / "p.yaml", {"chown": chown}), "caps", ROOT)


def test_independent_ready_tasks_run_at_once(backend, tmp_path):
    sleep = task(command=["sh", "-c", "sleep 3"], artifacts={})
    tasks = {"a": sleep, "b": sleep, "c": {**sleep, "after": ["a", "b"]}}
    runs = backend.run(package(tmp_path / "p.yaml", tasks), "parallel", ROOT)
    a, b, c = runs["a"], runs["b"], runs["c"]
    assert a.started < b.started + b.seconds and b.started < a.started + a.seconds
    assert c.started >= max(a.started + a.seconds, b.started + b.seconds)


@pytest.mark.parametrize("entrypoint, fails", [
    (["python", "-m", "kubeflow.entrypoint"], False),
    # TFX's own entrypoint parses every output, and can't import system.Artifact.
    (["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"],
     True),
])
def test_tfx_tasks_survive_the_outputs_the_backend_adds(backend, deployment, tmp_path,
                                                        entrypoint, fails):
    store, _, _ = deployment
    (backend.volumes["data"] / "schema.pbtxt").write_text(SCHEMA)
    command = [*entrypoint, "--executor_class_path",
               "tfx.components.schema_gen.import_schema_gen.executor.Executor",
               "--json_serialized_invocation_args", "{{$}}",
               "--json_serialized_inputs_spec_args",
               json.dumps({"parameters": {"schema_file": {"parameterType": "STRING"}}})]
    schema_gen = task(command=command, artifacts={"schema": "tfx.Schema"},
                      inputs={"schema_file": "/data/schema.pbtxt"})
    path = package(tmp_path / "p.yaml", {"import-schema-gen": schema_gen}, pvc={"data": "/data"})
    if fails:
        with pytest.raises(TaskFailed, match="Could not import system.Artifact"):
            backend.run(path, "plain-tfx", ROOT)
        return
    schema = backend.run(path, "ours", ROOT)["import-schema-gen"].outputs["schema"]
    key = schema.uri.split(f"{BUCKET}/", 1)[1] + "/schema.pbtxt"
    assert store.client().get_object(Bucket=BUCKET, Key=key)["Body"].read() == SCHEMA.encode()
