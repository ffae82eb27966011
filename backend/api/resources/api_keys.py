"""``/v1/account/api-keys``: an account's API keys (create, list, revoke)."""

from __future__ import annotations

import falcon

from backend import api_keys
from backend.api.openapi import operation
from backend.context import Context
from backend.errors import NotFound
from backend.schemas.api_keys import ApiKey, ApiKeyCreated, ApiKeyList, parse_id

TAGS = ("accounts",)


class ApiKeysResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="listApiKeys",
        summary="The account's API keys",
        description="Every key of the calling account, revoked ones included, oldest "
        "first: its prefix, when it was created, last used and revoked. The keys "
        "themselves are never shown again.",
        tags=TAGS,
        responses={200: ApiKeyList},
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        keys = api_keys.list_keys(self.ctx, req.context.account_id)
        current = req.context.api_key_id
        resp.text = ApiKeyList(data=[ApiKey.of(key, current) for key in keys]).model_dump_json()

    @operation(
        operation_id="createApiKey",
        summary="Create an API key",
        description="A new key for the calling account, shown only in this answer; the "
        f"other keys stay valid. At most {api_keys.MAX_LIVE_KEYS} live keys (409 past "
        "that). To rotate a key: create one, move your services to it, revoke the old.",
        tags=TAGS,
        responses={201: ApiKeyCreated},
        errors=(409,),
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        new = api_keys.create_key(self.ctx, req.context.account_id)
        created = ApiKey.of(new.record, req.context.api_key_id)
        resp.status = falcon.HTTP_201
        resp.text = ApiKeyCreated(**created.model_dump(), api_key=new.api_key).model_dump_json()


class ApiKeyResource:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @operation(
        operation_id="revokeApiKey",
        summary="Revoke an API key",
        description="The key is refused from the next request on, by every API process. "
        "A key may revoke itself. The account's last live key cannot be revoked (409): "
        "create another first. Revoking a revoked key changes nothing.",
        tags=TAGS,
        responses={200: ApiKey},
        errors=(404, 409),
    )
    def on_delete(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        number = parse_id(key_id)
        if number is None:
            raise NotFound(f"no API key {key_id!r} in this account")
        revoked = api_keys.revoke_key(self.ctx, req.context.account_id, number)
        resp.text = ApiKey.of(revoked, req.context.api_key_id).model_dump_json()
