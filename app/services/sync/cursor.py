"""The feed cursor: an opaque string naming how far a device has read one user's changes.

`base64url("v1.<user tag>.<seq>.<base>")`: `seq` is the last change number the device has
been given; `base` is the change number from which on it needs tombstones. They are equal
except while a first (full) sync is paged: its pages list what existed when it began, at
head `H`, so the device never needs a tombstone numbered `<= H`, and `base = H` lets the
paging continue even past tombstones pruned meanwhile. The tag (the start of the user id)
makes a cursor of another account, or of an account deleted and registered again, unusable
instead of silently wrong. Clients must treat the string as opaque.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from app.core.errors import AppError

VERSION = "v1"
MAX_CURSOR_CHARS = 128


class ResyncRequired(AppError):
    """The cursor cannot be continued: the client drops its copy and syncs from scratch."""

    status_code = 410
    code = "resync_required"
    detail = "This sync cursor can no longer be used; fetch /sync/changes without `since`"


def _tag(user_id: uuid.UUID) -> str:
    return user_id.hex[:12]


def encode_cursor(*, user_id: uuid.UUID, seq: int, base: int | None = None) -> str:
    """The cursor after change number `seq` (tombstones needed after `base`, default `seq`)."""
    raw = f"{VERSION}.{_tag(user_id)}.{seq}.{seq if base is None else base}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, user_id: uuid.UUID) -> tuple[int, int]:
    """`(seq, base)` of a cursor of this user; `ResyncRequired` for anything else."""
    try:
        if len(cursor) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        version, tag, seq_text, base_text = (
            base64.urlsafe_b64decode(padded.encode()).decode().split(".")
        )
        seq, base = int(seq_text), int(base_text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ResyncRequired("Invalid sync cursor; fetch /sync/changes without `since`") from exc
    if version != VERSION or tag != _tag(user_id) or seq < 0 or base < seq:
        raise ResyncRequired("This sync cursor is not for this account; resync from scratch")
    return seq, base
