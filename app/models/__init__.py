"""ORM models; importing this package registers every table on `Base.metadata`."""

from app.core.status import MessageStatus
from app.models.api_key import ApiKey
from app.models.audit import AuditEvent
from app.models.auth_session import AuthSession
from app.models.conversation import Conversation, Message
from app.models.file import StoredFile
from app.models.sync import SyncTombstone
from app.models.usage import ApiUsage, UsageCounter
from app.models.user import User, UserPreferences

__all__ = [
    "ApiKey",
    "ApiUsage",
    "AuditEvent",
    "AuthSession",
    "Conversation",
    "Message",
    "MessageStatus",
    "StoredFile",
    "SyncTombstone",
    "UsageCounter",
    "User",
    "UserPreferences",
]
