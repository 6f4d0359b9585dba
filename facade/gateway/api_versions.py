"""ApiVersions (key 18): which APIs, at which versions, this gateway answers.

A request of a version above the gateway's is answered as Kafka does: a version-0 body with
UNSUPPORTED_VERSION and the list, so the client retries with a version both know
(:func:`unsupported_version_body`, called by the server before it tries to decode the request).
"""

from __future__ import annotations

from typing import Any

from .context import Api, RequestContext
from .protocol import ErrorCode, encode, make, response_module


def _versions(schema: Any) -> tuple[Any, ...]:
    from .apis import TABLE  # the table imports this module

    return tuple(
        make(schema.ApiVersion, api_key=api.key, min_version=api.min_version, max_version=api.max_version)
        for api in sorted(TABLE.values(), key=lambda a: a.key)
    )


async def handle(ctx: RequestContext, request: Any) -> Any:
    schema = ctx.schema
    return make(schema.ApiVersionsResponse, error_code=ErrorCode.none, api_keys=_versions(schema))


def unsupported_version_body() -> bytes:
    """The ApiVersions v0 body answering a request of a version the gateway does not know."""
    schema = response_module(API.key, 0)
    return encode(
        make(schema.ApiVersionsResponse, error_code=ErrorCode.unsupported_version, api_keys=_versions(schema))
    )


API = Api(18, "ApiVersions", 0, 4, handle)
