"""watch_models() and live_models() against the emulator, over real sockets."""

from __future__ import annotations

import anyio
import pytest

from aiopieces import (
    AsyncPiecesClient,
    ModelChange,
    PiecesClientStateError,
    PiecesTimeoutError,
    StreamedIdentifiers,
    Timeout,
)
from aiopieces.testing import PiecesOSEmulator

from .test_client import seeded

BOUND = 10


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
