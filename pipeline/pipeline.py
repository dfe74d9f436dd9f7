"""The TFX pipeline, wired top to bottom in data-flow order. Reading it is reading the DAG."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

# The modules, not `tfx.v1`, which imports the Vertex AI client too: 4 s a process.
from tfx.components import (Evaluator, ExampleValidator, SchemaGen, StatisticsGen, Trainer,
                            Transform)
from tfx.dsl.components.base.base_node import BaseNode
from tfx.orchestration.pipeline import Pipeline
from tfx.proto.trainer_pb2 import EvalArgs, TrainArgs
from tfx.proto.transform_pb2 import SplitsConfig
from tfx.types.channel import Channel

from components.code_version import code_version
from components.image_example_gen import ImageExampleGen, describe_dataset, resolve_label_names
from components.served_model.component import ServedModel
from components.versioned_pusher import VersionedPusher
from components.image_example_gen.options import DatasetConfig
from pipeline.config import PipelineConfig
from pipeline.evaluation import EVAL_SPLIT, build_eval_config, build_served_eval_config
from trainer.options import Role, TrainerConfig

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Makes a Trainer component from tfx.components.Trainer's arguments (e.g. a Vertex AI one).
TrainerComponent = Callable[..., Trainer]
PREPROCESSING_FN = "transform.preprocessing.preprocessing_fn"
RUN_FN = "trainer.module.run_fn"


def user_code(function: str, installed: bool) -> dict[str, str]:
    """How a component finds `function` (`package.module.name`): by import path when the
    packages are installed where it runs (a container image), else by module file, which TFX
    builds into a wheel for Beam's workers and hashes for its cache."""
    if installed:
        return {function.rsplit(".", 1)[1]: function}
    module = function.rsplit(".", 1)[0]
    return {"module_file": os.path.join(PROJECT_ROOT, *module.split(".")) + ".py"}


def label_names(dataset: DatasetConfig) -> list[str]:
    """The dataset's class names in output-label order."""
    return resolve_label_names(dataset, describe_dataset(dataset))


def _seed(config: PipelineConfig, side: str) -> int:
    """The seed of the source side (source data, pretraining) or of the target side. A pool
    of the target's unlabelled images is the complement of its label sample: same seed."""
    if side == "source" and config.pretraining.data == "target_unlabelled":
        return config.target_side_seed
    return config.seed if side in ("source", "pretrain") else config.target_side_seed


def _ingest(config: PipelineConfig, dataset: str, labels: list[str],
            installed_code: bool) -> dict[str, BaseNode]:
    """ExampleGen → StatisticsGen → SchemaGen → ExampleValidator → Transform for one dataset
    ('source': what the pretrain Trainer reads, see PipelineConfig.pretraining_dataset)."""
    data = config.pretraining_dataset if dataset == "source" else config.target
    example_gen = ImageExampleGen(dataset=data, label_names=labels, seed=_seed(config, dataset),
                                  limits=config.image.limits()).with_id(f"{dataset}_example_gen")
    statistics_gen = StatisticsGen(
        examples=example_gen.outputs["examples"]).with_id(f"{dataset}_statistics_gen")
    schema_gen = SchemaGen(
        statistics=statistics_gen.outputs["statistics"],
        infer_feature_shape=True).with_id(f"{dataset}_schema_gen")
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"]).with_id(f"{dataset}_example_validator")
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        **user_code(PREPROCESSING_FN, installed_code),
        custom_config=config.image.model_dump(),
        # The test split is for the Evaluator only, which reads raw examples.
        splits_config=SplitsConfig(analyze=["train"], transform=["train", "eval"]),
        # Statistics over every transformed pixel are costly and nobody reads them.
        disable_statistics=True).with_id(f"{dataset}_transform")
    return {"example_gen": example_gen, "statistics_gen": statistics_gen,
            "schema_gen": schema_gen, "example_validator": example_validator,
            "transform": transform}


