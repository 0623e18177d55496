"""Model changes as they happen: the identifier stream, and a live dict of models on top."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Literal

import anyio
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._exceptions import (
    ModelNotFoundError,
    PiecesAPIError,
    PiecesClientStateError,
    PiecesDecodeError,
    PiecesTimeoutError,
)
from ._streams import StreamHost, WebSocketStream
from ._types import Model, StreamedIdentifiers

__all__ = ["LiveModels", "ModelChange", "ModelWatch"]

logger = logging.getLogger("aiopieces")

_IDENTIFIERS = msgspec.json.Decoder(StreamedIdentifiers)
IDENTIFIERS_PATH = "/models/stream/identifiers"


class ModelWatch(WebSocketStream[StreamedIdentifiers]):
    """Batches of changed model identifiers (WS `/models/stream/identifiers`).

    PiecesOS sends the identifiers of every model when a socket opens, then one batch per
    change. After a drop the stream reconnects and gets that full list again, so nothing
    is missed; `snapshot` says whether the batch just handed out was such a full list.
    It never ends by itself: leave the loop or the `async with` block, or close the client.
    """

    _kind = "model identifier"
    _normal_close_ends = False  # PiecesOS restarting closes it normally: reconnect
    _patient = True  # it runs for days, across PiecesOS restarts: see WebSocketStream

    def __init__(self, host: StreamHost) -> None:
        """Prepare the stream; nothing connects before iteration or `async with`."""
        super().__init__(host, IDENTIFIERS_PATH, _IDENTIFIERS)
        self._fresh_socket = False
        #: Whether the last batch handed out was the full list a new socket starts with.
        self.snapshot = False

    async def _on_open(self) -> None:
        self._fresh_socket = True

    async def _on_reconnect(self) -> None:
        self._fresh_socket = True

    def _on_event(self, event: StreamedIdentifiers) -> None:
        self.snapshot, self._fresh_socket = self._fresh_socket, False


async def _drain(receive: MemoryObjectReceiveStream[ModelChange]) -> AsyncIterator[ModelChange]:
    async with receive:
        async for change in receive:
            yield change


class ModelChange(msgspec.Struct, frozen=True, kw_only=True):
    """One change to the live model list: `added`, `updated` or `deleted`."""

    kind: Literal["added", "updated", "deleted"]
    model_id: str
    #: The model as it is now; `None` when it was deleted.
    model: Model | None


class LiveModels:
    """PiecesOS's models as a dict kept current from `watch_models()`.

    `async with client.live_models() as live:` fills `live.models` (id → `Model`) from the
    first batch, then keeps it current in a background task that this block owns: each
    changed identifier is fetched with `get_model` (a model that cannot be fetched keeps
    its last state, with a warning). `live.changes()` iterates the changes from the moment
    it is called. If the stream itself fails (it gave up reconnecting, say), the block is
    cancelled and that error is raised when it exits; an error of the block's own code
    comes out as it was raised.
    """

    def __init__(
        self,
        watch: ModelWatch,
        get_model: Callable[[str], Awaitable[Model]],
        *,
        first_batch_timeout: float | None = None,
    ) -> None:
        """Prepare; nothing connects before `async with`."""
        self._watch = watch
        self._get_model = get_model
        self._first_batch_timeout = first_batch_timeout
        #: The models PiecesOS has now, by id.
        self.models: dict[str, Model] = {}
        self._listeners: list[MemoryObjectSendStream[ModelChange]] = []
        self._task_group: TaskGroup | None = None
        self._ended = False

    async def __aenter__(self) -> LiveModels:
        batches = await self._watch.__aenter__()
        try:
            # PiecesOS sends the current identifiers at once; a socket that says nothing
            # must not hold the caller for ever.
            with anyio.move_on_after(self._first_batch_timeout) as scope:
                first = await anext(batches)
            if scope.cancelled_caught:
                raise PiecesTimeoutError(
                    f"no model identifiers within {self._first_batch_timeout} s of connecting",
                    phase="read",
                    method="GET",
                    url=self._watch.url,
                )
            await self._apply(first, snapshot=True)
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
        except BaseException:
            await self._watch.__aexit__(None, None, None)
            raise
        self._task_group.start_soon(self._follow)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._ended = True
        try:
            if self._task_group is not None:
                self._task_group.cancel_scope.cancel()
                try:
                    return await self._task_group.__aexit__(exc_type, exc, tb)
                except BaseExceptionGroup as group:
                    raise _unwrap(group, exc) from None
            return None
        finally:
            for listener in self._listeners:
                listener.close()
            self._listeners.clear()
            await self._watch.__aexit__(None, None, None)

    def changes(self) -> AsyncIterator[ModelChange]:
        """Every change from this call on, in order, until the block ends.

        A reader that falls `MAX_BACKLOG` changes behind is ended (with a warning) rather
        than let memory grow.
        """
        if self._ended:
            raise PiecesClientStateError("this live model list has ended; start a new one")
        send, receive = anyio.create_memory_object_stream[ModelChange](MAX_BACKLOG)
        self._listeners.append(send)  # now, so that no change after this call is missed
        return _drain(receive)

    async def _follow(self) -> None:
        async for batch in self._watch:  # entered: the same sequence the first came from
            await self._apply(batch, snapshot=self._watch.snapshot)

    async def _apply(self, batch: StreamedIdentifiers, *, snapshot: bool) -> None:
        """Bring `models` up to date with one batch; a snapshot also says who is gone."""
        seen: set[str] = set()
        for item in batch.iterable:
            if item.model is None:
                continue  # about something else than a model
            model_id = item.model.id
            seen.add(model_id)
            if item.deleted:
                self._remove(model_id)
                continue
            try:
                model = await self._get_model(model_id)
            except ModelNotFoundError:
                self._remove(model_id)  # gone again before we could look
                continue
            except (PiecesAPIError, PiecesDecodeError, PiecesTimeoutError) as exc:
                # One model PiecesOS cannot serve now must not cost the whole list.
                logger.warning(
                    "could not fetch model %s; keeping what was known: %s", model_id, exc
                )
                continue
            before = self.models.get(model_id)
            self.models[model_id] = model
            if before is None:
                self._emit(ModelChange(kind="added", model_id=model_id, model=model))
            elif before != model:
                self._emit(ModelChange(kind="updated", model_id=model_id, model=model))
        if snapshot:
            for model_id in [m for m in self.models if m not in seen]:
                self._remove(model_id)

    def _remove(self, model_id: str) -> None:
        if self.models.pop(model_id, None) is not None:
            self._emit(ModelChange(kind="deleted", model_id=model_id, model=None))

    def _emit(self, change: ModelChange) -> None:
        for listener in list(self._listeners):
            try:
                listener.send_nowait(change)
            except anyio.WouldBlock:
                logger.warning("a changes() reader fell %d changes behind: ended", MAX_BACKLOG)
                listener.close()
                self._listeners.remove(listener)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._listeners.remove(listener)  # its reader left


#: How far a `changes()` reader may fall behind before it is ended.
MAX_BACKLOG = 10_000


def _unwrap(group: BaseExceptionGroup, own: BaseException | None) -> BaseException:
    """The one error a `LiveModels` block should raise for its task group's `group`."""
    cancelled = anyio.get_cancelled_exc_class()
    errors = [e for e in _leaves(group) if not isinstance(e, cancelled)]
    if own is not None and any(e is own for e in errors):
        return own  # the block's own error, as raised
    if len(errors) == 1:
        return errors[0]
    return group if errors else _leaves(group)[0]  # cancellation only: as it came


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for error in group.exceptions:
        out.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return out
