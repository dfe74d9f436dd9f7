"""kubeflow/entrypoint.py: inputs that open-source KFP hands over untyped get their TFX type,
and the outputs its driver adds for itself never reach TFX."""

from __future__ import annotations

import json

import pytest
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as utils
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor
from tfx.types import standard_artifacts

from kubeflow.entrypoint import (drop_backend_outputs, localize, parse_flags, restore_input_types,
                                 restore_remote_uris)
from kubeflow.storage import remote_uri

EXAMPLES_SCHEMA = ("title: tfx.Examples\ntype: object\nproperties:\n  split_names:\n"
                   "    type: string\n")
INPUTS_SPEC = json.dumps({"artifacts": {
    "examples": {"artifactType": {"instanceSchema": EXAMPLES_SCHEMA}},
    "baseline_model": {"artifactType": {"instanceSchema": "title: tfx.Model\ntype: object\n"}},
}})


def _invocation(artifact_type: dict) -> str:
    """An executor input as the open-source KFP launcher writes it, for one Examples input."""
    return json.dumps({
        "inputs": {"artifacts": {"examples": {"artifacts": [{
            "name": "projects/p/artifacts/7", "type": artifact_type,
            "uri": "gs://bucket/root/run/examples",
            "metadata": {"split_names": '["train", "eval"]', "span": 0.0}}]}}},
        "outputs": {"outputFile": "/tmp/kfp_outputs/output_metadata.json"}})


def _parsed_examples(invocation: str) -> standard_artifacts.Examples:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    executor_input = json_format.Parse(invocation, pb.ExecutorInput())
    return utils.parse_raw_artifact_dict(executor_input.inputs.artifacts)["examples"][0]


@pytest.mark.parametrize("artifact_type", [
    {"schemaTitle": "system.Dataset"},  # what the open-source driver reports for Examples
    {"instanceSchema": ""},
    {},
])
def test_untyped_inputs_get_their_declared_type(artifact_type):
    examples = _parsed_examples(restore_input_types(_invocation(artifact_type), INPUTS_SPEC))
    assert isinstance(examples, standard_artifacts.Examples)
    assert examples.split_names == '["train", "eval"]'
    assert examples.uri == "gs://bucket/root/run/examples"


def test_typed_inputs_and_absent_optional_inputs_are_left_alone():
    invocation = _invocation({"instanceSchema": EXAMPLES_SCHEMA})
    assert restore_input_types(invocation, INPUTS_SPEC) is invocation
    restored = json.loads(restore_input_types(_invocation({}), INPUTS_SPEC))
    assert set(restored["inputs"]["artifacts"]) == {"examples"}  # no empty baseline_model


def test_without_an_inputs_spec_nothing_changes():
    invocation = _invocation({"schemaTitle": "system.Dataset"})
    assert restore_input_types(invocation, None) is invocation


def _with_outputs(outputs: dict[str, dict]) -> str:
    """An executor input with one output artifact of each given type, as the driver writes it."""
    invocation = json.loads(_invocation({"schemaTitle": "system.Dataset"}))
    invocation["outputs"]["artifacts"] = {
        key: {"artifacts": [{"type": artifact_type, "uri": f"gs://bucket/root/run/{key}"}]}
        for key, artifact_type in outputs.items()}
    return json.dumps(invocation)


def _parsed_outputs(invocation: str) -> dict:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2 as pb

    executor_input = json_format.Parse(invocation, pb.ExecutorInput())
    return utils.parse_raw_artifact_dict(executor_input.outputs.artifacts)


# What open-source KFP's driver adds to every task with publish_logs on (driver.go:
# provisionOutputs), and TFX's v2 entrypoint can't parse.
EXECUTOR_LOGS = {"executor-logs": {"schemaTitle": "system.Artifact"}}
MODEL_OUTPUT = {"model": {"instanceSchema": "title: tfx.Model\ntype: object\n"}}


def test_tfx_alone_fails_on_the_drivers_executor_logs_output():
    with pytest.raises(ImportError, match="system.Artifact"):
        _parsed_outputs(_with_outputs({**MODEL_OUTPUT, **EXECUTOR_LOGS}))


