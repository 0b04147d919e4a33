"""Images as a model gets them: turned upright, EXIF and other metadata dropped, resized to
what the provider accepts, re-encoded under a byte cap (run off the event loop).

The result is cached per (file, size) in a bounded in-memory cache of this worker, so a long
conversation with an image does not re-encode it on every turn.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageOps

# long side and encoded-bytes cap per provider (Anthropic: ≤ 1568 px is not downscaled by
# the API, 5 MB per image; OpenAI: 2048 px fits "high" detail; Gemini takes ~3072 px)
LIMITS: dict[str, tuple[int, int]] = {
    "anthropic": (1568, 3_750_000),
    "openai": (2048, 4_000_000),
    "openai_responses": (2048, 4_000_000),
    "google": (3072, 4_000_000),
}
DEFAULT_LIMIT = (1568, 3_750_000)
CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Prepared:
    """An image ready to send: its bytes and their type."""

    data: bytes
    media_type: str


def limit_for(provider: str) -> tuple[int, int]:
    """(long side in pixels, bytes) for a provider kind."""
    return LIMITS.get(provider, DEFAULT_LIMIT)


def prepare_image(raw: bytes, *, max_side: int, max_bytes: int) -> Prepared:
    """Upright, metadata-free, at most `max_side` px on the long side and `max_bytes` bytes.

    Images with transparency stay PNG; others become JPEG (smaller). Over the byte cap the
    image is shrunk further until it fits."""
    with Image.open(io.BytesIO(raw)) as opened:
        opened.seek(0)  # GIF, animated WebP: the first frame
        image = ImageOps.exif_transpose(opened) or opened
        image.load()
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if alpha else "RGB")
    side = max_side
    while True:
        if max(image.size) > side:
            image.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if alpha:
            image.save(out, format="PNG", optimize=True)  # no exif/info passed: none kept
        else:
            image.save(out, format="JPEG", quality=85)
        data = out.getvalue()
        if len(data) <= max_bytes or side <= 256:
            return Prepared(data, "image/png" if alpha else "image/jpeg")
        side = int(max(image.size) * 0.75)


class PreparedCache:
    """A least-recently-used cache of prepared images, bounded by their total bytes."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], Prepared] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, int]) -> Prepared | None:
        """The cached image, marked as recently used."""
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple[str, int], value: Prepared) -> None:
        """Cache an image, evicting the oldest past the byte bound."""
        if key in self._items:
            return
        self._items[key] = value
        self._bytes += len(value.data)
        while self._bytes > self.max_bytes and self._items:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= len(dropped.data)


PREPARED = PreparedCache()
