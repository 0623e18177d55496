"""Wire types of the PiecesOS Model and Models APIs, as msgspec Structs.

Attributes are snake_case; the JSON names are the schema's (`maxTokens`, `schema`).
Optional fields default to `None` and are left out of the JSON when unset, never sent
as `null`. Unknown JSON fields are ignored, and enum fields keep values this release
does not know (see `aiopieces._enums`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from ._enums import (
    EmbeddedModelSchemaSemanticVersionEnum,
    ExternalMLProviderEnum,
    ModelDownloadProgressStatusEnum,
    ModelFoundationEnum,
    ModelTypeEnum,
    ModelUsageEnum,
)

__all__ = [
    "ByteDescriptor",
    "EmbeddedModelSchema",
    "GroupedTimestamp",
    "Model",
    "ModelCapabilities",
    "ModelDeleteCacheInput",
    "ModelDeleteCacheOutput",
    "ModelDownloadProgress",
    "ModelMaxTokens",
    "Models",
    "ReferencedEntity",
    "ReferencedModel",
    "Score",
    "SeededModel",
    "WireType",
]

Number = int | float


class WireType(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel", gc=False):
    """Base of every PiecesOS wire type: keyword construction, camelCase JSON names."""

    # gc=False: wire types hold data, never cycles, so the garbage collector need not
    # track them; decoding a large /models body then runs no collection at all.


class EmbeddedModelSchema(WireType):
    """The schema version a PiecesOS object was written with."""

    migration: int
    semantic: EmbeddedModelSchemaSemanticVersionEnum


class GroupedTimestamp(WireType):
    """A point in time; `value` is timezone-aware (a naive datetime is taken as UTC)."""

    value: dt.datetime
    readable: str | None = None
    schema: EmbeddedModelSchema | None = None

    def __post_init__(self) -> None:
        if self.value.tzinfo is None:
            self.value = self.value.replace(tzinfo=dt.UTC)


class ByteDescriptor(WireType):
    """A size in bytes with its human-readable form."""

    value: int
    readable: str
    schema: EmbeddedModelSchema | None = None


class ModelCapabilities(WireType):
    """What a model may be given in its context window."""

    assets: bool | None = None
    codebases: bool | None = None
    documents: bool | None = None
    images: bool | None = None
    temporal: bool | None = None
    videos: bool | None = None
    websites: bool | None = None
    schema: EmbeddedModelSchema | None = None


class ModelMaxTokens(WireType):
    """Token limits of a model; `total` is required but may be null."""

    total: Number | None
    input: Number | None = None
    output: Number | None = None
    schema: EmbeddedModelSchema | None = None


class Score(WireType):
    """Activity points of an object."""

    manual: int
    automatic: int
    priority: int | None = None
    reference: int | None = None
    reuse: int | None = None
    searched: int | None = None
    update: int | None = None
    schema: EmbeddedModelSchema | None = None


class ReferencedModel(WireType):
    """A reference to a model by id."""

    id: str
    schema: EmbeddedModelSchema | None = None


class ReferencedEntity(WireType):
    """A reference to an organisation; `reference` is its flattened graph, kept as JSON."""

    id: str
    # About 45 types deep; kept as decoded JSON so that whatever the server sent
    # survives a decode and re-encode unchanged.
    reference: dict[str, Any] | None = None
    schema: EmbeddedModelSchema | None = None


class SeededModel(WireType):
    """What `create_model` sends: a model before PiecesOS gives it an id."""

    name: str
    version: str
    cloud: bool
    created: GroupedTimestamp
    type: ModelTypeEnum
    usage: ModelUsageEnum
    bytes: ByteDescriptor | None = None
    capabilities: ModelCapabilities | None = None
    cpu: bool | None = None
    custom: bool | None = None
    denied: bool | None = None
    description: str | None = None
    downloaded: bool | None = None
    foundation: ModelFoundationEnum | None = None
    max_tokens: ModelMaxTokens | None = None
    organization: ReferencedEntity | None = None
    parameters: Number | None = None
    provider: ExternalMLProviderEnum | None = None
    quantization: str | None = None
    ram: ByteDescriptor | None = None
    unique: str | None = None
    schema: EmbeddedModelSchema | None = None


class Model(WireType):
    """A machine-learning model known to PiecesOS."""

    id: str
    name: str
    version: str
    cloud: bool
    created: GroupedTimestamp
    type: ModelTypeEnum
    usage: ModelUsageEnum
    bytes: ByteDescriptor | None = None
    capabilities: ModelCapabilities | None = None
    cpu: bool | None = None
    custom: bool | None = None
    denied: bool | None = None
    description: str | None = None
    downloaded: bool | None = None
    downloading: bool | None = None
    foundation: ModelFoundationEnum | None = None
    loaded: bool | None = None
    max_tokens: ModelMaxTokens | None = None
    organization: ReferencedEntity | None = None
    parameters: Number | None = None
    provider: ExternalMLProviderEnum | None = None
    quantization: str | None = None
    ram: ByteDescriptor | None = None
    score: Score | None = None
    unique: str | None = None
    schema: EmbeddedModelSchema | None = None


class Models(WireType):
    """A list of models, as `GET /models` answers."""

    iterable: list[Model]
    score: Score | None = None
    schema: EmbeddedModelSchema | None = None


class ModelDownloadProgress(WireType):
    """One progress event of a model download, as the progress WebSocket sends it."""

    status: ModelDownloadProgressStatusEnum | None = None
    percentage: Number | None = None
    schema: EmbeddedModelSchema | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether this event ends the download (completed, failed or canceled)."""
        return self.status in TERMINAL_STATUSES


class ModelDeleteCacheInput(WireType):
    """The optional body of `POST /models/{model}/delete/cache`."""

    schema: EmbeddedModelSchema | None = None


class ModelDeleteCacheOutput(WireType):
    """The answer of `POST /models/{model}/delete/cache`."""

    model: ReferencedModel
    schema: EmbeddedModelSchema | None = None


TERMINAL_STATUSES = frozenset(
    {
        ModelDownloadProgressStatusEnum.COMPLETED,
        ModelDownloadProgressStatusEnum.FAILED,
        ModelDownloadProgressStatusEnum.CANCELED,
    }
)
