"""Who may call what: bearer keys, public endpoints, per-account isolation, key storage,
the account and catalog views, and paging through one's own generations."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from falcon import testing

from backend import ids
from backend.accounts import NewAccount, create_account
from backend.context import Context
from backend.store.tables import api_keys

GENERATIONS = "/v1/video/generations"


def bearer(account: NewAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


def submit(api: testing.TestClient, headers: dict[str, str], **fields: object) -> dict:
    body = {"model": "kling-v3", "prompt": "Product reveal on white", "duration": "5s", **fields}
    result = api.simulate_post(GENERATIONS, json=body, headers=headers)
    assert result.status_code == 202, result.text
    return result.json


def assert_problem(result: testing.Result, status: int) -> dict:
    assert result.status_code == status, result.text
    assert result.headers["content-type"] == "application/problem+json"
    problem = result.json
    assert problem["status"] == status and problem["type"].startswith("urn:genhook:problem:")
    return problem


@pytest.fixture
def jobs_stay_pending(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keep submitted jobs out of the broker, so they stay pending even if a worker happens
    to be consuming in this process; returns the ids that would have been enqueued."""
    enqueued: list[str] = []
    monkeypatch.setattr(ctx.queue, "submit_job", lambda job_id, **_: enqueued.append(job_id))
    return enqueued


# --- Authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer gh_not-a-real-key"}, id="wrong-key"),
        pytest.param({"Authorization": "Bearer "}, id="empty-key"),
    ],
)
def test_a_missing_or_wrong_key_is_401_with_a_bearer_challenge(
    api: testing.TestClient, account: NewAccount, headers: dict[str, str]
) -> None:
    result = api.simulate_get("/v1/account", headers=headers)
    assert_problem(result, 401)
    assert result.headers["www-authenticate"].startswith("Bearer ")


def test_a_valid_key_under_the_basic_scheme_is_401(
    api: testing.TestClient, account: NewAccount
) -> None:
    # Given a real key, sent with the wrong scheme
    result = api.simulate_get("/v1/account", headers={"Authorization": f"Basic {account.api_key}"})
    assert_problem(result, 401)


def test_the_same_key_under_bearer_is_accepted(
    api: testing.TestClient, account: NewAccount
) -> None:
    # Control for the test above: only the scheme differs
    result = api.simulate_get("/v1/account", headers={"Authorization": f"bearer {account.api_key}"})
    assert result.status_code == 200, result.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/readyz", 200),
        ("GET", "/v1/models", 200),
        ("GET", "/openapi.json", 200),
        ("POST", "/v1/signup", 201),
    ],
)
def test_public_endpoints_work_without_a_key(
    api: testing.TestClient, method: str, path: str, status: int
) -> None:
    body = {"email": "new@example.com"} if method == "POST" else None
    result = api.simulate_request(method, path, json=body)
    assert result.status_code == status, result.text


def test_api_keys_are_stored_only_as_their_sha256(ctx: Context, account: NewAccount) -> None:
    with ctx.store.begin() as conn:
        row = conn.execute(
            sa.select(api_keys).where(api_keys.c.account_id == account.account.id)
        ).one()
    assert account.api_key not in [str(value) for value in row]
    assert row.key_hash == hashlib.sha256(account.api_key.encode()).hexdigest()


# --- Isolation between accounts ------------------------------------------------------------


def test_another_accounts_job_looks_exactly_like_a_missing_one(
    api: testing.TestClient, ctx: Context, account: NewAccount, jobs_stay_pending: list[str]
) -> None:
    # Given account A has a job, and account B exists
    job_id = submit(api, bearer(account))["id"]
    other = create_account(ctx, "other@example.com")
    missing_id = ids.job_id()

    # When B asks for A's job, and for an id that does not exist
    theirs = api.simulate_get(f"{GENERATIONS}/{job_id}", headers=bearer(other))
    nothing = api.simulate_get(f"{GENERATIONS}/{missing_id}", headers=bearer(other))

    # Then both are the same 404, up to the id
    assert_problem(theirs, 404)
    assert theirs.text.replace(job_id, "<id>") == nothing.text.replace(missing_id, "<id>")


