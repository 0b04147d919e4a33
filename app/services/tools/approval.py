"""Which tool calls wait for the user's approval: a source's `approval` policy, then the
user's `auto_approve_tools`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.services.tools.types import Tool


class ApprovalTools(BaseModel):
    """`{"tools": [names]}`: only these tools (their own names at the source) ask first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tools: list[str] = Field(min_length=1)


# `approval` of an MCP server or an adapter: "never" (the default), "always", or a list
ApprovalPolicy = Literal["never", "always"] | ApprovalTools


def asks_first(policy: ApprovalPolicy, tool_name: str) -> bool:
    """Whether the policy makes a call of `tool_name` (its name at its source) wait."""
    if isinstance(policy, ApprovalTools):
        return tool_name in policy.tools
    return policy == "always"


def needs_approval(tool: Tool, *, auto_approved: Collection[str]) -> bool:
    """Whether a call of `tool` waits for the user: its source asks, the user did not waive."""
    return tool.approval and tool.qualified_name not in auto_approved
