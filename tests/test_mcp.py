"""`aiopieces mcp`: the MCP server driven by the official MCP client against the emulator."""

# In memory over JSON-RPC streams in both protocol eras (the 2025-11-25 handshake, and
# 2026-07-28), over stdio in a subprocess, and over streamable HTTP on 127.0.0.1.

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anyio
import msgspec
import pytest

pytest.importorskip("mcp")

import mcp_types as types
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.memory import create_client_server_memory_streams
from mcp.shared.subscriptions import ResourcesListChanged, ResourceUpdated

from aiopieces import (
    AsyncPiecesClient,
    Model,
    ModelDownloadProgressStatusEnum,
    Models,
    PiecesError,
    SeededModel,
)
from aiopieces._mcp import (
    MODELS_URI,
    TOOL_NAMES,
    TOOLS,
    create_server,
    json_schema,
    model_uri,
    serve_mcp,
)
from aiopieces.testing import PiecesOSEmulator

from .helpers import (
    BOUND,
    CLOUD,
    LOCAL_DOWNLOADED,
    LOCAL_NOT_DOWNLOADED,
    NON_LLM,
    free_port,
    model_id,
    seeded,
)

#: The protocol eras a client may speak: the 2025-11-25 handshake, and 2026-07-28.
ERAS = ["legacy", "auto"]
_Status = ModelDownloadProgressStatusEnum

Progress = tuple[float, float | None, str | None]


@contextlib.asynccontextmanager
async def memory_transport(server: Server[Any]) -> AsyncIterator[tuple[Any, Any]]:
    """The server on JSON-RPC memory streams; leaving is a client that vanishes."""
    # Both client ends close at once, as when its process dies: the server must end every
    # request and stop by itself (the block fails if it has not within the bound).
    async with create_client_server_memory_streams() as (client_streams, (read, write)):
        done = anyio.Event()

        async def run() -> None:
            try:
                await server.run(read, write, server.create_initialization_options())
            finally:
                done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                yield client_streams
            finally:
                for stream in client_streams:
                    await stream.aclose()
                with anyio.fail_after(BOUND):
                    await done.wait()


@contextlib.asynccontextmanager
async def connect(server: Server[Any], era: str, **options: Any) -> AsyncIterator[Client]:
    """The official client, connected to `server` in memory in protocol era `era`."""
    async with Client(memory_transport(server), mode=era, **options) as client:
        yield client


@pytest.fixture
def server(pieces_emulator: PiecesOSEmulator) -> Server[Any]:
    return create_server(pieces_emulator.url)


def text(result: types.CallToolResult) -> str:
    """The short line a tool answers with."""
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


def ok(result: types.CallToolResult) -> dict[str, Any]:
    """A successful tool's structured content, checked to match its JSON text."""
    assert not result.is_error, text(result)
    structured = result.structured_content
    assert isinstance(structured, dict)
    assert len(result.content) == 2
    second = result.content[1]
    assert isinstance(second, types.TextContent)
    assert json.loads(second.text) == structured
    return structured


def error(result: types.CallToolResult) -> str:
    """A failed tool's one-line message."""
    assert result.is_error and result.structured_content is None
    assert len(result.content) == 1 and "\n" not in text(result)
    return text(result)


def as_model(structured: dict[str, Any]) -> Model:
    return msgspec.convert(structured, Model)


# -- tools --------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_tools_are_listed_with_schemas_generated_from_our_types(
    server: Server[Any], era: str
) -> None:
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            listed = (await client.list_tools()).tools
    assert [tool.name for tool in listed] == list(TOOL_NAMES)
    assert set(TOOL_NAMES) == {
        "list_models",
        "get_model",
        "find_model",
        "download_model",
        "cancel_download",
        "load_model",
        "unload_model",
        "unload_all_models",
        "create_model",
        "update_model",
        "delete_model",
        "delete_model_cache",
        "increment_model_score",
    }
    for tool in listed:
        ours = TOOLS[tool.name]
        assert tool.description and tool.title and tool.annotations is not None
        assert tool.input_schema == json_schema(ours.arguments)
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False
        if ours.output is None:
            assert tool.output_schema is None
        else:
            assert tool.output_schema == json_schema(ours.output)
    tools = {tool.name: tool for tool in listed}
    model_id_schema = tools["get_model"].input_schema["properties"]["model_id"]
    assert model_id_schema["type"] == "string" and model_id_schema["minLength"] == 1
    create = tools["create_model"].input_schema
    assert set(create["required"]) == {"name", "version", "cloud", "type", "usage"}
    assert "maxTokens" in create["properties"]  # our JSON names
    # Open enums: the known values, and any other string (PiecesOS adds values).
    usage = create["$defs"]["ModelUsageEnum"]["anyOf"]
    assert "CODE_CONVERSATION" in usage[0]["enum"] and usage[1] == {"type": "string"}
    assert tools["update_model"].input_schema["required"] == ["id"]
    assert tools["list_models"].annotations.read_only_hint  # type: ignore[union-attr]
    assert tools["delete_model"].annotations.destructive_hint  # type: ignore[union-attr]


