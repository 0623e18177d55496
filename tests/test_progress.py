"""Download progress over the WebSocket: both forms, endings, early exits, bad frames."""

from __future__ import annotations

import asyncio
import logging

import anyio
import pytest
from aiohttp import web

from aiopieces import (
    AsyncPiecesClient,
    ModelDownloadProgress,
    ModelNotFoundError,
    PiecesAPIError,
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesStreamError,
    PiecesTimeoutError,
    Timeout,
)
from aiopieces import (
    ModelDownloadProgressStatusEnum as Status,
)
from aiopieces.testing import PiecesOSEmulator

from .conftest import ServeApp
from .helpers import BOUND, LOCAL_DOWNLOADED, LOCAL_NOT_DOWNLOADED, model_id

FULL_RUN = [Status.INITIALIZED] + [Status.IN_PROGRESS] * 9 + [Status.COMPLETED]
#: A socket opened before the download starts first hears that PiecesOS knows none yet.
FROM_IDLE = [Status.UNKNOWN, *FULL_RUN]


async def watch_while_downloading(
    client: AsyncPiecesClient, emulator: PiecesOSEmulator, target: str
) -> list[ModelDownloadProgress]:
    """Subscribe, start the download once the server has the subscriber, collect events."""
    events: list[ModelDownloadProgress] = []

    async def consume() -> None:
        async for event in client.download_progress(target):
            events.append(event)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await emulator.wait_for_subscribers(target, 1)
        await client.download_model(target)
    return events


