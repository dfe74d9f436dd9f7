"""ImageExampleGen on real files with real Beam: splits, relabelling, budget, bad input, spans."""

from __future__ import annotations

import collections
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import message
from PIL import Image
from tfx.components.example_gen import driver
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from components.image_example_gen import (BadImageError, DatasetError, Executor,
                                          ImageExampleGen, describe_dataset,
                                          resolve_label_names)
from components.image_example_gen.custom_config import from_exec_properties
from components.image_example_gen.errors import find_dataset_error
from components.image_example_gen.options import DatasetConfig
from components.image_example_gen.records import unit_hash
from components.image_example_gen.sampling import stratified_quotas
from tests import image_files
from tests.image_files import crafted_gif
from tests.conftest import FASHION_MNIST_DIR
from transform.image_limits import ImageLimits

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
SPLITS = ("train", "eval", "test")


def exec_properties_of(gen: ImageExampleGen) -> dict:
    """The component's exec_properties as an orchestrator hands them over: protos as JSON."""
    return {key: proto_utils.proto_to_json(value) if isinstance(value, message.Message) else value
            for key, value in gen.exec_properties.items() if value is not None}


def patterns_of(gen: ImageExampleGen) -> list[str]:
    """The train, eval and test patterns of the component's input_config."""
    config = proto_utils.json_to_proto(exec_properties_of(gen)["input_config"],
                                       example_gen_pb2.Input())
    assert [split.name for split in config.splits] == list(SPLITS)
    return [split.pattern for split in config.splits]


def run(out: Path, dataset: DatasetConfig, label_names: list[str], seed: int = 42,
        through_driver: bool = False,
        limits: ImageLimits = ImageLimits()) -> standard_artifacts.Examples:
    """Runs the executor as the TFX executor tests do; returns the output artifact."""
    properties = exec_properties_of(ImageExampleGen(dataset, label_names, seed, limits))
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    if through_driver:
        properties = driver.FileBasedDriver(None).resolve_exec_properties(properties, None, None)
        driver.update_output_artifact(properties, examples.mlmd_artifact)
    Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, properties)
    return examples


def read_records(examples: standard_artifacts.Examples, split: str) -> list[bytes]:
    files = sorted(tf.io.gfile.glob(f"{examples.uri}/Split-{split}/*"))
    return list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


def read_split(examples: standard_artifacts.Examples, split: str) -> list[tf.train.Example]:
    return [tf.train.Example.FromString(record) for record in read_records(examples, split)]


def read_all(examples: standard_artifacts.Examples) -> dict[str, list[tf.train.Example]]:
    assert sorted(examples.splits) == sorted(SPLITS)
    return {split: read_split(examples, split) for split in SPLITS}


def fields(example: tf.train.Example) -> tuple[bytes, int, str]:
    feature = example.features.feature
    return (feature["image"].bytes_list.value[0], feature["label"].int64_list.value[0],
            feature["label_name"].bytes_list.value[0].decode())


def split_counts(examples: standard_artifacts.Examples) -> dict[str, int]:
    return json.loads(examples.get_string_custom_property("split_counts"))


def skipped(examples: standard_artifacts.Examples) -> list[dict]:
    listing = json.loads(Path(examples.uri, "skipped_images.json").read_text())
    assert examples.get_int_custom_property("skipped_images") == len(listing)
    return listing


# Fashion-MNIST: the classic A -> B split on a small real subset --------------------------------

@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("fashion")
    image_files.write_fashion_subset(Path(FASHION_MNIST_DIR), directory, 2000, 500)
    return directory


