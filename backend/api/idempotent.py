"""Writing an answer that may be a replay of a remembered one (``backend/idempotency.py``)."""

from __future__ import annotations

import falcon

from backend.idempotency import REPLAYED_HEADER, Answer


def write_answer(resp: falcon.Response, answer: Answer, replayed: bool) -> None:
    resp.status = answer.status_code
    resp.text = answer.body
    if replayed:
        resp.set_header(REPLAYED_HEADER, "true")
