"""The serving directory under faults: a reader in another process never loads a partial model
while pushes and pruning go on; a full disk fails the push naming the path and the cause and
leaves the versions already there alone; the exported model is a SavedModel with assets and
nothing that unpickles or runs Python code when loaded; its signatures turn garbage into
errors and any decodable image into a prediction."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from hypothesis import event, given, settings
from hypothesis import strategies as st
from PIL import Image
from tfx.types import standard_artifacts

from components.versioned_pusher import PushError
from components.versioned_pusher import executor as ex
from pipeline.predict import classify_files
from tests.image_files import crafted_gif
from tests.reliability_runs import CHAIN_GROUP, PROJECT_ROOT, metadata_store_of, shared_chain

pytestmark = CHAIN_GROUP

PUSHES = 20
PUSH_INTERVAL = 0.25  # seconds; a model load takes about as long, so pushes overtake loads
VALID_IMAGES = 60  # examples of the property over the served model's raw-bytes signature


def saved_model(root: Path, value: float, width: int = 2) -> standard_artifacts.Model:
    """A Model artifact whose SavedModel answers `value` to any input, and says so in an
    asset too: a reader can tell whether graph, variables and assets come from one push."""
    net = tf_keras.Sequential([tf_keras.Input(shape=(width,)), tf_keras.layers.Dense(
        1, kernel_initializer="zeros", bias_initializer=tf_keras.initializers.Constant(value),
        name="value")])
    export = root / "Format-Serving"
    net.save(str(export), save_format="tf")
    (export / "assets.extra").mkdir()
    (export / "assets.extra" / "value.txt").write_text(f"{value}\n")
    model = standard_artifacts.Model()
    model.uri = str(root)
    return model


def push(model: standard_artifacts.Model, serving: Path, keep_versions: int,
         out: Path) -> standard_artifacts.PushedModel:
    """One run of the VersionedPusher executor with blessed inputs."""
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(out / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(out / f"pushed-{time.monotonic_ns()}")
    ex.Executor().Do({ex.MODEL_KEY: [model], ex.MODEL_BLESSING_KEY: [blessing]},
                     {ex.PUSHED_MODEL_KEY: [pushed]},
                     {ex.SERVING_DIR_KEY: str(serving), ex.KEEP_VERSIONS_KEY: keep_versions})
    return pushed


READER = """
import json, os, sys, time
import tensorflow as tf
from pipeline.predict import resolve_model_dir
serving, stop = sys.argv[1], sys.argv[2]
counts = {"complete": 0, "vanished": 0, "bad": []}
print("ready", flush=True)
while not os.path.exists(stop):
    model_dir = resolve_model_dir(serving)
    try:
        model = tf.saved_model.load(model_dir)
        value = float(model.signatures["serving_default"](tf.zeros([1, 2]))["value"][0, 0])
        asset = float(open(os.path.join(model_dir, "assets.extra", "value.txt")).read())
    except (tf.errors.OpError, OSError, ValueError) as error:
        # Pruned while loading: gone, not partial, if the directory no longer exists.
        if os.path.exists(model_dir):
            counts["bad"].append(f"{model_dir}: {type(error).__name__}: {error}")
        else:
            counts["vanished"] += 1
        continue
    if value != asset or value not in (1.0, 2.0):
        counts["bad"].append(f"{model_dir}: graph says {value}, asset {asset}")
    else:
        counts["complete"] += 1
