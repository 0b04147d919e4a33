"""MCP client pool: configured servers, per-replica owner tasks, balancing, failover, catalog."""

from app.services.mcp.config import McpConfig, McpConfigError, ServerConfig, load_mcp_config
from app.services.mcp.pool import McpPool
from app.services.mcp.types import ProgressCallback, ToolInfo, ToolOutcome

__all__ = [
    "McpConfig",
    "McpConfigError",
    "McpPool",
    "ProgressCallback",
    "ServerConfig",
    "ToolInfo",
    "ToolOutcome",
    "load_mcp_config",
]
