"""The output store and the copy into it: one suite over a local directory and a real
S3-compatible server (moto on 127.0.0.1), fed by a real origin server on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import itertools
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from backend.errors import OutputCopyFailed
from backend.settings import Settings
from backend.storage import OutputStore, open_store
from backend.storage.copy import copy_output
from backend.storage.files import FileStore
from backend.storage.links import check_output_link, link_signature, new_link_key, output_link
from backend.storage.s3 import PART_BYTES, S3Store
from backend.webhooks.guarded_transport import guarded_client
from tests.support.wsgi_server import serve_wsgi

if TYPE_CHECKING:
    from tests.support.s3_server import S3Server


LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]
MIB = 1024 * 1024
#: The first bytes of an MP4 file: a box size, then ``ftyp``.
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
WEBM_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81"


def video_bytes(size: int) -> bytes:
    """An MP4-looking body whose every byte tells its position (so ranges are checkable)."""
    filler = bytes(i % 251 for i in range(size))
    return (MP4_HEAD + filler[len(MP4_HEAD) :])[:size]


# --- the stores ---------------------------------------------------------------------------


@pytest.fixture(params=["file", "s3"])
def output_store(request: pytest.FixtureRequest, tmp_path: Path) -> OutputStore:
    if request.param == "file":
        return open_store(Settings(storage_url=f"file://{tmp_path}/outputs"))
    server: S3Server = request.getfixturevalue("s3_server")
    return open_store(Settings.model_validate(server.settings()))


def leftovers(store: OutputStore) -> list[str]:
    """Whatever a failed write could have left: temporary files, or unfinished uploads."""
    if isinstance(store, FileStore):
        return [str(p) for p in store.root.rglob("*") if p.is_file()] if store.root.exists() else []
    assert isinstance(store, S3Store)
    prefix = f"{store.prefix}/"
    uploads = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=prefix)
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=prefix)
    return [u["Key"] for u in uploads.get("Uploads", [])] + [
        o["Key"] for o in listed.get("Contents", [])
    ]


def read_all(store: OutputStore, key: str, start: int, end: int) -> bytes:
    return b"".join(store.read_range(key, start, end))


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def test_a_stored_object_reads_back_whole_and_in_ranges(output_store: OutputStore) -> None:
    body = video_bytes(300_000)

    stored = output_store.put_stream("gen_1/video.mp4", chunked(body, 10_000), "video/mp4")

    assert (stored.size_bytes, stored.content_type) == (300_000, "video/mp4")
    assert output_store.stat("gen_1/video.mp4") == stored
    assert read_all(output_store, "gen_1/video.mp4", 0, 299_999) == body
    assert read_all(output_store, "gen_1/video.mp4", 70_000, 200_000) == body[70_000:200_001]
    assert read_all(output_store, "gen_1/video.mp4", 299_990, 299_999) == body[-10:]


def test_reads_come_back_in_chunks_not_whole(output_store: OutputStore) -> None:
    output_store.put_stream("chunks.mp4", [video_bytes(MIB)], "video/mp4")

    chunks = list(output_store.read_range("chunks.mp4", 0, MIB - 1))

    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= 256 * 1024


def test_an_object_larger_than_a_part_is_uploaded_in_parts_and_reads_back(
    output_store: OutputStore,
) -> None:
    size = PART_BYTES + 3 * MIB

    stored = output_store.put_stream(
        "big.mp4", (b"v" * MIB for _ in range(size // MIB)), "video/mp4"
    )

    assert stored.size_bytes == size
    assert output_store.stat("big.mp4") == stored
    assert read_all(output_store, "big.mp4", size - 5, size - 1) == b"vvvvv"
    if isinstance(output_store, S3Store):  # a multipart ETag ends with the number of parts
        head = output_store.client.head_object(
            Bucket=output_store.bucket, Key=f"{output_store.prefix}/big.mp4"
        )
        assert head["ETag"].strip('"').endswith("-2")


def test_a_source_failing_midway_leaves_nothing_behind(output_store: OutputStore) -> None:
    def failing() -> Iterator[bytes]:
        for _ in range(PART_BYTES // MIB + 2):  # past the first part: S3 has begun uploading
            yield b"x" * MIB
        raise OutputCopyFailed("the origin lied", retryable=False)

    with pytest.raises(OutputCopyFailed, match="the origin lied"):
        output_store.put_stream("half.mp4", failing(), "video/mp4")

    assert output_store.stat("half.mp4") is None
    assert leftovers(output_store) == []


def test_a_failed_rewrite_keeps_the_previous_object(output_store: OutputStore) -> None:
    output_store.put_stream("kept.mp4", [b"first version"], "video/mp4")

    def failing() -> Iterator[bytes]:
        yield b"second"
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError):
        output_store.put_stream("kept.mp4", failing(), "video/mp4")

    assert read_all(output_store, "kept.mp4", 0, 100) == b"first version"


def test_deleting_removes_the_object_and_a_missing_one_is_fine(output_store: OutputStore) -> None:
    output_store.put_stream("gone.webm", [WEBM_HEAD], "video/webm")

    output_store.delete("gone.webm")
    output_store.delete("gone.webm")
    output_store.delete("never-there.mp4")

    assert output_store.stat("gone.webm") is None
    assert leftovers(output_store) == []


@pytest.mark.parametrize(
    "key", ["../escape.mp4", "/etc/passwd", "a/../../b.mp4", ".hidden.mp4", "a//b.mp4", "", "a\\b"]
)
def test_keys_that_could_escape_or_clash_are_refused_before_anything_is_written(
    output_store: OutputStore, key: str
) -> None:
    with pytest.raises(ValueError, match="not a valid output key"):
        output_store.put_stream(key, [b"data"], "video/mp4")

    assert leftovers(output_store) == []


def test_an_empty_storage_url_means_outputs_under_the_var_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    store = open_store(Settings(var_dir=Path("var")))

    assert isinstance(store, FileStore)
    assert store.root == (tmp_path / "var" / "outputs").resolve()


def test_an_s3_url_names_the_bucket_and_the_prefix() -> None:
    store = open_store(Settings(storage_url="s3://b1/a/b/", s3_endpoint_url="http://127.0.0.1:9"))

    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == ("b1", "a/b")


@pytest.mark.parametrize("url", ["http://example.com/x", "s3://", "/var/outputs", "file://"])
def test_a_storage_url_of_another_kind_is_refused_at_startup(url: str) -> None:
    with pytest.raises(ValidationError, match="storage_url"):
        Settings(storage_url=url)


# --- copying from the provider ------------------------------------------------------------


class Origin:
    """A provider's file host: each path answers one way, and it counts what it sent."""

    def __init__(self) -> None:
        self.sent = 0
        self.lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        status, headers, body = ROUTES[path](environ)
        start_response(status, headers)
        return self._counted(body)

    def _counted(self, body: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in body:
            with self.lock:
                self.sent += len(chunk)
            yield chunk


def whole(data: bytes, content_type: str) -> Any:
    return lambda environ: (
        "200 OK",
        [("Content-Type", content_type), ("Content-Length", str(len(data)))],
        chunked(data, 64 * 1024),
    )


def declared_huge(environ: dict[str, Any]) -> Any:
    """Declares 50 MiB, then stalls after the first bytes: reading on would time out."""

    def body() -> Iterator[bytes]:
        yield MP4_HEAD
        time.sleep(1.0)

    return "200 OK", [("Content-Type", "video/mp4"), ("Content-Length", str(50 * MIB))], body()


def undeclared(environ: dict[str, Any]) -> Any:
    """``?size`` bytes of MP4, with no Content-Length: only the streamed count can tell."""
    size = int(environ["QUERY_STRING"].removeprefix("size="))
    return "200 OK", [("Content-Type", "video/mp4")], chunked(video_bytes(size), 1000)


def endless(environ: dict[str, Any]) -> Any:
    """A video that never ends and declares no length: only the streamed count can stop it."""
    return "200 OK", [("Content-Type", "video/mp4")], itertools.repeat(b"\x00" * 65536)


def trickle(environ: dict[str, Any]) -> Any:
    """An MP4 without a type, one byte at a time at first, then the rest slowly."""

    def body() -> Iterator[bytes]:
        for byte in MP4_HEAD:
            yield bytes([byte])
        for _ in range(5):
            time.sleep(0.01)
            yield b"\x01" * 1000

    return "200 OK", [("Content-Type", "application/octet-stream")], body()


def stalling(environ: dict[str, Any]) -> Any:
    def body() -> Iterator[bytes]:
        yield MP4_HEAD
        time.sleep(1.0)
        yield b"too late"

    return "200 OK", [("Content-Type", "video/mp4")], body()


def answering(status: str, *extra: tuple[str, str]) -> Any:
    return lambda environ: (status, [("Content-Type", "text/plain"), *extra], [b"no"])


ROUTES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "/video.mp4": whole(video_bytes(200_000), "video/mp4; codecs=avc1"),
    "/generic.mp4": whole(video_bytes(5_000), "application/octet-stream"),
    "/generic.webm": whole(WEBM_HEAD + b"\x00" * 500, "binary/octet-stream"),
    "/generic-text": whole(b"this is not a video at all", "application/octet-stream"),
    "/page.html": whole(b"<html>expired</html>", "text/html; charset=utf-8"),
    "/empty.mp4": whole(b"", "video/mp4"),
    "/declared-huge.mp4": declared_huge,
    "/endless.mp4": endless,
    "/undeclared.mp4": undeclared,
    "/trickle": trickle,
    "/stalling.mp4": stalling,
    "/missing.mp4": answering("404 Not Found"),
    "/forbidden.mp4": answering("403 Forbidden"),
    "/timeout.mp4": answering("408 Request Timeout"),
    "/busy.mp4": answering("429 Too Many Requests"),
    "/broken.mp4": answering("500 Internal Server Error"),
    "/unavailable.mp4": answering("503 Service Unavailable"),
    "/moved.mp4": answering("302 Found", ("Location", "http://10.0.0.1/video.mp4")),
    "/to-echo-auth": answering("302 Found", ("Location", "/echo-auth")),
    "/echo-auth": lambda environ: (
        "200 OK" if environ.get("HTTP_AUTHORIZATION") == "Token sekret" else "401 Unauthorized",
        [("Content-Type", "video/mp4")],
        [MP4_HEAD],
    ),
}


