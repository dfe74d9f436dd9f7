"""The compiled pipeline on a stand-in of open-source KFP's backend (tests/kfp_backend): every
task through the driver, launcher and cache contracts, artifacts in a real S3-compatible store
on 127.0.0.1 under a minio:// root, as a recurring run would go:

1. span 1 of the target: everything runs, the model is blessed and pushed to the store;
2. the next tick, nothing new: the probe finds the candidate served, so only the served-model
   comparison and the Pusher re-run besides the probes, and nothing is pushed;
3. span 2 arrives: the target is re-ingested and retrained, the source side and pretraining
   stay cached, and the new model is pushed.

Its own runs: every task goes through the stand-in's launcher, store and cache, not the local
runner's.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from tfx.types.artifact import CUSTOM_PROPERTIES_PREFIX

from tests.fashion_mnist import write_image_span, write_subset
from tests.kfp_backend.engine import Backend
from tests.kfp_backend.store import ACCESS_KEY, SECRET_KEY, object_store
from tests.kubeflow_helpers import EXAMPLE, parse_args

pytestmark = pytest.mark.e2e

BUCKET = "mlpipeline"
TARGET = {5: "Sandal", 6: "Shirt"}
# What re-runs on every tick by design: the probes look outside the pipeline.
ALWAYS_RUN = {"source-example-gen-probe", "target-example-gen-probe", "served-model-probe"}


def write_span(root: Path, span: int, start: int, per_class: int) -> None:
    write_image_span(root, span, TARGET, start, per_class)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The object store, the data on a path the "pods" see (not a temp dir, which the compile
    refuses as local to the compiling machine), and the backend."""
    data = Path("/var/tmp") / f"tfx-transfer-kfp-{uuid.uuid4().hex[:8]}"
    work = tmp_path_factory.mktemp("kfp-backend")
    source = write_subset(str(data / "source"), n_train=1200, n_test=300)
    write_span(data / "target", 1, start=0, per_class=150)
    try:
        with object_store((BUCKET,), str(work / "s3.log")) as store:
            backend = Backend(store, {"mlpipeline-minio-artifact": {
                "accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}}, work, _venv_bin())
            package = _compile(work / "pipeline.yaml", source, data / "target", store.endpoint)
            yield backend, store, package, data
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _venv_bin() -> str:
    import sys
    return str(Path(sys.executable).parent)


def _compile(output: Path, source: str, target: Path, endpoint: str) -> Path:
    overrides = [
        f"source.path={source}", f"target.path={target}", "target.format=image_folder",
        "target.class_names=null", "target.label_budget=null",
        "training.pretrain.epochs=2", "training.frozen.epochs=1",
        "training.fine_tune.epochs=2", "evaluation.min_accuracy=0",
        f"kubeflow.pipeline_root=minio://{BUCKET}/tfx-transfer/root",
        f"kubeflow.serving_dir=minio://{BUCKET}/tfx-transfer/serving",
        f"kubeflow.object_store.endpoint={endpoint}", "kubeflow.trainers.accelerator=null",
        "kubeflow.beam_pipeline_args=[--direct_running_mode=in_memory]",
    ]
    args = parse_args(["compile", "-c", EXAMPLE, *(a for o in overrides for a in ("--set", o)),
                       "-o", str(output)])
    assert args.handler(args) == 0
    return output


def _versions(store) -> list[str]:
    keys = store.keys(BUCKET, "tfx-transfer/serving/")
    return sorted({key.split("/")[2] for key in keys if key.endswith("/saved_model.pb")})


def _push_record(store, runs) -> dict:
    key = runs["pusher"].outputs["pushed_model"].uri.split(f"{BUCKET}/", 1)[1]
    body = store.client().get_object(Bucket=BUCKET, Key=f"{key}/push.json")["Body"]
    return json.loads(body.read())


def _span(runs) -> int:
    """The span ExampleGen recorded (TFX's driver writes it as a custom property)."""
    return runs["target-example-gen"].outputs["examples"].metadata[
        f"{CUSTOM_PROPERTIES_PREFIX}span"]


@pytest.fixture(scope="module")
def first_run(cluster):
    backend, store, package, _ = cluster
    return backend.run(package, "run-1")


def test_first_run_executes_everything_and_pushes_to_the_store(cluster, first_run):
    _, store, _, _ = cluster
    assert {run.state for run in first_run.values()} == {"COMPLETE"}
    record = _push_record(store, first_run)
    assert record["pushed"], record
    assert _versions(store) == [record["version"]]
    # The launcher uploaded the SavedModel file by file: no directory marker objects.
    assert not [key for key in store.keys(BUCKET) if key.endswith("/")]
    assert _span(first_run) == 1


def test_a_tick_without_new_data_retrains_nothing_and_pushes_nothing(cluster, first_run):
    backend, store, package, _ = cluster
    runs = backend.run(package, "run-2")
    executed = {name for name, run in runs.items() if run.state == "COMPLETE"}
    assert executed == ALWAYS_RUN | {"served-model", "served-evaluator", "pusher"}
    assert runs["transfer-trainer"].outputs == first_run["transfer-trainer"].outputs
    # The probe found the candidate itself served: not the first run's "" (nothing served),
    # so an emptied serving dir would not reuse this decision; nothing is pushed.
    assert first_run["served-model-probe"].parameters["served_baseline"] == ""
    assert runs["served-model-probe"].parameters["served_baseline"].startswith("self@")
    record = _push_record(store, runs)
    assert not record["pushed"] and record["reasons"][0].startswith("already served"), record
    assert len(_versions(store)) == 1


def test_a_new_span_retrains_the_target_and_reuses_pretraining(cluster, first_run):
    backend, store, package, data = cluster
    write_span(data / "target", 2, start=150, per_class=200)
    runs = backend.run(package, "run-3")
    executed = {name for name, run in runs.items() if run.state == "COMPLETE"}
    source_side = {name for name in runs if name.startswith("source-")} - ALWAYS_RUN
    assert not executed & (source_side | {"pretrain-trainer"})
    assert {"target-example-gen", "target-transform", "transfer-trainer", "scratch-trainer",
            "evaluator", "served-model", "served-evaluator"} <= executed
    assert _span(runs) == 2
    # The candidate is compared with the version pushed by the first run, and pushed.
    served = runs["served-model"].outputs["model"].metadata["served_version"]
    assert served == _push_record(store, first_run)["version"]
    record = _push_record(store, runs)
    assert record["pushed"], record
    assert _versions(store) == sorted([served, record["version"]])
