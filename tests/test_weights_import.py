"""`tfx-transfer weights import`: the real ImageNet weights of MobileNetV1 (a TF-slim frozen
graph) and EfficientNet-Lite0 (a PyTorch state dict) converted, checked against their sources
layer by layer, and classifying a real photo.

The source files are put in data/weights/ by the project's setup; without them these tests skip.
"""

import collections
import dataclasses
import os
import pickle
import sys
import zipfile
from unittest import mock

import h5py
import matplotlib
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from pipeline.cli import main
from trainer.architectures import reusable_layers
from trainer.efficientnet_lite import efficientnet_lite0
from trainer.module import reused_base
from trainer.options import IMPORTABLE_WEIGHTS, ModelConfig
from trainer.weights_import import CONVERSIONS, import_weights
from trainer.weights_import.efficientnet_lite0 import reference_features
from trainer.weights_import.tf_graph import read_graph_def, read_tf_weights
from trainer.weights_import.torch_checkpoint import LEGACY_MAGIC, read_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = {"mobilenet_v1": os.path.join(ROOT, "data/weights/mobilenet_v1_1.0_224_frozen.pb"),
           "efficientnet_lite0": os.path.join(ROOT, "data/weights/efficientnet_lite0.pth")}
MILITARY_UNIFORM = 652  # Keras' 1000-class ImageNet index
# The last feature maps before the classifier's average pooling.
LAST_FEATURES = {"mobilenet_v1": "conv_pw_13_relu", "efficientnet_lite0": "top_activation"}

pytestmark = pytest.mark.skipif(not all(map(os.path.exists, SOURCES.values())),
                                reason="data/weights/ not set up")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[tuple[str, bool], str]:
    """Each architecture's weights file, without and with the ImageNet classifier."""
    folder = tmp_path_factory.mktemp("weights")
    files = {}
    for architecture, source in SOURCES.items():
        for include_top in (False, True):
            files[architecture, include_top] = str(folder / f"{architecture}_{include_top}.h5")
            import_weights(architecture, source, files[architecture, include_top], include_top)
    return files


@pytest.fixture(scope="module")
def grace_hopper() -> np.ndarray:
    """matplotlib's photo of Grace Hopper in uniform, 224x224, in [-1, 1]."""
    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    image = Image.open(path).convert("RGB").resize((224, 224), Image.BILINEAR)
    return np.asarray(image, np.float32)[None] / 127.5 - 1


def classifier(architecture: str, weights: str) -> keras.Model:
    """The ImageNet model, outputting logits."""
    if architecture == "mobilenet_v1":
        return keras.applications.MobileNet(weights=weights, classifier_activation=None)
    return efficientnet_lite0(weights=weights, classifier_activation=None)


def outputs(model: keras.Model, layer: str, images: np.ndarray) -> np.ndarray:
    return keras.Model(model.input, model.get_layer(layer).output)(images).numpy()


@pytest.mark.parametrize("architecture", SOURCES)
def test_the_converted_models_see_a_military_uniform(architecture, converted, grace_hopper):
    model = classifier(architecture, converted[architecture, True])
    probabilities = tf.nn.softmax(model(grace_hopper)).numpy()[0]
    assert probabilities.argmax() == MILITARY_UNIFORM and probabilities.max() > 0.3


def test_mobilenet_v1_computes_what_the_frozen_graph_computes(converted, grace_hopper):
    images = np.concatenate([grace_hopper, np.random.default_rng(1).uniform(
        -1, 1, grace_hopper.shape).astype(np.float32)])
    graph_outputs = {"conv_pw_1_relu": "MobilenetV1/MobilenetV1/Conv2d_1_pointwise/Relu6",
                     "conv_pw_7_relu": "MobilenetV1/MobilenetV1/Conv2d_7_pointwise/Relu6",
                     "logits": "MobilenetV1/Logits/SpatialSqueeze"}
    expected = {}
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(read_graph_def(SOURCES["mobilenet_v1"]), name="")
        with tf.compat.v1.Session(graph=graph) as session:
            for image in images:  # the graph's input is one image
                result = session.run({k: f"{v}:0" for k, v in graph_outputs.items()},
                                     {"input:0": image[None]})
                for name, value in result.items():
                    expected.setdefault(name, []).append(value)
    expected = {name: np.concatenate(values) for name, values in expected.items()}
    model = classifier("mobilenet_v1", converted["mobilenet_v1", True])
    for layer in ("conv_pw_1_relu", "conv_pw_7_relu"):
        np.testing.assert_allclose(outputs(model, layer, images), expected[layer], atol=1e-4)
    # Keras has no 'background' class 0.
    np.testing.assert_allclose(model(images).numpy(), expected["logits"][:, 1:], atol=1e-4)