@pytest.fixture
def origin() -> Iterator[tuple[Origin, str]]:
    app = Origin()
    with serve_wsgi(app) as url:  # type: ignore[arg-type]
        yield app, url


@pytest.fixture
def client() -> Iterator[Any]:
    with guarded_client(LOOPBACK) as guarded:
        guarded.timeout = 0.5  # type: ignore[assignment]
        yield guarded


def test_a_video_is_streamed_into_the_store_with_its_checked_type(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore
) -> None:
    _, url = origin

    stored = copy_output(client, f"{url}/video.mp4", output_store, "gen_a.mp4", max_bytes=MIB)

    assert (stored.size_bytes, stored.content_type) == (200_000, "video/mp4")
    assert read_all(output_store, "gen_a.mp4", 0, 199_999) == video_bytes(200_000)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/generic.mp4", "video/mp4"), ("/generic.webm", "video/webm"), ("/trickle", "video/mp4")],
)
def test_a_generic_type_is_accepted_when_the_first_bytes_are_mp4_or_webm(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore, path: str, content_type: str
) -> None:
    _, url = origin

    stored = copy_output(client, f"{url}{path}", output_store, "sniffed", max_bytes=MIB)

    assert stored.content_type == content_type
    assert output_store.stat("sniffed") == stored


