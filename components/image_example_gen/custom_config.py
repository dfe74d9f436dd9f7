"""The component's custom_config: the dataset options, output label names and seed."""

from __future__ import annotations

import dataclasses
from typing import Any

from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen.options import DatasetConfig
from transform.image_limits import ImageLimits


@dataclasses.dataclass(frozen=True)
class ExampleGenOptions:
    """Everything the executor needs besides the input patterns."""

    dataset: DatasetConfig
    label_names: list[str]  # output label i is label_names[i]
    seed: int
    limits: ImageLimits = ImageLimits()  # the run's image.max_pixels and image.max_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset.model_dump(mode="json"),
                "label_names": list(self.label_names), "seed": self.seed,
                "limits": dataclasses.asdict(self.limits)}


def to_custom_config(options: ExampleGenOptions,
                     code_version: str = "") -> example_gen_pb2.CustomConfig:
    """FileBasedExampleGen takes a CustomConfig proto; a Struct carries the JSON dict, and
    the executor's code version, which only keys the cache."""
    struct = struct_pb2.Struct()
    struct.update({**options.to_dict(), "code_version": code_version})
    config = example_gen_pb2.CustomConfig()
    config.custom_config.Pack(struct)
    return config


def from_exec_properties(exec_properties: dict[str, Any]) -> ExampleGenOptions:
    """Options from the executor's exec_properties (a JSON string, or the proto itself)."""
    value = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not value:
        raise ValueError("ImageExampleGen: custom_config is missing; build the component "
                         "with ImageExampleGen(dataset, label_names, seed)")
    if isinstance(value, str):
        value = proto_utils.json_to_proto(value, example_gen_pb2.CustomConfig())
    struct = struct_pb2.Struct()
    value.custom_config.Unpack(struct)
    data = json_format.MessageToDict(struct)
    # A Struct stores numbers as doubles; pydantic turns whole floats back into ints.
    return ExampleGenOptions(dataset=DatasetConfig.model_validate(data["dataset"]),
                             label_names=list(data["label_names"]), seed=int(data["seed"]),
                             limits=ImageLimits(**{key: int(value) for key, value
                                                   in data["limits"].items()}))
