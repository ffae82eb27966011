"""One log format for every genhook process."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT)
    quiet_libraries()


def quiet_libraries() -> None:
    """Keep libraries' per-request INFO lines out: genhook logs each step itself (one line
    per webhook attempt, say), and Dramatiq's workers configure logging on their own."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def redacted_url(url: str) -> str:
    """``url`` fit for a log line: no userinfo, no query (webhook URLs often carry a token
    there), no fragment; scheme, host, port and path stay, so the line still says where."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "<unparsable URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))
