"""Serving dirs in an object store (SeaweedFS, KFP 2.16+'s store, on 127.0.0.1): a reader never
sees a half-copied version, nor a version dir before its copy begins, racing pushers never
prune each other (or a live push) to nothing, a live version is a successful push whatever its
clean-up does, and the served-model baseline reads what is really there."""

from __future__ import annotations

import re
import threading
import time

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components.versioned_pusher import executor as ex
from components.versioned_pusher import object_store
from components.versioned_pusher.serving_dir import (complete_versions, copy_version,
                                                     model_identity, served_baseline)
from tests.kfp_backend.store import seaweedfs
from tests.test_versioned_pusher import _push, _record, make_model

BUCKET = "models"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with seaweedfs((BUCKET,), tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_env(store, monkeypatch):
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    return store


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three different real SavedModels, as their Format-Serving dirs."""
    return [make_model(tmp_path_factory.mktemp(f"m{seed}"), seed).uri + "/Format-Serving"
            for seed in range(3)]


def _serving(request) -> str:
    return f"s3://{BUCKET}/{request.node.name}"


def _files(model_dir: str) -> dict[str, int]:
    return {path[len(model_dir) + 1:]: tf.io.gfile.stat(path).length
            for path in _walk(model_dir)}


def _walk(root: str) -> list[str]:
    return [f"{d}/{name}" for d, _, names in tf.io.gfile.walk(root) for name in names]


def test_a_push_lands_whole_and_loads_back(s3_env, models, request, tmp_path):
    serving = _serving(request)
    version, left_behind = ex.push(models[0], serving)
    assert complete_versions(serving) == [int(version)] and not left_behind
    keys = s3_env.keys(BUCKET, request.node.name + "/")
    # Only the version: no staging copy, claim, lease or directory marker objects.
    assert all(key.split("/")[1] == version and not key.endswith("/") for key in keys)
    fs, root = object_store.filesystem(serving)
    assert _names(fs, root) == [version]  # nor an empty staging folder
    copy_version(serving, served_baseline(serving, models[1]), str(tmp_path / "copy"))
    assert _files(str(tmp_path / "copy")) == _files(models[0])
    assert tf.saved_model.load(str(tmp_path / "copy")) is not None


def test_minio_uris_need_the_endpoint(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL"):
        object_store.filesystem("minio://mlpipeline/serving")


def test_a_reader_never_sees_a_half_copied_version(s3_env, models, request):
    """A reader polling as TF Serving's poller does sees each version either not at all or
    with every file of its model, while pushes go on."""
    serving = _serving(request)
    expected = [_files(model) for model in models]
    seen, problems, stop = set(), [], threading.Event()

    def read() -> None:
        fs, root = object_store.filesystem(serving)
        while not stop.is_set():
            for version in complete_versions(serving):
                prefix = f"{root}/{version}/"
                present = {path[len(prefix):]: fs.size(path) for path in fs.find(prefix)}
                if present not in expected:
                    problems.append((version, sorted(present)))
                seen.add(version)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for model in (*models, *models):
            ex.push(model, serving)
    finally:
        stop.set()
        reader.join(timeout=60)
    assert not problems
    assert len(seen) >= 3  # it really read versions while they came


def test_racing_pushers_never_prune_each_other_to_nothing(s3_env, models, request):
    serving = _serving(request)
    errors, pushed = [], []

    def pusher(model: str) -> None:
        try:
            for _ in range(3):
                version = ex.push(model, serving).version
                pushed.append(version)
                object_store.prune(serving, 1, version)
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=pusher, args=(model,)) for model in models[:2]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors
    assert len(set(pushed)) == 6  # no two pushes took the same version
    remaining = complete_versions(serving)
    assert remaining and max(int(v) for v in pushed) in remaining


def test_prune_keeps_the_newest_and_pushes_in_progress(s3_env, models, request):
    serving = _serving(request)
    fs, root = object_store.filesystem(serving)
    versions = [ex.push(model, serving).version for model in models]
    # Another pusher's push in progress (lease renewed now, version claimed, files coming),
    # one that died long ago mid-copy, and a dir made by hand.
    _fake_push(fs, root, "live", 99999999990, renewed=time.time())
    dead = _fake_push(fs, root, "dead", 99999999991, renewed=time.time() - 7200)
    fs.pipe(f"{root}/99999999992/notes.txt", b"no claim: not a push's")
    # And one that died after its version was complete, before it deleted its claim.
    late = [f"{root}/.push-claim-{versions[-1]}-late", f"{root}/.push-lease-late"]
    fs.pipe(late[0], b"")
    fs.pipe(late[1], str(time.time() - 7200).encode())
    removed = object_store.prune(serving, 2, versions[-1])
    assert complete_versions(serving) == [int(v) for v in versions[-2:]]
    assert removed == [f"{serving}/{versions[0]}"] + [f"s3://{path}" for path in dead + late]
    assert not any(fs.exists(path) for path in dead)
    assert _names(fs, root) == sorted([*versions[-2:], "99999999990", "99999999992",
                                      ".push-claim-99999999990-live", ".push-lease-live",
                                      ".push-staging-live"])


def _fake_push(fs, root: str, token: str, version: int, renewed: float) -> list[str]:
    """What a push caught mid-copy has in the store: the paths prune removes once it is
    abandoned, in its order (version, claim, staging, lease)."""
    paths = [f"{root}/{version}", f"{root}/.push-claim-{version}-{token}",
             f"{root}/.push-staging-{token}", f"{root}/.push-lease-{token}"]
    fs.pipe(f"{paths[0]}/variables/variables.index", b"half")
    fs.pipe(paths[1], b"")
    fs.pipe(f"{paths[2]}/saved_model.pb", b"staged")
    fs.pipe(paths[3], str(renewed).encode())
    return paths


def _artifact(model_dir: str) -> standard_artifacts.Model:
    """The Model artifact whose Format-Serving dir model_dir is."""
    model = standard_artifacts.Model()
    model.uri = model_dir.rsplit("/Format-Serving", 1)[0]
    return model


def _names(fs, root: str) -> list[str]:
    return sorted(path.rstrip("/").rsplit("/", 1)[1] for path in fs.ls(root, detail=False))


def test_the_served_baseline_is_what_is_served(s3_env, models, request, tmp_path):
    serving = _serving(request)
    assert served_baseline(serving, models[0]) == ""  # nothing served
    version = ex.push(models[0], serving).version
    itself = served_baseline(serving, models[0])  # the candidate itself is served
    assert itself == f"self@{model_identity(models[0])}"
    assert served_baseline(serving, models[1]) == f"{version}@{model_identity(models[0])}"
    # Emptied by hand: nothing served, a value (so a cache key) apart from the candidate's.
    fs, root = object_store.filesystem(serving)
    fs.rm(f"{root}/{version}", recursive=True)
    assert served_baseline(serving, models[0]) == ""
    assert served_baseline(serving, models[1]) == ""


def test_a_version_dir_appears_only_with_its_first_copied_file(s3_env, models, request,
                                                              monkeypatch):
    """The claim is a hidden sibling of the versions: a poller sees nothing numeric of a push
    before its copy-in starts."""
    serving = _serving(request)
    before_copy_in = []
    copy_in = object_store._copy_in

    def watched(fs, staging, version_path):
        before_copy_in.append(_names(fs, version_path.rsplit("/", 1)[0]))
        copy_in(fs, staging, version_path)

    monkeypatch.setattr(object_store, "_copy_in", watched)
    version = ex.push(models[0], serving).version
    (names,) = before_copy_in
    token = names[0].rsplit("-", 1)[1]
    assert names == [f".push-claim-{version}-{token}", f".push-lease-{token}",
                     f".push-staging-{token}"]


def test_a_push_that_copies_for_long_never_looks_abandoned(s3_env, models, request,
                                                          monkeypatch):
    """Another pusher's prune in the middle of a copy-in longer than the abandonment age
    leaves it alone: the push renews its lease."""
    serving = _serving(request)
    first = ex.push(models[0], serving).version
    monkeypatch.setattr(object_store, "ABANDONED_AFTER_SECONDS", 1)
    monkeypatch.setattr(object_store, "RENEW_SECONDS", 0.1)
    pruned = []
    copy_in = object_store._copy_in

    def slow(fs, staging, version_path):
        fs.copy(f"{staging}/fingerprint.pb", f"{version_path}/fingerprint.pb")
        time.sleep(2)
        pruned.extend(object_store.prune(serving, 1, first))
        copy_in(fs, staging, version_path)

    monkeypatch.setattr(object_store, "_copy_in", slow)
    second, left_behind = ex.push(models[1], serving)
    assert pruned == [] and left_behind == ()
    assert complete_versions(serving) == [int(first), int(second)]


def _failing_rm(monkeypatch, hidden_prefix: str) -> None:
    """Make every filesystem the pusher opens fail to delete names with hidden_prefix."""
    filesystem = object_store.filesystem

    def opened(uri):
        fs, root = filesystem(uri)
        rm = fs.rm

        def rm_unless_hidden(path, recursive=False, **kwargs):
            if f"/{hidden_prefix}" in path:
                raise PermissionError(f"{path}: access denied")
            return rm(path, recursive=recursive, **kwargs)

        fs.rm = rm_unless_hidden
        return fs, root

    monkeypatch.setattr(object_store, "filesystem", opened)


def test_a_live_version_is_pushed_even_if_its_staging_copy_cannot_be_deleted(
        s3_env, models, request, monkeypatch, tmp_path):
    serving = _serving(request)
    filesystem = object_store.filesystem
    _failing_rm(monkeypatch, object_store.STAGING_PREFIX)
    record = _record(_push(_artifact(models[0]), tmp_path, serving))
    monkeypatch.setattr(object_store, "filesystem", filesystem)
    assert record["pushed"] and complete_versions(serving) == [int(record["version"])]
    (staging,) = record["left_behind"]
    token = staging.rsplit("-", 1)[1]
    assert staging == f"{serving}/.push-staging-{token}"
    fs, root = object_store.filesystem(serving)
    assert fs.exists(f"{staging}/saved_model.pb")
    # Its lease stays too, so prune removes both once the lease is stale.
    assert object_store.prune(serving, 5, record["version"]) == []
    monkeypatch.setattr(object_store, "ABANDONED_AFTER_SECONDS", 0)
    assert object_store.prune(serving, 5, record["version"]) == [
        staging, f"{serving}/.push-lease-{token}"]
    assert _names(fs, root) == [record["version"]]


def test_a_push_that_fails_before_it_is_live_raises_and_prune_clears_it_up(
        s3_env, models, request, monkeypatch):
    serving = _serving(request)
    copy_in = object_store._copy_in

    def broken(fs, staging, version_path):
        fs.pipe(f"{version_path}/variables/variables.index", b"half")
        raise OSError("connection reset")

    monkeypatch.setattr(object_store, "_copy_in", broken)
    with pytest.raises(ex.PushError, match=re.escape(f"{serving}: OSError: connection reset")):
        ex.push(models[0], serving)
    monkeypatch.setattr(object_store, "_copy_in", copy_in)
    fs, root = object_store.filesystem(serving)
    names = _names(fs, root)  # the staging copy is gone, the rest waits for prune
    (claimed,) = [name for name in names if name.isdigit()]
    token = names[0].rsplit("-", 1)[1]
    assert complete_versions(serving) == []
    assert names == [f".push-claim-{claimed}-{token}", f".push-lease-{token}", claimed]
    monkeypatch.setattr(object_store, "ABANDONED_AFTER_SECONDS", 0)
    version = ex.push(models[1], serving).version
    assert int(version) > int(claimed)
    assert object_store.prune(serving, 5, version) == [
        f"{serving}/{claimed}", f"{serving}/.push-claim-{claimed}-{token}",
        f"{serving}/.push-lease-{token}"]
    assert _names(fs, root) == [version]
