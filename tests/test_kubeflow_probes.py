"""The probes: what a scheduled run learns from outside the pipeline, as parameters that go
into the cache keys of the tasks after them."""

from __future__ import annotations

import json
import shutil

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2 as pb

from components.image_example_gen.component import make_input_config
from components.image_example_gen.options import DatasetConfig
from components.versioned_pusher.serving_dir import model_identity
from kubeflow import probes
from tests.image_files import write_image_folder


def _span(root) -> dict:
    dataset = DatasetConfig(format="image_folder", path=str(root))
    return probes.resolve_span({"input_base": str(root), "input_config": json_format.MessageToJson(
        make_input_config(dataset))})


def test_the_span_probe_finds_the_newest_span_and_fingerprints_it(tmp_path):
    write_image_folder(tmp_path / "span-1", {"a": 2, "b": 2})
    first = _span(tmp_path)
    assert first["span"] == 1
    assert all(split["pattern"] == "span-1/*/*"
               for split in json.loads(first["input_config"])["splits"])
    assert _span(tmp_path) == first  # nothing new: the same key, a cache hit
    write_image_folder(tmp_path / "span-1", {"a": 3, "b": 2})  # a file added to the span
    changed = _span(tmp_path)
    assert changed["span"] == 1 and changed["input_fingerprint"] != first["input_fingerprint"]
    write_image_folder(tmp_path / "span-2", {"a": 2, "b": 2})
    assert _span(tmp_path)["span"] == 2


def test_probes_write_output_parameters_for_the_launcher(tmp_path):
    write_image_folder(tmp_path / "data" / "span-3", {"a": 1, "b": 1})
    dataset = DatasetConfig(format="image_folder", path=str(tmp_path / "data"))
    executor_input = pb.ExecutorInput()
    executor_input.inputs.parameter_values["input_base"].string_value = str(tmp_path / "data")
    executor_input.inputs.parameter_values["input_config"].string_value = \
        json_format.MessageToJson(make_input_config(dataset))
    executor_input.outputs.output_file = str(tmp_path / "task" / "output_metadata.json")
    assert probes.main(["span", "--executor_input",
                        json_format.MessageToJson(executor_input)]) == 0
    # Strict, as the launcher reads it (protojson), with the types its outputs declare.
    output = json_format.Parse((tmp_path / "task" / "output_metadata.json").read_text(),
                               pb.ExecutorOutput())
    assert set(output.parameter_values) == set(probes.SPAN_OUTPUTS)
    assert output.parameter_values["span"].number_value == 3


def _saved_model(path, content: str) -> str:
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_text(content)
    return str(path)


def _served(tmp_path, serving, candidate_uri: str) -> str:
    """The served probe's output, through the launcher's contract as the span probe's."""
    executor_input = pb.ExecutorInput()
    executor_input.inputs.parameter_values["serving_dir"].string_value = str(serving)
    executor_input.inputs.artifacts["candidate"].artifacts.add().uri = candidate_uri
    executor_input.outputs.output_file = str(tmp_path / "task" / "output_metadata.json")
    assert probes.main(["served", "--executor_input",
                        json_format.MessageToJson(executor_input)]) == 0
    output = json_format.Parse((tmp_path / "task" / "output_metadata.json").read_text(),
                               pb.ExecutorOutput())
    assert set(output.parameter_values) == set(probes.SERVED_OUTPUTS)
    return output.parameter_values["served_baseline"].string_value


def test_the_served_probe_tells_nothing_served_from_the_candidate_served(tmp_path):
    """Three states, distinct values: KFP keys served-model on them, so an emptied serving dir
    is a cache hit neither on the tick that found the candidate served nor on the tick that
    first found nothing served (and pushed): the next tick pushes again."""
    candidate = tmp_path / "candidate"
    _saved_model(candidate / "Format-Serving", "candidate")
    serving = tmp_path / "serving"
    nothing = _served(tmp_path, serving, str(candidate))
    shutil.copytree(candidate / "Format-Serving", serving / "100")
    itself = _served(tmp_path, serving, str(candidate))
    other = _served(tmp_path, serving, _saved_model(tmp_path / "other" / "Format-Serving",
                                                    "another model").rsplit("/", 1)[0])
    shutil.rmtree(serving)
    serving.mkdir()  # emptied by hand
    emptied = _served(tmp_path, serving, str(candidate))
    assert nothing.startswith("none@") and emptied.startswith("none@")
    assert nothing != emptied
    assert itself == f"self@{model_identity(str(candidate / 'Format-Serving'))}"
    assert other == f"100@{model_identity(str(candidate / 'Format-Serving'))}"