def fashion_arrays(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return (image_files.read_idx(directory / f"{prefix}-images-idx3-ubyte.gz"),
            image_files.read_idx(directory / f"{prefix}-labels-idx1-ubyte.gz"))


def test_source_task_keeps_eight_classes_relabelled(fashion, tmp_path):
    classes = [name for name in FASHION if name not in ("Sandal", "Shirt")]
    dataset = DatasetConfig(format="idx", path=str(fashion), class_names=FASHION, classes=classes)
    examples = run(tmp_path, dataset, classes)
    splits = read_all(examples)
    train_images, train_labels = fashion_arrays(fashion, "train")
    test_images, test_labels = fashion_arrays(fashion, "t10k")
    kept_train = int(np.isin(train_labels, [5, 6], invert=True).sum())
    assert len(splits["train"]) + len(splits["eval"]) == kept_train
    assert len(splits["test"]) == int(np.isin(test_labels, [5, 6], invert=True).sum())
    assert 0.05 < len(splits["eval"]) / kept_train < 0.12
    assert split_counts(examples) == {split: len(splits[split]) for split in SPLITS}
    unselected = json.loads(examples.get_string_custom_property("unselected_examples"))
    assert sum(unselected.values()) == int(np.isin(train_labels, [5, 6]).sum()
                                           + np.isin(test_labels, [5, 6]).sum())
    originals = collections.defaultdict(set)  # class name -> pixel bytes of its images
    for images, labels in ((train_images, train_labels), (test_images, test_labels)):
        for image, label in zip(images, labels):
            originals[FASHION[label]].add(image.tobytes())
    for example in splits["train"] + splits["eval"] + splits["test"]:
        image, label, name = fields(example)
        assert name == classes[label]
        decoded = Image.open(io.BytesIO(image))
        assert (decoded.format, decoded.mode, decoded.size) == ("PNG", "L", (28, 28))
        assert decoded.tobytes() in originals[name]
    assert Path(examples.uri, "label_vocabulary.txt").read_text() == "".join(
        f"{name}\n" for name in classes)
    assert skipped(examples) == []


def test_target_task_budgets_are_stratified_and_deterministic(fashion, tmp_path):
    dataset = DatasetConfig(format="idx", path=str(fashion), class_names=FASHION,
                            classes=["Sandal", "Shirt"], label_budget=20, eval_label_budget=7)
    first_run = run(tmp_path / "a", dataset, ["Sandal", "Shirt"])
    first = read_all(first_run)
    _, train_labels = fashion_arrays(fashion, "train")
    _, test_labels = fashion_arrays(fashion, "t10k")
    available = {"train": collections.Counter(), "eval": collections.Counter()}
    for index, label in enumerate(train_labels):
        if label in (5, 6):
            split = "eval" if unit_hash(f"train#{index}") < dataset.eval_fraction else "train"
            available[split][int(label) - 5] += 1
    for split, budget in (("train", 20), ("eval", 7)):
        per_class = collections.Counter(fields(example)[1] for example in first[split])
        assert len(first[split]) == budget
        assert per_class == stratified_quotas(dict(available[split]), budget)
    assert len(first["test"]) == int(np.isin(test_labels, [5, 6]).sum())

    def records(examples):  # the order within a split is shuffled by TFX's WriteSplit
        return {split: sorted(read_records(examples, split)) for split in SPLITS}

    assert records(run(tmp_path / "b", dataset, ["Sandal", "Shirt"])) == records(first_run)


def test_the_unlabelled_pool_is_the_exact_complement_of_the_label_sample(fashion, tmp_path):
    """The target's images beyond its budgets, labels dropped: with the budgets' own sample
    it makes up every train and eval image once, and the test split is the same."""
    classes = ["T-shirt/top", "Shirt"]
    budgeted = DatasetConfig(format="idx", path=str(fashion), class_names=FASHION,
                             classes=classes, label_budget=20, eval_label_budget=7)
    pool_config = budgeted.model_copy(update={"labelled": False, "beyond_label_budget": True})
    labelled = read_all(run(tmp_path / "labelled", budgeted, classes))
    pool_run = run(tmp_path / "pool", pool_config, classes)
    pool = read_all(pool_run)
    everything = read_all(run(tmp_path / "all", budgeted.model_copy(
        update={"label_budget": None, "eval_label_budget": None}), classes))
    for split in ("train", "eval"):
        sampled = {fields(example)[0] for example in labelled[split]}
        unlabelled = [fields(example)[0] for example in pool[split]]
        assert not sampled & set(unlabelled)
        assert sorted([*sampled, *unlabelled]) == sorted(
            fields(example)[0] for example in everything[split])
    assert len(pool["train"]) == len(everything["train"]) - 20
    assert len(pool["eval"]) == len(everything["eval"]) - 7
    assert {fields(example)[1:] for split in SPLITS for example in pool[split]} == {(-1, "")}
    assert len(pool["test"]) == len(everything["test"])
    counts = json.loads(pool_run.get_string_custom_property("class_counts"))
    assert counts["train"] == {"(unlabelled)": len(pool["train"])}
    assert Path(pool_run.uri, "label_vocabulary.txt").read_text() == ""


def test_an_unlabelled_image_folder_holds_its_images_directly(tmp_path):
    for i in range(40):
        image_files.write_image(tmp_path / "images" / f"{i:03d}.png", seed=i)
    image_files.write_broken(tmp_path / "images" / "broken.png", "corrupt")
    dataset = DatasetConfig(format="image_folder", path=str(tmp_path / "images"),
                            labelled=False, on_bad_image="skip", test_fraction=0.2)
    examples = run(tmp_path / "out", dataset, [])
    splits = read_all(examples)
    assert sum(map(len, splits.values())) == 40
    assert {fields(example)[1:] for split in SPLITS for example in splits[split]} == {(-1, "")}
    assert [entry["path"] for entry in skipped(examples)] == [
        str(tmp_path / "images" / "broken.png")]
    assert split_counts(examples) == {split: len(splits[split]) for split in SPLITS}


def test_an_unlabelled_folder_with_class_folders_is_an_error_naming_it(tmp_path):
    image_files.write_image_folder(tmp_path / "images", {"cats": 3, "dogs": 3})
    dataset = DatasetConfig(format="image_folder", path=str(tmp_path / "images"),
                            labelled=False)
    with pytest.raises(DatasetError, match=r"images: an unlabelled image folder holds its "
                       r"images directly; found folder\(s\)"):
        run(tmp_path / "out", dataset, [])


def test_an_unlabelled_pool_left_empty_by_the_budgets_is_an_error(tmp_path):
    write_labelled_idx(tmp_path, [0, 1] * 10)
    n_eval = sum(unit_hash(f"train#{index}") < 0.3 for index in range(20))
    assert 0 < n_eval < 20
    dataset = DatasetConfig(format="idx", path=str(tmp_path), class_names=["a", "b"],
                            labelled=False, beyond_label_budget=True, eval_fraction=0.3,
                            label_budget=20 - n_eval, eval_label_budget=1)
    with pytest.raises(DatasetError, match="no train images left to pretrain on"):
        run(tmp_path / "out", dataset, ["a", "b"])


def write_labelled_idx(directory: Path, train_labels: list[int], compress: bool = True) -> None:
    images = np.random.default_rng(0).integers(0, 256, (len(train_labels), 5, 5))
    image_files.write_idx(directory, "train", images, np.array(train_labels), compress)
    image_files.write_idx(directory, "t10k", images[:2], np.array([0, 1]), compress)


def test_budget_larger_than_the_training_split_fails(tmp_path):
    write_labelled_idx(tmp_path / "data", [0, 1] * 20, compress=False)
    dataset = DatasetConfig(format="idx", path=str(tmp_path / "data"), class_names=["a", "b"],
                            label_budget=100)
    with pytest.raises(DatasetError, match=rf"{tmp_path / 'data'}: label_budget 100 exceeds the "
                                           r"\d+ training examples .*a: \d+, b: \d+"):
        run(tmp_path / "out", dataset, ["a", "b"])
    dataset = dataset.model_copy(update={"label_budget": None, "eval_label_budget": 30})
    with pytest.raises(DatasetError, match=r"eval_label_budget 30 exceeds the \d+ eval examples"):
        run(tmp_path / "out2", dataset, ["a", "b"])


def test_describe_fashion_mnist_reads_headers_and_labels_only():
    dataset = DatasetConfig(format="idx", path=FASHION_MNIST_DIR, class_names=FASHION,
                            classes=["Sandal", "Shirt"])
    summary = describe_dataset(dataset)
    assert summary.class_names == FASHION
    assert summary.counts == {name: 6000 for name in FASHION}
    assert resolve_label_names(dataset, summary) == ["Sandal", "Shirt"]
    everything = DatasetConfig(format="idx", path=FASHION_MNIST_DIR)
    digits = [str(label) for label in range(10)]
    assert resolve_label_names(everything, describe_dataset(everything)) == digits


# IDX bad input --------------------------------------------------------------------------------

def test_idx_label_outside_class_names_fails_or_is_skipped(tmp_path):
    write_labelled_idx(tmp_path / "data", [0, 1, 12, 1, 0, 1])
    fail = DatasetConfig(format="idx", path=str(tmp_path / "data"), class_names=["a", "b"])
    with pytest.raises(BadImageError, match=r"train-labels-idx1-ubyte\.gz#2: label 12 is outside"):
        run(tmp_path / "fail", fail, ["a", "b"])
    examples = run(tmp_path / "skip", fail.model_copy(update={"on_bad_image": "skip"}), ["a", "b"])
    [entry] = skipped(examples)
    assert entry["path"].endswith("train-labels-idx1-ubyte.gz#2")
    assert "label 12" in entry["reason"]
    assert sum(split_counts(examples).values()) == 7


@pytest.mark.parametrize("damage, message", [
    ("magic", r"train-images-idx3-ubyte\.gz: not an IDX images file \(magic number 0x00000801"),
    ("truncated", r"train-images-idx3-ubyte\.gz: truncated"),
    ("short", r"train-images-idx3-ubyte: 486 bytes, but its header's dimensions"),
    ("missing", r"expected one images file"),
])
def test_broken_idx_files_are_errors_naming_the_file(tmp_path, damage, message):
    data = tmp_path / "data"
    write_labelled_idx(data, [0, 1] * 10, compress=damage != "short")
    images = data / "train-images-idx3-ubyte.gz"
    if damage == "magic":
        images.write_bytes((data / "train-labels-idx1-ubyte.gz").read_bytes())
    elif damage == "truncated":
        images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-30]))
    elif damage == "short":
        raw = data / "train-images-idx3-ubyte"
        raw.write_bytes(raw.read_bytes()[:-30])
    else:
        images.unlink()
    dataset = DatasetConfig(format="idx", path=str(data), class_names=["a", "b"])
    with pytest.raises(DatasetError, match=message):
        run(tmp_path / "out", dataset, ["a", "b"])


