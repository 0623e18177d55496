"""Download progress over the PiecesOS WebSocket, as an async iterator of events."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
import msgspec

from ._enums import ModelDownloadProgressStatusEnum
from ._exceptions import PiecesAPIError, PiecesStreamError
from ._streams import MAX_RECONNECTS, StreamHost, WebSocketStream
from ._transport import CLOSE_TIMEOUT, model_segment
from ._types import Model, ModelDownloadProgress

#: A call about one model: starting its download, asking its state, cancelling.
ModelCall = Callable[[str], Awaitable[object]]

__all__ = ["MAX_RECONNECTS", "DownloadProgress"]

logger = logging.getLogger("aiopieces")

_PROGRESS = msgspec.json.Decoder(ModelDownloadProgress)
_UNKNOWN = ModelDownloadProgressStatusEnum.UNKNOWN


class DownloadProgress(WebSocketStream[ModelDownloadProgress]):
    """Progress events of one model's download; iterate it, or use it with `async with`.

    Iteration ends after a terminal status (`COMPLETED`, `FAILED`, `CANCELED`) or when
    the server closes the socket. `UNKNOWN` (PiecesOS knows no download yet) and other
    statuses never end it. Leaving early, or cancelling the consumer, closes the
    WebSocket at once and leaves the client usable.
    """

    _kind = "progress"

    def __init__(
        self,
        host: StreamHost,
        model_id: str,
        *,
        get_model: Callable[[str], Awaitable[Model]],
        start: Callable[[str], Awaitable[Model]] | None = None,
        cancel_on_exit: ModelCall | None = None,
        stall_timeout: float | None = None,
    ) -> None:
        """Prepare the stream; nothing connects before iteration or `async with`.

        `start` starts the download once the socket is open; `cancel_on_exit` is called
        when the stream ends early after that; `get_model` catches up after a reconnect.
        """
        if stall_timeout is not None and not stall_timeout > 0:  # NaN included
            raise ValueError(f"stall_timeout must be positive or None, not {stall_timeout!r}")
        segment = model_segment(model_id)  # a bad id fails here, before any I/O
        super().__init__(host, f"/model/{segment}/download/progress", _PROGRESS)
        self._model_id = model_id
        self._get_model = get_model
        self._start = start
        self._cancel = cancel_on_exit
        #: The download was (or may have been) started by us: a cancel may be owed.
        self._download_requested = False
        self._cancel_sent = False
        #: A download was seen running (an event other than UNKNOWN arrived).
        self._download_seen = False
        self._stall_timeout = stall_timeout
        self._last_percentage: float | None = None
        self._first: tuple[float, float] | None = None  # (time, percentage)
        self._last: tuple[float, float] | None = None
        #: The download's size in bytes, when PiecesOS told it (`Model.bytes`).
        self.total_bytes: int | None = None

    @property
    def model_id(self) -> str:
        """The id of the model whose download this stream follows."""
        return self._model_id

    @property
    def bytes_done(self) -> int | None:
        """Bytes downloaded so far, from the last percentage (when the size is known)."""
        if self.total_bytes is None or self._last is None:
            return None
        return int(self.total_bytes * self._last[1] / 100)

    @property
    def rate(self) -> float | None:
        """Average speed since the first event, in bytes per second (size known)."""
        if self.total_bytes is None or self._first is None or self._last is None:
            return None
        (t0, p0), (t1, p1) = self._first, self._last
        if t1 <= t0 or p1 <= p0:
            return None
        return self.total_bytes * (p1 - p0) / 100 / (t1 - t0)

    @property
    def eta(self) -> float | None:
        """Seconds left at the average speed so far (size known, progress made)."""
        rate, done = self.rate, self.bytes_done
        if rate is None or rate <= 0 or done is None or self.total_bytes is None:
            return None
        return max(0.0, (self.total_bytes - done) / rate)

    async def _on_open(self) -> None:
        self._restart_stall_clock()
        if self._start is None:
            return
        # The socket is open before the download starts, so no early event is lost. From
        # here on PiecesOS may start the download even if we never see its answer (we are
        # cancelled, or time out): a cancel may be owed.
        self._download_requested = True
        try:
            model = await self._start(self._model_id)
        except PiecesAPIError as exc:
            if not 502 <= exc.status <= 504:  # a gateway cannot say what happened
                self._download_requested = False  # PiecesOS refused: nothing started
            raise
        if model.bytes is not None and model.bytes.value > 0:  # a size of 0 says nothing
            self.total_bytes = model.bytes.value
        if model.downloaded and not model.downloading:
            # Nothing left to download: PiecesOS may send no event at all, so say so here
            # rather than wait for ever.
            self._pending.append(_completed())

    async def _on_reconnect(self) -> None:
        """Ask PiecesOS where the download stands: a new socket does not say.

        The end of the download may have come while no socket was open; without this the
        stream would wait for ever for a terminal status that was already sent. Before any
        download is known (UNKNOWN only) there is nothing to catch up with.
        """
        self._restart_stall_clock()  # the time spent reconnecting is not a stall
        if not (self._download_requested or self._download_seen):
            return
        model = await self._get_model(self._model_id)
        if model.downloading:
            return  # still going: its events come on the new socket
        if model.downloaded:
            self._pending.append(_completed())
            return
        raise PiecesStreamError(
            f"{self._url}: the download ended while the progress WebSocket was reconnecting, "
            "without completing: PiecesOS reports the model neither downloading nor "
            "downloaded (it failed or was canceled)",
            method="GET",
            url=self._url,
        )

    def _restart_stall_clock(self) -> None:
        if self._stall_timeout is not None:
            self._stall_deadline = anyio.current_time() + self._stall_timeout

    def _on_event(self, event: ModelDownloadProgress) -> None:
        if event.status is not None and event.status != _UNKNOWN:
            self._download_seen = True
        if event.percentage is not None:
            now, percentage = anyio.current_time(), float(event.percentage)
            if self._first is None:
                self._first = (now, percentage)
            self._last = (now, percentage)
            if percentage != self._last_percentage:
                # Progress, not just an event: PiecesOS may repeat the same percentage.
                self._last_percentage = percentage
                self._restart_stall_clock()
        if event.is_terminal:
            self._finished = True

    async def _on_close(self) -> None:
        """Send the cancel owed, if any: at most once, shielded, within `CLOSE_TIMEOUT`."""
        cancel = self._cancel
        must_cancel = (
            cancel is not None
            and self._download_requested
            and not self._finished
            and not self._cancel_sent
        )
        if cancel is None or not must_cancel:
            return
        self._cancel_sent = True
        # Shielded: the cancel must go out even when we got here by being cancelled.
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT) as scope:
            try:
                await cancel(self._model_id)
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
