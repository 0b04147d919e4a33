"""The status dashboard: one HTML page with its CSS and JS inlined (no external requests)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def _template() -> str:
    """dashboard.html with dashboard.css and dashboard.js inlined (read once)."""
    html = (WEB_DIR / "dashboard.html").read_text(encoding="utf-8")
    css = (WEB_DIR / "dashboard.css").read_text(encoding="utf-8")
    js = (WEB_DIR / "dashboard.js").read_text(encoding="utf-8")
    return html.replace("/* DASHBOARD_CSS */", css).replace("/* DASHBOARD_JS */", js)


def dashboard_html(nonce: str) -> str:
    """The page, its inline style and script tagged with this response's CSP nonce."""
    return _template().replace("__CSP_NONCE__", nonce)


def html_security_headers(nonce: str) -> dict[str, str]:
    """CSP (same-origin fetches, nonce-tagged inline code only) and the usual hardening."""
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