@pytest.mark.parametrize("era", ERAS)
async def test_list_models_with_each_filter(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    every = [pieces_emulator.model(i) for i in pieces_emulator.models]
    expected = {
        (): every,
        (("where", "cloud"),): [m for m in every if m.cloud],
        (("where", "local"),): [m for m in every if not m.cloud],
        (("downloaded", True),): [m for m in every if m.downloaded],
        (("downloaded", False), ("where", "local")): [
            m for m in every if not m.downloaded and not m.cloud
        ],
        (("loaded", False),): [m for m in every if not m.loaded],
    }
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            for filters, models in expected.items():
                result = await client.call_tool("list_models", dict(filters))
                listed = msgspec.convert(ok(result), Models).iterable
                assert [m.id for m in listed] == [m.id for m in models], filters
                local = sum(not m.cloud for m in models)
                assert text(result) == (
                    f"{len(models)} models: {local} local, {len(models) - local} cloud"
                )
    assert 0 < len(expected[(("where", "cloud"),)]) < len(every)


@pytest.mark.parametrize("era", ERAS)
async def test_get_and_find_a_model(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    mid = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            got = await client.call_tool("get_model", {"model_id": mid})
            assert as_model(ok(got)) == pieces_emulator.model(mid)
            assert text(got) == f"{LOCAL_DOWNLOADED} ({mid}): local, downloaded"
            for name_or_id in (mid, LOCAL_DOWNLOADED, LOCAL_DOWNLOADED.upper()):
                found = await client.call_tool("find_model", {"name_or_id": name_or_id})
                assert ok(found)["id"] == mid
            cloud = await client.call_tool("find_model", {"name_or_id": CLOUD})
            assert text(cloud).endswith(": cloud")


@pytest.mark.parametrize("era", ERAS)
async def test_find_model_names_every_candidate_or_none(
    server: Server[Any], pieces_client: AsyncPiecesClient, era: str
) -> None:
    first = await pieces_client.create_model(seeded("twin"))
    second = await pieces_client.create_model(seeded("twin", unique="the-other-twin"))
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            several = error(await client.call_tool("find_model", {"name_or_id": "twin"}))
            none = error(await client.call_tool("find_model", {"name_or_id": "nothing"}))
    assert several == f"'twin' names 2 models: use an id ({first.id}, {second.id})"
    assert none == "no model has the id or name 'nothing'"


@pytest.mark.parametrize("era", ERAS)
async def test_download_reports_progress_in_order_and_ends_completed(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    mid = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    progress: list[Progress] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            result = await client.call_tool(
                "download_model", {"model_id": mid}, progress_callback=on_progress
            )
            model = as_model(ok(result))
            assert model.downloaded and not model.downloading
            assert text(result) == f"{LOCAL_NOT_DOWNLOADED} ({mid}) downloaded"
            # Already downloaded: one COMPLETED at once. Without a token: no progress.
            again = await client.call_tool("download_model", {"model_id": mid})
            assert as_model(ok(again)).downloaded
    steps = pieces_emulator.download_steps
    assert progress == [
        (0.0, 100.0, "INITIALIZED 0%"),
        *((100 * s / steps, 100.0, f"IN-PROGRESS {100 * s / steps:g}%") for s in range(1, steps)),
        (100.0, 100.0, "COMPLETED 100%"),
    ]
    assert pieces_emulator.subscriber_count(mid) == 0


@pytest.mark.parametrize("era", ERAS)
async def test_cancelling_the_download_request_cancels_it_in_pieces_os(
    server: Server[Any],
    pieces_emulator: PiecesOSEmulator,
    pieces_client: AsyncPiecesClient,
    era: str,
) -> None:
    mid = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=50)
    running = anyio.Event()

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        if done > 0:
            running.set()

    with anyio.fail_after(BOUND):
        async with (
            connect(server, era) as client,
            pieces_client.download_progress(mid) as watched,
        ):
            call = partial(client.call_tool, progress_callback=on_progress)
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "download_model", {"model_id": mid})
                await running.wait()
                tg.cancel_scope.cancel()  # the caller gives up: the request is cancelled
            events = [event async for event in watched]
            # The client still works after a cancelled request.
            assert not (await client.call_tool("get_model", {"model_id": mid})).is_error
        await pieces_emulator.wait_for_subscribers(mid, 0)
    assert events[-1].status == _Status.CANCELED
    assert ("POST", f"/model/{mid}/download/cancel") in pieces_emulator.requests
    assert not pieces_emulator.model(mid).downloading
    assert not pieces_emulator.model(mid).downloaded
    assert pieces_emulator.running_downloads() == []


@pytest.mark.parametrize("era", ERAS)
async def test_a_stalled_download_fails_and_is_cancelled(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    mid = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=50)  # then no progress at all
    arguments = {"model_id": mid, "stall_timeout": 0.3}
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            message = error(await client.call_tool("download_model", arguments))
        await pieces_emulator.wait_for_subscribers(mid, 0)
    assert message.startswith("no progress for 0.3 s on ") and "(stall timeout)" in message
    assert ("POST", f"/model/{mid}/download/cancel") in pieces_emulator.requests
    assert not pieces_emulator.model(mid).downloading


@pytest.mark.parametrize("era", ERAS)
async def test_a_failed_download_is_a_tool_error(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    mid = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.fail_download(mid, at_percentage=30)
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            message = error(await client.call_tool("download_model", {"model_id": mid}))
            cloud = model_id(pieces_emulator, CLOUD)
            refused = error(await client.call_tool("download_model", {"model_id": cloud}))
    assert message == f"the download of {mid} ended FAILED, not COMPLETED"
    assert "is a cloud model; it cannot be downloaded" in refused


@pytest.mark.parametrize("era", ERAS)
async def test_cancel_download(
    server: Server[Any],
    pieces_emulator: PiecesOSEmulator,
    pieces_client: AsyncPiecesClient,
    era: str,
) -> None:
    mid = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=50)
    with anyio.fail_after(BOUND):
        async with pieces_client.download_progress(mid) as watched:
            await pieces_client.download_model(mid)  # someone else's download
            async with connect(server, era) as client:
                result = await client.call_tool("cancel_download", {"model_id": mid})
            events = [event async for event in watched]
    assert not as_model(ok(result)).downloading
    assert text(result) == f"download of {LOCAL_NOT_DOWNLOADED} ({mid}) canceled"
    assert events[-1].status == _Status.CANCELED


@pytest.mark.parametrize("era", ERAS)
async def test_load_unload_and_unload_all(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    mid = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            loaded = await client.call_tool("load_model", {"model_id": mid})
            assert as_model(ok(loaded)).loaded and pieces_emulator.model(mid).loaded
            assert text(loaded) == f"{LOCAL_DOWNLOADED} ({mid}) loaded"
            unloaded = await client.call_tool("unload_model", {"model_id": mid})
            assert not as_model(ok(unloaded)).loaded
            await client.call_tool("load_model", {"model_id": mid})
            every = await client.call_tool("unload_all_models", {})
            assert not every.is_error and every.structured_content is None
            assert text(every) == "every model unloaded"
            assert not pieces_emulator.model(mid).loaded
            not_downloaded = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
            refused = error(await client.call_tool("load_model", {"model_id": not_downloaded}))
    assert "must be downloaded before it can be loaded" in refused


@pytest.mark.parametrize("era", ERAS)
async def test_create_update_score_and_delete_a_custom_model(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    seed = msgspec.to_builtins(seeded("agent-made", description="first"))
    del seed["created"]  # defaults to now
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            created = as_model(ok(await client.call_tool("create_model", seed)))
            assert created.custom and created.name == "agent-made" and created.created
            stored = pieces_emulator.model(created.id)
            assert stored.description == "first" and stored.max_tokens is None

            changes = {"id": created.id, "description": "second", "maxTokens": {"total": 8192}}
            result = await client.call_tool("update_model", changes)
            updated = as_model(ok(result))
            assert text(result) == f"updated agent-made ({created.id}): description, maxTokens"
            assert updated.description == "second" and updated.max_tokens is not None
            assert updated.max_tokens.total == 8192 and updated.name == "agent-made"
            removed = await client.call_tool(
                "update_model", {"id": created.id, "description": None}
            )
            assert "description" not in ok(removed)
            assert pieces_emulator.models[created.id].get("description") is None

            used = await client.call_tool("increment_model_score", {"model_id": created.id})
            assert ok(used)["score"]["reuse"] == 1
            assert text(used).endswith("score incremented (reuse)")
            points = {"model_id": created.id, "points": {"searched": True, "reuse": True}}
            both = ok(await client.call_tool("increment_model_score", points))
            assert both["score"]["reuse"] == 2 and both["score"]["searched"] == 1

            deleted = await client.call_tool("delete_model", {"model_id": created.id})
            assert ok(deleted) == {"id": created.id}
            assert created.id not in pieces_emulator.models
            builtin = model_id(pieces_emulator, LOCAL_DOWNLOADED)
            refused = error(await client.call_tool("delete_model", {"model_id": builtin}))
    assert "only custom models (custom: true) can be deleted" in refused


@pytest.mark.parametrize("era", ERAS)
async def test_delete_model_cache(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    mid = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            result = await client.call_tool("delete_model_cache", {"model_id": mid})
            assert ok(result)["model"]["id"] == mid
            assert text(result) == f"deleted the downloaded data of {mid}"
            assert not pieces_emulator.model(mid).downloaded
            ocr = model_id(pieces_emulator, NON_LLM)
            refused = error(await client.call_tool("delete_model_cache", {"model_id": ocr}))
    assert "only available for LLMs" in refused


@pytest.mark.parametrize("era", ERAS)
async def test_errors_are_tool_errors_with_our_one_line_messages(
    server: Server[Any], pieces_client: AsyncPiecesClient, era: str
) -> None:
    with pytest.raises(PiecesError) as raised:
        await pieces_client.get_model("no-such-model")
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            result = await client.call_tool("get_model", {"model_id": "no-such-model"})
            assert error(result) == str(raised.value)
            # The server is still there.
            assert not (await client.call_tool("list_models", {})).is_error


@pytest.mark.parametrize("era", ERAS)
async def test_bad_arguments_get_the_validation_message(server: Server[Any], era: str) -> None:
    bad = {
        ("get_model", None): "Object missing required field `model_id`",
        ("get_model", '{"model_id": 3}'): "Expected `str`, got `int` - at `$.model_id`",
        ("get_model", '{"model_id": ""}'): "Expected `str` of length >= 1 - at `$.model_id`",
        ("get_model", '{"model_id": "x", "id": "y"}'): "Object contains unknown field `id`",
        ("list_models", '{"where": "mars"}'): "Invalid enum value 'mars' - at `$.where`",
        ("download_model", '{"model_id": "x", "stall_timeout": 0}'): (
            "Expected `float` > 0.0 - at `$.stall_timeout`"
        ),
        ("create_model", '{"name": "x"}'): "Object missing required field `version`",
        ("update_model", '{"id": "x", "name": null}'): "Expected `str`, got `null` - at `$.name`",
    }
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            for (name, arguments), message in bad.items():
                given = None if arguments is None else json.loads(arguments)
                result = await client.call_tool(name, given)
                assert error(result) == f"invalid arguments for {name}: {message}"
            with pytest.raises(MCPError) as unknown:
                await client.call_tool("no_such_tool", {})
    assert unknown.value.code == types.INVALID_PARAMS
    assert unknown.value.message == "unknown tool 'no_such_tool'"


@pytest.mark.parametrize("era", ERAS)
async def test_pieces_os_unreachable_is_an_error_not_a_crash(era: str) -> None:
    server = create_server(f"http://127.0.0.1:{free_port()}", retry=None)
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            for _ in range(2):
                message = error(await client.call_tool("list_models", {}))
                assert message.startswith("cannot reach PiecesOS at http://127.0.0.1:")
            with pytest.raises(MCPError) as unreadable:
                await client.read_resource(MODELS_URI)
            assert unreadable.value.message.startswith("cannot reach PiecesOS")
            assert len((await client.list_tools()).tools) == len(TOOL_NAMES)


# -- resources ------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_models_are_resources(
    server: Server[Any], pieces_emulator: PiecesOSEmulator, era: str
) -> None:
    odd = pieces_emulator.add_model({"id": "a/b ?#é", "name": "odd id"})
    with anyio.fail_after(BOUND):
        async with connect(server, era) as client:
            listed = (await client.list_resources()).resources
            templates = (await client.list_resource_templates()).resource_templates
            every = await client.read_resource(MODELS_URI)
            one = await client.read_resource(model_uri(odd))
            with pytest.raises(MCPError) as missing:
                await client.read_resource(model_uri("no-such-model"))
            with pytest.raises(MCPError) as elsewhere:
                await client.read_resource("pieces://assets")
    assert [r.uri for r in listed] == [MODELS_URI, *map(model_uri, pieces_emulator.models)]
    assert all(r.mime_type == "application/json" for r in listed)
    assert model_uri(odd) == "pieces://models/a%2Fb%20%3F%23%C3%A9"
    assert [t.uri_template for t in templates] == ["pieces://models/{id}"]
    (content,) = every.contents
    assert isinstance(content, types.TextResourceContents)
    models = msgspec.json.decode(content.text, type=Models).iterable
    assert [m.id for m in models] == list(pieces_emulator.models)
    (content,) = one.contents
    assert isinstance(content, types.TextResourceContents)
    assert msgspec.json.decode(content.text, type=Model) == pieces_emulator.model(odd)
    assert missing.value.code == elsewhere.value.code == types.INVALID_PARAMS
    assert missing.value.message.startswith("no resource pieces://models/no-such-model: ")


async def test_a_legacy_subscription_gets_updates_after_create_and_update(
    server: Server[Any], pieces_emulator: PiecesOSEmulator
) -> None:
    send, receive = anyio.create_memory_object_stream[str](100)

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            send.send_nowait(message.params.uri)

    with anyio.fail_after(BOUND):
        async with send, receive, connect(server, "legacy", message_handler=on_message) as client:
            assert client.protocol_version == "2025-11-25"
            with pytest.warns(MCPDeprecationWarning):
                await client.subscribe_resource(MODELS_URI)
            assert pieces_emulator.identifier_subscriber_count() == 1  # ready before the answer
            created = ok(await client.call_tool("create_model", _seed("subscribed")))
            assert await receive.receive() == MODELS_URI

            with pytest.warns(MCPDeprecationWarning):
                await client.subscribe_resource(model_uri(created["id"]))
            changes = {"id": created["id"], "description": "changed"}
            await client.call_tool("update_model", changes)
            got = {await receive.receive(), await receive.receive()}
            assert got == {MODELS_URI, model_uri(created["id"])}

            with pytest.warns(MCPDeprecationWarning):
                await client.unsubscribe_resource(MODELS_URI)
            with pytest.warns(MCPDeprecationWarning):
                await client.unsubscribe_resource(model_uri(created["id"]))
            # The last subscription gone, so is the change stream.
            await pieces_emulator.wait_for_identifier_subscribers(0)


async def test_a_listen_subscription_gets_updates_after_create(
    server: Server[Any], pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        async with connect(server, "auto") as client:
            assert client.protocol_version == "2026-07-28"
            async with client.listen(
                resource_subscriptions=[MODELS_URI], resources_list_changed=True
            ) as events:
                assert pieces_emulator.identifier_subscriber_count() == 1
                created = ok(await client.call_tool("create_model", _seed("listened")))
                expected = {ResourceUpdated(uri=MODELS_URI), ResourcesListChanged()}
                seen = set()
                async for event in events:
                    seen.add(event)
                    if seen >= expected:
                        break
            assert created["id"] in pieces_emulator.models
            # The listen stream closed: the change stream with it.
            await pieces_emulator.wait_for_identifier_subscribers(0)


def _seed(name: str) -> dict[str, Any]:
    seed: dict[str, Any] = msgspec.to_builtins(seeded(name))
    return seed


async def test_a_subscription_while_pieces_os_is_unreachable_is_refused() -> None:
    server = create_server(f"http://127.0.0.1:{free_port()}", retry=None)
    with anyio.fail_after(BOUND):
        async with connect(server, "legacy") as client:
            with pytest.warns(MCPDeprecationWarning), pytest.raises(MCPError) as refused:
                await client.subscribe_resource(MODELS_URI)
    assert refused.value.message.startswith("cannot reach PiecesOS")


# -- stdio, streamable HTTP, the emulator, the extra ------------------------------------------

SERVE = [sys.executable, "-m", "aiopieces", "mcp"]


def stdio(*args: str) -> StdioServerParameters:
    return StdioServerParameters(command=SERVE[0], args=[*SERVE[1:], *args])


@pytest.mark.parametrize("era", ERAS)
async def test_over_stdio(pieces_emulator: PiecesOSEmulator, era: str) -> None:
    mid = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    with anyio.fail_after(BOUND):
        async with Client(stdio("--url", pieces_emulator.url), mode=era) as client:
            assert len((await client.list_tools()).tools) == len(TOOL_NAMES)
            result = await client.call_tool(
                "download_model", {"model_id": mid}, progress_callback=on_progress
            )
            assert as_model(ok(result)).downloaded
            (content,) = (await client.read_resource(model_uri(mid))).contents
            assert isinstance(content, types.TextResourceContents)
            assert msgspec.json.decode(content.text, type=Model).downloaded
    assert progress == sorted(progress) and progress[0] == 0 and progress[-1] == 100


async def test_killing_the_stdio_client_mid_download_leaves_nothing_behind(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    mid = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=50)
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "download_model",
                "arguments": {"model_id": mid},
                "_meta": {"progressToken": "p"},
            },
        },
    ]
    with anyio.fail_after(BOUND):
        process = await anyio.open_process(
            [*SERVE, "--url", pieces_emulator.url], stderr=subprocess.DEVNULL
        )
        async with process:
            assert process.stdin is not None and process.stdout is not None
            for message in messages:
                await process.stdin.send(json.dumps(message).encode() + b"\n")
            lines = BufferedByteReceiveStream(process.stdout)
            while True:
                line = json.loads(await lines.receive_until(b"\n", 1 << 20))
                if line.get("method") == "notifications/progress" and line["params"]["progress"]:
                    break
            await process.stdin.aclose()  # the client is gone: EOF, and no goodbye
            assert await process.wait() == 0  # the server ends by itself
        await pieces_emulator.wait_for_subscribers(mid, 0)
    assert pieces_emulator.identifier_subscriber_count() == 0
    assert ("POST", f"/model/{mid}/download/cancel") in pieces_emulator.requests
    assert pieces_emulator.running_downloads() == []
    assert not pieces_emulator.model(mid).downloading


async def test_over_streamable_http_on_loopback(pieces_emulator: PiecesOSEmulator) -> None:
    mid = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    command = [*SERVE, "--url", pieces_emulator.url, "--http", "--port", "0"]
    with anyio.fail_after(BOUND):
        process = await anyio.open_process(command, stdout=subprocess.DEVNULL)
        async with process:
            try:
                assert process.stderr is not None
                lines = BufferedByteReceiveStream(process.stderr)
                line = (await lines.receive_until(b"\n", 4096)).decode()
                prefix = "serving MCP over streamable HTTP at "
                assert line.startswith(prefix + "http://127.0.0.1:") and line.endswith("/mcp")
                async with Client(line.removeprefix(prefix)) as client:
                    assert len((await client.list_tools()).tools) == len(TOOL_NAMES)
                    result = await client.call_tool(
                        "download_model", {"model_id": mid}, progress_callback=on_progress
                    )
                    assert as_model(ok(result)).downloaded
            finally:
                process.send_signal(signal.SIGINT)  # as Ctrl-C: uvicorn shuts down
                await process.wait()
    assert progress == sorted(progress) and progress[-1] == 100


async def test_http_is_served_on_loopback_only_and_the_emulator_alone() -> None:
    with anyio.fail_after(BOUND):
        with pytest.raises(ValueError, match="no authentication: serve it on 127"):
            await serve_mcp(None, http=True, host="0.0.0.0")
        with pytest.raises(ValueError, match="give no PiecesOS URL"):
            await serve_mcp("http://127.0.0.1:39300", emulator=True)


async def test_the_emulator_flag_serves_the_bundled_emulator() -> None:
    with anyio.fail_after(BOUND):
        async with Client(stdio("--emulator")) as client:
            listed = ok(await client.call_tool("list_models", {}))
    assert len(listed["iterable"]) == len(PiecesOSEmulator().models)


def test_import_aiopieces_does_not_import_mcp() -> None:
    code = (
        "import sys, aiopieces, aiopieces.testing; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=BOUND)


def test_seeded_model_arguments_match_our_seeded_model() -> None:
    # Every field create_model takes is a SeededModel field, with the same JSON name.
    create = TOOLS["create_model"].input_schema["properties"]
    assert set(create) == set(json_schema(SeededModel)["properties"])
