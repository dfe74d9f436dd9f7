"""The compiled pipeline on a stand-in of open-source KFP's backend (tests/kfp_backend): every
task in the project's image (built here with podman, run with the backend's security context),
through the driver, launcher and cache contracts, artifacts in SeaweedFS (KFP 2.16+'s store)
under a minio:// root, each output recorded in ML Metadata on MariaDB, with the driver's
`executor-logs` output on every task, as a recurring run would go:

1. span 1 of the target: everything runs, the model is blessed and pushed to the store;
2. the next tick, nothing new: the probe finds the candidate served, so only the served-model
   comparison and the Pusher re-run besides the probes, and nothing is pushed;
3. the tick after: every task but the probes is a cache hit;
4. someone empties the serving dir: the next tick pushes the model again;
5. span 2 arrives: the target is re-ingested and retrained, the source side and pretraining
   stay cached, and the new model is pushed.

Its own runs: every task goes through the stand-in's pods, launcher, store and cache, not the
local runner's. The datasets are a PVC ("datasets"), mounted in every pod at the path they
have here: compiling reads their class names.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from tfx.types.artifact import CUSTOM_PROPERTIES_PREFIX

from tests.fashion_mnist import write_image_span, write_subset
from tests.kfp_backend import pods
from tests.kfp_backend.engine import EXECUTOR_LOGS, Backend
from tests.kfp_backend.metadata import mariadb
from tests.kfp_backend.store import ACCESS_KEY, SECRET_KEY, seaweedfs
from tests.kubeflow_helpers import EXAMPLE, parse_args

pytestmark = pytest.mark.e2e

BUCKET = "mlpipeline"
ROOT = f"minio://{BUCKET}/tfx-transfer/root"
SERVING = f"minio://{BUCKET}/tfx-transfer/serving"
STORE_SERVICE = "seaweedfs.kubeflow"  # KFP 2.16+'s store, as the pods address it
TARGET = {5: "Sandal", 6: "Shirt"}
# What re-runs on every tick by design: the probes look outside the pipeline.
ALWAYS_RUN = {"source-example-gen-probe", "target-example-gen-probe", "served-model-probe"}


def write_span(root: Path, span: int, start: int, per_class: int) -> None:
    write_image_span(root, span, TARGET, start, per_class)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The image, the object store, ML Metadata, the datasets PVC and the backend."""
    work = tmp_path_factory.mktemp("kfp-backend")
    # Not a temp dir, which the compile refuses as local to the compiling machine.
    datasets = Path("/var/tmp") / f"tfx-transfer-kfp-{uuid.uuid4().hex[:8]}"
    write_subset(str(datasets / "source"), n_train=1200, n_test=300)
    write_span(datasets / "target", 1, start=0, per_class=150)
    image = pods.image()
    try:
        with seaweedfs((BUCKET,), work) as store, mariadb(work) as metadata:
            backend = Backend(store, metadata, {"mlpipeline-minio-artifact": {
                "accesskey": ACCESS_KEY, "secretkey": SECRET_KEY}}, work,
                volumes={"datasets": datasets}, hosts={STORE_SERVICE: "127.0.0.1"})
            endpoint = f"http://{STORE_SERVICE}:{store.endpoint.rsplit(':', 1)[1]}"
            package = compile_example(work / "pipeline.yaml", image, endpoint, datasets)
            yield backend, store, package, datasets
    finally:
        shutil.rmtree(datasets, ignore_errors=True)


