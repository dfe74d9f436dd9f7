"""VersionedPusher on real files and a real SavedModel."""

import json
import os

import pytest
import tensorflow as tf
import tf_keras
from tfx import types
from tfx.types import standard_artifacts

from components.code_version import code_version
from components.versioned_pusher import PushError, VersionedPusher
from components.versioned_pusher import executor as ex


def make_model(uri, seed: int = 0) -> standard_artifacts.Model:
    """A Model artifact holding a tiny real Keras SavedModel under Format-Serving; seeds give
    different weights, so different models."""
    tf_keras.utils.set_random_seed(seed)
    net = tf_keras.Sequential([tf_keras.Input(shape=(2,)), tf_keras.layers.Dense(1)])
    net.save(str(uri / "Format-Serving"), save_format="tf")
    model = standard_artifacts.Model()
    model.uri = str(uri)
    return model


@pytest.fixture(scope="module")
def model_artifact(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def other_models(tmp_path_factory):
    return [make_model(tmp_path_factory.mktemp(f"model-{seed}"), seed) for seed in (1, 2)]


def _blessing(tmp_path, name, blessed):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / name)
    blessing.set_int_custom_property("blessed", int(blessed))
    return blessing


def _push(model, tmp_path, serving_dir, keep_versions=5, blessed=True, served=None):
    """Runs Do once and returns the PushedModel artifact."""
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / f"pushed-{len(list(tmp_path.glob('pushed-*')))}")
    inputs = {ex.MODEL_KEY: [model], ex.MODEL_BLESSING_KEY: [_blessing(tmp_path, "b", blessed)]}
    if served is not None:
        inputs[ex.SERVED_BLESSING_KEY] = [_blessing(tmp_path, "served", served)]
    ex.Executor().Do(inputs, {ex.PUSHED_MODEL_KEY: [pushed]},
                     {ex.SERVING_DIR_KEY: str(serving_dir), ex.KEEP_VERSIONS_KEY: keep_versions})
    return pushed


def _record(pushed):
    with open(os.path.join(pushed.uri, ex.PUSH_RECORD_FILE)) as f:
        return json.load(f)


def test_blessed_model_is_pushed_and_loads(model_artifact, tmp_path):
    serving = tmp_path / "serving"
    pushed = _push(model_artifact, tmp_path, serving, served=True)

    version = pushed.get_string_custom_property(ex.PUSHED_VERSION_KEY)
    destination = serving / version
    assert pushed.get_int_custom_property(ex.PUSHED_KEY) == 1
    assert pushed.get_string_custom_property(ex.PUSHED_DESTINATION_KEY) == str(destination)
    assert (destination / "saved_model.pb").exists()
    assert tf.saved_model.load(str(destination)) is not None
    assert sorted(os.listdir(serving)) == [version]  # no temp dir left behind
    record = _record(pushed)
    assert record["pushed"] and record["version"] == version
    assert record["destination"] == str(destination) and record["left_behind"] == []


@pytest.mark.parametrize("blessed,served,culprit", [
    (False, None, ex.MODEL_BLESSING_KEY),
    (True, False, ex.SERVED_BLESSING_KEY),
])
def test_unblessed_model_is_not_pushed(model_artifact, tmp_path, blessed, served, culprit):
    serving = tmp_path / "serving"
    pushed = _push(model_artifact, tmp_path, serving, blessed=blessed, served=served)

    assert not serving.exists()
    assert pushed.get_int_custom_property(ex.PUSHED_KEY) == 0
    assert pushed.get_string_custom_property(ex.PUSHED_DESTINATION_KEY) == ""
    record = _record(pushed)
    assert not record["pushed"]
    assert [r.split(":")[0] for r in record["reasons"]] == [culprit]
    assert "NOT_BLESSED" in record["reasons"][0]


def test_missing_model_blessing_is_not_pushed(model_artifact, tmp_path):
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    ex.Executor().Do({ex.MODEL_KEY: [model_artifact], ex.MODEL_BLESSING_KEY: []},
                     {ex.PUSHED_MODEL_KEY: [pushed]},
                     {ex.SERVING_DIR_KEY: str(tmp_path / "serving"), ex.KEEP_VERSIONS_KEY: 2})
    assert pushed.get_int_custom_property(ex.PUSHED_KEY) == 0
    assert not (tmp_path / "serving").exists()


def test_versions_increase_past_existing_ones(model_artifact, other_models, tmp_path):
    serving = tmp_path / "serving"
    (serving / "9999999999").mkdir(parents=True)  # a version from the future
    versions = [int(_push(model, tmp_path, serving)
                    .get_string_custom_property(ex.PUSHED_VERSION_KEY))
                for model in (model_artifact, *other_models)]
    # Three pushes within the same second still get distinct, increasing versions.
    assert versions == [10000000000, 10000000001, 10000000002]


