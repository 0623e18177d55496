"""The transport: the bytes of the request line, the size limit, which statuses succeed."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import gzip
import hashlib
import logging
import socket
import struct
from collections.abc import Callable

import aiohttp
import anyio
import msgspec
import pytest
import yarl
from aiohttp import web

from aiopieces import (
    AsyncPiecesClient,
    PiecesAPIError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesTimeoutError,
    Timeout,
    _transport,
)
from aiopieces._transport import model_segment, parse_retry_after, to_pieces_error, ws_url
from aiopieces.testing import PiecesOSEmulator

from .conftest import ServeApp
from .helpers import BOUND, LOCAL_NOT_DOWNLOADED, free_port, model_id

PAST = "Wed, 21 Oct 2015 07:28:00 GMT"


@pytest.mark.parametrize(
    ("model_id", "segment"),
    [
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("a.b", "a%2Eb"),
        ("a/b", "a%2Fb"),
        ("a?b#c", "a%3Fb%23c"),
        ("a b", "a%20b"),
        ("%2F", "%252F"),
        ("ü", "%C3%BC"),
        ("plain-id_1~", "plain-id_1~"),
    ],
)
def test_model_segment_encodes_one_segment(model_id: str, segment: str) -> None:
    assert model_segment(model_id) == segment


async def test_the_request_line_carries_the_encoded_segment(serve_app: ServeApp) -> None:
    # Neither aiohttp nor the emulator resolves dot segments, so only the raw path shows
    # whether "." and ".." went out encoded.
    raw_paths: list[str] = []

    async def record(request: web.Request) -> web.Response:
        raw_paths.append(request.raw_path)
        return web.json_response({"id": request.match_info["model"]})

    app = web.Application()
    app.router.add_get("/model/{model}", record)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            for hostile in [".", "..", "a.b", "a/b"]:
                assert (await client.get_model(hostile)).id == hostile
    assert raw_paths == ["/model/%2E", "/model/%2E%2E", "/model/a%2Eb", "/model/a%2Fb"]


def test_model_segment_refuses_what_is_not_an_id() -> None:
    with pytest.raises(ValueError, match="empty"):
        model_segment("")
    with pytest.raises(TypeError, match="must be a str, not int"):
        model_segment(7)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("-1", 0.0),
        ("nan", None),
        ("3600", 3600.0),
        ("3601", None),
        ("soon", None),
        ("", None),
        (None, None),
        (PAST, 0.0),  # a date in the past: no wait
    ],
    ids=["3", "0.5", "0", "-1", "nan", "3600", "3601", "soon", "empty", "none", "past_date"],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def _body_of(size: int) -> bytes:
    """A JSON models list of exactly `size` bytes."""
    head, tail = b'{"iterable": [], "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_of_exactly_the_limit_is_read_one_more_byte_is_not(
    serve_app: ServeApp, chunked: bool
) -> None:
    limit = 4096
    size = limit

    async def sized(request: web.Request) -> web.StreamResponse:
        body = _body_of(size)
        if not chunked:  # a Content-Length to refuse on before reading
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 1000):
            await response.write(body[start : start + 1000])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/models", sized)
    async with AsyncPiecesClient(
        await serve_app(app), retry=None, max_response_bytes=limit
    ) as client:
        with anyio.fail_after(BOUND):
            assert (await client.list_models()).iterable == []
            size = limit + 1
            with pytest.raises(PiecesDecodeError, match=f"exceeds {limit}"):
                await client.list_models()


@pytest.mark.parametrize("status", [300, 301, 304, 307, 399])
async def test_an_answer_outside_2xx_is_an_api_error(serve_app: ServeApp, status: int) -> None:
    async def odd(request: web.Request) -> web.Response:
        # No Location header: aiohttp has nothing to follow, and the status reaches us.
        return web.Response(status=status, body=b"" if status == 304 else b"{}")

    app = web.Application()
    app.router.add_get("/models", odd)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesAPIError) as info:
            await client.list_models()
    assert info.value.status == status


async def test_an_endpoint_without_a_body_succeeds_on_any_2xx(serve_app: ServeApp) -> None:
    answers = iter([(200, b'{"ignored": true}'), (204, b""), (202, b"")])

    async def delete(request: web.Request) -> web.Response:
        status, body = next(answers)
        return web.Response(status=status, body=body or None)

    app = web.Application()
    app.router.add_post("/models/{model}/delete", delete)
    app.router.add_post("/models/unload", delete)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            assert await client.delete_model("custom-1") is None
            assert await client.delete_model("custom-1") is None
            assert await client.unload_models() is None


# -- how each failure on the way becomes a PiecesError -------------------------------------


async def test_retry_after_reaches_the_error_as_seconds(serve_app: ServeApp) -> None:
    future = email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=600), usegmt=True
    )
    headers = ["0.5", "-1", "0", "nan", "3600", "3601", "soon", "", PAST, future]

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy", headers={"Retry-After": headers.pop(0)})

    app = web.Application()
    app.router.add_get("/models", busy)
    seen: list[float | None] = []
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            while headers:
                with pytest.raises(PiecesAPIError) as info:
                    await client.list_models()
                assert type(info.value) is PiecesAPIError  # 503: not ModelNotFoundError
                seen.append(info.value.retry_after)
    *fixed, in_future = seen
    assert fixed == [0.5, 0.0, 0.0, None, 3600.0, None, None, None, 0.0]
    assert in_future is not None and 590 < in_future <= 600


async def test_a_busy_pool_says_which_request_waited(serve_app: ServeApp) -> None:
    release, arrived = anyio.Event(), anyio.Event()

    async def stall(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"iterable": []})

    app = web.Application()
    app.router.add_get("/models", stall)
    url = await serve_app(app)
    async with AsyncPiecesClient(
        url, retry=None, max_connections=1, timeout=Timeout(pool=0.2)
    ) as client:
        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.list_models)
                await arrived.wait()
                with pytest.raises(PiecesTimeoutError) as info:
                    await client.list_models()
                release.set()
    error = info.value
    assert (error.phase, error.method, error.url) == ("pool", "GET", f"{url}/models")
    assert str(error) == (
        f"GET {url}/models: every request slot of this client (max_connections) stayed "
        "busy for 0.2 s (pool timeout)"
    )
    assert error.__cause__ is None


async def test_a_refused_connection_keeps_the_os_reason() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesConnectionError) as info:
            await client.list_models()
    error = info.value
    cause = error.__cause__
    assert isinstance(cause, aiohttp.ClientConnectorError)
    assert error.reason == cause.os_error.strerror
    assert error.reason.startswith("Connect call failed")
    assert str(error) == (
        f"cannot reach PiecesOS at {url}/models: {error.reason}. Is PiecesOS running? "
        "Set the URL with AsyncPiecesClient(base_url) or PIECES_OS_URL."
    )
    assert (error.method, error.url, error.request_sent) == ("GET", f"{url}/models", False)


async def test_a_total_timeout_says_which_request(serve_app: ServeApp) -> None:
    async def stall(request: web.Request) -> web.Response:
        await anyio.sleep_forever()
        raise AssertionError  # pragma: no cover

    app = web.Application()
    app.router.add_get("/models", stall)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None, timeout=Timeout(read=None, total=0.2)) as c:
        with anyio.fail_after(BOUND), pytest.raises(PiecesTimeoutError) as info:
            await c.list_models()
    error = info.value
    assert (error.phase, error.method, error.url) == ("total", "GET", f"{url}/models")
    assert str(error) == f"GET {url}/models: no complete answer within 0.2 s (total timeout)"
    assert isinstance(error.__cause__, TimeoutError)


async def test_a_redirect_loop_is_a_connection_error(serve_app: ServeApp) -> None:
    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/models")

    app = web.Application()
    app.router.add_get("/models", loop)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesConnectionError) as info:
            await client.list_models()
    error = info.value
    assert isinstance(error.__cause__, aiohttp.TooManyRedirects)
    assert error.reason == "too many redirects (10)"
    assert (error.method, error.url, error.request_sent) == ("GET", f"{url}/models", True)


async def _raw_server(reply: Callable[[asyncio.StreamWriter], None]) -> tuple[str, asyncio.Server]:
    """A TCP server on 127.0.0.1 that reads one request head, then does `reply`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        reply(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", server


def _garbage(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HELLO WORLD\r\n\r\n")
    writer.close()


def _hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@pytest.mark.parametrize(
    ("reply", "cause", "reason"),
    [
        (_garbage, aiohttp.ClientResponseError, "ClientResponseError: Bad status line:"),
        (_hang_up, aiohttp.ServerDisconnectedError, "the connection failed (Server disconnected)"),
        (_reset, aiohttp.ClientOSError, "the connection failed ([Errno 104] Connection reset"),
    ],
    ids=["garbage", "hang_up", "reset"],
)
async def test_a_broken_answer_is_a_connection_error(
    reply: Callable[[asyncio.StreamWriter], None], cause: type[Exception], reason: str
) -> None:
    url, server = await _raw_server(reply)
    async with server, AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesConnectionError) as info:
            await client.list_models()
    error = info.value
    assert type(error.__cause__) is cause
    assert error.reason.startswith(reason)
    assert str(error).startswith(f"cannot reach PiecesOS at {url}/models: {reason}")
    assert (error.method, error.url, error.request_sent) == ("GET", f"{url}/models", True)


async def test_a_refused_handshake_keeps_retry_after(serve_app: ServeApp) -> None:
    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="restarting", headers={"Retry-After": "7"})

    app = web.Application()
    app.router.add_get("/model/{model}/download/progress", busy)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesAPIError) as info:
            async for _ in client.download_progress("m"):
                pass  # pragma: no cover
    error = info.value
    assert type(error) is PiecesAPIError
    assert (error.status, error.retry_after) == (503, 7.0)
    assert (error.method, error.url) == ("GET", f"{url}/model/m/download/progress")
    assert isinstance(error.__cause__, aiohttp.WSServerHandshakeError)


