"""Serving dirs in object stores (gs://, s3://, minio://), where there is no directory rename.

A push holds a lease, `<serving_dir>/.push-lease-<token>`, which holds the time and is renewed
every RENEW_SECONDS for as long as the push runs. It uploads the model to a staging prefix,
`.push-staging-<token>/`, claims a version number with an empty marker beside the versions,
`.push-claim-<version>-<token>`, then copies the files into `<serving_dir>/<version>/` inside
the store with `saved_model.pb` last, and deletes the claim, the staging copy and the lease.
Every hidden name starts with `.push-`, never a number, so TF Serving ignores it.

What a reader polling `<serving_dir>` can see of a push: nothing numeric until the copy-in's
first file lands, then `<version>/` with a growing subset of the model's files and no
`saved_model.pb`, then, once `saved_model.pb` is there, every file. A version counts as
complete once its `saved_model.pb` exists. (TF Serving lists numeric dirs: it may try a version
before its `saved_model.pb`, fail, keep serving the old one and retry; it never loads half a
model.) Pruning deletes `saved_model.pb` first, so a version leaves as it came, and removes what
a push whose lease went ABANDONED_AFTER_SECONDS without renewal left. Once `saved_model.pb` is
in place a push has succeeded: what it fails to delete after that stays, lease included, for
prune.

s3:// and minio:// take their endpoint from `AWS_ENDPOINT_URL` (needed for minio://; for
s3:// unset means AWS) and their credentials from the standard AWS variables.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import random
import threading
import time
import uuid
from typing import Callable, Iterator, NamedTuple

import fsspec
from absl import logging

SCHEMES = ("gs://", "s3://", "minio://")
SAVED_MODEL = "saved_model.pb"
# Every name a push adds beside the versions starts with this, which is never a number.
HIDDEN_PREFIX = ".push-"
LEASE_PREFIX = HIDDEN_PREFIX + "lease-"
STAGING_PREFIX = HIDDEN_PREFIX + "staging-"
CLAIM_PREFIX = HIDDEN_PREFIX + "claim-"
# A live push renews its lease this often, so it never looks abandoned, however long it copies.
RENEW_SECONDS = 60
# A push whose lease is this old died: prune removes what it left.
ABANDONED_AFTER_SECONDS = 3600


class VersionTaken(RuntimeError):
    """Another pusher claimed the same version number first."""


class Pushed(NamedTuple):
    """The version a push made live, and the URIs of what it could not clean up after (left to
    prune once its lease is ABANDONED_AFTER_SECONDS old)."""

    version: str
    left_behind: tuple[str, ...] = ()


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


def _claimed_version(name: str) -> int | None:
    """The version a `.push-claim-<version>-<token>` marker claims; None for other names."""
    version = name[len(CLAIM_PREFIX):].split("-", 1)[0]
    return int(version) if name.startswith(CLAIM_PREFIX) and version.isdigit() else None


def _taken(names: list[str]) -> list[int]:
    """The version numbers in use, oldest first: version dirs and claims."""
    claimed = (_claimed_version(name) for name in names)
    return sorted({int(name) for name in names if name.isdigit()} |
                  {version for version in claimed if version is not None})


def _claim(fs: fsspec.AbstractFileSystem, root: str, version: int, token: str) -> str:
    """Write our claim marker beside the versions, then make sure nobody else claimed the
    version or made its dir, and that no higher version appeared meanwhile (versions only
    increase); return the claim's path."""
    name = f"{CLAIM_PREFIX}{version}-{token}"
    fs.pipe(posixpath.join(root, name), b"")
    names = _names(fs, root)
    rivals = [other for other in names
              if other != name and _claimed_version(other) == version]
    if rivals or str(version) in names or _taken(names)[-1] != version:
        fs.rm(posixpath.join(root, name))
        raise VersionTaken(posixpath.join(root, str(version)))
    return posixpath.join(root, name)