def test_efficientnet_lite0_computes_what_numpy_computes_from_the_state_dict(converted):
    tensors = read_state_dict(SOURCES["efficientnet_lite0"])
    model = efficientnet_lite0(include_top=False, weights=converted["efficientnet_lite0", False])
    images = np.random.default_rng(2).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    # block1a: no expansion; block2a: stride 2; block2b: a residual block.
    for n_blocks, layer in ((1, "block1a_project_bn"), (3, "block2b_add")):
        np.testing.assert_allclose(outputs(model, layer, images),
                                   reference_features(tensors, images, n_blocks), atol=1e-4)


def test_a_wrong_transpose_fails_the_conversions_numeric_check(tmp_path, monkeypatch):
    conversion = CONVERSIONS["efficientnet_lite0"]

    def rows_and_columns_swapped(name: str, value: np.ndarray) -> np.ndarray:
        # The shapes still fit (square kernels); the numbers don't.
        converted = conversion.to_keras(name, value)
        return np.swapaxes(converted, 0, 1) if converted.ndim == 4 else converted

    monkeypatch.setitem(CONVERSIONS, "efficientnet_lite0",
                        dataclasses.replace(conversion, to_keras=rows_and_columns_swapped))
    output = tmp_path / "swapped.h5"
    with pytest.raises(ValueError, match="numeric check failed: block1a_project_bn"):
        import_weights("efficientnet_lite0", SOURCES["efficientnet_lite0"], str(output))
    assert not output.exists()


@pytest.mark.parametrize("architecture", SOURCES)
def test_the_base_file_is_what_model_weights_loads(architecture, converted, grace_hopper):
    config = ModelConfig(architecture=architecture, weights=converted[architecture, False])
    base, n_reused = reused_base(config, (224, 224, 3), base_model=None)
    full = classifier(architecture, converted[architecture, True])
    pooled = outputs(full, LAST_FEATURES[architecture], grace_hopper).mean(axis=(1, 2))
    np.testing.assert_allclose(base(grace_hopper).numpy(), pooled, atol=1e-5)
    # Every BatchNorm goes with the conv it normalises: the stem, 2 + 15 x 3 block convs and
    # the top; MobileNet's conv1 and 13 depthwise + pointwise pairs.
    units = reusable_layers(base)
    assert n_reused == len(units) == {"mobilenet_v1": 27, "efficientnet_lite0": 49}[architecture]
    assert all(len(unit) == 2 for unit in units)


def test_a_tf_slim_checkpoint_converts_like_the_frozen_graph(converted, tmp_path):
    tensors = read_tf_weights(SOURCES["mobilenet_v1"])
    prefix = str(tmp_path / "model.ckpt")
    names = [*tensors, "global_step"]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[*tensors.values(), tf.constant(1000, tf.int64)])
    output = str(tmp_path / "from_checkpoint.h5")
    import_weights("mobilenet_v1", prefix, output)
    assert h5_arrays(output) == h5_arrays(converted["mobilenet_v1", False])


def h5_arrays(path: str) -> dict[str, bytes]:
    """Every dataset of an H5 file, by its path in the file."""
    arrays = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: arrays.update(
            {name: item[()].tobytes()} if isinstance(item, h5py.Dataset) else {}))
    return arrays


