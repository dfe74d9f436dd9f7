"""CSV manifests: the label rule, the fixed stratified split, manifest errors, and a real run
of ImageExampleGen on one (small synthetic manifests; ELPV's own manifest for its split)."""

from __future__ import annotations

import collections
import math
import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from tfx.components.example_gen import driver, utils

from components.image_example_gen import (BadImageError, DatasetError, ImageExampleGen,
                                          describe_dataset, resolve_label_names)
from components.image_example_gen.csv_manifest import read_manifest, split_rows
from components.image_example_gen.options import DatasetConfig
from pipeline.config import ConfigError, PipelineDatasetConfig, _check_dataset
from tests import image_files
from tests.test_image_example_gen import (exec_properties_of, fields, patterns_of, read_all,
                                          run, skipped, split_counts)

ELPV = Path("data/elpv")
DEFECTIVE = {"label_column": "defect_probability", "threshold": 0.5,
             "class_names": ["functional", "defective"]}


def write_manifest(folder: Path, lines: list[str], name: str = "labels.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def csv_dataset(folder: Path, **fields_: object) -> DatasetConfig:
    return DatasetConfig(format="csv", path=str(folder), **{"label_column": "label", **fields_})


def labelled_rows(counts: dict[str, int]) -> list[str]:
    """Manifest lines, header first: images/<class>-<i>.png of each class."""
    return ["path,label"] + [f"images/{name}-{i:03d}.png,{name}"
                             for name, count in counts.items() for i in range(count)]


def splits_by_class(folder: Path, dataset: DatasetConfig) -> dict[str, collections.Counter]:
    manifest = read_manifest(str(folder), dataset.manifest, dataset)
    splits = split_rows(manifest, dataset)
    by_split: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in manifest.rows:
        by_split[splits[row.path]][row.class_name] += 1
    return by_split


# The split ------------------------------------------------------------------------------------

def test_the_split_is_stratified_and_fixed_by_split_seed_alone(tmp_path):
    write_manifest(tmp_path, labelled_rows({"a": 150, "b": 100, "c": 50}))
    dataset = csv_dataset(tmp_path, test_fraction=0.2, eval_fraction=0.25)
    by_split = splits_by_class(tmp_path, dataset)
    assert by_split["test"] == {"a": 30, "b": 20, "c": 10}
    assert by_split["eval"] == {"a": 30, "b": 20, "c": 10}  # a quarter of each class's rest
    assert by_split["train"] == {"a": 90, "b": 60, "c": 30}
    manifest = read_manifest(str(tmp_path), "labels.csv", dataset)
    split = split_rows(manifest, dataset)
    # Budgets, class selection and labelled take no part; only split_seed moves rows.
    assert split_rows(manifest, dataset.model_copy(update={
        "label_budget": 10, "eval_label_budget": 5, "classes": ["c", "a"],
        "labelled": False})) == split
    moved = split_rows(manifest, dataset.model_copy(update={"split_seed": 1}))
    assert moved != split and collections.Counter(moved.values()) == collections.Counter(
        split.values())


@pytest.mark.parametrize("rule, classes", [
    (DEFECTIVE, ["functional", "defective"]),
    ({"label_column": "defect_probability"},
     ["0.0", "0.3333333333333333", "0.6666666666666666", "1.0"]),
    ({"label_column": "cell_type"}, ["mono", "poly"]),
])
def test_elpv_keeps_a_quarter_of_every_class_for_test(rule, classes):
    dataset = DatasetConfig(format="csv", path=str(ELPV), test_fraction=0.25, **rule)
    by_split = splits_by_class(ELPV, dataset)
    whole = by_split["train"] + by_split["eval"] + by_split["test"]
    assert sum(whole.values()) == 2624 and sum(by_split["test"].values()) == 656
    for name in classes:
        assert abs(by_split["test"][name] - whole[name] / 4) <= 1, name
    summary = describe_dataset(dataset)
    assert summary.class_names == classes
    assert summary.counts == {name: whole[name] - by_split["test"][name] for name in classes}
    assert sum(summary.counts.values()) == 1968


def test_elpv_defective_budgets_pass_the_config_check_up_to_the_train_split():
    dataset = PipelineDatasetConfig(format="csv", path=str(ELPV), test_fraction=0.25,
                                    eval_fraction=0.2, label_budget=400,
                                    eval_label_budget=100, **DEFECTIVE)
    _check_dataset("target", dataset)
    by_split = splits_by_class(ELPV, dataset)
    assert by_split["test"] == {"functional": 451, "defective": 205}
    assert by_split["eval"] == {"functional": 271, "defective": 123}
    with pytest.raises(ConfigError, match=r"target.label_budget: 1600 train images asked for, "
                                          r"but data/elpv has about 1574"):
        _check_dataset("target", dataset.model_copy(update={"label_budget": 1600}))


@pytest.mark.parametrize("value, expected", [
    ("0.5", "defective"), ("5e-1", "defective"), ("1", "defective"),
    (repr(math.nextafter(0.5, 0)), "functional"), ("0.49", "functional"), ("-3", "functional"),
])
def test_a_value_at_the_threshold_is_class_one(tmp_path, value, expected):
    write_manifest(tmp_path, ["path,p", "a.png,0", "b.png,1", f"c.png,{value}"])
    dataset = csv_dataset(tmp_path, label_column="p", threshold=0.5,
                          class_names=["functional", "defective"])
    rows = read_manifest(str(tmp_path), "labels.csv", dataset).rows
    assert [row.class_name for row in rows] == ["functional", "defective", expected]


def test_class_names_order_a_class_column_and_classes_select_from_it(tmp_path):
    write_manifest(tmp_path, ["path,label", "a.png,mono", "b.png,poly", "./c.png,mono"])
    assert describe_dataset(csv_dataset(tmp_path, test_fraction=0.01)).class_names == [
        "mono", "poly"]
    dataset = csv_dataset(tmp_path, class_names=["poly", "mono"], classes=["mono", "poly"])
    summary = describe_dataset(dataset)
    assert summary.class_names == ["poly", "mono"]
    assert resolve_label_names(dataset, summary) == ["mono", "poly"]
    assert [row.path for row in read_manifest(str(tmp_path), "labels.csv", dataset).rows] == [
        "a.png", "b.png", "c.png"]


# Errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("lines, rule, message", [
    (None, {}, r"/labels.csv: no manifest file .*holds \['other.csv'\]"),
    ([], {}, r"/labels.csv: empty; expected a header row naming the columns \(path, label\)"),
    (["path,label"], {}, r"/labels.csv: no rows below the header"),
    (["path,kind", "a.png,x"], {},
     r"/labels.csv: the header has no column\(s\) \['label'\] .*found columns \['path', 'kind'\]"),
    (["path,label", "a.png,x", "b.png,y,z"], {},
     r"/labels.csv, line 3: 3 fields, but the header has 2 \(path,label\)"),
    (["path,label", "a.png,x", "b.png,x", "./a.png,y"], {},
     r"/labels.csv, line 4: image 'a.png' is listed again \(first on line 2\)"),
    (["path,label", "/data/a.png,x"], {},
     r"/labels.csv, line 2: image path '/data/a.png' must be relative"),
    (["path,label", "a.png,x", "img/../../b.png,y"], {},
     r"/labels.csv, line 3: image path 'img/../../b.png' must be relative .* stay inside it"),
    (["path,label", ",x"], {}, r"/labels.csv, line 2: empty image path"),
    (["path,label", "a.png,"], {}, r"/labels.csv, line 2: column 'label': class name '' is empty"),
    (["path,label", "a.png,x", "b.png,z"], {"class_names": ["x", "y"]},
     r"/labels.csv, line 3: 'z' in column 'label' is not in class_names \['x', 'y'\]"),
    (["path,label", "a.png,x"], {"class_names": ["x", "y"]},
     r"/labels.csv: no rows of class\(es\) \['y'\] in column 'label'"),
    (["path,label", "a.png,0.2", "b.png,0.4"], {"threshold": 0.5, "class_names": ["ok", "bad"]},
     r"/labels.csv: no rows of class\(es\) \['bad'\] in column 'label' \(threshold 0.5\)"),
    (["path,label", "a.png,0.2", "b.png,high"], {"threshold": 0.5, "class_names": ["ok", "bad"]},
     r"/labels.csv, line 3: 'high' in column 'label' is not a number"),
    (["path,label", "a.png,nan"], {"threshold": 0.5, "class_names": ["ok", "bad"]},
     r"/labels.csv, line 2: 'nan' in column 'label' is not a number"),
])
def test_manifest_errors_name_the_file_and_line(tmp_path, lines, rule, message):
    if lines is None:
        write_manifest(tmp_path, ["path,label"], name="other.csv")
    else:
        write_manifest(tmp_path, lines)
    dataset = csv_dataset(tmp_path, **rule)
    with pytest.raises(DatasetError, match=message):
        describe_dataset(dataset)
    with pytest.raises(ConfigError, match="target: .*" + message):
        _check_dataset("target", dataset)