def test_the_callers_headers_are_sent_to_the_origin(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore
) -> None:
    _, url = origin

    stored = copy_output(
        client, f"{url}/echo-auth", output_store, "authed.mp4", max_bytes=MIB,
        headers={"Authorization": "Token sekret"},
    )  # fmt: skip

    assert stored.size_bytes == len(MP4_HEAD)


def test_a_redirect_on_the_same_host_is_followed_with_the_callers_headers(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore
) -> None:
    _, url = origin

    stored = copy_output(
        client, f"{url}/to-echo-auth", output_store, "redirected.mp4", max_bytes=MIB,
        headers={"Authorization": "Token sekret"},
    )  # fmt: skip

    assert stored.size_bytes == len(MP4_HEAD)


def test_a_redirect_to_another_host_never_gets_the_callers_headers(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore
) -> None:
    # Given a provider URL that redirects to another host (localhost, not 127.0.0.1)
    _, url = origin
    other_host = url.replace("127.0.0.1", "localhost")
    ROUTES["/to-other-host"] = answering("302 Found", ("Location", f"{other_host}/echo-auth"))
    try:
        # Then the credentials stay behind: the other host answers 401, nothing is stored
        with pytest.raises(OutputCopyFailed, match="HTTP 401"):
            copy_output(
                client, f"{url}/to-other-host", output_store, "leaked.mp4", max_bytes=MIB,
                headers={"Authorization": "Token sekret"},
            )  # fmt: skip
    finally:
        del ROUTES["/to-other-host"]
    assert output_store.stat("leaked.mp4") is None


@pytest.mark.parametrize(
    ("path", "retryable", "reason"),
    [
        ("/generic-text", False, "neither MP4 nor WebM"),
        ("/page.html", False, "text/html, not a video"),
        ("/empty.mp4", False, "empty"),
        ("/missing.mp4", False, "HTTP 404"),
        ("/forbidden.mp4", False, "HTTP 403"),
        ("/moved.mp4", False, "not allowed"),
        ("/timeout.mp4", True, "HTTP 408"),
        ("/busy.mp4", True, "HTTP 429"),
        ("/broken.mp4", True, "HTTP 500"),
        ("/unavailable.mp4", True, "HTTP 503"),
        ("/stalling.mp4", True, "fetching the output failed"),
    ],
)
def test_a_bad_answer_fails_the_copy_saying_whether_to_retry_and_stores_nothing(
    origin: tuple[Origin, str],
    client: Any,
    output_store: OutputStore,
    path: str,
    retryable: bool,
    reason: str,
) -> None:
    _, url = origin

    with pytest.raises(OutputCopyFailed, match=reason) as failed:
        copy_output(client, f"{url}{path}", output_store, "out.mp4", max_bytes=MIB)

    assert failed.value.retryable is retryable
    assert output_store.stat("out.mp4") is None
    assert leftovers(output_store) == []


