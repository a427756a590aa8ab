"""A real S3-protocol server for tests: moto in server mode, as its own process on loopback.

moto (from PyPI, in the ``test`` extra) answers the S3 HTTP API, SigV4 signatures and
presigned URLs included, so the bridge's aiobotocore client and a receiver fetching a
presigned URL talk to it exactly as they would to AWS S3 or MinIO. The process is started
once per test session; each test gets a fresh bucket::

    def test_x(s3_bucket: S3Bucket) -> None:
        store = S3Store(bucket=s3_bucket.name, endpoint_url=s3_bucket.endpoint_url, ...)
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["ACCESS_KEY", "REGION", "SECRET_KEY", "S3Bucket", "S3Server", "s3_bucket", "s3_server"]

ACCESS_KEY = "popbridge-test"
SECRET_KEY = "popbridge-test-secret-key"  # moto accepts any key
REGION = "us-east-1"
_names = itertools.count()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """``moto_server`` on 127.0.0.1 and a free port, until :meth:`stop`."""

    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process and wait until it answers (fail with its log after 30 s)."""
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        if exe is None:
            pytest.fail(
                "moto_server is not installed: pip install -e '.[test]' (moto[server])",
                pytrace=False,
            )
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.endpoint_url + "/", timeout=2):  # noqa: S310
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"moto_server did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        """Terminate the process (it holds everything in memory)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def client(self) -> Any:
        """A synchronous boto3 client (moto depends on boto3) for test set-up and checks."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )


@dataclass(frozen=True)
class S3Bucket:
    """A fresh, empty bucket on the session's S3 server."""

    server: S3Server
    name: str

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def keys(self) -> list[str]:
        """Every object key in the bucket."""
        answer = self.server.client().list_objects_v2(Bucket=self.name)
        return [item["Key"] for item in answer.get("Contents", [])]

    def get(self, key: str) -> bytes:
        """An object's bytes."""
        body = self.server.client().get_object(Bucket=self.name, Key=key)["Body"]
        return bytes(body.read())

    def config(self, **extra: Any) -> dict[str, Any]:
        """An ``attachments`` config section for this bucket."""
        return {
            "store": "s3",
            "bucket": self.name,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "addressing_style": "path",
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            **extra,
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One moto S3 server process for the whole run."""
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Bucket:
    """A new empty bucket for one test."""
    name = f"popbridge-test-{next(_names)}"
    s3_server.client().create_bucket(Bucket=name)
    return S3Bucket(s3_server, name)