async def test_a_connect_that_never_completes_is_a_connect_timeout() -> None:
    # A listening socket whose accept queue is full: the kernel drops further SYNs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers: list[socket.socket] = []
    try:
        for _ in range(10):  # until one connect does not complete: the queue is full
            filler = socket.socket()
            filler.settimeout(0.1)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:
            pytest.skip("the kernel accepted every connection")  # pragma: no cover
        url = f"http://127.0.0.1:{port}"
        async with AsyncPiecesClient(url, retry=None, timeout=Timeout(connect=0.2)) as client:
            with anyio.fail_after(BOUND), pytest.raises(PiecesTimeoutError) as info:
                await client.list_models()
    finally:
        for sock in [*fillers, listener]:
            sock.close()
    error = info.value
    assert (error.phase, error.method, error.url) == ("connect", "GET", f"{url}/models")
    assert str(error) == (
        f"GET {url}/models: no connection within 0.2 s (connect timeout: "
        "nothing accepted it, or the session's connector had no free connection)"
    )
    assert isinstance(error.__cause__, aiohttp.ConnectionTimeoutError)


# -- the error mapping, for failures loopback cannot provoke on demand ---------------------


def _mapped(exc: Exception) -> Exception:
    return to_pieces_error(exc, "GET", "http://pieces/models", Timeout(read=1))


