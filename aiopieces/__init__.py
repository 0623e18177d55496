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
    ModelNotFoundError,
    PiecesAPIError,
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesError,
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
    WireType,
)
from ._version import __version__

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
    "Model",
    "ModelCapabilities",
    "ModelDeleteCacheInput",
    "ModelDeleteCacheOutput",
    "ModelDownloadProgress",
    "ModelDownloadProgressStatusEnum",
    "ModelFoundationEnum",
    "ModelMaxTokens",
    "ModelNotFoundError",
    "ModelTypeEnum",
    "ModelUsageEnum",
    "Models",
    "OpenEnum",
    "PiecesAPIError",
    "PiecesClientStateError",
    "PiecesConnectionError",
    "PiecesDecodeError",
    "PiecesError",
    "PiecesStreamError",
    "PiecesTimeoutError",
    "ReferencedEntity",
    "ReferencedModel",
    "Retry",
    "Score",
    "SeededModel",
    "Timeout",
    "WireType",
    "__version__",
    "discover_pieces_os",
]
