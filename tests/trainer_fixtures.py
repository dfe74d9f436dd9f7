"""Small real data for the Trainer tests, laid out as TFX hands it to a Trainer.

Fashion-MNIST images are PNG-encoded into raw tf.Examples, run through the project's
Transform (transform/preprocessing.py) with TF Transform on Beam, and written as TFX
Examples / TransformGraph artifacts. Everything is built once per test process (the
helpers are cached) in a temporary directory removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils
from tfx.components.trainer import executor as trainer_executor
from tfx.components.trainer.fn_args_utils import FnArgs, get_common_fn_args
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2, trainer_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import json_utils, proto_utils

from tests.conftest import FASHION_MNIST_DIR
from trainer.options import TrainerConfig
from transform.features import IMAGE_KEY, LABEL_KEY, LABEL_NAME_KEY
from transform.options import ImageConfig
from transform.preprocessing import preprocessing_fn

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE_FILE = os.path.join(PROJECT_ROOT, "trainer", "module.py")
IMAGE_CONFIG = ImageConfig(height=28, width=28, channels=1, scale="unit").model_dump()
FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
TASK_A = [0, 1, 2, 3, 4, 7, 8, 9]  # Géron's task A: all but sandal and shirt.
TASK_B = [5, 6]  # Sandal vs shirt.


@dataclass(frozen=True)
class Task:
    """One dataset as a Trainer sees it: artifacts on disk and the in-memory originals."""

    label_names: list[str]
    examples: standard_artifacts.Examples  # transformed, Split-train / Split-eval
    transform_graph: standard_artifacts.TransformGraph
    raw_eval_path: str  # raw tf.Examples of the eval split (what TFMA and serving read)
    eval_png: list[bytes]
    eval_pixels: np.ndarray  # uint8 [N, 28, 28]
    eval_labels: np.ndarray


@functools.cache
def scratch_root() -> str:
    root = tempfile.mkdtemp(prefix="trainer_tests_")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.cache
def fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The first 2,000 Fashion-MNIST training images (uint8 [N,28,28]) and labels."""
    n = 2000
    with gzip.open(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(16 + n * 784)[16:], np.uint8).reshape(n, 28, 28)
    with gzip.open(os.path.join(FASHION_MNIST_DIR, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(8 + n)[8:], np.uint8).astype(np.int64)
    return images, labels


def png(pixels: np.ndarray) -> bytes:
    return tf.io.encode_png(pixels[..., np.newaxis]).numpy()


def raw_example(image: bytes, label: int, name: str) -> bytes:
    feature = {IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
               LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
               LABEL_NAME_KEY: tf.train.Feature(
                   bytes_list=tf.train.BytesList(value=[name.encode()]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def select(classes: list[int], per_class: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` images of each class, skipping the first `offset` of each; relabelled 0..k-1."""
    images, labels = fashion_mnist()
    picked = [np.flatnonzero(labels == c)[offset:offset + per_class] for c in classes]
    index = np.sort(np.concatenate(picked))
    remap = {c: i for i, c in enumerate(classes)}
    return images[index], np.array([remap[c] for c in labels[index]])


def transform(root: str, raw: dict[str, list[dict]]) -> None:
    """The project's preprocessing_fn on Beam: transform_graph/ and transformed examples."""
    raw_metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec({
        IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
        LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
        LABEL_NAME_KEY: tf.io.FixedLenFeature([1], tf.string)}))
    fn = functools.partial(preprocessing_fn, custom_config=IMAGE_CONFIG)
    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=os.path.join(root, "tmp")):
        train = pipeline | "Train" >> beam.Create(raw["train"])
        eval_ = pipeline | "Eval" >> beam.Create(raw["eval"])
        (train_xf, metadata), transform_fn = (
            (train, raw_metadata) | tft_beam.AnalyzeAndTransformDataset(fn))
        eval_xf, _ = ((eval_, raw_metadata), transform_fn) | tft_beam.TransformDataset()
        _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(root, "transform_graph"))
        for split, data in (("train", train_xf), ("eval", eval_xf)):
            coder = tft.coders.ExampleProtoCoder(metadata.schema)
            _ = (data | f"Encode{split}" >> beam.Map(coder.encode)
                 | f"Write{split}" >> beam.io.WriteToTFRecord(
                     os.path.join(root, "transformed", f"Split-{split}", "data"),
                     file_name_suffix=".gz"))
    # Serving parses raw examples with the raw schema, which TFX's Transform also writes.
    metadata_io.write_metadata(raw_metadata, os.path.join(
        root, "transform_graph", tft.TFTransformOutput.RAW_METADATA_DIR))


def build_task(name: str, classes: list[int], train_per_class: int,
               eval_per_class: int) -> Task:
    """Raw and transformed train/eval splits of `classes`, as TFX artifacts."""
    root = os.path.join(scratch_root(), name)
    label_names = [FASHION_NAMES[c] for c in classes]
    raw, pngs = {}, {}
    for split, per_class, offset in (("train", train_per_class, 0),
                                     ("eval", eval_per_class, train_per_class)):
        pixels, labels = select(classes, per_class, offset)
        pngs[split] = [png(p) for p in pixels]
        raw[split] = [{IMAGE_KEY: [image], LABEL_KEY: [int(label)],
                       LABEL_NAME_KEY: [label_names[label].encode()]}
                      for image, label in zip(pngs[split], labels)]
    eval_pixels, eval_labels = select(classes, eval_per_class, train_per_class)
    raw_eval_path = os.path.join(root, "raw", "Split-eval", "data.gz")
    os.makedirs(os.path.dirname(raw_eval_path))
    with tf.io.TFRecordWriter(raw_eval_path, "GZIP") as writer:
        for image, label in zip(pngs["eval"], eval_labels):
            writer.write(raw_example(image, int(label), label_names[label]))
    transform(root, raw)

    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(root, "transformed")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    transform_graph = standard_artifacts.TransformGraph()
    transform_graph.uri = os.path.join(root, "transform_graph")
    return Task(label_names, examples, transform_graph, raw_eval_path, pngs["eval"],
                eval_pixels, eval_labels)


@functools.cache
def task_a() -> Task:
    """The source task: 8 classes, 40 training and 10 eval images each."""
    return build_task("task_a", TASK_A, 40, 10)


@functools.cache
def task_b() -> Task:
    """The target task: sandal vs shirt, 40 training and 30 eval images each."""
    return build_task("task_b", TASK_B, 40, 30)


def exec_properties(config: TrainerConfig) -> dict:
    return {"module_file": MODULE_FILE,
            "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
            "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
            "custom_config": json_utils.dumps(config.model_dump())}


def input_dict(task: Task, base_model: standard_artifacts.Model | None = None) -> dict:
    inputs = {"examples": [task.examples], "transform_graph": [task.transform_graph]}
    if base_model is not None:
        inputs["base_model"] = [base_model]
    return inputs


def fn_args(task: Task, config: TrainerConfig, out_dir: str,
            base_model: standard_artifacts.Model | None = None) -> FnArgs:
    """FnArgs as the Trainer executor builds them, for calling trainer code directly."""
    args = get_common_fn_args(input_dict(task, base_model), exec_properties(config))
    args.transform_output = args.transform_graph_path
    args.serving_model_dir = os.path.join(out_dir, "model", "Format-Serving")
    args.model_run_dir = os.path.join(out_dir, "model_run")
    return args


def run_trainer(task: Task, config: TrainerConfig, out_dir: str,
                base_model: standard_artifacts.Model | None = None) -> standard_artifacts.Model:
    """Run the real TFX Trainer executor on trainer/module.py; returns its Model artifact."""
    model = standard_artifacts.Model()
    model.uri = os.path.join(out_dir, "model")
    model_run = standard_artifacts.ModelRun()
    model_run.uri = os.path.join(out_dir, "model_run")
    trainer_executor.GenericExecutor().Do(input_dict(task, base_model),
                                          {"model": [model], "model_run": [model_run]},
                                          exec_properties(config))
    return model


def trainer_config(role: str, task: Task, model: dict | None = None,
                   **training: object) -> TrainerConfig:
    """A small, fast TrainerConfig for `task`: cnn, batch 16; `model`, `training` override."""
    return TrainerConfig.model_validate({
        "role": role, "model": {"architecture": "cnn", **(model or {})},
        "label_names": task.label_names,
        "training": {"batch_size": 16, "pretrain": {"epochs": 2, "learning_rate": 3e-3},
                     "frozen": {"epochs": 2, "learning_rate": 3e-3},
                     "fine_tune": {"epochs": 2, "learning_rate": 1e-4, "unfreeze": 1,
                                   "early_stopping_patience": 1},
                     **training}})


@functools.cache
def pretrained_cnn() -> standard_artifacts.Model:
    """The pretrain Trainer's Model artifact for task A (cnn, 8 epochs, random flips)."""
    config = trainer_config("pretrain", task_a(), batch_size=32,
                            pretrain={"epochs": 8, "learning_rate": 2e-3},
                            augmentation={"flip": "horizontal"})
    return run_trainer(task_a(), config, os.path.join(scratch_root(), "pretrain"))