def _copy_in(fs: fsspec.AbstractFileSystem, staging: str, version_path: str) -> None:
    """Copy the staged files into the version inside the store, saved_model.pb last."""
    files = sorted(fs.find(staging), key=lambda path: path.endswith("/" + SAVED_MODEL))
    for source in files:
        fs.copy(source, posixpath.join(version_path, posixpath.relpath(source, staging)))


@contextlib.contextmanager
def _lease(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[None]:
    """Hold the lease at path for the block: the time in it, renewed every RENEW_SECONDS,
    tells prune the push is alive. It stays when the block ends; the caller deletes it."""
    stop = threading.Event()
    fs.pipe(path, str(time.time()).encode())
    renewer = threading.Thread(target=_renew, args=(fs, path, stop), daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


def _renew(fs: fsspec.AbstractFileSystem, path: str, stop: threading.Event) -> None:
    while not stop.wait(RENEW_SECONDS):
        try:
            fs.pipe(path, str(time.time()).encode())
        except Exception as error:  # noqa: BLE001 - the next renewal may get through
            logging.warning("Could not renew the push lease %s: %s", path, error)


def _claim_and_copy_in(fs: fsspec.AbstractFileSystem, root: str, staging: str, token: str,
                       next_version: Callable[[list[int]], int], attempts: int) -> tuple[int, str]:
    """Claim the next free version and copy the staged model into it; return it and the
    claim's path."""
    for _ in range(attempts):
        version = next_version(_taken(_names(fs, root)))
        try:
            claim = _claim(fs, root, version, token)
        except VersionTaken:
            # Two pushers that saw each other's claims both back off: at random, so one of
            # them goes first next time.
            time.sleep(random.uniform(0.05, 0.5))
            continue
        _copy_in(fs, staging, posixpath.join(root, str(version)))
        return version, claim
    raise VersionTaken(f"{attempts} version numbers in a row were taken")


def push(model_path: str, serving_dir: str, next_version: Callable[[list[int]], int],
         attempts: int = 10) -> Pushed:
    """Push the local SavedModel dir model_path to `<serving_dir>/<version>`. Once the version
    is live the push has succeeded: what it then fails to delete is left to prune and named in
    the result. A failure before that raises, and leaves a claimed version to prune."""
    fs, root = filesystem(serving_dir)
    token = uuid.uuid4().hex[:12]
    lease = posixpath.join(root, f"{LEASE_PREFIX}{token}")
    staging = posixpath.join(root, f"{STAGING_PREFIX}{token}")
    with _lease(fs, lease):
        try:
            fs.put(model_path.rstrip("/") + "/", staging + "/", recursive=True)
            version, claim = _claim_and_copy_in(fs, root, staging, token, next_version,
                                                attempts)
        except Exception:
            _removed(fs, staging, recursive=True)
            raise
        left = [path for path, recursive in ((claim, False), (staging, True))
                if not _removed(fs, path, recursive)]
    if not left and not _removed(fs, lease):
        left.append(lease)
    scheme = serving_dir.split("://", 1)[0]
    return Pushed(str(version), tuple(f"{scheme}://{path}" for path in left))


def _removed(fs: fsspec.AbstractFileSystem, path: str, recursive: bool = False) -> bool:
    """Delete what a push made beside the versions; on failure log it and say so (prune
    removes it once the push's lease is stale)."""
    try:
        _remove(fs, path, recursive)
    except Exception as error:  # noqa: BLE001 - the push's outcome stands; prune clears up
        logging.warning("Could not remove %s, left for a later prune: %s", path, error)
        return False
    return True


def prune(serving_dir: str, keep_versions: int, pushed_version: str) -> list[str]:
    """Delete complete versions beyond the newest keep_versions (never pushed_version) and what
    abandoned pushes left; return the URIs removed. Versions without saved_model.pb of a live
    push, or claimed by none (made by hand), are left alone."""
    fs, root = filesystem(serving_dir)
    scheme = serving_dir.split("://", 1)[0]
    complete = complete_versions(serving_dir)
    removed = []
    for version in versions_beyond(complete, keep_versions, pushed_version):
        path = posixpath.join(root, str(version))
        _remove(fs, posixpath.join(path, SAVED_MODEL))  # incomplete, so unread, from now on
        _remove(fs, path, recursive=True)
        removed.append(path)
    names = _names(fs, root)
    for token in _abandoned(fs, root, names):
        removed += _remove_push(fs, root, names, token, set(complete))
    return [f"{scheme}://{path}" for path in removed]


def _remove(fs: fsspec.AbstractFileSystem, path: str, recursive: bool = False) -> None:
    """Delete path; one a racing pusher deleted first is gone all the same. A tree goes with
    its folder entries, deepest first: a store with real folders (SeaweedFS, KFP 2.16+'s)
    keeps them once their objects are gone, and a poller would list an empty version."""
    folders = _folders(fs, path) if recursive else []
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=recursive)
    for folder in folders:
        with contextlib.suppress(FileNotFoundError):
            fs.rm_file(folder + "/")


def _folders(fs: fsspec.AbstractFileSystem, path: str) -> list[str]:
    """The folders of the tree at path (itself included), deepest first."""
    found = fs.find(path, withdirs=True, detail=True)
    folders = [name for name, info in found.items() if info["type"] == "directory"]
    return sorted(set(folders) | {path}, key=len, reverse=True)


def versions_beyond(versions: list[int], keep_versions: int, pushed_version: str) -> list[int]:
    """Versions older than the newest keep_versions, never pushed_version: a racing pusher's
    newer version is among the newest, so two pushers can't prune each other to nothing."""
    kept = set(versions[-keep_versions:]) | {int(pushed_version)}
    return [version for version in versions if version not in kept]


def _abandoned(fs: fsspec.AbstractFileSystem, root: str, names: list[str]) -> list[str]:
    """The tokens of pushes whose lease was last renewed over ABANDONED_AFTER_SECONDS ago."""
    tokens = []
    for name in names:
        if not name.startswith(LEASE_PREFIX):
            continue
        path = posixpath.join(root, name)
        try:
            renewed = fs.cat(path).decode()
        except FileNotFoundError:
            continue  # its push just finished
        try:
            age = time.time() - float(renewed)
        except ValueError:
            raise ValueError(f"{path}: not a push lease, which holds the time it was last "
                             f"renewed; found {renewed[:40]!r}") from None
        if age > ABANDONED_AFTER_SECONDS:
            tokens.append(name[len(LEASE_PREFIX):])
    return tokens


def _remove_push(fs: fsspec.AbstractFileSystem, root: str, names: list[str], token: str,
                 complete: set[int]) -> list[str]:
    """Remove what the abandoned push `token` left: the versions it claimed and never
    completed, its claims, its staging copy, and its lease last, so that a prune that dies
    midway is done again by the next. Return the paths removed."""
    claims = [name for name in names if name.startswith(CLAIM_PREFIX)
              and name.endswith(f"-{token}") and _claimed_version(name) is not None]
    partial = [str(_claimed_version(name)) for name in claims
               if _claimed_version(name) not in complete]
    doomed = [name for name in (*partial, *claims, f"{STAGING_PREFIX}{token}",
                                f"{LEASE_PREFIX}{token}") if name in names]
    for name in doomed:
        _remove(fs, posixpath.join(root, name), recursive=True)
    return [posixpath.join(root, name) for name in doomed]


def download(version_uri: str, destination: str) -> None:
    """Copy a pushed version into the local dir destination."""
    fs, path = filesystem(version_uri)
    for source in fs.find(path):
        relative = posixpath.relpath(source, path)
        target = os.path.join(destination, *relative.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fs.get(source, target)
