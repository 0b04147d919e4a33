"""Turn a tool result into the text the model reads, capped in size."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from mcp import types

from app.services.tools.types import ToolImage

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Drop control characters (keeping tab and newlines) and unpaired surrogates."""
    text = text.encode("utf-8", errors="replace").decode("utf-8")
    return _CONTROL.sub("", text)


def _blob_size(data: str) -> str:
    """The decoded size of base64 data, or a note that it is not base64."""
    try:
        return f"{len(base64.b64decode(data, validate=True))} bytes"
    except (binascii.Error, ValueError):
        return "invalid base64"


def image_note(mime_type: str, size: str) -> str:
    """How an image appears in a tool result's text (`size`: "N bytes" or "invalid base64")."""
    return f"[image: {mime_type}, {size}]"


def result_images(result: types.CallToolResult) -> tuple[ToolImage, ...]:
    """The images of a result, decoded (blocks that are not base64 are left out)."""
    images = []
    for block in result.content:
        if isinstance(block, types.ImageContent):
            try:
                images.append(
                    ToolImage(block.mime_type, base64.b64decode(block.data, validate=True))
                )
            except (binascii.Error, ValueError):
                continue
    return tuple(images)


def render_block(block: Any) -> str:
    """One content block as text; binary content is described, not inlined."""
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent):
        return image_note(block.mime_type, _blob_size(block.data))
    if isinstance(block, types.AudioContent):
        return f"[audio: {block.mime_type}, {_blob_size(block.data)}]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link: {block.name} <{block.uri}>]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return f"[resource <{resource.uri}>]\n{resource.text}"
        mime = resource.mime_type or "application/octet-stream"
        return f"[resource <{resource.uri}>: {mime}, {_blob_size(resource.blob)}]"
    if hasattr(block, "model_dump_json"):
        return str(block.model_dump_json(by_alias=True, exclude_none=True))
    return json.dumps(block, default=str)


def render_result(result: types.CallToolResult) -> str:
    """All content blocks joined; structured content only when there is nothing else."""
    parts = [render_block(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return clean_text("\n".join(parts))


def cap(text: str, *, max_bytes: int) -> str:
    """Cut `text` to `max_bytes` of UTF-8, ending with a note that says so."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    kept = data[:max_bytes].decode("utf-8", errors="ignore")
    return f"{kept}\n[truncated: the result was {len(data)} bytes; showing the first {max_bytes}]"
