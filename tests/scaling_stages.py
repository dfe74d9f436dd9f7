"""The pipeline's own ExampleGen and Transform, run by their TFX executors with chosen Beam args.

The components come from the pipeline as a runner builds it (`pipeline.pipeline` for
LocalDagRunner, `kubeflow.runner` for Kubeflow), so their exec_properties are exactly the
pipeline's; only `beam_pipeline_args` change. Used by tests/test_scaling_beam.py and
bench/scaling_beam.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners.direct.direct_runner import DirectRunner
from google.protobuf import message
from tensorflow_transform.tf_metadata import schema_utils
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
from tfx.dsl.components.base.base_node import BaseNode
from tfx.types import standard_artifacts, standard_component_specs as specs
from tfx.utils import io_utils, proto_utils

from components.image_example_gen import Executor as ExampleGenExecutor
from kubeflow.runner import build_pipeline
from pipeline.config import PipelineConfig, parse_config
from pipeline.pipeline import create_pipeline
from transform.features import IMAGE_KEY, LABEL_KEY, LABEL_NAME_KEY

IN_MEMORY = ["--direct_running_mode=in_memory"]
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]


def multi_processing(workers: int) -> list[str]:
    """DirectRunner args: `workers` worker processes (0: one per core)."""
    return ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]


@dataclass(frozen=True)
class StageOutputs:
    """What ExampleGen and Transform wrote for one run."""

    examples: standard_artifacts.Examples
    transform_graph: standard_artifacts.TransformGraph
    transformed_examples: standard_artifacts.Examples


class RecordingRunner(DirectRunner):
    """The DirectRunner, keeping the runner API proto of every pipeline it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.pipelines: list[beam_runner_api_pb2.Pipeline] = []

    def run_pipeline(self, pipeline: beam.Pipeline, options: PipelineOptions):
        self.pipelines.append(pipeline.to_runner_api())
        return super().run_pipeline(pipeline, options)


def target_config(data_dir: str, root: str, classes: list[str],
                  label_budget: int | None) -> PipelineConfig:
    """A config whose datasets are the Fashion-MNIST IDX files in `data_dir`."""
    dataset = {"format": "idx", "path": data_dir, "class_names": FASHION_NAMES,
               "classes": classes, "label_budget": label_budget}
    return parse_config({
        "name": "scaling", "pipeline_root": os.path.join(root, "pipeline"),
        "serving_dir": os.path.join(root, "serving"),
        "image": {"height": 28, "width": 28, "channels": 1},
        "source": dataset, "target": dataset,
        # Only read by kubeflow_nodes, which import the installed packages as the image does.
        # The root is only the pipeline's argument here: these tests run single executors.
        "kubeflow": {"image": "unused", "pipeline_root": "gs://unused-bucket/kubeflow"}})


def _by_id(nodes: list[BaseNode]) -> dict[str, BaseNode]:
    return {node.id: node for node in nodes if node.id.startswith("target_")}


def local_nodes(config: PipelineConfig) -> dict[str, BaseNode]:
    """The target's components as LocalDagRunner runs them: module files built into wheels."""
    pipeline = create_pipeline(config)
    nodes = _by_id(pipeline.components)
    for node in nodes.values():
        # What TFX's runners do before compiling: the Transform's module file becomes a wheel
        # under the pipeline root, and its module_path points into it.
        node._resolve_pip_dependencies(pipeline.pipeline_info.pipeline_root)  # pylint: disable=protected-access
    return nodes


def kubeflow_nodes(config: PipelineConfig) -> dict[str, BaseNode]:
    """The target's components as `tfx-transfer compile` builds them for Kubeflow."""
    return _by_id(build_pipeline(config, config.kubeflow, enable_cache=False).components)


def exec_properties(node: BaseNode) -> dict:
    """exec_properties as an orchestrator hands them over: protos as JSON, unset ones left out."""
    return {key: proto_utils.proto_to_json(value) if isinstance(value, message.Message) else value
            for key, value in node.exec_properties.items() if value is not None}


def beam_context(tmp_dir: str, beam_args: list[str],
                 runner: DirectRunner | None = None) -> BaseBeamExecutor.Context:
    """An executor context with `beam_args`; with `runner`, pipelines run on it."""
    make_pipeline: Callable[[], beam.Pipeline] | None = None
    if runner is not None:
        def make_pipeline() -> beam.Pipeline:
            return beam.Pipeline(runner=runner, options=PipelineOptions(beam_args))
    return BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args), tmp_dir=tmp_dir,
                                    make_beam_pipeline_fn=make_pipeline)


def _artifact(kind: type, uri: str):
    artifact = kind()
    artifact.uri = uri
    return artifact


def _write_schema(uri: str) -> standard_artifacts.Schema:
    """The schema SchemaGen infers for ImageExampleGen's examples (infer_feature_shape)."""
    schema = schema_utils.schema_from_feature_spec({
        IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
        LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
        LABEL_NAME_KEY: tf.io.FixedLenFeature([1], tf.string)})
    io_utils.write_pbtxt_file(os.path.join(uri, "schema.pbtxt"), schema)
    return _artifact(standard_artifacts.Schema, uri)


def run_example_gen(node: BaseNode, out: str,
                    context: BaseBeamExecutor.Context) -> standard_artifacts.Examples:
    """ImageExampleGen's executor; the examples go to `out`/examples."""
    examples = _artifact(standard_artifacts.Examples, os.path.join(out, "examples"))
    ExampleGenExecutor(context).Do({}, {specs.EXAMPLES_KEY: [examples]}, exec_properties(node))
    return examples


def run_transform(node: BaseNode, examples: standard_artifacts.Examples, out: str,
                  context: BaseBeamExecutor.Context
                  ) -> tuple[standard_artifacts.TransformGraph, standard_artifacts.Examples]:
    """TFX's Transform executor on `examples`; writes under `out`."""
    graph = _artifact(standard_artifacts.TransformGraph, os.path.join(out, "transform_graph"))
    transformed = _artifact(standard_artifacts.Examples, os.path.join(out, "transformed"))
    transform_executor.Executor(context).Do(
        {specs.EXAMPLES_KEY: [examples],
         specs.SCHEMA_KEY: [_write_schema(os.path.join(out, "schema"))]},
        {specs.TRANSFORM_GRAPH_KEY: [graph], specs.TRANSFORMED_EXAMPLES_KEY: [transformed]},
        exec_properties(node))
    return graph, transformed


def run_stages(config: PipelineConfig, out: str, beam_args: list[str],
               runner: DirectRunner | None = None) -> StageOutputs:
    """The target's ExampleGen, then its Transform, as LocalDagRunner runs them."""
    nodes = local_nodes(config)
    context = beam_context(os.path.join(out, "tmp"), beam_args, runner)
    examples = run_example_gen(nodes["target_example_gen"], out, context)
    graph, transformed = run_transform(nodes["target_transform"], examples, out, context)
    return StageOutputs(examples, graph, transformed)


def split_records(examples: standard_artifacts.Examples, split: str) -> list[bytes]:
    """The tf.Examples of one split, sorted (writers shard and order them freely), each
    re-serialized deterministically: the order of a feature map's entries in a serialized
    record is not (it varies with the writing process's hash seed)."""
    files = sorted(tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*")))
    return sorted(tf.train.Example.FromString(record).SerializeToString(deterministic=True)
                  for record in tf.data.TFRecordDataset(files, "GZIP").as_numpy_iterator())
