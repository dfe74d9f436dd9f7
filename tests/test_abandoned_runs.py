"""A run that died leaves executions RUNNING in ML Metadata and partial directories; the next
run (holding the lock) marks them CANCELED and removes them, keeping every registered artifact.
A real SQLite ML Metadata store, laid out as TFX lays out a pipeline root."""

from __future__ import annotations

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline.abandoned_runs import cancel_abandoned_executions
from pipeline.run_history import _STATES


def _store(path: str) -> metadata_store.MetadataStore:
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = path
    return metadata_store.MetadataStore(config)


def _execution(store, node_type: int, exec_type: int, node: str, state: int) -> int:
    [context_id] = store.put_contexts([pb.Context(type_id=node_type, name=f"p.{node}")])
    [execution_id] = store.put_executions([pb.Execution(type_id=exec_type,
                                                        last_known_state=state)])
    store.put_attributions_and_associations(
        [], [pb.Association(context_id=context_id, execution_id=execution_id)])
    return execution_id


def test_unfinished_executions_are_cancelled_and_their_directories_removed(tmp_path):
    metadata = str(tmp_path / "metadata.sqlite")
    store = _store(metadata)
    node_type = store.put_context_type(pb.ContextType(name="node"))
    exec_type = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    killed = _execution(store, node_type, exec_type, "trainer", pb.Execution.RUNNING)
    done = _execution(store, node_type, exec_type, "transform", pb.Execution.COMPLETE)
    partial = [tmp_path / "trainer" / "model" / str(killed) / "saved_model.pb",
               tmp_path / "trainer" / ".system" / "executor_execution" / str(killed) / "x"]
    kept = tmp_path / "transform" / "transform_graph" / str(done) / "graph.pb"
    # A directory of the killed execution that holds a registered artifact is never touched.
    registered = tmp_path / "trainer" / "model_run" / str(killed) / "history.csv"
    for path in (*partial, kept, registered):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    artifact_type = store.put_artifact_type(pb.ArtifactType(name="Examples"))
    store.put_artifacts([pb.Artifact(type_id=artifact_type, uri=str(registered.parent))])

    removed = cancel_abandoned_executions(metadata, str(tmp_path))

    assert sorted(removed) == sorted(path.parent for path in partial)
    assert not [path for path in partial if path.exists()] and kept.exists()
    assert registered.exists()
    states = {e.id: e.last_known_state for e in store.get_executions()}
    assert states == {killed: pb.Execution.CANCELED, done: pb.Execution.COMPLETE}
    assert _STATES[pb.Execution.CANCELED] == "cancelled"
    assert cancel_abandoned_executions(metadata, str(tmp_path)) == []  # nothing left to do


def test_a_root_without_metadata_has_nothing_to_cancel(tmp_path):
    assert cancel_abandoned_executions(str(tmp_path / "metadata.sqlite"), str(tmp_path)) == []
    assert not (tmp_path / "metadata.sqlite").exists()