def test_another_accounts_job_is_not_in_my_list(
    api: testing.TestClient, ctx: Context, account: NewAccount, jobs_stay_pending: list[str]
) -> None:
    # Given account A has a job (and sees it), and account B exists
    job_id = submit(api, bearer(account))["id"]
    mine = api.simulate_get(GENERATIONS, headers=bearer(account)).json
    assert [g["id"] for g in mine["data"]] == [job_id]
    other = create_account(ctx, "other@example.com")

    # When B lists its generations, then the list is empty
    theirs = api.simulate_get(GENERATIONS, headers=bearer(other))
    assert theirs.status_code == 200, theirs.text
    assert theirs.json["data"] == [] and theirs.json["has_more"] is False


# --- Account and catalog -------------------------------------------------------------------


def test_the_account_shows_its_email_and_signup_balance(
    api: testing.TestClient, account: NewAccount, auth: dict[str, str]
) -> None:
    result = api.simulate_get("/v1/account", headers=auth)
    assert result.status_code == 200, result.text
    shown = result.json
    assert (shown["id"], shown["email"], shown["credits"]) == (
        account.account.id,
        "builder@example.com",
        50,
    )


def test_the_account_balance_reflects_a_charge(
    api: testing.TestClient, auth: dict[str, str], jobs_stay_pending: list[str]
) -> None:
    # Given a kling-v3 5 s job (3 credits) was submitted
    submit(api, auth)
    # Then the account shows 50 - 3
    assert api.simulate_get("/v1/account", headers=auth).json["credits"] == 47


def test_the_catalog_lists_every_model_with_prices_and_inputs(api: testing.TestClient) -> None:
    result = api.simulate_get("/v1/models")
    assert result.status_code == 200, result.text
    models = {m["id"]: m for m in result.json["data"]}
    assert {"kling-v3", "seedance-1-pro", "kling-o3-pro", "luma-ray-2"} <= set(models)
    assert models["kling-v3"]["credits"]["5s"] == 3
    assert models["kling-v3"]["inputs"] == ["text", "image", "end_image"]
    assert models["kling-v3"]["available"] is True


# --- Listing and paging ---------------------------------------------------------------------


@pytest.fixture
def five_jobs(
    api: testing.TestClient, auth: dict[str, str], jobs_stay_pending: list[str]
) -> list[str]:
    """Five pending jobs, newest first."""
    created = [submit(api, auth, prompt=f"Shot {n}")["id"] for n in range(5)]
    return created[::-1]


def test_a_page_is_newest_first_and_says_there_is_more(
    api: testing.TestClient, auth: dict[str, str], five_jobs: list[str]
) -> None:
    page = api.simulate_get(GENERATIONS, params={"limit": "2"}, headers=auth).json
    assert [g["id"] for g in page["data"]] == five_jobs[:2]
    assert page["has_more"] is True and page["next_cursor"]


def test_following_cursors_yields_every_job_once_newest_first(
    api: testing.TestClient, auth: dict[str, str], five_jobs: list[str]
) -> None:
    # When the client follows next_cursor from the first page of 2 to the end
    seen: list[str] = []
    pages: list[tuple[int, bool]] = []
    params = {"limit": "2"}
    while True:
        page = api.simulate_get(GENERATIONS, params=params, headers=auth).json
        seen += [g["id"] for g in page["data"]]
        pages.append((len(page["data"]), page["has_more"]))
        if page["next_cursor"] is None:
            break
        params = {"limit": "2", "cursor": page["next_cursor"]}

    # Then it saw all five jobs exactly once, newest first, in pages of 2, 2 and 1
    assert seen == five_jobs
    assert pages == [(2, True), (2, True), (1, False)]


@pytest.mark.parametrize(("status", "expected"), [("pending", 5), ("completed", 0)])
def test_the_list_filters_by_status(
    api: testing.TestClient, auth: dict[str, str], five_jobs: list[str], status: str, expected: int
) -> None:
    page = api.simulate_get(GENERATIONS, params={"status": status}, headers=auth).json
    assert [g["id"] for g in page["data"]] == five_jobs[:expected]


# --- Falcon's own errors ---------------------------------------------------------------------


def test_an_unknown_route_is_a_404_problem(api: testing.TestClient) -> None:
    assert_problem(api.simulate_get("/v1/nothing-here"), 404)


def test_a_wrong_method_is_a_405_problem_listing_the_allowed_ones(
    api: testing.TestClient, auth: dict[str, str]
) -> None:
    result = api.simulate_delete(GENERATIONS, headers=auth)
    assert_problem(result, 405)
    assert {m.strip() for m in result.headers["allow"].split(",")} >= {"GET", "POST"}
