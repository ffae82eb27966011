"""Step 1: accept a generation request, charge for it and queue it for submission."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from backend import ids
from backend.catalog import END_IMAGE, IMAGE, CatalogModel
from backend.context import Context
from backend.errors import ValidationFailed
from backend.idempotency import Answer, IdempotencyKey, remember
from backend.images import links
from backend.images.checked import CheckedImage, check_image_source
from backend.jobs.credits import charge, require_balance
from backend.jobs.in_flight import require_room_in_flight
from backend.jobs.routes import JobShape, PlannedRoute, build_plan
from backend.schemas.generations import GenerationCreate
from backend.store import images as images_store
from backend.store import jobs as jobs_store
from backend.store.jobs import JobRecord
from backend.webhooks import targets, url_guard

log = logging.getLogger(__name__)

#: Request field, catalog input it needs, and how to name it in an error.
_IMAGE_FIELDS = (
    ("image_url", IMAGE, "a first-frame image"),
    ("end_image_url", END_IMAGE, "a last-frame image"),
)


def create_generation(
    ctx: Context,
    account_id: str,
    request: GenerationCreate,
    *,
    idempotency: IdempotencyKey | None = None,
    reach: targets.Reach | None = None,
) -> JobRecord:
    """Check everything, then debit and insert in one transaction (which first checks the
    account's cap on jobs in flight), then enqueue the submission.

    Images are fetched and checked before the transaction, so a bad one is a 422 that
    charges nothing. If enqueueing fails the job is still safe in the database and the
    recovery sweep submits it later, so the client gets its 202 either way. With an
    ``idempotency`` key the answer is remembered in the same transaction (``KeyTaken`` if
    another request with the key committed first: nothing of this one is kept). ``reach``:
    what the account may reach, when the caller knows it already (the API's authentication
    does); otherwise it is read from the account when a URL needs checking.
    """
    model = _model(ctx, request.model)
    price = _check_model_inputs(model, request)
    plan = _plan(ctx, model, request)
    has_images = bool(request.image_url or request.end_image_url)
    if request.webhook_url is not None:
        # Private targets only for accounts an operator allowed them (``targets.py``).
        reach = reach or targets.reach_of_account(ctx, account_id)
        url_guard.require_public(
            request.webhook_url,
            reach.networks,
            "webhook_url",
            timeout=ctx.settings.dns_timeout_seconds,
            lookup=ctx.name_lookup,
        )
    # The first hop may be a cheaper fallback (the model's own providers are not set up
    # here): the client is then charged that price, never more than the model's.
    first = plan[0]
    charged = min(price, first.credits)
    image = end_image = None
    if has_images:
        reach = reach or targets.reach_of_account(ctx, account_id)
        # Before fetching anyone's images: an account that cannot pay, or has all the jobs
        # in flight it may, makes genhook fetch nothing. The checks in the insert's
        # transaction below stay the authority (a parallel job may spend the balance or
        # take the slot); a text-only submission has nothing costly to spare and goes
        # straight to them.
        with ctx.store.begin() as conn:
            require_room_in_flight(conn, ctx.settings, account_id, final=False)
            require_balance(conn, account_id, charged)
        image = _checked_image(ctx, reach, request.image_url, "image_url")
        end_image = _checked_image(ctx, reach, request.end_image_url, "end_image_url")

    max_wait = model.max_wait_seconds or ctx.settings.job_timeout_seconds
    job_id = ids.job_id()
    with ctx.store.begin() as conn:
        image_id = _store_image(conn, account_id, image)
        end_image_id = _store_image(conn, account_id, end_image)
        job = jobs_store.insert_job(
            conn,
            job_id=job_id,
            account_id=account_id,
            model=model.id,
            prompt=request.prompt,
            duration_seconds=request.duration_seconds,
            aspect_ratio=request.aspect_ratio,
            webhook_url=request.webhook_url,
            metadata=request.metadata,
            provider=first.provider,
            provider_model=first.provider_model,
            credits_charged=charged,
            image_id=image_id,
            end_image_id=end_image_id,
            route_plan=[hop.as_json() for hop in plan],
            rendered_model=first.model,
            deadline_at=ctx.now() + timedelta(seconds=max_wait),
            eta_seconds=first.typical_render_seconds,
        )
        # Locks the account's row: concurrent submissions are counted one after the other
        # from here, each seeing the others' committed jobs. Both raise, rolling the
        # inserts back with them.
        require_room_in_flight(conn, ctx.settings, account_id, final=True)
        charge(conn, account_id=account_id, job_id=job_id, amount=charged)
        if idempotency is not None:
            remember(conn, ctx, idempotency, Answer(202, accepted_body(ctx, job)))
    ctx.cache.put(job, ctx.now())
    ctx.queue.submit_job(job.id)
    log.info("job %s accepted: %s via %s, %s credits", job.id, model.id, first.key, charged)
    return job


def accepted_body(ctx: Context, job: JobRecord) -> str:
    """The 202's body: the job as it was accepted (so a replay answers the same bytes)."""
    return ctx.cache.generation(job, job.created_at).model_dump_json()


def _model(ctx: Context, model_id: str) -> CatalogModel:
    model = ctx.catalog.get(model_id)
    if model is None:
        known = ", ".join(sorted(ctx.catalog.models))
        raise ValidationFailed.for_field("model", f"unknown model; choose one of: {known}")
    return model


def _plan(ctx: Context, model: CatalogModel, request: GenerationCreate) -> list[PlannedRoute]:
    shape = JobShape(
        duration_seconds=request.duration_seconds,
        aspect_ratio=request.aspect_ratio,
        has_image=request.image_url is not None,
        has_end_image=request.end_image_url is not None,
    )
    plan = build_plan(ctx.catalog, model.id, shape, ctx.providers)
    if not plan:
        raise ValidationFailed.for_field(
            "model", f"{model.id} is not available: no provider that renders it is configured"
        )
    return plan


def _check_model_inputs(model: CatalogModel, request: GenerationCreate) -> int:
    """The model's price for the request, once the model is known to render it."""
    for field, input_name, what in _IMAGE_FIELDS:
        if getattr(request, field) is not None and not model.takes(input_name):
            raise ValidationFailed.for_field(field, f"the model {model.id} does not take {what}")
    if request.aspect_ratio not in model.aspect_ratios:
        ratios = ", ".join(model.aspect_ratios)
        raise ValidationFailed.for_field(
            "aspect_ratio", f"the model {model.id} renders only {ratios}"
        )
    price = model.price(request.duration_seconds)
    if price is None:
        offered = ", ".join(model.credits)
        raise ValidationFailed.for_field("duration", f"the model {model.id} offers only {offered}")
    return price


def _checked_image(
    ctx: Context, reach: targets.Reach, source: str | None, field: str
) -> CheckedImage | None:
    if source is None:
        return None
    return check_image_source(
        source,
        field=field,
        settings=ctx.settings,
        allowed=reach.networks,
        client=reach.client,
        lookup=ctx.name_lookup,
    )


def _store_image(conn: sa.Connection, account_id: str, image: CheckedImage | None) -> str | None:
    if image is None:
        return None
    image_id = ids.image_id()
    images_store.insert_image(
        conn,
        image_id=image_id,
        account_id=account_id,
        content_type=image.content_type,
        width=image.width,
        height=image.height,
        sha256=image.sha256,
        data=image.data,
        link_key=links.new_link_key(),
    )
    return image_id