@pytest.mark.parametrize(
    "exc",
    [
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        msgspec.DecodeError("Expected `object`, got `int`"),
    ],
)
def test_a_decoding_failure_inside_a_request_is_a_decode_error(exc: Exception) -> None:
    error = _mapped(exc)
    assert type(error) is PiecesDecodeError
    assert (error.method, error.url) == ("GET", "http://pieces/models")
    assert str(error) == f"GET http://pieces/models: {exc}"


def test_an_os_error_without_text_is_named_by_its_type() -> None:
    error = _mapped(ConnectionResetError())
    assert isinstance(error, PiecesConnectionError)
    assert "the connection failed (ConnectionResetError)" in str(error)
    error = _mapped(aiohttp.ServerDisconnectedError())
    assert "the connection failed (Server disconnected)" in str(error)


def test_a_refused_connection_without_os_text_keeps_aiohttps_text() -> None:
    key = aiohttp.client_reqrep.ConnectionKey("pieces", 1, False, True, None, None, None)
    refused = aiohttp.ClientConnectorError(key, OSError(111, ""))
    error = _mapped(refused)
    assert isinstance(error, PiecesConnectionError) and error.request_sent is False
    assert str(refused) in str(error)


def test_anything_else_is_returned_as_it_is() -> None:
    bug = KeyError("ours")
    assert _mapped(bug) is bug


