"""Usage reports: `GET /users/me/usage` and `GET /admin/usage`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class UsageItem(BaseModel):
    """One group's totals (or the report's `totals`, whose `key` is `total`)."""

    key: str = Field(description="the day (YYYY-MM-DD, UTC), the model id or the user id")
    input_tokens: int
    output_tokens: int
    cost_usd: float = Field(description="USD; answers of models without pricing count 0")
    messages: int = Field(description="answers with counted tokens")


class QuotaStatus(BaseModel):
    """The user's limits (null: unlimited) and what counts against them now."""

    tokens_per_day: int | None
    tokens_today: int
    cost_per_month: float | None
    cost_this_month: float


class UsageReport(BaseModel):
    """Totals per group in the range, and over all groups."""

    items: list[UsageItem]
    totals: UsageItem


class MyUsageReport(UsageReport):
    """A user's own report, with their quota and their files' storage."""

    quota: QuotaStatus
    storage_bytes: int = Field(description="the bytes of the user's uploaded files")
    storage_quota_bytes: int = Field(description="USER_STORAGE_QUOTA_BYTES")
