"""The run configuration: one YAML file describes a whole run, validated before anything runs."""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator,
                      model_validator)

from components.image_example_gen.options import DatasetConfig
from components.paths import REMOTE_PREFIXES, expand
from pipeline.kubeflow_config import CREDENTIAL_FLAGS, KubeflowConfig
from trainer.options import KERAS_APPLICATIONS, ModelConfig, PretrainingMethod, TrainingConfig
from transform.options import ImageConfig

PIPELINE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
SCRATCH_DIR = ".tfx-transfer-scratch"
"""Under the pipeline root: a run's temp files, removed when the run ends (local_runner)."""
Seed = Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)]
"""What keras.utils.set_random_seed takes."""
# scheme://user:password@host: a secret written into a path.
_URL_WITH_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")


class ConfigError(ValueError):
    """A config that can't run: says which file and key, and what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvaluationConfig(_Strict):
    """When the Evaluator blesses the transferred model."""

    margin: float = Field(default=0.0, ge=0, le=1, description="Accuracy the transferred "
                          "model must gain over the from-scratch baseline (strictly more).")
    min_accuracy: float = Field(default=0.5, ge=0, le=1)
    regression_tolerance: float = Field(
        default=0.0, ge=0, le=1, description="Accuracy the candidate may lose against the "
        "model served now (the latest one that passed this check) and still be pushed.")


class PretrainingConfig(_Strict):
    """What the pretrain Trainer learns from, and on which images."""

    method: PretrainingMethod = Field(
        default="supervised", description="supervised: the source's labels; autoencoder: "
        "reconstruct the images; rotation: tell how far each image was turned (square "
        "images). The last two read no labels.")
    data: Literal["source", "target_unlabelled"] = Field(
        default="source", description="source: the `source:` dataset; target_unlabelled: "
        "the target's own train and eval images beyond its two label budgets, without their "
        "labels (leave `source:` out).")


class PipelineDatasetConfig(DatasetConfig):
    """A dataset of a pipeline run: ImageExampleGen's options with the label checks on."""

    max_class_imbalance: float | None = Field(
        default=10.0, ge=1,
        description="Every class must be in every split, and in each the biggest class may "
        "outnumber the smallest by at most this ratio; null turns the label checks off.")


