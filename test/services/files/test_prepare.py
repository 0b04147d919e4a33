"""Images as a model gets them: upright, without metadata, resized, under a byte cap."""

from __future__ import annotations

import io
import os

from PIL import Image

from app.services.files.prepare import Prepared, PreparedCache, prepare_image


def _jpeg(size: tuple[int, int], *, orientation: int | None = None) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    if orientation is not None:
        exif[0x0112] = orientation
    Image.new("RGB", size, (0, 90, 200)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_a_photo_is_turned_upright_resized_and_stripped() -> None:
    # orientation 6: the camera held sideways; the picture is shown rotated 90 degrees
    prepared = prepare_image(_jpeg((3000, 1000), orientation=6), max_side=1568, max_bytes=10**7)
    assert prepared.media_type == "image/jpeg"
    sent = Image.open(io.BytesIO(prepared.data))
    assert sent.size == (523, 1568)
    assert not sent.getexif() and b"SecretCam" not in prepared.data


def test_transparency_stays_png_and_small_images_keep_their_size() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(buffer, "PNG")
    prepared = prepare_image(buffer.getvalue(), max_side=2048, max_bytes=10**7)
    assert prepared.media_type == "image/png"
    assert Image.open(io.BytesIO(prepared.data)).size == (40, 30)


def test_an_image_over_the_byte_cap_is_shrunk_until_it_fits() -> None:
    noise = Image.frombytes("RGB", (1500, 1500), os.urandom(1500 * 1500 * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    prepared = prepare_image(buffer.getvalue(), max_side=2048, max_bytes=300_000)
    assert len(prepared.data) <= 300_000
    assert max(Image.open(io.BytesIO(prepared.data)).size) < 1500


def test_the_cache_evicts_the_least_recently_used_past_its_bytes() -> None:
    cache = PreparedCache(max_bytes=10)
    cache.put(("a", 1), Prepared(b"12345", "image/png"))
    cache.put(("b", 1), Prepared(b"12345", "image/png"))
    assert cache.get(("a", 1)) is not None  # now the most recently used
    cache.put(("c", 1), Prepared(b"12345", "image/png"))
    assert cache.get(("b", 1)) is None
    assert cache.get(("a", 1)) is not None and cache.get(("c", 1)) is not None
