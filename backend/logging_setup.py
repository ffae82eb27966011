"""One log format for every genhook process."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT)
    quiet_libraries()


def quiet_libraries() -> None:
    """Keep libraries' per-request INFO lines out: genhook logs each step itself (one line
    per webhook attempt, say), and Dramatiq's workers configure logging on their own."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
