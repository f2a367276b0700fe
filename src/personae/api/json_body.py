"""JSON request bodies read to the JSON limits, before the route's fields are checked.

FastAPI reads a body with Python's `json`, which takes NaN and Infinity and
fails on deep nesting with a RecursionError it turns into a vague 400. Routes
whose bodies are stored as JSON (a character's `extensions`, its lorebook) use
this route class instead: such a body gets 422 `json_not_finite` or
`json_too_deep`, by the same rules the services apply.
"""

from __future__ import annotations

import contextlib
import email.message
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from personae import strict_json


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type")
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = strict_json.loads(await self.body(), "The request body")
        return self._strict_json


class StrictJsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            strict = _StrictJsonRequest(request.scope, request.receive)
            if _is_json(strict):
                # Read here, outside FastAPI's body parsing, so that a refusal reaches
                # the error handlers as itself and not as a 400. What is not JSON at
                # all is left to FastAPI, which reads it again and says where.
                with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                    await strict.json()
            return await handler(strict)

        return strict_handler
