"""The reconnecting WebSocket core (`WebSocketStream`) on its own, over real sockets.

Each test serves a hand-written WebSocket endpoint that does exactly what the test needs
per handshake (send frames, close with a code, drop, refuse) and counts the handshakes.
The stream's host is a small `StreamHost` of the test's own over a real aiohttp session:
it takes no wait between reconnects but records it, and records every search for
PiecesOS (`rediscover`), which a client would do out of sight.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
import yarl
from aiohttp import web

from aiopieces import (
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesError,
    PiecesTimeoutError,
    Retry,
    Timeout,
)
from aiopieces._streams import MAX_RECONNECTS, WebSocketStream
from aiopieces._watch import IDENTIFIERS_PATH, ModelWatch

from .conftest import ServeApp
from .helpers import BOUND, free_port

#: What one handshake does: it is given the request and returns the response.
Plan = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """A WebSocket endpoint that follows one plan per handshake (the last one repeats)."""

    def __init__(self, *plans: Plan) -> None:
        self.plans = plans
        self.handshakes = 0
        #: Set at every handshake; a test clears it to wait for the next one.
        self.connected = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        self.connected.set()
        return await self.plans[min(self.handshakes, len(self.plans)) - 1](request)

    def app(self, path: str = "/ws") -> web.Application:
        app = web.Application()
        app.router.add_get(path, self.handle)
        return app


def frames(
    *texts: str,
    close: int | None = None,
    message: bytes = b"",
    drop: bool = False,
    raw: bytes | None = None,
    then: Callable[[], None] | None = None,
) -> Plan:
    """Send `texts`, run `then`, then close with `close`, drop the connection, write the
    `raw` bytes, or (none of these) stay open until the client leaves."""

    async def plan(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for text in texts:
            await ws.send_str(text)
        if then is not None:
            then()
        assert request.transport is not None
        if close is not None:
            await ws.close(code=close, message=message)
        elif drop:
            request.transport.abort()
        elif raw is not None:
            request.transport.write(raw)
            async for _ in ws:
                pass
        else:
            async for _ in ws:
                pass
        return ws

    return plan


def refuse(status: int, text: str) -> Plan:
    """Answer the handshake with a plain HTTP error."""

    async def plan(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text, content_type="text/plain")

    return plan


class Host:
    """A `StreamHost` over a real session; records waits (takes none) and searches."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base: str,
        retry: Retry,
        *,
        timeout: Timeout | None = None,
        max_frame_bytes: int = 1 << 20,
    ) -> None:
        self._session = session
        self._timeout = timeout or Timeout()
        self._max_frame_bytes = max_frame_bytes
        #: Where PiecesOS is now: a test may move it.
        self.base = base
        #: Where a search for PiecesOS finds it (`None`: it stays where it is).
        self.found_at: str | None = None
        self._retry = retry
        self.sleeps: list[float] = []
        self.searches = 0
        self.streams: set[WebSocketStream[Any]] = set()

    @property
    def timeout(self) -> Timeout:
        return self._timeout

    @property
    def retry(self) -> Retry:
        return self._retry

    @property
    def max_frame_bytes(self) -> int:
        return self._max_frame_bytes

    def session(self) -> aiohttp.ClientSession:
        return self._session

    def url(self, path: str) -> yarl.URL:
        return yarl.URL(self.base + path, encoded=True)

    def attach(self, stream: WebSocketStream[Any]) -> None:
        self.streams.add(stream)

    def detach(self, stream: WebSocketStream[Any]) -> None:
        self.streams.discard(stream)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    async def rediscover(self) -> None:
        self.searches += 1
        if self.found_at is not None:
            self.base = self.found_at


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def top_of_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every jittered wait is its upper bound, so the waits can be told apart exactly."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high)


INTS = msgspec.json.Decoder(int)
#: What aiohttp says of a refused handshake, in place of the body it does not read.
HANDSHAKE_REFUSED = "Invalid response status"
POLICY = Retry(attempts=2, backoff=0.01, max_backoff=1.0)


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


async def read_all(stream: WebSocketStream[Any]) -> list[Any]:
    with anyio.fail_after(BOUND):
        return [event async for event in stream]


# -- why a socket dropped, as the error says ------------------------------------------------