# Image folders --------------------------------------------------------------------------------

def test_image_folder_keeps_the_encoded_bytes_of_every_format(tmp_path):
    root = tmp_path / "flowers"
    originals = {  # relative path -> bytes, of several formats, sizes and modes
        "dog/a.jpg": image_files.write_image(root / "dog/a.jpg", (32, 24), "L"),
        "dog/B.JPG": image_files.write_image(root / "dog/B.JPG", (17, 40), "RGB", seed=1),
        "dog/c.jpeg": image_files.write_image(root / "dog/c.jpeg", (64, 64), "RGB", seed=2),
        "dog/d.bmp": image_files.write_image(root / "dog/d.bmp", (9, 7), "L", seed=3),
        "cat/a.png": image_files.write_image(root / "cat/a.png", (8, 8), "L", seed=4),
        "cat/b.PNG": image_files.write_image(root / "cat/b.PNG", (50, 30), "RGB", seed=5),
        "cat/c.gif": image_files.write_image(root / "cat/c.gif", (12, 20), "RGB", seed=6),
    }
    originals.update(image_files.write_image_folder(root, {"cat": 12, "dog": 12}))
    image_files.write_image_folder(root, {"bird": 5})  # not selected
    dataset = DatasetConfig(format="image_folder", path=str(root), classes=["dog", "cat"])
    summary = describe_dataset(dataset)
    assert summary.class_names == ["bird", "cat", "dog"]
    assert summary.counts == {"bird": 5, "cat": 15, "dog": 16}
    label_names = resolve_label_names(dataset, summary)
    assert label_names == ["dog", "cat"]
    examples = run(tmp_path / "out", dataset, label_names)
    splits = read_all(examples)
    by_bytes = {data: relative for relative, data in originals.items()}
    seen = []
    for split in SPLITS:
        assert splits[split], f"{split} is empty"
        for example in splits[split]:
            image, label, name = fields(example)
            seen.append(by_bytes[image])  # the file's own bytes, not re-encoded
            assert seen[-1].split("/")[0] == name == label_names[label]
    assert sorted(seen) == sorted(originals)
    unselected = json.loads(examples.get_string_custom_property("unselected_examples"))
    assert sum(unselected.values()) == 5
    assert Path(examples.uri, "label_vocabulary.txt").read_text() == "dog\ncat\n"


