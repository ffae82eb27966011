"""The output store in a local directory (the default, ``var/outputs`` under ``genhook up``).

A file is written under a hidden temporary name in its final directory and renamed into
place when complete, so a reader never sees half a video and a failed copy leaves only a
temporary file that is removed at once. Each file's content type sits beside it in a
hidden ``.<name>.type`` file (keys never start with a dot, so the names cannot clash).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from backend.errors import StorageUnavailable
from backend.private_files import ensure_private_dir
from backend.storage import READ_CHUNK_BYTES, StoredObject, check_key

DEFAULT_CONTENT_TYPE = "application/octet-stream"


class FileStore:
    def __init__(self, root: Path) -> None:
        if not root.is_absolute():
            raise ValueError(f"the output directory must be an absolute path, not {root}")
        self.root = root

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).parts)

    @staticmethod
    def _type_path(path: Path) -> Path:
        return path.with_name(f".{path.name}.type")

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> StoredObject:
        path = self._path(key)
        try:
            ensure_private_dir(path.parent)  # 0700, like the files (mkstemp: 0600)
            fd, temporary = tempfile.mkstemp(
                dir=path.parent, prefix=f".{path.name}.", suffix=".part"
            )
        except OSError as exc:
            raise StorageUnavailable(f"cannot write under {path.parent}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as file:
                size = _write_all(file, chunks)
            _replace_text(self._type_path(path), content_type)
            _rename(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return StoredObject(key=key, size_bytes=size, content_type=content_type)

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc}") from exc
        try:
            content_type = self._type_path(path).read_text().strip() or DEFAULT_CONTENT_TYPE
        except FileNotFoundError:
            content_type = DEFAULT_CONTENT_TYPE
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}'s type: {exc}") from exc
        return StoredObject(key=key, size_bytes=size, content_type=content_type)

    def read_range(self, key: str, start: int, end_inclusive: int) -> Iterator[bytes]:
        path = self._path(key)
        try:  # opened now, so a missing file fails here rather than mid-response
            file = path.open("rb")
            file.seek(start)
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc}") from exc
        return _read_chunks(file, end_inclusive - start + 1)

    def delete(self, key: str) -> None:
        path = self._path(key)
        for target in (path, self._type_path(path)):
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                raise StorageUnavailable(f"cannot delete {target}: {exc}") from exc


def _write_all(file: BinaryIO, chunks: Iterable[bytes]) -> int:
    """Write every chunk and flush it to disk; errors of ``chunks`` pass through unchanged."""
    size = 0
    for chunk in chunks:
        try:
            file.write(chunk)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write the output: {exc}") from exc
        size += len(chunk)
    try:
        file.flush()
        os.fsync(file.fileno())
    except OSError as exc:
        raise StorageUnavailable(f"cannot write the output: {exc}") from exc
    return size


def _replace_text(path: Path, text: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise StorageUnavailable(f"cannot write {path}: {exc}") from exc


def _rename(source: str, target: Path) -> None:
    try:
        os.replace(source, target)
    except OSError as exc:
        raise StorageUnavailable(f"cannot move the output into {target}: {exc}") from exc


def _read_chunks(file: BinaryIO, remaining: int) -> Iterator[bytes]:
    with file:
        while remaining > 0:
            chunk = file.read(min(READ_CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk
