"""Wire types of the PiecesOS Model and Models APIs, as msgspec Structs.

Attributes are snake_case; the JSON names are the schema's (`maxTokens`, `schema`).
Optional fields default to `None` and are left out of the JSON when unset, never sent
as `null`. Unknown JSON fields are ignored, and enum fields keep values this release
does not know (see `aiopieces._enums`).

Tolerant in: PiecesOS leaves out fields the schema marks required (a local model has no
`cloud`; empty values are left out rather than sent as `null`), so every type we decode
gives such a field a default, and only what makes an object meaningless stays required
(a model's `id`, a timestamp's `value`). Each type's docstring says what an absent field
means. Faithful out: `update_model` sends back the server's own JSON with only the fields
you changed replaced, so a default never turns into a key PiecesOS did not send.
`SeededModel`, which we build and send, keeps the schema's required fields; the nested
types it shares keep sending their required keys (`_sent` defaults) even at the default.
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
    "SeededScore",
    "SeededScoreIncrement",
    "StreamedIdentifier",
    "StreamedIdentifiers",
    "WireType",
]

Number = int | float


def _none() -> None:
    return None


def _zero() -> int:
    return 0


def _empty() -> str:
    return ""


def _unknown_semantic() -> EmbeddedModelSchemaSemanticVersionEnum:
    return EmbeddedModelSchemaSemanticVersionEnum.UNKNOWN


# A `default_factory` default is decoded when the key is absent but, unlike a plain
# default, still encoded (msgspec's `omit_defaults` only leaves out plain defaults): for
# required fields of the types `SeededModel` shares, so that what we send keeps every key
# the schema requires. The factories return immutable values.


class WireType(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel", gc=False):
    """Base of every PiecesOS wire type: keyword construction, camelCase JSON names."""

    # gc=False: wire types hold data, never cycles, so the garbage collector need not
    # track them; decoding a large /models body then runs no collection at all.


class EmbeddedModelSchema(WireType):
    """The schema version a PiecesOS object was written with.

    Absent fields: `migration` is 0 and `semantic` is `UNKNOWN` (a version marker is never
    worth failing a decode for). Both are still sent, since the schema requires them.
    """

    migration: int = msgspec.field(default_factory=_zero)
    semantic: EmbeddedModelSchemaSemanticVersionEnum = msgspec.field(
        default_factory=_unknown_semantic
    )


class GroupedTimestamp(WireType):
    """A point in time; `value` is timezone-aware (a naive datetime is taken as UTC).

    PiecesOS sends `{"value": "2024-05-22T16:00:00.000Z", "readable": "5 months ago"}`:
    `readable` is a humanised age. Absent fields: `value` stays required (a timestamp
    without a time means nothing); no `readable` is `None`.
    """

    value: dt.datetime
    readable: str | None = None
    schema: EmbeddedModelSchema | None = None

    def __post_init__(self) -> None:
        if self.value.tzinfo is None:
            self.value = self.value.replace(tzinfo=dt.UTC)


class ByteDescriptor(WireType):
    """A size in bytes with its human-readable form.

    Absent fields: `value` stays required (a size without a number means nothing); no
    `readable` is `""` (format `value` yourself), still sent as the schema requires.
    """

    value: int
    readable: str = msgspec.field(default_factory=_empty)
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
    """Token limits of a model; `total` is required but may be null.

    Absent fields: no `total` is `None`, an unknown limit, as `null` is; it is still sent
    (as `null`), since the schema requires the key.
    """

    total: Number | None = msgspec.field(default_factory=_none)
    input: Number | None = None
    output: Number | None = None
    schema: EmbeddedModelSchema | None = None


class Score(WireType):
    """Activity points of an object.

    Absent fields: no `manual` or `automatic` is 0, no points of that kind.
    """

    manual: int = 0
    automatic: int = 0
    priority: int | None = None
    reference: int | None = None
    reuse: int | None = None
    searched: int | None = None
    update: int | None = None
    schema: EmbeddedModelSchema | None = None


class ReferencedModel(WireType):
    """A reference to a model by id.

    Absent fields: `id` stays required (a reference to nothing means nothing).
    """

    id: str
    schema: EmbeddedModelSchema | None = None


class ReferencedEntity(WireType):
    """A reference to an organisation; `reference` is its flattened graph, kept as JSON.

    Absent fields: `id` stays required (a reference to nothing means nothing).
    """

    id: str
    # About 45 types deep; kept as decoded JSON so that whatever the server sent
    # survives a decode and re-encode unchanged.
    reference: dict[str, Any] | None = None
    schema: EmbeddedModelSchema | None = None


class SeededModel(WireType):
    """What `create_model` sends: a model before PiecesOS gives it an id.

    Built by you and sent, never decoded from PiecesOS: the schema's required fields stay
    required here.
    """

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
    """A machine-learning model known to PiecesOS.

    Absent fields (PiecesOS leaves out some the schema requires, and empty values):
    `id` stays required, a model without one cannot be named. No `cloud` is `False`, a
    local or internal model (PiecesOS sends `cloud` only for cloud models). No `name` or
    `version` is `""`, none given. No `created` is `None`, unknown. No `type` or `usage`
    is `UNKNOWN`. The optional fields are `None` when absent; for the flags that means
    false as PiecesOS sends them: no `downloaded` is not downloaded (it is sent only
    once true), no `custom` or `denied` is a built-in, allowed model. A default is never
    sent back by `update_model` unless you change the field.
    """

    id: str
    name: str = ""
    version: str = ""
    cloud: bool = False
    created: GroupedTimestamp | None = None
    type: ModelTypeEnum = ModelTypeEnum.UNKNOWN
    usage: ModelUsageEnum = ModelUsageEnum.UNKNOWN
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
    """A list of models, as `GET /models` answers.

    Absent fields: no `iterable` is an empty list, no models (PiecesOS leaves out empty
    values).
    """

    iterable: list[Model] = []
    score: Score | None = None
    schema: EmbeddedModelSchema | None = None

    def find(self, name_or_id: str) -> Model:
        """The model with this id, else this `unique` name, else this exact name, else
        this name in any case.

        Raises `ModelLookupError` when none matches or a name matches several models.
        """
        from ._exceptions import ModelLookupError

        if not isinstance(name_or_id, str):
            raise TypeError(f"find() takes an id or a name, not {type(name_or_id).__name__}")
        if not name_or_id:
            raise ModelLookupError(name_or_id, [])  # an empty name names nothing
        for model in self.iterable:
            if model.id == name_or_id:
                return model
        for matches in (
            [m for m in self.iterable if m.unique == name_or_id],
            [m for m in self.iterable if m.name == name_or_id],
            [m for m in self.iterable if m.name.casefold() == name_or_id.casefold()],
        ):
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise ModelLookupError(name_or_id, [m.id for m in matches])
        raise ModelLookupError(name_or_id, [])


class ModelDownloadProgress(WireType):
    """One progress event of a model download, as the progress WebSocket sends it.

    A socket opened for a model that is not downloading first gets `{"status":"UNKNOWN"}`:
    PiecesOS knows no download of it yet (or cannot tell its state). `UNKNOWN`, like an
    absent `status` or a status this release does not know, never ends a stream; only
    `COMPLETED`, `FAILED` and `CANCELED` do. Absent fields: none is required; no
    `percentage` is `None`, not given.
    """

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
    """The answer of `POST /models/{model}/delete/cache`.

    Absent fields: `model` stays required; it is the answer's only content.
    """

    model: ReferencedModel
    schema: EmbeddedModelSchema | None = None


class SeededScore(WireType):
    """Which activity points to add to an object: each field set to `True` adds one."""

    priority: bool | None = None
    reference: bool | None = None
    reuse: bool | None = None
    searched: bool | None = None
    update: bool | None = None
    schema: EmbeddedModelSchema | None = None


class SeededScoreIncrement(WireType):
    """The body of `POST /model/{model}/scores/increment`: points to add to a model.

    PiecesOS shares this type across its whole API (assets, conversations, ...); only
    `model` concerns models. Any other key goes in `other`, as JSON, and is sent as given
    beside `model` and `schema`, so nothing a caller puts there is lost.
    """

    model: SeededScore | None = None
    schema: EmbeddedModelSchema | None = None
    #: The body's other keys (`asset`, `conversation`, ...), sent unchanged.
    other: dict[str, Any] = {}

    def to_json_object(self) -> dict[str, Any]:
        """The JSON object sent: `other`'s keys beside the typed ones."""
        body: dict[str, Any] = msgspec.to_builtins(self)
        other = body.pop("other", {})
        clash = sorted(set(other) & {"model", "schema"})
        if clash:
            raise ValueError(f"give {', '.join(clash)} as fields, not in `other`")
        return {**other, **body}


class StreamedIdentifier(WireType):
    """One change in the identifier stream: the model it concerns, and whether it is gone.

    The stream is shared across PiecesOS: an item about something else (an asset, a
    conversation) has no `model`, and aiopieces passes it on without reading it further.
    Absent fields: none is required; no `deleted` means the object exists.
    """

    model: ReferencedModel | None = None
    deleted: bool | None = None
    updated: GroupedTimestamp | None = None
    schema: EmbeddedModelSchema | None = None


class StreamedIdentifiers(WireType):
    """A batch of changes, as the `/models/stream/identifiers` WebSocket sends it.

    Absent fields: no `iterable` is an empty batch.
    """

    iterable: list[StreamedIdentifier] = []
    schema: EmbeddedModelSchema | None = None


TERMINAL_STATUSES = frozenset(
    {
        ModelDownloadProgressStatusEnum.COMPLETED,
        ModelDownloadProgressStatusEnum.FAILED,
        ModelDownloadProgressStatusEnum.CANCELED,
    }
)
