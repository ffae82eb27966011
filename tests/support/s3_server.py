"""A real S3-compatible server on 127.0.0.1 (moto's server mode), for the S3 output store.

The server speaks the S3 wire protocol over a real socket, so boto3's signing, multipart
uploads, ranged GETs and error codes are exercised as against MinIO or AWS. Its data
lives in memory for the test session; each test gets its own key prefix in one bucket.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from moto.server import ThreadedMotoServer

BUCKET = "genhook-outputs"
ACCESS_KEY_ID = "test-access-key"
SECRET_ACCESS_KEY = "test-secret-key"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str

    def settings(self) -> dict[str, str]:
        """Settings values that point an output store at a fresh prefix of the bucket."""
        return {
            "storage_url": f"s3://{self.bucket}/test-{uuid.uuid4().hex[:12]}",
            "s3_endpoint_url": self.endpoint_url,
            "s3_access_key_id": ACCESS_KEY_ID,
            "s3_secret_access_key": SECRET_ACCESS_KEY,
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 on a free port of 127.0.0.1, with the test bucket created."""
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield S3Server(endpoint_url=endpoint_url, bucket=BUCKET)
    finally:
        server.stop()