BROKEN = {  # file name -> (kind of damage, what the error says)
    "empty.png": ("zero_byte", "empty image"),
    "cut.jpg": ("truncated", "not a decodable image"),
    "crc.png": ("corrupt", "not a decodable image"),
    "text.jpg": ("text", "not a decodable image"),
    "notes.txt": ("text", "not an image file name"),
}


def folder_with(root: Path, broken: list[str]) -> DatasetConfig:
    image_files.write_image_folder(root, {"a": 6, "b": 6})
    for name in broken:
        image_files.write_broken(root / "b" / name, BROKEN[name][0])
    return DatasetConfig(format="image_folder", path=str(root))


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_bad_image_fails_naming_the_file(tmp_path, name):
    dataset = folder_with(tmp_path / "data", [name])
    with pytest.raises(BadImageError, match=rf"/b/{name}: {BROKEN[name][1]}"):
        run(tmp_path / "out", dataset, ["a", "b"])


def test_bad_images_are_skipped_counted_and_listed(tmp_path):
    dataset = folder_with(tmp_path / "data", sorted(BROKEN)).model_copy(
        update={"on_bad_image": "skip"})
    examples = run(tmp_path / "out", dataset, ["a", "b"])
    listing = skipped(examples)
    assert [Path(entry["path"]).name for entry in listing] == sorted(BROKEN)
    for entry in listing:
        assert BROKEN[Path(entry["path"]).name][1] in entry["reason"]
    assert sum(split_counts(examples).values()) == 12