def test_a_declared_size_over_the_limit_fails_before_the_body_is_read(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore
) -> None:
    _, url = origin
    started = time.monotonic()

    with pytest.raises(OutputCopyFailed, match="52428800 bytes, more than") as failed:
        copy_output(client, f"{url}/declared-huge.mp4", output_store, "huge.mp4", max_bytes=MIB)

    assert time.monotonic() - started < 0.4  # the body stalls: reading it would time out
    assert failed.value.retryable is False
    assert leftovers(output_store) == []


def test_a_body_of_exactly_the_limit_without_a_declared_length_is_kept(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore
) -> None:
    _, url = origin

    copy_output(
        client, f"{url}/undeclared.mp4?size=100000", output_store, "u.mp4", max_bytes=100_000
    )

    assert read_all(output_store, "u.mp4", 0, 100_000) == video_bytes(100_000)


def test_one_byte_over_the_limit_without_a_declared_length_fails_and_keeps_nothing(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore
) -> None:
    _, url = origin

    with pytest.raises(OutputCopyFailed, match="larger than the 100000 bytes") as failed:
        copy_output(
            client, f"{url}/undeclared.mp4?size=100001", output_store, "u.mp4", max_bytes=100_000
        )

    assert failed.value.retryable is False
    assert leftovers(output_store) == []


def test_an_endless_body_is_cut_off_at_the_limit_without_being_buffered(
    origin: tuple[Origin, str], client: Any, output_store: OutputStore
) -> None:
    app, url = origin
    max_bytes = 2 * MIB
    tracemalloc.start()
    started = time.monotonic()

    try:
        with pytest.raises(OutputCopyFailed, match="larger than the 2097152 bytes") as failed:
            copy_output(
                client, f"{url}/endless.mp4", output_store, "endless.mp4", max_bytes=max_bytes
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert time.monotonic() - started < 5
    assert failed.value.retryable is False
    assert app.sent > max_bytes
    # The file store holds one chunk at a time; S3 at most one part (here, all it got).
    assert peak < (MIB if isinstance(output_store, FileStore) else max_bytes + MIB)
    assert leftovers(output_store) == []


def test_an_unreachable_origin_is_worth_retrying(client: Any, output_store: OutputStore) -> None:
    with serve_wsgi(Origin()) as url:  # type: ignore[arg-type]
        pass  # the port is closed again

    with pytest.raises(OutputCopyFailed) as failed:
        copy_output(client, f"{url}/video.mp4", output_store, "x.mp4", max_bytes=MIB)

    assert failed.value.retryable is True


def test_an_origin_on_a_private_address_is_refused_by_the_guarded_client(
    origin: tuple[Origin, str], output_store: OutputStore
) -> None:
    _, url = origin

    with (
        guarded_client([]) as strict,
        pytest.raises(OutputCopyFailed, match="not allowed") as failed,
    ):
        copy_output(strict, f"{url}/video.mp4", output_store, "x.mp4", max_bytes=MIB)

    assert failed.value.retryable is False
    assert origin[0].sent == 0


# --- signed links -------------------------------------------------------------------------

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_a_link_is_signed_for_its_job_and_expiry_under_the_base_url() -> None:
    key = new_link_key()

    link = output_link("https://genhook.example/", "gen_1", key, NOW, 3600)

    expires = int(NOW.timestamp()) + 3600
    sig = link_signature("gen_1", key, expires)
    assert link == f"https://genhook.example/v1/outputs/gen_1?expires={expires}&signature={sig}"
    assert output_link("", "gen_1", key, NOW, 3600).startswith("/v1/outputs/gen_1?expires=")


def test_a_link_opens_until_it_expires_and_only_for_its_own_job() -> None:
    key = new_link_key()
    expires = int(NOW.timestamp()) + 60
    genuine = link_signature("gen_1", key, expires)

    assert check_output_link("gen_1", key, expires, genuine, NOW)
    assert not check_output_link("gen_1", key, expires, genuine, NOW + timedelta(seconds=60))
    assert not check_output_link("gen_1", key, expires + 3600, genuine, NOW)
    assert not check_output_link("gen_2", key, expires, genuine, NOW)
    assert not check_output_link("gen_1", new_link_key(), expires, genuine, NOW)
    tampered = genuine[:-1] + ("1" if genuine.endswith("0") else "0")
    assert not check_output_link("gen_1", key, expires, tampered, NOW)