def write_zip_checkpoint(path: str, tensors: dict[str, np.ndarray]) -> None:
    """What `torch.save(state_dict, path)` writes since PyTorch 1.6 (torch/serialization.py,
    `_save`), for numpy arrays: a zip of archive/data.pkl (protocol 2, storages as persistent
    ids `('storage', torch.FloatStorage, key, location, numel)`) and archive/data/<key>. 2-D
    tensors are stored transposed with strides (1, rows), as a transposed view would be."""
    torch, torch_utils = type(sys)("torch"), type(sys)("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called: only pickled")

    _rebuild_tensor_v2.__module__ = "torch._utils"  # where pickle looks it up
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storage_types = {}
    for dtype, name in ((np.float32, "FloatStorage"), (np.int64, "LongStorage")):
        storage_types[np.dtype(dtype)] = type(name, (), {"__module__": "torch"})
        setattr(torch, name, storage_types[np.dtype(dtype)])

    class Storage:
        def __init__(self, key, array):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, storage, shape, stride):
            self.args = (storage, 0, shape, stride, False, collections.OrderedDict())

        def __reduce__(self):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", storage_types[obj.array.dtype], obj.key, "cpu",
                        obj.array.size)
            return None

    state, storages = collections.OrderedDict(), []
    for key, (name, array) in enumerate(tensors.items()):
        stored = array.T if array.ndim == 2 else array
        storages.append(Storage(str(key), np.ascontiguousarray(stored).ravel()))
        stride = (1, array.shape[0]) if array.ndim == 2 else tuple(
            step // array.itemsize for step in array.strides)
        state[name] = Tensor(storages[-1], array.shape, stride)
    with mock.patch.dict(sys.modules, {"torch": torch, "torch._utils": torch_utils}):
        with zipfile.ZipFile(path, "w") as archive:
            with archive.open("archive/data.pkl", "w") as data:
                Pickler(data, protocol=2).dump(state)
            archive.writestr("archive/byteorder", "little")
            for storage in storages:
                archive.writestr(f"archive/data/{storage.key}", storage.array.tobytes())
            archive.writestr("archive/version", "3\n")


def test_the_zip_format_reads_as_the_legacy_one_and_names_a_missing_tensor(tmp_path):
    legacy = read_state_dict(SOURCES["efficientnet_lite0"])
    zipped = str(tmp_path / "lite0.pth")
    write_zip_checkpoint(zipped, legacy)
    read = read_state_dict(zipped)
    assert list(read) == list(legacy)
    for name, value in legacy.items():
        np.testing.assert_array_equal(read[name], value)

    del legacy["_blocks.3._bn1.running_var"]
    write_zip_checkpoint(zipped, legacy)
    with pytest.raises(ValueError, match=r"lite0.pth: expected an EfficientNet-Lite0 .*"
                                         r"missing \['_blocks.3._bn1.running_var'\]"):
        import_weights("efficientnet_lite0", zipped, str(tmp_path / "out.h5"))


class RunsACommand:
    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("zipped", [False, True])
def test_a_pickle_asking_for_other_globals_is_refused_unrun(tmp_path, zipped):
    payload = RunsACommand()
    payload.marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    if zipped:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", pickle.dumps({"weight": payload}, protocol=2))
    else:
        path.write_bytes(b"".join(pickle.dumps(part, protocol=2) for part in (
            LEGACY_MAGIC, 1001, {"little_endian": True}, {"weight": payload})))
    with pytest.raises(ValueError, match=r"evil.pth: .*refused to load (posix|os|nt)\.system"):
        read_state_dict(str(path))
    assert not payload.marker.exists()


def test_truncated_and_foreign_files_are_refused_with_what_was_expected(tmp_path):
    truncated = tmp_path / "truncated.pth"
    with open(SOURCES["efficientnet_lite0"], "rb") as source:
        truncated.write_bytes(source.read(os.path.getsize(SOURCES["efficientnet_lite0"]) // 2))
    with pytest.raises(ValueError, match="truncated.pth: not a readable PyTorch state dict "
                                         r"\(truncated"):
        read_state_dict(str(truncated))
    text = tmp_path / "notes.txt"
    text.write_text("not weights\n")
    with pytest.raises(ValueError, match="notes.txt: not a readable PyTorch state dict"):
        import_weights("efficientnet_lite0", str(text), str(tmp_path / "out.h5"))
    with pytest.raises(ValueError, match="notes.txt: not a frozen GraphDef"):
        import_weights("mobilenet_v1", str(text), str(tmp_path / "out.h5"))
    with pytest.raises(ValueError, match=r"\.pb: expected an EfficientNet-Lite0|"
                                         r"\.pb: not a readable PyTorch state dict"):
        import_weights("efficientnet_lite0", SOURCES["mobilenet_v1"], str(tmp_path / "out.h5"))
    assert not list(tmp_path.glob("*.h5"))


def test_the_config_refuses_imagenet_for_efficientnet_lite0_and_names_the_command():
    assert IMPORTABLE_WEIGHTS == tuple(CONVERSIONS)
    ModelConfig(architecture="mobilenet_v1", weights="imagenet")
    with pytest.raises(ValueError, match="tfx-transfer weights import --architecture "
                                         "efficientnet_lite0"):
        ModelConfig(architecture="efficientnet_lite0", weights="imagenet")
    with pytest.raises(ValueError, match="tfx-transfer weights import"):
        efficientnet_lite0(weights="imagenet")


def test_the_cli_converts_and_exits_2_on_bad_input(tmp_path, capsys):
    output = tmp_path / "mobilenet_v1.h5"
    assert main(["weights", "import", "--architecture", "mobilenet_v1",
                 "--source", SOURCES["mobilenet_v1"], "--output", str(output),
                 "--include-top"]) == 0
    printed = capsys.readouterr().out
    assert f"{output}: mobilenet_v1 weights with the ImageNet classifier, 137 tensors" in printed
    assert output.exists()
    assert main(["weights", "import", "--architecture", "mobilenet_v1",
                 "--source", SOURCES["efficientnet_lite0"], "--output", str(output)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {SOURCES['efficientnet_lite0']}: no weights in it (expected a frozen GraphDef "
        "or a TF checkpoint)"]
