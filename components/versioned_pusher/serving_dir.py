"""What a serving dir serves, on a local disk or in an object store: its complete versions, a
model's identity, the version a candidate must be compared with, and copying a version out."""

from __future__ import annotations

import hashlib
import os
import posixpath

from tfx.dsl.io import fileio
from tfx.utils import io_utils

from components.versioned_pusher import object_store

# TensorFlow writes it into every SavedModel: hashes of the graph, signatures and checkpoint.
FINGERPRINT_FILE = "fingerprint.pb"
SAVED_MODEL = object_store.SAVED_MODEL
# served_baseline when the candidate itself is served: never a version number, never "".
CANDIDATE_SERVED = "self"
# A probe's served_baseline when nothing is served: `none@<when>`, new on every probe.
NOTHING_SERVED = "none"


def numeric_versions(serving_dir: str) -> list[int]:
    """The TF Serving version dirs of a local serving dir, oldest first (a local push renames
    a whole version into place, so each is complete)."""
    if not fileio.isdir(serving_dir):
        return []
    names = (name.rstrip("/") for name in fileio.listdir(serving_dir))
    return sorted(int(name) for name in names
                  if name.isdigit() and fileio.isdir(os.path.join(serving_dir, name)))


def complete_versions(serving_dir: str) -> list[int]:
    """The versions a reader may load, oldest first: a numeric dir without a saved_model.pb
    (made by hand, or half deleted) is none."""
    if object_store.is_object_store(serving_dir):
        return object_store.complete_versions(serving_dir)
    return [version for version in numeric_versions(serving_dir)
            if fileio.exists(os.path.join(serving_dir, str(version), SAVED_MODEL))]


def _read(path: str) -> bytes | None:
    if object_store.is_object_store(path):
        fs, key = object_store.filesystem(path)
        return fs.cat(key) if fs.exists(key) else None
    return fileio.open(path, "rb").read() if fileio.exists(path) else None


def model_identity(model_dir: str) -> str:
    """A short hash that is equal for the same SavedModel wherever it is copied: of its
    fingerprint.pb, or of saved_model.pb for SavedModels written without one."""
    content = _read(posixpath.join(model_dir, FINGERPRINT_FILE)) or \
        _read(posixpath.join(model_dir, SAVED_MODEL))
    if content is None:
        raise FileNotFoundError(f"{model_dir}: no SavedModel ({SAVED_MODEL}) there")
    return hashlib.sha256(content).hexdigest()[:16]


def serving_state(serving_dir: str) -> str:
    """`<version>@<identity>` of the latest complete version, "" when nothing is served: what
    a push or a rollback changes."""
    versions = complete_versions(serving_dir)
    if not versions:
        return ""
    return f"{versions[-1]}@{model_identity(posixpath.join(serving_dir, str(versions[-1])))}"


def served_baseline(serving_dir: str, candidate_dir: str) -> str:
    """What the candidate must not be worse than: `<version>@<identity>` of the latest complete
    version; `self@<identity>` when that is the candidate itself (compared with itself, it
    passes); "" when nothing is served. Distinct values, so distinct cache keys: an emptied
    serving dir is not taken for one that serves the candidate."""
    identity = model_identity(candidate_dir)
    state = serving_state(serving_dir)
    return f"{CANDIDATE_SERVED}@{identity}" if state.endswith(f"@{identity}") else state


def candidate_served(candidate_dir: str) -> str:
    """served_baseline's value when the candidate itself is the latest version served."""
    return f"{CANDIDATE_SERVED}@{model_identity(candidate_dir)}"


def nothing_served(moment: str) -> str:
    """A probe's served_baseline when nothing is served, found at moment: never the same twice,
    so the comparison and the Pusher after it run again on every tick that finds the serving
    dir empty (an emptied serving dir is refilled) instead of reusing an earlier decision."""
    return f"{NOTHING_SERVED}@{moment}"


def compared_version(baseline: str) -> str:
    """The served version a served_baseline names; "" when the candidate is compared with
    itself (nothing served, or the candidate served)."""
    if not baseline or baseline.startswith((f"{CANDIDATE_SERVED}@", f"{NOTHING_SERVED}@")):
        return ""
    version, _, identity = baseline.partition("@")
    if not version.isdigit() or not identity:
        raise ValueError(f"served_baseline {baseline!r}: expected '' or "
                         f"'{NOTHING_SERVED}@<when>' (nothing served), "
                         f"'{CANDIDATE_SERVED}@<identity>' (the candidate is served) or "
                         "'<version>@<identity>'")
    return version


def copy_version(serving_dir: str, baseline: str, destination: str) -> None:
    """Copy the version `served_baseline` named into the local dir destination."""
    version = compared_version(baseline)
    if not version:
        raise ValueError(f"served_baseline {baseline!r} names no version of {serving_dir}")
    source = posixpath.join(serving_dir, version)
    if object_store.is_object_store(serving_dir):
        object_store.download(source, destination)
    else:
        io_utils.copy_dir(source, destination)
    if model_identity(destination) != baseline.split("@", 1)[1]:
        raise RuntimeError(f"{source} changed while it was read: it is no longer {baseline}")
