"""CORS with the API's error body for a rejected preflight."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from app.core.errors import error_body


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, but a rejected preflight answers `{detail, code: cors_rejected}`."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Starlette's preflight answer; a rejection (plain text 400) becomes the JSON error."""
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        # Starlette says "Disallowed CORS origin, method, headers"; keep which parts failed
        failed = bytes(response.body).decode().removeprefix("Disallowed CORS ").strip()
        detail = (
            f"CORS preflight rejected: {failed or 'request'} not allowed "
            "(the origin must be listed in BACKEND_CORS_ORIGINS)"
        )
        headers = {
            key: value
            for key, value in response.headers.items()
            if key.lower() not in ("content-type", "content-length")
        }
        return JSONResponse(error_body(detail, "cors_rejected"), response.status_code, headers)
