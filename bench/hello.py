"""The ceiling of ``bench/run.py``: a bare Falcon hello-world, run under gunicorn.

Why it exists: genhook's figures mean something only next to what the same web stack
(Falcon, gunicorn, the same processes on the same cores) does with no work at all. ``GET``
answers a small JSON document; ``POST`` reads the body and answers ``202`` with one, as a
submission does. ``bench/run.py`` starts it as ``gunicorn bench.hello:app``.
"""

from __future__ import annotations

import falcon

_ANSWER = {"id": "hello", "object": "video.generation", "status": "pending"}


class Hello:
    def on_get(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        resp.media = _ANSWER

    def on_post(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        req.bounded_stream.read()
        resp.status = falcon.HTTP_202
        resp.media = _ANSWER


app = falcon.App()
app.add_route("/", Hello())
app.add_route("/{path:path}", Hello())