def _within(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or under it (paths as written, not resolved)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _credential_problems(value: Any, key: str) -> list[str]:
    """Config keys holding what looks like a secret: configs, specs and logs are shared."""
    if isinstance(value, dict):
        return [problem for name, item in value.items()
                for problem in _credential_problems(item, f"{key}.{name}".lstrip("."))]
    if isinstance(value, list):
        return [problem for item in value for problem in _credential_problems(item, key)]
    if isinstance(value, str) and _URL_WITH_PASSWORD.match(value):
        return [f"{key}: a password in a URL"]
    if isinstance(value, str) and key.endswith("beam_pipeline_args") and any(
            word in value.split("=")[0].lower() for word in CREDENTIAL_FLAGS):
        return [f"{key}: {value.split('=')[0]} carries a credential"]
    return []


class PipelineConfig(_Strict):
    """Everything one run needs; `configs/fashion_mnist_ab.yaml` is the embedded default."""

    name: str = Field(pattern=PIPELINE_NAME_PATTERN, max_length=63,
                      description="Pipeline name; Kubeflow's V2 runner needs [a-z0-9][a-z0-9-]*.")
    seed: Seed = 42
    target_seed: Seed | None = Field(
        default=None, description="Seed of the target side alone (its label sample, the "
        "transfer and scratch Trainers); None: `seed`. Varying it leaves the source and "
        "pretraining cached, as `tfx-transfer study` does.")
    pipeline_root: str = Field(description="Artifacts, metadata and reports of runs go here.")
    serving_dir: str = Field(description="Blessed models are pushed to <serving_dir>/<version>/.")
    keep_versions: int = Field(default=5, ge=1, description="Pushed versions kept in serving_dir.")
    beam_pipeline_args: list[str] = Field(
        default_factory=lambda: ["--direct_running_mode=multi_processing",
                                 "--direct_num_workers=0"])
    image: ImageConfig
    source: PipelineDatasetConfig | None = Field(
        default=None, description="Pretraining data; needed unless model.weights gives a backbone.")
    target: PipelineDatasetConfig
    pretraining: PretrainingConfig = PretrainingConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    kubeflow: KubeflowConfig = KubeflowConfig()

    @field_validator("pipeline_root", "serving_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        value = expand(value)
        return value if value.startswith(REMOTE_PREFIXES) else os.path.abspath(value)

    @model_validator(mode="after")
    def _roots_hold_only_runs(self) -> "PipelineConfig":
        root, serving = self.pipeline_root, self.serving_dir
        if os.path.dirname(root) == root:
            raise ValueError(f"pipeline_root: {root} is a filesystem root; runs write and "
                             "delete their own folders under it")
        if _within(serving, os.path.join(root, SCRATCH_DIR)) or serving == root:
            raise ValueError(f"serving_dir: {serving} is the pipeline root or inside its "
                             f"scratch folder {SCRATCH_DIR}, which every run deletes")
        for side in ("source", "target"):
            dataset = getattr(self, side)
            if dataset is None or dataset.path.startswith(REMOTE_PREFIXES):
                continue
            for key, path in (("pipeline_root", root), ("serving_dir", serving)):
                if _within(path, os.path.abspath(dataset.path)):
                    raise ValueError(f"{key}: {path} is inside {side}.path {dataset.path}; "
                                     "the run's folders would be read as data")
        return self

    @model_validator(mode="after")
    def _no_credentials(self) -> "PipelineConfig":
        problems = _credential_problems(self.model_dump(), "")
        if problems:
            raise ValueError("; ".join(problems) + " — configs are copied into run metadata, "
                             "logs and Kubeflow specs; give credentials through the environment "
                             "or Kubernetes secrets instead")
        return self

    @model_validator(mode="after")
    def _source_or_backbone(self) -> "PipelineConfig":
        from_target = self.pretraining.data == "target_unlabelled"
        if self.source is None and self.model.weights is None and not from_target:
            raise ValueError("source: needed to pretrain, unless model.weights names a "
                             "backbone or pretraining.data is target_unlabelled")
        if self.model.architecture in KERAS_APPLICATIONS and self.image.channels != 3:
            raise ValueError(f"image.channels: {self.model.architecture} needs 3 channels")
        return self

    @model_validator(mode="after")
    def _quarter_turns_fit(self) -> "PipelineConfig":
        """Quarter turns swap height and width: rotation pretraining and the quarter-turn
        augmentation need square images."""
        users = {"training.augmentation.quarter_turns: a quarter turn swaps height and width":
                 self.training.augmentation.quarter_turns,
                 "pretraining.method: rotation turns images by quarter turns":
                 self.pretraining.method == "rotation"}
        for what, used in users.items():
            if used and self.image.height != self.image.width:
                raise ValueError(f"{what}, which needs square images; image is "
                                 f"{self.image.height}x{self.image.width}")
        return self

    @model_validator(mode="after")
    def _pretraining_fits(self) -> "PipelineConfig":
        method, data = self.pretraining.method, self.pretraining.data
        if self.model.weights is not None and (method, data) != ("supervised", "source"):
            raise ValueError("pretraining: nothing is pretrained when model.weights names a "
                             "backbone; leave pretraining out")
        if method == "supervised" and (data == "target_unlabelled" or (
                self.source is not None and not self.source.labelled)):
            raise ValueError("pretraining.method: supervised pretraining needs a labelled "
                             "source; autoencoder or rotation learn from images alone")
        if data == "target_unlabelled":
            if self.source is not None:
                raise ValueError("source: pretraining.data target_unlabelled pretrains on the "
                                 "target's own images; leave source out")
            if self.target.format == "image_folder":
                raise ValueError("pretraining.data: target_unlabelled needs an idx or tfrecord "
                                 "target; put an image folder's unlabelled images in a folder "
                                 "of their own and give it as source with labelled: false")
            if self.target.label_budget is None or self.target.eval_label_budget is None:
                raise ValueError("target: pretraining.data target_unlabelled needs "
                                 "label_budget and eval_label_budget: the images beyond "
                                 "them are the unlabelled pool")
        return self

    @property
    def pretrains(self) -> bool:
        """Whether a pretrain Trainer runs, or a given backbone is reused."""
        return self.model.weights is None

    @property
    def pretraining_dataset(self) -> PipelineDatasetConfig:
        """What the pretrain Trainer's ExampleGen reads: the source, or the target's train
        and eval images beyond its label budgets, their labels dropped."""
        if self.pretraining.data == "source":
            assert self.source is not None, "checked by _source_or_backbone"
            return self.source
        return self.target.model_copy(update={"labelled": False, "beyond_label_budget": True,
                                              "max_class_imbalance": None})

    @property
    def target_side_seed(self) -> int:
        """The seed of the target's ImageExampleGen and of the transfer and scratch Trainers."""
        return self.seed if self.target_seed is None else self.target_seed

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.pipeline_root, "metadata.sqlite")


def _section_model(model: type[BaseModel] | None, name: str) -> type[BaseModel] | None:
    """The config class of section `name` of `model`, if it is one (also inside `X | None`)."""
    field = model.model_fields.get(name) if model is not None else None
    if field is None:
        return None
    annotation = field.annotation
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _section_defaults(model: type[BaseModel] | None, name: str) -> dict[str, Any]:
    """What section `name` holds when the config leaves it out: its default's values."""
    field = model.model_fields.get(name) if model is not None else None
    default = field.get_default(call_default_factory=True) if field is not None else None
    return default.model_dump() if isinstance(default, BaseModel) else {}


def _set_dotted(data: dict[str, Any], dotted_key: str, value: Any) -> None:
    """Set `a.b.c` in `data`; a section the config leaves out starts from its defaults, so
    `--set training.frozen.epochs=60` changes that one field of the default `frozen`."""
    node, model = data, PipelineConfig
    *parents, leaf = dotted_key.split(".")
    for part in parents:
        if part not in node:
            node[part] = _section_defaults(model, part)
        child = node[part]
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted_key}: {part!r} is not a section")
        node, model = child, _section_model(model, part)
    node[leaf] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=value` overrides; values are parsed as YAML (`1e-3`, `[1, 2]`, `null`)."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. training.batch_size=64")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {override!r}: the value is not valid YAML: {error}") from None
        except RecursionError:
            raise ConfigError(f"--set {key}: the value is nested too deeply") from None
        _set_dotted(data, key.strip(), value)
    return data


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid config ({error.error_count()} problem(s))"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        detail = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            detail = "unknown key"
        lines.append(f"  {key}: {detail}")
    return "\n".join(lines)


def parse_config(data: Any, source: str = "<config>") -> PipelineConfig:
    """Validate a config mapping; raise ConfigError naming each bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got "
                          f"{type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(source, error)) from None


def load_config(path: str | os.PathLike[str], overrides: list[str] = ()) -> PipelineConfig:
    """Read a YAML config, apply `--set` overrides and validate it."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: can't read the config: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(data or {}, dict):
        return parse_config(data, str(path))  # raises, naming what the file holds instead
    return parse_config(apply_overrides(data or {}, list(overrides)), str(path))


def _check_dataset(key: str, dataset: DatasetConfig) -> None:
    # Imported here: the component package pulls in TFX, which config parsing doesn't need.
    from components.image_example_gen import describe_dataset, resolve_label_names
    from components.image_example_gen.label_checks import imbalance_problem

    if not dataset.path.startswith(REMOTE_PREFIXES) and not os.path.isdir(dataset.path):
        raise ConfigError(f"{key}.path: {dataset.path} is not a directory")
    try:
        summary = describe_dataset(dataset)
        labels = resolve_label_names(dataset, summary)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None
    if summary.counts is None:
        return  # tfrecords: ImageExampleGen counts and checks them when it runs
    # An unlabelled folder's images are all counted under one name.
    selected = {name: summary.counts.get(name, 0) for name in labels} or summary.counts
    if dataset.max_class_imbalance is not None:
        # The training files' counts: what the splits and the label budget will mirror.
        problem = imbalance_problem(selected, dataset.max_class_imbalance)
        if problem:
            raise ConfigError(f"{key}.max_class_imbalance: {dataset.path}: {problem}")
    available = sum(selected.values())
    # IDX and csv counts leave their test split out already.
    has_test = dataset.format in ("idx", "csv")
    shares = {"train": 1 - dataset.eval_fraction - (0 if has_test else dataset.test_fraction),
              "eval": dataset.eval_fraction}
    for split, budget_key in (("train", "label_budget"), ("eval", "eval_label_budget")):
        budget = getattr(dataset, budget_key)
        if budget is not None and budget > available * shares[split]:
            raise ConfigError(
                f"{key}.{budget_key}: {budget} {split} images asked for, but {dataset.path} "
                f"has about {int(available * shares[split])} in the {split} split of "
                f"classes {labels}")


def check_datasets(config: PipelineConfig) -> None:
    """Check that the datasets exist, have the selected classes and enough images."""
    if config.source is not None:
        _check_dataset("source", config.source)
    _check_dataset("target", config.target)
