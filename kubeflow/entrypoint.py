"""Container entrypoint of every executor: TFX's KFP v2 entrypoint, with input types restored.

The open-source KFP v2 driver resolves input artifacts from its ML Metadata without their
TFX type schema: empty, or a generic `system.*` title (e.g. tfx.Examples arrives as
system.Dataset). TFX's entrypoint then can't find the artifact class, or builds one without
properties such as `split_names` (tensorflow/tfx#7768). Each input's declared type is in the
inputs spec that pipeline spec 2.1 passes on the command line, so it is put back from there
before TFX parses the inputs. Vertex AI passes the types, and then nothing changes.
"""

from __future__ import annotations

import argparse
import json

import yaml
from absl import app
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor

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


def parse_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """TFX's own flags and Beam args, with the executor input's types restored and Beam's
    worker count `0` resolved against this pod's CPU limit."""
    # TFX's own parser (private, pinned with TFX 1.16), so flags mean exactly what they did.
    args, beam_args = kubeflow_v2_run_executor._parse_flags(argv)  # pylint: disable=W0212
    args.json_serialized_invocation_args = restore_input_types(
        args.json_serialized_invocation_args, args.json_serialized_inputs_spec_args)
    return args, resolve_worker_count(beam_args)


if __name__ == "__main__":
    app.run(kubeflow_v2_run_executor.main, flags_parser=parse_flags)
