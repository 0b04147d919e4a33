"""Reading an upload: the multipart body streamed to a temporary file, hashed on the way.

Starlette's form parser spools a file part to disk but only looks at its size afterwards,
so a 5 GB body would be written out before anything could refuse it. This reader counts
while it reads: past MAX_UPLOAD_BYTES it stops at once (413 `file_too_large`) and removes
what it wrote. Writes and hashing run off the event loop, 128 KiB at a time (measured in
bench/README.md "Uploads": less than 1 MB of memory per upload in flight).
"""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.core.errors import BadRequest, InvalidInput, PayloadTooLarge

FLUSH_BYTES = 128 * 1024
FORM_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers, small extra fields
MAX_NAME_CHARS = 255
FIELD = "file"


@dataclass
class Received:
    """The file part of an upload, on local disk (the caller removes `path`)."""

    path: Path
    size: int
    sha256: str
    name: str


def too_large(max_bytes: int) -> PayloadTooLarge:
    """The 413 of an upload over MAX_UPLOAD_BYTES."""
    return PayloadTooLarge(
        f"The file is larger than the limit of {max_bytes} bytes", code="file_too_large"
    )


def clean_name(raw: bytes) -> str:
    """The client's file name, or 422 `invalid_file_name`: UTF-8, at most 255 characters,
    no path separators, control characters or direction overrides, not `.` or `..`.

    The name is only ever shown (and offered as the download name); storage keys are ids."""
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The file name is not UTF-8", code="invalid_file_name") from exc
    name = unicodedata.normalize("NFC", name).strip()
    bad = any(
        ch in "/\\" or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name
    )
    if bad or name in ("", ".", "..") or len(name) > MAX_NAME_CHARS:
        raise InvalidInput(
            "The file name must be 1 to 255 characters without path separators or control "
            "characters",
            code="invalid_file_name",
        )
    return name


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    is_file: bool = False


class UploadReader:
    """Reads one multipart body whose field `file` is the upload."""

    def __init__(self, *, max_bytes: int, temp_dir: Path) -> None:
        self.max_bytes = max_bytes
        self.temp_dir = temp_dir
        self._part = _Part()
        self._name: str | None = None
        self._done = False
        self._pending = bytearray()
        self._size = 0
        self._other_bytes = 0
        self._hash = hashlib.sha256()
        self._handle: BinaryIO | None = None

    async def read(
        self, body: AsyncIterator[bytes], *, content_type: str | None, declared: str | None
    ) -> Received:
        """Stream the body to a temporary file; 400/413/422 on a bad upload (nothing kept)."""
        kind, options = parse_options_header(content_type or "")
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise BadRequest("Send the file as multipart/form-data in the field 'file'")
        if declared and declared.isdigit() and int(declared) > self.max_bytes + FORM_OVERHEAD_BYTES:
            raise too_large(self.max_bytes)  # refused before a byte is read
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )
        path = self.temp_dir / f"upload-{uuid.uuid4().hex}"
        try:
            await to_thread.run_sync(lambda: self.temp_dir.mkdir(parents=True, exist_ok=True))
            self._handle = await to_thread.run_sync(path.open, "wb")
            async for chunk in body:
                try:
                    parser.write(chunk)
                except MultipartParseError as exc:
                    raise BadRequest("The multipart body cannot be read") from exc
                if len(self._pending) >= FLUSH_BYTES:
                    await self._flush()
            parser.finalize()
            await self._flush()
            await to_thread.run_sync(self._handle.close)
            if not self._done or self._name is None:
                raise InvalidInput(
                    "The body has no complete file in the field 'file'", code="validation_error"
                )
            return Received(
                path=path, size=self._size, sha256=self._hash.hexdigest(), name=self._name
            )
        except BaseException:
            if self._handle is not None:
                self._handle.close()
            await to_thread.run_sync(lambda: path.unlink(missing_ok=True))
            raise

    async def _flush(self) -> None:
        if not self._pending or self._handle is None:
            return
        data, self._pending = self._pending, bytearray()  # handed over, not copied
        handle, digest = self._handle, self._hash

        def write() -> None:
            digest.update(data)
            handle.write(data)

        await to_thread.run_sync(write)

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]

    def _on_header_end(self) -> None:
        part = self._part
        part.headers[bytes(part.header_name).lower()] = bytes(part.header_value)
        part.header_name, part.header_value = bytearray(), bytearray()

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        if options.get(b"name") != FIELD.encode():
            return
        if self._name is not None:
            raise InvalidInput("Send one file per request", code="validation_error")
        filename = options.get(b"filename")
        if filename is None:
            raise InvalidInput("The field 'file' must be a file", code="validation_error")
        self._name = clean_name(filename)
        self._part.is_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._part.is_file:
            self._other_bytes += end - start  # other fields are read and ignored, bounded
            if self._other_bytes > FORM_OVERHEAD_BYTES:
                raise too_large(self.max_bytes)
            return
        self._size += end - start
        if self._size > self.max_bytes:
            raise too_large(self.max_bytes)
        self._pending += data[start:end]

    def _on_part_end(self) -> None:
        if self._part.is_file:
            self._done = True
            self._part.is_file = False