@pytest.mark.parametrize("fields_, message", [
    ({"label_column": None}, "label_column: format csv needs the column"),
    ({"label_column": "path"}, "'path' is also the path_column"),
    ({"threshold": 0.5}, "a threshold on 'label' makes 2 classes; name them"),
    ({"threshold": 0.5, "class_names": ["a", "b", "c"]}, "makes 2 classes"),
    ({"spans": 2}, "spans: format csv reads one manifest"),
    ({"manifest": "sub/labels.csv"}, "manifest: 'sub/labels.csv' must be a plain file name"),
    ({"manifest": "labels*.csv"}, "must be a plain file name"),
    ({"format": "image_folder"}, "label_column, threshold: only format csv has columns"),
])
def test_bad_csv_settings_name_the_key(fields_, message):
    with pytest.raises(ValidationError, match=message):
        DatasetConfig(**{"format": "csv", "path": "/data", "label_column": "label", **fields_})


# ImageExampleGen on a manifest ----------------------------------------------------------------

def write_dataset(folder: Path, counts: dict[str, int]) -> dict[str, bytes]:
    """A manifest of tiny PNGs under folder/images; returns manifest path -> image bytes."""
    lines = labelled_rows(counts)
    write_manifest(folder, lines)
    return {line.split(",")[0]: image_files.write_image(folder / line.split(",")[0], (4, 4),
                                                        seed=index)
            for index, line in enumerate(lines[1:])}


