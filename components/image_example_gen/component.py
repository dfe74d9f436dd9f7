"""ImageExampleGen: a FileBasedExampleGen for IDX files, image folders, TFRecords and CSV
manifests."""

from __future__ import annotations

from tfx.components.example_gen import component
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

from components.code_version import code_version
from components.image_example_gen.custom_config import ExampleGenOptions, to_custom_config
from components.image_example_gen.executor import Executor
from components.image_example_gen.layout import input_patterns
from components.image_example_gen.options import DatasetConfig
from transform.image_limits import ImageLimits


def make_input_config(dataset: DatasetConfig) -> example_gen_pb2.Input:
    """train / eval / test splits with the patterns of the dataset's format and layout."""
    return example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=name, pattern=pattern)
        for name, pattern in input_patterns(dataset).items()])


class ImageExampleGen(component.FileBasedExampleGen):
    """Ingests one dataset into train / eval / test tf.Examples (image, label, label_name).

    `label_names` are the output classes in label order; examples of other classes are
    left out. An unlabelled image folder has none (`dataset.labelled` false). The
    FileBasedDriver resolves span folders, as for TFX's own ExampleGens.
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, dataset: DatasetConfig, label_names: list[str], seed: int,
                 limits: ImageLimits = ImageLimits()):
        unlabelled_folder = dataset.format == "image_folder" and not dataset.labelled
        if len(set(label_names)) != len(label_names) or bool(label_names) == unlabelled_folder:
            raise ValueError(f"label_names must be distinct, and empty only for an unlabelled "
                             f"image folder; got {label_names}")
        super().__init__(
            input_base=dataset.path,
            input_config=make_input_config(dataset),
            custom_config=to_custom_config(
                ExampleGenOptions(dataset, list(label_names), seed, limits),
                code_version("components/image_example_gen", "transform/image_limits.py")),
            custom_executor_spec=executor_spec.BeamExecutorSpec(Executor))
