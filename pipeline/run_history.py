"""What ML Metadata recorded about a pipeline run: components, timings, output artifacts."""

from __future__ import annotations

import dataclasses

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

_OUTPUT = metadata_store_pb2.Event.OUTPUT
_STATES = {metadata_store_pb2.Execution.COMPLETE: "complete",
           metadata_store_pb2.Execution.CACHED: "cached",
           metadata_store_pb2.Execution.FAILED: "failed",
           metadata_store_pb2.Execution.RUNNING: "running",
           metadata_store_pb2.Execution.CANCELED: "cancelled"}


@dataclasses.dataclass
class ComponentRun:
    """One component's execution in a run: its outputs by key, its execution properties
    (TFX records the component's exec_properties there) and when it started."""

    node_id: str
    state: str
    seconds: float
    outputs: dict[str, list[metadata_store_pb2.Artifact]]
    properties: dict[str, str | int | float] = dataclasses.field(default_factory=dict)
    started: float = 0.0  # seconds since the epoch


def _store(metadata_path: str) -> metadata_store.MetadataStore:
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(config)


def run_ids(metadata_path: str) -> list[str]:
    """Pipeline run ids, oldest first."""
    contexts = _store(metadata_path).get_contexts_by_type("pipeline_run")
    return [c.name for c in sorted(contexts, key=lambda c: c.create_time_since_epoch)]


def node_id(store, execution_id: int) -> str:
    """The id of the component that ran an execution."""
    for context in store.get_contexts_by_execution(execution_id):
        if store.get_context_types_by_id([context.type_id])[0].name == "node":
            return context.name.rsplit(".", 1)[-1]
    return f"execution-{execution_id}"


def _outputs(store, execution_id: int) -> dict[str, list[metadata_store_pb2.Artifact]]:
    events = [e for e in store.get_events_by_execution_ids([execution_id]) if e.type == _OUTPUT]
    artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
    outputs: dict[str, list[metadata_store_pb2.Artifact]] = {}
    for event in events:
        key = event.path.steps[0].key if event.path.steps else "output"
        outputs.setdefault(key, []).append(artifacts[event.artifact_id])
    return outputs


def _properties(execution: metadata_store_pb2.Execution) -> dict[str, str | int | float]:
    return {key: getattr(value, value.WhichOneof("value"))
            for key, value in execution.custom_properties.items() if value.WhichOneof("value")}


def component_runs(metadata_path: str, run_id: str) -> dict[str, ComponentRun]:
    """Every execution of the run, by component id."""
    store = _store(metadata_path)
    context = store.get_context_by_type_and_name("pipeline_run", run_id)
    if context is None:
        raise ValueError(f"{metadata_path}: no pipeline run {run_id!r}; known: "
                         f"{run_ids(metadata_path)}")
    runs = {}
    for execution in store.get_executions_by_context(context.id):
        node = node_id(store, execution.id)
        seconds = (execution.last_update_time_since_epoch
                   - execution.create_time_since_epoch) / 1000
        runs[node] = ComponentRun(node, _STATES.get(execution.last_known_state, "other"),
                                  seconds, _outputs(store, execution.id),
                                  _properties(execution),
                                  execution.create_time_since_epoch / 1000)
    return runs
