"""The hand-written part of the enums: the open base class and our names for some values.

Nothing here is generated. `scripts/gen_enums.py` writes `_generated.py`, whose classes
derive from `OpenEnum`, and reads `RENAMED` (as text, without importing it) to give the
values listed there our name, keeping the official one as an alias.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["RENAMED", "OpenEnum"]

#: Our member name for a value, by enum, where the official SDK's reads badly; the
#: generated class lists ours in the value's place and the official name after all
#: members, as an alias of it (so `IN_MINUS_PROGRESS` still works).
RENAMED: Final[dict[str, dict[str, str]]] = {
    "ModelDownloadProgressStatusEnum": {"IN-PROGRESS": "IN_PROGRESS"},
}


class OpenEnum(enum.StrEnum):
    """A string enum that keeps values it does not know instead of rejecting them."""

    @classmethod
    def _missing_(cls, value: object) -> OpenEnum | None:
        # PiecesOS adds foundations, providers and statuses in most releases; an
        # unknown string becomes a pseudo-member that keeps its exact value, so it
        # compares, hashes and re-encodes as the string the server sent.
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        """Whether this value is one this release of aiopieces knows."""
        return self._value_ in type(self)._value2member_map_

    def __str__(self) -> str:
        return str(self.value)
