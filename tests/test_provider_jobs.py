"""Jobs through the real adapters: the API, a Dramatiq worker and the simulator's provider
dialects on 127.0.0.1, with images, callbacks, lost answers and provider errors.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator

import httpx
import pytest
from falcon import testing
from PIL import Image

from backend import bundled_redis
from backend.accounts import NewAccount, create_account
from backend.api.app import create_app
from backend.context import Context
from backend.settings import Settings
from backend.simulator.credentials import all_provider_settings
from backend.simulator.dialects.common import sample_video
from backend.store import accounts as accounts_store
from backend.store import provider_tasks as tasks_store
from tests.conftest import make_settings, wait_until
from tests.support.api import GENERATIONS, submit, wait_for_status
from tests.support.faults import CONTROL_HEADERS, inject_fault, renders
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.usefixtures("worker")


def png(
    width: int = 640, height: int = 360, image_format: str = "PNG", noise: bool = False
) -> bytes:
    """An image; ``noise`` makes it incompressible (big), a flat colour makes it tiny."""
    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), "navy")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def data_url(data: bytes, content_type: str = "image/png") -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


def tasks_of(ctx: Context, job_id: str) -> list[tasks_store.ProviderTaskRecord]:
    with ctx.store.begin() as conn:
        return tasks_store.tasks_of_job(conn, job_id)


def credits_of(ctx: Context, account: NewAccount) -> int:
    with ctx.store.begin() as conn:
        found = accounts_store.get_account(conn, account.account.id)
    assert found is not None
    return found.credits


@pytest.fixture
def api_port() -> int:
    return bundled_redis.free_port()


@pytest.fixture
def settings(database_url: str, redis_url: str, simulator: str, api_port: int) -> Settings:
    """Every provider enabled against its dialect; no native fallback; providers reach the
    API (for callbacks and image links) at a port served below."""
    return make_settings(
        database_url,
        redis_url,
        simulator,
        simulator_fallback=False,
        provider_timeout_seconds=1.0,
        provider_callback_poll_seconds=0.3,
        public_base_url=f"http://127.0.0.1:{api_port}",
        **all_provider_settings(simulator),
    )


@pytest.fixture
def live_api(ctx: Context, api_port: int) -> Iterator[str]:
    """The API on a real port, so the simulator can call back and fetch image links."""
    with serve_wsgi(create_app(ctx), port=api_port) as url:
        yield url


# -- text and image to video through a real adapter ------------------------------------------


def test_a_job_renders_through_the_kling_dialect_and_its_task_is_recorded(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, simulator: str
) -> None:
    # When a kling-v3 job is submitted with every provider configured
    job = submit(api, auth, model="kling-v3")

    # Then it completes through the Kling adapter, its video kept and served by genhook
    done = wait_for_status(api, auth, job["id"], "completed")
    link = httpx.URL(done["output_url"])
    served = api.simulate_get(link.path, query_string=link.query.decode())
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
    assert served.content == sample_video()
    assert done["progress"] == 100.0
    [render] = renders(simulator)
    assert render["dialect"] == "kling" and render["reference"] == job["id"]
    # ...and its one provider task is on record, succeeded
    [task] = tasks_of(ctx, job["id"])
    assert (task.provider, task.provider_model, task.state) == ("kling", "kling-v3", "succeeded")
    assert task.task_id is not None and task.task_id.startswith("text2video|")
    assert task.ended_at is not None
    assert task.cost == 1.0  # Kling's final_unit_deduction


@pytest.mark.parametrize(
    ("model", "dialect"),
    [
        ("seedance-1-pro", "byteplus"),
        ("kling-o3-pro", "fal"),
        ("wan-2.5", "replicate"),
        ("runway-gen4.5", "runway"),
        ("luma-ray-2", "luma"),
        ("veo-3.1-fast", "gemini"),
        ("hailuo-02", "minimax"),
    ],
)
def test_every_catalog_model_renders_through_its_provider(
    api: testing.TestClient,
    auth: dict[str, str],
    simulator: str,
    live_api: str,
    model: str,
    dialect: str,
) -> None:
    job = submit(api, auth, model=model, duration="10s")

    wait_for_status(api, auth, job["id"], "completed")
    [render] = renders(simulator)
    assert render["dialect"] == dialect


def test_an_image_to_video_job_sends_the_first_frame_from_a_data_url(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, simulator: str, live_api: str
) -> None:
    # Given a listing photo held by a no-code tool, sent inline
    photo = png(800, 600)

    # When it is submitted as the first frame
    job = submit(api, auth, model="kling-v3", image_url=data_url(photo))

    # Then genhook kept a checked copy and handed Kling a signed link to it
    assert job["image_id"].startswith("img_")
    wait_for_status(api, auth, job["id"], "completed")
    [render] = renders(simulator)
    link = render["image"].removeprefix("url:")
    assert link.startswith(f"{live_api}/v1/image-inputs/{job['image_id']}?expires=")
    fetched = httpx.get(link)
    assert fetched.status_code == 200 and fetched.content == photo
    assert fetched.headers["content-type"] == "image/png"
    # ...and the task went to Kling's image-to-video endpoint
    [task] = tasks_of(ctx, job["id"])
    assert task.task_id is not None and task.task_id.startswith("image2video|")


def test_a_tampered_or_expired_image_link_opens_nothing(
    api: testing.TestClient, auth: dict[str, str], simulator: str, live_api: str
) -> None:
    job = submit(api, auth, model="kling-v3", image_url=data_url(png()))
    wait_until(lambda: renders(simulator))
    link = renders(simulator)[0]["image"].removeprefix("url:")
    path, _, query = link.partition("?")
    params = dict(p.split("=") for p in query.split("&"))

    forged = f"{path}?expires={int(params['expires']) + 1}&signature={params['signature']}"
    expired = f"{path}?expires=1&signature={params['signature']}"
    other = link.replace(job["image_id"], "img_00000000000000000000000000")
    for url in (forged, expired, other, path):
        assert httpx.get(url).status_code in (404, 422), url


def test_without_a_public_address_images_go_inline(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, simulator: str
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"public_base_url": ""})

    job = submit(api, auth, model="kling-v3", image_url=data_url(png()))

    wait_for_status(api, auth, job["id"], "completed")
    [render] = renders(simulator)
    assert render["image"].startswith("base64:")
    assert render["callback_url"] is None


def test_an_image_url_is_fetched_and_checked_by_genhook(
    api: testing.TestClient, auth: dict[str, str], simulator: str, live_api: str
) -> None:
    # Given a photo on a (loopback, allowed in tests) web server
    photo = png(1024, 768, "JPEG")

    def photo_server(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "image/jpeg")])
        return [photo]

    end = png(1024, 768)
    with serve_wsgi(photo_server) as photos:
        job = submit(
            api,
            auth,
            model="seedance-1-pro",
            image_url=f"{photos}/front.jpg",
            end_image_url=data_url(end),
        )

    # Then the copy genhook keeps is what reaches the provider, both frames
    wait_for_status(api, auth, job["id"], "completed")
    [render] = renders(simulator)
    assert render["image"].startswith("url:") and render["end_image"].startswith("url:")
    first = httpx.get(render["image"].removeprefix("url:"))
    assert first.content == photo and first.headers["content-type"] == "image/jpeg"
    last = httpx.get(render["end_image"].removeprefix("url:"))
    assert last.content == end != photo and last.headers["content-type"] == "image/png"


BAD_IMAGES = [
    pytest.param({"image_url": "data:image/png;base64,not base64!"}, "image_url", id="bad-base64"),
    pytest.param({"image_url": data_url(b"GIF89a not really")}, "image_url", id="not-an-image"),
    pytest.param({"image_url": data_url(png(200, 200))}, "image_url", id="too-small"),
    pytest.param({"image_url": data_url(png(640, 360, "GIF"), "image/gif")}, "image_url", id="gif"),
    pytest.param({"image_url": data_url(png(1200, 300))}, "image_url", id="too-wide"),
    pytest.param({"image_url": "data:image/png,raw"}, "image_url", id="not-base64-form"),
    pytest.param({"image_url": "ftp://example.com/a.png"}, "image_url", id="ftp"),
    pytest.param(
        {"image_url": "http://169.254.169.254/latest/meta-data"}, "image_url", id="metadata-ip"
    ),
    pytest.param({"image_url": "http://127.0.0.1:9/nothing.png"}, "image_url", id="unreachable"),
    pytest.param(
        {"model": "wan-2.5", "end_image_url": data_url(png())},
        "end_image_url",
        id="model-takes-no-end-image",
    ),
    pytest.param(
        {"model": "veo-3.1-fast", "aspect_ratio": "1:1"}, "aspect_ratio", id="ratio-veo-lacks"
    ),
]


@pytest.mark.parametrize(("fields", "field"), BAD_IMAGES)
def test_a_bad_image_is_a_422_naming_the_field_and_charges_nothing(
    api: testing.TestClient,
    auth: dict[str, str],
    ctx: Context,
    account: NewAccount,
    fields: dict,
    field: str,
) -> None:
    before = credits_of(ctx, account)

    result = api.simulate_post(
        GENERATIONS, json={"model": "kling-v3", "prompt": "A loft", **fields}, headers=auth
    )

    assert result.status_code == 422, result.text
    assert [e["field"] for e in result.json["errors"]] == [field]
    assert credits_of(ctx, account) == before
    listed = api.simulate_get(GENERATIONS, headers=auth).json
    assert listed["data"] == []


def test_an_image_bigger_than_the_limit_is_refused(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"image_max_bytes": 300_000})
    big = png(400, 400, noise=True)
    assert len(big) > 300_000

    result = api.simulate_post(
        GENERATIONS,
        json={"model": "kling-v3", "prompt": "A loft", "image_url": data_url(big)},
        headers=auth,
    )

    assert result.status_code == 422 and result.json["errors"][0]["field"] == "image_url"


# -- callbacks ---------------------------------------------------------------------------------


def test_a_provider_callback_finishes_the_job_long_before_the_next_poll(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, simulator: str, live_api: str
) -> None:
    # Given polls every 60 s only: a callback is the only way to learn of the end in time
    ctx.settings = ctx.settings.model_copy(update={"provider_callback_poll_seconds": 60.0})

    job = submit(api, auth, model="luma-ray-2")

    # Then the job completes within seconds, woken by Luma's callback
    wait_for_status(api, auth, job["id"], "completed")
    sent = httpx.get(f"{simulator}/_sim/callbacks", headers=CONTROL_HEADERS).json()
    assert sent and all(c["response_status"] == 200 for c in sent)
    assert all("/v1/provider-callbacks/luma/" in c["url"] for c in sent)


def test_minimax_challenge_is_answered_through_the_callback_route(
    api: testing.TestClient, auth: dict[str, str], simulator: str, live_api: str
) -> None:
    job = submit(api, auth, model="hailuo-02")

    # The dialect refuses to create a task whose callback URL does not echo the challenge
    done = wait_for_status(api, auth, job["id"], "completed")
    assert done["status"] == "completed"
    assert renders(simulator)[0]["callback_url"].startswith(live_api)


def callback_url_of(simulator: str) -> str:
    wait_until(lambda: renders(simulator))
    url: str = renders(simulator)[0]["callback_url"]
    return url


def test_a_callback_with_a_bad_token_is_401_and_changes_nothing(
    api: testing.TestClient, auth: dict[str, str], simulator: str, live_api: str
) -> None:
    submit(api, auth, model="kling-v3")
    url = callback_url_of(simulator)
    body = json.dumps({"task_id": "x", "task_status": "succeed"})

    wrong_token = url[: url.rindex("/") + 1] + "A" * 43
    wrong_provider = url.replace("/kling/", "/luma/")
    for target in (wrong_token, wrong_provider):
        assert httpx.post(target, content=body).status_code == 401


def test_a_callback_about_another_task_is_401(
    api: testing.TestClient, auth: dict[str, str], simulator: str, live_api: str
) -> None:
    job = submit(api, auth, model="kling-v3")
    url = callback_url_of(simulator)
    wait_for_status(api, auth, job["id"], "processing")

    answer = httpx.post(url, json={"task_id": "rnd_someone_else", "task_status": "succeed"})

    assert answer.status_code == 401


def test_a_forged_replicate_callback_is_401(
    api: testing.TestClient, auth: dict[str, str], simulator: str, live_api: str
) -> None:
    submit(api, auth, model="wan-2.5")
    url = callback_url_of(simulator)
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
    }

    answer = httpx.post(url, json={"id": "whatever", "status": "succeeded"}, headers=headers)

    assert answer.status_code == 401


# -- lost answers and provider errors ----------------------------------------------------------


def test_a_lost_submit_answer_is_found_again_and_never_paid_twice(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, simulator: str
) -> None:
    # Given Kling creates the task but the answer never reaches genhook
    inject_fault(
        simulator, on="submit", kind="hang_after_create", dialect="kling", hang_seconds=1.5
    )

    job = submit(api, auth, model="kling-v3")

    # Then the job completes on the one task that was created, found by the job id
    wait_for_status(api, auth, job["id"], "completed")
    assert len(renders(simulator)) == 1
    states = [t.state.value for t in tasks_of(ctx, job["id"])]
    assert states == ["unknown", "succeeded"] or states == ["succeeded"]


def test_a_rate_limited_submit_fails_over_and_both_attempts_are_recorded(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, simulator: str
) -> None:
    inject_fault(simulator, on="submit", kind="rate_limited", dialect="byteplus")

    job = submit(api, auth, model="seedance-1-pro")

    done = wait_for_status(api, auth, job["id"], "completed")
    refused, succeeded = tasks_of(ctx, job["id"])
    assert (refused.provider, refused.state.value, refused.task_id) == ("byteplus", "refused", None)
    assert "RateLimitExceeded" in (refused.error or "")
    assert (succeeded.provider, succeeded.state.value) == ("replicate", "succeeded")
    assert (refused.route_index, succeeded.route_index) == (0, 1)
    assert done["failover_used"] is True and done["rendered_model"] == "seedance-1-pro"


def test_a_seedance_task_reports_its_tokens_as_cost(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    job = submit(api, auth, model="seedance-1-pro")

    wait_for_status(api, auth, job["id"], "completed")
    [succeeded] = tasks_of(ctx, job["id"])
    assert succeeded.provider == "byteplus"
    assert succeeded.cost == 108900  # Seedance's completion tokens


def test_our_account_out_of_balance_at_every_route_fails_the_job_and_refunds_it(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount, simulator: str
) -> None:
    # Given a Luma job whose only route, and its fallback's routes, are out of balance
    before = credits_of(ctx, account)
    for dialect in ("luma", "kling", "fal"):
        inject_fault(simulator, on="submit", kind="quota", dialect=dialect, times=50)

    job = submit(api, auth, model="luma-ray-2")

    failed = wait_for_status(api, auth, job["id"], "failed")
    assert failed["error"]["code"] == "no_route_available"
    assert failed["refunded"] is True and failed["credits_billed"] == 0
    assert credits_of(ctx, account) == before


def test_content_policy_mid_render_fails_with_the_reason(
    api: testing.TestClient, auth: dict[str, str], simulator: str
) -> None:
    inject_fault(simulator, on="render", kind="content_policy", dialect="runway")

    job = submit(api, auth, model="runway-gen4.5")

    failed = wait_for_status(api, auth, job["id"], "failed")
    assert failed["error"]["code"] == "content_policy"
    assert failed["refunded"] is True


def test_a_model_with_no_configured_provider_is_a_422(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    # Given neither Luma nor the providers of its fallback (kling-v3: Kling, fal) set up
    for name in ("luma", "kling", "fal"):
        del ctx.providers[name]

    result = api.simulate_post(
        GENERATIONS, json={"model": "luma-ray-2", "prompt": "A loft"}, headers=auth
    )

    assert result.status_code == 422 and result.json["errors"][0]["field"] == "model"
    models = {m["id"]: m for m in api.simulate_get("/v1/models").json["data"]}
    assert models["luma-ray-2"]["available"] is False


def test_another_account_cannot_open_a_job_image(
    api: testing.TestClient, auth: dict[str, str], ctx: Context
) -> None:
    job = submit(api, auth, model="kling-v3", image_url=data_url(png()))
    other = create_account(ctx, "other@example.com")

    seen = api.simulate_get(
        f"{GENERATIONS}/{job['id']}", headers={"Authorization": f"Bearer {other.api_key}"}
    )

    assert seen.status_code == 404


def test_a_forged_image_link_is_refused_whatever_text_its_signature_holds(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    job = submit(api, auth, model="kling-v3", image_url=data_url(png()))
    path = f"/v1/image-inputs/{job['image_id']}"

    for forged in ("0" * 64, "é" * 64):
        answer = api.simulate_get(path, query_string=f"expires=4102444800&signature={forged}")
        assert answer.status_code == 404, (forged, answer.text)


def test_an_account_that_cannot_pay_makes_genhook_fetch_nothing(
    api: testing.TestClient, ctx: Context
) -> None:
    # Given an account with no credits, and a server holding a photo
    asked: list[str] = []

    def photos(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
        asked.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "image/png")])
        return [png(800, 600)]

    poor = create_account(ctx, "poor@example.com", credits=0)
    with serve_wsgi(photos) as server:
        # When it submits an image-to-video job
        result = api.simulate_post(
            GENERATIONS,
            json={"model": "kling-v3", "prompt": "A loft", "image_url": f"{server}/a.png"},
            headers={"Authorization": f"Bearer {poor.api_key}"},
        )

    # Then it is told to top up, and the photo was never fetched
    assert result.status_code == 402
    assert asked == []


def test_an_image_redirect_is_followed_only_to_an_allowed_address(
    api: testing.TestClient, auth: dict[str, str], ctx: Context, account: NewAccount
) -> None:
    # Given a server that moves one photo to a new path, and another to the metadata address
    photo = png(800, 600)

    def photos(environ: dict, start_response) -> list[bytes]:  # type: ignore[no-untyped-def]
        moves = {"/old.png": "/new.png", "/sneaky.png": "http://169.254.169.254/latest"}
        if environ["PATH_INFO"] in moves:
            start_response("302 Found", [("Location", moves[environ["PATH_INFO"]])])
            return [b""]
        start_response("200 OK", [("Content-Type", "image/png")])
        return [photo]

    with serve_wsgi(photos) as server:
        # When each is submitted as a first frame
        moved = submit(api, auth, model="kling-v3", image_url=f"{server}/old.png")
        before = credits_of(ctx, account)
        sneaky = api.simulate_post(
            GENERATIONS,
            json={"model": "kling-v3", "prompt": "A loft", "image_url": f"{server}/sneaky.png"},
            headers=auth,
        )

    # Then the plain move is followed, and the one to a private address is refused
    assert moved["image_id"] is not None
    assert sneaky.status_code == 422 and sneaky.json["errors"][0]["field"] == "image_url"
    assert credits_of(ctx, account) == before