def test_ingesting_a_manifest_keeps_its_split_labels_and_skips_bad_rows(tmp_path):
    data = tmp_path / "data"
    images = write_dataset(data, {"mono": 24, "poly": 16, "other": 4})
    (data / "images/poly-000.png").unlink()
    image_files.write_broken(data / "images/mono-000.png", "corrupt")
    dataset = csv_dataset(data, test_fraction=0.25, eval_fraction=0.25, on_bad_image="skip",
                          classes=["poly", "mono"])
    examples = run(tmp_path / "out", dataset, ["poly", "mono"], seed=1, through_driver=True)
    expected = split_rows(read_manifest(str(data), "labels.csv", dataset), dataset)
    bad = {"images/poly-000.png", "images/mono-000.png"}
    got = {}
    for split, split_examples in read_all(examples).items():
        for example in split_examples:
            image, label, name = fields(example)
            path = next(path for path, data_ in images.items() if data_ == image)
            assert ["poly", "mono"][label] == name == path.split("/")[1].split("-")[0]
            got[path] = split
    assert got == {path: split for path, split in expected.items()
                   if path not in bad and "other" not in path}
    counts = dict(collections.Counter(got.values()))
    assert split_counts(examples) == counts and sum(counts.values()) == 38
    listing = {Path(entry["path"]).name: entry["reason"] for entry in skipped(examples)}
    assert listing.keys() == {"poly-000.png", "mono-000.png"}
    assert listing["poly-000.png"] == f"no such file (line 26 of {data}/labels.csv)"
    assert "not a decodable image" in listing["mono-000.png"]

    # Another run seed with budgets: the same test images, a sample of the same train images.
    budgeted = run(tmp_path / "budgeted", dataset.model_copy(
        update={"label_budget": 10, "eval_label_budget": 4}), ["poly", "mono"], seed=2)
    again = {split: sorted(fields(e)[0] for e in split_examples)
             for split, split_examples in read_all(budgeted).items()}
    assert again["test"] == sorted(images[p] for p, split in got.items() if split == "test")
    assert set(again["train"]) < {images[p] for p, split in got.items() if split == "train"}
    assert split_counts(budgeted) == {"train": 10, "eval": 4, "test": counts["test"]}


def test_a_missing_image_fails_naming_its_row(tmp_path):
    write_dataset(tmp_path / "data", {"a": 4, "b": 4})
    (tmp_path / "data/images/b-002.png").unlink()
    with pytest.raises(BadImageError, match=r"/data/images/b-002.png: no such file \(line 8 of "
                                            r".*/data/labels.csv\) \(dataset on_bad_image"):
        run(tmp_path / "out", csv_dataset(tmp_path / "data", test_fraction=0.25), ["a", "b"])


def test_a_changed_manifest_changes_the_input_fingerprint(tmp_path):
    data = tmp_path / "data"
    write_dataset(data, {"a": 3, "b": 3})
    gen = ImageExampleGen(csv_dataset(data), ["a", "b"], seed=0)
    assert patterns_of(gen) == ["labels.csv"] * 3

    def fingerprint() -> str:
        resolved = driver.FileBasedDriver(None).resolve_exec_properties(
            exec_properties_of(gen), None, None)
        return resolved[utils.FINGERPRINT_PROPERTY_NAME]

    first = fingerprint()
    manifest = data / "labels.csv"
    manifest.write_text(manifest.read_text().replace("b-002.png,b", "b-002.png,a"))
    stat = manifest.stat()
    os.utime(manifest, (stat.st_atime, stat.st_mtime + 1))  # an edit a second later
    assert fingerprint() != first
