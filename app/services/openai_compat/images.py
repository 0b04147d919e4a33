"""`image_url` content parts: `data:` URLs decoded, checked and prepared like uploaded images.

Only inline `data:image/...;base64,` URLs are taken: the server never fetches an address a
client names here (no SSRF surface, no slow third-party download inside a request)."""

from __future__ import annotations

import base64
import binascii
import io
from functools import partial

from anyio import to_thread
from PIL import Image, UnidentifiedImageError

from app.services.files.prepare import limit_for, prepare_image
from app.services.llm import ModelConfig
from app.services.llm.base import ImagePart
from app.services.openai_compat.messages import InvalidRequest

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGES = 10


def _decode(url: str, param: str) -> bytes:
    """The bytes of a base64 `data:image/...` URL, or a 400 naming the part."""
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
        raise InvalidRequest(
            "image_url must be a data:image/...;base64, URL (addresses are not fetched)",
            param=param,
            code="unsupported_image_url",
        )
    if len(data) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise InvalidRequest("An image is larger than 20 MB", param=param)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("image_url is not valid base64", param=param) from None


def _load(raw: bytes, provider: str, param: str) -> ImagePart:
    """Size and prepared bytes (echo needs only the size)."""
    try:
        with Image.open(io.BytesIO(raw)) as opened:
            width, height = opened.size
        if provider == "echo":
            return ImagePart("image", "image/png", b"", width, height)
        side, cap = limit_for(provider)
        prepared = prepare_image(raw, max_side=side, max_bytes=cap)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("image_url holds no readable image", param=param) from None
    return ImagePart("image", prepared.media_type, prepared.data, width, height)


async def load_images(
    urls: list[tuple[int, int, str]], *, model: ModelConfig
) -> dict[int, list[ImagePart]]:
    """The images of each user message (by message index), decoded off the event loop."""
    if not urls:
        return {}
    if not model.supports_vision:
        raise InvalidRequest(
            f"Model '{model.id}' cannot see images; choose a model with vision",
            code="model_cannot_see_images",
            param="messages",
        )
    if len(urls) > MAX_IMAGES:
        raise InvalidRequest(f"At most {MAX_IMAGES} images per request", param="messages")
    out: dict[int, list[ImagePart]] = {}
    for index, at, url in urls:
        param = f"messages.[{index}].content.[{at}].image_url.url"
        raw = _decode(url, param)
        part = await to_thread.run_sync(partial(_load, raw, model.provider, param))
        out.setdefault(index, []).append(part)
    return out
