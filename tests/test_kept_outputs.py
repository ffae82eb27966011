"""A finished video is copied into genhook's own storage before the job is announced, and
served from there by genhook's signed link, long after the provider's URL has expired.

Through the API, a Dramatiq worker, the real adapters and the simulator's dialects (whose
video downloads can be made to fail with ``download`` faults), on a local directory and
on a real S3-compatible server (moto on 127.0.0.1).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from falcon import testing

from backend import redis_keys
from backend.context import Context
from backend.jobs import sweep
from backend.settings import Settings
from backend.simulator.credentials import all_provider_settings
from backend.simulator.dialects.common import sample_video
from backend.storage import store_for
from backend.store import jobs as jobs_store
from tests.conftest import make_settings
from tests.support.api import submit, wait_for_status
from tests.support.faults import inject_fault
from tests.support.receiver import WebhookReceiver
from tests.support.s3_server import S3Server

pytestmark = pytest.mark.usefixtures("worker")

VIDEO = sample_video()


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "file":
        return {"storage_url": f"file://{tmp_path}/outputs"}
    server: S3Server = request.getfixturevalue("s3_server")
    return server.settings()


@pytest.fixture
def settings(
    database_url: str, redis_url: str, simulator: str, storage: dict[str, str]
) -> Settings:
    return make_settings(
        database_url,
        redis_url,
        simulator,
        simulator_fallback=False,
        output_copy_retry_schedule="0s,0.1s,0.2s",
        **storage,
        **all_provider_settings(simulator),
    )


def fetch(api: testing.TestClient, url: str, **headers: str) -> testing.Result:
    """GET one of genhook's output links, as a browser would (no API key)."""
    link = httpx.URL(url)
    return api.simulate_get(link.path, query_string=link.query.decode(), headers=headers)


def chain_event(job: dict, event: str) -> dict:
    [entry] = [e for e in job["status_chain"] if e.get("event") == event]
    return entry


def test_a_finished_video_is_kept_and_served_by_genhook_with_ranges(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, simulator: str
) -> None:
    job = submit(api, auth, model="kling-v3")

    done = wait_for_status(api, auth, job["id"], "completed")

    # The video is in genhook's store, and the provider's URL is kept in the chain
    stored = chain_event(done, "output_stored")
    assert stored["provider_output_url"].startswith(simulator)
    with ctx.store.begin() as conn:
        record = jobs_store.get_job(conn, job["id"])
    assert record is not None and record.output_key is not None
    assert store_for(ctx.settings).stat(record.output_key).size_bytes == len(VIDEO)  # type: ignore[union-attr]
    # When the provider's URL has expired (its CDN now answers 404)
    inject_fault(simulator, on="download", status=404, times=10)
    assert httpx.get(stored["provider_output_url"]).status_code == 404
    # Then genhook's link still serves the whole video, and any range of it
    whole = fetch(api, done["output_url"])
    assert whole.status_code == 200 and whole.content == VIDEO
    assert whole.headers["content-type"] == "video/mp4"
    part = fetch(api, done["output_url"], Range="bytes=4-11")
    assert part.status_code == 206 and part.content == VIDEO[4:12]
    assert part.headers["content-range"] == f"bytes 4-11/{len(VIDEO)}"


def test_a_failed_copy_is_retried_before_the_job_is_announced(
    api: testing.TestClient,
    auth: dict[str, str],
    simulator: str,
    receiver: tuple[WebhookReceiver, str],
) -> None:
    # Given the provider's CDN fails the first two downloads
    app, url = receiver
    inject_fault(simulator, on="download", kind="unavailable", times=2)

    job = submit(api, auth, model="kling-v3", webhook_url=url)

    # Then one completed webhook arrives, pointing at genhook's kept copy
    (hook,) = app.wait_for(1)
    payload = json.loads(hook.body)
    assert payload["event"] == "video.generation.completed"
    assert "/v1/outputs/" + job["id"] in payload["output_url"]
    assert payload["status_chain"][-1]["event"] == "output_stored"
    assert fetch(api, payload["output_url"]).content == VIDEO


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "unavailable", "times": 10},  # the CDN never comes back
        {"status": 404, "times": 1},  # refused outright: not retried
    ],
)
def test_when_the_copy_cannot_be_made_the_job_completes_with_the_providers_url(
    api: testing.TestClient,
    auth: dict[str, str],
    simulator: str,
    fault: dict[str, object],
) -> None:
    inject_fault(simulator, on="download", **fault)

    job = submit(api, auth, model="kling-v3")

    # The paid render is not lost: the job completes with the provider's own URL
    done = wait_for_status(api, auth, job["id"], "completed")
    kept_there = chain_event(done, "output_kept_at_provider")
    assert done["output_url"] == kept_there["provider_output_url"]
    assert done["output_url"].startswith(simulator)
    assert "HTTP" in kept_there["reason"]


def test_a_veo_video_is_downloaded_with_the_api_key_only_google_gets(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    # Veo's files/…:download URI answers 403 without x-goog-api-key
    job = submit(api, auth, model="veo-3.1-fast")

    done = wait_for_status(api, auth, job["id"], "completed")

    assert chain_event(done, "output_stored")["provider_output_url"].endswith("alt=media")
    assert fetch(api, done["output_url"]).content == VIDEO


def test_retention_deletes_old_videos_and_their_links_then_answer_410(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    job = submit(api, auth, model="kling-v3")
    done = wait_for_status(api, auth, job["id"], "completed")
    # Given the video was kept longer ago than the retention period
    days = ctx.settings.output_retention_days
    with ctx.store.begin() as conn:
        jobs_store.update_job(
            conn, job["id"], output_stored_at=ctx.now() - timedelta(days=days, hours=1)
        )
        key = jobs_store.get_job(conn, job["id"]).output_key  # type: ignore[union-attr]
    assert key is not None

    # When the sweep runs
    report = sweep.run_sweeps(ctx)

    # Then the file is gone from the store and its link says so
    assert report.outputs_deleted == 1
    assert store_for(ctx.settings).stat(key) is None
    assert fetch(api, done["output_url"]).status_code == 410
    # ...and so does the link a later read of the job signs
    ctx.cache.client.delete(redis_keys.job_status(job["id"]))
    again = api.simulate_get(f"/v1/video/generations/{job['id']}", headers=auth).json
    assert fetch(api, again["output_url"]).status_code == 410
