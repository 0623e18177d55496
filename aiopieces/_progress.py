"""Download progress over the PiecesOS WebSocket, as an async iterator of events."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING

import aiohttp
import anyio
import msgspec

from ._enums import ModelDownloadProgressStatusEnum
from ._exceptions import (
    PiecesAPIError,
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesError,
    PiecesStreamError,
    PiecesTimeoutError,
)
from ._retry import with_retries
from ._transport import CLOSE_TIMEOUT, close_ws, decode, model_segment, translate_errors, ws_url
from ._types import ModelDownloadProgress

if TYPE_CHECKING:
    from ._client import AsyncPiecesClient

__all__ = ["DownloadProgress"]

logger = logging.getLogger("aiopieces")

_PROGRESS = msgspec.json.Decoder(ModelDownloadProgress)
#: Close codes that end a stream normally (RFC 6455: normal closure, going away).
_NORMAL_CLOSE = frozenset({None, 1000, 1001})
#: Close codes after which a reconnect may work (service restart, try again later).
_RESTART_CLOSE = frozenset({1012, 1013})
#: Close and error codes that say the data was bad (invalid payload, message too big):
#: reconnecting would only fetch the same bad frame again.
_BAD_DATA = frozenset({1007, 1009})
#: Reconnects one stream may make in all before it gives up.
MAX_RECONNECTS = 10
#: Pings keep a dead PiecesOS (or a dropped network) from leaving a consumer waiting.
_HEARTBEAT = 30.0


class DownloadProgress:
    """Progress events of one model's download; iterate it, or use it with `async with`.

    Iteration ends after a terminal status (`COMPLETED`, `FAILED`, `CANCELED`) or when
    the server closes the socket. `UNKNOWN` (PiecesOS knows no download yet) and other
    statuses never end it. Leaving early, or cancelling the consumer, closes the
    WebSocket at once and leaves the client usable.
    """

    def __init__(
        self,
        client: AsyncPiecesClient,
        model_id: str,
        *,
        start_download: bool,
        cancel_on_exit: bool,
    ) -> None:
        """Prepare the stream; nothing connects before iteration or `async with`."""
        model_segment(model_id)  # a bad id fails here, before any I/O
        self._client = client
        self._model_id = model_id
        self._start_download = start_download
        self._cancel_on_exit = cancel_on_exit
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._url = ""
        self._pending: list[ModelDownloadProgress] = []
        #: The download was (or may have been) started by us: a cancel may be owed.
        self._download_requested = False
        self._cancel_sent = False
        #: A download was seen running (an event other than UNKNOWN arrived).
        self._download_seen = False
        #: Set while the stream closes, so that a second closer waits for the first.
        self._closing: anyio.Event | None = None
        #: A task is iterating: a second one would steal its frames.
        self._iterating = False
        self._finished = False
        self._abort_reason: str | None = None
        self._iterator: AsyncGenerator[ModelDownloadProgress, None] | None = None
        #: How many times the socket dropped and was replaced during this stream.
        self.reconnects = 0

    @property
    def model_id(self) -> str:
        """The id of the model whose download this stream follows."""
        return self._model_id

    async def __aenter__(self) -> AsyncIterator[ModelDownloadProgress]:
        await self._open()
        self._iterator = self._events()
        return self._iterator

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()
        await self._close()

    def __aiter__(self) -> AsyncIterator[ModelDownloadProgress]:
        return self._events()

    async def abort(self, reason: str) -> None:
        """End the stream from outside (the client closing), cancelling as its owner asked.

        The consumer, if any, gets `PiecesClientStateError`. Never raises; bounded.
        """
        if self._abort_reason is None:
            self._abort_reason = reason
        await self._close()

    # -- internals ---------------------------------------------------------------

    async def _open(self) -> None:
        if self._ws is not None:
            return
        self._raise_if_aborted()
        if self._finished:
            raise PiecesClientStateError("this progress stream has ended; start a new one")
        client = self._client
        self._url = str(client._progress_url(self._model_id))
        # Registered before any I/O, so that closing the client finds it at every step.
        client._conn.streams.add(self)
        try:
            await self._connect_with_retries()
            if self._start_download:
                # The socket is open before the download starts, so no early event is
                # lost. From here on PiecesOS may start the download even if we never
                # see its answer (we are cancelled, or time out): a cancel may be owed.
                self._download_requested = True
                try:
                    model = await client.download_model(self._model_id)
                except PiecesAPIError as exc:
                    if not 502 <= exc.status <= 504:  # a gateway cannot say what happened
                        self._download_requested = False  # PiecesOS refused: nothing started
                    raise
                if model.downloaded and not model.downloading:
                    # Nothing left to download: PiecesOS may send no event at all, so say
                    # so here rather than wait for ever.
                    self._pending.append(_completed())
        except BaseException:
            await self._close()
            raise

    async def _connect_with_retries(self) -> None:
        client = self._client
        await with_retries(
            self._connect,
            idempotent=True,
            policy=client.retry,
            what=self._url,
            sleep=client._conn.sleep,
        )

    async def _connect(self) -> None:
        client = self._client
        session = client._session()
        url = client._progress_url(self._model_id)
        timeout = client.timeout
        handshake = None
        if timeout.connect is not None and timeout.read is not None:
            handshake = timeout.connect + timeout.read
        try:
            with anyio.fail_after(handshake), translate_errors("GET", url, timeout):
                ws = await session.ws_connect(
                    ws_url(url),
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                    heartbeat=_HEARTBEAT,
                    max_msg_size=client._max_response_bytes,
                )
        except AssertionError as exc:
            # aiohttp asserts the transport is still there after the handshake; a peer that
            # drops the connection at that moment trips it. A failed connect, retryable.
            raise PiecesConnectionError(
                str(url), "the connection closed during the WebSocket handshake"
            ) from exc
        except TimeoutError:  # ours: aiohttp's timeouts are PiecesTimeoutError by now
            raise PiecesTimeoutError(
                f"GET {url}: no WebSocket handshake within {handshake} s (connect + read)",
                phase="connect",
            ) from None
        if self._abort_reason is not None:  # the client closed while we connected
            await close_ws(ws)
            self._raise_if_aborted()
        self._ws = ws
        logger.debug("progress WebSocket open: %s", self._url)

    async def _reconnect(self, reason: str) -> None:
        """Replace a dropped socket, then catch up with what happened meanwhile."""
        policy = self._client.retry
        self.reconnects += 1
        dropped = f"the progress WebSocket dropped ({reason}) before a terminal status"
        old, self._ws = self._ws, None
        if old is not None:
            await close_ws(old)
        if policy.attempts == 1 or self.reconnects > MAX_RECONNECTS:
            raise PiecesConnectionError(
                self._url, f"{dropped}; gave up after {self.reconnects - 1} reconnects"
            )
        logger.debug("%s: reconnecting (%d)", dropped, self.reconnects)
        try:
            await self._connect_with_retries()
        except PiecesClientStateError:
            raise
        except PiecesError as exc:
            raise PiecesConnectionError(
                self._url, f"{dropped}, and reconnecting failed: {exc}"
            ) from exc
        if self._download_requested or self._download_seen:
            # Only a download we know of can have ended unseen; before one starts
            # (UNKNOWN only) there is nothing to catch up with, so keep waiting.
            await self._catch_up()

    async def _catch_up(self) -> None:
        """Ask PiecesOS where the download stands: a new socket does not say.

        The end of the download may have come while no socket was open; without this
        the stream would wait for ever for a terminal status that was already sent.
        """
        model = await self._client.get_model(self._model_id)
        if model.downloading:
            return  # still going: its events come on the new socket
        if model.downloaded:
            self._pending.append(_completed())
            return
        raise PiecesStreamError(
            f"{self._url}: the download ended while the progress WebSocket was reconnecting, "
            "without completing: PiecesOS reports the model neither downloading nor "
            "downloaded (it failed or was canceled)"
        )

    async def _events(self) -> AsyncGenerator[ModelDownloadProgress, None]:
        if self._iterating:
            raise PiecesClientStateError(
                "this progress stream is already being iterated; open one stream per consumer"
            )
        self._iterating = True
        try:
            await self._open()
            while True:
                event = self._pending.pop(0) if self._pending else await self._receive()
                if event is None:
                    return
                if event.status not in (None, ModelDownloadProgressStatusEnum.UNKNOWN):
                    self._download_seen = True
                if event.is_terminal:
                    self._finished = True
                yield event
                if self._finished:
                    return
        finally:
            self._iterating = False
            await self._close()

    async def _receive(self) -> ModelDownloadProgress | None:
        """The next progress event, `None` at a normal end; only events reset `ws_idle`."""
        idle = self._client.timeout.ws_idle
        deadline = None if idle is None else anyio.current_time() + idle
        while True:
            if self._pending:  # a catch-up after a reconnect
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
                        raise PiecesTimeoutError(
                            f"no progress event for {idle} s on {self._url} (ws_idle timeout)",
                            phase="ws_idle",
                        )
            except (aiohttp.ClientError, OSError) as exc:
                # aiohttp answers pings from inside receive(); a socket closing under that
                # answer raises instead of reporting a drop. It is a drop all the same.
                self._raise_if_aborted()
                await self._reconnect(f"{type(exc).__name__}: {exc}")
                continue
            self._raise_if_aborted()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return decode(_PROGRESS, msg.data, f"progress frame from {self._url}")
            if msg.type == aiohttp.WSMsgType.CLOSE and msg.data in _NORMAL_CLOSE:
                self._finished = True
                return None  # closed by the server
            code = _error_code(msg)
            if code in _BAD_DATA:
                raise PiecesDecodeError(
                    f"progress frame from {self._url}: {_describe(msg)} (refused, not retried)"
                )
            if msg.type == aiohttp.WSMsgType.CLOSE and msg.data not in _RESTART_CLOSE:
                extra = f": {msg.extra}" if msg.extra else ""
                raise PiecesConnectionError(
                    self._url, f"the progress WebSocket was closed with code {msg.data}{extra}"
                )
            # Dropped (no close frame, an error, a dead peer) or a server restarting.
            await self._reconnect(_describe(msg, ws.close_code))

    def _raise_if_aborted(self) -> None:
        if self._abort_reason is not None:
            raise PiecesClientStateError(self._abort_reason)

    async def _close(self) -> None:
        """Close the socket and send the cancel owed, if any; bounded, shielded, at most once.

        A second closer (the client closing while the consumer's own close runs) waits
        for the first to finish, so that nothing is closed under an owed cancel. Never
        raises but for cancellation.
        """
        if self._closing is not None:
            with anyio.CancelScope(shield=True):
                await self._closing.wait()  # bounded: the first closer is
            return
        self._closing = anyio.Event()
        try:
            await self._close_once()
        finally:
            # Left in the client's streams until now, so that `aclose()` waits for us.
            self._client._conn.streams.discard(self)
            self._closing.set()
            self._closing = None

    async def _close_once(self) -> None:
        client = self._client
        ws, self._ws = self._ws, None
        must_cancel = (
            self._cancel_on_exit
            and self._download_requested
            and not self._finished
            and not self._cancel_sent
        )
        self._cancel_sent = self._cancel_sent or must_cancel
        if ws is not None:
            await close_ws(ws)
            logger.debug("progress WebSocket closed: %s", self._url)
        if must_cancel:
            # Shielded: the cancel must go out even when we got here by being cancelled.
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT) as scope:
                try:
                    await client._cancel_on_exit(self._model_id)
                except Exception as exc:  # a cleanup must not raise: say what was lost
                    logger.warning("could not cancel the download of %s: %s", self._model_id, exc)
            if scope.cancelled_caught:
                logger.warning(
                    "could not cancel the download of %s: no answer within %s s",
                    self._model_id,
                    CLOSE_TIMEOUT,
                )


def _completed() -> ModelDownloadProgress:
    return ModelDownloadProgress(status=ModelDownloadProgressStatusEnum.COMPLETED, percentage=100)


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
