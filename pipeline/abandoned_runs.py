"""What a run that died (SIGKILL, OOM, a lost machine) left behind, put right by the next one.

TFX registers an execution's outputs only when it succeeds, so a killed execution's
directories are never read; but ML Metadata goes on calling it RUNNING and its partial files
stay on disk. The next run, holding the run lock (so no other run is alive), marks such
executions CANCELED and removes their directories.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.run_history import node_id

_UNFINISHED = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)


def _execution_dirs(node_dir: Path, execution_id: int) -> list[Path]:
    """`<node>/<output key>/<id>` and TFX's `<node>/.system/<kind>/<id>` of one execution."""
    return sorted(path for pattern in (f"*/{execution_id}", f".system/*/{execution_id}")
                  for path in node_dir.glob(pattern) if path.is_dir())


def cancel_abandoned_executions(metadata_path: str, pipeline_root: str) -> list[Path]:
    """Mark unfinished executions CANCELED and remove their directories; the removed paths.

    Only call while holding the pipeline root's run lock: an unfinished execution is then
    one whose run died. A directory that a registered artifact lives in is kept.
    """
    if not Path(metadata_path).exists():
        return []
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    abandoned = [e for e in store.get_executions() if e.last_known_state in _UNFINISHED]
    if not abandoned:
        return []
    artifacts = [Path(a.uri) for a in store.get_artifacts() if a.uri]
    removed = []
    for execution in abandoned:
        node_dir = Path(pipeline_root) / node_id(store, execution.id)
        for path in _execution_dirs(node_dir, execution.id):
            if not any(uri == path or path in uri.parents for uri in artifacts):
                shutil.rmtree(path)
                removed.append(path)
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
    store.put_executions(abandoned)
    return removed