print(json.dumps(counts), flush=True)
"""


def test_reader_in_another_process_never_loads_a_partial_model(tmp_path):
    """With one version kept, every push prunes the version a reader may be loading."""
    keep_versions = 1
    models = [saved_model(tmp_path / f"model-{v}", float(v)) for v in (1, 2)]
    serving, stop = tmp_path / "serving", tmp_path / "stop"
    push(models[0], serving, keep_versions, tmp_path)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(serving), str(stop)],
                              cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        assert reader.stdout.readline() == "ready\n"
        for i in range(PUSHES):
            push(models[i % 2], serving, keep_versions, tmp_path)
            time.sleep(PUSH_INTERVAL)
    finally:
        stop.touch()
        output, _ = reader.communicate(timeout=120)
    counts = json.loads(output.splitlines()[-1])
    print(f"keep_versions={keep_versions}, {PUSHES} pushes: reader {counts}")
    assert counts["bad"] == []
    assert counts["complete"] > 0, counts
    assert len(ex.numeric_versions(str(serving))) == keep_versions
    assert not [p for p in serving.iterdir() if p.name.startswith(ex.TMP_PREFIX)]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MB tmpfs: a real disk that fills up. Skips where mounting is not allowed."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"can't mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_push_to_a_full_disk_fails_naming_path_and_cause_and_keeps_versions(tmp_path,
                                                                            small_tmpfs):
    serving = small_tmpfs / "serving"
    version = push(saved_model(tmp_path / "small", 1.0), serving, 5, tmp_path) \
        .get_string_custom_property(ex.PUSHED_VERSION_KEY)
    before = {p: p.read_bytes() for p in (serving / version).rglob("*") if p.is_file()}
    big = saved_model(tmp_path / "big", 2.0, width=400_000)  # 1.6 MB of variables
    with pytest.raises(PushError) as error:
        push(big, serving, 5, tmp_path)
    assert str(serving) in str(error.value)
    assert "No space left on device" in str(error.value) or "ENOSPC" in str(error.value), \
        str(error.value)
    assert sorted(p.name for p in serving.iterdir()) == [version]  # temp copy removed
    assert {p: p.read_bytes() for p in (serving / version).rglob("*") if p.is_file()} == before
    loaded = tf.saved_model.load(str(serving / version))
    assert float(loaded.signatures["serving_default"](tf.zeros([1, 2]))["value"][0, 0]) == 1.0


# The model the pipeline really exports ------------------------------------------------------

SAVED_MODEL_FILES = {"saved_model.pb", "fingerprint.pb", "keras_metadata.pb",
                     "variables/variables.index"}
PICKLE_PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


@pytest.fixture(scope="module")
def pushed_model(tmp_path_factory) -> Path:
    """The transfer Trainer's export from the e2e runs, pushed by the VersionedPusher."""
    chain = shared_chain()
    store = metadata_store_of(chain.ws)
    [model] = [a for a in store.get_artifacts_by_type("Model")
               if "/transfer_trainer/" in a.uri and a.state == a.LIVE]
    artifact = standard_artifacts.Model()
    artifact.uri = model.uri
    out = tmp_path_factory.mktemp("pushed")
    pushed = push(artifact, out / "serving", 1, out)
    return Path(pushed.get_string_custom_property(ex.PUSHED_DESTINATION_KEY))


@pytest.mark.e2e
def test_exported_model_is_a_saved_model_with_assets_and_no_pickles(pushed_model):
    files = sorted(p.relative_to(pushed_model).as_posix() for p in pushed_model.rglob("*")
                   if p.is_file())
    unexpected = [f for f in files if f not in SAVED_MODEL_FILES
                  and not f.startswith(("variables/variables.data-", "assets/", "assets.extra/"))]
    assert unexpected == [], files
    # Tensor bytes in variables.data can start with anything; every other file is a proto or
    # a text asset and must not be a pickle.
    for name in files:
        if not name.startswith("variables/variables.data-"):
            assert not (pushed_model / name).read_bytes().startswith(PICKLE_PROTOCOLS), name
    # A Lambda layer would carry marshalled Python bytecode that Keras runs when loading.
    assert b'"class_name": "Lambda"' not in (pushed_model / "keras_metadata.pb").read_bytes()


def _encoded(size: tuple[int, int], mode: str, image_format: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 4), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").convert(mode).save(buffer, image_format)
    return buffer.getvalue()


FORMAT_MODES = [("PNG", m) for m in ("L", "LA", "RGB", "RGBA", "P", "I;16")] + \
    [("JPEG", m) for m in ("L", "RGB", "CMYK")] + [("BMP", "RGB"), ("GIF", "P")]


@pytest.mark.e2e
@settings(max_examples=VALID_IMAGES, deadline=None)
@given(st.sampled_from(FORMAT_MODES), st.integers(1, 400), st.integers(1, 400),
       st.integers(0, 2**16))
