"""User administration and the audit log."""

from app.services.admin.audit import NO_AUDIT, AuditLog, Auditor
from app.services.admin.service import AdminService

__all__ = ["NO_AUDIT", "AdminService", "AuditLog", "Auditor"]
