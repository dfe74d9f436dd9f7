"""Runs SIGKILLed mid-Transform and mid-Trainer, then started again with the same config:
each rerun reuses what had finished, redoes what hadn't, and nothing downstream ever reads a
half-written output. Real `tfx-transfer run` processes. A crash between the Evaluator and the
Pusher is replayed on the Pusher's executor with the real artifacts of those runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_artifacts

from components.versioned_pusher import executor as pusher
from pipeline import run_history
from tests.reliability_runs import (CHAIN_GROUP, Chain, latest_report, metadata_store_of,
                                    shared_chain)

pytestmark = [pytest.mark.e2e, CHAIN_GROUP]

_CANCELED = metadata_store_pb2.Execution.CANCELED
_COMPLETE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
_OUTPUT = metadata_store_pb2.Event.OUTPUT


@pytest.fixture(scope="module")
def chain() -> Chain:
    return shared_chain()


def _runs(chain: Chain) -> list[dict[str, run_history.ComponentRun]]:
    """What ML Metadata recorded of each run of the root, oldest first."""
    path = str(chain.ws.pipeline_root / "metadata.sqlite")
    return [run_history.component_runs(path, run_id) for run_id in run_history.run_ids(path)]


def _node_executions(chain: Chain, node: str) -> list[metadata_store_pb2.Execution]:
    store = metadata_store_of(chain.ws)
    context = store.get_context_by_type_and_name("node", f"fashion-mnist-ab.{node}")
    return store.get_executions_by_context(context.id)


def _killed_execution(chain: Chain, node: str) -> metadata_store_pb2.Execution:
    [killed] = [e for e in _node_executions(chain, node) if e.last_known_state == _CANCELED]
    return killed


def test_the_rerun_after_two_kills_completes_the_pipeline(chain):
    assert chain.final_code == 0, chain.final_output
    assert len(_runs(chain)) == 3  # two killed, one complete; the refused run left none
    report = latest_report(chain.ws)
    assert set(report["component_states"]) >= {"target_transform", "pretrain_trainer",
                                               "evaluator", "pusher"}


@pytest.mark.parametrize("kill", [0, 1], ids=["mid-transform", "mid-trainer"])
def test_rerun_reuses_what_finished_and_redoes_the_killed_component(chain, kill):
    killed, rerun = chain.kills[kill], _runs(chain)[kill + 1]
    assert killed.finished, "nothing had finished before the kill"
    for node in killed.finished:
        assert rerun[node].state == "cached", (node, rerun[node].state)
    assert killed.component not in killed.finished
    assert rerun[killed.component].state == "complete"


@pytest.mark.parametrize("node", ["target_transform", "pretrain_trainer"])
def test_partial_outputs_are_never_registered_or_read(chain, node):
    """The killed execution has no output artifacts, and the next run marked it CANCELED and
    removed its partial files; every artifact read from the node came from an execution that
    completed."""
    kill = next(k for k in chain.kills if k.component == node)
    killed = _killed_execution(chain, node)
    node_dir = chain.ws.pipeline_root / node
    assert kill.partial_files
    partial_dirs = set()
    for path in kill.partial_files:  # <node>/<output key>/<execution id>/...
        parts = path.relative_to(node_dir).parts
        assert str(killed.id) in parts, (path, killed.id)
        partial_dirs.add(node_dir.joinpath(*parts[:parts.index(str(killed.id)) + 1]))
    store = metadata_store_of(chain.ws)
    assert not [e for e in store.get_events_by_execution_ids([killed.id]) if e.type == _OUTPUT]
    uris = [Path(a.uri) for a in store.get_artifacts()]
    assert not [uri for uri in uris if any(uri == d or d in uri.parents for d in partial_dirs)]
    assert not [path for path in kill.partial_files if path.exists()]

    producers = {e.artifact_id: e.execution_id for e in store.get_events_by_execution_ids(
        [e.id for e in _node_executions(chain, node)]) if e.type == _OUTPUT}
    read = {e.artifact_id for e in store.get_events_by_artifact_ids(list(producers))
            if e.type == metadata_store_pb2.Event.INPUT}
    assert read, f"nothing downstream read {node}'s outputs"
    states = {e.id: e.last_known_state for e in store.get_executions_by_id(
        [producers[artifact] for artifact in read])}
    assert all(state in _COMPLETE for state in states.values()), states


def test_crash_between_evaluator_and_pusher_never_pushes_the_unblessed_model(chain, tmp_path):
    """After such a crash the rerun's Pusher gets the Evaluator's published blessing from the
    cache: here the real NOT_BLESSED one (the margin can't be met), with the real model."""
    report = latest_report(chain.ws)
    assert not report["blessed"] and not report["pushed"]
    assert not list(chain.ws.serving_dir.glob("*"))  # the run's own Pusher pushed nothing
    runs = _runs(chain)[-1]
    inputs = {key: [_artifact(artifact_class, runs[node].outputs[output][0])]
              for key, artifact_class, node, output in (
                  (pusher.MODEL_KEY, standard_artifacts.Model, "transfer_trainer", "model"),
                  (pusher.MODEL_BLESSING_KEY, standard_artifacts.ModelBlessing, "evaluator",
                   "blessing"),
                  (pusher.SERVED_BLESSING_KEY, standard_artifacts.ModelBlessing,
                   "served_evaluator", "blessing"))}
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    serving = tmp_path / "serving"
    pusher.Executor().Do(inputs, {pusher.PUSHED_MODEL_KEY: [pushed]},
                         {pusher.SERVING_DIR_KEY: str(serving), pusher.KEEP_VERSIONS_KEY: 2})
    assert pushed.get_int_custom_property(pusher.PUSHED_KEY) == 0
    assert not serving.exists()


def _artifact(artifact_class: type, mlmd_artifact: metadata_store_pb2.Artifact):
    """A TFX artifact around one read from ML Metadata, as the launcher hands it over."""
    artifact = artifact_class()
    artifact.set_mlmd_artifact(mlmd_artifact)
    return artifact
