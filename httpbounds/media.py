"""Media types."""

from __future__ import annotations


def is_json(content_type: str) -> bool:
    """`application/json` (any parameters) or a `+json` media type."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
