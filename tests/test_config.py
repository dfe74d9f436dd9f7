"""Config loading and validation: good configs load, bad ones name the key and what's wrong."""

import copy

import pytest
import yaml

from pathlib import Path

from pipeline.config import ConfigError, check_datasets, load_config, parse_config
from trainer.options import TrainingConfig

DEFAULT = Path("configs/fashion_mnist_ab.yaml")


@pytest.fixture
def data() -> dict:
    with open(DEFAULT, encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_embedded_default_is_the_classic_split():
    config = load_config(DEFAULT)
    assert config.target.classes == ["Sandal", "Shirt"]
    assert config.target.label_budget == 200
    assert "Sandal" not in config.source.classes and "Shirt" not in config.source.classes
    assert len(config.source.classes) == 8
    assert config.pretrains


@pytest.mark.parametrize("path", sorted(Path("configs").glob("*.yaml")), ids=str)
def test_every_shipped_config_loads_and_its_datasets_check(path):
    check_datasets(load_config(path))


def test_the_harder_benchmark_counts_200_labels_and_keeps_its_classes_out_of_the_source():
    config = load_config("configs/fashion_mnist_shirt_tshirt.yaml")
    assert config.target.classes == ["T-shirt/top", "Shirt"]
    assert config.target.label_budget + config.target.eval_label_budget == 200
    assert not set(config.source.classes) & set(config.target.classes)
    assert len(config.source.classes) == 8
    assert config.training == TrainingConfig()  # the defaults users get


UNLABELLED = Path("configs/fashion_mnist_unlabelled.yaml")


def test_the_unlabelled_config_pretrains_on_the_targets_images_beyond_its_budgets():
    config = load_config(UNLABELLED)
    harder = load_config("configs/fashion_mnist_shirt_tshirt.yaml")
    assert config.source is None and config.pretrains
    assert (config.pretraining.method, config.pretraining.data) == (
        "rotation", "target_unlabelled")
    assert config.target == harder.target  # the same 200 labels as the supervised benchmark
    pool = config.pretraining_dataset
    assert (pool.labelled, pool.beyond_label_budget, pool.max_class_imbalance) == (
        False, True, None)
    assert pool.model_copy(update={"labelled": True, "beyond_label_budget": False,
                                   "max_class_imbalance": 10.0}) == config.target


@pytest.mark.parametrize("overrides, message", [
    (["pretraining.method=supervised"], "supervised pretraining needs a labelled source"),
    (["target.eval_label_budget=null"], "needs label_budget and eval_label_budget"),
    (["source.format=idx", "source.path=/usr/share/datasets/fashion-mnist"],
     "leave source out"),
    (["pretraining.method=rotation", "image.width=32"], "needs square images; image is 28x32"),
    (["training.augmentation.quarter_turns=true", "image.width=32"],
     "quarter_turns: .* needs square images; image is 28x32"),
    (["target.format=image_folder"], "target_unlabelled needs an idx or tfrecord target"),
    (["model.architecture=mobilenet_v2", "image.channels=3", "model.weights=w.h5"],
     "nothing is pretrained when model.weights names a backbone"),
])
def test_bad_pretraining_configs_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(UNLABELLED, overrides)


def test_an_unlabelled_source_needs_a_label_free_method():
    with pytest.raises(ConfigError, match="supervised pretraining needs a labelled source"):
        load_config(DEFAULT, ["source.labelled=false"])
    config = load_config(DEFAULT, ["source.labelled=false", "pretraining.method=rotation"])
    assert config.pretraining_dataset == config.source


def test_overrides_are_parsed_as_yaml():
    config = load_config(DEFAULT, ["training.batch_size=64", "training.fine_tune.unfreeze=2",
                                   "target.label_budget=null", "evaluation.margin=0.01"])
    assert config.training.batch_size == 64
    assert config.training.fine_tune.unfreeze == 2
    assert config.target.label_budget is None
    assert config.evaluation.margin == pytest.approx(0.01)


def test_an_override_merges_into_a_section_the_config_leaves_at_its_defaults(tmp_path):
    data = yaml.safe_load(DEFAULT.read_text())
    del data["training"]
    path = tmp_path / "no_training.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path, ["training.frozen.epochs=60", "kubeflow.image=repo/x:1"])
    defaults = TrainingConfig()
    assert config.training.frozen.epochs == 60
    assert config.training.frozen.learning_rate == defaults.frozen.learning_rate
    assert config.training.fine_tune == defaults.fine_tune
    assert config.kubeflow.image == "repo/x:1"
    # A section given in the file keeps its own values beside the override.
    config = load_config(DEFAULT, ["training.frozen.epochs=60"])
    assert config.training.frozen.learning_rate == 3e-3
    assert config.training.pretrain.epochs == 10


def test_an_override_into_a_section_without_defaults_names_the_missing_key(tmp_path):
    with pytest.raises(ConfigError, match="training.scratch.learning_rate: Field required"):
        load_config(DEFAULT, ["training.scratch.epochs=3"])


@pytest.mark.parametrize("override, message", [
    ("training.batch_size", "expected KEY=VALUE"),
    ("seed.inner=1", "'seed' is not a section"),
])
def test_malformed_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(DEFAULT, [override])


@pytest.mark.parametrize("mutate, key, message", [
    (lambda d: d.update(colour="blue"), "colour", "unknown key"),
    (lambda d: d["training"].update(bach_size=3), "training.bach_size", "unknown key"),
    (lambda d: d["training"].update(batch_size="many"), "training.batch_size", "integer"),
    (lambda d: d["training"].update(batch_size=0), "training.batch_size", "greater than or equal to 1"),
    (lambda d: d.update(name="Fashion MNIST"), "name", "should match pattern"),
    (lambda d: d["target"].update(classes=["Sandal", "Sandal"]), "target", "selected more than once"),
    (lambda d: d["target"].update(classes=["Sandal", "Sock"]), "target", "not in class_names"),
    (lambda d: d["target"].update(classes=["Sandal"]), "target", "at least 2 classes"),
    (lambda d: d["target"].update(label_budget=-5), "target.label_budget", "greater than 0"),
    (lambda d: d["target"].update(format="parquet"), "target.format",
     "'idx', 'image_folder', 'tfrecord' or 'csv'"),
    (lambda d: d["image"].update(channels=2), "image.channels", "1 or 3"),
    (lambda d: d["model"].update(architecture="mobilenet_v2"), "(top level)", "needs 3 channels"),
    (lambda d: d["model"].update(weights="w.h5"), "model", "only Keras applications"),
    (lambda d: d["training"]["fine_tune"].update(learning_rate=0), "training.fine_tune.learning_rate",
     "greater than or equal to 0.0000000001"),
    (lambda d: d.pop("target"), "target", "Field required"),
    (lambda d: d.pop("source"), "(top level)", "source: needed to pretrain"),
])
def test_bad_configs_name_the_key(data, mutate, key, message):
    bad = copy.deepcopy(data)
    mutate(bad)
    with pytest.raises(ConfigError) as error:
        parse_config(bad, "bad.yaml")
    text = str(error.value)
    assert text.startswith("bad.yaml: invalid config")
    assert f"  {key}" in text and message in text, text


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config(["a", "b"], "list.yaml")


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(broken)


def test_relative_roots_become_absolute(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = parse_config(data)
    assert config.pipeline_root == str(tmp_path / "runs" / "fashion-mnist-ab")
    assert config.metadata_path.endswith("metadata.sqlite")
