"""What the URL service raises: every message is safe to show to the model or the user."""

from __future__ import annotations


class FetchError(Exception):
    """A guarded fetch did not produce a usable response; the message says why."""


class UrlError(FetchError, ValueError):
    """The text is not a usable http(s) URL."""


class UrlRefused(UrlError):
    """The URL points somewhere the backend must not reach (an internal address)."""


class ResponseTooLarge(FetchError):
    """The response body is larger than the cap."""


class FetchTimeout(FetchError):
    """The response did not arrive completely in time."""
