"""Checking and reading an upload once, at upload time (run off the event loop).

Each hostile shape is refused before the expensive part: an image's pixel count is read
from its header before any pixel is decoded, an archive's declared sizes and ratios before
any member is parsed (zipfile never inflates past a member's declared size), a PDF's page
count before any text is extracted. Limits are 413 `file_too_large` with the reason; a
file that claims a type and is not readable as it is 422 `unreadable_file`.
"""

from __future__ import annotations

import csv
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import docx
import openpyxl
from openpyxl.utils.exceptions import InvalidFileException
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from app.core.errors import InvalidInput, PayloadTooLarge
from app.services.files.sniff import DOCX, IMAGE_TYPES, PDF, sniff

MAX_PIXELS = 50_000_000
# Pillow refuses (DecompressionBombError) past twice this even where our own check is not run
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
DECODE_SIDE = 1024  # a JPEG is checked by decoding it at about this size
MAX_PAGES = 500
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
MAX_ZIP_RATIO = 200  # for members of 1 MiB and more (XML compresses ~10-30x)
MAX_ZIP_ENTRIES = 10_000
MAX_TEXT_CHARS = 2_000_000
# what malformed input makes these parsers raise (a bug of ours is none of these)
_PARSE_ERRORS = (
    PyPdfError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    RecursionError,
    zlib.error,
    zipfile.BadZipFile,
    OSError,
    EOFError,
    SyntaxError,  # lxml's XMLSyntaxError and defusedxml's refusals derive from it
    InvalidFileException,
)


@dataclass
class Inspection:
    """What an upload is and what was read from it."""

    kind: str
    content_type: str
    pages: int | None = None
    width: int | None = None
    height: int | None = None
    text: str | None = None  # documents' extracted text (stored beside the file)
    text_chars: int = 0
    has_text: bool = False


def unreadable(what: str) -> InvalidInput:
    """The 422 of a file that is not readable as the type its bytes claim."""
    return InvalidInput(f"The file cannot be read as {what}", code="unreadable_file")


def over_limit(reason: str) -> PayloadTooLarge:
    """The 413 of a file whose content is over a limit."""
    return PayloadTooLarge(f"The file is too large: {reason}", code="file_too_large")


def inspect(path: Path, *, name: str) -> Inspection:
    """Type, facts and text of an upload; 413/415/422 for what the server does not take."""
    sniffed = sniff(path, name=name)
    if sniffed.kind == "text":
        return Inspection(
            "text", sniffed.content_type, text_chars=sniffed.text_chars, has_text=True
        )
    if sniffed.kind == "image":
        return _image(path, sniffed.content_type)
    if sniffed.content_type == PDF:
        return _pdf(path)
    check_archive(path)
    try:
        text = _docx_text(path) if sniffed.content_type == DOCX else _xlsx_text(path)
    except _PARSE_ERRORS as exc:
        raise unreadable("DOCX" if sniffed.content_type == DOCX else "XLSX") from exc
    return _document(sniffed.content_type, text, pages=None)


def _image(path: Path, content_type: str) -> Inspection:
    """Size from the header (refused over MAX_PIXELS), then checked without holding a full
    decoded copy where the format allows: a PNG's chunks are verified (every CRC, no pixel
    decoded), a JPEG is decoded at a reduced scale; GIF and WebP decode their first frame."""
    expected = IMAGE_TYPES[content_type]
    try:
        with Image.open(path, formats=[expected]) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise over_limit(f"{width}x{height} pixels (at most {MAX_PIXELS})")
            if expected == "PNG":
                image.verify()
            else:
                image.draft("RGB", (DECODE_SIDE, DECODE_SIDE))  # JPEG only: 1/2 to 1/8 scale
                image.seek(0)  # GIF, animated WebP: the first frame
                image.load()
    except Image.DecompressionBombError as exc:
        raise over_limit(f"more than {MAX_PIXELS} pixels") from exc
    except (UnidentifiedImageError, *_PARSE_ERRORS) as exc:
        raise unreadable(expected) from exc
    return Inspection("image", content_type, width=width, height=height)


