"""The SSRF guard end to end: genhook must never be turned against a private network.

A webhook URL is checked when it is submitted or registered (422), and again at delivery
time against the address actually connected to, so a name that changes its answer (DNS
rebinding), a redirect, or an operator who narrowed the allowed networks cannot get a
request through. Receivers are real HTTP servers on 127.0.0.0/8 (Linux routes all of it
to loopback); DNS answers that cannot be produced on this machine come from a scripted
stand-in for the DNS server, never from a stand-in for genhook's own code.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import pytest
import sqlalchemy as sa
from falcon import testing

from backend.accounts import NewAccount
from backend.api.app import create_app
from backend.context import Context, build_context
from backend.errors import UnsafeWebhookTarget
from backend.jobs import finish
from backend.jobs.create import create_generation
from backend.jobs.deliver import deliver
from backend.schemas.generations import GenerationCreate
from backend.settings import Settings
from backend.store import accounts as accounts_store
from backend.store import deliveries as deliveries_store
from backend.store import endpoints as endpoints_store
from backend.store.deliveries import MAX_LOGGED_BODY_CHARS, AttemptRecord, DeliveryRecord
from backend.store.tables import credit_ledger, jobs
from backend.webhooks.guarded_transport import guarded_client
from backend.webhooks.url_guard import IPAddress, check_url
from tests.support.receiver import Reply, WebhookReceiver
from tests.support.wsgi_server import serve_wsgi

GENERATIONS = "/v1/video/generations"
ENDPOINTS = "/v1/webhook-endpoints"
SIGNUP_CREDITS = 50
#: An address outside every private range (example.com's, once); never connected to here.
PUBLIC_ADDRESS = "93.184.216.34"


# --- Contexts, jobs and deliveries -------------------------------------------------------


def allowing(settings: Settings, *cidrs: str) -> Context:
    """A process context whose operator allows webhooks to exactly ``cidrs``."""
    networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
    changed = settings.model_copy(update={"webhook_allowed_networks": networks})
    return build_context(changed, broker=dramatiq.get_broker())


@pytest.fixture
def closed(settings: Settings) -> Iterator[Context]:
    """The same database and Redis as ``ctx``, but the operator allows no private network."""
    context = allowing(settings)
    yield context
    context.close()


@pytest.fixture
def loopback_one(settings: Settings) -> Iterator[Context]:
    """The same database and Redis as ``ctx``, allowing 127.0.0.1 and nothing else."""
    context = allowing(settings, "127.0.0.1/32")
    yield context
    context.close()


def new_job(ctx: Context, account: NewAccount, webhook_url: str) -> str:
    request = GenerationCreate(model="kling-v3", prompt="p", webhook_url=webhook_url)
    return create_generation(ctx, account.account.id, request).id


def ended_with_delivery(ctx: Context, job_id: str) -> str:
    """End the job (a render failure is the quickest end), which writes its webhook
    delivery to the outbox; returns that delivery's id."""
    finish.fail(ctx, job_id, code="render_failed", message="the render farm gave up")
    with ctx.store.begin() as conn:
        (delivery,) = deliveries_store.deliveries_for_job(conn, job_id)
    return delivery.id


def delivery_of(ctx: Context, delivery_id: str) -> DeliveryRecord:
    with ctx.store.begin() as conn:
        delivery = deliveries_store.get_delivery(conn, delivery_id)
    assert delivery is not None
    return delivery


def attempts_of(ctx: Context, delivery_id: str) -> list[AttemptRecord]:
    with ctx.store.begin() as conn:
        return deliveries_store.attempts_for(conn, [delivery_id])[delivery_id]


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


# --- 1. Submission and registration: every non-public target is a 422 ------------------

NON_PUBLIC_URLS = [
    pytest.param("http://127.0.0.1/hook", id="loopback"),
    pytest.param("http://localhost/hook", id="localhost-name"),
    pytest.param("http://[::1]/hook", id="ipv6-loopback"),
    pytest.param("http://10.0.0.1/hook", id="private-10"),
    pytest.param("http://172.16.0.1/hook", id="private-172.16"),
    pytest.param("http://192.168.1.1/hook", id="private-192.168"),
    pytest.param("http://169.254.169.254/latest/meta-data/", id="cloud-metadata"),
    pytest.param("http://100.64.0.1/hook", id="carrier-grade-nat"),
    pytest.param("http://0.0.0.0/hook", id="unspecified"),
    pytest.param("http://[::ffff:127.0.0.1]/hook", id="ipv4-mapped-loopback"),
    pytest.param("http://[::ffff:10.0.0.1]/hook", id="ipv4-mapped-private"),
    pytest.param("http://224.0.0.1/hook", id="multicast"),
    pytest.param("http://240.0.0.1/hook", id="reserved"),
    pytest.param("http://[fe80::1]/hook", id="ipv6-link-local"),
    pytest.param("http://[fc00::1]/hook", id="ipv6-unique-local"),
]

