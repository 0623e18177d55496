"""Reliability against the emulator: load, resource use, and update without data loss."""

from __future__ import annotations

import asyncio
import gc
import os

import anyio
import msgspec
import pytest
from aiohttp import web
from pieces_os_client.models.model import Model as OfficialModel

from aiopieces import AsyncPiecesClient, PiecesConnectionError, Retry
from aiopieces.testing import PiecesOSEmulator

from .conftest import ServeApp
from .helpers import BOUND, free_port


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def pieces_emulator_options() -> dict[str, object]:
    future_model = {
        "id": "future-1",
        "name": "From the future",
        "version": "9.0",
        "cloud": False,
        "custom": True,
        "created": {"value": "2030-01-01T00:00:00.000Z", "timezone": "UTC+14"},
        "type": "HYPERSPEED",
        "usage": "CODE_CONVERSATION",
        "foundation": "GPT_9_OMNI",
        "provider": "NEW_LAB",
        "capabilities": {"images": True, "telepathy": True},
        "quantumState": {"entangled": [1, 2.5, None], "spin": "up"},
        "description": "v1",
    }
    return {"catalog": [future_model], "download_steps": 5}


async def test_update_keeps_fields_and_values_we_do_not_know(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    model = await pieces_client.get_model("future-1")
    assert model.type == "HYPERSPEED" and not model.type.is_known
    model.description = "v2"
    model.capabilities = msgspec.structs.replace(model.capabilities, images=False)  # type: ignore[arg-type]
    updated = await pieces_client.update_model(model)
    assert updated.description == "v2"

    stored = pieces_emulator.models["future-1"]
    assert stored["description"] == "v2"
    assert stored["quantumState"] == {"entangled": [1, 2.5, None], "spin": "up"}
    assert stored["capabilities"] == {"images": False, "telepathy": True}
    assert stored["created"]["timezone"] == "UTC+14"
    assert (stored["type"], stored["foundation"], stored["provider"]) == (
        "HYPERSPEED",
        "GPT_9_OMNI",
        "NEW_LAB",
    )
    # What the official SDK would have done: unknown fields dropped, unknown enums lost.
    official = OfficialModel.from_json(msgspec.json.encode(stored).decode())
    assert "quantumState" not in official.to_dict()


async def test_clearing_a_field_removes_it(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    model = await pieces_client.get_model("future-1")
    model.description = None
    await pieces_client.update_model(model)
    assert "description" not in pieces_emulator.models["future-1"]
    assert "quantumState" in pieces_emulator.models["future-1"]


async def test_a_thousand_concurrent_calls_within_the_connection_limit(
    serve_app: ServeApp,
) -> None:
    peers: set[object] = set()  # the client's connections, as the server sees them

    async def models(request: web.Request) -> web.Response:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return web.json_response({"iterable": []})

    app = web.Application()
    app.router.add_get("/models", models)
    async with AsyncPiecesClient(await serve_app(app), max_connections=50) as client:
        results = await asyncio.gather(*(client.list_models() for _ in range(1000)))
    assert all(r.iterable == [] for r in results)
    assert 1 < len(peers) <= 50  # concurrent, and never more connections than allowed


async def test_no_descriptor_or_task_growth_across_ten_thousand_calls() -> None:
    async with PiecesOSEmulator() as emulator:
        model_id = next(iter(emulator.models))
        async with AsyncPiecesClient(emulator.url, max_connections=10) as client:

            async def burst() -> None:
                async with anyio.create_task_group() as tg:
                    for _ in range(10):
                        tg.start_soon(client.get_model, model_id)

            for _ in range(100):  # warm the pool up to its steady state
                await burst()
            gc.collect()
            fds, tasks, objects = open_fds(), len(asyncio.all_tasks()), len(gc.get_objects())
            for _ in range(1000):
                await burst()
            gc.collect()
            assert open_fds() <= fds
            assert len(asyncio.all_tasks()) == tasks
            # Steady state: nothing accumulates per call (a leak would add 10,000s).
            assert len(gc.get_objects()) - objects < 500


async def test_progress_stream_connection_refused() -> None:
    with anyio.fail_after(BOUND):
        url = f"http://127.0.0.1:{free_port()}"
        async with AsyncPiecesClient(url, retry=Retry(attempts=2, backoff=0.01)) as client:
            with pytest.raises(PiecesConnectionError, match="Is PiecesOS running"):
                async for _ in client.download_progress("m"):
                    pass