#: Frame with RSV1 set (no extension agreed) and an empty text payload: a protocol error.
RSV1_FRAME = b"\xc1\x00"


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        (frames("1", close=1012, message=b"service restart"), "close code 1012: service restart"),
        (frames("1", close=1013), "close code 1013"),
        (frames("1", drop=True), "close code 1006"),
        (frames("1", raw=RSV1_FRAME), "WebSocketError: Received frame with non-zero reserved bits"),
    ],
    ids=["1012-with-reason", "1013-bare", "dropped", "protocol-error"],
)
async def test_without_retries_a_drop_ends_the_stream_saying_why(
    serve_app: ServeApp, session: aiohttp.ClientSession, plan: Plan, why: str
) -> None:
    server = Server(plan)
    base = await serve_app(server.app())
    host = Host(session, base, Retry(attempts=1))
    stream = WebSocketStream(host, "/ws", INTS)
    received: list[int] = []
    with pytest.raises(PiecesConnectionError) as info:
        with anyio.fail_after(BOUND):
            async for event in stream:
                received.append(event)
    err = info.value
    assert received == [1]
    assert err.reason == f"the stream WebSocket dropped ({why}); gave up after 0 reconnects"
    assert str(err).startswith(f"cannot reach PiecesOS at {base}/ws: {err.reason}. ")
    assert (err.url, err.method) == (f"{base}/ws", "GET")
    assert server.handshakes == 1 and stream.reconnects == 0 and host.sleeps == []
    assert not host.streams  # detached once it ended


# -- a patient stream: every failed reconnect is one more drop, with a growing wait ---------


async def test_a_patient_stream_gives_up_after_max_reconnects_failed_in_a_row(
    serve_app: ServeApp, session: aiohttp.ClientSession, top_of_jitter: None
) -> None:
    server = Server(frames('{"iterable":[]}', drop=True), refuse(500, "boom"))
    base = await serve_app(server.app(IDENTIFIERS_PATH))
    host = Host(session, base, POLICY)
    stream = ModelWatch(host)
    url = f"{base}{IDENTIFIERS_PATH}"
    with pytest.raises(PiecesConnectionError) as info:
        await read_all(stream)
    err = info.value
    # A refused handshake (aiohttp keeps no body of it): no retry, no search.
    failed = f"GET {url} answered 500: {HANDSHAKE_REFUSED}"
    assert err.reason == (
        f"the model identifier WebSocket dropped (reconnecting failed: {failed}); "
        f"gave up after {MAX_RECONNECTS} reconnects"
    )
    assert (err.url, err.method) == (url, "GET")
    assert str(err).startswith(f"cannot reach PiecesOS at {url}: ")
    assert server.handshakes == 1 + MAX_RECONNECTS and stream.reconnects == 0
    # No wait before the first reconnect; then backoff(policy, n) before the n+1-th.
    assert host.sleeps == [min(1.0, 0.01 * 2 ** (n - 1)) for n in range(1, MAX_RECONNECTS)]
    assert host.searches == 0


async def test_a_patient_stream_searches_for_pieces_os_when_refused_and_goes_on(
    serve_app: ServeApp, session: aiohttp.ClientSession, top_of_jitter: None
) -> None:
    host: Host
    server = Server(
        frames('{"iterable":[]}', then=lambda: setattr(host, "base", dead_url()), drop=True),
        frames('{"iterable":[{"model":{"id":"m"}}]}'),
    )
    base = await serve_app(server.app(IDENTIFIERS_PATH))
    host = Host(session, base, POLICY)
    host.found_at = base  # PiecesOS moved away, and a search finds it again
    with anyio.fail_after(BOUND):
        async with ModelWatch(host) as stream:
            await anext(stream)
            batch = await anext(stream)
    assert [item.model.id for item in batch.iterable if item.model] == ["m"]
    assert stream.snapshot and stream.reconnects == 1 and server.handshakes == 2
    assert host.searches == 1
    # The refused connect was retried once (its own wait), then the second reconnect in
    # a row waited backoff(policy, 1).
    assert host.sleeps == [0.01, 0.01]


# -- an impatient stream: a failed reconnect ends it, saying what failed ----------------------