def _pdf(path: Path) -> Inspection:
    """Page count first (refused over MAX_PAGES), then the text of each page."""
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise unreadable("PDF: it is encrypted with a password")
        pages = len(reader.pages)
        if pages > MAX_PAGES:
            raise over_limit(f"{pages} pages (at most {MAX_PAGES})")
        text = _Text()
        for number, page in enumerate(reader.pages, start=1):
            if not text.add(f"[page {number}]\n{page.extract_text() or ''}\n\n"):
                break
    except _PARSE_ERRORS as exc:
        raise unreadable("PDF") from exc
    return _document(PDF, text.value(), pages=pages)


def _document(content_type: str, text: str, *, pages: int | None) -> Inspection:
    # a scanned PDF has page markers and nothing else: no text for the model to read
    has_text = any(
        line.strip() and not (line.startswith("[page ") and line.endswith("]"))
        for line in text.splitlines()
    )
    return Inspection(
        "document", content_type, pages=pages, text=text, text_chars=len(text), has_text=has_text
    )


def check_archive(path: Path) -> None:
    """Refuse a zip bomb by what the archive declares, before any member is parsed."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise unreadable("an Office document") from exc
    if len(members) > MAX_ZIP_ENTRIES:
        raise over_limit(f"{len(members)} archive members (at most {MAX_ZIP_ENTRIES})")
    total = sum(member.file_size for member in members)
    if total > MAX_UNZIPPED_BYTES:
        raise over_limit(f"unpacks to {total} bytes (at most {MAX_UNZIPPED_BYTES})")
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size >= 1024 * 1024 and ratio > MAX_ZIP_RATIO:
            raise over_limit(f"a member is compressed {ratio:.0f}:1 (at most {MAX_ZIP_RATIO}:1)")


def _docx_text(path: Path) -> str:
    """Paragraphs, then tables (cells separated by tabs)."""
    document = docx.Document(str(path))
    text = _Text()
    for paragraph in document.paragraphs:
        if not text.add(paragraph.text + "\n"):
            return text.value()
    for table in document.tables:
        for row in table.rows:
            if not text.add("\t".join(cell.text for cell in row.cells) + "\n"):
                return text.value()
    return text.value()


def _xlsx_text(path: Path) -> str:
    """Every sheet as CSV-like text under a `# Sheet: <name>` line (values, not formulas)."""
    handle = path.open("rb")  # a file object: openpyxl judges a path by its extension
    workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    text = _Text()
    try:
        for sheet in workbook.worksheets:
            if not text.add(f"# Sheet: {sheet.title}\n"):
                break
            for row in sheet.iter_rows(values_only=True):
                line = io.StringIO()
                csv.writer(line).writerow(["" if v is None else v for v in row])
                if not text.add(line.getvalue()):
                    return text.value()
            text.add("\n")
    finally:
        workbook.close()
        handle.close()
    return text.value()


class _Text:
    """Extracted text, cut at MAX_TEXT_CHARS with a note saying so."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._chars = 0
        self.cut = False

    def add(self, piece: str) -> bool:
        """Append; False once the limit is reached (stop extracting)."""
        room = MAX_TEXT_CHARS - self._chars
        if len(piece) > room:
            self._parts.append(piece[:room])
            self._chars = MAX_TEXT_CHARS
            self.cut = True
            return False
        self._parts.append(piece)
        self._chars += len(piece)
        return True

    def value(self) -> str:
        """The text (NUL removed: PostgreSQL text and most tools cannot carry it)."""
        text = "".join(self._parts).replace("\x00", "")
        if self.cut:
            text += f"\n[text cut at {MAX_TEXT_CHARS} characters]"
        return text