NOT_WEBHOOK_URLS = [
    pytest.param("file:///etc/passwd", id="file-scheme"),
    pytest.param("ftp://files.example/hook", id="ftp-scheme"),
    pytest.param("gopher://gopher.example/1hook", id="gopher-scheme"),
    pytest.param("http:///hook", id="no-host"),
    pytest.param("https://:8443/hook", id="port-but-no-host"),
]


@pytest.fixture
def closed_api(closed: Context) -> testing.TestClient:
    return testing.TestClient(create_app(closed))


def assert_problem_naming(result: testing.Result, field: str) -> None:
    """The answer is a 422 problem (RFC 9457) that names ``field``."""
    assert result.status_code == 422, result.text
    assert result.headers["content-type"] == "application/problem+json"
    problem = result.json
    assert field in [error["field"] for error in problem["errors"]], problem
    assert problem["detail"].startswith(f"{field}:"), problem


def jobs_ledger_and_balance(ctx: Context, account: NewAccount) -> tuple[int, int, int]:
    """(the account's jobs, its ledger entries, its balance)."""
    account_id = account.account.id
    with ctx.store.begin() as conn:
        job_count = conn.execute(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.account_id == account_id)
        ).scalar_one()
        ledger_count = conn.execute(
            sa.select(sa.func.count())
            .select_from(credit_ledger)
            .where(credit_ledger.c.account_id == account_id)
        ).scalar_one()
        found = accounts_store.get_account(conn, account_id)
    assert found is not None
    return job_count, ledger_count, found.credits


def test_localhost_is_a_name_the_real_resolver_maps_to_loopback() -> None:
    # The "localhost-name" case below is only meaningful if this holds on the machine
    answers = {info[4][0] for info in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)}
    assert "127.0.0.1" in answers


@pytest.mark.parametrize("url", NON_PUBLIC_URLS + NOT_WEBHOOK_URLS)
def test_a_generation_with_a_non_public_webhook_is_422_and_costs_nothing(
    closed: Context,
    closed_api: testing.TestClient,
    account: NewAccount,
    auth: dict[str, str],
    url: str,
) -> None:
    # Given a server whose operator allows no private network, and an account with 50 credits
    # When the account submits a job whose webhook points at ``url``
    body = {"model": "kling-v3", "prompt": "Product reveal on white", "webhook_url": url}
    result = closed_api.simulate_post(GENERATIONS, json=body, headers=auth)

    # Then it gets a 422 problem naming webhook_url
    assert_problem_naming(result, "webhook_url")
    # And no job was written and no credit debited
    assert jobs_ledger_and_balance(closed, account) == (0, 1, SIGNUP_CREDITS)


@pytest.mark.parametrize("url", NON_PUBLIC_URLS + NOT_WEBHOOK_URLS)
def test_an_endpoint_with_a_non_public_url_is_422_and_not_registered(
    closed: Context,
    closed_api: testing.TestClient,
    account: NewAccount,
    auth: dict[str, str],
    url: str,
) -> None:
    # Given a server whose operator allows no private network
    # When the account registers an endpoint at ``url``
    result = closed_api.simulate_post(ENDPOINTS, json={"url": url}, headers=auth)

    # Then it gets a 422 problem naming url
    assert_problem_naming(result, "url")
    # And no endpoint was registered
    with closed.store.begin() as conn:
        assert endpoints_store.list_endpoints(conn, account.account.id) == []


# --- 2. Delivery checks the address actually connected to -------------------------------


@pytest.fixture
def refused_at_connect(
    ctx: Context,
    closed: Context,
    account: NewAccount,
    receiver: tuple[WebhookReceiver, str],
) -> tuple[WebhookReceiver, str]:
    """A job accepted while loopback was allowed, delivered after the operator allowed
    nothing; returns the receiver and the delivery id."""
    app, url = receiver
    # Given a job whose webhook on 127.0.0.1 passed the submit-time check (loopback allowed)
    job_id = new_job(ctx, account, f"{url}/hook")
    # And the job ended, so its webhook waits in the outbox
    delivery_id = ended_with_delivery(ctx, job_id)
    # When the delivery step runs in a process that allows no private network
    deliver(closed, delivery_id)
    return app, delivery_id


def test_a_delivery_to_a_refused_address_is_logged_with_that_address(
    closed: Context, refused_at_connect: tuple[WebhookReceiver, str]
) -> None:
    _, delivery_id = refused_at_connect

    # Then its one attempt is logged as refused, naming the address it would have reached
    (attempt,) = attempts_of(closed, delivery_id)
    assert attempt.response_status is None
    assert attempt.error is not None
    assert attempt.error.startswith("refused:") and "127.0.0.1" in attempt.error


