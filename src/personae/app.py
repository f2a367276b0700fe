"""create_app(settings): one isolated application per call."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from personae import __version__
from personae.api.forwarded import ForwardedHeadersMiddleware
from personae.api.middleware import BodyLimit, RequestContextMiddleware
from personae.api.openapi import problem_openapi
from personae.api.problems import install_error_handlers
from personae.api.routes import (
    admin_status,
    admin_users,
    auth,
    calls,
    cards,
    characters,
    chats,
    creators,
    docs,
    export,
    health,
    images,
    memory,
    messages,
    moderation_queue,
    queue,
    reports,
    rooms,
    transcriptions,
    voices,
    web,
)
from personae.api.routes import status as status_routes
from personae.api.security_headers import SecurityHeadersMiddleware
from personae.api.status_middleware import MaintenanceMiddleware, MetricsMiddleware
from personae.container import build_container
from personae.errors import AudioTooLarge
from personae.settings import Settings, load_settings

log = logging.getLogger("personae.app")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the whole application for these settings (from the environment if None)."""
    settings = settings or load_settings()
    container = build_container(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await container.start()
            yield
        finally:
            await container.aclose()

    app = FastAPI(
        title="Personae",
        version=__version__,
        description="Create AI characters and chat with them.",
        lifespan=lifespan,
        # /docs is Swagger UI from local files (routes/docs.py); no CDN, no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    app.state.container = container
    app.openapi = problem_openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    # Inner to outer: maintenance mode, request metrics, request ids, forwarded headers.
    app.add_middleware(MaintenanceMiddleware, container=container)
    app.add_middleware(MetricsMiddleware, container=container)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_limits=(
            BodyLimit(cards.UPLOAD_PATHS, settings.max_upload_bytes),
            BodyLimit(
                transcriptions.AUDIO_PATHS,
                settings.audio_max_bytes + transcriptions.ENVELOPE_BYTES,
                AudioTooLarge,
            ),
        ),
        body_timeout_s=settings.request_body_timeout_s,
    )
    # Headers on every answer, errors included (it sees the scheme the proxy reported).
    app.add_middleware(SecurityHeadersMiddleware)
    # Outermost: every layer within (logs, rate limits, cookies) sees the real client.
    app.add_middleware(ForwardedHeadersMiddleware, trusted=settings.trusted_proxy_networks)
    app.include_router(health.router)
    if settings.role == "worker":
        return app  # a worker writes replies; its port answers health checks and metrics
    for router in (
        auth.router,
        cards.router,
        characters.router,
        chats.router,
        export.router,
        images.router,
        creators.router,
        messages.router,
        memory.router,
        queue.router,
        rooms.router,
        transcriptions.router,
        calls.router,
        voices.router,
    ):
        app.include_router(router)
    app.include_router(docs.router)
    app.mount(docs.STATIC_PATH, docs.static_files)
    app.include_router(status_routes.router)
    app.include_router(admin_status.router)
    app.include_router(admin_users.router)
    app.include_router(reports.router)
    app.include_router(moderation_queue.router)
    # The web app answers only addresses no route claimed.
    app.router.default = web.WebAppFallback(app.router.default)
    return app