async def test_async_for_streams_to_the_terminal_status(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        events = await watch_while_downloading(pieces_client, pieces_emulator, target)
        assert [e.status for e in events] == FROM_IDLE
        percentages = [e.percentage for e in events]
        assert percentages[1:] == sorted(percentages[1:]) and percentages[-1] == 100
        # PiecesOS leaves the socket open after COMPLETED; we close it ourselves.
        await pieces_emulator.wait_for_subscribers(target, 0)
        assert pieces_emulator.model(target).downloaded


async def test_async_with_form(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        async with pieces_client.download_progress(target) as events:
            await pieces_emulator.wait_for_subscribers(target, 1)
            await pieces_client.download_model(target)
            statuses = [event.status async for event in events]
        assert statuses == FROM_IDLE
        await pieces_emulator.wait_for_subscribers(target, 0)


async def test_download_subscribes_before_starting(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        statuses = [event.status async for event in pieces_client.download(target)]
        assert statuses == FROM_IDLE
        assert [m for m, _ in pieces_emulator.requests] == ["GET", "POST"]
        assert pieces_emulator.requests[0][1].endswith("/download/progress")


async def test_download_async_with_form(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        async with pieces_client.download(target) as events:
            statuses = [event.status async for event in events]
        assert statuses == FROM_IDLE


async def test_download_of_a_downloaded_model_ends_at_once(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
        events = [event async for event in pieces_client.download(target)]
        assert [(e.status, e.percentage) for e in events] == [(Status.COMPLETED, 100)]


async def test_a_failed_download_ends_with_failed(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        pieces_emulator.fail_download(target, at_percentage=40)
        events = [event async for event in pieces_client.download(target)]
        assert events[-1].status == Status.FAILED and events[-1].percentage == 40
        assert not pieces_emulator.model(target).downloaded


async def test_breaking_out_closes_the_socket_and_the_download_goes_on(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=30)
    async for event in pieces_client.download(target):
        if event.status == Status.IN_PROGRESS:
            break
    with anyio.fail_after(BOUND):
        await pieces_emulator.wait_for_subscribers(target, 0)
    assert pieces_emulator.model(target).downloading  # not canceled by default
    assert (await pieces_client.get_model(target)).downloading  # the client is still usable
    pieces_emulator.release_downloads()


async def test_cancel_on_exit_cancels_the_download(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        pieces_emulator.hold_downloads(at_percentage=30)
        async with pieces_client.download(target, cancel_on_exit=True) as events:
            async for event in events:
                if event.status == Status.IN_PROGRESS:
                    break
        assert pieces_emulator.requests[-1] == ("POST", f"/model/{target}/download/cancel")
        model = pieces_emulator.model(target)
        assert not model.downloading and not model.downloaded


@pytest.mark.parametrize("ending", ["completed", "failed", "already downloaded"])
async def test_cancel_on_exit_sends_nothing_once_the_download_has_ended(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator, ending: str
) -> None:
    name = LOCAL_DOWNLOADED if ending == "already downloaded" else LOCAL_NOT_DOWNLOADED
    target = model_id(pieces_emulator, name)
    if ending == "failed":
        pieces_emulator.fail_download(target, at_percentage=40)
    with anyio.fail_after(BOUND):
        async with pieces_client.download(target, cancel_on_exit=True) as events:
            statuses = [event.status async for event in events]
    assert statuses[-1] == (Status.FAILED if ending == "failed" else Status.COMPLETED)
    assert not any(path.endswith("/cancel") for _, path in pieces_emulator.requests)


async def test_cancelling_the_consumer_closes_the_socket(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=50)
    seen: list[ModelDownloadProgress] = []

    async def consume(scope: anyio.CancelScope) -> None:
        async for event in pieces_client.download(target):
            seen.append(event)
            if event.percentage == 50:
                scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume, tg.cancel_scope)
    assert seen[-1].percentage == 50
    with anyio.fail_after(BOUND):
        await pieces_emulator.wait_for_subscribers(target, 0)
    assert len((await pieces_client.list_models()).iterable) == len(pieces_emulator.models)
    pieces_emulator.release_downloads()


async def test_mid_download_subscriber_gets_the_current_state_first(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        pieces_emulator.hold_downloads(at_percentage=50)
        first: list[ModelDownloadProgress] = []
        late: list[ModelDownloadProgress] = []
        async with pieces_client.download(target) as events:
            async for event in events:
                first.append(event)
                if event.percentage == 50:
                    break
            async with pieces_client.download_progress(target) as late_events:
                late.append(await anext(late_events))
                pieces_emulator.release_downloads()
                late.extend([event async for event in late_events])
            first.extend([event async for event in events])
        assert late[0] == ModelDownloadProgress(status=Status.IN_PROGRESS, percentage=50.0)
        assert late == first[6:]  # after UNKNOWN, INITIALIZED and four IN-PROGRESS
        assert [e.status for e in first] == FROM_IDLE


async def test_unknown_model_refuses_the_handshake(pieces_client: AsyncPiecesClient) -> None:
    with anyio.fail_after(BOUND):
        with pytest.raises(ModelNotFoundError) as info:
            async for _ in pieces_client.download_progress("ghost"):
                pass
        assert info.value.status == 410


async def test_closing_the_client_ends_open_streams(pieces_emulator: PiecesOSEmulator) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=30)
    client = AsyncPiecesClient(pieces_emulator.url)
    async with client:
        stream = client.download(target)
        async with stream as events:
            await anext(events)
            await client.aclose()
            with pytest.raises(PiecesClientStateError, match="client was closed"):
                await anext(events)
    with anyio.fail_after(BOUND):
        await pieces_emulator.wait_for_subscribers(target, 0)
    pieces_emulator.release_downloads()


# -- an independent server: frames the emulator never sends --------------------------------


def ws_app(*frames: str, close_code: int | None = None, silent: bool = False) -> web.Application:
    """Send `frames`, then close (with `close_code`), or stay `silent` until the client leaves."""

    async def progress(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for frame in frames:
            await ws.send_str(frame)
        if silent:  # only the pings aiohttp answers by itself
            async for _ in ws:
                pass
        elif close_code is not None:
            await ws.close(code=close_code, message=b"model store exploded")
        else:
            await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/model/{model}/download/progress", progress)
    return app


@pytest.mark.parametrize("close_code", [None, 1000, 1001])
async def test_iteration_ends_when_the_server_closes_normally(
    serve_app: ServeApp, close_code: int | None
) -> None:
    frames = ('{"status":"INITIALIZED"}', '{"status":"IN-PROGRESS","percentage":5}')
    url = await serve_app(ws_app(*frames, close_code=close_code))
    async with AsyncPiecesClient(url) as client:
        with anyio.fail_after(BOUND):
            stream = client.download_progress("m")
            events = [event async for event in stream]
    assert [e.percentage for e in events] == [None, 5]
    assert stream.reconnects == 0


async def test_unknown_status_passes_through(serve_app: ServeApp) -> None:
    with anyio.fail_after(BOUND):
        url = await serve_app(
            ws_app('{"status":"VERIFYING","percentage":99.5}', '{"status":"COMPLETED"}')
        )
        async with AsyncPiecesClient(url) as client:
            events = [event async for event in client.download_progress("m")]
        assert events[0].status == "VERIFYING" and not events[0].is_terminal
        assert events[1].status is Status.COMPLETED


@pytest.mark.parametrize(
    ("frame", "where"),
    [
        ("not json", "malformed"),
        ('{"percentage":"half"}', "$.percentage"),
        ("[1]", "Expected `object`"),
    ],
)
async def test_a_bad_frame_is_a_decode_error(serve_app: ServeApp, frame: str, where: str) -> None:
    with anyio.fail_after(BOUND):
        url = await serve_app(ws_app('{"status":"INITIALIZED"}', frame))
        async with AsyncPiecesClient(url) as client:
            received: list[ModelDownloadProgress] = []
            with pytest.raises(PiecesDecodeError, match=where.replace("$", r"\$")):
                async for event in client.download_progress("m"):
                    received.append(event)
            assert len(received) == 1


async def test_close_with_an_error_code_is_a_connection_error(serve_app: ServeApp) -> None:
    with anyio.fail_after(BOUND):
        url = await serve_app(ws_app('{"status":"INITIALIZED"}', close_code=1011))
        async with AsyncPiecesClient(url) as client:
            with pytest.raises(PiecesConnectionError, match="code 1011: model store exploded"):
                async for _ in client.download_progress("m"):
                    pass


async def test_two_subscribers_see_the_same_events(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        seen: dict[str, list[ModelDownloadProgress]] = {"a": [], "b": []}

        async def consume(name: str) -> None:
            async for event in pieces_client.download_progress(target):
                seen[name].append(event)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, "a")
            tg.start_soon(consume, "b")
            await pieces_emulator.wait_for_subscribers(target, 2)
            await pieces_client.download_model(target)
        assert seen["a"] == seen["b"]
        assert [e.status for e in seen["a"]] == FROM_IDLE


async def test_size_speed_and_eta_when_the_size_is_known() -> None:
    async with PiecesOSEmulator(shape="schema", download_interval=0.01, download_steps=4) as emu:
        target = model_id(emu, LOCAL_NOT_DOWNLOADED)
        size = emu.model(target).bytes
        assert size is not None
        async with AsyncPiecesClient(emu.url) as client:
            stream = client.download(target)
            with anyio.fail_after(BOUND):
                async for event in stream:
                    if event.percentage == 50:
                        assert stream.bytes_done == size.value // 2
    assert stream.total_bytes == size.value and stream.bytes_done == size.value
    assert stream.rate is not None and stream.rate > 0 and stream.eta == 0


async def test_without_a_size_there_is_no_estimate(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)  # the pieces shape: no bytes
    stream = pieces_client.download(target)
    with anyio.fail_after(BOUND):
        async for _ in stream:
            pass
    assert stream.total_bytes is None and stream.bytes_done is None and stream.eta is None


async def test_a_size_of_zero_gives_no_estimate() -> None:
    catalog = [
        {
            "id": "zero",
            "name": "Zero",
            "version": "1",
            "type": "BALANCED",
            "usage": "CODE_CONVERSATION",
            "bytes": {"value": 0, "readable": "0 B"},
        }
    ]
    emulator = PiecesOSEmulator(catalog, download_interval=0.01, download_steps=3)
    async with emulator, AsyncPiecesClient(emulator.url) as client:
        stream = client.download("zero")
        with anyio.fail_after(BOUND):
            async for _ in stream:
                assert stream.eta is None  # not a ZeroDivisionError
    assert stream.total_bytes is None and stream.rate is None


def test_a_stall_timeout_must_be_positive(pieces_emulator: PiecesOSEmulator) -> None:
    client = AsyncPiecesClient(pieces_emulator.url)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="stall_timeout"):
            client.download("m", stall_timeout=bad)


#: A model as `GET /model/{id}` serves it: no longer downloading, and not downloaded.
ENDED_UNSEEN = (
    b'{"id":"m-1","name":"M","version":"1","cloud":false,'
    b'"created":{"value":"2025-01-01T00:00:00Z"},"type":"BALANCED",'
    b'"usage":"CODE_CONVERSATION","downloading":false,"downloaded":false}'
)


async def test_a_download_that_ends_unseen_while_reconnecting_says_so(
    serve_app: ServeApp,
) -> None:
    handshakes: list[str] = []
    looked_up: list[str] = []

    async def progress(request: web.Request) -> web.WebSocketResponse:
        handshakes.append(request.match_info["model"])
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if len(handshakes) == 1:
            await ws.send_str('{"status":"IN-PROGRESS","percentage":40}')
            assert request.transport is not None
            request.transport.abort()  # a drop; the download ends while it lasts
            return ws
        async for _ in ws:  # the new socket says nothing, as PiecesOS's does
            pass
        return ws

    async def model(request: web.Request) -> web.Response:
        looked_up.append(request.match_info["model"])
        return web.Response(body=ENDED_UNSEEN, content_type="application/json")

    app = web.Application()
    app.router.add_get("/model/{model}/download/progress", progress)
    app.router.add_get("/model/{model}", model)
    url = await serve_app(app)
    async with AsyncPiecesClient(url) as client:
        stream = client.download_progress("m-1")
        with anyio.fail_after(BOUND), pytest.raises(PiecesStreamError) as info:
            async for _ in stream:
                pass
    assert str(info.value) == (
        f"{url}/model/m-1/download/progress: the download ended while the progress "
        "WebSocket was reconnecting, without completing: PiecesOS reports the model "
        "neither downloading nor downloaded (it failed or was canceled)"
    )
    assert (info.value.method, info.value.url) == ("GET", stream.url)
    assert stream.url == f"{url}/model/m-1/download/progress"
    assert handshakes == ["m-1", "m-1"] and looked_up == ["m-1"] and stream.reconnects == 1


@pytest.mark.parametrize(
    ("ws_idle", "stall", "phase", "message"),
    [
        (None, 0.2, "stall", "no progress for 0.2 s on {url} (stall timeout)"),
        (5.0, 0.2, "stall", "no progress for 0.2 s on {url} (stall timeout)"),
        (0.2, 5.0, "ws_idle", "no progress event for 0.2 s on {url} (ws_idle timeout)"),
    ],
)
async def test_the_earlier_of_ws_idle_and_stall_timeout_ends_a_silent_download(
    serve_app: ServeApp, ws_idle: float | None, stall: float, phase: str, message: str
) -> None:
    url = await serve_app(ws_app('{"status":"IN-PROGRESS","percentage":10}', silent=True))
    async with AsyncPiecesClient(url, timeout=Timeout(ws_idle=ws_idle)) as client:
        stream = client.download_progress("m", stall_timeout=stall)
        with anyio.fail_after(BOUND), pytest.raises(PiecesTimeoutError) as info:
            async for _ in stream:
                pass
    assert str(info.value) == message.format(url=stream.url)
    assert (info.value.phase, info.value.method, info.value.url) == (phase, "GET", stream.url)
    assert stream.url == f"{url}/model/m/download/progress"


#: What `POST /model/{id}/download` answers by default: the model, now downloading.
DOWNLOADING = ENDED_UNSEEN.replace(b'"downloading":false', b'"downloading":true')


def download_app(
    start_status: int,
    cancel_status: int = 200,
    *,
    started: bytes = DOWNLOADING,
    then_completed: bool = False,
) -> tuple[web.Application, list[str]]:
    """A progress socket that says one IN-PROGRESS then nothing (or COMPLETED); `POST
    .../download` answers `started` or a status, `.../download/cancel` a status. Returns
    the app and the POSTs seen."""
    posts: list[str] = []

    async def progress(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str('{"status":"IN-PROGRESS","percentage":10}')
        if then_completed:
            await ws.send_str('{"status":"COMPLETED","percentage":100}')
        async for _ in ws:
            pass
        return ws

    async def post(request: web.Request) -> web.Response:
        posts.append(request.path)
        status = cancel_status if request.path.endswith("/cancel") else start_status
        if status != 200:
            return web.Response(status=status, text="not now", content_type="text/plain")
        return web.Response(body=started, content_type="application/json")

    app = web.Application()
    app.router.add_get("/model/{model}/download/progress", progress)
    app.router.add_post("/model/{model}/download", post)
    app.router.add_post("/model/{model}/download/cancel", post)
    return app, posts


@pytest.mark.parametrize(
    ("status", "owed"), [(501, False), (502, True), (503, True), (504, True), (505, False)]
)
async def test_a_gateway_error_on_start_still_owes_a_cancel(
    serve_app: ServeApp, status: int, owed: bool
) -> None:
    """A gateway cannot say whether PiecesOS started the download; PiecesOS itself can."""
    app, posts = download_app(status)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesAPIError) as info:
            async for _ in client.download("m-1", cancel_on_exit=True):
                pass
    assert info.value.status == status
    cancel = ["/model/m-1/download/cancel"] if owed else []
    assert posts == ["/model/m-1/download", *cancel]


async def test_a_cancel_that_fails_is_a_warning_not_an_error(
    serve_app: ServeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app, posts = download_app(200, cancel_status=500)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND):
            async for event in client.download("m-1", cancel_on_exit=True):
                assert event.percentage == 10
                break
    assert posts == ["/model/m-1/download", "/model/m-1/download/cancel"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"could not cancel the download of m-1: POST {url}/model/m-1/download/cancel "
        "answered 500: not now"
    ]


async def test_a_start_that_has_not_begun_yet_does_not_end_the_stream(
    serve_app: ServeApp,
) -> None:
    """Neither downloading nor downloaded when the start answers: the events still come."""
    app, _ = download_app(200, started=ENDED_UNSEEN, then_completed=True)
    url = await serve_app(app)
    async with AsyncPiecesClient(url) as client:
        with anyio.fail_after(BOUND):
            events = [(e.status, e.percentage) async for e in client.download("m-1")]
    assert events == [(Status.IN_PROGRESS, 10), (Status.COMPLETED, 100)]


async def test_a_size_of_one_byte_is_a_size(serve_app: ServeApp) -> None:
    one_byte = DOWNLOADING.replace(b'"id":"m-1"', b'"id":"m-1","bytes":{"value":1}')
    app, _ = download_app(200, started=one_byte, then_completed=True)
    url = await serve_app(app)
    async with AsyncPiecesClient(url) as client:
        stream = client.download("m-1")
        with anyio.fail_after(BOUND):
            async for _ in stream:
                pass
    assert stream.total_bytes == 1 and stream.bytes_done == 1


async def test_before_the_first_event_the_size_is_known_and_nothing_is_done(
    serve_app: ServeApp,
) -> None:
    sized = DOWNLOADING.replace(b'"id":"m-1"', b'"id":"m-1","bytes":{"value":1000}')
    app, _ = download_app(200, started=sized, then_completed=True)
    url = await serve_app(app)
    async with AsyncPiecesClient(url) as client:
        with anyio.fail_after(BOUND):
            async with client.download("m-1") as stream:
                assert stream.total_bytes == 1000  # from the start's answer
                assert (stream.bytes_done, stream.rate, stream.eta) == (None, None, None)
                await anext(stream)
                assert stream.bytes_done == 100


async def test_a_download_that_keeps_moving_never_stalls(serve_app: ServeApp) -> None:
    """Each new percentage restarts the stall clock: over a second in all, never 0.5 s
    without one (a margin of fifty times the pacing, for a loaded machine)."""

    async def progress(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for percentage in range(1, 101):
            await ws.send_str(f'{{"status":"IN-PROGRESS","percentage":{percentage}}}')
            await asyncio.sleep(0.011)  # the server's pacing, not a wait for an event
        await ws.send_str('{"status":"COMPLETED","percentage":100}')
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/model/{model}/download/progress", progress)
    url = await serve_app(app)
    async with AsyncPiecesClient(url) as client:
        with anyio.fail_after(BOUND):
            stream = client.download_progress("m", stall_timeout=0.5)
            events = [event.percentage async for event in stream]
    assert events == [*range(1, 101), 100]


async def test_a_close_frame_without_a_code_ends_the_stream_normally() -> None:
    # aiohttp's server always sends a code; other servers may send none (RFC 6455's
    # "no status received"), which aiohttp reports as code 0. A raw server sends it here.
    import base64
    import hashlib

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        magic = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1(key.encode() + magic).digest()).decode()
        writer.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        frame = b'{"status":"IN-PROGRESS","percentage":7}'
        writer.write(bytes([0x81, len(frame)]) + frame)  # one text frame
        writer.write(b"\x88\x00")  # a close frame with no payload
        await writer.drain()
        await reader.readexactly(6)  # the client's close frame (masked, no payload)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AsyncPiecesClient(f"http://127.0.0.1:{port}") as client:
            with anyio.fail_after(BOUND):
                stream = client.download_progress("m")
                events = [event async for event in stream]
    finally:
        server.close()
        await server.wait_closed()
    assert [e.percentage for e in events] == [7]
    assert stream.reconnects == 0


async def test_a_finished_stream_is_not_kept_alive_by_the_client(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    import gc
    import weakref

    target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    with anyio.fail_after(BOUND):
        async with pieces_client.download(target) as events:
            assert [event.status async for event in events] == [Status.COMPLETED]
    finished = weakref.ref(events)
    del events
    gc.collect()
    assert finished() is None  # a client that downloads all day does not grow


async def test_a_cancelled_download_ends_the_stream_with_canceled(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=30)
    with anyio.fail_after(BOUND):
        async with pieces_client.download(target) as events:
            statuses = []
            async for event in events:
                statuses.append(event.status)
                if event.status == Status.IN_PROGRESS:
                    await pieces_client.cancel_download(target)
    assert statuses[-1] is Status.CANCELED and statuses.count(Status.CANCELED) == 1
    assert events.reconnects == 0
    pieces_emulator.release_downloads()
