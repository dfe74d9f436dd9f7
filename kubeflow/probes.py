"""What the probe tasks of the compiled pipeline run: `python -m kubeflow.probes span|served`.

KFP caches a task on its input artifacts' ids and its parameter values
(`backend/src/v2/cacheutils/cache.go`), so a task whose real input is outside the pipeline
(a dataset folder that gains spans, a serving dir that someone rolls back) would be a cache
hit forever. A probe is a small uncached task that looks at that outside input and outputs
what it found as parameters; the task that reads it takes them as inputs, so it is a cache
hit exactly while they are unchanged (kubeflow/caching.py wires them).

* `span`: TFX's own span resolution and input fingerprint (what Vertex's ExampleGen driver
  hook computes; open-source KFP runs no hooks): `span`, `input_fingerprint`, and
  `input_config` with the span filled into its patterns.
* `served`: `served_baseline`, the served version the candidate must not be worse than
  (`<version>@<identity>`), `self@<identity>` when the candidate itself is served, or
  `none@<when>` when nothing is. A value new on every probe that finds nothing served: an
  emptied serving dir is a cache miss on every tick (never the decision of an earlier tick
  that pushed into an empty dir), so the next tick refills it.

Both write KFP's ExecutorOutput `parameterValues` to the executor input's output file, the
launcher's first source for output parameters (`launcher_v2.go: collectOutputParameters`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from kubeflow.storage import local_path

SPAN_OUTPUTS = {"span": "NUMBER_INTEGER", "input_fingerprint": "STRING",
                "input_config": "STRING"}
SERVED_OUTPUTS = {"served_baseline": "STRING"}


def resolve_span(parameters: dict) -> dict:
    """The span, fingerprint and span-resolved input config of an ExampleGen's parameters."""
    from tfx.components.example_gen import input_processor
    from tfx.proto import example_gen_pb2, range_config_pb2
    from tfx.utils import proto_utils

    input_config = proto_utils.json_to_proto(parameters["input_config"],
                                             example_gen_pb2.Input())
    range_config = None
    if parameters.get("range_config"):
        range_config = proto_utils.json_to_proto(parameters["range_config"],
                                                 range_config_pb2.RangeConfig())
    processor = input_processor.FileBasedInputProcessor(
        parameters["input_base"], input_config.splits, range_config)
    span, version = processor.resolve_span_and_version()
    if version is not None:
        raise ValueError("input_config: {VERSION} patterns are not supported on Kubeflow")
    for split in input_config.splits:
        split.pattern = processor.get_pattern_for_span_version(split.pattern, span, version)
    return {"span": span, "input_fingerprint": processor.get_input_fingerprint(span, version),
            "input_config": proto_utils.proto_to_json(input_config)}


def resolve_served(parameters: dict, artifacts: dict) -> dict:
    """The served version the candidate (downloaded by the launcher) is compared with."""
    from tfx.utils import path_utils

    from components.versioned_pusher.serving_dir import nothing_served, served_baseline

    candidate = artifacts["candidate"]
    candidate_dir = path_utils.serving_model_path(local_path(candidate) or candidate)
    baseline = served_baseline(parameters["serving_dir"], candidate_dir)
    moment = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
    return {"served_baseline": baseline or nothing_served(moment)}


def run(kind: str, executor_input: pb.ExecutorInput) -> dict:
    """The output parameters of probe `kind` for this executor input."""
    parameters = json_format.MessageToDict(executor_input.inputs)["parameterValues"]
    artifacts = {key: items.artifacts[0].uri
                 for key, items in executor_input.inputs.artifacts.items()}
    return resolve_span(parameters) if kind == "span" else resolve_served(parameters, artifacts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubeflow.probes")
    parser.add_argument("kind", choices=("span", "served"))
    parser.add_argument("--executor_input", required=True, help="KFP's {{$}}")
    args = parser.parse_args(argv)
    executor_input = json_format.Parse(args.executor_input, pb.ExecutorInput(),
                                       ignore_unknown_fields=True)
    found = run(args.kind, executor_input)
    print(f"probe {args.kind}: {json.dumps(found)}", flush=True)
    output = pb.ExecutorOutput()
    for key, value in found.items():
        json_format.ParseDict(value, output.parameter_values[key])
    output_file = executor_input.outputs.output_file
    os.makedirs(os.path.dirname(output_file), exist_ok=True)
    with open(output_file, "w", encoding="utf-8") as file:
        file.write(json_format.MessageToJson(output))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