def oversized(folder: Path) -> dict[str, str]:
    """Three hostile files in `folder`, and the config key each one's refusal names."""
    bomb = io.BytesIO()
    Image.new("L", (8000, 8000)).save(bomb, "PNG")  # 62 kB, 64 million pixels
    (folder / "bomb.png").write_bytes(bomb.getvalue())
    (folder / "frames.gif").write_bytes(crafted_gif((1000, 1000), [(1000, 1000)] * 60))
    with open(folder / "huge.png", "wb") as sparse:  # never read: refused by its size
        sparse.truncate(2**31)
    return {"bomb.png": "image.max_pixels=50000000", "frames.gif": "image.max_pixels=50000000",
            "huge.png": "image.max_bytes=67108864"}


def test_images_over_the_limits_are_skipped_before_decoding_naming_the_key(tmp_path):
    dataset = folder_with(tmp_path / "data", []).model_copy(update={"on_bad_image": "skip"})
    refused = oversized(tmp_path / "data" / "b")
    examples = run(tmp_path / "out", dataset, ["a", "b"])
    reasons = {Path(entry["path"]).name: entry["reason"] for entry in skipped(examples)}
    assert reasons.keys() == refused.keys()
    for name, key in refused.items():
        assert key in reasons[name]
    assert sum(split_counts(examples).values()) == 12