def _trainer(config: PipelineConfig, role: Role, data: dict[str, BaseNode], labels: list[str],
             installed_code: bool, make: TrainerComponent,
             base_model: Channel | None = None) -> Trainer:
    custom_config = TrainerConfig.for_role(role, config.model, config.training, labels,
                                           _seed(config, role), config.pretraining.method)
    transform = data["transform"]
    return make(
        **user_code(RUN_FN, installed_code),
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        base_model=base_model,
        train_args=TrainArgs(splits=["train"]),
        eval_args=EvalArgs(splits=["eval"]),
        custom_config=custom_config.model_dump()).with_id(f"{role}_trainer")


def create_pipeline(config: PipelineConfig, *, installed_code: bool = False,
                    trainer_components: Mapping[str, TrainerComponent] | None = None,
                    pipeline_root: str | None = None,
                    metadata_connection_config=None,
                    beam_pipeline_args: list[str] | None = None,
                    enable_cache: bool = True,
                    serving_state: str | None = None) -> Pipeline:
    """Build the pipeline of one config; orchestrator-specific settings come from the caller.

    `installed_code`: the Transform and Trainer import their functions from the installed
    packages instead of this checkout's module files (see `user_code`).
    `trainer_components`: by Trainer id, what makes that Trainer instead of TFX's own.
    `serving_state`: the serving dir's latest version as the run starts, which keys the
    served-model baseline's cache (a Kubeflow probe does this on the cluster).
    """
    def trainer(role: Role, data: dict[str, BaseNode], labels: list[str],
                base_model: Channel | None = None) -> Trainer:
        make = (trainer_components or {}).get(f"{role}_trainer", Trainer)
        return _trainer(config, role, data, labels, installed_code, make, base_model)

    nodes: list[BaseNode] = []
    base_model = None
    if config.pretrains:
        source_labels = label_names(config.pretraining_dataset)
        source = _ingest(config, "source", source_labels, installed_code)
        pretrain = trainer("pretrain", source, source_labels)
        base_model = pretrain.outputs["model"]
        nodes += [*source.values(), pretrain]
    target_labels = label_names(config.target)
    target = _ingest(config, "target", target_labels, installed_code)
    transfer = trainer("transfer", target, target_labels, base_model)
    scratch = trainer("scratch", target, target_labels)

    evaluator = Evaluator(
        examples=target["example_gen"].outputs["examples"],
        model=transfer.outputs["model"],
        baseline_model=scratch.outputs["model"],
        example_splits=[EVAL_SPLIT],
        eval_config=build_eval_config(len(target_labels),
                                      config.evaluation.min_accuracy,
                                      config.evaluation.margin)).with_id("evaluator")
    served_model = ServedModel(
        candidate=transfer.outputs["model"], serving_dir=config.serving_dir,
        code_version=code_version("components/served_model",
                                  "components/versioned_pusher"),
        serving_state=serving_state).with_id("served_model")
    served_evaluator = Evaluator(
        examples=target["example_gen"].outputs["examples"],
        model=transfer.outputs["model"],
        baseline_model=served_model.outputs["model"],
        example_splits=[EVAL_SPLIT],
        eval_config=build_served_eval_config(config.evaluation.regression_tolerance)
    ).with_id("served_evaluator")
    pusher = VersionedPusher(model=transfer.outputs["model"],
                             model_blessing=evaluator.outputs["blessing"],
                             served_blessing=served_evaluator.outputs["blessing"],
                             serving_dir=config.serving_dir,
                             keep_versions=config.keep_versions).with_id("pusher")
    nodes += [*target.values(), transfer, scratch, evaluator, served_model, served_evaluator,
              pusher]

    return Pipeline(
        pipeline_name=config.name,
        pipeline_root=pipeline_root or config.pipeline_root,
        components=nodes,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None
        else config.beam_pipeline_args)
