"""Where genhook keeps finished videos, so an ``output_url`` outlives the provider's own.

Providers' URLs expire (Replicate's after an hour); on completion the file is streamed into
an output store and served from there through signed links (``links.py``)::

    OutputStore (protocol)
    ├── FileStore   file:///abs/dir       a local directory (the default, under var_dir)
    └── S3Store     s3://bucket/prefix    any S3-compatible bucket, through boto3

Stores take an iterator of chunks and hand back iterators of chunks: a video is never held
whole in memory. A store that fails raises ``StorageUnavailable``; an error raised by the
chunks it is fed passes through unchanged, and leaves no object behind.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import urlsplit

from backend.settings import Settings

#: Size of the chunks stores hand back when reading.
READ_CHUNK_BYTES = 64 * 1024
MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    content_type: str


class OutputStore(Protocol):
    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> StoredObject:
        """Store the chunks under ``key`` (replacing any object there), all or nothing."""
        ...

    def stat(self, key: str) -> StoredObject | None:
        """The object under ``key``, or None."""
        ...

    def read_range(self, key: str, start: int, end_inclusive: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end_inclusive`` of the object, in chunks."""
        ...

    def delete(self, key: str) -> None:
        """Delete the object; a missing one is fine."""
        ...


def check_key(key: str) -> PurePosixPath:
    """A key is a relative path of plain names: no ``..``, no absolute path, and no name
    starting with a dot (stores keep their partial files and metadata there)."""
    path = PurePosixPath(key)
    if (
        not key
        or len(key) > MAX_KEY_LENGTH
        or "\\" in key
        or "\x00" in key
        or path.is_absolute()
        or key.endswith("/")
        or any(part.startswith(".") for part in path.parts)
        or str(path) != key
    ):
        raise ValueError(f"not a valid output key: {key!r}")
    return path


def storage_url(settings: Settings) -> str:
    """The configured store, or the ``outputs`` directory under var_dir."""
    return settings.storage_url or f"file://{(settings.var_dir / 'outputs').resolve()}"


def open_store(settings: Settings) -> OutputStore:
    """A new store for the URL in ``settings`` (see :func:`store_for` for a shared one)."""
    url = storage_url(settings)
    if url.startswith("file://"):
        from backend.storage.files import FileStore

        return FileStore(Path(url.removeprefix("file://")).resolve())
    parts = urlsplit(url)
    if parts.scheme == "s3" and parts.netloc:
        from backend.storage.s3 import S3Store, s3_client

        return S3Store(s3_client(settings), parts.netloc, parts.path.strip("/"))
    raise ValueError(f"GENHOOK_STORAGE_URL must be file://… or s3://bucket/prefix, not {url!r}")


_stores: dict[tuple[object, ...], OutputStore] = {}
_stores_lock = threading.Lock()


def store_for(settings: Settings) -> OutputStore:
    """The store ``settings`` name, opened once per configuration and process (a boto3
    client is thread-safe and slow to build)."""
    identity = (
        storage_url(settings),
        settings.s3_endpoint_url,
        settings.s3_region,
        settings.s3_access_key_id,
        settings.s3_secret_access_key,
    )
    with _stores_lock:
        if identity not in _stores:
            _stores[identity] = open_store(settings)
        return _stores[identity]