def compile_example(output: Path, image: str, endpoint: str, datasets: Path) -> Path:
    """The example config, small, with the datasets on the PVC and the store at endpoint."""
    overrides = [
        f"source.path={datasets}/source", f"target.path={datasets}/target",
        "target.format=image_folder",
        "target.class_names=null", "target.label_budget=null",
        "training.pretrain.epochs=2", "training.frozen.epochs=1",
        "training.fine_tune.epochs=2", "evaluation.min_accuracy=0",
        f"kubeflow.image={image}", f"kubeflow.pipeline_root={ROOT}",
        f"kubeflow.serving_dir={SERVING}", f"kubeflow.object_store.endpoint={endpoint}",
        "kubeflow.trainers.accelerator=null", "kubeflow.trainers.node_selector={}",
        "kubeflow.trainers.tolerations=[]",
        f"kubeflow.volumes=[{{pvc: datasets, mount_path: {datasets}}}]",
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
    backend, _, package, _ = cluster
    # The run's root is what `tfx-transfer submit` sends in its runtimeConfig.
    return backend.run(package, "run-1", pipeline_root=ROOT)


def test_first_run_executes_everything_in_the_image_and_pushes_to_the_store(cluster, first_run):
    _, store, _, _ = cluster
    assert {run.state for run in first_run.values()} == {"COMPLETE"}
    record = _push_record(store, first_run)
    assert record["pushed"], record
    assert _versions(store) == [record["version"]]
    # The launcher uploaded the SavedModel file by file: no directory marker objects.
    assert not [key for key in store.keys(BUCKET) if key.endswith("/")]
    assert _span(first_run) == 1


def test_every_task_published_its_log_and_wrote_only_under_the_run_root(cluster, first_run):
    _, store, _, _ = cluster
    run_root = f"tfx-transfer/root/{_pipeline_name(cluster)}/run-1/"
    for name, run in first_run.items():
        logs = run.outputs[EXECUTOR_LOGS]
        assert logs.uri.startswith(f"minio://{BUCKET}/{run_root}{name}/"), logs.uri
        assert logs.metadata["display_name"] == EXECUTOR_LOGS
        key = logs.uri.split(f"{BUCKET}/", 1)[1]
        assert store.client().get_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0, name
    written = {key for key in store.keys(BUCKET) if not key.startswith("tfx-transfer/serving/")}
    assert written and all(key.startswith(run_root) for key in written)


def _pipeline_name(cluster) -> str:
    _, _, package, _ = cluster
    return next(line.split(":", 1)[1].strip() for line in package.read_text().splitlines()
                if line.startswith("  name:"))


def test_independent_tasks_ran_at_the_same_time(first_run):
    # The two sides' ingestion depend on nothing of each other: Argo starts both at once.
    source, target = first_run["source-example-gen"], first_run["target-example-gen"]
    assert source.started < target.started + target.seconds
    assert target.started < source.started + source.seconds


def _executed(runs) -> set[str]:
    return {name for name, run in runs.items() if run.state == "COMPLETE"}


def test_a_tick_without_new_data_retrains_nothing_and_pushes_nothing(cluster, first_run):
    backend, store, package, _ = cluster
    runs = backend.run(package, "run-2", pipeline_root=ROOT)
    assert _executed(runs) == ALWAYS_RUN | {"served-model", "served-evaluator", "pusher"}
    assert runs["transfer-trainer"].outputs == first_run["transfer-trainer"].outputs
    # Not the first run's value (nothing served), so an emptied serving dir would not reuse
    # this tick's decision; nothing is pushed.
    assert first_run["served-model-probe"].parameters["served_baseline"].startswith("none@")
    assert runs["served-model-probe"].parameters["served_baseline"].startswith("self@")
    record = _push_record(store, runs)
    assert not record["pushed"] and record["reasons"][0].startswith("already served"), record
    assert len(_versions(store)) == 1


def test_the_tick_after_is_all_cache_hits(cluster, first_run):
    backend, store, package, _ = cluster
    runs = backend.run(package, "run-3", pipeline_root=ROOT)
    assert _executed(runs) == ALWAYS_RUN
    assert len(_versions(store)) == 1


def test_an_emptied_serving_dir_is_refilled_on_the_next_tick(cluster, first_run):
    backend, store, package, _ = cluster
    for key in store.keys(BUCKET, "tfx-transfer/serving/"):
        store.client().delete_object(Bucket=BUCKET, Key=key)
    runs = backend.run(package, "run-4", pipeline_root=ROOT)
    assert _executed(runs) == ALWAYS_RUN | {"served-model", "served-evaluator", "pusher"}
    assert runs["served-model-probe"].parameters["served_baseline"].startswith("none@")
    record = _push_record(store, runs)
    assert record["pushed"], record
    assert _versions(store) == [record["version"]]


def test_a_new_span_retrains_the_target_and_reuses_pretraining(cluster, first_run):
    backend, store, package, datasets = cluster
    write_span(datasets / "target", 2, start=150, per_class=200)
    [refilled] = _versions(store)
    runs = backend.run(package, "run-5", pipeline_root=ROOT)
    executed = _executed(runs)
    source_side = {name for name in runs if name.startswith("source-")} - ALWAYS_RUN
    assert not executed & (source_side | {"pretrain-trainer"})
    assert {"target-example-gen", "target-transform", "transfer-trainer", "scratch-trainer",
            "evaluator", "served-model", "served-evaluator"} <= executed
    assert _span(runs) == 2
    # The candidate is compared with the version pushed on refilling, and pushed.
    served = runs["served-model"].outputs["model"].metadata["served_version"]
    assert served == refilled
    record = _push_record(store, runs)
    assert record["pushed"], record
    assert _versions(store) == sorted([served, record["version"]])
