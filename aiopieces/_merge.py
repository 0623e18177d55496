"""Merge a wire type into the JSON the server sent, keeping what the type does not know."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["merge_into"]


def merge_into(current: dict[str, Any], obj: msgspec.Struct) -> dict[str, Any]:
    """`current` (server JSON) overlaid with every field of `obj`, recursively.

    A field set on `obj` replaces the server's value (nested Structs merge field by
    field); a field that is `None` on `obj` is removed; keys `obj` has no field for are
    kept as the server sent them. `current` is not modified.
    """
    merged = dict(current)
    for field in msgspec.structs.fields(obj):
        value = getattr(obj, field.name)
        if value is None:
            merged.pop(field.encode_name, None)
        elif isinstance(value, msgspec.Struct):
            inner = merged.get(field.encode_name)
            merged[field.encode_name] = merge_into(inner if isinstance(inner, dict) else {}, value)
        else:
            merged[field.encode_name] = msgspec.to_builtins(value)
    return merged
