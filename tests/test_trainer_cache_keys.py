"""Each Trainer's custom_config (its cache key) holds only what that Trainer reads."""

from __future__ import annotations

import pytest

from pipeline.config import load_config
from trainer.options import TrainerConfig

CONFIG = "configs/fashion_mnist_ab.yaml"
ROLES = ("pretrain", "transfer", "scratch")


def _keys(*overrides: str, config: str = CONFIG) -> dict[str, str]:
    """The custom_config of each Trainer (by role) and ExampleGen of the built pipeline."""
    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(load_config(config, list(overrides)))
    return {component.id.removesuffix("_trainer"): str(component.exec_properties[
        "custom_config"]) for component in pipeline.components
        if component.id.endswith(("_trainer", "_example_gen"))}


@pytest.mark.parametrize("override, changed", [
    ("training.fine_tune.unfreeze=2", {"transfer"}),
    ("training.fine_tune.learning_rate=1e-5", {"transfer"}),
    # The default scratch budget is the transfer's epochs: it follows them.
    ("training.fine_tune.epochs=12", {"transfer", "scratch"}),
    ("training.frozen.epochs=9", {"transfer", "scratch"}),
    ("training.cache_frozen_features=false", {"transfer"}),
    ("training.pretrain.epochs=3", {"pretrain"}),
    ("training.scratch={epochs: 7, learning_rate: 1.0e-3}", {"scratch"}),
    ("model.reuse_layers=3", {"transfer"}),
    ("training.batch_size=64", set(ROLES)),
    ("model.dropout=0.2", set(ROLES)),
    ("seed=7", {*ROLES, "source_example_gen", "target_example_gen"}),
    # A study's seeds: the target's sample and Trainers change, the source side stays cached.
    ("target_seed=7", {"transfer", "scratch", "target_example_gen"}),
    ("target.eval_label_budget=40", {"target_example_gen"}),
])
def test_a_change_reaches_only_the_components_that_read_it(override, changed):
    before, after = _keys(), _keys(override)
    assert before.keys() == {*ROLES, "source_example_gen", "target_example_gen"}
    assert {key for key in before if before[key] != after[key]} == changed


UNLABELLED = "configs/fashion_mnist_unlabelled.yaml"


@pytest.mark.parametrize("method, override, changed", [
    ("rotation", "pretraining.method=autoencoder", {"pretrain"}),
    # Neither pretext task reads augmentation; the autoencoder has no head, so no dropout.
    ("rotation", "training.augmentation.flip=horizontal", {"transfer", "scratch"}),
    ("autoencoder", "training.augmentation.flip=horizontal", {"transfer", "scratch"}),
    ("autoencoder", "model.dropout=0.2", {"transfer", "scratch"}),
    ("rotation", "model.dropout=0.2", set(ROLES)),
    # The pool is the complement of the target's sample: it follows the target's seed.
    ("rotation", "target_seed=7",
     {"transfer", "scratch", "target_example_gen", "source_example_gen"}),
    ("rotation", "seed=7", {*ROLES, "source_example_gen", "target_example_gen"}),
    ("rotation", "target.label_budget=100", {"target_example_gen", "source_example_gen"}),
])
def test_a_label_free_pretrainings_key_holds_what_it_reads(method, override, changed):
    base = f"pretraining.method={method}"
    before, after = _keys(base, config=UNLABELLED), _keys(base, override, config=UNLABELLED)
    assert {key for key in before if before[key] != after[key]} == changed


def test_the_pool_and_the_target_sample_share_the_targets_seed():
    from components.image_example_gen.custom_config import from_exec_properties
    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(load_config(UNLABELLED, ["seed=3", "target_seed=11"]))
    options = {component.id: from_exec_properties(component.exec_properties)
               for component in pipeline.components if component.id.endswith("_example_gen")}
    pool, target = options["source_example_gen"], options["target_example_gen"]
    assert pool.seed == target.seed == 11
    assert pool.label_names == target.label_names == ["T-shirt/top", "Shirt"]
    assert (pool.dataset.labelled, pool.dataset.beyond_label_budget) == (False, True)
    assert target.dataset.labelled and not target.dataset.beyond_label_budget


def test_scratch_trains_the_phase_it_would_have_trained():
    config = load_config(CONFIG)
    scratch = TrainerConfig.for_role("scratch", config.model, config.training, ["a", "b"], 1)
    assert scratch.training.scratch_phase() == config.training.scratch_phase()
    transfer = TrainerConfig.for_role("transfer", config.model, config.training, ["a", "b"], 1)
    assert (transfer.training.frozen, transfer.training.fine_tune) == (
        config.training.frozen, config.training.fine_tune)


def test_a_components_code_is_in_its_cache_key(tmp_path, monkeypatch):
    from components import code_version as module

    package = tmp_path / "components" / "image_example_gen"
    package.mkdir(parents=True)
    (package / "executor.py").write_text("VERSION = 1\n")
    monkeypatch.setattr(module, "PROJECT", tmp_path)
    module.code_version.cache_clear()
    before = module.code_version("components/image_example_gen")
    (package / "executor.py").write_text("VERSION = 2\n")
    module.code_version.cache_clear()
    assert module.code_version("components/image_example_gen") != before
    module.code_version.cache_clear()


def test_project_components_carry_their_code_version():
    from components.code_version import code_version
    from pipeline.pipeline import create_pipeline

    config = load_config(CONFIG)
    nodes = {node.id: node for node in create_pipeline(config, serving_state="7@abc").components}
    custom = nodes["target_example_gen"].exec_properties["custom_config"]
    assert code_version("components/image_example_gen",
                        "transform/image_limits.py") in str(custom)
    assert nodes["pusher"].exec_properties["code_version"] == code_version(
        "components/versioned_pusher")
    served = nodes["served_model"].exec_properties
    assert served["code_version"] == code_version("components/served_model",
                                                  "components/versioned_pusher")
    assert served["serving_state"] == "7@abc"
