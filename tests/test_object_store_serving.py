"""Serving dirs in an object store (a real S3-compatible server on 127.0.0.1): a reader never
sees a half-copied version, racing pushers never prune each other to nothing, and the
served-model baseline reads what is really there."""

from __future__ import annotations

import threading
import time

import pytest
import tensorflow as tf

from components.versioned_pusher import executor as ex
from components.versioned_pusher import object_store
from components.versioned_pusher.serving_dir import (complete_versions, copy_version,
                                                     model_identity, served_baseline)
from tests.kfp_backend.store import object_store as s3_server
from tests.test_versioned_pusher import make_model

BUCKET = "models"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    log = tmp_path_factory.mktemp("s3") / "server.log"
    with s3_server((BUCKET,), str(log)) as server:
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
    version = ex.push(models[0], serving)
    assert complete_versions(serving) == [int(version)]
    keys = s3_env.keys(BUCKET, request.node.name + "/")
    # Only the version: no staging copy, no claim marker, no directory marker objects.
    assert all(key.split("/")[1] == version and not key.endswith("/") for key in keys)
    assert not any("/.push-" in key for key in keys)
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
                present = {path[len(prefix):]: fs.size(path) for path in fs.find(prefix)
                           if "/.push-" not in path}
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
                version = ex.push(model, serving)
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
    versions = [ex.push(model, serving) for model in models]
    # Another pusher's version in progress (claimed, files coming) and one that died long ago.
    fs.pipe(f"{root}/99999999990/.push-live", str(time.time()).encode())
    fs.pipe(f"{root}/99999999991/.push-dead", str(time.time() - 7200).encode())
    fs.pipe(f"{root}/99999999991/variables/variables.index", b"half")
    removed = object_store.prune(serving, 2, versions[-1])
    assert complete_versions(serving) == [int(v) for v in versions[-2:]]
    assert removed == [f"{serving}/{versions[0]}", f"{serving}/99999999991"]
    assert fs.exists(f"{root}/99999999990/.push-live")


def test_the_served_baseline_is_what_is_served(s3_env, models, request, tmp_path):
    serving = _serving(request)
    assert served_baseline(serving, models[0]) == ""  # nothing served
    version = ex.push(models[0], serving)
    itself = served_baseline(serving, models[0])  # the candidate itself is served
    assert itself == f"self@{model_identity(models[0])}"
    assert served_baseline(serving, models[1]) == f"{version}@{model_identity(models[0])}"
    # Emptied by hand: nothing served, a value (so a cache key) apart from the candidate's.
    fs, root = object_store.filesystem(serving)
    fs.rm(f"{root}/{version}", recursive=True)
    assert served_baseline(serving, models[0]) == ""
    assert served_baseline(serving, models[1]) == ""
