"""GET /v1/video/generations/{id} is served from the Redis status cache, falls back to the
database, and never shows one account another's job."""

from __future__ import annotations

import dataclasses
import time

import sqlalchemy as sa
from falcon import testing

from backend import redis_keys
from backend.accounts import NewAccount, create_account
from backend.api.app import create_app
from backend.broker import build_broker
from backend.context import Context
from backend.jobs.states import JobStatus
from backend.queue import Queue
from backend.redis_client import connect
from backend.status_cache import StatusCache
from backend.store import jobs as jobs_store
from backend.store.tables import jobs

BODY = {"model": "kling-v3", "prompt": "original prompt", "duration": "5s"}


def submit(api: testing.TestClient, auth: dict[str, str]) -> str:
    result = api.simulate_post("/v1/video/generations", json=BODY, headers=auth)
    assert result.status_code == 202, result.text
    return str(result.json["id"])


def rewrite_prompt_in_database(ctx: Context, job_id: str, prompt: str) -> None:
    with ctx.store.begin() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(prompt=prompt))


def test_reads_come_from_the_cache_until_it_is_gone(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    # Given a job, and its row changed behind the cache's back
    job_id = submit(api, auth)
    rewrite_prompt_in_database(ctx, job_id, "changed in the database")

    # Then a read still shows the cached copy
    url = f"/v1/video/generations/{job_id}"
    assert api.simulate_get(url, headers=auth).json["prompt"] == "original prompt"

    # When the cache entry expires, the database answers and the cache is filled again
    ctx.redis.delete(redis_keys.job_status(job_id))
    assert api.simulate_get(url, headers=auth).json["prompt"] == "changed in the database"
    assert ctx.redis.exists(redis_keys.job_status(job_id)) == 1


def test_elapsed_time_moves_on_between_cached_reads(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    job_id = submit(api, auth)
    first = api.simulate_get(f"/v1/video/generations/{job_id}", headers=auth).json
    time.sleep(0.05)
    second = api.simulate_get(f"/v1/video/generations/{job_id}", headers=auth).json
    assert second["elapsed_seconds"] > first["elapsed_seconds"]
    assert second["eta_seconds"] < first["eta_seconds"]


def test_a_cached_job_is_not_shown_to_another_account(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    job_id = submit(api, auth)
    other = create_account(ctx, "other@example.com")
    result = api.simulate_get(
        f"/v1/video/generations/{job_id}", headers={"Authorization": f"Bearer {other.api_key}"}
    )
    assert result.status_code == 404


def test_with_redis_down_submissions_and_reads_still_work(
    ctx: Context, account: NewAccount, auth: dict[str, str]
) -> None:
    # Given an API whose Redis (cache and broker) cannot be reached
    dead = connect("redis://127.0.0.1:1/0")
    down = dataclasses.replace(
        ctx,
        settings=ctx.settings.model_copy(update={"admin_key": "operator-key"}),
        redis=dead,
        cache=StatusCache(dead, terminal_ttl_seconds=60),
        queue=Queue(build_broker("redis://127.0.0.1:1/0")),
    )
    api = testing.TestClient(create_app(down))

    # When a job is submitted and read
    result = api.simulate_post("/v1/video/generations", json=BODY, headers=auth)
    assert result.status_code == 202, result.text
    job_id = result.json["id"]

    # Then the database answered and holds the job
    read = api.simulate_get(f"/v1/video/generations/{job_id}", headers=auth)
    assert read.status_code == 200 and read.json["prompt"] == "original prompt"
    with ctx.store.begin() as conn:
        assert conn.execute(sa.select(jobs.c.status).where(jobs.c.id == job_id)).scalar_one()

    # And readiness tells the operator what is wrong
    ready = api.simulate_get("/readyz", headers={"Authorization": "Bearer operator-key"})
    assert ready.status_code == 503
    assert ready.json["checks"]["database"] == "ok"
    assert ready.json["checks"]["redis"].startswith("error")


def test_a_late_write_of_an_older_state_never_replaces_a_newer_one(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    # Given a worker read the job while it was pending
    job_id = submit(api, auth)
    with ctx.store.begin() as conn:
        pending = jobs_store.get_job(conn, job_id)
    assert pending is not None

    # When its owner cancels it, and only then the worker writes what it had read
    canceled = api.simulate_post(f"/v1/video/generations/{job_id}/cancel", headers=auth)
    assert canceled.status_code == 200
    ctx.cache.put(pending, ctx.now())

    # Then reads still show the newer state
    shown = api.simulate_get(f"/v1/video/generations/{job_id}", headers=auth).json
    assert shown["status"] == "canceled"


def test_a_worker_dying_between_its_commit_and_the_cache_write_leaves_no_old_state(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    # Given a job whose pending state is cached
    job_id = submit(api, auth)
    url = f"/v1/video/generations/{job_id}"
    assert api.simulate_get(url, headers=auth).json["status"] == "pending"

    # When a worker commits a new state and dies before it writes the cache
    with ctx.store.begin() as conn:
        moved = jobs_store.transition(conn, job_id, JobStatus.PROCESSING, provider_job_id="t-1")
    assert moved is not None

    # Then the very next read shows the committed state
    assert api.simulate_get(url, headers=auth).json["status"] == "processing"


def test_a_running_jobs_old_entry_is_checked_against_the_database(
    auth: dict[str, str], ctx: Context
) -> None:
    # Given a cache that checks running jobs' entries older than 0.2 s
    quick = dataclasses.replace(
        ctx, cache=StatusCache(ctx.redis, terminal_ttl_seconds=60, revalidate_seconds=0.2)
    )
    api = testing.TestClient(create_app(quick))
    job_id = submit(api, auth)
    url = f"/v1/video/generations/{job_id}"

    # When the row changes and the cache is not told (a Redis restored from an old
    # snapshot, a reader that cached the state just before a commit)
    rewrite_prompt_in_database(ctx, job_id, "changed in the database")

    # Then the entry is believed while it is fresh, and checked once it is older
    assert api.simulate_get(url, headers=auth).json["prompt"] == "original prompt"
    time.sleep(0.3)
    assert api.simulate_get(url, headers=auth).json["prompt"] == "changed in the database"


def test_a_finished_jobs_entry_is_not_read_again(auth: dict[str, str], ctx: Context) -> None:
    # Given a canceled job read through a cache that would check running jobs at once
    quick = dataclasses.replace(
        ctx, cache=StatusCache(ctx.redis, terminal_ttl_seconds=60, revalidate_seconds=0.01)
    )
    api = testing.TestClient(create_app(quick))
    job_id = submit(api, auth)
    url = f"/v1/video/generations/{job_id}"
    assert api.simulate_post(f"{url}/cancel", headers=auth).status_code == 200
    assert api.simulate_get(url, headers=auth).json["status"] == "canceled"

    # When its row changes behind the cache's back
    rewrite_prompt_in_database(ctx, job_id, "changed in the database")
    time.sleep(0.05)

    # Then the cached copy still answers: a finished job does not change
    assert api.simulate_get(url, headers=auth).json["prompt"] == "original prompt"
