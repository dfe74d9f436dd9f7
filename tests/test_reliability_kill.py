"""Runs SIGKILLed mid-Transform, mid-Trainer and between the Evaluators and the Pusher, then
started again with the same config: each rerun reuses what had finished, redoes what hadn't,
and nothing downstream ever reads a half-written output. Real `tfx-transfer run` processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import run_history
from tests.reliability_runs import Chain, latest_report, metadata_store_of, shared_chain

pytestmark = pytest.mark.e2e

_RUNNING = metadata_store_pb2.Execution.RUNNING
_COMPLETE = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
# Resolvers run every time; the served-model Evaluator's baseline is resolved from the
# blessings of earlier runs, which its own finished execution changes.
NEVER_CACHED = {"served_model_resolver", "served_evaluator"}


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
    [killed] = [e for e in _node_executions(chain, node) if e.last_known_state == _RUNNING]
    return killed


def test_every_rerun_after_a_kill_completes_the_pipeline(chain):
    assert chain.final_code == 0, chain.final_output
    assert len(_runs(chain)) == 4  # three killed, one complete; the refused run left none
    report = latest_report(chain.ws)
    assert set(report["component_states"]) >= {"target_transform", "pretrain_trainer",
                                               "evaluator", "pusher"}


@pytest.mark.parametrize("kill", [0, 1, 2], ids=["mid-transform", "mid-trainer",
                                                 "before-pusher"])
def test_rerun_reuses_what_finished_and_redoes_the_killed_component(chain, kill):
    killed, rerun = chain.kills[kill], _runs(chain)[kill + 1]
    assert killed.finished, "nothing had finished before the kill"
    for node in set(killed.finished) - NEVER_CACHED:
        assert rerun[node].state == "cached", (node, rerun[node].state)
    assert killed.component not in killed.finished
    assert rerun[killed.component].state == "complete"


@pytest.mark.parametrize("node", ["target_transform", "pretrain_trainer"])
def test_partial_outputs_are_never_registered_or_read(chain, node):
    """The killed execution stays RUNNING with no output artifacts; every artifact read from
    the node came from an execution that completed."""
    kill = next(k for k in chain.kills if k.component == node)
    killed_id = str(_killed_execution(chain, node).id)
    node_dir = chain.ws.pipeline_root / node
    assert kill.partial_files
    partial_dirs = set()
    for path in kill.partial_files:  # <node>/<output key>/<execution id>/...
        parts = path.relative_to(node_dir).parts
        assert killed_id in parts, (path, killed_id)
        partial_dirs.add(node_dir.joinpath(*parts[:parts.index(killed_id) + 1]))
    killed = _killed_execution(chain, node)
    store = metadata_store_of(chain.ws)
    assert not [e for e in store.get_events_by_execution_ids([killed.id])
                if e.type == metadata_store_pb2.Event.OUTPUT]
    uris = [Path(a.uri) for a in store.get_artifacts()]
    assert not [uri for uri in uris if any(uri == d or d in uri.parents for d in partial_dirs)]

    producers = {e.artifact_id: e.execution_id for e in store.get_events_by_execution_ids(
        [e.id for e in _node_executions(chain, node)]) if e.type == metadata_store_pb2.Event.OUTPUT}
    read = {e.artifact_id for e in store.get_events_by_artifact_ids(list(producers))
            if e.type == metadata_store_pb2.Event.INPUT}
    assert read, f"nothing downstream read {node}'s outputs"
    states = {e.id: e.last_known_state for e in store.get_executions_by_id(
        [producers[artifact] for artifact in read])}
    assert all(state in _COMPLETE for state in states.values()), states


def test_crash_between_evaluator_and_pusher_never_pushes_the_unblessed_model(chain):
    """The margin can't be met: the rerun's Pusher takes the cached Evaluator's NOT_BLESSED
    blessing and pushes nothing."""
    report = latest_report(chain.ws)
    assert report["component_states"]["evaluator"] == "cached"
    assert report["component_states"]["pusher"] == "complete"
    assert not report["blessed"] and not report["pushed"]
    assert not list(chain.ws.serving_dir.glob("*"))
