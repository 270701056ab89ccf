"""The demo page at `/`: upload an image, see the top-5 labels and the latency. Plain HTML + JS from the package."""

from __future__ import annotations

import importlib.util
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)

STATIC_DIR = files("vitrt.serve") / "static"
# The page and its script come from this server only; previews are blob: URLs.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-cache"})


DOCS_ASSETS = "/docs/assets"


def swagger_assets_dir() -> Path:
    """Swagger UI's JS and CSS as shipped by the fastapi-offline package (Swagger UI 5, which reads OpenAPI 3.1)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("the fastapi-offline package (Swagger UI assets for /docs) is not installed")
    return Path(spec.origin).parent / "static"


def install_docs(app: FastAPI) -> None:
    """`/docs` with Swagger UI served by this server, so the page works offline and on air-gapped hosts."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_assets_dir())), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )
