"""A real S3 API on loopback for destination tests: moto in server mode (one per test session/worker).

Each test gets its own freshly created bucket, so tests stay independent and xdist-safe.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"
REGION = "us-east-1"
_CLIENTS: dict[tuple[str, str, str], Any] = {}


@dataclass
class S3TestServer:
    endpoint_url: str
    bucket: str
    key: str = ACCESS_KEY
    secret: str = SECRET_KEY
    region: str = REGION

    @property
    def storage_options(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region},
        }

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix.strip('/')}".rstrip("/")

    def config(self, prefix: str = "", **overrides: Any) -> Any:
        """A DestinationConfig pointing at this bucket (+ prefix)."""
        from destinations.config import DestinationConfig

        values: dict[str, Any] = {"url": self.url(prefix), "storage_options": self.storage_options}
        values.update(overrides)
        return DestinationConfig(**values)

    def env(self, name: str, prefix: str = "", **extra: str) -> dict[str, str]:
        """DESTINATIONS__<NAME>__* variables for a flow subprocess."""
        import json

        values = {"URL": self.url(prefix), "STORAGE_OPTIONS": json.dumps(self.storage_options)}
        values.update({key.upper(): value for key, value in extra.items()})
        return {f"DESTINATIONS__{name.upper()}__{key}": value for key, value in values.items()}

    def client(self) -> Any:
        """A boto3 client, made once per endpoint (each costs ~0.3 s of botocore model loading)."""
        key = (self.endpoint_url, self.key, self.secret)
        if key not in _CLIENTS:
            _CLIENTS[key] = self._new_client()
        return _CLIENTS[key]

    def _new_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=self.region,
        )

    def keys(self, prefix: str = "") -> list[str]:
        response = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"] for obj in response.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_server(moto_endpoint: str) -> S3TestServer:
    server = S3TestServer(endpoint_url=moto_endpoint, bucket=f"test-{secrets.token_hex(6)}")
    server.client().create_bucket(Bucket=server.bucket)
    return server
