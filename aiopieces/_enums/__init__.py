"""PiecesOS enums, open to values this release does not know.

Member names follow the official `pieces-os-client` 5.0.1 SDK (`GPT_3_DOT_5` for
`"GPT_3.5"`), so code migrating from it keeps working; values and docstrings come from
its schema. The classes are generated (`_generated.py`, by `scripts/gen_enums.py`); the
open base class and our own names for some values (`IN_PROGRESS` for `"IN-PROGRESS"`,
the official `IN_MINUS_PROGRESS` kept as an alias) are hand-written in `_base.py`.
See README.md here.
"""

from ._base import OpenEnum
from ._generated import (
    EmbeddedModelSchemaSemanticVersionEnum,
    ExternalMLProviderEnum,
    ModelDownloadProgressStatusEnum,
    ModelFoundationEnum,
    ModelTypeEnum,
    ModelUsageEnum,
)

__all__ = [
    "EmbeddedModelSchemaSemanticVersionEnum",
    "ExternalMLProviderEnum",
    "ModelDownloadProgressStatusEnum",
    "ModelFoundationEnum",
    "ModelTypeEnum",
    "ModelUsageEnum",
    "OpenEnum",
]
