"""One reconnecting WebSocket core under every PiecesOS stream (progress, model changes).

A stream connects with the retry policy, receives frames with the `ws_idle` bound,
reconnects after a drop (no close frame, a dead peer, 1012/1013), refuses bad data at
once (a bad frame, 1007, 1009), closes within a bound even when the peer misbehaves or
the consumer is cancelled, and is finished by the client when the client closes. What a
stream's events are, what ends it, and what to do after a reconnect are its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import aiohttp
import anyio
import msgspec
import yarl

from ._config import Timeout
from ._exceptions import (
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesError,
    PiecesTimeoutError,
)
from ._retry import Retry, backoff, with_retries
from ._transport import close_ws, connect_ws, decode

__all__ = ["MAX_RECONNECTS", "StreamHost", "WebSocketStream"]

logger = logging.getLogger("aiopieces")

E = TypeVar("E")

#: Close codes that end a stream normally (RFC 6455: normal closure, going away, and a
#: close frame with no code, "no status received", which aiohttp reports as 0).
_NORMAL_CLOSE = frozenset({None, 0, 1000, 1001, 1005})
#: Close codes after which a reconnect may work (service restart, try again later).
_RESTART_CLOSE = frozenset({1012, 1013})
#: Close and error codes that say the data was bad (invalid payload, message too big):
#: reconnecting would only fetch the same bad frame again.
_BAD_DATA = frozenset({1007, 1009})
#: Reconnects a stream may make before it gives up: in all (a download's progress), or in
#: a row with no event between (a stream that runs for as long as its consumer wants).
MAX_RECONNECTS = 10


class StreamHost(Protocol):
    """What a stream needs from the client that opened it, and nothing more."""

    @property
    def timeout(self) -> Timeout:
        """The timeouts that apply (`connect`, `read` for the handshake; `ws_idle`)."""
        ...

    @property
    def retry(self) -> Retry:
        """The retry policy for connecting and reconnecting."""
        ...

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame accepted (the client's `max_response_bytes`)."""
        ...

    def session(self) -> aiohttp.ClientSession:
        """The open HTTP session; `PiecesClientStateError` when the client is not open."""
        ...

    def url(self, path: str) -> yarl.URL:
        """The HTTP URL of an already-encoded `path` on PiecesOS (where it is now)."""
        ...

    def attach(self, stream: WebSocketStream[Any]) -> None:
        """Let the client finish `stream` when it closes."""
        ...

    def detach(self, stream: WebSocketStream[Any]) -> None:
        """`stream` is finished: the client need not wait for it."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait between tries; ends early, with an error, when the client closes."""
        ...

    async def rediscover(self) -> None:
        """PiecesOS refused: look for it on its other ports, if it was found by probing."""
        ...


