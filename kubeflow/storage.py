"""Where artifacts live on Kubeflow: the pipeline roots KFP's launcher supports, and the local
paths it moves each artifact through.

Open-source KFP's launcher (kubeflow/pipelines `backend/src/v2/component/launcher_v2.go`,
`backend/src/v2/objectstore/object_store.go`) accepts `gs://`, `s3://` and `minio://` roots
only. Before the command runs it downloads every input artifact from `<scheme>://<bucket>/<key>`
to `/<gcs|s3|minio>/<bucket>/<key>`; after, it uploads every output artifact from that path.
Vertex AI mounts Cloud Storage at `/gcs/` (Cloud Storage FUSE), so the same path works there.
"""

from __future__ import annotations

from pipeline.kubeflow_config import LAUNCHER_PATHS


def local_path(uri: str) -> str | None:
    """The launcher's local path of an artifact URI (`gs://b/k` -> `/gcs/b/k`), or None for a
    URI it doesn't move (already local, or another scheme)."""
    for scheme, mount in LAUNCHER_PATHS.items():
        if uri.startswith(scheme):
            return mount + uri[len(scheme):]
    return None


def remote_uri(path: str) -> str | None:
    """The inverse of local_path: the URI whose local copy `path` is, or None."""
    for scheme, mount in LAUNCHER_PATHS.items():
        if path.startswith(mount):
            return scheme + path[len(mount):]
    return None
