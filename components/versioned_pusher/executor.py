"""Executor of VersionedPusher: atomic pushes to `<serving_dir>/<version>/` with bounded history."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.components.util import model_utils
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, path_utils

from components.versioned_pusher import object_store
from components.versioned_pusher.serving_dir import (complete_versions, model_identity,
                                                     numeric_versions)

MODEL_KEY = standard_component_specs.MODEL_KEY
MODEL_BLESSING_KEY = standard_component_specs.MODEL_BLESSING_KEY
SERVED_BLESSING_KEY = "served_blessing"
PUSHED_MODEL_KEY = standard_component_specs.PUSHED_MODEL_KEY
SERVING_DIR_KEY = "serving_dir"
KEEP_VERSIONS_KEY = "keep_versions"

# The same custom properties TFX's Pusher writes, so downstream tooling reads both alike.
PUSHED_KEY = "pushed"
PUSHED_DESTINATION_KEY = "pushed_destination"
PUSHED_VERSION_KEY = "pushed_version"

PUSH_RECORD_FILE = "push.json"
TMP_PREFIX = ".tmp-"


class PushError(RuntimeError):
    """Copying the model into serving_dir failed; existing versions were left untouched."""


def blessing_problems(input_dict: Dict[str, List[types.Artifact]]) -> List[str]:
    """Why the model must not be pushed: one line per missing or unblessed blessing."""
    problems = []
    if not input_dict.get(MODEL_BLESSING_KEY):
        problems.append(f"{MODEL_BLESSING_KEY}: missing")
    # served_blessing is optional: absent or empty means no Evaluator against the served model.
    for key in (MODEL_BLESSING_KEY, SERVED_BLESSING_KEY):
        if input_dict.get(key):
            blessing = artifact_utils.get_single_instance(input_dict[key])
            if not model_utils.is_model_blessed(blessing):
                problems.append(f"{key}: not blessed, see NOT_BLESSED in {blessing.uri}")
    return problems


def version_after(existing: List[int]) -> int:
    """Seconds since epoch, bumped past every existing version so versions only increase."""
    return max([int(time.time())] + [v + 1 for v in existing])


def next_version(serving_dir: str) -> int:
    """The version a push to a local serving dir takes."""
    return version_after(numeric_versions(serving_dir))


def already_served(model_path: str, serving_dir: str) -> Optional[int]:
    """The latest served version when it is this very model, else None."""
    versions = complete_versions(serving_dir)
    if not versions:
        return None
    try:
        served = model_identity(os.path.join(serving_dir, str(versions[-1])))
    except FileNotFoundError:
        return None  # not a SavedModel: certainly not this one
    return versions[-1] if served == model_identity(model_path) else None


def _describe(error: BaseException) -> str:
    """The first message in the exception chain: fileio re-raises some errors without one."""
    cause: Optional[BaseException] = error
    while cause is not None and not str(cause):
        cause = cause.__cause__
    return f"{type(error).__name__}: {cause if cause is not None else 'no message'}"


def push_atomically(model_path: str, serving_dir: str) -> str:
    """Copies model_path into a hidden temp dir, then renames it to `<serving_dir>/<version>`.

    TF Serving only loads numeric dirs, so it never sees the temp dir, and the rename makes the
    complete model appear at once. Returns the version pushed.
    """
    if not fileio.exists(os.path.join(model_path, "saved_model.pb")):
        raise PushError(f"No SavedModel to push: {model_path}/saved_model.pb does not exist")
    tmp_dir = None
    try:
        fileio.makedirs(serving_dir)
        version = next_version(serving_dir)
        tmp_dir = os.path.join(serving_dir, f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
        io_utils.copy_dir(model_path, tmp_dir)
        # overwrite=False: a concurrent push that took this version fails instead of clobbering.
        fileio.rename(tmp_dir, os.path.join(serving_dir, str(version)), overwrite=False)
    except Exception as e:
        if tmp_dir is not None:
            _remove_quietly(tmp_dir)
        raise PushError(f"Cannot push {model_path} to {serving_dir}: {_describe(e)}") from e
    return str(version)


def push(model_path: str, serving_dir: str) -> object_store.Pushed:
    """Push to a local serving dir or an object store; return the version pushed and what the
    push could not clean up after it was live (left for prune)."""
    if not object_store.is_object_store(serving_dir):
        return object_store.Pushed(push_atomically(model_path, serving_dir))
    if not fileio.exists(os.path.join(model_path, "saved_model.pb")):
        raise PushError(f"No SavedModel to push: {model_path}/saved_model.pb does not exist")
    try:
        return object_store.push(model_path, serving_dir, version_after)
    except Exception as e:
        raise PushError(f"Cannot push {model_path} to {serving_dir}: {_describe(e)}") from e


def _remove_quietly(path: str) -> None:
    """Best-effort removal while handling another error, which must not be masked."""
    try:
        if fileio.exists(path):
            fileio.rmtree(path)
    except Exception as e:  # noqa: BLE001 - the original error is the one to report
        logging.warning("Could not remove %s: %s", path, _describe(e))


def prune(serving_dir: str, keep_versions: int, pushed_version: str) -> List[str]:
    """Removes numeric versions beyond the newest keep_versions and leftover temp dirs.

    Returns the removed paths. The version just pushed is never removed.
    """
    doomed = [str(v) for v in object_store.versions_beyond(
        numeric_versions(serving_dir), keep_versions, pushed_version)]
    # Temp dirs are only left behind by pushes that crashed before their cleanup ran.
    doomed += [name.rstrip("/") for name in fileio.listdir(serving_dir)
               if name.startswith(TMP_PREFIX)]
    removed = []
    for name in doomed:
        path = os.path.join(serving_dir, name)
        deleting = path
        if not name.startswith(TMP_PREFIX):
            # Hidden first, in one rename: a reader finds the whole version or none of it,
            # never one half deleted. A crash before rmtree leaves a temp dir, pruned next time.
            deleting = os.path.join(serving_dir,
                                    f"{TMP_PREFIX}pruned-{name}-{uuid.uuid4().hex[:8]}")
            fileio.rename(path, deleting)
        fileio.rmtree(deleting)
        removed.append(path)
    return removed


def write_push_record(uri: str, record: Dict[str, Any]) -> None:
    """Writes push.json into the PushedModel artifact so the decision is readable without MLMD."""
    fileio.makedirs(uri)
    with fileio.open(os.path.join(uri, PUSH_RECORD_FILE), "w") as f:
        f.write(json.dumps(record, indent=2))


class Executor(base_executor.BaseExecutor):
    """Pushes a blessed model to `<serving_dir>/<version>/` atomically and prunes old versions."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        """Pushes if every given blessing is blessed; records the decision either way."""
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL_KEY])
        serving_dir = exec_properties[SERVING_DIR_KEY]
        keep_versions = int(exec_properties[KEEP_VERSIONS_KEY])
        if keep_versions < 1:
            raise ValueError(f"{KEEP_VERSIONS_KEY} must be >= 1, got {keep_versions}")

        problems = blessing_problems(input_dict)
        if problems:
            logging.info("Model not pushed: %s", "; ".join(problems))
            self._record(pushed_model, version="", destination="", reasons=problems, pruned=[])
            return

        model = artifact_utils.get_single_instance(input_dict[MODEL_KEY])
        model_path = path_utils.serving_model_path(
            model.uri, path_utils.is_old_model_artifact(model))
        served = already_served(model_path, serving_dir)
        if served is not None:
            reason = f"already served: {serving_dir}/{served} is this model"
            logging.info("Model not pushed: %s", reason)
            self._record(pushed_model, version="", destination="", reasons=[reason], pruned=[])
            return
        version, left_behind = push(model_path, serving_dir)
        destination = os.path.join(serving_dir, version)
        logging.info("Model %s pushed to %s", model_path, destination)
        try:
            pruned = (object_store.prune if object_store.is_object_store(serving_dir)
                      else prune)(serving_dir, keep_versions, version)
        except Exception as e:  # noqa: BLE001 - the model is live; failing now would hide that
            logging.warning("Pushed to %s, but pruning %s failed: %s",
                            destination, serving_dir, _describe(e))
            pruned = []
        reasons = [f"{key}: blessed" for key in (MODEL_BLESSING_KEY, SERVED_BLESSING_KEY)
                   if input_dict.get(key)]
        self._record(pushed_model, version=version, destination=destination,
                     reasons=reasons, pruned=pruned, left_behind=list(left_behind))

    @staticmethod
    def _record(pushed_model: types.Artifact, *, version: str, destination: str,
                reasons: List[str], pruned: List[str],
                left_behind: Optional[List[str]] = None) -> None:
        """Sets the TFX Pusher custom properties and writes push.json; `left_behind`: what a
        successful push could not delete after it (a later prune does)."""
        pushed = bool(version)
        pushed_model.set_int_custom_property(PUSHED_KEY, int(pushed))
        pushed_model.set_string_custom_property(PUSHED_DESTINATION_KEY, destination)
        pushed_model.set_string_custom_property(PUSHED_VERSION_KEY, version)
        write_push_record(pushed_model.uri, {
            "pushed": pushed, "version": version, "destination": destination,
            "reasons": reasons, "pruned": pruned, "left_behind": left_behind or [],
        })
