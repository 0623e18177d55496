"""aiopieces: a fully async Python client for PiecesOS's Model and Models APIs."""

from ._client import AsyncPiecesClient, ClientState
from ._config import DEFAULT_BASE_URL, Timeout, discover_pieces_os
from ._enums import (
    EmbeddedModelSchemaSemanticVersionEnum,
    ExternalMLProviderEnum,
    ModelDownloadProgressStatusEnum,
    ModelFoundationEnum,
    ModelTypeEnum,
    ModelUsageEnum,
    OpenEnum,
)
from ._exceptions import (
    ModelLookupError,
    ModelNotFoundError,
    PiecesAPIError,
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesError,
    PiecesRequestError,
    PiecesStreamError,
    PiecesTimeoutError,
)
from ._progress import DownloadProgress
from ._retry import Retry
from ._types import (
    ByteDescriptor,
    EmbeddedModelSchema,
    GroupedTimestamp,
    Model,
    ModelCapabilities,
    ModelDeleteCacheInput,
    ModelDeleteCacheOutput,
    ModelDownloadProgress,
    ModelMaxTokens,
    Models,
    ReferencedEntity,
    ReferencedModel,
    Score,
    SeededModel,
    SeededScore,
    SeededScoreIncrement,
    StreamedIdentifier,
    StreamedIdentifiers,
    WireType,
)
from ._version import __version__
from ._watch import LiveModels, ModelChange, ModelWatch

__all__ = [
    "DEFAULT_BASE_URL",
    "AsyncPiecesClient",
    "ByteDescriptor",
    "ClientState",
    "DownloadProgress",
    "EmbeddedModelSchema",
    "EmbeddedModelSchemaSemanticVersionEnum",
    "ExternalMLProviderEnum",
    "GroupedTimestamp",
    "LiveModels",
    "Model",
    "ModelCapabilities",
    "ModelChange",
    "ModelDeleteCacheInput",
    "ModelDeleteCacheOutput",
    "ModelDownloadProgress",
    "ModelDownloadProgressStatusEnum",
    "ModelFoundationEnum",
    "ModelLookupError",
    "ModelMaxTokens",
    "ModelNotFoundError",
    "ModelTypeEnum",
    "ModelUsageEnum",
    "ModelWatch",
    "Models",
    "OpenEnum",
    "PiecesAPIError",
    "PiecesClientStateError",
    "PiecesConnectionError",
    "PiecesDecodeError",
    "PiecesError",
    "PiecesRequestError",
    "PiecesStreamError",
    "PiecesTimeoutError",
    "ReferencedEntity",
    "ReferencedModel",
    "Retry",
    "Score",
    "SeededModel",
    "SeededScore",
    "SeededScoreIncrement",
    "StreamedIdentifier",
    "StreamedIdentifiers",
    "Timeout",
    "WireType",
    "__version__",
    "discover_pieces_os",
]


def _publish(names: list[str]) -> None:
    """Make public classes and functions report `aiopieces`, where users import them from.

    Tracebacks, reprs and docs then say `aiopieces.PiecesConnectionError`, not the private
    module that defines it, and pickle finds every class here. A class's string
    annotations (`from __future__ import annotations`) are resolved by
    `typing.get_type_hints` and msgspec in the module `__module__` names, which does not
    hold their names: they are evaluated first, where they were written.
    """
    import contextlib
    import inspect
    import types

    for name in names:
        obj = globals()[name]
        if isinstance(obj, type):
            if inspect.get_annotations(obj):
                with contextlib.suppress(NameError):  # a name only type checkers import
                    obj.__annotations__ = inspect.get_annotations(obj, eval_str=True)
            obj.__module__ = __name__
        elif isinstance(obj, types.FunctionType):
            obj.__module__ = __name__


_publish(__all__)
