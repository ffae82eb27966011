"""Slow clients cannot take the API down (issue 11, finding 5).

Given the real API under real gunicorn with genhook's worker and short limits, when one
client address opens many connections and sends half a request line, trickles its headers,
sends its headers then a slow body, or holds kept-alive connections open, then ``/healthz``
and an authenticated request from another client still answer at once, the slow
connections are closed within their bounds, and the client past its connection cap is
answered 429. Before the fix (gunicorn's sync worker, no limits) ``/healthz`` timed out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import make_settings
from tests.support.slow_clients import (
    RunningApi,
    answer_of,
    closed_by_server,
    one_answer,
    running_api,
    slow_socket,
    timed_get,
)

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
BODY_MIN_RATE = 1000.0  # bytes per second
KEEPALIVE = 1.0
WRITE_TIMEOUT = 1.0
PER_CLIENT = 8
#: The event loop checks deadlines once a second; a loaded machine adds a little more.
SLACK = 1.6
#: What "at once" means for a well-behaved request here (a slow one never answers).
PROMPT = 1.0

POST_HEAD = (
    b"POST /v1/video/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
)


@pytest.fixture
def api(database_url: str, redis_url: str) -> Iterator[RunningApi]:
    settings = make_settings(
        database_url,
        redis_url,
        "http://127.0.0.1:9",
        api_threads=4,
        api_header_timeout_seconds=HEADER_TIMEOUT,
        api_body_timeout_seconds=BODY_TIMEOUT,
        api_body_min_bytes_per_second=BODY_MIN_RATE,
        api_keepalive_seconds=KEEPALIVE,
        api_write_timeout_seconds=WRITE_TIMEOUT,
        api_max_connections_per_client=PER_CLIENT,
    )
    with running_api(settings) as running:
        yield running


def assert_api_answers_promptly(api: RunningApi, *, during: float) -> None:
    """``/healthz`` and an authenticated read, again and again for ``during`` seconds."""
    auth = {"Authorization": f"Bearer {api.api_key}"}
    until = time.monotonic() + during
    while time.monotonic() < until:
        for path, headers, expected in (("/healthz", None, 200), ("/v1/account", auth, 200)):
            status, took = timed_get(api.url + path, headers)
            assert (status, took < PROMPT) == (expected, True), f"{path}: {status} in {took:.2f}s"
        time.sleep(0.2)


def trickle(sock, data: bytes, interval: float, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    """Send ``data`` a byte at a time, one every ``interval``, until done or closed."""
    for byte in data:
        if stop.wait(interval):
            return
        try:
            sock.send(bytes([byte]))
        except OSError:
            return


def test_a_slowloris_from_one_client_neither_stops_the_api_nor_outlives_its_bounds(
    api: RunningApi,
) -> None:
    # Given one client's connections, each slow its own way, up to its cap
    began = time.monotonic()
    half_line = [slow_socket(api.port, b"POST /v1/video/generat") for _ in range(3)]
    nothing = [slow_socket(api.port) for _ in range(2)]
    headers_then_stall = [slow_socket(api.port, POST_HEAD % 500 + b'{"model":') for _ in range(1)]
    trickling = [slow_socket(api.port, b"G") for _ in range(2)]
    stop = threading.Event()
    for sock in trickling:
        head = b"ET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200
        threading.Thread(target=trickle, args=(sock, head, 0.1, stop), daemon=True).start()
    # and more connections than its cap
    over_cap = [slow_socket(api.port, b"GET /healthz HT") for _ in range(4)]
    try:
        # then the API answers everyone else at once, throughout
        assert_api_answers_promptly(api, during=HEADER_TIMEOUT + SLACK)
        # the connections past the cap were answered 429 and closed at once
        for sock in over_cap:
            assert answer_of(sock, timeout=2).startswith(b"HTTP/1.1 429 ")
        # and every slow connection is closed within the header bound, the trickling ones
        # too although bytes kept coming; those that sent something were told 408
        deadline = began + HEADER_TIMEOUT + SLACK
        slow = half_line + nothing + headers_then_stall + trickling
        while time.monotonic() < deadline and not all(closed_by_server(s) for s in slow):
            time.sleep(0.1)
        still_open = [s.getsockname() for s in slow if not closed_by_server(s)]
        assert not still_open, f"open past {HEADER_TIMEOUT + SLACK}s: {still_open}"
    finally:
        stop.set()
        for sock in half_line + nothing + headers_then_stall + trickling + over_cap:
            sock.close()


def test_a_half_sent_request_is_answered_408_when_its_headers_run_out_of_time(
    api: RunningApi,
) -> None:
    sock = slow_socket(api.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    began = time.monotonic()
    answer = answer_of(sock, timeout=HEADER_TIMEOUT + SLACK + 1)
    took = time.monotonic() - began
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"headers did not arrive within 1 s" in answer
    assert HEADER_TIMEOUT - 0.1 < took < HEADER_TIMEOUT + SLACK


def test_a_body_slower_than_the_minimum_rate_is_cut_and_a_steady_one_is_served(
    api: RunningApi,
) -> None:
    auth = f"Authorization: Bearer {api.api_key}\r\n".encode()
    body = b'{"model": "no-such-model", "prompt": "' + b"p" * 1400 + b'"}'
    head = (POST_HEAD % len(body)).replace(b"\r\n\r\n", b"\r\n" + auth + b"\r\n")

    # Given a body trickling at 100 bytes per second (the minimum is 1,000)
    crawling = slow_socket(api.port, head)
    stop = threading.Event()
    threading.Thread(
        target=lambda: [
            stop.wait(0.5) or crawling.send(body[i : i + 50]) for i in range(0, len(body), 50)
        ],
        daemon=True,
    ).start()
    # and one arriving at 2,000 bytes per second: longer than the body timeout, but steady
    steady = slow_socket(api.port, head)
    for i in range(0, len(body), 200):
        time.sleep(0.1)
        steady.send(body[i : i + 200])
    try:
        # then the steady one reaches the application (which names the unknown model)
        assert b" 422 " in answer_of(steady, timeout=3).split(b"\r\n", 1)[0]
        # and the crawling one is refused once its allowance runs out, while the API answers
        assert_api_answers_promptly(api, during=0.5)
        answer = answer_of(crawling, timeout=BODY_TIMEOUT + 1.0 + SLACK)
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"request body did not arrive in time" in answer
    finally:
        stop.set()
        crawling.close()
        steady.close()


def test_kept_alive_connections_are_reused_then_closed_when_idle_and_never_block_others(
    api: RunningApi,
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    # Given as many idle kept-alive connections as one client may hold
    held = [slow_socket(api.port) for _ in range(PER_CLIENT)]
    for sock in held:
        for _ in range(2):  # each answers twice on the same connection
            sock.sendall(request)
            assert one_answer(sock, timeout=PROMPT).startswith(b"HTTP/1.1 200 OK")
    idle_since = time.monotonic()
    try:
        # then the API answers everyone else at once while they idle
        assert_api_answers_promptly(api, during=0.5)
        # and each is closed by the server once idle past the keep-alive time
        while time.monotonic() < idle_since + KEEPALIVE + SLACK:
            if all(closed_by_server(s) for s in held):
                break
            time.sleep(0.1)
        assert all(closed_by_server(s) for s in held)
    finally:
        for sock in held:
            sock.close()


def test_a_client_that_reads_none_of_its_answers_is_dropped_after_the_write_timeout(
    api: RunningApi,
) -> None:
    # Given clients with tiny receive windows that ask for 100 OpenAPI documents (12 MB)
    # in a row on one connection each, and read nothing
    request = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    readers = [slow_socket(api.port, request * 100, receive_buffer=4096) for _ in range(3)]
    try:
        # then the API answers everyone else at once while their answers are stuck
        assert_api_answers_promptly(api, during=WRITE_TIMEOUT + SLACK)
        # and it gave up on each: what they can still read ends well before 100 answers
        for sock in readers:
            received = answer_of(sock, timeout=5)
            assert b"HTTP/1.1 200 OK" in received
            assert received.count(b"HTTP/1.1 200 OK") < 100
            assert closed_by_server(sock)
    finally:
        for sock in readers:
            sock.close()


def test_a_body_announced_too_large_is_a_413_before_it_is_sent(api: RunningApi) -> None:
    sock = slow_socket(api.port, POST_HEAD % (100 * 1024 * 1024))
    try:
        answer = answer_of(sock, timeout=PROMPT)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_a_client_that_expects_100_continue_is_told_once_then_answered(api: RunningApi) -> None:
    body = b'{"model": "no-such-model", "prompt": "a cat"}'
    head = (POST_HEAD % len(body)).replace(
        b"\r\n\r\n",
        f"\r\nExpect: 100-continue\r\nAuthorization: Bearer {api.api_key}\r\n\r\n".encode(),
    )
    sock = slow_socket(api.port, head)
    try:
        sock.settimeout(PROMPT)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        answer = one_answer(sock, timeout=PROMPT)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 422 ")
