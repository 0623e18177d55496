"""Send back what the server sent, changed only where the caller changed it."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["merge_into"]


def merge_into(
    current: dict[str, Any], served: msgspec.Struct, wanted: msgspec.Struct
) -> dict[str, Any]:
    """`current` (the server's JSON) with the fields where `wanted` differs from `served`.

    `served` is `current` decoded, `wanted` what the caller wants stored. A field the
    caller left as it was keeps the server's JSON exactly: its key or its absence, a
    `null`, a timestamp string, values and keys this release does not know. A changed
    field is written in our encoding (nested Structs field by field). A field the caller
    set to `None` is removed, as PiecesOS leaves empty values out, except where the
    schema requires the key (`ModelMaxTokens.total`): that one is sent as `null`.
    `current` is not modified.
    """
    merged = dict(current)
    for field in msgspec.structs.fields(wanted):
        value = getattr(wanted, field.name)
        if value == getattr(served, field.name, _MISSING):
            continue  # untouched: the server's own JSON (or its absence) stays
        key = field.encode_name
        if value is None and (type(wanted).__name__, key) not in _REQUIRED_NULLABLE:
            merged.pop(key, None)
            continue
        inner = merged.get(key)
        before = getattr(served, field.name, None)
        if (
            isinstance(value, msgspec.Struct)
            and isinstance(inner, dict)
            and isinstance(before, msgspec.Struct)
            and type(before) is type(value)
        ):
            merged[key] = merge_into(inner, before, value)
        else:
            merged[key] = msgspec.to_builtins(value)
    return merged


#: (type, wire name) of the keys the schema requires even when their value is null.
_REQUIRED_NULLABLE = frozenset({("ModelMaxTokens", "total")})


class _Missing:
    """Never equal to a field's value: `served` lacks the field."""


_MISSING = _Missing()