def test_a_delivery_to_a_refused_address_sends_nothing(
    refused_at_connect: tuple[WebhookReceiver, str],
) -> None:
    app, _ = refused_at_connect

    # Then not even a connection's worth of request reached the receiver
    assert app.requests == []


def test_a_delivery_to_a_refused_address_fails_at_once_without_retries(
    closed: Context, refused_at_connect: tuple[WebhookReceiver, str]
) -> None:
    _, delivery_id = refused_at_connect

    # Then the delivery is failed after its first attempt, with nothing scheduled
    delivery = delivery_of(closed, delivery_id)
    assert (delivery.status, delivery.attempt_count, delivery.next_attempt_at) == (
        deliveries_store.FAILED,
        1,
        None,
    )


# --- 3. DNS rebinding: the client resolves for itself and vets that answer ---------------


class ScriptedDNS:
    """A stand-in for the DNS server: each query gets the next scripted answer (the last
    one repeats). Records the names it was asked for."""

    def __init__(self, *answers: list[str]) -> None:
        self._answers = deque(answers)
        self.queries: list[str] = []

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """The resolver signature ``guarded_client`` takes."""
        self.queries.append(host)
        answer = self._answers.popleft() if len(self._answers) > 1 else self._answers[0]
        return [ipaddress.ip_address(address) for address in answer]

    def getaddrinfo(self, host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple]:
        """The same answers in the shape of ``socket.getaddrinfo`` (what the submit-time
        check asks)."""
        return [
            (
                socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (str(address), port),
            )
            for address in self.resolve(host, port)
        ]


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_connect_time(
    receiver: tuple[WebhookReceiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, url = receiver
    target = f"http://rebind.example:{port_of(url)}/hook"
    # Given a DNS server that answers a public address first and 127.0.0.1 after that
    dns = ScriptedDNS([PUBLIC_ADDRESS], ["127.0.0.1"])
    # And the URL passed the submit-time check, with nothing private allowed
    with monkeypatch.context() as patched:
        patched.setattr(socket, "getaddrinfo", dns.getaddrinfo)
        check_url(target, [])

    # When the webhook client sends to it
    client = guarded_client([], resolve=dns.resolve)
    with client, pytest.raises(UnsafeWebhookTarget, match=r"127\.0\.0\.1"):
        client.post(target, content=b"{}")

    # Then the client asked DNS again rather than trusting the first answer, and refused
    # the second; the receiver listening on 127.0.0.1 got nothing
    assert dns.queries == ["rebind.example", "rebind.example"]
    assert app.requests == []


@contextmanager
def tripwire(host: str, port: int) -> Iterator[Callable[[], bool]]:
    """A listening socket nobody may connect to; yields a check of whether anyone did (the
    kernel completes a handshake into the accept queue whether or not we accept)."""
    with socket.create_server((host, port)) as listener:
        listener.setblocking(False)

        def tripped() -> bool:
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                return False
            connection.close()
            return True

        yield tripped


def test_of_several_answers_only_an_allowed_address_is_connected_to() -> None:
    # Given a receiver on 127.0.0.2, the only network the operator allows
    app = WebhookReceiver()
    with serve_wsgi(app, host="127.0.0.2") as url:
        port = port_of(url)
        # And a private service on 127.0.0.3 at the same port, which must never be reached
        with tripwire("127.0.0.3", port) as tripped:
            # And a name resolving to a private address, that service, then the receiver
            dns = ScriptedDNS(["10.0.0.1", "127.0.0.3", "127.0.0.2"])

            # When the webhook client sends to that name
            allowed = [ipaddress.ip_network("127.0.0.2/32")]
            with guarded_client(allowed, resolve=dns.resolve) as client:
                response = client.post(f"http://multi.example:{port}/hook", content=b"{}")

            # Then the receiver got the request and the private service not even a connection
            assert (response.status_code, len(app.requests)) == (200, 1)
            assert not tripped()


# --- 4. A redirect to a private address is not followed ----------------------------------


@pytest.fixture
def redirected(
    loopback_one: Context, account: NewAccount, receiver: tuple[WebhookReceiver, str]
) -> Iterator[tuple[WebhookReceiver, str]]:
    """A delivery to 127.0.0.1 answered with a redirect to a receiver on 127.0.0.2; returns
    that second receiver and the delivery id."""
    first, first_url = receiver
    second = WebhookReceiver()
    with serve_wsgi(second, host="127.0.0.2") as second_url:
        # Given a receiver on 127.0.0.1 (allowed) that redirects to one on 127.0.0.2 (not)
        first.reply(Reply("302 Found", [("Location", f"{second_url}/")], b""))
        delivery_id = ended_with_delivery(
            loopback_one, new_job(loopback_one, account, f"{first_url}/hook")
        )
        # When the delivery is attempted
        deliver(loopback_one, delivery_id)
        yield second, delivery_id


def test_a_redirect_to_a_private_address_is_not_followed(
    redirected: tuple[WebhookReceiver, str],
) -> None:
    second, _ = redirected

    # Then the receiver it pointed at never gets a request
    assert second.requests == []


def test_a_redirect_is_logged_with_its_status_as_a_failure(
    loopback_one: Context, redirected: tuple[WebhookReceiver, str]
) -> None:
    _, delivery_id = redirected

    # Then the attempt is logged with status 302 and an error, and nothing is delivered
    (attempt,) = attempts_of(loopback_one, delivery_id)
    assert attempt.response_status == 302
    assert attempt.error is not None and "redirect" in attempt.error
    assert delivery_of(loopback_one, delivery_id).status != deliveries_store.DELIVERED


# --- 5. A receiver's answer is read only as far as the log keeps --------------------------


class EndlessAnswer:
    """A WSGI app answering 200 with a 5 MiB body produced lazily, 64 KiB at a time with a
    pause before each next chunk (4 s for the whole body); counts the chunks taken."""

    CHUNK = b"x" * 64 * 1024
    CHUNKS = 80
    PAUSE_SECONDS = 0.05

    def __init__(self) -> None:
        self.taken = 0
        self.closed = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return self._body()

    def _body(self) -> Iterator[bytes]:
        try:
            for index in range(self.CHUNKS):
                if index:
                    time.sleep(self.PAUSE_SECONDS)
                self.taken += 1
                yield self.CHUNK
        finally:  # runs at the end, or early when the server fails to write to a closed peer
            self.closed.set()


@pytest.fixture
def endless(ctx: Context, account: NewAccount) -> Iterator[tuple[EndlessAnswer, str, float]]:
    """A delivery to a receiver with an endless answer; returns the receiver, the delivery
    id and how long the attempt took, in seconds."""
    app = EndlessAnswer()
    # (An account allowed private targets: only it sees what a loopback receiver answers.)
    with ctx.store.begin() as conn:
        accounts_store.set_allow_private_webhooks(conn, account.account.id, True)
    with serve_wsgi(app) as url:
        # Given a receiver whose answer would take 4 s to stream in full
        delivery_id = ended_with_delivery(ctx, new_job(ctx, account, f"{url}/hook"))
        # When the delivery is attempted
        started = time.monotonic()
        deliver(ctx, delivery_id)
        yield app, delivery_id, time.monotonic() - started


def test_the_log_keeps_the_first_256_bytes_of_a_huge_answer(
    ctx: Context, endless: tuple[EndlessAnswer, str, float]
) -> None:
    _, delivery_id, _ = endless

    # Then the logged response body is exactly its first 256 characters
    (attempt,) = attempts_of(ctx, delivery_id)
    assert attempt.response_body == "x" * MAX_LOGGED_BODY_CHARS == "x" * 256


def test_an_attempt_does_not_wait_for_the_rest_of_a_huge_answer(
    endless: tuple[EndlessAnswer, str, float],
) -> None:
    _, _, took = endless

    # Then the attempt is over long before the body could have been streamed
    assert took < 1.0


def test_the_rest_of_a_huge_answer_is_never_read(
    endless: tuple[EndlessAnswer, str, float],
) -> None:
    app, _, _ = endless

    # Then the receiver's server stops producing the body: the client hung up early
    assert app.closed.wait(timeout=EndlessAnswer.CHUNKS * EndlessAnswer.PAUSE_SECONDS)
    assert app.taken < EndlessAnswer.CHUNKS


# --- 6. The context's webhook client is the guarded one -----------------------------------


def test_the_context_webhook_client_refuses_loopback_when_nothing_is_allowed(
    closed: Context, receiver: tuple[WebhookReceiver, str]
) -> None:
    app, url = receiver

    # When the client build_context made for a closed operator posts to 127.0.0.1
    with pytest.raises(UnsafeWebhookTarget, match=r"127\.0\.0\.1"):
        closed.webhook_client.post(f"{url}/hook", content=b"{}")

    # Then it was refused before anything was sent
    assert app.requests == []


def test_the_context_webhook_client_reaches_loopback_where_it_is_allowed(
    ctx: Context, receiver: tuple[WebhookReceiver, str]
) -> None:
    # Given the test settings, which allow loopback (control for the test above)
    app, url = receiver

    # When the context's client posts to 127.0.0.1
    response = ctx.webhook_client.post(f"{url}/hook", content=b"{}")

    # Then the receiver got it
    assert (response.status_code, len(app.requests)) == (200, 1)
