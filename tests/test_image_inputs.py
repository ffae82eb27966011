"""Image inputs at the unit level: genhook vets every URL itself (the guarded transport is
a second line, not the only one), and a link stops working when it expires."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from backend.errors import ValidationFailed
from backend.images import links
from backend.images.checked import check_image_source
from backend.settings import Settings
from backend.store.images import ImageRecord
from tests.providers.conftest import png

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


class Recorder:
    """A mock transport: answers by path, and remembers every request it was asked."""

    def __init__(self, redirects: dict[str, str] | None = None) -> None:
        self.redirects = redirects or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path in self.redirects:
            return httpx.Response(302, headers={"Location": self.redirects[request.url.path]})
        return httpx.Response(200, content=png(), headers={"Content-Type": "image/png"})


def check(url: str, recorder: Recorder) -> None:
    settings = Settings.model_validate({"webhook_allowed_networks": LOOPBACK})
    with httpx.Client(transport=httpx.MockTransport(recorder)) as client:
        check_image_source(
            url,
            field="image_url",
            settings=settings,
            allowed=settings.webhook_allowed_networks,
            client=client,
        )


def test_a_private_image_url_is_refused_before_any_request_is_made() -> None:
    recorder = Recorder()

    with pytest.raises(ValidationFailed) as refused:
        check("http://169.254.169.254/latest/a.png", recorder)

    assert refused.value.errors[0].field == "image_url"
    assert recorder.requests == []


def test_a_redirect_to_a_private_address_is_vetted_by_genhook_itself() -> None:
    recorder = Recorder(redirects={"/a.png": "http://10.0.0.7/inside.png"})

    with pytest.raises(ValidationFailed):
        check("http://127.0.0.1:8123/a.png", recorder)

    assert [str(r.url) for r in recorder.requests] == ["http://127.0.0.1:8123/a.png"]


def test_an_allowed_redirect_is_followed() -> None:
    recorder = Recorder(redirects={"/a.png": "/b.png"})

    check("http://127.0.0.1:8123/a.png", recorder)

    assert [r.url.path for r in recorder.requests] == ["/a.png", "/b.png"]


def image_record() -> ImageRecord:
    now = datetime.now(UTC)
    return ImageRecord(
        id="img_1", account_id="acct_1", content_type="image/png", width=640, height=360,
        size_bytes=3, sha256="0" * 64, data=b"png", link_key=links.new_link_key(),
        created_at=now,
    )  # fmt: skip


def test_a_genuine_link_opens_until_it_expires_and_not_after() -> None:
    image = image_record()
    now = datetime.now(UTC)
    expires = int(now.timestamp()) + 60
    genuine = links.signature(image.id, image.link_key, expires)

    assert links.link_is_valid(image, expires, genuine, now)
    assert not links.link_is_valid(image, expires, genuine, now + timedelta(seconds=61))
    assert not links.link_is_valid(image, expires + 1, genuine, now)
    other_key = links.signature(image.id, links.new_link_key(), expires)
    assert not links.link_is_valid(image, expires, other_key, now)
