"""Container entrypoint of every executor: TFX's KFP v2 entrypoint, with input types restored
and artifacts read and written where KFP's launcher moves them.

Local paths: the open-source launcher downloads each input artifact to a local path before the
command runs and uploads each output artifact from its local path afterwards
(kubeflow/storage.py). TFX executors use the URIs they are given, so every artifact URI is
handed to TFX as that local path, and TFX's executor output is mapped back to the URIs: no
TensorFlow remote filesystem is involved, on gs://, s3:// and minio:// alike, and nothing
writes the zero-byte "directory" objects that break the launcher's downloads
(kubeflow/pipelines#13476).

Types: the open-source KFP v2 driver resolves input artifacts from its ML Metadata without their
TFX type schema: empty, or a generic `system.*` title (e.g. tfx.Examples arrives as
system.Dataset). TFX's entrypoint then can't find the artifact class, or builds one without
properties such as `split_names` (tensorflow/tfx#7768). Each input's declared type is in the
inputs spec that pipeline spec 2.1 passes on the command line, so it is put back from there
before TFX parses the inputs. Vertex AI passes the types, and then nothing changes.

Backend outputs: the open-source driver adds output artifacts of its own to a task's executor
input, e.g. `executor-logs` (`system.Artifact`), which the launcher writes the task's log to and
uploads (`publish_logs`, on by default: `backend/src/v2/driver/driver.go: provisionOutputs`).
TFX declares only `tfx.*` types and can't import `system.*` ones, so every output of a KFP
`system.*` type, or of none, is taken out before TFX parses the outputs; the launcher still
uploads and records it, as it does for any output the executor output doesn't mention.
"""

from __future__ import annotations

import argparse
import json

import yaml
from absl import app, logging
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb
from tfx.dsl.io import fileio
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

from kubeflow.storage import local_path, remote_uri
from pipeline.beam_workers import resolve_worker_count


def _title(type_schema: pb.ArtifactTypeSchema) -> str:
    kind = type_schema.WhichOneof("kind")
    if kind == "schema_title":
        return type_schema.schema_title
    if kind == "instance_schema":
        return (yaml.safe_load(type_schema.instance_schema) or {}).get("title") or ""
    return ""


def restore_input_types(invocation_json: str, inputs_spec_json: str | None) -> str:
    """The executor input with each untyped or `system.*`-typed input given its declared type."""
    if not inputs_spec_json:
        return invocation_json
    executor_input = json_format.Parse(invocation_json, pb.ExecutorInput(),
                                       ignore_unknown_fields=True)
    inputs_spec = json_format.Parse(inputs_spec_json, pb.ComponentInputsSpec(),
                                    ignore_unknown_fields=True)
    changed = False
    present = executor_input.inputs.artifacts
    for key, declared in inputs_spec.artifacts.items():
        # Optional inputs left unset must stay absent: indexing a proto map would add them.
        for artifact in present[key].artifacts if key in present else ():
            title = _title(artifact.type)
            if not title or title.startswith("system."):
                artifact.type.CopyFrom(declared.artifact_type)
                changed = True
    # Untouched input passes through as it came, byte for byte.
    return json.dumps(json_format.MessageToDict(executor_input)) if changed else invocation_json


def drop_backend_outputs(invocation_json: str) -> str:
    """The executor input without the outputs the backend added for itself (see above)."""
    executor_input = json_format.Parse(invocation_json, pb.ExecutorInput(),
                                       ignore_unknown_fields=True)
    outputs = executor_input.outputs.artifacts
    backend = [key for key, artifact_list in outputs.items()
               if not any(_is_tfx_type(artifact.type) for artifact in artifact_list.artifacts)]
    if not backend:
        return invocation_json
    for key in backend:
        del outputs[key]
    logging.info("outputs left to the launcher: %s", ", ".join(sorted(backend)))
    return json.dumps(json_format.MessageToDict(executor_input))


def _is_tfx_type(type_schema: pb.ArtifactTypeSchema) -> bool:
    title = _title(type_schema)
    return bool(title) and not title.startswith("system.")


def _artifact_lists(message: pb.ExecutorInput | pb.ExecutorOutput):
    if isinstance(message, pb.ExecutorInput):
        return [*message.inputs.artifacts.values(), *message.outputs.artifacts.values()]
    return list(message.artifacts.values())


def localize(invocation_json: str) -> str:
    """The executor input with every artifact URI the launcher moves replaced by its local
    path; other URIs (a local volume, Vertex's /gcs/ already) stay as they are."""
    executor_input = json_format.Parse(invocation_json, pb.ExecutorInput(),
                                       ignore_unknown_fields=True)
    changed = False
    for artifact_list in _artifact_lists(executor_input):
        for artifact in artifact_list.artifacts:
            path = local_path(artifact.uri)
            if path is not None:
                artifact.uri, changed = path, True
    return json.dumps(json_format.MessageToDict(executor_input)) if changed else invocation_json


def _remote_strings(value):
    """A metadata value with every launcher-local path in it given back as its URI."""
    if isinstance(value, str):
        return remote_uri(value) or value
    if isinstance(value, dict):
        return {key: _remote_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_remote_strings(item) for item in value]
    return value


def restore_remote_uris(executor_output_json: str) -> str:
    """TFX's executor output with artifact URIs (and paths in their metadata, e.g. a blessing's
    model) given back as the URIs the launcher uploads to and records."""
    output = json_format.Parse(executor_output_json, pb.ExecutorOutput(),
                               ignore_unknown_fields=True)
    for artifact_list in _artifact_lists(output):
        for artifact in artifact_list.artifacts:
            artifact.uri = remote_uri(artifact.uri) or artifact.uri
            if artifact.HasField("metadata"):
                metadata = _remote_strings(json_format.MessageToDict(artifact.metadata))
                artifact.metadata.Clear()
                artifact.metadata.update(metadata)
    return json_format.MessageToJson(output, sort_keys=True)


def parse_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """TFX's own flags and Beam args, with the executor input's types restored, the backend's
    own outputs taken out, its artifacts at the launcher's local paths and Beam's worker
    count `0` resolved against this pod's CPU limit."""
    # TFX's own parser (private, pinned with TFX 1.16), so flags mean exactly what they did.
    args, beam_args = kubeflow_v2_run_executor._parse_flags(argv)  # pylint: disable=W0212
    args.json_serialized_invocation_args = localize(drop_backend_outputs(restore_input_types(
        args.json_serialized_invocation_args, args.json_serialized_inputs_spec_args)))
    return args, resolve_worker_count(beam_args)


def main(parsed: tuple[argparse.Namespace, list[str]]) -> None:
    """Run TFX's executor entrypoint, then give its executor output back the remote URIs."""
    kubeflow_v2_run_executor.main(parsed)
    output_file = json.loads(parsed[0].json_serialized_invocation_args)["outputs"]["outputFile"]
    # TFX's own file API: a local path on open-source KFP, a gs:// one on Vertex.
    with fileio.open(output_file, "r") as file:
        restored = restore_remote_uris(file.read())
    with fileio.open(output_file, "w") as file:
        file.write(restored)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
