"""`/health` and `/health/ready` reports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class HealthReport(BaseModel):
    """`/health`: the overall status and one check per part."""

    status: Literal["ok", "degraded", "error"]
    checks: dict[str, dict[str, Any]]


class ReadyReport(BaseModel):
    """`/health/ready`: whether the database answers."""

    status: Literal["ok", "error"]
    database: dict[str, Any]
