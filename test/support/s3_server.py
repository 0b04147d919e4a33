"""A real S3-compatible server on loopback for the storage tests: moto's server mode
(`moto_server`, from PyPI), started as a subprocess, with a bucket the tests create."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
import httpx

from test.support.net import free_port

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key-" + "s" * 24
REGION = "us-east-1"


@dataclass
class S3Server:
    """A running moto server: its endpoint and a synchronous client for assertions."""

    endpoint: str
    bucket: str

    def client(self) -> object:
        """A boto3 client on the server (tests list and read objects with it)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def object_keys(self, prefix: str = "") -> set[str]:
        """Every object key in the bucket (under `prefix`)."""
        client = self.client()
        found: set[str] = set()
        for page in client.get_paginator("list_objects_v2").paginate(  # type: ignore[attr-defined]
            Bucket=self.bucket, Prefix=prefix
        ):
            found.update(item["Key"] for item in page.get("Contents", []))
        return found


@contextmanager
def moto_s3(bucket: str = "vektor-files") -> Iterator[S3Server]:
    """Start `moto_server` on a free loopback port, create `bucket`, stop it afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        server = S3Server(endpoint=endpoint, bucket=bucket)
        server.client().create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