def test_an_image_over_the_limits_fails_naming_the_file(tmp_path):
    dataset = folder_with(tmp_path / "data", [])
    oversized(tmp_path / "data" / "b")
    with pytest.raises(BadImageError, match=r"/b/(bomb.png|frames.gif|huge.png): the image"):
        run(tmp_path / "out", dataset, ["a", "b"])


def test_the_run_s_limits_reach_ingestion(tmp_path):
    dataset = folder_with(tmp_path / "data", []).model_copy(update={"on_bad_image": "skip"})
    examples = run(tmp_path / "out", dataset, ["a", "b"], limits=ImageLimits(max_bytes=10))
    listing = skipped(examples)
    assert len(listing) == 12
    assert all("image.max_bytes=10" in entry["reason"] for entry in listing)


@pytest.mark.parametrize("layout, message", [
    ("missing", r"dataset path .*/data does not exist"),
    ("empty_class", r"empty class folder\(s\), no files in: .*/data/b"),
    ("no_folder", r"no folder for class\(es\) \['c'\]"),
])
def test_folder_structure_errors_name_the_path(tmp_path, layout, message):
    root = tmp_path / "data"
    if layout != "missing":
        image_files.write_image_folder(root, {"a": 2})
        (root / "b").mkdir()
    if layout == "no_folder":
        image_files.write_image(root / "b/x.png")
    dataset = DatasetConfig(format="image_folder", path=str(root), classes=["a", "c"]
                            if layout == "no_folder" else None)
    with pytest.raises(DatasetError, match=message):
        describe_dataset(dataset)
    with pytest.raises(DatasetError, match=message):
        run(tmp_path / "out", dataset, ["a", "c"] if layout == "no_folder" else ["a", "b"])


# TFRecords ------------------------------------------------------------------------------------

def test_tfrecords_gzip_and_plain_relabelled_with_bad_records(tmp_path):
    root = tmp_path / "records"
    images = [image_files.image_bytes((10, 10), seed=i) for i in range(24)]
    image_files.write_tfrecord(root / "part-0.tfrecord.gz",
                               [image_files.tf_example(images[i], i % 3) for i in range(12)])
    image_files.write_tfrecord(root / "part-1.tfrecord",
                               [image_files.tf_example(images[i], i % 3) for i in range(12, 24)]
                               + [image_files.tf_example(images[0], 7),
                                  image_files.tf_example(None, 0)])
    dataset = DatasetConfig(format="tfrecord", path=str(root), class_names=["x", "y", "z"],
                            classes=["z", "x"])
    with pytest.raises(BadImageError, match=r"part-1\.tfrecord#12: label 7 is outside"):
        run(tmp_path / "fail", dataset, ["z", "x"])
    examples = run(tmp_path / "skip", dataset.model_copy(update={"on_bad_image": "skip"}),
                   ["z", "x"])
    label_seven, no_image = skipped(examples)
    assert label_seven["path"].endswith("part-1.tfrecord#12")
    assert label_seven["reason"].startswith("label 7 is outside the 3 class_names")
    assert no_image["path"].endswith("part-1.tfrecord#13")
    assert no_image["reason"] == "expected one bytes value in feature 'image', found 0"
    kept = [fields(e) for split in read_all(examples).values() for e in split]
    assert sorted(image for image, _, _ in kept) == sorted(
        images[i] for i in range(24) if i % 3 in (0, 2))
    assert {(images.index(image) % 3, label, name) for image, label, name in kept} == {
        (2, 0, "z"), (0, 1, "x")}
    assert describe_dataset(dataset).counts is None


# Spans ----------------------------------------------------------------------------------------

