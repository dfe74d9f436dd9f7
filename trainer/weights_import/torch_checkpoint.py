"""Read a PyTorch state dict into numpy arrays without PyTorch, and without running its pickle.

`torch.save` writes a pickle whose tensors point at raw storages stored beside it: in a zip
archive (`<name>/data.pkl` and `<name>/data/<key>`, PyTorch 1.6+) or, in the legacy format,
after the pickle in the same stream (torch/serialization.py, `_legacy_save`). The pickle is
read by an unpickler that resolves only the names a state dict needs, so a checkpoint asking
for anything else (say `os.system`) is refused before any of it runs.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass
class _Storage:
    dtype: type
    key: str
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        # as_strided reads wherever it is told: keep every element inside the storage.
        last = self.offset + sum((size - 1) * step for size, step in zip(self.shape, self.stride))
        if (len(self.shape) != len(self.stride) or min(self.stride, default=0) < 0
                or self.offset < 0 or (0 not in self.shape and last >= self.storage.numel)):
            raise ValueError(f"tensor of shape {self.shape} reaches outside its storage")
        flat = self.storage.data[self.offset:]
        strides = tuple(step * flat.itemsize for step in self.stride)
        return np.lib.stride_tricks.as_strided(flat, self.shape, strides).copy()


def _rebuild_tensor_v2(storage: _Storage, offset: int, shape: tuple[int, ...],
                       stride: tuple[int, ...], *_: Any) -> _Tensor:
    return _Tensor(storage, offset, tuple(shape), tuple(stride))


def _rebuild_parameter(data: _Tensor, *_: Any) -> _Tensor:
    return data


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED` names; storages become placeholders filled in afterwards."""

    def __init__(self, file: IO[bytes]):
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a state dict holds "
                                         "only tensors in (ordered) dicts")
        return _ALLOWED[module, name]

    def persistent_load(self, saved_id: Any) -> _Storage:
        if not (isinstance(saved_id, tuple) and saved_id[0] == "storage"
                and isinstance(saved_id[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {saved_id!r:.80}")
        storage_type, key, _location, numel = saved_id[1:5]
        if len(saved_id) > 5 and saved_id[5] is not None:
            raise pickle.UnpicklingError("storage views (pre-1.0 PyTorch) are not supported")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, key, int(numel))
        return self.storages[key]


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """The tensors of a `torch.save`d state dict (zip or legacy format), by name."""
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        with open(path, "rb") as file:
            return _read_legacy(file)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path}: not a readable PyTorch state dict ({error})") from error


def _read_legacy(file: IO[bytes]) -> dict[str, np.ndarray]:
    if _StateDictUnpickler(file).load() != LEGACY_MAGIC:
        raise ValueError("no PyTorch magic number at the start")
    protocol = _StateDictUnpickler(file).load()
    if protocol != LEGACY_PROTOCOL:
        raise ValueError(f"legacy protocol {protocol}, expected {LEGACY_PROTOCOL}")
    _StateDictUnpickler(file).load()  # sys info: endianness and type sizes of the writer
    unpickler = _StateDictUnpickler(file)
    state = unpickler.load()
    for key in _StateDictUnpickler(file).load():
        storage = unpickler.storages[str(key)]
        numel = int.from_bytes(_read_exactly(file, 8), "little")
        if numel != storage.numel:
            raise ValueError(f"storage {key}: {numel} elements, the pickle says {storage.numel}")
        storage.data = _array(_read_exactly(file, numel * np.dtype(storage.dtype).itemsize),
                              storage)
    return _tensors(state)


def _read_zip(path: str) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"expected one <name>/data.pkl in the archive, found {pickles}")
        root = pickles[0][:-len("data.pkl")]
        unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])))
        state = unpickler.load()
        for key, storage in unpickler.storages.items():
            storage.data = _array(archive.read(f"{root}data/{key}"), storage)
    return _tensors(state)


def _read_exactly(file: IO[bytes], size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise ValueError(f"truncated: {size} bytes expected, {len(data)} left")
    return data


def _array(data: bytes, storage: _Storage) -> np.ndarray:
    # Little-endian whatever the reader: torch.save writes the machine's order, and every
    # platform PyTorch ships for is little-endian.
    array = np.frombuffer(data, np.dtype(storage.dtype).newbyteorder("<"))
    if array.size != storage.numel:
        raise ValueError(f"storage {storage.key}: {array.size} elements, expected {storage.numel}")
    return array


def _tensors(state: Any) -> dict[str, np.ndarray]:
    if not isinstance(state, dict) or not all(
            isinstance(name, str) and isinstance(value, _Tensor) for name, value in state.items()):
        raise ValueError("the pickle is not a state dict of named tensors")
    return {name: tensor.to_numpy() for name, tensor in state.items()}
