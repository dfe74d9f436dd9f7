"""Image folders: root/<class_name>/<image files>, or root/<image files> when unlabelled,
optionally under root/span-N/."""

from __future__ import annotations

import os

import apache_beam as beam
import tensorflow as tf

from components.image_example_gen.custom_config import ExampleGenOptions
from components.image_example_gen.errors import DatasetError
from components.image_example_gen.layout import (require_directory, single_pattern,
                                                 window_patterns)
from components.image_example_gen.options import class_name_problem
from components.image_example_gen.records import IMAGE_EXTENSIONS, Item, split_by_hash


def _is_hidden(path: str) -> bool:
    # OS metadata such as .DS_Store or ._thumbs: not data, never images.
    return os.path.basename(path.rstrip("/")).startswith(".")


def list_class_files(input_base: str, pattern: str) -> dict[str, list[str]]:
    """Class folder name -> the files in it, for a resolved '<span?>/*/*' pattern.

    An empty class folder, or no class folder at all, is an error naming the path.
    """
    require_directory(input_base)
    folders_glob = os.path.join(input_base, os.path.dirname(pattern))
    folders = sorted(path.rstrip("/") for path in tf.io.gfile.glob(folders_glob)
                     if tf.io.gfile.isdir(path) and not _is_hidden(path))
    if not folders:
        raise DatasetError(f"{folders_glob}: no class folders (expected <class_name>/<images>)")
    for folder in folders:
        problem = class_name_problem(os.path.basename(folder))
        if problem:
            raise DatasetError(f"{folder}: {problem}; rename the folder")
    files: dict[str, list[str]] = {os.path.basename(folder): [] for folder in folders}
    for path in sorted(tf.io.gfile.glob(os.path.join(input_base, pattern))):
        if not _is_hidden(path):
            files[os.path.basename(os.path.dirname(path))].append(path)
    empty = [folder for folder in folders if not files[os.path.basename(folder)]]
    if empty:
        raise DatasetError(f"empty class folder(s), no files in: {', '.join(empty)}")
    return files


def list_unlabelled_files(input_base: str, pattern: str) -> list[str]:
    """The files of an unlabelled folder, for a resolved '<span?>/*' pattern; a folder
    without any, or with class folders, is an error naming it."""
    require_directory(input_base)
    paths = sorted(path for path in tf.io.gfile.glob(os.path.join(input_base, pattern))
                   if not _is_hidden(path))
    folders = [path for path in paths if tf.io.gfile.isdir(path)]
    if folders:
        raise DatasetError(f"{os.path.dirname(folders[0])}: an unlabelled image folder "
                           f"holds its images directly; found folder(s) {folders[:3]} "
                           "(class folders? then leave labelled at true)")
    if not paths:
        raise DatasetError(f"{os.path.join(input_base, pattern)}: no files")
    return paths


def check_class_folders(root: str, folders: list[str], class_names: list[str] | None,
                        selected: list[str]) -> None:
    """Every selected class needs a folder; with class_names, every folder needs a name."""
    if class_names is not None:
        unnamed = [folder for folder in folders if folder not in class_names]
        if unnamed:
            raise DatasetError(f"{root}: folder(s) {unnamed} are not in class_names {class_names}")
    missing = [name for name in selected if name not in folders]
    if missing:
        raise DatasetError(f"{root}: no folder for class(es) {missing}; found {folders}")


def count_images(files: dict[str, list[str]]) -> dict[str, int]:
    """Files with an image extension, per class folder."""
    return {name: sum(path.lower().endswith(IMAGE_EXTENSIONS) for path in paths)
            for name, paths in files.items()}


def _to_item(entry: tuple[str, str], eval_fraction: float, test_fraction: float) -> Item:
    path, class_name = entry  # class_name "": an unlabelled folder's image
    # Class and file name, not the span folder: an image keeps its split across spans.
    key = f"{class_name}/{os.path.basename(path)}".lstrip("/")
    problem = None
    if not path.lower().endswith(IMAGE_EXTENSIONS):
        problem = f"not an image file name (expected one of {', '.join(IMAGE_EXTENSIONS)})"
    return Item(path, key, split_by_hash(key, eval_fraction, test_fraction), class_name, None,
                problem)


def read_image_folder(pipeline: beam.Pipeline, input_base: str, patterns: dict[str, str],
                      options: ExampleGenOptions) -> beam.PCollection:
    """Items for every file in the class folders (or the unlabelled folder); the bytes are
    read once a class is kept."""
    entries = []
    for pattern in window_patterns(input_base, single_pattern(patterns),
                                   options.dataset.spans):
        if not options.dataset.labelled:
            entries += [(path, "") for path in list_unlabelled_files(input_base, pattern)]
            continue
        files = list_class_files(input_base, pattern)
        root = os.path.join(input_base, os.path.dirname(os.path.dirname(pattern))).rstrip("/")
        check_class_folders(root, sorted(files), options.dataset.class_names,
                            options.label_names)
        entries += [(path, name) for name, paths in sorted(files.items()) for path in paths]
    dataset = options.dataset
    return (pipeline
            | "ListImages" >> beam.Create(entries)
            | "ToItems" >> beam.Map(_to_item, dataset.eval_fraction, dataset.test_fraction))
