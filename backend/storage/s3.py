"""The output store in an S3-compatible bucket (AWS S3, MinIO, R2, B2, …), through boto3.

Uploads go through boto3's managed transfer fed by a small file-like view of the chunk
iterator: past ``PART_BYTES`` it becomes a multipart upload holding one part in memory at
a time, and a failure aborts it, so no object (and no dangling upload) is left behind.
Everything runs in the caller's thread: the chunks come from an httpx stream whose time
limit is per thread (``backend.webhooks.guarded_transport.total_time_limit``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
import botocore.session
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backend.errors import StorageUnavailable
from backend.settings import Settings
from backend.storage import READ_CHUNK_BYTES, StoredObject, check_key

#: Size of one multipart part, and the size below which a single PUT is used; S3's
#: minimum part size is 5 MiB.
PART_BYTES = 8 * 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 10.0
READ_TIMEOUT_SECONDS = 60.0
_MISSING = {"404", "NoSuchKey", "NotFound"}


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client configured from settings alone, one per configuration and
    process (clients are thread-safe, and building one loads boto3's models: ~0.4 s).

    Empty keys leave boto3's credential chain in charge (an instance or pod role,
    ``~/.aws``), without its environment-variable step: genhook's configuration lives in
    ``GENHOOK_*`` settings, never in stray ``AWS_*`` variables.
    """
    return _client(
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
    )


@functools.lru_cache(maxsize=8)
def _client(endpoint_url: str, region: str, access_key_id: str, secret_access_key: str) -> Any:
    core = botocore.session.Session()
    core.get_component("credential_provider").remove("env")
    session = boto3.session.Session(
        botocore_session=core,
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        region_name=region,
    )
    config = Config(
        s3={"addressing_style": "path"} if endpoint_url else {},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "standard", "max_attempts": 3},
        ignore_configured_endpoint_urls=True,
        # Many S3-compatible stores reject the CRC checksums boto3 adds by default.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client("s3", endpoint_url=endpoint_url or None, config=config)


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> StoredObject:
        name = self._name(key)
        reader = _ChunkReader(chunks)
        config = TransferConfig(
            multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, use_threads=False
        )
        try:
            self.client.upload_fileobj(
                reader,
                self.bucket,
                name,
                ExtraArgs={"ContentType": content_type},
                Config=config,
            )
        except Exception as exc:
            if reader.error is not None:  # the source failed, not the store
                raise reader.error from None
            raise _unavailable("upload", key, exc) from exc
        return StoredObject(key=key, size_bytes=reader.size, content_type=content_type)

    def stat(self, key: str) -> StoredObject | None:
        name = self._name(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise _unavailable("stat", key, exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("stat", key, exc) from exc
        return StoredObject(
            key=key,
            size_bytes=int(head["ContentLength"]),
            content_type=head.get("ContentType") or "application/octet-stream",
        )

    def read_range(self, key: str, start: int, end_inclusive: int) -> Iterator[bytes]:
        name = self._name(key)
        try:
            answer = self.client.get_object(
                Bucket=self.bucket, Key=name, Range=f"bytes={start}-{end_inclusive}"
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("read", key, exc) from exc
        return _body_chunks(answer["Body"], key)

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=name)
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable("delete", key, exc) from exc


def _unavailable(action: str, key: str, exc: Exception) -> StorageUnavailable:
    return StorageUnavailable(f"S3 {action} of {key!r} failed: {exc}")


def _body_chunks(body: Any, key: str) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(READ_CHUNK_BYTES)
    except BotoCoreError as exc:
        raise _unavailable("read", key, exc) from exc
    finally:
        body.close()


class _ChunkReader:
    """A read-only, non-seekable file over an iterator of chunks, for boto3's transfer.

    It holds at most the bytes asked for by one ``read`` and remembers an error raised by
    the iterator, so the caller can tell a failing source from a failing store.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""
        self.size = 0
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int | None = -1) -> bytes:
        parts = [self._pending]
        held = len(self._pending)
        while size is None or size < 0 or held < size:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                break
            except BaseException as exc:
                self.error = exc
                raise
            parts.append(chunk)
            held += len(chunk)
        data = b"".join(parts)
        if size is not None and 0 <= size < len(data):
            data, self._pending = data[:size], data[size:]
        else:
            self._pending = b""
        self.size += len(data)
        return data
