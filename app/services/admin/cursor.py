"""Opaque keyset cursors for the admin lists: a time and an id."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime

from app.core.errors import BadRequest


def encode_cursor(at: datetime, ident: uuid.UUID) -> str:
    """A cursor that continues after the row (`at`, `ident`)."""
    raw = json.dumps([at.isoformat(), str(ident)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Parse a cursor from `encode_cursor`; 400 `invalid_cursor` otherwise."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
        moment = datetime.fromisoformat(stamp)
        # a forged time that leaves the datetime range in UTC must fail here, not in the query
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment, uuid.UUID(ident)
    except (ValueError, TypeError, OverflowError, binascii.Error) as exc:
        raise BadRequest("Invalid cursor; start again without one", code="invalid_cursor") from exc
