"""Multi-device sync: change feed, live push, backup and restore."""

from app.services.sync.runtime import SyncRuntime
from app.services.sync.service import SyncService

__all__ = ["SyncRuntime", "SyncService"]
