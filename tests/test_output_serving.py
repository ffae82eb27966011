"""Kept outputs as clients see them: a signed ``/v1/outputs/{id}`` link that a browser can
seek through, that stops working when it expires, and that answers 410 once retention has
deleted the file. Runs on each database and on both stores (a directory, S3 via moto)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from falcon import testing

from backend import ids
from backend.accounts import NewAccount
from backend.api.app import create_app
from backend.context import Context
from backend.settings import Settings
from backend.storage import store_for
from backend.storage.files import FileStore
from backend.storage.links import new_link_key, output_link
from backend.storage.retention import delete_expired_outputs
from backend.store.jobs import insert_job
from backend.store.outputs import get_output, record_stored, stored_before
from tests.conftest import make_settings

SIZE = 300_000
BODY = bytes(i % 251 for i in range(SIZE))


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "file":
        return {"storage_url": f"file://{tmp_path}/outputs"}
    return dict(request.getfixturevalue("s3_server").settings())


@pytest.fixture
def settings(database_url: str, redis_url: str, storage: dict[str, str]) -> Settings:
    """No simulator: nothing here renders."""
    return make_settings(database_url, redis_url, "http://127.0.0.1:9", **storage)


@dataclass(frozen=True)
class Kept:
    job_id: str
    key: str
    link_key: str


def keep_output(
    ctx: Context, account: NewAccount, body: bytes = BODY, *, stored_at: datetime | None = None
) -> Kept:
    """A job whose video is in the output store, as the completion step leaves it."""
    job_id = ids.job_id()
    with ctx.store.begin() as conn:
        insert_job(
            conn, job_id=job_id, account_id=account.account.id, model="kling-v3",
            prompt="Product reveal", duration_seconds=5, aspect_ratio="16:9", webhook_url=None,
            metadata={}, provider="simulator", provider_model="kling-v3", credits_charged=5,
        )  # fmt: skip
    stored = store_for(ctx.settings).put_stream(f"{job_id}/video.mp4", [body], "video/mp4")
    kept = Kept(job_id, stored.key, new_link_key())
    with ctx.store.begin() as conn:
        record_stored(
            conn, job_id, key=stored.key, link_key=kept.link_key, content_type="video/mp4",
            size_bytes=stored.size_bytes, stored_at=stored_at or ctx.now(),
        )  # fmt: skip
    return kept


def link(ctx: Context, kept: Kept, *, ttl_seconds: int = 3600, now: datetime | None = None) -> str:
    return output_link("", kept.job_id, kept.link_key, now or ctx.now(), ttl_seconds)


# --- serving ------------------------------------------------------------------------------


def test_a_signed_link_serves_the_whole_video_without_an_api_key(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    kept = keep_output(ctx, account)

    result = api.simulate_get(link(ctx, kept, ttl_seconds=3600))

    assert result.status_code == 200
    assert result.content == BODY
    assert result.headers["Content-Type"] == "video/mp4"
    assert result.headers["Content-Length"] == str(SIZE)
    assert result.headers["Accept-Ranges"] == "bytes"
    max_age = int(result.headers["Cache-Control"].removeprefix("private, max-age="))
    assert 3590 <= max_age <= 3600


#: A Range header and the (first, last) bytes it asks for.
RANGES = [
    ("bytes=100-199", 100, 199),
    ("bytes=250000-", 250_000, SIZE - 1),
    ("bytes=-1000", SIZE - 1000, SIZE - 1),
    ("bytes=-999999", 0, SIZE - 1),  # more than there is: all of it
    ("bytes=299990-400000", 299_990, SIZE - 1),  # clipped at the end
    ("bytes=0-0", 0, 0),
]


def test_a_single_range_answers_206_with_exactly_those_bytes(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    kept = keep_output(ctx, account)

    answers = {h: api.simulate_get(link(ctx, kept), headers={"Range": h}) for h, _, _ in RANGES}

    for header, first, last in RANGES:
        result = answers[header]
        assert result.status_code == 206, header
        assert result.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}", header
        assert result.headers["Content-Length"] == str(last - first + 1), header
        assert result.content == BODY[first : last + 1], header


def test_a_range_past_the_end_is_416_naming_the_size(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    kept = keep_output(ctx, account)

    for header in (f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}"):
        result = api.simulate_get(link(ctx, kept), headers={"Range": header})

        assert result.status_code == 416, header
        assert result.headers["Content-Range"] == f"bytes */{SIZE}", header


def test_several_or_unreadable_ranges_get_the_whole_video(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    kept = keep_output(ctx, account)

    for header in ("bytes=0-1,5-6", "bytes=oops", "pages=1-2"):
        result = api.simulate_get(link(ctx, kept), headers={"Range": header})

        assert result.status_code == 200, header
        assert result.content == BODY, header


def test_head_answers_the_headers_of_get_without_a_body(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    kept = keep_output(ctx, account)

    whole = api.simulate_head(link(ctx, kept))
    ranged = api.simulate_head(link(ctx, kept), headers={"Range": "bytes=-10"})

    assert (whole.status_code, whole.headers["Content-Length"], whole.content) == (
        200,
        str(SIZE),
        b"",
    )
    assert ranged.status_code == 206
    assert ranged.headers["Content-Range"] == f"bytes {SIZE - 10}-{SIZE - 1}/{SIZE}"


def test_the_body_is_streamed_from_the_store_in_chunks(ctx: Context, account: NewAccount) -> None:
    kept = keep_output(ctx, account)
    path, _, query = link(ctx, kept).partition("?")
    app = create_app(ctx)
    started: list[str] = []

    body = app(testing.create_environ(path, query_string=query), lambda s, h: started.append(s))
    chunks = list(body)  # the WSGI iterable, as a server would consume it

    assert started == ["200 OK"]
    assert not isinstance(body, list | bytes)
    assert len(chunks) > 1
    assert b"".join(chunks) == BODY


def test_an_expired_link_is_403_and_a_fresh_one_opens(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    kept = keep_output(ctx, account)
    yesterday = ctx.now() - timedelta(days=1)

    expired = api.simulate_get(link(ctx, kept, ttl_seconds=3600, now=yesterday))
    fresh = api.simulate_get(link(ctx, kept))

    assert expired.status_code == 403
    assert expired.headers["Content-Type"] == "application/problem+json"
    assert expired.json["type"] == "urn:genhook:problem:forbidden"
    assert fresh.status_code == 200


def test_a_tampered_link_is_403(ctx: Context, api: testing.TestClient, account: NewAccount) -> None:
    kept = keep_output(ctx, account)
    other = keep_output(ctx, account)
    genuine = link(ctx, kept)
    base, _, sig = genuine.rpartition("=")
    expires = int(genuine.split("expires=")[1].split("&")[0])

    stretched = genuine.replace(f"expires={expires}", f"expires={expires + 86400}")
    flipped = f"{base}={sig[:-1]}{'1' if sig.endswith('0') else '0'}"
    elsewhere = genuine.replace(kept.job_id, other.job_id)
    garbled = f"{base}={'%C3%A9' * 64}"  # not even hex

    for forged in (stretched, flipped, elsewhere, garbled):
        assert api.simulate_get(forged).status_code == 403, forged


def test_a_job_without_a_kept_output_or_an_unknown_one_is_404(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    fake = Kept(ids.job_id(), "none", new_link_key())

    result = api.simulate_get(link(ctx, fake))

    assert result.status_code == 404
    assert result.json["type"] == "urn:genhook:problem:not-found"


def test_a_link_without_its_query_is_422(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    kept = keep_output(ctx, account)

    result = api.simulate_get(f"/v1/outputs/{kept.job_id}")

    assert result.status_code == 422
    assert {e["field"] for e in result.json["errors"]} == {"expires", "signature"}


def test_a_file_missing_from_the_store_is_404(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    kept = keep_output(ctx, account)
    store_for(ctx.settings).delete(kept.key)

    result = api.simulate_get(link(ctx, kept))

    assert result.status_code == 404


# --- retention ----------------------------------------------------------------------------


def test_retention_deletes_old_outputs_and_their_links_answer_410(
    ctx: Context, api: testing.TestClient, account: NewAccount
) -> None:
    now = ctx.now()
    old = keep_output(ctx, account, stored_at=now - timedelta(days=31))
    recent = keep_output(ctx, account, stored_at=now - timedelta(days=29))

    deleted = delete_expired_outputs(ctx, now)

    store = store_for(ctx.settings)
    assert deleted == 1
    assert store.stat(old.key) is None
    assert store.stat(recent.key) is not None
    gone = api.simulate_get(link(ctx, old))
    assert gone.status_code == 410
    assert gone.json["type"] == "urn:genhook:problem:gone"
    assert api.simulate_get(link(ctx, recent)).status_code == 200
    assert delete_expired_outputs(ctx, now) == 0


def test_retention_works_in_batches_oldest_first(ctx: Context, account: NewAccount) -> None:
    now = ctx.now()
    kept = [keep_output(ctx, account, stored_at=now - timedelta(days=40 - i)) for i in range(3)]

    first = delete_expired_outputs(ctx, now, limit=2)
    with ctx.store.begin() as conn:
        left = stored_before(conn, now - timedelta(days=30), 10)
    second = delete_expired_outputs(ctx, now, limit=2)

    assert (first, second) == (2, 1)
    assert [o.job_id for o in left] == [kept[2].job_id]


def test_retention_of_zero_days_keeps_everything(ctx: Context, account: NewAccount) -> None:
    kept = keep_output(ctx, account, stored_at=ctx.now() - timedelta(days=3650))
    ctx.settings = ctx.settings.model_copy(update={"output_retention_days": 0})

    assert delete_expired_outputs(ctx, ctx.now()) == 0
    assert store_for(ctx.settings).stat(kept.key) is not None


@pytest.mark.parametrize("storage", ["file"], indirect=True)
def test_a_delete_that_fails_is_logged_and_retried_at_the_next_run(
    ctx: Context, account: NewAccount, caplog: pytest.LogCaptureFixture
) -> None:
    now = ctx.now()
    kept = keep_output(ctx, account, stored_at=now - timedelta(days=31))
    store = store_for(ctx.settings)
    assert isinstance(store, FileStore)
    path = store.root / kept.key
    path.unlink()
    (path / "in-the-way").mkdir(parents=True)  # a directory where the file was: unlink fails

    failed_run = delete_expired_outputs(ctx, now)
    with ctx.store.begin() as conn:
        still_due = get_output(conn, kept.job_id)
    (path / "in-the-way").rmdir()
    path.rmdir()
    next_run = delete_expired_outputs(ctx, now)

    assert failed_run == 0
    assert "could not delete" in caplog.text
    assert still_due is not None and still_due.deleted_at is None
    assert next_run == 1
