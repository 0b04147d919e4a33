"""`/docs` (Swagger UI) and `/redoc` (ReDoc) served with their assets from the app, not a CDN.

The JavaScript and CSS come from the `fastapi-offline` package (a main dependency), which
ships the Swagger UI and ReDoc distribution files; they are mounted under `/static/docs`.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
STATIC_URL = "/static/docs"
# the pages load nothing from elsewhere: ReDoc's menu would fetch its vendor's logo from a CDN
# (a request per view to a third party, and a failed one offline); the browser refuses it
CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Mount the assets and add the two pages (create the app with docs_url=redoc_url=None)."""
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    def asset(request: Request, name: str) -> str:
        """The URL of one asset file behind any proxy prefix."""
        return f"{request.scope.get('root_path', '')}{STATIC_URL}/{name}"

    def schema_url(request: Request) -> str:
        """The URL of the OpenAPI document behind any proxy prefix."""
        return f"{request.scope.get('root_path', '')}{app.openapi_url}"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        """Swagger UI (Authorize logs in through the OAuth2 password flow)."""
        page = get_swagger_ui_html(
            openapi_url=schema_url(request),
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=asset(request, "swagger-ui-bundle.js"),
            swagger_css_url=asset(request, "swagger-ui.css"),
            swagger_favicon_url=asset(request, "favicon.png"),
            # no spec validator badge: it would send the document's URL to a third party
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )
        page.headers.update(HEADERS)
        return page

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        """The page Swagger UI's OAuth2 flows return to."""
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        """ReDoc, without web fonts (they would come from a CDN)."""
        page = get_redoc_html(
            openapi_url=schema_url(request),
            title=f"{app.title} - ReDoc",
            redoc_js_url=asset(request, "redoc.standalone.js"),
            redoc_favicon_url=asset(request, "favicon.png"),
            with_google_fonts=False,
        )
        page.headers.update(HEADERS)
        return page
