"""Where artifacts live on Kubeflow: the pipeline roots KFP's launcher supports, and the local
paths it moves each artifact through.

Open-source KFP's launcher (kubeflow/pipelines `backend/src/v2/component/launcher_v2.go`,
`backend/src/v2/objectstore/object_store.go`) accepts `gs://`, `s3://` and `minio://` roots
only. Before the command runs it downloads every input artifact from `<scheme>://<bucket>/<key>`
to `/<gcs|s3|minio>/<bucket>/<key>`; after, it uploads every output artifact from that path.
Vertex AI mounts Cloud Storage at `/gcs/` (Cloud Storage FUSE), so the same path works there.
"""

from __future__ import annotations

# URI scheme -> the launcher's local mount point (objectstore's bucket-to-local-path mapping).
LAUNCHER_PATHS = {"gs://": "/gcs/", "s3://": "/s3/", "minio://": "/minio/"}
SUPPORTED_ROOTS = tuple(LAUNCHER_PATHS)


def root_problem(uri: str) -> str | None:
    """Why the launcher would refuse `uri` as a pipeline root, or None when it's supported."""
    if not uri.startswith(SUPPORTED_ROOTS):
        return (f"{uri!r}: Kubeflow Pipelines' launcher moves artifacts only through "
                f"{', '.join(SUPPORTED_ROOTS)} roots (a bucket, then a path)")
    bucket = uri.split("://", 1)[1].split("/", 1)[0]
    if not bucket:
        return f"{uri!r}: no bucket after the scheme"
    return None


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
