"""The HTML a person sees when they open the link of a verification mail in a browser.

Opening the link (GET) changes nothing, so a mail scanner that fetches every link cannot
use it up; the page's button POSTs to the same address, which verifies the account and
shows its API key and signing secret, once. The pages load nothing and run no script.
"""

from __future__ import annotations

from html import escape
from typing import Any

import falcon

#: No script, no outside resource, no framing; the form posts only to genhook itself, and
#: the link's token never leaves in a Referer.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}"
    "code{background:#f3f3f3;padding:.2rem .4rem;word-break:break-all}"
    "button{font-size:1.1rem;padding:.6rem 1.2rem}"
)


def prefers_html(req: falcon.Request) -> bool:
    """A browser (``Accept: text/html,…``) rather than an API client (``*/*``, JSON)."""
    return req.client_prefers(["application/json", "text/html"]) == "text/html"


def write_page(resp: falcon.Response, status: int, title: str, body: str) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    for name, value in HEADERS.items():
        resp.set_header(name, value)
    resp.text = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def confirm_page(resp: falcon.Response) -> None:
    write_page(
        resp,
        200,
        "Confirm your genhook signup",
        "<p>Press the button to confirm this address. The next page shows your API key and "
        "webhook signing secret <strong>once</strong>: have somewhere safe to keep them.</p>"
        '<form method="post"><button type="submit">Confirm and show my API key</button></form>',
    )


def credentials_page(resp: falcon.Response, account: dict[str, Any]) -> None:
    write_page(
        resp,
        200,
        "Your genhook account is ready",
        f"<p>Account <code>{escape(str(account['id']))}</code> "
        f"({escape(str(account['email']))}), {int(account['credits'])} credits.</p>"
        "<p>Copy these now: they are <strong>not shown again</strong>, and genhook keeps only "
        "a hash of the API key.</p>"
        f"<p>API key<br><code>{escape(str(account['api_key']))}</code></p>"
        f"<p>Signing secret (verifies the webhooks genhook sends you)<br>"
        f"<code>{escape(str(account['signing_secret']))}</code></p>"
        "<p>Use the key as <code>Authorization: Bearer …</code>.</p>",
    )


def problem_page(resp: falcon.Response, status: int, title: str, detail: str) -> None:
    write_page(resp, status, title, f"<p>{escape(detail)}</p>")
