"""The credit ledger: ``GET /v1/account/ledger`` pages through every change of the balance,
and ``genhook accounts grant`` is how an operator adds or takes back credits.

After every scenario the balance equals the sum of the ledger (``balance()`` asserts it),
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import pytest
from falcon import testing

from backend import bundled_redis
from backend.accounts import NewAccount, create_account
from backend.api.app import create_app, openapi_document
from backend.context import Context
from backend.errors import InsufficientCredits, ValidationFailed
from backend.jobs import credits
from backend.ledger import grant_credits
from backend.store import Store
from backend.store import jobs as jobs_store
from backend.store.accounts import MAX_CREDITS
from tests.support.api import submit, wait_for_status
from tests.support.faults import inject_fault
from tests.support.ledger import balance

LEDGER = "/v1/account/ledger"
GENHOOK = str(Path(sys.executable).parent / "genhook")
START = 50  # the signup credits


def read_ledger(api: testing.TestClient, auth: dict[str, str], **params: object) -> dict:
    """One page of the ledger, as a client gets it."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    result = api.simulate_get(LEDGER, query_string=query, headers=auth)
    assert result.status_code == 200, result.text
    return dict(result.json)


def every_entry(api: testing.TestClient, auth: dict[str, str], limit: int) -> list[dict]:
    """The whole ledger, following ``next_cursor`` while ``has_more``."""
    entries: list[dict] = []
    cursor = None
    while True:
        page = read_ledger(api, auth, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert len(page["data"]) <= limit
        entries += page["data"]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return entries
        assert len(page["data"]) == limit
        cursor = page["next_cursor"]


def cursor_of(value: object) -> str:
    """A cursor shaped like the API's (base64url JSON) holding ``value``."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def bearer(account: NewAccount) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.api_key}"}


def genhook_grant(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``genhook accounts grant`` run as an operator would, against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENHOOK_")}
    env["GENHOOK_DATABASE_URL"] = database_url
    return subprocess.run(
        [GENHOOK, "accounts", "grant", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# -- paging ----------------------------------------------------------------------------------


def test_following_cursors_yields_every_entry_once_newest_first(
    ctx: Context, api: testing.TestClient, account: NewAccount, auth: dict[str, str]
) -> None:
    # Given 30 grants to this account, interleaved with another account's
    other = create_account(ctx, "other@example.com")
    for n in range(1, 31):
        grant_credits(ctx, account.account.email, n, f"top-up {n}")
        grant_credits(ctx, other.account.email, 100, "someone else's")

    # When the client follows the cursors 7 entries at a time
    entries = every_entry(api, auth, limit=7)

    # Then it sees the signup and every grant exactly once, newest first, none of the other's
    assert [e["note"] for e in entries] == [f"top-up {n}" for n in range(30, 0, -1)] + [None]
    assert [e["reason"] for e in entries] == ["grant"] * 30 + ["signup"]
    ids = [int(e["id"].removeprefix("led_")) for e in entries]
    assert ids == sorted(set(ids), reverse=True)
    # ...each with the balance right after it, the newest one's being the account's balance
    assert entries[0]["balance_after"] == balance(ctx, account) == START + sum(range(1, 31))
    assert entries[-1] == {**entries[-1], "delta": START, "balance_after": START}
    for newer, older in pairwise(entries):
        assert newer["balance_after"] == older["balance_after"] + newer["delta"]
    assert balance(ctx, other) == START + 30 * 100


def test_a_page_holds_20_entries_unless_told(
    ctx: Context, api: testing.TestClient, account: NewAccount, auth: dict[str, str]
) -> None:
    for n in range(25):
        grant_credits(ctx, account.account.email, 1, f"grant {n}")

    first = read_ledger(api, auth)

    assert len(first["data"]) == 20 and first["has_more"] is True
    assert first["data"][0]["note"] == "grant 24"
    rest = read_ledger(api, auth, cursor=first["next_cursor"])
    assert len(rest["data"]) == 6 and rest["has_more"] is False and rest["next_cursor"] is None
    assert balance(ctx, account) == START + 25


def test_a_new_account_has_its_signup_and_nothing_else(
    ctx: Context, api: testing.TestClient, account: NewAccount, auth: dict[str, str]
) -> None:
    page = read_ledger(api, auth)

    (signup,) = page["data"]
    assert signup["object"] == "ledger_entry" and signup["id"].startswith("led_")
    assert (signup["reason"], signup["delta"], signup["balance_after"]) == ("signup", START, START)
    assert signup["job_id"] is None and signup["note"] is None and signup["route_index"] is None
    assert page["has_more"] is False and page["next_cursor"] is None
    assert balance(ctx, account) == START


# -- isolation -------------------------------------------------------------------------------


def test_another_accounts_entries_and_cursor_show_nothing_of_theirs(
    ctx: Context, api: testing.TestClient, account: NewAccount, auth: dict[str, str]
) -> None:
    # Given another account with a job and many grants, and a cursor into its ledger
    other = create_account(ctx, "other@example.com")
    submit(api, bearer(other))
    for n in range(5):
        grant_credits(ctx, other.account.email, 1, f"theirs {n}")
    grant_credits(ctx, account.account.email, 2, "mine")
    theirs = every_entry(api, bearer(other), limit=100)
    their_ids = {e["id"] for e in theirs}
    their_cursor = read_ledger(api, bearer(other), limit=1)["next_cursor"]

    # When this account reads its ledger, and again with the other account's cursor
    mine = every_entry(api, auth, limit=100)
    with_their_cursor = read_ledger(api, auth, cursor=their_cursor)

    # Then it sees only its own entries either way
    assert [(e["reason"], e["note"]) for e in mine] == [("grant", "mine"), ("signup", None)]
    assert not their_ids & {e["id"] for e in mine + with_their_cursor["data"]}
    assert {e["id"] for e in with_their_cursor["data"]} <= {e["id"] for e in mine}
    assert len(theirs) == 7  # signup, debit and five grants
    assert balance(ctx, account) == START + 2
    assert balance(ctx, other) == START - 3 + 5


# -- what jobs write -------------------------------------------------------------------------


@pytest.mark.usefixtures("worker")
def test_a_completed_job_shows_its_debit(
    ctx: Context, api: testing.TestClient, account: NewAccount, auth: dict[str, str]
) -> None:
    job = submit(api, auth)
    wait_for_status(api, auth, job["id"], "completed")

    debit, signup = read_ledger(api, auth)["data"]

    assert (debit["reason"], debit["delta"], debit["job_id"]) == ("debit", -3, job["id"])
    assert debit["balance_after"] == START - 3 == balance(ctx, account)
    assert signup["reason"] == "signup"


@pytest.mark.usefixtures("worker")
def test_a_failed_job_shows_its_debit_and_its_refund(
    ctx: Context,
    api: testing.TestClient,
    account: NewAccount,
    auth: dict[str, str],
    simulator: str,
) -> None:
    # Given the provider fails the next render
    inject_fault(simulator, on="render", code="content_policy")

    job = submit(api, auth)
    wait_for_status(api, auth, job["id"], "failed")

    refund, debit, _ = read_ledger(api, auth)["data"]
    assert [(e["reason"], e["delta"], e["job_id"]) for e in (debit, refund)] == [
        ("debit", -3, job["id"]),
        ("refund", 3, job["id"]),
    ]
    assert (debit["balance_after"], refund["balance_after"]) == (START - 3, START)
    assert balance(ctx, account) == START


def test_a_failover_price_drop_names_its_route(
    ctx: Context, api: testing.TestClient, account: NewAccount, auth: dict[str, str]
) -> None:
    # Given a job charged 3 credits that a cheaper route (index 2, 2 credits) took over
    job = submit(api, auth)
    with ctx.store.begin() as conn:
        record = jobs_store.get_job(conn, job["id"])
        assert record is not None
        credits.reprice(conn, record, 2, 2)

    reprice = read_ledger(api, auth)["data"][0]

    assert (reprice["reason"], reprice["route_index"]) == ("reprice", 2)
    assert (reprice["delta"], reprice["job_id"]) == (1, job["id"])
    assert reprice["balance_after"] == START - 2 == balance(ctx, account)


# -- operator grants -------------------------------------------------------------------------


def test_a_grant_by_the_operator_appears_with_its_note(
    ctx: Context,
    api: testing.TestClient,
    account: NewAccount,
    auth: dict[str, str],
    database_url: str,
) -> None:
    # When the operator grants 25 credits
    done = genhook_grant(
        database_url,
        "--email",
        "Builder@Example.com",
        "--credits",
        "25",
        "--reason",
        "Pilot top-up, ticket 4821",
    )

    # Then the command prints the new balance
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert lines["granted"].strip() == "+25" and lines["credits"].strip() == str(START + 25)
    assert lines["account"].startswith(account.account.id)

    # And the client sees it in its ledger, and in its balance
    grant = read_ledger(api, auth)["data"][0]
    assert (grant["reason"], grant["delta"], grant["note"]) == (
        "grant",
        25,
        "Pilot top-up, ticket 4821",
    )
    assert grant["job_id"] is None and grant["balance_after"] == START + 25
    assert api.simulate_get("/v1/account", headers=auth).json["credits"] == START + 25
    assert balance(ctx, account) == START + 25


def test_a_correction_may_take_credits_back_but_never_below_zero(
    ctx: Context,
    api: testing.TestClient,
    account: NewAccount,
    auth: dict[str, str],
    database_url: str,
) -> None:
    # Given an account with 50 credits that the operator corrects down by 20
    taken = genhook_grant(
        database_url, "--email", account.account.email, "--credits", "-20", "--reason", "dup"
    )
    assert taken.returncode == 0, taken.stderr
    assert "credits         30" in taken.stdout

    # When the operator tries to take 31 more
    refused = genhook_grant(
        database_url, "--email", account.account.email, "--credits", "-31", "--reason", "oops"
    )

    # Then it is refused, saying why, and nothing is written
    assert refused.returncode == 1
    assert "below zero" in refused.stderr and "nothing was changed" in refused.stderr
    entries = read_ledger(api, auth)["data"]
    assert [(e["reason"], e["delta"], e["note"]) for e in entries] == [
        ("grant", -20, "dup"),
        ("signup", START, None),
    ]
    assert balance(ctx, account) == 30

    # And taking exactly what is left is allowed
    grant_credits(ctx, account.account.email, -30, "account closed")
    assert balance(ctx, account) == 0


def test_racing_corrections_never_take_the_balance_below_zero(
    ctx: Context, account: NewAccount
) -> None:
    # Given two operators each taking 30 of the account's 50 credits at the same moment
    def take(n: int) -> str:
        try:
            grant_credits(ctx, account.account.email, -30, f"correction {n}")
        except InsufficientCredits:
            return "refused"
        return "taken"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(take, range(2)))

    # Then one is refused, and the books still balance
    assert outcomes == ["refused", "taken"]
    assert balance(ctx, account) == START - 30


def test_a_grant_past_the_largest_balance_is_refused(ctx: Context, account: NewAccount) -> None:
    # Given an account holding the most credits a balance can hold
    grant_credits(ctx, account.account.email, MAX_CREDITS - START, "whale")

    # When one more is granted, it is refused naming the amount, and nothing changes
    with pytest.raises(ValidationFailed) as refused:
        grant_credits(ctx, account.account.email, 1, "one more")
    assert [e.field for e in refused.value.errors] == ["credits"]
    assert balance(ctx, account) == MAX_CREDITS


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--email", "nobody@example.com", "--credits", "5", "--reason", "x"], "no account"),
        (["--email", "builder@example.com", "--credits", "5", "--reason", "  "], "reason"),
        (["--email", "builder@example.com", "--credits", "0", "--reason", "x"], "credits"),
        (["--email", "builder@example.com", "--credits", "3000000000", "--reason", "x"], "credits"),
    ],
    ids=["unknown-email", "empty-reason", "zero", "too-many"],
)
def test_a_grant_the_command_cannot_make_is_refused_with_nothing_written(
    ctx: Context,
    account: NewAccount,
    database_url: str,
    args: list[str],
    says: str,
) -> None:
    refused = genhook_grant(database_url, *args)

    assert refused.returncode == 1, refused.stdout
    assert says in refused.stderr
    assert balance(ctx, account) == START


def test_a_grant_needs_a_reason(database_url: str) -> None:
    result = genhook_grant(database_url, "--email", "builder@example.com", "--credits", "5")

    assert result.returncode == 2 and "--reason" in result.stderr


# -- bad requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=many", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=" + cursor_of(["2025-05-14T09:30:00+00:00", "vgen_1"]), "cursor"),  # a job's
        ("cursor=" + cursor_of([-1]), "cursor"),
        ("cursor=" + cursor_of([1e99]), "cursor"),
        ("cursor=" + cursor_of([True]), "cursor"),
        ("cursor=" + cursor_of([10**40]), "cursor"),  # past any id the database can hold
        ("cursor=" + "A" * 513, "cursor"),
        ("since=2025-01-01", "since"),
    ],
)
def test_a_bad_limit_or_cursor_is_a_422_naming_the_field(
    ctx: Context,
    api: testing.TestClient,
    account: NewAccount,
    auth: dict[str, str],
    query: str,
    field: str,
) -> None:
    result = api.simulate_get(LEDGER, query_string=query, headers=auth)

    assert result.status_code == 422, result.text
    assert [e["field"] for e in result.json["errors"]] == [field]
    assert balance(ctx, account) == START


def test_the_ledger_needs_an_api_key(api: testing.TestClient) -> None:
    assert api.simulate_get(LEDGER).status_code == 401


def test_an_unreachable_database_is_a_503(ctx: Context, auth: dict[str, str]) -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{bundled_redis.free_port()}/genhook"
    down = testing.TestClient(create_app(dataclasses.replace(ctx, store=Store(nowhere))))

    result = down.simulate_get(LEDGER, headers=auth)

    assert result.status_code == 503 and result.headers["retry-after"] == "5"
    documented = openapi_document(ctx)["paths"][LEDGER]["get"]
    assert documented["operationId"] == "listLedger" and "503" in documented["responses"]
