"""Uploaded files: receiving, type detection, extraction, storage (local or S3-compatible)."""

from __future__ import annotations

from pydantic import SecretStr

from app.core.config import Settings
from app.services.files.s3 import S3Storage
from app.services.files.service import FileService, UploadLimits
from app.services.files.storage import LocalStorage, Storage, local_root

__all__ = ["FileService", "Storage", "UploadLimits", "open_storage", "upload_limits"]


async def open_storage(settings: Settings) -> Storage:
    """The store FILE_STORAGE_URL names, started (the lifespan closes it)."""
    url = settings.file_storage_url
    if url.startswith("s3://"):
        s3 = S3Storage(
            url,
            endpoint_url=_secret(settings.s3_endpoint_url),
            region=settings.aws_region,
            access_key_id=_secret(settings.aws_access_key_id),
            secret_access_key=_secret(settings.aws_secret_access_key),
        )
        await s3.start()
        return s3
    local = LocalStorage(local_root(url))
    await local.start()
    return local


def upload_limits(settings: Settings) -> UploadLimits:
    """The upload limits of the settings; uploads are received in DATA_DIR/tmp/uploads."""
    return UploadLimits(
        max_bytes=settings.max_upload_bytes,
        quota_bytes=settings.user_storage_quota_bytes,
        temp_dir=settings.data_dir / "tmp" / "uploads",
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
