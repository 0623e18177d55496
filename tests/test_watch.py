"""watch_models() and live_models() against the emulator, over real sockets."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

from aiopieces import (
    AsyncPiecesClient,
    ModelChange,
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesTimeoutError,
    Retry,
    StreamedIdentifiers,
    Timeout,
)
from aiopieces.testing import PiecesOSEmulator

from .conftest import ServeApp
from .helpers import BOUND, seeded


def ids(batch: StreamedIdentifiers) -> list[str]:
    return [item.model.id for item in batch.iterable if item.model is not None]


async def test_the_first_batch_lists_every_model_then_changes_follow(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        async with pieces_client.watch_models() as batches:
            first = await anext(batches)
            assert ids(first) == list(pieces_emulator.models)
            created = await pieces_client.create_model(seeded())
            batch = await anext(batches)
            assert ids(batch) == [created.id] and not batch.iterable[0].deleted
            await pieces_client.delete_model(created.id)
            batch = await anext(batches)
            assert ids(batch) == [created.id] and batch.iterable[0].deleted


async def test_snapshot_marks_the_full_list_of_each_socket(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    stream = pieces_client.watch_models()
    with anyio.fail_after(BOUND):
        async with stream as batches:
            await anext(batches)
            assert stream.snapshot
            await pieces_client.create_model(seeded())
            await anext(batches)
            assert not stream.snapshot


async def test_a_drop_reconnects_and_resynchronises(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    stream = pieces_client.watch_models()
    with anyio.fail_after(BOUND):
        async with stream as batches:
            await anext(batches)
            gone = next(iter(pieces_emulator.models))
            await pieces_emulator.restart()  # same port: the socket drops
            del pieces_emulator.models[gone]  # changed while no socket was open
            batch = await anext(batches)
    assert stream.reconnects == 1 and stream.snapshot
    assert ids(batch) == list(pieces_emulator.models) and gone not in ids(batch)


async def test_idle_timeout_applies(pieces_emulator: PiecesOSEmulator) -> None:
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(pieces_emulator.url, timeout=Timeout(ws_idle=0.2)) as c:
            with pytest.raises(PiecesTimeoutError) as info:
                async for _ in c.watch_models():
                    pass  # the first batch, then silence
    assert info.value.phase == "ws_idle"


async def test_cancelling_the_consumer_closes_the_socket(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    async def consume() -> None:
        async for _ in pieces_client.watch_models():
            pass

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await pieces_emulator.wait_for_identifier_subscribers(1)
            tg.cancel_scope.cancel()
        await pieces_emulator.wait_for_identifier_subscribers(0)
        assert (await pieces_client.list_models()).iterable  # still usable


async def test_closing_the_client_ends_the_watch(pieces_emulator: PiecesOSEmulator) -> None:
    errors: list[BaseException] = []

    async def consume(c: AsyncPiecesClient) -> None:
        try:
            async for _ in c.watch_models():
                pass
        except PiecesClientStateError as exc:
            errors.append(exc)

    with anyio.fail_after(BOUND):
        c = AsyncPiecesClient(pieces_emulator.url)
        await c.open()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, c)
            await pieces_emulator.wait_for_identifier_subscribers(1)
            await c.aclose()
    assert len(errors) == 1


# -- live_models ---------------------------------------------------------------------------


async def test_live_models_follow_every_change(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        async with pieces_client.live_models() as live:
            assert list(live.models) == list(pieces_emulator.models)
            changes = live.changes()
            created = await pieces_client.create_model(seeded())
            added = await anext(changes)
            created.description = "changed"
            await pieces_client.update_model(created)
            updated = await anext(changes)
            await pieces_client.delete_model(created.id)
            deleted = await anext(changes)
            assert created.id not in live.models
    assert added == ModelChange(kind="added", model_id=created.id, model=added.model)
    assert added.model is not None and added.model.name == created.name
    assert updated.kind == "updated" and updated.model is not None
    assert updated.model.description == "changed"
    assert deleted == ModelChange(kind="deleted", model_id=created.id, model=None)


async def test_live_models_resynchronise_after_a_drop(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        async with pieces_client.live_models() as live:
            changes = live.changes()
            gone = next(iter(pieces_emulator.models))
            await pieces_emulator.restart()
            del pieces_emulator.models[gone]  # while no socket was open
            change = await anext(changes)
            assert gone not in live.models
    assert change == ModelChange(kind="deleted", model_id=gone, model=None)


# -- found by attacking it -------------------------------------------------------------------


async def test_an_error_of_the_block_comes_out_as_raised(
    pieces_client: AsyncPiecesClient,
) -> None:
    with anyio.fail_after(BOUND), pytest.raises(KeyError, match="mine"):
        async with pieces_client.live_models():
            raise KeyError("mine")


async def test_closing_the_client_inside_the_block_is_a_state_error(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    with anyio.fail_after(BOUND), pytest.raises(PiecesClientStateError):
        async with AsyncPiecesClient(pieces_emulator.url) as c, c.live_models():
            await c.aclose()


def identifier_server(first_batch: bool, *, close_after: bool = False) -> web.Application:
    """An identifier socket that sends the list of one model (or nothing), then either
    closes normally at once or answers pings only; the model itself may fail to load."""

    async def identifiers(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if first_batch:
            await ws.send_str('{"iterable":[{"model":{"id":"ok"}},{"model":{"id":"broken"}}]}')
        if close_after:
            await ws.close()
            return ws
        async for _ in ws:
            pass
        return ws

    async def model(request: web.Request) -> web.Response:
        if request.match_info["model"] == "broken":
            return web.Response(status=500, text="cannot load it", content_type="text/plain")
        return web.json_response({"id": "ok", "name": "OK"})

    app = web.Application()
    app.router.add_get("/models/stream/identifiers", identifiers)
    app.router.add_get("/model/{model}", model)
    return app


async def test_a_first_batch_that_never_comes_is_a_timeout(serve_app: ServeApp) -> None:
    url = await serve_app(identifier_server(first_batch=False))
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url, timeout=Timeout(connect=0.2, read=0.2)) as c:
            with pytest.raises(PiecesTimeoutError) as info:
                async with c.live_models():
                    pass
    assert info.value.phase == "read"


async def test_a_model_that_cannot_be_fetched_does_not_cost_the_list(
    serve_app: ServeApp,
) -> None:
    url = await serve_app(identifier_server(first_batch=True))
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url, retry=None) as c, c.live_models() as live:
            assert list(live.models) == ["ok"]


async def test_a_socket_that_keeps_closing_is_given_up_on_with_backoff(
    serve_app: ServeApp,
) -> None:
    url = await serve_app(identifier_server(first_batch=True, close_after=True))
    policy = Retry(attempts=3, backoff=0.01, max_backoff=0.05)
    stream = None
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url, retry=policy) as c:
            stream = c.watch_models()
            with pytest.raises(PiecesConnectionError, match="gave up after 10 reconnects"):
                async for _ in stream:
                    pass  # a batch, a close, again and again
    assert stream.reconnects == 10


async def test_changes_after_the_block_is_a_state_error(
    pieces_client: AsyncPiecesClient,
) -> None:
    with anyio.fail_after(BOUND):
        async with pieces_client.live_models() as live:
            pass
    with pytest.raises(PiecesClientStateError):
        live.changes()


async def test_the_watch_waits_out_a_restart(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    stream = pieces_client.watch_models()
    with anyio.fail_after(BOUND):
        async with stream as batches:
            await anext(batches)
            port = pieces_emulator.port
            await pieces_emulator.stop()  # down: reconnects are refused for a while

            async def come_back() -> None:
                await pieces_emulator.wait_for_identifier_subscribers(0)
                await pieces_emulator.start(port=port or 0)

            async with anyio.create_task_group() as tg:
                tg.start_soon(come_back)
                batch = await anext(batches)
    assert stream.snapshot and ids(batch) == list(pieces_emulator.models)
