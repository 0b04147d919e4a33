"""Files for the upload tests, built in the test run (no binary fixtures in the repository)."""

from __future__ import annotations

import io
import struct
import uuid
import zipfile
import zlib

import docx
import openpyxl
from PIL import Image
from pypdf import PdfWriter


def image(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    """A small picture in `fmt` (PNG, JPEG, WEBP, GIF)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


def animated_gif() -> bytes:
    """A GIF of two frames of different colours."""
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (16, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


def pdf(pages: list[str]) -> bytes:
    """A PDF written by hand: one page per string, the string shown in Helvetica."""
    count = len(pages)
    font_id = 3 + 2 * count
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [{}] /Count {} >>".format(
            " ".join(f"{3 + 2 * i} 0 R" for i in range(count)), count
        ),
    ]
    for i, text in enumerate(pages):
        stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def blank_pdf(pages: int) -> bytes:
    """A PDF of empty pages (a scan without a text layer looks like this to a reader)."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def word(paragraphs: list[str]) -> bytes:
    """A DOCX with these paragraphs and a 2x2 table."""
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    table = document.add_table(rows=2, cols=2)
    for r in range(2):
        for c in range(2):
            table.cell(r, c).text = f"cell {r}{c}"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def spreadsheet(sheets: dict[str, list[list[object]]]) -> bytes:
    """An XLSX with these sheets and rows."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def with_member(archive: bytes, name: str, size: int) -> bytes:
    """`archive` plus a member of `size` zero bytes (deflated ~1000:1: a zip bomb)."""
    source = zipfile.ZipFile(io.BytesIO(archive))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, source.read(info))
        with target.open(name, "w", force_zip64=True) as member:
            block = bytes(1024 * 1024)
            for _ in range(size // len(block)):
                member.write(block)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pixel_bomb_png(side: int = 100_000) -> bytes:
    """A PNG whose header claims side x side pixels (10 gigapixels), a few hundred bytes long."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grey
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _chunk(b"IEND", b"")
    )


def windows_exe() -> bytes:
    """The first bytes of a Windows executable (MZ header, PE signature)."""
    head = bytearray(b"MZ" + b"\x90\x00" * 29 + b"\x00" * 2)
    head += b"\x00" * (0x3C - len(head)) + struct.pack("<I", 0x80)
    head += b"\x00" * (0x80 - len(head)) + b"PE\x00\x00" + b"\x4c\x01" + b"\x00" * 200
    return bytes(head)


def multipart(
    filename: bytes | str, data: bytes, content_type: str = "application/octet-stream"
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with `data` in the field `file` (the name sent as given)."""
    boundary = uuid.uuid4().hex
    name = filename.encode() if isinstance(filename, str) else filename
    body = (
        f"--{boundary}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + name
        + b'"\r\n'
        + f"Content-Type: {content_type}\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
