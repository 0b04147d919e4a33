"""MCP client pool: configured servers, per-replica owner tasks, balancing, failover, catalog."""

from app.services.mcp.config import McpConfig, McpConfigError, ServerConfig, load_mcp_config
from app.services.mcp.pool import McpPool

__all__ = [
    "McpConfig",
    "McpConfigError",
    "McpPool",
    "ServerConfig",
    "load_mcp_config",
]
