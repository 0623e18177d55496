"""Model changes as they happen: the identifier stream, and a live dict of models on top."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Literal

import anyio
import msgspec
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._exceptions import ModelNotFoundError
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
    _event_restores_reconnects = True  # it runs for days: 10 drops in a row, not in all

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
    changed identifier is fetched with `get_model`. `live.changes()` iterates the changes
    from the moment it is called. An error in the background (the stream gave up, for
    example) cancels the block and is raised when it exits.
    """

    def __init__(self, watch: ModelWatch, get_model: Callable[[str], Awaitable[Model]]) -> None:
        """Prepare; nothing connects before `async with`."""
        self._watch = watch
        self._get_model = get_model
        #: The models PiecesOS has now, by id.
        self.models: dict[str, Model] = {}
        self._listeners: list[MemoryObjectSendStream[ModelChange]] = []
        self._task_group: TaskGroup | None = None

    async def __aenter__(self) -> LiveModels:
        batches = await self._watch.__aenter__()
        try:
            first = await anext(batches)
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
        try:
            if self._task_group is not None:
                self._task_group.cancel_scope.cancel()
                return await self._task_group.__aexit__(exc_type, exc, tb)
            return None
        finally:
            for listener in self._listeners:
                listener.close()
            await self._watch.__aexit__(None, None, None)

    def changes(self) -> AsyncIterator[ModelChange]:
        """Every change from this call on, in order, until the block ends."""
        send, receive = anyio.create_memory_object_stream[ModelChange](math.inf)
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
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._listeners.remove(listener)  # its reader left
