"""What a file is, decided from its bytes: never from the client's header or name.

puremagic (a pure-Python magic-number library) names images and tells executables and
the like apart; our own checks recognise PDF (`%PDF-`), DOCX and XLSX (a ZIP whose
`[Content_Types].xml` declares the main part) and text (valid UTF-8, no NUL, hardly any
control characters). Anything else is 415 `unsupported_file_type`.
"""

from __future__ import annotations

import codecs
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import puremagic

from app.core.errors import UnsupportedMediaType

HEAD_BYTES = 8192
TEXT_CHUNK = 128 * 1024  # small: every upload in flight holds about three of these
IMAGE_TYPES = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_OOXML_MAIN = {
    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": DOCX,
    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": XLSX,
    b"application/vnd.ms-excel.sheet.macroEnabled.main+xml": XLSX,
}
MAX_CONTENT_TYPES_BYTES = 256 * 1024
TEXT_TYPES = ("text/plain", "text/csv", "text/markdown")
# every content type a file can have (a download is documented with each)
DOWNLOAD_TYPES = (*IMAGE_TYPES, PDF, DOCX, XLSX, *TEXT_TYPES)
# text subtypes: the bytes prove it is text; only then does the name's extension pick one
_TEXT_SUBTYPES = {".csv": "text/csv", ".md": "text/markdown", ".markdown": "text/markdown"}
# tab, newline, carriage return and form feed are text; other C0 controls (and DEL) are not
_CONTROL = bytes(sorted(set(range(32)) - {9, 10, 12, 13} | {127}))
# puremagic's answer must agree with the format's own signature at offset 0
_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/jpeg": lambda head: head.startswith(b"\xff\xd8\xff"),
    "image/png": lambda head: head.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/gif": lambda head: head[:6] in (b"GIF87a", b"GIF89a"),
    "image/webp": lambda head: head[:4] == b"RIFF" and head[8:12] == b"WEBP",
}


@dataclass(frozen=True)
class Sniffed:
    """The type the bytes show: `kind` (image, document, text) and the content type."""

    kind: str
    content_type: str
    text_chars: int = 0  # text files: their length in characters


def unsupported(what: str = "") -> UnsupportedMediaType:
    """The 415 for a type the server does not take."""
    detail = "Supported: JPEG, PNG, WebP, GIF, PDF, DOCX, XLSX, CSV and UTF-8 text"
    return UnsupportedMediaType(f"{what}{detail}" if what else detail)


def sniff(path: Path, *, name: str) -> Sniffed:
    """The file's type from its bytes; 415 `unsupported_file_type` otherwise."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
    if not head:
        raise unsupported("The file is empty. ")
    if head.startswith(b"%PDF-"):
        return Sniffed("document", PDF)
    if head.startswith(b"PK\x03\x04"):
        return Sniffed("document", _ooxml_type(path))
    image = image_type(head)
    if image is not None:
        return Sniffed("image", image)
    chars = text_chars(path)
    if chars is not None:
        suffix = Path(name).suffix.lower()
        return Sniffed("text", _TEXT_SUBTYPES.get(suffix, "text/plain"), chars)
    raise unsupported()


def image_type(head: bytes) -> str | None:
    """An image type puremagic is sure of (an executable or archive is None)."""
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return None
    for match in matches:
        check = _SIGNATURES.get(match.mime_type)
        if check is not None and check(head):
            return str(match.mime_type)
    return None


def _ooxml_type(path: Path) -> str:
    """DOCX or XLSX by the main part `[Content_Types].xml` declares; 415 for other ZIPs."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("[Content_Types].xml")
            if info.file_size > MAX_CONTENT_TYPES_BYTES:
                raise unsupported("The archive's content types are oversized. ")
            declared = archive.read(info)
    except (KeyError, zipfile.BadZipFile, OSError, RuntimeError, EOFError) as exc:
        raise unsupported("A ZIP archive that is not a DOCX or XLSX document. ") from exc
    for marker, content_type in _OOXML_MAIN.items():
        if marker in declared:
            return content_type
    raise unsupported("An Office archive of another kind. ")


def text_chars(path: Path) -> int | None:
    """The length in characters of a text file, None for anything else: valid UTF-8 (a BOM
    is fine) without NUL and with at most 1 % other control bytes, checked in 128 KiB chunks
    (never the whole file in memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    controls = total = chars = 0
    with path.open("rb") as handle:
        while chunk := handle.read(TEXT_CHUNK):
            if b"\x00" in chunk:
                return None
            try:
                chars += len(decoder.decode(chunk))
            except UnicodeDecodeError:
                return None
            controls += len(chunk) - len(chunk.translate(None, _CONTROL))
            total += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return chars if controls * 100 <= total else None
