"""Wire types: names, optional fields, open enums, unknown fields, round-trips."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import pytest

from aiopieces import (
    ByteDescriptor,
    EmbeddedModelSchema,
    ExternalMLProviderEnum,
    GroupedTimestamp,
    Model,
    ModelCapabilities,
    ModelDeleteCacheInput,
    ModelDeleteCacheOutput,
    ModelDownloadProgress,
    ModelDownloadProgressStatusEnum,
    ModelFoundationEnum,
    ModelLookupError,
    ModelMaxTokens,
    Models,
    ModelTypeEnum,
    ModelUsageEnum,
    ReferencedEntity,
    ReferencedModel,
    Score,
    SeededModel,
    SeededScore,
    SeededScoreIncrement,
)
from aiopieces import EmbeddedModelSchemaSemanticVersionEnum as Semantic
from aiopieces.testing import Shape, default_catalog

SCHEMA = {"migration": 3, "semantic": "MAJOR_0_MINOR_0_PATCH_1"}
FULL_MODEL: dict[str, Any] = {
    "id": "m-1",
    "name": "Llama-3 8B",
    "version": "1.0.0",
    "cloud": False,
    "created": {"value": "2025-03-04T05:06:07.123000Z", "readable": "4 Mar", "schema": SCHEMA},
    "type": "BALANCED",
    "usage": "CODE_CONVERSATION",
    "bytes": {"value": 5_000_000_000, "readable": "5 GB"},
    "ram": {"value": 6_000_000_000, "readable": "6 GB", "schema": SCHEMA},
    "capabilities": {"assets": True, "images": False, "videos": None},
    "cpu": False,
    "custom": True,
    "denied": False,
    "description": "a model",
    "downloaded": True,
    "downloading": False,
    "foundation": "LLAMA_3_8B",
    "loaded": False,
    "maxTokens": {"total": 8192, "input": 8192, "output": 4096.5},
    "organization": {
        "id": "org-1",
        "reference": {
            "id": "org-1",
            "name": "Acme",
            "type": "ORGANIZATION",
            "configuration": {"nested": [1, 2.5, None, {"deep": True}]},
            "created": {"value": "2024-01-01T00:00:00Z"},
            "updated": {"value": "2024-01-02T00:00:00Z"},
        },
    },
    "parameters": 8,
    "provider": "META",
    "quantization": "q4f16_1",
    "score": {"manual": 1, "automatic": 2, "priority": 3, "update": 4},
    "unique": "llama-3-8b",
    "schema": SCHEMA,
}


def test_model_round_trip_keeps_every_field() -> None:
    raw = msgspec.json.encode(FULL_MODEL)
    model = msgspec.json.decode(raw, type=Model)
    again = msgspec.json.decode(msgspec.json.encode(model))
    expected = msgspec.json.decode(raw)
    # The only rewrites: null-valued optional fields, and a false `cloud` (PiecesOS sends
    # it only for cloud models), are left out instead.
    del expected["capabilities"]["videos"]
    del expected["cloud"]
    assert again == expected


def test_snake_case_attributes_and_schema_wire_names() -> None:
    model = msgspec.json.decode(msgspec.json.encode(FULL_MODEL), type=Model)
    assert model.max_tokens == ModelMaxTokens(total=8192, input=8192, output=4096.5)
    assert model.schema == EmbeddedModelSchema(
        migration=3, semantic=Semantic.MAJOR_0_MINOR_0_PATCH_1
    )
    encoded = msgspec.json.decode(msgspec.json.encode(model))
    assert "maxTokens" in encoded and "max_tokens" not in encoded


def test_unset_optional_fields_are_not_sent_as_null() -> None:
    seeded = SeededModel(
        name="mine",
        version="1",
        cloud=False,
        created=GroupedTimestamp(value=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        type=ModelTypeEnum.SPEED,
        usage=ModelUsageEnum.CODE_CONVERSATION,
    )
    assert msgspec.json.decode(msgspec.json.encode(seeded)) == {
        "name": "mine",
        "version": "1",
        "cloud": False,
        "created": {"value": "2025-01-01T00:00:00Z"},
        "type": "SPEED",
        "usage": "CODE_CONVERSATION",
    }


def test_required_nullable_field_is_sent_as_null() -> None:
    assert msgspec.json.encode(ModelMaxTokens(total=None)) == b'{"total":null}'


def test_a_model_needs_only_its_id() -> None:
    with pytest.raises(msgspec.ValidationError, match="`id`"):
        msgspec.json.decode(b'{"name": "no id"}', type=Model)
    assert msgspec.json.decode(b'{"id": "m"}', type=Model) == Model(id="m")


@pytest.mark.parametrize(
    ("missing", "default"),
    [
        ("name", ""),
        ("version", ""),
        ("cloud", False),
        ("created", None),
        ("type", ModelTypeEnum.UNKNOWN),
        ("usage", ModelUsageEnum.UNKNOWN),
    ],
)
def test_fields_the_schema_requires_but_pieces_os_leaves_out_have_defaults(
    missing: str, default: object
) -> None:
    raw = {k: v for k, v in FULL_MODEL.items() if k != missing}
    model = msgspec.json.decode(msgspec.json.encode(raw), type=Model)
    assert getattr(model, missing) == default
    # And a default is not sent as if the server had said it.
    assert missing not in msgspec.json.decode(msgspec.json.encode(model))


# What a captured `GET /models` of PiecesOS 10 looked like (issue 13): no `cloud` on
# local and internal models, no foundation on internal ones, milliseconds in timestamps.
CAPTURED = {
    "iterable": [
        {
            "schema": {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"},
            "id": "d9b2-ocr",
            "version": "t11-v09-i01",
            "created": {"value": "2024-05-22T16:00:00.000Z", "readable": "5 months ago"},
            "name": "OCR",
            "type": "SPEED",
            "usage": "VIDEO_OCR",
            "loaded": True,
            "cpu": True,
            "downloading": False,
        },
        {
            "schema": {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"},
            "id": "77c1-gemma",
            "version": "t11-v02-i01",
            "created": {"value": "2024-06-01T08:30:00.123Z", "readable": "4 months ago"},
            "name": "Gemma 1.1 7B",
            "type": "BALANCED",
            "usage": "CODE_CONVERSATION",
            "foundation": "GEMMA_1.1_7B",
            "loaded": False,
            "unique": "gemma-1.1-7b-it",
            "provider": "META",
            "cpu": False,
            "downloading": False,
            "maxTokens": {"total": 8192},
        },
        {
            "schema": {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"},
            "id": "0a4e-claude",
            "version": "20241022",
            "created": {"value": "2024-10-22T00:00:00.000Z", "readable": "a day ago"},
            "name": "Claude 3.5 Sonnet",
            "cloud": True,
            "type": "BALANCED",
            "usage": "CODE_CONVERSATION",
            "foundation": "CLAUDE_3.5",
            "loaded": False,
            "provider": "ANTHROPIC",
            "cpu": False,
            "downloading": False,
            "maxTokens": {"total": 200000, "input": 200000, "output": 8192},
        },
        {"id": "only-an-id"},
    ]
}


def test_a_captured_answer_decodes() -> None:
    models = msgspec.json.decode(msgspec.json.encode(CAPTURED), type=Models).iterable
    ocr, gemma, claude, bare = models
    assert not ocr.cloud and ocr.foundation is None and ocr.usage is ModelUsageEnum.VIDEO_OCR
    assert ocr.created is not None and ocr.created.readable == "5 months ago"
    assert gemma.created is not None
    assert gemma.created.value == dt.datetime(2024, 6, 1, 8, 30, 0, 123_000, tzinfo=dt.UTC)
    assert gemma.foundation is ModelFoundationEnum.GEMMA_1_DOT_1_7_B
    assert gemma.max_tokens == ModelMaxTokens(total=8192)
    assert claude.cloud and claude.foundation is ModelFoundationEnum.CLAUDE_3_DOT_5
    assert bare == Model(id="only-an-id")
    assert not bare.downloaded and not bare.cloud
    assert msgspec.json.decode(b"{}", type=Models) == Models(iterable=[])


@pytest.mark.parametrize(
    ("type_", "body", "expected"),
    [
        (EmbeddedModelSchema, b"{}", EmbeddedModelSchema(migration=0, semantic=Semantic.UNKNOWN)),
        (ModelMaxTokens, b"{}", ModelMaxTokens(total=None)),
        (ByteDescriptor, b'{"value": 5}', ByteDescriptor(value=5, readable="")),
        (Score, b"{}", Score(manual=0, automatic=0)),
        (Models, b"{}", Models(iterable=[])),
        (ModelDownloadProgress, b"{}", ModelDownloadProgress()),
    ],
)
def test_absent_required_fields_decode_to_their_documented_default(
    type_: type[msgspec.Struct], body: bytes, expected: msgspec.Struct
) -> None:
    assert msgspec.json.decode(body, type=type_) == expected


@pytest.mark.parametrize(
    ("type_", "missing"),
    [
        (GroupedTimestamp, "value"),
        (ByteDescriptor, "value"),
        (ReferencedModel, "id"),
        (ReferencedEntity, "id"),
        (ModelDeleteCacheOutput, "model"),
        (Model, "id"),
    ],
)
def test_what_makes_an_object_meaningless_stays_required(
    type_: type[msgspec.Struct], missing: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=f"`{missing}`"):
        msgspec.json.decode(b'{"readable": "r"}', type=type_)


@pytest.mark.parametrize("missing", ["name", "version", "cloud", "created", "type", "usage"])
def test_seeded_model_keeps_the_schema_s_required_fields(missing: str) -> None:
    raw = {k: v for k, v in FULL_MODEL.items() if k not in {"id", missing}}
    with pytest.raises(msgspec.ValidationError, match=f"`{missing}`"):
        msgspec.json.decode(msgspec.json.encode(raw), type=SeededModel)


def test_what_we_send_keeps_the_keys_the_schema_requires() -> None:
    """Nested types `SeededModel` shares send their required keys even at the default."""
    assert msgspec.json.encode(ByteDescriptor(value=1)) == b'{"value":1,"readable":""}'
    assert msgspec.json.encode(EmbeddedModelSchema()) == b'{"migration":0,"semantic":"UNKNOWN"}'
    assert msgspec.json.encode(ModelMaxTokens()) == b'{"total":null}'


def test_unknown_enum_values_decode_keep_their_string_and_re_encode() -> None:
    raw = {
        **FULL_MODEL,
        "foundation": "GPT_7_ULTRA",
        "provider": "NEW_LAB",
        "type": "FRUGAL",
        "usage": "TIME_TRAVEL",
    }
    model = msgspec.json.decode(msgspec.json.encode(raw), type=Model)
    assert isinstance(model.foundation, ModelFoundationEnum)
    assert model.foundation == "GPT_7_ULTRA" and model.foundation.value == "GPT_7_ULTRA"
    assert not model.foundation.is_known
    assert model.provider == "NEW_LAB" and model.type == "FRUGAL" and model.usage == "TIME_TRAVEL"
    out = msgspec.json.decode(msgspec.json.encode(model))
    assert (out["foundation"], out["provider"], out["type"], out["usage"]) == (
        "GPT_7_ULTRA",
        "NEW_LAB",
        "FRUGAL",
        "TIME_TRAVEL",
    )


def test_known_enum_values_are_the_members() -> None:
    model = msgspec.json.decode(msgspec.json.encode(FULL_MODEL), type=Model)
    assert model.foundation is ModelFoundationEnum.LLAMA_3_8_B
    assert model.provider is ExternalMLProviderEnum.META
    assert model.foundation is not None and model.foundation.is_known
    status = msgspec.json.decode(b'{"status":"IN-PROGRESS"}', type=ModelDownloadProgress).status
    assert status is ModelDownloadProgressStatusEnum.IN_PROGRESS
    assert status is ModelDownloadProgressStatusEnum.IN_MINUS_PROGRESS  # type: ignore[comparison-overlap]  # official name
    assert ModelFoundationEnum("GPT_3.5") is ModelFoundationEnum.GPT_3_DOT_5


def test_unknown_fields_never_break_decoding() -> None:
    raw = {**FULL_MODEL, "brandNew": {"x": [1]}, "created": {**FULL_MODEL["created"], "tz": 1}}
    model = msgspec.json.decode(msgspec.json.encode(raw), type=Model)
    assert model.id == "m-1"


def test_referenced_entity_graph_survives_unchanged() -> None:
    model = msgspec.json.decode(msgspec.json.encode(FULL_MODEL), type=Model)
    out = msgspec.json.decode(msgspec.json.encode(model))
    assert out["organization"] == FULL_MODEL["organization"]


def test_timestamps_are_timezone_aware() -> None:
    stamp = msgspec.json.decode(b'{"value":"2025-03-04T05:06:07+02:00"}', type=GroupedTimestamp)
    assert stamp.value.utcoffset() == dt.timedelta(hours=2)
    naive = msgspec.json.decode(b'{"value":"2025-03-04T05:06:07"}', type=GroupedTimestamp)
    assert naive.value.tzinfo is dt.UTC
    assert GroupedTimestamp(value=dt.datetime(2025, 1, 1)).value.tzinfo is dt.UTC


@pytest.mark.parametrize(
    "obj",
    [
        ByteDescriptor(
            value=1, readable="1 B", schema=EmbeddedModelSchema(migration=0, semantic=Semantic("X"))
        ),
        ModelCapabilities(images=True),
        Score(manual=1, automatic=0, searched=2),
        ReferencedModel(id="m"),
        ReferencedEntity(id="e", reference={"a": [1, {"b": None}]}),
        ModelDeleteCacheInput(),
        ModelDeleteCacheOutput(model=ReferencedModel(id="m")),
        ModelDownloadProgress(status=ModelDownloadProgressStatusEnum.RESET, percentage=12.5),
        Models(iterable=[], score=Score(manual=0, automatic=0)),
    ],
)
def test_every_wire_type_round_trips(obj: msgspec.Struct) -> None:
    assert msgspec.json.decode(msgspec.json.encode(obj), type=type(obj)) == obj


@pytest.mark.parametrize("shape", ["pieces", "schema"])
def test_the_emulator_catalog_is_valid_and_round_trips(shape: Shape) -> None:
    catalog = default_catalog(shape)
    assert 30 <= len(catalog) <= 45
    models = msgspec.json.decode(msgspec.json.encode({"iterable": catalog}), type=Models)
    again = msgspec.json.decode(msgspec.json.encode(models))["iterable"]
    for sent, received in zip(catalog, again, strict=True):
        # "…09:00:00.000Z" comes back as the same instant, written "…09:00:00Z".
        sent_time = dt.datetime.fromisoformat(sent.pop("created")["value"])
        assert dt.datetime.fromisoformat(received.pop("created")["value"]) == sent_time
        if sent.get("cloud") is False:
            del sent["cloud"]  # the default, left out as PiecesOS leaves it out
        assert received == sent


def test_every_catalog_enum_value_is_known() -> None:
    """So that the official SDK reads the schema shape without mapping any to UNKNOWN."""
    for model in msgspec.json.decode(
        msgspec.json.encode({"iterable": default_catalog("schema")}), type=Models
    ).iterable:
        for value in [model.type, model.usage, model.foundation, model.provider]:
            assert value is None or value.is_known, (model.name, value)


def test_terminal_statuses() -> None:
    terminal = {
        s for s in ModelDownloadProgressStatusEnum if ModelDownloadProgress(status=s).is_terminal
    }
    assert terminal == {"COMPLETED", "FAILED", "CANCELED"}
    assert not ModelDownloadProgress(status=ModelDownloadProgressStatusEnum("PAUSED")).is_terminal


# -- Models.find and the score body ------------------------------------------------------


def _models(*models: tuple[str, str, str | None]) -> Models:
    return Models(iterable=[Model(id=i, name=n, unique=u) for i, n, u in models])


def test_find_prefers_an_id_then_unique_then_exact_name_then_any_case() -> None:
    models = _models(("a", "Llama", None), ("b", "llama", "a"), ("c", "GPT", "gpt-4o"))
    assert models.find("a").id == "a"  # an id wins over a unique name
    assert models.find("gpt-4o").id == "c"
    assert models.find("llama").id == "b"  # the exact name wins over the case-blind one
    assert models.find("gpt").id == "c"


@pytest.mark.parametrize(
    ("name", "matches", "message"),
    [
        ("", [], "no model has the id or name ''"),
        ("nothing", [], "no model has the id or name 'nothing'"),
        ("twin", ["t1", "t2"], "'twin' names 2 models: use an id (t1, t2)"),
        ("TWIN", ["t1", "t2"], "'TWIN' names 2 models: use an id (t1, t2)"),
    ],
)
def test_find_says_what_it_could_not_decide(name: str, matches: list[str], message: str) -> None:
    models = _models(("t1", "twin", None), ("t2", "twin", None))
    with pytest.raises(ModelLookupError) as info:
        models.find(name)
    assert (info.value.name_or_id, info.value.matches, str(info.value)) == (name, matches, message)


def test_find_takes_only_text() -> None:
    with pytest.raises(TypeError, match=r"^find\(\) takes an id or a name, not int$"):
        _models().find(7)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"schema": {}}, "give schema as fields, not in `other`"),
        ({"model": {}, "schema": {}, "x": 1}, "give model, schema as fields, not in `other`"),
    ],
)
def test_a_score_increment_refuses_typed_keys_in_other(other: dict[str, Any], message: str) -> None:
    increment = SeededScoreIncrement(model=SeededScore(reuse=True), other=other)
    with pytest.raises(ValueError, match=f"^{message}$"):
        increment.to_json_object()


def test_a_score_increment_sends_other_beside_the_typed_keys() -> None:
    increment = SeededScoreIncrement(model=SeededScore(reuse=True), other={"asset": {"x": 1}})
    assert increment.to_json_object() == {"asset": {"x": 1}, "model": {"reuse": True}}
