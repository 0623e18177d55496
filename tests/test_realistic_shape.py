"""What PiecesOS really sends (issue 13): tolerant in, faithful out, UNKNOWN progress.

PiecesOS leaves out fields the schema requires (`cloud` on local models) and empty
values. Property tests: any catalog model with any of its keys left out (but `id`)
decodes, each absent field to its documented default; and `update_model` of such a model
sends PiecesOS back exactly the keys and values it sent.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiopieces import AsyncPiecesClient, Model, PiecesAPIError
from aiopieces import ModelDownloadProgressStatusEnum as Status
from aiopieces.testing import SHAPES, PiecesOSEmulator, Shape, default_catalog
from aiopieces.testing._catalog import MODEL_KEY_ORDER

from .helpers import BOUND, LOCAL_NOT_DOWNLOADED, model_id

#: Both shapes of the built-in catalog, as (shape, model) pairs.
CATALOG = [(shape, model) for shape in SHAPES for model in default_catalog(shape)]
_DECODE = msgspec.json.Decoder(Model)
_FIELDS = {field.encode_name: field for field in msgspec.structs.fields(Model)}


def default_of(field: msgspec.structs.FieldInfo) -> Any:
    """What a `Model` field decodes to when its key is absent."""
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return field.default


@st.composite
def partial_models(draw: st.DrawFn) -> tuple[Shape, dict[str, Any], dict[str, Any]]:
    """A catalog model, and a copy of it with any of its keys but `id` left out."""
    shape, model = draw(st.sampled_from(CATALOG))
    dropped = draw(st.sets(st.sampled_from(sorted(set(model) - {"id"}))))
    return shape, model, {k: v for k, v in model.items() if k not in dropped}


@settings(max_examples=300, deadline=None)
@given(partial_models())
def test_any_subset_of_a_model_s_keys_decodes(
    case: tuple[Shape, dict[str, Any], dict[str, Any]],
) -> None:
    _, full, partial = case
    whole = _DECODE.decode(msgspec.json.encode(full))
    model = _DECODE.decode(msgspec.json.encode(partial))
    for key, field in _FIELDS.items():
        value = getattr(model, field.name)
        if key in partial:
            assert value == getattr(whole, field.name), key
        else:
            assert value == default_of(field), key


@st.composite
def served_models(draw: st.DrawFn) -> tuple[Shape, dict[str, Any]]:
    """A catalog model with any keys but `id` left out, maybe made a custom one."""
    shape, _, partial = draw(partial_models())
    if draw(st.booleans()):
        partial["custom"] = True  # PiecesOS updates only custom models
    return shape, partial


async def update_unchanged(shape: Shape, served: dict[str, Any]) -> bytes:
    """`update_model(await get_model(id))` against an emulator serving `served`; the body."""
    async with (
        PiecesOSEmulator([served], shape=shape) as emulator,
        AsyncPiecesClient(emulator.url, retry=None) as client,
    ):
        with anyio.fail_after(BOUND):
            model = await client.get_model(served["id"])
            if served.get("custom"):
                await client.update_model(model)
            else:
                with pytest.raises(PiecesAPIError, match="custom"):
                    await client.update_model(model)
        path, body = emulator.request_bodies[-1]
    assert path == "/model/update"
    return body


@settings(max_examples=60, deadline=None)
@given(served_models())
def test_update_sends_back_exactly_what_pieces_os_sent(case: tuple[Shape, dict[str, Any]]) -> None:
    shape, served = case
    body = anyio.run(update_unchanged, shape, served)
    # The same keys, the same values: no default turned into a key PiecesOS did not send,
    # and "2024-05-22T16:00:00.000Z" goes back as that string, not as "...:00Z".
    assert msgspec.json.decode(body) == served


async def test_a_changed_field_is_the_only_change(pieces_emulator: PiecesOSEmulator) -> None:
    served = {**default_catalog()[-1], "custom": True, "id": "custom-internal"}
    served.pop("foundation", None)
    pieces_emulator.add_model(served)
    async with AsyncPiecesClient(pieces_emulator.url) as client:
        model = await client.get_model("custom-internal")
        assert model.foundation is None and not model.cloud
        model.name = "renamed"
        updated = await client.update_model(model)
    sent = msgspec.json.decode(pieces_emulator.request_bodies[-1][1])
    assert sent == {**served, "name": "renamed"}
    assert updated.name == "renamed" and not updated.cloud


# -- the pieces shape of the built-in catalog ---------------------------------------------


def test_the_pieces_catalog_looks_like_the_captured_answer() -> None:
    now = dt.datetime(2025, 8, 10, tzinfo=dt.UTC)
    catalog = default_catalog("pieces", now=now)
    counts = Counter(key for model in catalog for key in model)
    total = len(catalog)
    always = ["schema", "id", "version", "created", "name", "type", "usage"]
    assert all(counts[key] == total for key in [*always, "loaded", "cpu", "downloading"])
    # Proportions like the capture's (42 models: foundation 34, unique 26, maxTokens 25,
    # provider 16, cloud 14).
    for key, captured in [
        ("foundation", 34),
        ("unique", 26),
        ("maxTokens", 25),
        ("provider", 16),
        ("cloud", 14),
    ]:
        assert abs(counts[key] / total - captured / 42) < 0.06, key
    for absent in ["description", "bytes", "capabilities", "parameters", "ram", "custom"]:
        assert counts[absent] == 0, absent
    for model in catalog:
        assert list(model) == [k for k in MODEL_KEY_ORDER if k in model]  # PiecesOS's order
        assert model.get("cloud", True) is True and model.get("downloaded", True) is True
        assert model["created"]["value"].endswith(".000Z")
        assert model["created"]["readable"].endswith(" ago")
        assert list(model["created"]) == ["value", "readable"]
    assert catalog[0]["created"] == {"value": "2024-05-22T16:00:00.000Z", "readable": "1 year ago"}
    assert catalog[-1]["created"]["readable"] == "5 months ago"
    foundations = {m.get("foundation") for m in catalog}
    assert {"GEMINI_1.5", "CLAUDE_3.5", "GEMMA_1.1_7B"} <= foundations
    usages = {m["usage"] for m in catalog}
    assert {"TLP_NEURAL_CODE_SEARCH", "VIDEO_OCR", "CODE_RELATED_PEOPLE", "OCR"} <= usages
    assert {"META", "JINA"} <= {m.get("provider") for m in catalog}
    assert any(m["version"] == "t11-v09-i01" for m in catalog)
    internal = [m for m in catalog if m["usage"] not in {"CODE_CONVERSATION", "TEXT_EMBEDDING"}]
    assert internal and all("foundation" not in m for m in internal)


def test_both_shapes_hold_the_same_models() -> None:
    pieces, schema = default_catalog("pieces"), default_catalog("schema")
    assert [m["id"] for m in pieces] == [m["id"] for m in schema]
    for short, full in zip(pieces, schema, strict=True):
        assert set(short) <= set(full)
        for key in set(short) - {"created"}:
            assert short[key] == full[key], key


# -- UNKNOWN first on the progress socket ---------------------------------------------------


async def test_download_follows_a_download_through_an_initial_unknown(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    with anyio.fail_after(BOUND):
        events = [event async for event in pieces_client.download(target)]
    statuses = [event.status for event in events]
    assert statuses == [Status.UNKNOWN, Status.INITIALIZED] + [Status.IN_PROGRESS] * 9 + [
        Status.COMPLETED
    ]
    assert not events[0].is_terminal and events[0].percentage is None
    assert (await pieces_client.get_model(target)).downloaded


async def test_a_subscriber_mid_download_gets_the_current_state_not_unknown(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=30)
    with anyio.fail_after(BOUND):
        async with pieces_client.download(target) as events:
            async for event in events:
                if event.percentage == 30:
                    break
            async with pieces_client.download_progress(target) as late:
                first = await anext(late)
    assert first.status == Status.IN_PROGRESS and first.percentage == 30
    pieces_emulator.release_downloads()


async def test_the_schema_shape_sends_no_unknown() -> None:
    async with (
        PiecesOSEmulator(shape="schema") as emulator,
        AsyncPiecesClient(emulator.url) as client,
    ):
        with anyio.fail_after(BOUND):
            statuses = [
                e.status async for e in client.download(model_id(emulator, LOCAL_NOT_DOWNLOADED))
            ]
    assert statuses[0] == Status.INITIALIZED and statuses[-1] == Status.COMPLETED
