"""The emulator's handlers, table-driven, in both shapes, over real sockets.

Each route's answer is checked exactly: status, `Content-Type` header and body, and the
JSON the emulator stores. Every wait is bounded by `anyio.fail_after(BOUND)`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest

from aiopieces import Model, Score
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

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
SCHEMA = {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"}
IDENTIFIERS = "/models/stream/identifiers"


@pytest.fixture(params=["pieces", "schema"])
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[PiecesOSEmulator]:
    """A served emulator in each shape."""
    async with PiecesOSEmulator(shape=request.param) as served:
        yield served


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: object = None
) -> tuple[int, str, bytes]:
    """(status, raw Content-Type header, body) of one request; `body` is JSON or raw bytes."""
    data = body if body is None or isinstance(body, bytes) else msgspec.json.encode(body)
    async with http.request(method, url, data=data) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def call_json(http: aiohttp.ClientSession, method: str, url: str, body: object = None) -> Any:
    """The JSON answer of a request that must succeed with 200."""
    status, content_type, content = await call(http, method, url, body)
    assert (status, content_type) == (200, JSON), content
    return msgspec.json.decode(content)


# -- text answers -------------------------------------------------------------------


async def test_health_and_version_answer_exact_text(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    url = emulator.url
    with anyio.fail_after(BOUND):
        assert await call(http, "GET", url + "/.well-known/health") == (200, TEXT, b"ok")
        assert await call(http, "GET", url + "/.well-known/version") == (200, TEXT, b"10.1.2")
        emulator.healthy = False
        assert await call(http, "GET", url + "/.well-known/health") == (503, TEXT, b"not ready")


def error_cases(emulator: PiecesOSEmulator) -> list[tuple[str, str, object, int, str]]:
    """(method, path, body, status, text) of every error a handler answers."""
    cloud = model_id(emulator, CLOUD)
    local = model_id(emulator, LOCAL_NOT_DOWNLOADED)
    internal = model_id(emulator, NON_LLM)
    builtin = emulator.models[model_id(emulator, LOCAL_DOWNLOADED)]
    gone = "model 'nope' was not found."
    bad = "invalid request body: "
    return [
        (
            "POST",
            f"/model/{cloud}/load",
            None,
            500,
            "GPT-4o is a cloud model; it cannot be loaded.",
        ),
        (
            "POST",
            f"/model/{local}/load",
            None,
            500,
            "Llama-2 7B Chat must be downloaded before it can be loaded.",
        ),
        (
            "POST",
            f"/model/{cloud}/download",
            None,
            500,
            "GPT-4o is a cloud model; it cannot be downloaded.",
        ),
        ("POST", "/model/update", {"id": "nope", "custom": True}, 500, gone),
        (
            "POST",
            "/model/update",
            builtin,
            500,
            "only custom models (custom: true) can be updated.",
        ),
        (
            "POST",
            f"/models/{cloud}/delete",
            None,
            500,
            "only custom models (custom: true) can be deleted.",
        ),
        (
            "POST",
            f"/models/{internal}/delete/cache",
            None,
            500,
            "deleting a model's cache is only available for LLMs.",
        ),
        (
            "POST",
            "/model/update",
            b"{not json",
            400,
            bad + "JSON is malformed: object keys must be strings (byte 1)",
        ),
        (
            "POST",
            "/model/update",
            b'{"name": 1}',
            400,
            bad + "Expected `str`, got `int` - at `$.name`",
        ),
        ("POST", "/model/update", b"", 400, bad + "Input data was truncated"),
        ("POST", "/models/create", b"[]", 400, bad + "Expected `object`, got `array`"),
        (
            "POST",
            "/models/create",
            b'{"name": 1}',
            400,
            bad + "Expected `str`, got `int` - at `$.name`",
        ),
        (
            "POST",
            f"/models/{local}/delete/cache",
            b'{"schema": 1}',
            400,
            bad + "Expected `object | null`, got `int` - at `$.schema`",
        ),
        ("GET", "/model/nope", None, 410, gone),
        ("GET", "/model/nope/download/progress", None, 410, gone),
        ("POST", "/model/nope/download", None, 500, gone),
        ("POST", "/model/nope/download/cancel", None, 500, gone),
        ("POST", "/model/nope/load", None, 500, gone),
        ("POST", "/model/nope/unload", None, 500, gone),
        ("POST", "/models/nope/delete", None, 500, gone),
        ("POST", "/models/nope/delete/cache", None, 500, gone),
        (
            "GET",
            IDENTIFIERS,
            None,
            400,
            "/models/stream/identifiers is a WebSocket: send an Upgrade request.",
        ),
        (
            "GET",
            f"/model/{local}/download/progress",
            None,
            400,
            f"/model/{local}/download/progress is a WebSocket: send an Upgrade request.",
        ),
    ]


async def test_every_error_is_its_exact_text_and_changes_nothing(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    before = copy.deepcopy(emulator.models)
    with anyio.fail_after(BOUND):
        for method, path, body, status, text in error_cases(emulator):
            answer = await call(http, method, emulator.url + path, body)
            assert answer == (status, TEXT, text.encode()), (method, path)
    assert emulator.models == before
    assert emulator.running_downloads() == []


# -- creates ------------------------------------------------------------------------------

CREATED = {
    "pieces": {
        "schema": SCHEMA,
        "version": "1.0",
        "created": {"value": "2025-06-01T00:00:00Z"},
        "name": "my-finetune",
        "type": "BALANCED",
        "usage": "CODE_CONVERSATION",
        "loaded": False,
        "cpu": False,
        "downloading": False,
        "custom": True,
    },
    "schema": {
        "name": "my-finetune",
        "version": "1.0",
        "cloud": False,
        "created": {"value": "2025-06-01T00:00:00Z"},
        "type": "BALANCED",
        "usage": "CODE_CONVERSATION",
        "custom": True,
        "downloaded": False,
        "downloading": False,
        "loaded": False,
    },
}


async def test_a_create_stores_the_model_in_the_emulator_s_shape(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    """Defaults the body leaves out, runtime state PiecesOS's own, a fresh UUID each time."""
    seed = msgspec.to_builtins(seeded())
    # What a body says of runtime state is not taken; what it says of the rest is.
    stated = {**seed, "name": "stated", "cpu": True, "downloaded": True}
    stated |= {"downloading": True, "loaded": True, "schema": {**SCHEMA, "migration": 1}}
    with anyio.fail_after(BOUND):
        created = await call_json(http, "POST", emulator.url + "/models/create", seed)
        other = await call_json(http, "POST", emulator.url + "/models/create", stated)
        again = await call_json(http, "POST", emulator.url + "/models/create", seed)
        listed = await call_json(http, "GET", emulator.url + "/models")
    new_id = created.pop("id")
    assert uuid.UUID(new_id).version == 4 and uuid.UUID(other["id"]).version == 4
    assert new_id != other["id"] and again["id"] == new_id  # the same seed: the same model
    assert created == CREATED[emulator.shape]
    assert list(created) == list(CREATED[emulator.shape])  # the shape's key order
    expected_other = {
        **CREATED[emulator.shape],
        "id": other["id"],
        "name": "stated",
        "cpu": True,
        "downloaded": True,
        "schema": {**SCHEMA, "migration": 1},
    }
    assert other == expected_other
    assert listed["iterable"][-2:] == [{**created, "id": new_id}, other]
    assert emulator.models[new_id] == {**created, "id": new_id}