def test_the_model_served_now_is_not_pushed_again(model_artifact, other_models, tmp_path):
    serving = tmp_path / "serving"
    first = _push(model_artifact, tmp_path, serving)
    again = _push(model_artifact, tmp_path, serving)
    version = first.get_string_custom_property(ex.PUSHED_VERSION_KEY)
    assert again.get_int_custom_property(ex.PUSHED_KEY) == 0
    assert _record(again)["reasons"] == [f"already served: {serving}/{version} is this model"]
    assert sorted(os.listdir(serving)) == [version]
    # Served, but not the latest: a newer version went out since, so it is pushed back.
    _push(other_models[0], tmp_path, serving)
    assert _push(model_artifact, tmp_path, serving).get_int_custom_property(ex.PUSHED_KEY) == 1


def test_prunes_oldest_versions_and_leftover_temp_dirs(model_artifact, tmp_path):
    serving = tmp_path / "serving"
    for name in ("1", "2", "3", "notes", ".tmp-4-deadbeef"):
        (serving / name).mkdir(parents=True)
    (serving / "README").write_text("not a version")

    version = _push(model_artifact, tmp_path, serving, keep_versions=2) \
        .get_string_custom_property(ex.PUSHED_VERSION_KEY)

    assert sorted(os.listdir(serving)) == sorted(["3", version, "notes", "README"])


def _assert_failed_push_left(serving, before, match, model, tmp_path):
    with pytest.raises(PushError, match=match):
        _push(model, tmp_path, serving)
    assert sorted(os.listdir(serving)) == before


def test_unwritable_serving_dir_fails_and_keeps_versions(model_artifact, tmp_path):
    serving = tmp_path / "serving"
    version = _push(model_artifact, tmp_path, serving).get_string_custom_property(
        ex.PUSHED_VERSION_KEY)
    if os.geteuid() == 0:
        # Root ignores permission bits: use a serving_dir that is a regular file instead.
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(PushError, match=str(blocker)):
            _push(model_artifact, tmp_path, blocker)
    else:
        serving.chmod(0o555)
        try:
            _assert_failed_push_left(serving, [version], str(serving), model_artifact, tmp_path)
        finally:
            serving.chmod(0o755)
    assert tf.saved_model.load(str(serving / version)) is not None


def test_copy_failure_removes_temp_dir_and_keeps_versions(model_artifact, tmp_path):
    serving = tmp_path / "serving"
    version = _push(model_artifact, tmp_path, serving).get_string_custom_property(
        ex.PUSHED_VERSION_KEY)
    # A dangling symlink makes the copy fail half-way, for root too.
    broken = standard_artifacts.Model()
    broken.uri = str(tmp_path / "broken")
    os.makedirs(os.path.join(broken.uri, "Format-Serving"))
    with open(os.path.join(broken.uri, "Format-Serving", "saved_model.pb"), "wb") as f:
        f.write(b"")
    os.symlink("/nonexistent", os.path.join(broken.uri, "Format-Serving", "variables"))

    _assert_failed_push_left(serving, [version], str(serving), broken, tmp_path)


def test_model_without_saved_model_is_an_error(tmp_path):
    empty = standard_artifacts.Model()
    empty.uri = str(tmp_path / "empty")
    with pytest.raises(PushError, match="saved_model.pb"):
        _push(empty, tmp_path, tmp_path / "serving")
    assert not (tmp_path / "serving").exists()


def test_component_spec():
    pusher = VersionedPusher(
        model=types.Channel(type=standard_artifacts.Model),
        model_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        served_blessing=types.Channel(type=standard_artifacts.ModelBlessing),
        serving_dir="/srv/models/clf", keep_versions=3)

    assert set(pusher.inputs) == {"model", "model_blessing", "served_blessing"}
    assert set(pusher.outputs) == {"pushed_model"}
    assert pusher.outputs["pushed_model"].type == standard_artifacts.PushedModel
    assert pusher.exec_properties == {"serving_dir": "/srv/models/clf", "keep_versions": 3,
                                      "code_version": code_version("components/versioned_pusher")}


def test_component_without_served_blessing_and_bad_keep_versions():
    channels = dict(model=types.Channel(type=standard_artifacts.Model),
                    model_blessing=types.Channel(type=standard_artifacts.ModelBlessing))
    assert "served_blessing" not in VersionedPusher(
        **channels, serving_dir="/srv", keep_versions=1).inputs
    with pytest.raises(ValueError, match="keep_versions"):
        VersionedPusher(**channels, serving_dir="/srv", keep_versions=0)