@pytest.mark.parametrize("backend_output", [
    EXECUTOR_LOGS, {"other-log": {"schemaTitle": "system.Metrics"}}, {"untyped": {}}])
def test_backend_outputs_are_left_to_the_launcher_and_tfx_outputs_kept(backend_output):
    outputs = _parsed_outputs(drop_backend_outputs(_with_outputs({**MODEL_OUTPUT,
                                                                  **backend_output})))
    assert list(outputs) == ["model"]
    assert isinstance(outputs["model"][0], standard_artifacts.Model)
    assert outputs["model"][0].uri == "gs://bucket/root/run/model"


def test_without_backend_outputs_nothing_changes():
    invocation = _with_outputs(MODEL_OUTPUT)
    assert drop_backend_outputs(invocation) is invocation


def test_flags_are_tfx_flags_with_beam_args_passed_through():
    argv = ["entrypoint", "--executor_class_path", "trainer.Executor",
            "--json_serialized_invocation_args", _invocation({"schemaTitle": "system.Dataset"}),
            "--json_serialized_inputs_spec_args", INPUTS_SPEC, "--direct_num_workers=2"]
    args, beam_args = parse_flags(argv)
    assert args.executor_class_path == "trainer.Executor"
    assert "tfx.Examples" in args.json_serialized_invocation_args
    logs = ["--json_serialized_invocation_args",
            _with_outputs({**MODEL_OUTPUT, **EXECUTOR_LOGS})]
    args, _ = parse_flags(argv[:3] + logs + argv[5:])
    assert "executor-logs" not in args.json_serialized_invocation_args
    assert beam_args == kubeflow_v2_run_executor._parse_flags(argv)[1]  # exactly as TFX's
    assert beam_args[-1] == "--direct_num_workers=2"


def _executor_input(uri: str, output_uri: str) -> str:
    return json.dumps({
        "inputs": {"artifacts": {"examples": {"artifacts": [{"name": "7", "uri": uri}]}}},
        "outputs": {"artifacts": {"model": {"artifacts": [{"name": "model", "uri": output_uri}]}},
                    "outputFile": "/minio/b/root/run/task/1/output_metadata.json"}})


@pytest.mark.parametrize("uri, local", [
    # launcher_v2.go: LocalPathForURI
    ("gs://bucket/root/run/examples", "/gcs/bucket/root/run/examples"),
    ("s3://bucket/root/run/examples", "/s3/bucket/root/run/examples"),
    ("minio://mlpipeline/v2/artifacts/examples", "/minio/mlpipeline/v2/artifacts/examples"),
])
def test_artifacts_are_read_and_written_where_the_launcher_moves_them(uri, local):
    localized = json.loads(localize(_executor_input(uri, uri + "-model")))
    assert localized["inputs"]["artifacts"]["examples"]["artifacts"][0]["uri"] == local
    assert localized["outputs"]["artifacts"]["model"]["artifacts"][0]["uri"] == local + "-model"
    assert remote_uri(local) == uri


def test_uris_the_launcher_does_not_move_are_left_alone():
    invocation = _executor_input("/mnt/volume/examples", "/gcs/bucket/already/local")
    assert localize(invocation) is invocation


def test_the_executor_output_gets_the_uris_back():
    # What TFX writes after running on local paths: URIs and paths in metadata are local.
    output = json.dumps({"artifacts": {"blessing": {"artifacts": [{
        "uri": "/minio/mlpipeline/root/run/evaluator/1/blessing",
        "metadata": {"current_model": "/minio/mlpipeline/root/run/trainer/2/model",
                     "blessed": 1.0, "note": "/elsewhere/stays"}}]}}})
    restored = json.loads(restore_remote_uris(output))["artifacts"]["blessing"]["artifacts"][0]
    assert restored["uri"] == "minio://mlpipeline/root/run/evaluator/1/blessing"
    assert restored["metadata"] == {"current_model": "minio://mlpipeline/root/run/trainer/2/model",
                                    "blessed": 1.0, "note": "/elsewhere/stays"}
