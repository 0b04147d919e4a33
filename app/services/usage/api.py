"""Usage of stateless /v1 answers (no message row): recorded once per answer."""

from __future__ import annotations

import uuid
from typing import Any


class ApiUsageLog:
    """Records the usage of answers that are not saved as messages."""

    def record(
        self,
        *,
        user_id: uuid.UUID,
        api_key_id: uuid.UUID | None,
        model_id: str,
        usage: dict[str, Any],
    ) -> None:
        """Write one usage row in the background (never raises)."""