async def test_a_create_tells_a_cloud_model_from_a_local_one(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    local = msgspec.to_builtins(seeded(name="twin"))
    cloud = {**local, "cloud": True}
    url = emulator.url + "/models/create"
    with anyio.fail_after(BOUND):
        local_id = (await call_json(http, "POST", url, local))["id"]
        cloud_id = (await call_json(http, "POST", url, cloud))["id"]
        assert local_id != cloud_id
        assert (await call_json(http, "POST", url, cloud))["id"] == cloud_id
        assert (await call_json(http, "POST", url, local))["id"] == local_id
    assert emulator.models[cloud_id]["cloud"] is True
    assert bool(emulator.models[local_id].get("cloud")) is False


# -- updates ------------------------------------------------------------------------------

# (stored runtime state, what the body says of it, what the update stores), each a
# dict of the runtime keys present; a key absent is absent.
UPDATE_CASES = {
    "the body contradicts every flag": (
        {"downloaded": True, "loaded": True, "downloading": False},
        {"downloaded": False, "loaded": False, "downloading": True, "custom": False},
        {
            "pieces": {"downloaded": True, "loaded": True, "downloading": False},
            "schema": {"downloaded": True, "loaded": True, "downloading": False},
        },
    ),
    "the body leaves every flag out": (
        {"downloaded": True, "loaded": True, "downloading": False},
        {},
        {
            "pieces": {"downloaded": True, "loaded": True},
            "schema": {"downloaded": True, "loaded": True},
        },
    ),
    "the body sets flags the model does not have": (
        {},
        {"downloaded": True, "loaded": True, "downloading": True},
        {
            "pieces": {"loaded": False, "downloading": False},
            "schema": {"downloaded": False, "loaded": False, "downloading": False},
        },
    ),
    "the body says false in another form": (
        {},
        {"downloaded": False, "loaded": False, "downloading": False},
        {
            "pieces": {"downloaded": False, "loaded": False, "downloading": False},
            "schema": {"downloaded": False, "loaded": False, "downloading": False},
        },
    ),
}


@pytest.mark.parametrize("case", list(UPDATE_CASES))
async def test_an_update_keeps_the_runtime_state_and_custom_flag(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession, case: str
) -> None:
    """Runtime state is PiecesOS's: an update changes it only in form, never in value."""
    stored, sent, expected = UPDATE_CASES[case]
    emulator.add_model({"id": "mine", "name": "mine", "custom": True, **stored})
    body = {"id": "mine", "name": "renamed", **sent}
    with anyio.fail_after(BOUND):
        answer = await call_json(http, "POST", emulator.url + "/model/update", body)
        got = await call_json(http, "GET", emulator.url + "/model/mine")
    result = {"id": "mine", "name": "renamed", "custom": True, **expected[emulator.shape]}
    assert answer == got == emulator.models["mine"] == result


# -- cache deletes ------------------------------------------------------------------------


async def test_a_cache_delete_answers_the_model_reference_and_unloads(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    builtin = model_id(emulator, LOCAL_DOWNLOADED)
    llm = {"usage": "CODE_CONVERSATION", "downloaded": True, "loaded": True}
    emulator.add_model({"id": "bare", "name": "bare", **llm})
    emulator.add_model({"id": "hosted", "name": "hosted", "cloud": True, **llm})
    hosted = copy.deepcopy(emulator.models["hosted"])
    url = emulator.url + "/models/{}/delete/cache"
    with anyio.fail_after(BOUND):
        await call_json(http, "POST", f"{emulator.url}/model/{builtin}/load")
        answer = await call_json(http, "POST", url.format(builtin), {"schema": SCHEMA})
        assert answer == {"model": {"id": builtin, "schema": SCHEMA}}
        assert await call_json(http, "POST", url.format("bare")) == {"model": {"id": "bare"}}
        assert await call_json(http, "POST", url.format("hosted")) == {"model": {"id": "hosted"}}
    # Not downloaded, not loaded: left out (pieces) or false (schema); a cloud model as it was.
    pieces = emulator.shape == "pieces"
    unloaded = {"loaded": False} if pieces else {"downloaded": False, "loaded": False}
    stored = emulator.models[builtin]
    assert {k: stored[k] for k in ["downloaded", "loaded"] if k in stored} == unloaded
    bare = {"id": "bare", "name": "bare", "usage": "CODE_CONVERSATION", **unloaded}
    assert emulator.models["bare"] == bare
    assert emulator.models["hosted"] == hosted


# -- downloads ----------------------------------------------------------------------------


async def progress_until(ws: aiohttp.ClientWebSocketResponse, last: str) -> list[Any]:
    """The progress frames of `ws` up to and including the first with status `last`."""
    frames: list[Any] = []
    while not frames or frames[-1].get("status") != last:
        frames.append(await ws.receive_json())
    return frames


def not_downloaded(emulator: PiecesOSEmulator) -> dict[str, bool]:
    """The runtime flags of a model at rest and not downloaded, in the emulator's shape."""
    if emulator.shape == "pieces":
        return {"downloading": False}  # `downloaded` left out while false
    return {"downloaded": False, "downloading": False}


def flags(model: dict[str, Any]) -> dict[str, Any]:
    return {k: model[k] for k in ["downloaded", "downloading"] if k in model}


async def test_fail_download_fails_at_half_way_by_default(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    """And the failed model is not downloaded, even if it was replaced by one that said so."""
    target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
    emulator.fail_download(target)
    emulator.hold_downloads(at_percentage=30)
    with anyio.fail_after(BOUND):
        async with http.ws_connect(f"{emulator.url}/model/{target}/download/progress") as ws:
            await emulator.wait_for_subscribers(target, 1)
            await call_json(http, "POST", f"{emulator.url}/model/{target}/download")
            emulator.add_model({**emulator.models[target], "downloaded": True})
            emulator.release_downloads()
            frames = await progress_until(ws, "FAILED")
    first = [{"status": "UNKNOWN"}] if emulator.shape == "pieces" else []
    assert frames == [
        *first,
        {"status": "INITIALIZED", "percentage": 0},
        *({"status": "IN-PROGRESS", "percentage": p} for p in [10.0, 20.0, 30.0, 40.0]),
        {"status": "FAILED", "percentage": 50.0},
    ]
    assert flags(emulator.models[target]) == not_downloaded(emulator)


async def test_percentages_have_two_decimals_and_a_fail_point_past_100_never_fails(
    http: aiohttp.ClientSession,
) -> None:
    async with PiecesOSEmulator(download_steps=3, shape="schema") as emulator:
        target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
        emulator.fail_download(target, at_percentage=100.5)
        with anyio.fail_after(BOUND):
            async with http.ws_connect(f"{emulator.url}/model/{target}/download/progress") as ws:
                await emulator.wait_for_subscribers(target, 1)
                await call_json(http, "POST", f"{emulator.url}/model/{target}/download")
                frames = await progress_until(ws, "COMPLETED")
        assert frames == [
            {"status": "INITIALIZED", "percentage": 0},
            {"status": "IN-PROGRESS", "percentage": 33.33},
            {"status": "IN-PROGRESS", "percentage": 66.67},
            {"status": "COMPLETED", "percentage": 100},
        ]
        assert flags(emulator.models[target]) == {"downloaded": True, "downloading": False}


async def test_a_cancel_leaves_the_model_not_downloaded_whatever_it_said(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    """The model replaced mid-download (`add_model`) says downloaded; the cancel ends that."""
    target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
    emulator.hold_downloads(at_percentage=30)
    with anyio.fail_after(BOUND):
        await call_json(http, "POST", f"{emulator.url}/model/{target}/download")
        emulator.add_model({**emulator.models[target], "downloaded": True})
        answer = await call_json(http, "POST", f"{emulator.url}/model/{target}/download/cancel")
    emulator.release_downloads()
    assert answer == emulator.models[target]
    assert flags(answer) == not_downloaded(emulator)
    assert emulator.running_downloads() == []


# -- deletes ------------------------------------------------------------------------------


def raw_send(
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], method: str, path: str
) -> None:
    """Write a bodiless HTTP/1.1 request on a kept-alive connection; wait for nothing."""
    head = f"{method} {path} HTTP/1.1\r\nHost: emulator\r\nContent-Length: 0\r\n\r\n"
    streams[1].write(head.encode())


async def raw_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The status and body of the next HTTP/1.1 answer on `reader`."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    status = int(head.split(b" ", 2)[1])
    lengths = [line[15:] for line in head.split(b"\r\n") if line.startswith(b"content-length:")]
    return status, await reader.readexactly(int(lengths[0]) if lengths else 0)


async def test_two_deletes_of_a_downloading_model_in_one_turn_both_succeed(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    """The first waits for the download to end while the second deletes the model: both
    answer 204, and identifier sockets hear of the delete once."""
    with anyio.fail_after(BOUND):
        created = await call_json(
            http, "POST", emulator.url + "/models/create", msgspec.to_builtins(seeded())
        )
        emulator.hold_downloads(at_percentage=30)
        await call_json(http, "POST", f"{emulator.url}/model/{created['id']}/download")
        host, port = "127.0.0.1", emulator.port
        connections = [await asyncio.open_connection(host, port) for _ in range(2)]
        try:
            async with http.ws_connect(emulator.url + IDENTIFIERS) as ids:
                await ids.receive()  # every model
                for streams in connections:  # both connections served, kept alive
                    raw_send(streams, "GET", "/.well-known/health")
                    assert await raw_answer(streams[0]) == (200, b"ok")
                # Both requests are written before the server's loop runs again.
                for streams in connections:
                    raw_send(streams, "POST", f"/models/{created['id']}/delete")
                answers = [await raw_answer(reader) for reader, _ in connections]
                assert answers == [(204, b""), (204, b"")]
                await call_json(
                    http, "POST", emulator.url + "/models/create", msgspec.to_builtins(seeded("x"))
                )
                frames = [msgspec.json.decode((await ids.receive()).data) for _ in range(2)]
        finally:
            for _, writer in connections:
                writer.close()
                await writer.wait_closed()
        emulator.release_downloads()
    assert frames[0] == {"iterable": [{"model": {"id": created["id"]}, "deleted": True}]}
    assert frames[1]["iterable"][0]["model"]["id"] != created["id"]  # the next change
    assert created["id"] not in emulator.models and emulator.running_downloads() == []


# -- serving ------------------------------------------------------------------------------


async def test_serving_errors_say_exactly_what_went_wrong() -> None:
    with anyio.fail_after(BOUND):
        async with PiecesOSEmulator() as first, PiecesOSEmulator() as second:
            busy = [first.port, second.port]
            idle = PiecesOSEmulator()
            with pytest.raises(OSError) as error:
                await idle.start_in_range(busy)  # type: ignore[arg-type]
            assert str(error.value) == f"no free port on 127.0.0.1 among {busy}"
            with pytest.raises(RuntimeError) as not_serving:
                await idle.restart()
            assert str(not_serving.value) == "the emulator is not serving"


async def test_a_restart_on_other_ports_keeps_the_host() -> None:
    emulator = PiecesOSEmulator()
    with anyio.fail_after(BOUND):
        await emulator.start(host="127.0.0.2")
        try:
            port = free_port()
            assert await emulator.restart([port]) == f"http://127.0.0.2:{port}"
            async with aiohttp.ClientSession() as http:
                answer = await call(http, "GET", emulator.url + "/.well-known/health")
                assert answer == (200, TEXT, b"ok")
                with pytest.raises(aiohttp.ClientConnectionError):  # that host only
                    await call(http, "GET", f"http://127.0.0.1:{port}/.well-known/health")
        finally:
            await emulator.stop()


# -- add_model ----------------------------------------------------------------------------


async def test_add_model_takes_a_model_or_a_json_object_and_keeps_its_own_copy(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    typed = Model(id="typed", name="typed", cloud=True, score=Score(manual=1, automatic=2))
    assert emulator.add_model(typed) == "typed"
    given: dict[str, Any] = {"id": "given", "name": "given", "score": {"manual": 3, "automatic": 4}}
    assert emulator.add_model(given) == "given"
    given["score"]["manual"] = 99  # the caller's object, changed afterwards
    with anyio.fail_after(BOUND):
        answers = [
            await call_json(http, "GET", f"{emulator.url}/model/{i}") for i in ["typed", "given"]
        ]
    assert answers == [
        {"id": "typed", "name": "typed", "cloud": True, "score": {"manual": 1, "automatic": 2}},
        {"id": "given", "name": "given", "score": {"manual": 3, "automatic": 4}},
    ]
    assert [emulator.models["typed"], emulator.models["given"]] == answers


# -- sockets ------------------------------------------------------------------------------


async def test_what_a_client_sends_on_a_socket_is_ignored(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(BOUND):
        async with http.ws_connect(emulator.url + IDENTIFIERS) as ws:
            await ws.receive()  # every model
            for n in range(3):
                await ws.send_str(f"hello {n}")
                await ws.send_bytes(b"hello")
                emulator.add_model({"id": f"m{n}", "name": "m"})
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                assert msgspec.json.decode(msg.data) == {"iterable": [{"model": {"id": f"m{n}"}}]}
                async with http.get(emulator.url + "/.well-known/health") as resp:
                    assert resp.status == 200  # a round trip: the server has read the socket
            assert emulator.identifier_subscriber_count() == 1


class AccessLog(logging.Handler):
    """aiohttp's access log lines, with an event set at each one."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.logged = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.logged.set()

    async def wait_for(self, count: int, fragment: str) -> list[str]:
        """Wait until `count` lines contain `fragment`; return those lines."""
        while len(lines := [line for line in self.lines if fragment in line]) < count:
            self.logged.clear()
            await self.logged.wait()
        return lines


@pytest.fixture
def access_log() -> Iterator[AccessLog]:
    logger = logging.getLogger("aiohttp.access")
    handler, level = AccessLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


async def websocket_by_hand(
    port: int, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand over TCP, so that the test can send what no client would."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: emulator\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


async def test_a_socket_that_breaks_the_protocol_is_closed_cleanly(
    emulator: PiecesOSEmulator, caplog: pytest.LogCaptureFixture, access_log: AccessLog
) -> None:
    """A frame with a reserved opcode: the emulator closes with 1002 (protocol error),
    unsubscribes, logs the request as a 101 like any other, and logs no error."""
    with anyio.fail_after(BOUND):
        reader, writer = await websocket_by_hand(emulator.port or 0, IDENTIFIERS)
        try:
            await emulator.wait_for_identifier_subscribers(1)
            writer.write(bytes([0x83, 0x80, 1, 2, 3, 4]))  # FIN, opcode 3, masked, empty
            received = await reader.read()  # until the server closes the connection
        finally:
            writer.close()
            await writer.wait_closed()
        assert received.endswith(bytes([0x88, 0x02, 0x03, 0xEA]))  # close frame, code 1002
        await emulator.wait_for_identifier_subscribers(0)
        [line] = await access_log.wait_for(1, f"GET {IDENTIFIERS} ")
    assert '" 101 ' in line
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_closed_socket_is_logged_and_leaves_no_error(
    emulator: PiecesOSEmulator,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    access_log: AccessLog,
) -> None:
    target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
    progress = f"/model/{target}/download/progress"
    with anyio.fail_after(BOUND):
        async with http.ws_connect(emulator.url + IDENTIFIERS):
            await emulator.wait_for_identifier_subscribers(1)
        async with http.ws_connect(emulator.url + progress):
            await emulator.wait_for_subscribers(target, 1)
        await emulator.wait_for_identifier_subscribers(0)
        await emulator.wait_for_subscribers(target, 0)
        logged = await access_log.wait_for(2, '" 101 ')
    assert [f"GET {IDENTIFIERS} " in logged[0], f"GET {progress} " in logged[1]] == [True, True]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_every_get_route_answers_head_as_pieces_os_does(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    """HEAD gets GET's status and headers, and no body."""
    target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
    expected = {
        "/.well-known/health": (200, TEXT),
        "/.well-known/version": (200, TEXT),
        "/models": (200, JSON),
        f"/model/{target}": (200, JSON),
        "/model/nope": (410, TEXT),
        f"/model/{target}/download/progress": (400, TEXT),  # not an Upgrade request
        IDENTIFIERS: (400, TEXT),
    }
    with anyio.fail_after(BOUND):
        for path, (status, content_type) in expected.items():
            assert await call(http, "HEAD", emulator.url + path) == (status, content_type, b"")
            got, got_type, _ = await call(http, "GET", emulator.url + path)
            assert (got, got_type) == (status, content_type), path


# -- construction, start and stop ------------------------------------------------------------


def test_bad_settings_are_refused_with_exact_messages() -> None:
    with pytest.raises(ValueError) as steps:
        PiecesOSEmulator(download_steps=0)
    assert str(steps.value) == "download_steps must be at least 1"
    with pytest.raises(ValueError) as shape:
        PiecesOSEmulator(shape="openapi")  # type: ignore[arg-type]
    assert str(shape.value) == "shape must be one of ('pieces', 'schema'), not 'openapi'"


async def test_one_download_step_goes_straight_to_completed(http: aiohttp.ClientSession) -> None:
    async with PiecesOSEmulator(download_steps=1, shape="schema") as emulator:
        target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
        with anyio.fail_after(BOUND):
            async with http.ws_connect(f"{emulator.url}/model/{target}/download/progress") as ws:
                await emulator.wait_for_subscribers(target, 1)
                await call_json(http, "POST", f"{emulator.url}/model/{target}/download")
                frames = await progress_until(ws, "COMPLETED")
    assert frames == [
        {"status": "INITIALIZED", "percentage": 0},
        {"status": "COMPLETED", "percentage": 100},
    ]


async def test_the_latest_1000_requests_and_bodies_are_kept(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    with anyio.fail_after(BOUND):
        await call(http, "POST", emulator.url + "/models/create", b"{}")
    assert list(emulator.requests) == [("POST", "/models/create")]
    assert list(emulator.request_bodies) == [("/models/create", b"{}")]
    assert emulator.requests.maxlen == emulator.request_bodies.maxlen == 1000


async def test_serving_leaves_the_process_signals_alone() -> None:
    """An emulator inside a test or an app must not take Ctrl-C or SIGTERM over."""
    before = [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)]
    async with PiecesOSEmulator():
        assert [signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)] == before


async def test_stop_ends_every_download_and_closes_every_socket(
    emulator: PiecesOSEmulator, http: aiohttp.ClientSession
) -> None:
    target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
    emulator.hold_downloads(at_percentage=30)
    with anyio.fail_after(BOUND):
        async with http.ws_connect(f"{emulator.url}/model/{target}/download/progress") as ws:
            await emulator.wait_for_subscribers(target, 1)
            await call_json(http, "POST", f"{emulator.url}/model/{target}/download")
            assert emulator.running_downloads() == [target]
            await emulator.stop()
            assert emulator.running_downloads() == []
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                pass
            assert msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
        await emulator.wait_for_subscribers(target, 0)
    assert emulator.port is None


async def test_stop_does_not_wait_long_for_a_request_in_flight(
    http: aiohttp.ClientSession,
) -> None:
    """A create whose body never ends: stop gives it a short grace period, then drops it."""
    emulator = PiecesOSEmulator()
    await emulator.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", emulator.port)
    try:
        with anyio.fail_after(BOUND):
            head = "POST /models/create HTTP/1.1\r\nHost: emulator\r\nContent-Length: 100\r\n\r\n{"
            writer.write(head.encode())
            await writer.drain()
            await call(http, "GET", emulator.url + "/models")  # a round trip after it
            assert ("POST", "/models/create") in emulator.requests  # the handler is waiting
            await emulator.stop()
            assert await reader.read() == b""  # dropped, unanswered
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        await emulator.stop()
