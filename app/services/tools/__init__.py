"""Tools the model may call: one description type, one outcome, naming, rendering, the toolbox.

Sources (the MCP pool in `services/mcp`, app adapters in `services/adapters`) import from
here; this package imports neither. The lifespan puts them in one `Toolbox`.
"""

from app.services.tools.approval import (
    ApprovalPolicy,
    ApprovalTools,
    asks_first,
    needs_approval,
)
from app.services.tools.source import NoTools, ToolSource
from app.services.tools.toolbox import BoundTool, Toolbox
from app.services.tools.types import ProgressCallback, Tool, ToolOutcome

__all__ = [
    "ApprovalPolicy",
    "ApprovalTools",
    "BoundTool",
    "NoTools",
    "ProgressCallback",
    "Tool",
    "ToolOutcome",
    "ToolSource",
    "Toolbox",
    "asks_first",
    "needs_approval",
]