def test_any_decodable_image_gets_a_prediction(pushed_model, format_mode, width, height, seed):
    image_format, mode = format_mode
    event(f"{image_format} {mode}")
    raw = _served(pushed_model)
    outputs = raw(image_bytes=tf.constant([_encoded((width, height), mode, image_format, seed)]))
    probabilities = outputs["probabilities"].numpy()
    assert probabilities.shape == (1, 2) and np.isfinite(probabilities).all()
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-4)
    assert outputs["class_name"].numpy()[0] in (b"Sandal", b"Shirt")


_LOADED: dict[Path, object] = {}


def _served(model_dir: Path):
    """The raw-bytes signature, loaded once per model dir."""
    if model_dir not in _LOADED:
        _LOADED[model_dir] = tf.saved_model.load(str(model_dir))
    return _LOADED[model_dir].signatures["serving_raw"]


@pytest.mark.e2e
@pytest.mark.parametrize("garbage", [
    b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    b"\xff\xd8\xff" + bytes(i * 37 % 256 for i in range(64)),
    b"GIF89a\x01\x00\x01\x00", b"BM" + b"\xff" * 60,
], ids=["empty", "text", "png-header", "jpeg-noise", "gif-stub", "bmp-stub"])
def test_garbage_gets_an_error_and_the_model_keeps_serving(pushed_model, garbage):
    raw = _served(pushed_model)
    valid = _encoded((28, 28), "L", "PNG", 0)
    with pytest.raises(tf.errors.InvalidArgumentError):
        raw(image_bytes=tf.constant([garbage]))
    with pytest.raises(tf.errors.InvalidArgumentError):  # one bad image fails its batch
        raw(image_bytes=tf.constant([valid, garbage]))
    assert raw(image_bytes=tf.constant([valid]))["probabilities"].shape == (1, 2)
    examples = _LOADED[pushed_model].signatures["serving_default"]
    # parse_example quotes the bad record in its message; when that isn't UTF-8, TensorFlow's
    # Python binding fails to decode the message and raises UnicodeDecodeError instead.
    with pytest.raises((tf.errors.InvalidArgumentError, UnicodeDecodeError)):
        examples(examples=tf.constant([garbage]))
    assert raw(image_bytes=tf.constant([valid]))["probabilities"].shape == (1, 2)


def test_the_served_model_refuses_a_decompression_bomb_before_decoding(pushed_model):
    buffer = io.BytesIO()
    Image.new("L", (8000, 8000)).save(buffer, "PNG")  # 62 kB for 64 M pixels
    with pytest.raises(tf.errors.InvalidArgumentError, match="image.max_pixels"):
        _served(pushed_model)(image_bytes=tf.constant([buffer.getvalue()]))


@pytest.mark.e2e
def test_the_served_model_refuses_a_many_frame_gif_before_decoding(pushed_model):
    """400 frames of 1000 x 1000 in a few kB: giflib would hold every frame (400 MB)."""
    frames = crafted_gif((1000, 1000), [(1000, 1000)] * 400)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image.max_pixels=50000000\b"):
        _served(pushed_model)(image_bytes=tf.constant([frames]))
    assert _served(pushed_model)(image_bytes=tf.constant([_encoded((28, 28), "L", "PNG", 0)]))[
        "probabilities"].shape == (1, 2)


@pytest.mark.e2e
def test_predict_classifies_the_good_files_among_hostile_ones(pushed_model, tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(_encoded((28, 28), "L", "PNG", 0))
    (tmp_path / "frames.gif").write_bytes(crafted_gif((1000, 1000), [(1000, 1000)] * 400))
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    names = ["frames.gif", "good.png", "folder", "pipe.png", "good.png"]
    results = list(classify_files(str(pushed_model), [str(tmp_path / n) for n in names]))
    assert [Path(result["file"]).name for result in results] == names
    assert "image.max_pixels=50000000" in results[0]["error"]
    assert "directory" in results[2]["error"] and "FIFO" in results[3]["error"]
    assert results[1]["class_name"] == results[4]["class_name"] in ("Sandal", "Shirt")
