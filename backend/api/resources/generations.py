"""``/v1/video/generations``: submit, read and list video generations."""

from __future__ import annotations

import json

import falcon

from backend.api.body import MAX_BODY_BYTES, parse_body, parse_query
from backend.api.idempotent import write_answer
from backend.api.openapi import operation
from backend.context import Context
from backend.errors import NotFound, ValidationFailed
from backend.idempotency import HEADER, Answer, key_from_header, run_once
from backend.jobs.cancel import cancel_generation
from backend.jobs.create import accepted_body, create_generation
from backend.jobs.queries import find_generation, list_generations
from backend.schemas.generations import (
    Generation,
    GenerationCreate,
    GenerationList,
    GenerationListQuery,
)
from backend.webhooks import targets


class GenerationsResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="createVideoGeneration",
        summary="Submit a video generation",
        description="Answers 202 at once with the generation `pending`: the model's price is "
        "charged now (402 if the balance is short) and refunded if the job fails or is "
        "canceled. When it ends, the signed result is POSTed to `webhook_url` and to the "
        "subscribed webhook endpoints; otherwise poll the `Location`. Every field and image "
        "is checked before anything is charged (a 422 names the field). An account may have "
        "a limited number of generations in flight (`pending` or `processing`; the server's "
        "`GENHOOK_MAX_JOBS_IN_FLIGHT`, 50 by default, or the account's own cap): one more "
        "is a 429 `too-many-jobs-in-flight` naming the cap, nothing charged.",
        tags=("generations",),
        request=GenerationCreate,
        responses={202: Generation},
        headers={202: {"Location": "URL of the new generation"}},
        errors=(400, 402, 413, 422),
        idempotent=True,
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # Room for a first and a last frame inline as base64 data: URLs.
        max_bytes = MAX_BODY_BYTES + 2 * (self.ctx.settings.image_max_bytes * 4 // 3 + 64)
        request = parse_body(req, GenerationCreate, max_bytes=max_bytes)
        account_id = req.context.account_id
        key = key_from_header(req.get_header(HEADER), account_id, request.model_dump(mode="json"))

        def accept() -> Answer:
            reach = targets.reach(self.ctx, private=req.context.allow_private_webhooks)
            job = create_generation(self.ctx, account_id, request, idempotency=key, reach=reach)
            return Answer(202, accepted_body(self.ctx, job))

        answer, replayed = run_once(self.ctx, key, accept)
        write_answer(resp, answer, replayed)
        resp.location = f"/v1/video/generations/{json.loads(answer.body)['id']}"

    @operation(
        operation_id="listVideoGenerations",
        summary="List generations, newest first",
        description="The account's generations, a page at a time: pass `next_cursor` as "
        "`cursor` while `has_more` is true. `status` keeps only the generations in that "
        "status.",
        tags=("generations",),
        query=GenerationListQuery,
        responses={200: GenerationList},
        errors=(422,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = parse_query(req, GenerationListQuery)
        try:
            page = list_generations(self.ctx, req.context.account_id, query)
        except ValueError as exc:
            raise ValidationFailed.for_field("cursor", str(exc)) from None
        resp.text = page.model_dump_json()


class GenerationResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="getVideoGeneration",
        summary="Get one generation",
        description="Where the job is: status, phase, progress and ETA, and `output_url` "
        "once it completed (a signed link, fresh on every read). Served from the status "
        "cache; another account's generation is a 404, like one that does not exist.",
        tags=("generations",),
        responses={200: Generation},
        errors=(404,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        generation = find_generation(self.ctx, req.context.account_id, job_id)
        if generation is None:
            raise NotFound(f"no generation {job_id!r} in this account")
        resp.text = generation.model_dump_json()


class CancelGenerationResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="cancelVideoGeneration",
        summary="Cancel a generation that has not finished",
        description="Stops the render at its provider where the provider allows it, marks the "
        "generation `canceled`, refunds its credits once, and sends the "
        "`video.generation.canceled` webhook. A generation that already ended gives 409.",
        tags=("generations",),
        responses={200: Generation},
        errors=(404, 409),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        job = cancel_generation(self.ctx, req.context.account_id, job_id)
        resp.text = self.ctx.cache.generation(job, self.ctx.now()).model_dump_json()
