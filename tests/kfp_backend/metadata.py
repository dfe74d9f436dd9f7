"""ML Metadata as the open-source KFP launcher and driver use it, on a real MySQL-compatible
server (KFP's own metadata store is MySQL; this is Debian's MariaDB), through ml-metadata's
own client: what MLMD stores, and what a downstream task reads back, is MLMD's doing.

The conversions are the backend's, kubeflow/pipelines 2.14-2.17 (identical in each),
`backend/src/v2/metadata/converter.go` and `client.go`:

* record (`RecordArtifact`, `toMLMDArtifact`, `StructValueToMLMDValue`): each top-level
  metadata key becomes a custom property: a string stays a string, a number becomes a double,
  a bool an int (1/0), a list the struct `{"list": [...]}`, a struct `{"struct": {...}}`; a
  null fails the task ("unknown/unsupported value type"). `display_name` (the output key) and
  `store_session_info` are added unless present. The type is the schema's `title`.
* read (`toRuntimeArtifact`): name = the MLMD id, every property back as a number, string or
  struct: so a bool comes back as 1, a list as `{"list": [...]}`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format, struct_pb2
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from tests.kfp_backend.store import free_port

DATABASE = "metadb"  # KFP's MLMD database name (manifests: metadata-grpc-configmap)


class RecordFailed(RuntimeError):
    """The launcher could not record an output artifact in ML Metadata."""


@dataclass
class Artifact:
    """An artifact as a downstream task's driver reads it from ML Metadata."""

    id: int
    uri: str
    schema: str
    metadata: dict[str, Any]


def to_mlmd_value(value: struct_pb2.Value) -> mlmd.Value:
    """converter.go: StructValueToMLMDValue."""
    kind = value.WhichOneof("kind")
    result = mlmd.Value()
    if kind == "string_value":
        result.string_value = value.string_value
    elif kind == "number_value":
        result.double_value = value.number_value
    elif kind == "bool_value":
        result.int_value = int(value.bool_value)
    elif kind == "list_value":
        result.struct_value.fields["list"].list_value.CopyFrom(value.list_value)
    elif kind == "struct_value":
        result.struct_value.fields["struct"].struct_value.CopyFrom(value.struct_value)
    else:
        raise RecordFailed(f"failed to convert RuntimeArtifact to MLMD artifact: "
                           f"unknown/unsupported value type {kind}")
    return result


def from_mlmd_value(value: mlmd.Value) -> Any:
    """converter.go: toRuntimeArtifact's propertiesToMetadata, as JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind in ("double_value", "int_value"):
        return float(getattr(value, kind))
    if kind == "struct_value":
        return json_format.MessageToDict(value.struct_value)
    raise RecordFailed(f"unknown property type in MLMD artifact: {kind}")


def type_name(schema: str) -> str:
    """client.go: SchemaToArtifactType (the launcher dies on a schema without a title)."""
    title = (yaml.safe_load(schema) or {}).get("title") if schema else None
    if not title:
        raise RecordFailed(f"No title specified in artifact schema {schema!r}")
    return title


@dataclass
class MetadataStore:
    """The MLMD of one deployment."""

    store: metadata_store.MetadataStore

    def record(self, output_key: str, schema: str, uri: str, metadata: struct_pb2.Struct,
               session_info: str) -> Artifact:
        """RecordArtifact: store the output, then read it back as MLMD returns it."""
        artifact = mlmd.Artifact(uri=uri, state=mlmd.Artifact.LIVE)
        for key, value in metadata.fields.items():
            if key != "_kfp_workspace":
                artifact.custom_properties[key].CopyFrom(to_mlmd_value(value))
        for key, default in (("display_name", output_key), ("store_session_info", session_info)):
            if key not in artifact.custom_properties:
                artifact.custom_properties[key].string_value = default
        artifact.type_id = self.store.put_artifact_type(mlmd.ArtifactType(name=type_name(schema)))
        [artifact_id] = self.store.put_artifacts([artifact])
        return self.read(artifact_id, schema)

    def read(self, artifact_id: int, schema: str) -> Artifact:
        [stored] = self.store.get_artifacts_by_id([artifact_id])
        metadata = {key: from_mlmd_value(value)
                    for properties in (stored.properties, stored.custom_properties)
                    for key, value in properties.items()}
        return Artifact(stored.id, stored.uri, schema, metadata)


@contextmanager
def mariadb(work_dir: Path) -> Iterator[MetadataStore]:
    """A MariaDB server on a free loopback port with an empty MLMD database; killed on exit."""
    data, port = work_dir / "mariadb", free_port()
    log = work_dir / "mariadb.log"
    with open(log, "wb") as out:
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                        "--user=root", "--skip-test-db", "--auth-root-authentication-method=normal"],
                       stdout=out, stderr=subprocess.STDOUT, check=True)
        server = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={data}", "--user=root",
             "--bind-address=127.0.0.1", f"--port={port}", f"--socket={work_dir / 'mysql.sock'}",
             "--skip-grant-tables"], stdout=out, stderr=subprocess.STDOUT)
    try:
        _create_database(work_dir / "mysql.sock", server, log)
        config = mlmd.ConnectionConfig()
        config.mysql.host, config.mysql.port = "127.0.0.1", port
        config.mysql.database, config.mysql.user = DATABASE, "root"
        yield MetadataStore(metadata_store.MetadataStore(config))
    finally:
        server.kill()
        server.wait(timeout=30)


def _create_database(socket: Path, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while subprocess.run(["mariadb", f"--socket={socket}", "-e",
                          f"CREATE DATABASE IF NOT EXISTS {DATABASE}"],
                         capture_output=True, check=False).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"MariaDB did not start; see {log}")
        time.sleep(0.2)