def test_span_folders_resolved_by_the_driver_or_the_executor(tmp_path):
    root = tmp_path / "spans"
    image_files.write_image_folder(root / "span-1", {"a": 2, "b": 2})
    image_files.write_image_folder(root / "span-2", {"a": 5, "b": 4})
    dataset = DatasetConfig(format="image_folder", path=str(root))
    gen = ImageExampleGen(dataset, ["a", "b"], seed=1).with_id("target_example_gen")
    assert patterns_of(gen) == ["span-{SPAN}/*/*"] * 3
    assert describe_dataset(dataset).counts == {"a": 5, "b": 4}
    for through_driver in (True, False):
        examples = run(tmp_path / f"out-{through_driver}", dataset, ["a", "b"],
                       through_driver=through_driver)
        assert examples.mlmd_artifact.custom_properties["span"].int_value == 2
        assert sum(split_counts(examples).values()) == 9
        paths = {example.features.feature["image"].bytes_list.value[0]
                 for split in read_all(examples).values() for example in split}
        assert paths == {(root / f"span-2/{c}/{i:03d}.png").read_bytes()
                         for c, n in (("a", 5), ("b", 4)) for i in range(n)}


def test_a_rolling_window_reads_the_newest_spans_together(tmp_path):
    root = tmp_path / "spans"
    for span, count in ((1, 2), (2, 3), (4, 4)):  # span 3 is missing: it is skipped
        image_files.write_image_folder(root / f"span-{span}", {"a": count, "b": count})
    for spans, expected in ((1, 8), (2, 8), (3, 14), (10, 18)):
        dataset = DatasetConfig(format="image_folder", path=str(root), spans=spans)
        examples = run(tmp_path / f"window-{spans}", dataset, ["a", "b"])
        assert examples.mlmd_artifact.custom_properties["span"].int_value == 4
        assert sum(split_counts(examples).values()) == expected, spans


# Component and helpers ------------------------------------------------------------------------

def test_component_patterns_and_custom_config(tmp_path):
    image_files.write_image_folder(tmp_path / "flat", {"a": 1})
    cases = [(DatasetConfig(format="idx", path=str(tmp_path)), ["train-*", "train-*", "t10k-*"]),
             (DatasetConfig(format="image_folder", path=str(tmp_path / "flat")), ["*/*"] * 3),
             (DatasetConfig(format="tfrecord", path=str(tmp_path / "none")), ["*"] * 3),
             (DatasetConfig(format="csv", path=str(tmp_path), manifest="cells.csv",
                            label_column="p", threshold=0.5, class_names=["a", "b"],
                            split_seed=7), ["cells.csv"] * 3)]
    for dataset, patterns in cases:
        gen = ImageExampleGen(dataset, ["a"], seed=3)
        assert patterns_of(gen) == patterns
        options = from_exec_properties(exec_properties_of(gen))
        assert (options.dataset, options.label_names, options.seed) == (dataset, ["a"], 3)
    with pytest.raises(ValueError, match="distinct"):
        ImageExampleGen(cases[0][0], ["a", "a"], seed=3)


def test_stratified_quotas_use_largest_remainders():
    assert stratified_quotas({0: 5, 1: 3, 2: 2}, 5) == {0: 3, 1: 1, 2: 1}
    assert stratified_quotas({0: 100, 1: 100}, 20) == {0: 10, 1: 10}
    assert stratified_quotas({0: 1, 1: 98, 2: 1}, 3) == {0: 0, 1: 3, 2: 0}


def test_dataset_errors_are_found_behind_multiprocess_beam_errors():
    error = RuntimeError("Traceback ...\ncomponents.image_example_gen.errors.BadImageError: "
                         "/d/x.png: empty image (0 bytes) [while running 'SelectAndValidate']")
    found = find_dataset_error(error)
    assert isinstance(found, BadImageError) and str(found) == "/d/x.png: empty image (0 bytes)"
    assert find_dataset_error(RuntimeError("boom")) is None