# -- opening and closing a WebSocket (connect_ws, close_ws) --------------------------------


async def _trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer a handshake one byte at a time, for ever: aiohttp's read timeout never fires."""
    await reader.readuntil(b"\r\n\r\n")
    answer = b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Pad: y\r\n" * 1000
    try:
        for byte in answer:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.01)  # the server's pace, well inside the read timeout
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def test_a_handshake_that_never_completes_is_bounded_by_connect_plus_read() -> None:
    server = await asyncio.start_server(_trickle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    timeout = Timeout(connect=0.05, read=0.2)
    handshake = 0.05 + 0.2
    async with server, AsyncPiecesClient(url, retry=None, timeout=timeout) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesTimeoutError) as info:
            async for _ in client.download_progress("m"):
                pass  # pragma: no cover
    error = info.value
    ws = f"{url}/model/m/download/progress"
    assert (error.phase, error.method, error.url) == ("connect", "GET", ws)
    assert str(error) == f"GET {ws}: no WebSocket handshake within {handshake} s (connect + read)"
    assert error.__cause__ is None


async def test_heartbeat_pings_reach_the_server(
    serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transport, "HEARTBEAT", 0.2)  # a pong is due within 0.1 s
    pings: list[bytes] = []

    async def progress(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.PING:
                pings.append(msg.data)
                await ws.pong(msg.data)
                await ws.close()  # a normal close: the stream ends
        return ws

    app = web.Application()
    app.router.add_get("/model/{model}/download/progress", progress)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            assert [event async for event in client.download_progress("m")] == []
    assert len(pings) == 1


def _deaf_app(first: str) -> tuple[web.Application, anyio.Event]:
    """A progress socket that sends `first`, then never reads again (so never answers a
    close frame) until the returned event is set."""
    done = anyio.Event()

    async def progress(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(first)
        await done.wait()
        return ws

    app = web.Application()
    app.router.add_get("/model/{model}/download/progress", progress)
    return app, done


async def test_a_bare_close_frame_then_silence_ends_the_stream_within_the_close_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A close frame without a code (0): aiohttp answers it, then waits for one more close
    # frame from the peer, for as long as the `ws_close` timeout connect_ws gives it.
    monkeypatch.setattr(_transport, "CLOSE_TIMEOUT", 0.05)
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + aiohttp.http.WS_KEY).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            b"\x88\x00"  # FIN + CLOSE, no payload
        )
        await done.wait()  # then silence: no second close frame, the socket left open
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server, AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND):
            assert [event async for event in client.download_progress("m")] == []
        done.set()


async def test_a_close_the_peer_never_answers_is_cut_short_and_logged(
    serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_transport, "CLOSE_TIMEOUT", 0.05)
    caplog.set_level(logging.DEBUG, logger="aiopieces")
    app, done = _deaf_app('{"status":"IN-PROGRESS","percentage":10}')
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            async with client.download_progress("m") as events:
                async for event in events:
                    assert event.percentage == 10
                    break
        done.set()
    messages = [r.getMessage() for r in caplog.records]
    assert "the peer did not finish the close handshake in 0.05 s" in messages


async def test_a_consumer_cancelled_mid_download_still_closes_and_sends_the_cancel_owed(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    # The close runs inside the consumer's cancelled scope: shielded, it finishes, and the
    # stream's own cleanup (the cancel) runs after it.
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=30)
    with anyio.fail_after(BOUND):
        with anyio.CancelScope() as scope:
            async with pieces_client.download(target, cancel_on_exit=True) as events:
                async for event in events:
                    if event.percentage == 30:
                        scope.cancel()
                        break
        assert pieces_emulator.requests[-1] == ("POST", f"/model/{target}/download/cancel")
        assert not pieces_emulator.model(target).downloading


