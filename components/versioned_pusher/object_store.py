"""Serving dirs in object stores (gs://, s3://, minio://), where there is no directory rename.

A push uploads the model under a hidden staging prefix (TF Serving only looks at numeric
version dirs), claims a version number with a marker object, then copies the files into
`<serving_dir>/<version>/` inside the store with `saved_model.pb` last and deletes the staging
copy. A version counts as complete once its `saved_model.pb` exists: every other file of it is
there by then. Pruning deletes `saved_model.pb` first, so a version leaves as it came.

s3:// and minio:// take their endpoint from `AWS_ENDPOINT_URL` (needed for minio://; for
s3:// unset means AWS) and their credentials from the standard AWS variables.
"""

from __future__ import annotations

import os
import posixpath
import random
import time
import uuid
from typing import Callable

import fsspec

SCHEMES = ("gs://", "s3://", "minio://")
SAVED_MODEL = "saved_model.pb"
# Claims and staging copies share this prefix, which is never a number.
HIDDEN_PREFIX = ".push-"
# A staging copy or claim this old belongs to a push that died; a live push takes seconds.
ABANDONED_AFTER_SECONDS = 3600


class VersionTaken(RuntimeError):
    """Another pusher claimed the same version number first."""


def is_object_store(uri: str) -> bool:
    return uri.startswith(SCHEMES)


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem of an object-store URI and the path inside it (`bucket/key`)."""
    scheme, path = uri.split("://", 1)
    # No listing cache: other pushers and operators change the serving dir under us.
    options = {"skip_instance_cache": True, "use_listings_cache": False}
    if scheme == "gs":
        return fsspec.filesystem("gcs", **options), path.rstrip("/")
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if scheme == "minio" and not endpoint:
        raise ValueError(f"{uri}: minio:// needs the store's endpoint in $AWS_ENDPOINT_URL "
                         "(kubeflow.object_store.endpoint sets it in the pods)")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    client = {"region_name": region} if region else {}
    return fsspec.filesystem("s3", endpoint_url=endpoint, client_kwargs=client,
                             **options), path.rstrip("/")


def _names(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    try:
        return [posixpath.basename(entry.rstrip("/")) for entry in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return []


def complete_versions(serving_dir: str) -> list[int]:
    """Versions whose saved_model.pb exists, oldest first."""
    fs, root = filesystem(serving_dir)
    return [number for number in _numbers(fs, root)
            if fs.exists(posixpath.join(root, str(number), SAVED_MODEL))]


def _numbers(fs: fsspec.AbstractFileSystem, root: str) -> list[int]:
    return sorted(int(name) for name in _names(fs, root) if name.isdigit())


def _claim(fs: fsspec.AbstractFileSystem, root: str, version: int, token: str) -> str:
    """Write our claim marker into the version, then make sure nobody else claimed or
    completed it, and that no higher version appeared meanwhile (versions only increase)."""
    version_path = posixpath.join(root, str(version))
    fs.pipe(posixpath.join(version_path, f"{HIDDEN_PREFIX}{token}"), str(time.time()).encode())
    others = [name for name in _names(fs, version_path)
              if name == SAVED_MODEL or (name.startswith(HIDDEN_PREFIX)
                                         and name != f"{HIDDEN_PREFIX}{token}")]
    if others or _numbers(fs, root)[-1] != version:
        fs.rm(posixpath.join(version_path, f"{HIDDEN_PREFIX}{token}"))
        raise VersionTaken(version_path)
    return version_path


def _copy_in(fs: fsspec.AbstractFileSystem, staging: str, version_path: str) -> None:
    """Copy the staged files into the version inside the store, saved_model.pb last."""
    files = sorted(fs.find(staging), key=lambda path: path.endswith("/" + SAVED_MODEL))
    for source in files:
        fs.copy(source, posixpath.join(version_path, posixpath.relpath(source, staging)))


def push(model_path: str, serving_dir: str, next_version: Callable[[list[int]], int],
         attempts: int = 10) -> str:
    """Push the local SavedModel dir model_path to `<serving_dir>/<version>`; return version."""
    fs, root = filesystem(serving_dir)
    token = uuid.uuid4().hex[:12]
    staging = posixpath.join(root, f"{HIDDEN_PREFIX}{int(time.time())}-{token}")
    fs.put(model_path.rstrip("/") + "/", staging + "/", recursive=True)
    try:
        for _ in range(attempts):
            version = next_version(_numbers(fs, root))
            try:
                version_path = _claim(fs, root, version, token)
            except VersionTaken:
                # Two pushers that saw each other's claims both back off: at random, so
                # one of them goes first next time.
                time.sleep(random.uniform(0.05, 0.5))
                continue
            _copy_in(fs, staging, version_path)
            fs.rm(posixpath.join(version_path, f"{HIDDEN_PREFIX}{token}"))
            return str(version)
        raise VersionTaken(f"{serving_dir}: {attempts} version numbers in a row were taken")
    finally:
        fs.rm(staging, recursive=True)


def _age(name: str) -> float:
    stamp = name[len(HIDDEN_PREFIX):].split("-", 1)[0]
    return time.time() - int(stamp) if stamp.isdigit() else 0.0


def prune(serving_dir: str, keep_versions: int, pushed_version: str) -> list[str]:
    """Delete complete versions beyond the newest keep_versions (never pushed_version) and
    staging copies of pushes that died; return the URIs removed. Versions without
    saved_model.pb may be another push in progress and are left alone."""
    fs, root = filesystem(serving_dir)
    scheme = serving_dir.split("://", 1)[0]
    complete = complete_versions(serving_dir)
    doomed = [str(v) for v in versions_beyond(complete, keep_versions, pushed_version)]
    removed = []
    for name in doomed:
        path = posixpath.join(root, name)
        _remove(fs, posixpath.join(path, SAVED_MODEL))  # incomplete, so unread, from now on
        _remove(fs, path, recursive=True)
        removed.append(f"{scheme}://{path}")
    kept = {str(v) for v in complete} | {pushed_version}
    for name in _names(fs, root):
        if _abandoned(fs, root, name, kept):
            _remove(fs, posixpath.join(root, name), recursive=True)
            removed.append(f"{scheme}://{root}/{name}")
    return removed


def _remove(fs: fsspec.AbstractFileSystem, path: str, recursive: bool = False) -> None:
    """Delete path; one a racing pusher deleted first is gone all the same."""
    try:
        fs.rm(path, recursive=recursive)
    except FileNotFoundError:
        pass


def versions_beyond(versions: list[int], keep_versions: int, pushed_version: str) -> list[int]:
    """Versions older than the newest keep_versions, never pushed_version: a racing pusher's
    newer version is among the newest, so two pushers can't prune each other to nothing."""
    kept = set(versions[-keep_versions:]) | {int(pushed_version)}
    return [version for version in versions if version not in kept]


def _abandoned(fs: fsspec.AbstractFileSystem, root: str, name: str, complete: set[str]) -> bool:
    """A staging copy, or a version left incomplete, of a push that died long ago."""
    if name.startswith(HIDDEN_PREFIX):
        return _age(name) > ABANDONED_AFTER_SECONDS
    if not name.isdigit() or name in complete:
        return False
    claims = [posixpath.join(root, name, entry) for entry in _names(fs, posixpath.join(root, name))
              if entry.startswith(HIDDEN_PREFIX)]
    # Claims hold the time they were written; a version with none is someone else's business.
    try:
        return bool(claims) and all(
            time.time() - float(fs.cat(claim)) > ABANDONED_AFTER_SECONDS for claim in claims)
    except FileNotFoundError:
        return False  # its push just finished


def download(version_uri: str, destination: str) -> None:
    """Copy a pushed version (without push markers) into the local dir destination."""
    fs, path = filesystem(version_uri)
    for source in fs.find(path):
        relative = posixpath.relpath(source, path)
        if posixpath.basename(relative).startswith(HIDDEN_PREFIX):
            continue
        target = os.path.join(destination, *relative.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fs.get(source, target)
