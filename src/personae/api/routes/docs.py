"""The API's reference (Swagger UI at /docs) from files shipped with the server, not a
CDN: it works on an installation without internet, and under the Content-Security-
Policy (no inline script: the page loads its start-up script from here too)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

router = APIRouter(include_in_schema=False)
STATIC_PATH = "/docs/static"
static_files = StaticFiles(directory=Path(str(swagger_ui_path)))

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Personae API</title>
  <link rel="stylesheet" href="{STATIC_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{STATIC_PATH}/swagger-ui-bundle.js"></script>
  <script src="/docs/start.js"></script>
</body>
</html>
"""
_START = """window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
});
"""


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(_PAGE)


@router.get("/docs/start.js")
async def start_script() -> Response:
    return Response(_START, media_type="text/javascript")