# -- reading a body (read_body) ------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_refused_body_says_which_request(serve_app: ServeApp, chunked: bool) -> None:
    async def big(request: web.Request) -> web.StreamResponse:
        body = _body_of(4097)
        if not chunked:
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/models", big)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None, max_response_bytes=4096) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesDecodeError) as info:
            await client.list_models()
    error = info.value
    assert (error.method, error.url) == ("GET", f"{url}/models")
    if chunked:
        assert str(error) == f"GET {url}/models: body exceeds 4096 bytes"
    else:
        assert str(error) == f"GET {url}/models: body of 4097 bytes exceeds 4096"


async def test_a_compressed_body_is_limited_by_its_decompressed_size(serve_app: ServeApp) -> None:
    # Its Content-Length (the compressed size) is well under the limit, and it has all
    # arrived at once: only counting what decompression produces refuses it.
    body = _body_of(100_000)
    compressed = gzip.compress(body)
    assert len(compressed) < 4096

    async def zipped(request: web.Request) -> web.Response:
        return web.Response(
            body=compressed,
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )

    app = web.Application()
    app.router.add_get("/models", zipped)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None, max_response_bytes=4096) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesDecodeError) as info:
            await client.list_models()
    assert str(info.value) == f"GET {url}/models: body exceeds 4096 bytes"
    async with AsyncPiecesClient(url, retry=None, max_response_bytes=len(body)) as client:
        with anyio.fail_after(BOUND):
            assert (await client.list_models()).iterable == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_that_arrives_in_many_reads_is_read_whole(
    serve_app: ServeApp, chunked: bool
) -> None:
    # More than one socket read can bring, and no byte of it could be added or lost
    # without breaking the JSON.
    body = b'{"iterable": [], "pad": [' + b"0," * 1_000_000 + b"0]}"

    async def large(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = len(body)
        await response.prepare(request)
        for start in range(0, len(body), 100_000):
            await response.write(body[start : start + 100_000])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/models", large)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            assert (await client.list_models()).iterable == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:1000/a?b=c", "ws://127.0.0.1:1000/a?b=c"),
        ("https://pieces.example/a", "wss://pieces.example/a"),
        ("ws://pieces.example/a", "ws://pieces.example/a"),
        ("wss://pieces.example/a", "wss://pieces.example/a"),
    ],
)
def test_ws_url_gives_the_websocket_form_of_a_url(url: str, expected: str) -> None:
    assert str(ws_url(yarl.URL(url))) == expected


# -- decoding (decode) -----------------------------------------------------------------------


async def test_an_undecodable_body_is_previewed_by_its_first_200_bytes(
    serve_app: ServeApp,
) -> None:
    body = b"\xff" + b"x" * 300  # neither JSON nor UTF-8

    async def broken(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/models", broken)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesDecodeError) as info:
            await client.list_models()
    error = info.value
    preview = "\ufffd" + "x" * 199
    assert error.preview == preview
    assert str(error).endswith(f"; payload starts {preview!r}")
    assert (error.method, error.url) == ("GET", f"{url}/models")


async def test_an_undecodable_text_frame_is_previewed_by_its_first_200_characters(
    serve_app: ServeApp,
) -> None:
    frame = '{"status": ' + "ü" * 300  # str, as aiohttp hands text frames over

    async def progress(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(frame)
        async for _ in ws:
            pass  # pragma: no cover
        return ws

    app = web.Application()
    app.router.add_get("/model/{model}/download/progress", progress)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        stream = client.download_progress("m")
        with anyio.fail_after(BOUND), pytest.raises(PiecesDecodeError) as info:
            async for _ in stream:
                pass  # pragma: no cover
    error = info.value
    assert error.preview == frame[:200]
    assert str(error).startswith(f"progress frame from {stream.url}: ")
    assert str(error).endswith(f"; payload starts {frame[:200]!r}")
    assert (error.method, error.url) == ("GET", stream.url)