class WebSocketStream(Generic[E]):
    """The reconnecting core of a PiecesOS stream; subclasses say what its events mean.

    Iterate it (`async for`), or enter it (`async with stream:`), which connects at once,
    then iterate or `anext()` it; leaving the block closes it.
    """

    #: What the stream is called in messages ("progress", "model identifier").
    _kind = "stream"
    #: Whether a normal close by the server (1000, 1001) ends the stream, or is a drop
    #: to reconnect from (a stream meant to run as long as its consumer wants).
    _normal_close_ends = True
    #: Whether an event on a socket that stayed up a while restores the reconnect budget
    #: (`MAX_RECONNECTS` in a row, not in all), and a failed reconnect is one more drop
    #: rather than the end: for streams that run for days across PiecesOS restarts.
    _patient = False

    def __init__(self, host: StreamHost, path: str, decoder: msgspec.json.Decoder[E]) -> None:
        """Prepare the stream; nothing connects before iteration or `async with`."""
        self._host = host
        self._path = path
        self._decoder = decoder
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._url = ""
        #: Events to hand out before reading more frames (made up by the stream itself).
        self._pending: list[E] = []
        self._finished = False
        self._abort_reason: str | None = None
        #: Set while the stream closes, so that a second closer waits for the first.
        self._closing: anyio.Event | None = None
        #: A task is iterating: a second one would steal its frames.
        self._iterating = False
        #: The events read inside `async with`; a bare `async for` makes its own.
        self._iterator: AsyncGenerator[E, None] | None = None
        self._entered = False
        self._reading = False
        #: How many times the socket dropped and was replaced during this stream.
        self.reconnects = 0
        self._reconnects_in_a_row = 0
        #: When the current socket opened (a socket that stays up restores the budget).
        self._opened_at = 0.0
        #: When the stream counts as stalled (a subclass moves it on real progress).
        self._stall_deadline: float | None = None
        self._stall_timeout: float | None = None

    @property
    def url(self) -> str:
        """The URL of the stream's WebSocket, as HTTP (known once it has connected)."""
        return self._url

    async def __aenter__(self) -> Self:
        await self._open()
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        iterator, self._iterator = self._iterator, None
        if iterator is not None and not _running(iterator):
            await iterator.aclose()
        # A task still reading (another task's `async for`) sees its socket closed and
        # ends: an async generator cannot be closed while it runs.
        await self._close()

    def __aiter__(self) -> AsyncIterator[E]:
        if self._entered:
            return self  # inside `async with`: one sequence of events, however read
        # A generator of its own: after a bare `async for ... break`, dropping it closes
        # the socket, as it would any async generator.
        return self._events()

    async def __anext__(self) -> E:
        """The next event (after `async with`); `StopAsyncIteration` at the end."""
        iterator = self._iterator
        if self._reading or (iterator is not None and _running(iterator)):
            raise PiecesClientStateError(
                f"this {self._kind} stream is already being read, or closed, by another task"
            )
        if iterator is None:
            iterator = self._iterator = self._events()
        self._reading = True
        try:
            return await anext(iterator)
        finally:
            self._reading = False

    async def abort(self, reason: str) -> None:
        """End the stream from outside (the client closing), as its owner asked.

        The consumer, if any, gets `PiecesClientStateError`. Never raises; bounded.
        """
        if self._abort_reason is None:
            self._abort_reason = reason
        await self._close()

    # -- what a stream adds ------------------------------------------------------

    async def _on_open(self) -> None:
        """Run once the socket is open, before the first event is read."""

    async def _on_reconnect(self) -> None:
        """Run after every reconnect: catch up with what the new socket will not say."""

    def _on_event(self, event: E) -> None:
        """Note an event before it is handed out; set `_finished` when it is the last."""

    async def _on_close(self) -> None:
        """Run once the socket is closed (shielded, bounded by the caller)."""

    # -- the core ----------------------------------------------------------------

    async def _open(self) -> None:
        if self._ws is not None:
            return
        self._raise_if_aborted()
        if self._finished:
            raise PiecesClientStateError(f"this {self._kind} stream has ended; start a new one")
        self._url = str(self._host.url(self._path))
        # Registered before any I/O, so that closing the client finds it at every step.
        self._host.attach(self)
        try:
            await self._connect_with_retries()
            await self._on_open()
        except BaseException:
            await self._close()
            raise

    async def _connect_with_retries(self) -> None:
        host = self._host
        await with_retries(
            self._connect, idempotent=True, policy=host.retry, what=self._url, sleep=host.sleep
        )

    async def _connect(self) -> None:
        host = self._host
        session = host.session()
        url = host.url(self._path)  # where PiecesOS is now: it may have moved
        ws = await connect_ws(session, url, host.timeout, max_msg_size=host.max_frame_bytes)
        if self._abort_reason is not None:  # the client closed while we connected
            await close_ws(ws)
            self._raise_if_aborted()
        self._ws = ws
        self._opened_at = anyio.current_time()
        logger.debug("%s WebSocket open: %s", self._kind, self._url)

    async def _reconnect(self, reason: str) -> None:
        """Replace a dropped socket, then let the stream catch up.

        A socket that keeps dropping is replaced after a growing, jittered wait, and at
        most `MAX_RECONNECTS` times in a row. A patient stream also counts a failed
        reconnect as one more drop (PiecesOS restarting takes seconds), and looks for
        PiecesOS on its other ports when the old one refuses.
        """
        host, policy = self._host, self._host.retry
        old, self._ws = self._ws, None
        if old is not None:
            await close_ws(old)
        while True:
            dropped = f"the {self._kind} WebSocket dropped ({reason})"
            self._reconnects_in_a_row += 1
            if policy.attempts == 1 or self._reconnects_in_a_row > MAX_RECONNECTS:
                raise PiecesConnectionError(
                    self._url,
                    f"{dropped}; gave up after {self._reconnects_in_a_row - 1} reconnects",
                    method="GET",
                )
            if self._reconnects_in_a_row > 1:  # it keeps dropping: give it time
                await host.sleep(backoff(policy, self._reconnects_in_a_row - 1))
            logger.debug("%s: reconnecting (%d)", dropped, self._reconnects_in_a_row)
            try:
                await self._connect_with_retries()
            except PiecesClientStateError:
                raise
            except PiecesError as exc:
                if isinstance(exc, PiecesConnectionError) and not exc.request_sent:
                    await host.rediscover()  # PiecesOS may have come back on another port
                detail = exc.reason if isinstance(exc, PiecesConnectionError) else str(exc)
                if not self._patient:
                    raise PiecesConnectionError(
                        self._url, f"{dropped}, and reconnecting failed: {detail}", method="GET"
                    ) from exc
                reason = f"reconnecting failed: {detail}"
                continue
            break
        self.reconnects += 1
        await self._on_reconnect()

    async def _events(self) -> AsyncGenerator[E, None]:
        if self._iterating:
            raise PiecesClientStateError(
                f"this {self._kind} stream is already being iterated; open one per consumer"
            )
        self._iterating = True
        try:
            await self._open()
            while True:
                event = self._pending.pop(0) if self._pending else await self._receive()
                if event is None:
                    return
                self._on_event(event)
                yield event
                if self._finished:
                    return
        finally:
            self._iterating = False
            await self._close()

    async def _receive(self) -> E | None:
        """The next event, `None` at a normal end; only events reset `ws_idle`."""
        idle = self._host.timeout.ws_idle
        idle_deadline = None if idle is None else anyio.current_time() + idle
        while True:
            deadline = _earliest(idle_deadline, self._stall_deadline)
            if self._pending:  # made up while catching up after a reconnect
                return self._pending.pop(0)
            ws = self._ws
            if ws is None:
                self._raise_if_aborted()
                return None
            # aiohttp's own receive timeout restarts on every ping and pong; this bound
            # does not, so a socket that only keeps itself alive still times out.
            try:
                if deadline is None:
                    msg = await ws.receive()  # the common case: no idle bound, no timer
                else:
                    with anyio.move_on_after(max(0.0, deadline - anyio.current_time())) as scope:
                        msg = await ws.receive()
                    if scope.cancelled_caught:
                        if deadline == self._stall_deadline:
                            raise PiecesTimeoutError(
                                f"no progress for {self._stall_timeout} s on {self._url} "
                                "(stall timeout)",
                                phase="stall",
                                method="GET",
                                url=self._url,
                            )
                        raise PiecesTimeoutError(
                            f"no {self._kind} event for {idle} s on {self._url} (ws_idle timeout)",
                            phase="ws_idle",
                            method="GET",
                            url=self._url,
                        )
            except (aiohttp.ClientError, OSError) as exc:
                # aiohttp answers pings from inside receive(); a socket closing under that
                # answer raises instead of reporting a drop. It is a drop all the same.
                self._raise_if_aborted()
                if self._ws is not ws:
                    return None  # we closed it meanwhile (the block was left): the end
                await self._reconnect(f"{type(exc).__name__}: {exc}")
                continue
            self._raise_if_aborted()
            if self._ws is not ws:
                return None  # we closed it meanwhile (the block was left): the end
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                event = decode(
                    self._decoder,
                    msg.data,
                    f"{self._kind} frame from {self._url}",
                    method="GET",
                    url=self._url,
                )
                if (
                    self._patient
                    and anyio.current_time() - self._opened_at >= self._host.retry.max_backoff
                ):
                    self._reconnects_in_a_row = 0  # a socket that stayed up: a fresh budget
                return event
            if (
                msg.type == aiohttp.WSMsgType.CLOSE
                and msg.data in _NORMAL_CLOSE
                and self._normal_close_ends
            ):
                self._finished = True
                return None  # closed by the server
            code = _error_code(msg)
            if code in _BAD_DATA:
                raise PiecesDecodeError(
                    f"{self._kind} frame from {self._url}: {_describe(msg)} (refused, not retried)",
                    method="GET",
                    url=self._url,
                )
            if (
                msg.type == aiohttp.WSMsgType.CLOSE
                and msg.data not in _RESTART_CLOSE
                and msg.data not in _NORMAL_CLOSE
            ):
                extra = f": {msg.extra}" if msg.extra else ""
                raise PiecesConnectionError(
                    self._url,
                    f"the {self._kind} WebSocket was closed with code {msg.data}{extra}",
                    method="GET",
                )
            # Dropped (no close frame, an error, a dead peer) or a server restarting.
            await self._reconnect(_describe(msg, ws.close_code))

    def _raise_if_aborted(self) -> None:
        if self._abort_reason is not None:
            raise PiecesClientStateError(self._abort_reason)

    async def _close(self) -> None:
        """Close the socket and run the stream's own cleanup; bounded, shielded.

        A second closer (the client closing while the consumer's own close runs) waits
        for the first to finish, so that nothing is closed under a cleanup still under
        way. Never raises but for cancellation.
        """
        if self._closing is not None:
            with anyio.CancelScope(shield=True):
                await self._closing.wait()  # bounded: the first closer is
            return
        self._closing = anyio.Event()
        try:
            ws, self._ws = self._ws, None
            if ws is not None:
                await close_ws(ws)
                logger.debug("%s WebSocket closed: %s", self._kind, self._url)
            await self._on_close()
        finally:
            # Left in the client's streams until now, so that `aclose()` waits for us.
            self._host.detach(self)
            self._closing.set()
            self._closing = None


def _running(generator: AsyncGenerator[Any, None]) -> bool:
    """Whether an async generator is running now (in another task): it cannot be entered."""
    return bool(getattr(generator, "ag_running", False))


def _earliest(*deadlines: float | None) -> float | None:
    known = [d for d in deadlines if d is not None]
    return min(known) if known else None


def _error_code(msg: aiohttp.WSMessage) -> int | None:
    """The WebSocket code of a CLOSE or ERROR message (aiohttp reports oversized frames
    and invalid text as errors with codes 1009 and 1007)."""
    if msg.type == aiohttp.WSMsgType.CLOSE:
        return msg.data if isinstance(msg.data, int) else None
    if msg.type == aiohttp.WSMsgType.ERROR and isinstance(msg.data, aiohttp.WebSocketError):
        return msg.data.code
    return None


def _describe(msg: aiohttp.WSMessage, close_code: int | None = None) -> str:
    if msg.type == aiohttp.WSMsgType.ERROR:
        return f"{type(msg.data).__name__}: {msg.data}"
    code = close_code if msg.data is None else msg.data
    extra = f": {msg.extra}" if msg.extra else ""
    return f"close code {code}{extra}"
