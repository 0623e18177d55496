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
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesError,
    PiecesTimeoutError,
)
from ._retry import retry_after_failure, with_retries
from ._transport import decode, model_segment, translate_errors, ws_url
from ._types import ModelDownloadProgress

if TYPE_CHECKING:
    from ._client import AsyncPiecesClient

__all__ = ["DownloadProgress"]

logger = logging.getLogger("aiopieces")

_PROGRESS = msgspec.json.Decoder(ModelDownloadProgress)
#: Close codes that end a stream normally (RFC 6455: normal closure, going away).
_NORMAL_CLOSE = frozenset({None, 1000, 1001})
#: How long closing a WebSocket, or the cancel sent on exit, may take.
_CLOSE_TIMEOUT = 2.0
#: Close codes after which a reconnect may work (service restart, try again later).
_RESTART_CLOSE = frozenset({1012, 1013})
#: Reconnects one stream may make in all before it gives up.
MAX_RECONNECTS = 10
#: Pings keep a dead PiecesOS (or a dropped network) from leaving a consumer waiting.
_HEARTBEAT = 30.0


class DownloadProgress:
    """Progress events of one model's download; iterate it, or use it with `async with`.

    Iteration ends after a terminal status (`COMPLETED`, `FAILED`, `CANCELED`) or when
    the server closes the socket. Leaving early, or cancelling the consumer, closes the
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
        self._download_started = False
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
        """End the stream from outside (the client closing): the consumer gets an error."""
        self._abort_reason = reason
        await self._close()

    # -- internals ---------------------------------------------------------------

    async def _open(self) -> None:
        if self._ws is not None:
            return
        if self._finished:
            raise PiecesClientStateError("this progress stream has ended; start a new one")
        client = self._client
        self._url = str(client._progress_url(self._model_id))
        await with_retries(self._connect, idempotent=True, policy=client.retry, what=self._url)
        if self._start_download:
            # The socket is open before the download starts, so no early event is lost.
            try:
                model = await client.download_model(self._model_id)
            except BaseException:
                await self._close()
                raise
            self._download_started = True
            if model.downloaded and not model.downloading:
                # Nothing left to download: PiecesOS may send no event at all, so say so
                # here rather than wait for ever.
                self._pending.append(
                    ModelDownloadProgress(
                        status=ModelDownloadProgressStatusEnum.COMPLETED, percentage=100
                    )
                )

    async def _connect(self) -> None:
        session = self._client._session()
        url = self._client._progress_url(self._model_id)
        with translate_errors("GET", url, self._client.timeout):
            self._ws = await session.ws_connect(
                ws_url(url),
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_TIMEOUT),
                heartbeat=_HEARTBEAT,
            )
        self._client._conn.streams.add(self)
        logger.debug("progress WebSocket open: %s", self._url)

    async def _reconnect(self, reason: str) -> None:
        """Replace a dropped socket, with the client's retry policy; give up with an error."""
        policy = self._client.retry
        self.reconnects += 1
        dropped = f"the progress WebSocket dropped ({reason}) before a terminal status"
        old, self._ws = self._ws, None
        if old is not None:
            with anyio.CancelScope(shield=True):
                await old.close()
        if policy.attempts == 1 or self.reconnects > MAX_RECONNECTS:
            raise PiecesConnectionError(
                self._url, f"{dropped}; gave up after {self.reconnects - 1} reconnects"
            )
        logger.debug("%s: reconnecting (%d)", dropped, self.reconnects)
        try:
            await retry_after_failure(
                PiecesConnectionError(self._url, dropped),
                self._connect,
                idempotent=True,
                policy=policy,
                what=self._url,
            )
        except PiecesError as exc:
            raise PiecesConnectionError(
                self._url, f"{dropped}, and reconnecting failed: {exc}"
            ) from None

    async def _events(self) -> AsyncGenerator[ModelDownloadProgress, None]:
        try:
            await self._open()
            while True:
                event = self._pending.pop(0) if self._pending else await self._receive()
                if event is None:
                    return
                if event.is_terminal:
                    self._finished = True
                yield event
                if self._finished:
                    return
        finally:
            await self._close()

    async def _receive(self) -> ModelDownloadProgress | None:
        idle = self._client.timeout.ws_idle
        while True:
            ws = self._ws
            if ws is None:
                self._raise_if_aborted()
                return None
            try:
                msg = await ws.receive(timeout=idle)
            except TimeoutError:
                raise PiecesTimeoutError(
                    f"no progress event for {idle} s on {self._url} (ws_idle timeout)"
                ) from None
            self._raise_if_aborted()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return decode(_PROGRESS, msg.data, f"progress frame from {self._url}")
            if msg.type == aiohttp.WSMsgType.CLOSE and msg.data in _NORMAL_CLOSE:
                self._finished = True
                return None  # closed by the server
            if msg.type == aiohttp.WSMsgType.CLOSE and msg.data not in _RESTART_CLOSE:
                extra = f": {msg.extra}" if msg.extra else ""
                raise PiecesConnectionError(
                    self._url, f"the progress WebSocket was closed with code {msg.data}{extra}"
                )
            # Dropped (no close frame, an error, a dead peer) or a server restarting.
            if msg.type == aiohttp.WSMsgType.ERROR:
                reason = f"{type(msg.data).__name__}: {msg.data}"
            else:
                reason = f"close code {ws.close_code if msg.data is None else msg.data}"
            await self._reconnect(reason)

    def _raise_if_aborted(self) -> None:
        if self._abort_reason is not None:
            raise PiecesClientStateError(self._abort_reason)

    async def _close(self) -> None:
        self._client._conn.streams.discard(self)
        ws, self._ws = self._ws, None
        must_cancel = (
            self._cancel_on_exit
            and self._download_started
            and not self._finished
            and self._abort_reason is None
        )
        self._download_started = False  # cancel at most once, however often we close
        # Shielded: closing must finish even when we got here by being cancelled.
        with anyio.CancelScope(shield=True):
            if ws is not None:
                await ws.close()
                logger.debug("progress WebSocket closed: %s", self._url)
            if must_cancel:
                with anyio.move_on_after(_CLOSE_TIMEOUT):
                    try:
                        await self._client.cancel_download(self._model_id)
                    except PiecesError as exc:
                        logger.warning("could not cancel the download on exit: %s", exc)
