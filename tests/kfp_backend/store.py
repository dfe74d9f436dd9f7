"""A real S3-compatible object store on 127.0.0.1 (moto's server mode), started and stopped by
the test that uses it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3

# moto accepts any keys; these are what the pods get from the "cluster's" secret.
ACCESS_KEY, SECRET_KEY, REGION = "test-access-key", "test-secret-key", "us-east-1"


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION,
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def object_store(buckets: tuple[str, ...], log_path: str) -> Iterator[ObjectStore]:
    """moto's S3 server on a free loopback port with the buckets created; stopped on exit."""
    port = _free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MOTO_PORT": str(port)})
    store = ObjectStore(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                store.client().list_buckets()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's S3 server did not start; see {log_path}")
                time.sleep(0.2)
        for bucket in buckets:
            store.client().create_bucket(Bucket=bucket)
        yield store
    finally:
        server.terminate()
        server.wait(timeout=30)
