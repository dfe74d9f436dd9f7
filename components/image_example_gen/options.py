"""What a dataset is and how to cut it: the `source:` / `target:` sections of a config."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, field_validator,
                      model_validator)

from components.paths import GLOB_CHARACTERS, literal

SPLITS = ("train", "eval", "test")
UNLABELLED = "(unlabelled)"
"""What counts name the examples of an unlabelled dataset by."""
UNLABELLED_ID = -1
"""The label of an example without one."""


def _not_a_boolean(value: object) -> object:
    if isinstance(value, bool):  # pydantic would take true as 1
        raise ValueError(f"expected a whole number, got {str(value).lower()}")
    return value


Count = Annotated[int, BeforeValidator(_not_a_boolean)]
"""A whole number given as one (also as 40.0, how a Struct carries it), never a boolean."""


def class_name_problem(name: str) -> str | None:
    """Why `name` can't be a class name, or None. Label vocabularies are written one name per
    line, and names are printed: no line breaks or other control characters."""
    if not name.strip():
        return f"class name {name!r} is empty"
    if not name.isprintable():
        return (f"class name {name!r} holds a line break or another control character; "
                "label vocabularies hold one name per line")
    return None


class DatasetConfig(BaseModel):
    """One dataset of a run, ingested by ImageExampleGen into train / eval / test splits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["idx", "image_folder", "tfrecord", "csv"]
    path: str = Field(description="Directory holding the data (local, gs:// or s3://); for "
                      "csv the folder of the manifest, which image paths are relative to.")
    class_names: list[str] | None = Field(
        default=None,
        description="Names of the dataset's original integer labels 0..K-1 (idx, tfrecord). "
        "Image folders take their class names from the folder names. csv: with a threshold, "
        "the names of below (0) and at-or-above (1); with a class column, its values in label "
        "order (every value must be one; None: the distinct values, sorted as text).",
    )
    classes: list[str] | None = Field(
        default=None,
        description="Classes to keep, by name, in output-label order (the first becomes 0). "
        "None keeps every class in its original order.",
    )
    label_budget: Count | None = Field(
        default=None, gt=0,
        description="At most this many training images, a seeded stratified sample.",
    )
    eval_label_budget: Count | None = Field(
        default=None, gt=0,
        description="At most this many eval images (what early stopping and the learning-rate "
        "schedule watch), sampled like label_budget. None keeps all of them; test keeps all "
        "of its images either way, being only for judging.",
    )
    eval_fraction: float = Field(default=1 / 12, gt=0, lt=1,
                                 description="Share of the training data held out for eval.")
    test_fraction: float = Field(
        default=0.1, gt=0, lt=1,
        description="Share held out for test where the dataset has no test files of its own "
        "(image folders, tfrecords; csv of every class, see split_seed).",
    )
    labelled: bool = Field(
        default=True, description="False: the examples carry no label (label -1, empty "
        "label_name), for pretraining on unlabelled images; an image folder then holds its "
        "images directly, without class folders. Classes and budgets still select images "
        "where the dataset has labels.")
    beyond_label_budget: bool = Field(
        default=False, description="Keep the train and eval images the two label budgets "
        "leave out, instead of those they keep: a target's unlabelled pool (with labelled "
        "false). The same seed and budgets give exactly the complement.")
    on_bad_image: Literal["fail", "skip"] = "fail"
    spans: int = Field(
        default=1, ge=1, le=10_000, description="Image folders and TFRecords in span-<N>/ "
        "folders: how many of the newest spans are read together (a rolling window). A new "
        "span re-ingests; spans are snapshots, so a change inside an older one of the window "
        "is not noticed.")
    max_class_imbalance: float | None = Field(
        default=None, ge=1,
        description="Label checks after splitting: every class must be in every split, and in "
        "each the biggest class may outnumber the smallest by at most this ratio. None, the "
        "component's default, checks nothing; pipeline configs default to 10.")
    image_key: str = Field(default="image", description="tfrecord only: the bytes feature.")
    label_key: str = Field(default="label", description="tfrecord only: the int64 feature.")
    manifest: str = Field(
        default="labels.csv", description="csv only: the manifest's file name in `path` (in "
        "span-<N>/ when there are span folders). A header row names the columns; the rest "
        "is read whole before ingesting (thousands of rows, not millions). Its size and "
        "mtime are the input fingerprint: edit or touch it to re-ingest changed images.")
    path_column: str = Field(
        default="path", description="csv only: the column of image paths, relative to the "
        "manifest's folder and inside it.")
    label_column: str | None = Field(
        default=None, description="csv only, required: the column the label comes from, its "
        "values as classes or, with threshold, as numbers.")
    threshold: float | None = Field(
        default=None, allow_inf_nan=False, description="csv only: a value >= threshold is "
        "class_names[1], below it class_names[0]; None: the column's values are the classes.")
    split_seed: Count = Field(
        default=0, ge=0, description="csv only: the seed of the stratified split. The test "
        "split takes test_fraction of every class, eval then eval_fraction of every class's "
        "rest, both by this seed alone: every run, seed and label budget sees the same split.")

    @field_validator("path")
    @classmethod
    def _literal_path(cls, value: str) -> str:
        return literal(value)

    @field_validator("class_names", "classes")
    @classmethod
    def _printable_names(cls, names: list[str] | None) -> list[str] | None:
        for name in names or []:
            problem = class_name_problem(name)
            if problem:
                raise ValueError(problem)
        return names

    @model_validator(mode="after")
    def _classes_are_known_and_unique(self) -> "DatasetConfig":
        if self.classes is not None:
            duplicates = sorted({c for c in self.classes if self.classes.count(c) > 1})
            if duplicates:
                raise ValueError(f"classes: {duplicates} selected more than once")
            if len(self.classes) < 2:
                raise ValueError("classes: at least 2 classes are needed to train a classifier")
            if self.class_names is not None:
                unknown = [c for c in self.classes if c not in self.class_names]
                if unknown:
                    raise ValueError(
                        f"classes: {unknown} are not in class_names {self.class_names}")
        if self.class_names is not None and len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names: names must be unique")
        if self.format not in ("image_folder", "csv") and self.class_names is None and (
                self.classes):
            raise ValueError(f"classes: selecting by name needs class_names for format "
                             f"{self.format!r}")
        if self.beyond_label_budget and (self.label_budget is None
                                         or self.eval_label_budget is None):
            raise ValueError("beyond_label_budget: needs label_budget and eval_label_budget, "
                             "whose complements it keeps")
        if not self.labelled and self.format == "image_folder" and self.classes is not None:
            raise ValueError("classes: an unlabelled image folder has no class folders to "
                             "select")
        if self.eval_fraction + self.test_fraction >= 1:
            raise ValueError("eval_fraction + test_fraction must leave data for training")
        return self

    @model_validator(mode="after")
    def _csv_label_rule(self) -> "DatasetConfig":
        if self.format != "csv":
            if self.label_column is not None or self.threshold is not None:
                raise ValueError("label_column, threshold: only format csv has columns")
            return self
        if self.label_column is None:
            raise ValueError("label_column: format csv needs the column its labels come from")
        if self.label_column == self.path_column:
            raise ValueError(f"label_column: {self.label_column!r} is also the path_column")
        if self.threshold is not None and len(self.class_names or []) != 2:
            raise ValueError(f"class_names: a threshold on {self.label_column!r} makes 2 "
                             "classes; name them, below the threshold first, e.g. "
                             "[functional, defective]")
        if self.spans > 1:
            raise ValueError("spans: format csv reads one manifest, the newest span's; list "
                             "every image of the window in it")
        if "/" in self.manifest or any(c in GLOB_CHARACTERS for c in self.manifest):
            raise ValueError(f"manifest: {self.manifest!r} must be a plain file name in path, "
                             f"without / or any of {GLOB_CHARACTERS}")
        return self