async def test_a_reconnect_refused_by_the_server_ends_an_impatient_stream(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    server = Server(frames("1", drop=True), refuse(500, "boom"))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    with pytest.raises(PiecesConnectionError) as info:
        await read_all(stream)
    err = info.value
    assert err.reason == (
        f"the stream WebSocket dropped (close code 1006), and reconnecting failed: "
        f"GET {base}/ws answered 500: {HANDSHAKE_REFUSED}"
    )
    assert (err.url, err.method) == (f"{base}/ws", "GET")
    assert type(err.__cause__).__name__ == "PiecesAPIError"
    assert server.handshakes == 2 and host.searches == 0 and host.sleeps == []


async def test_a_reconnect_that_cannot_connect_searches_then_ends_an_impatient_stream(
    serve_app: ServeApp, session: aiohttp.ClientSession, top_of_jitter: None
) -> None:
    host: Host
    server = Server(frames("1", then=lambda: setattr(host, "base", dead_url()), drop=True))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    with pytest.raises(PiecesConnectionError) as info:
        await read_all(stream)
    err, cause = info.value, info.value.__cause__
    assert isinstance(cause, PiecesConnectionError) and not cause.request_sent
    assert err.reason == (
        f"the stream WebSocket dropped (close code 1006), and reconnecting failed: {cause.reason}"
    )
    assert (err.url, err.method) == (f"{base}/ws", "GET")  # where the stream was opened
    assert server.handshakes == 1 and host.searches == 1
    assert host.sleeps == [0.01]  # the one retry of the refused connect


# -- what ends a stream at once, never retried -------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "error", "message"),
    [
        (
            frames("1", close=1011, message=b"store exploded"),
            PiecesConnectionError,
            "cannot reach PiecesOS at {url}: the stream WebSocket was closed with code 1011: "
            "store exploded. ",
        ),
        (
            frames("1", close=4000),
            PiecesConnectionError,
            "cannot reach PiecesOS at {url}: the stream WebSocket was closed with code 4000. ",
        ),
        (
            frames("1", close=1007, message=b"bad text"),
            PiecesDecodeError,
            "stream frame from {url}: close code 1007: bad text (refused, not retried)",
        ),
        (
            frames("1", close=1009),
            PiecesDecodeError,
            "stream frame from {url}: close code 1009 (refused, not retried)",
        ),
        (
            frames("1", "2" * 100),
            PiecesDecodeError,
            "stream frame from {url}: WebSocketError: Message size 100 exceeds limit 64 "
            "(refused, not retried)",
        ),
        (frames("1", "[1]"), PiecesDecodeError, "stream frame from {url}"),
    ],
    ids=["1011", "4000-bare", "1007", "1009-bare", "oversized", "wrong-type"],
)
async def test_an_error_close_or_bad_data_ends_the_stream_without_a_reconnect(
    serve_app: ServeApp,
    session: aiohttp.ClientSession,
    plan: Plan,
    error: type[PiecesError],
    message: str,
) -> None:
    server = Server(plan)
    base = await serve_app(server.app())
    url = f"{base}/ws"
    host = Host(session, base, POLICY, max_frame_bytes=64)
    stream = WebSocketStream(host, "/ws", INTS)
    received: list[int] = []
    with pytest.raises(error) as info:
        with anyio.fail_after(BOUND):
            async for event in stream:
                received.append(event)
    assert type(info.value) is error and str(info.value).startswith(message.format(url=url))
    assert (info.value.url, info.value.method) == (url, "GET")
    assert received == [1] and server.handshakes == 1 and stream.reconnects == 0


@pytest.mark.parametrize("code", [1000, 1001])
async def test_a_normal_close_ends_the_stream_and_it_cannot_be_reopened(
    serve_app: ServeApp, session: aiohttp.ClientSession, code: int
) -> None:
    server = Server(frames("1", "2", close=code))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    with anyio.fail_after(BOUND):
        async with stream:
            assert [event async for event in stream] == [1, 2]
        with pytest.raises(PiecesClientStateError) as info:
            async with stream:
                pass
    assert str(info.value) == "this stream stream has ended; start a new one"
    assert server.handshakes == 1 and not host.streams


async def test_a_silent_socket_times_out_saying_where(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    server = Server(frames("1"))  # then nothing but the pongs aiohttp sends by itself
    base = await serve_app(server.app())
    host = Host(session, base, POLICY, timeout=Timeout(ws_idle=0.1))
    stream = WebSocketStream(host, "/ws", INTS)
    received: list[int] = []
    with pytest.raises(PiecesTimeoutError) as info:
        with anyio.fail_after(BOUND):
            async for event in stream:
                received.append(event)
    assert received == [1]  # the frame that came in time was read
    err = info.value
    assert str(err) == f"no stream event for 0.1 s on {base}/ws (ws_idle timeout)"
    assert (err.phase, err.method, err.url) == ("ws_idle", "GET", f"{base}/ws")
    assert server.handshakes == 1 and not host.streams


# -- connecting ---------------------------------------------------------------------------------


async def test_a_handshake_answered_503_is_retried_with_the_hosts_wait(
    serve_app: ServeApp, session: aiohttp.ClientSession, top_of_jitter: None
) -> None:
    server = Server(refuse(503, "starting"), frames("1", close=1000))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    assert await read_all(stream) == [1]
    assert server.handshakes == 2 and host.sleeps == [0.01] and stream.reconnects == 0
    assert stream.url == f"{base}/ws" and not host.streams


async def test_a_refused_handshake_ends_the_open_and_lets_go_of_the_stream(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    server = Server(refuse(500, "broken"))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    with pytest.raises(PiecesError) as info:
        with anyio.fail_after(BOUND):
            async with stream:
                pass
    assert str(info.value) == f"GET {base}/ws answered 500: {HANDSHAKE_REFUSED}"
    assert server.handshakes == 1 and host.sleeps == [] and not host.streams


# -- a socket that stays up restores a patient stream's budget ----------------------------------

#: No wait at all: a socket open for any time at all counts as one that stayed up.
NO_WAIT = Retry(attempts=2, backoff=0.01, max_backoff=0.0)


async def test_a_patient_stream_with_events_between_drops_never_runs_out_of_reconnects(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    server = Server(frames('{"iterable":[]}', drop=True))  # a batch, a drop, again and again
    base = await serve_app(server.app(IDENTIFIERS_PATH))
    host = Host(session, base, NO_WAIT)
    wanted = 2 * MAX_RECONNECTS + 2
    with anyio.fail_after(BOUND):
        async with ModelWatch(host) as stream:
            for _ in range(wanted):
                await anext(stream)
                assert stream.snapshot
    assert stream.reconnects == wanted - 1 and server.handshakes == wanted
    assert host.sleeps == []  # every reconnect was the first in a row: no wait


async def test_an_impatient_stream_runs_out_of_reconnects_whatever_came_between(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    server = Server(frames("1", drop=True))
    base = await serve_app(server.app())
    host = Host(session, base, NO_WAIT)
    stream = WebSocketStream(host, "/ws", INTS)
    received: list[int] = []
    with pytest.raises(PiecesConnectionError) as info:
        with anyio.fail_after(BOUND):
            async for event in stream:
                received.append(event)
    assert info.value.reason == (
        f"the stream WebSocket dropped (close code 1006); gave up after {MAX_RECONNECTS} reconnects"
    )
    assert received == [1] * (MAX_RECONNECTS + 1) and stream.reconnects == MAX_RECONNECTS
    assert host.sleeps == [0.0] * (MAX_RECONNECTS - 1)


# -- a socket that breaks under aiohttp's own answer to a ping ---------------------------------


def ping_then_hang_up(*texts: str, hung_up: asyncio.Event) -> Plan:
    """Send `texts` and a ping, then end our side of the connection (a FIN, no close
    frame), and set `hung_up` once the client has closed its side too (it sends nothing
    else, so the connection is lost only then).

    A client not reading at that moment closes its transport on the FIN with the ping
    still unread: when it reads the ping, aiohttp's pong cannot be written, and
    `receive()` raises instead of reporting a drop.
    """

    async def plan(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        for text in texts:
            await ws.send_str(text)
        await ws.ping(b"are you there")
        assert request.transport is not None
        request.transport.write_eof()
        try:
            async for _ in ws:  # until the client's side is closed
                pass
        finally:  # the test server cancels a handler whose connection is lost
            hung_up.set()
        return ws

    return plan


async def test_a_socket_that_breaks_under_the_pong_is_a_drop_and_reconnects(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    hung_up = asyncio.Event()
    server = Server(ping_then_hang_up("1", hung_up=hung_up), frames("2"))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    with anyio.fail_after(BOUND):
        async with WebSocketStream(host, "/ws", INTS) as stream:
            assert await anext(stream) == 1
            old = stream._ws  # white box: the socket the drop leaves behind
            await hung_up.wait()
            assert await anext(stream) == 2
            assert old is not None and old.closed  # closed before it was replaced
    assert stream.reconnects == 1 and server.handshakes == 2 and host.sleeps == []


async def test_a_socket_that_breaks_under_the_pong_says_why_when_it_cannot_reconnect(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    hung_up = asyncio.Event()
    server = Server(ping_then_hang_up("1", hung_up=hung_up))
    base = await serve_app(server.app())
    host = Host(session, base, Retry(attempts=1))
    stream = WebSocketStream(host, "/ws", INTS)
    with pytest.raises(PiecesConnectionError) as info:
        with anyio.fail_after(BOUND):
            async with stream:
                assert await anext(stream) == 1
                await hung_up.wait()
                await anext(stream)
    assert info.value.reason == (
        "the stream WebSocket dropped (ClientConnectionResetError: Cannot write to closing "
        "transport); gave up after 0 reconnects"
    )
    assert server.handshakes == 1 and not host.streams


# -- before connecting, after ending ------------------------------------------------------------


async def test_a_stream_knows_no_url_before_it_connects(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    server = Server(frames("1", close=1000))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    assert stream.url == "" and server.handshakes == 0 and not host.streams
    assert await read_all(stream) == [1]
    assert stream.url == f"{base}/ws"


async def test_iterating_a_stream_that_ended_says_it_ended(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    server = Server(frames("1", close=1000))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    assert await read_all(stream) == [1]
    for _ in range(2):  # and again: the failed start leaves nothing behind
        with pytest.raises(PiecesClientStateError) as info:
            await read_all(stream)
        assert str(info.value) == "this stream stream has ended; start a new one"
    assert server.handshakes == 1 and not host.streams


async def test_a_bare_iteration_left_early_can_be_started_again(
    serve_app: ServeApp, session: aiohttp.ClientSession
) -> None:
    server = Server(frames("1"), frames("2", close=1000))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    with anyio.fail_after(BOUND):
        events = aiter(stream)
        assert await anext(events) == 1
        await events.aclose()  # type: ignore[attr-defined]
    assert not host.streams
    assert await read_all(stream) == [2]  # a new socket
    assert server.handshakes == 2 and stream.reconnects == 0


# -- a second closer waits for the first, even when cancelled --------------------------------


@pytest.fixture
def short_close_bound(monkeypatch: pytest.MonkeyPatch) -> float:
    """The WebSocket close bound (2 s) shrunk to 0.2 s: waiting it out stays fast."""
    from aiopieces import _transport

    monkeypatch.setattr(_transport, "CLOSE_TIMEOUT", 0.2)
    return 0.2


def deaf(release: asyncio.Event) -> Plan:
    """Read nothing (so never answer a close frame) until `release` is set."""

    async def plan(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await release.wait()
        return ws

    return plan


async def test_a_cancelled_second_closer_still_waits_for_the_first(
    serve_app: ServeApp, session: aiohttp.ClientSession, short_close_bound: float
) -> None:
    release = asyncio.Event()
    server = Server(deaf(release))
    base = await serve_app(server.app())
    host = Host(session, base, POLICY)
    stream = WebSocketStream(host, "/ws", INTS)
    try:
        with anyio.fail_after(BOUND):
            await stream.__aenter__()
            async with anyio.create_task_group() as tg:
                # The first closer waits out the close bound on a peer that never answers.
                tg.start_soon(stream.abort, "the client is closing")
                await anyio.wait_all_tasks_blocked()
                assert stream in host.streams  # still closing
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await stream.__aexit__(None, None, None)  # the second closer
                # It came back only once the first had finished, cancelled or not.
                assert stream not in host.streams
    finally:
        release.set()
