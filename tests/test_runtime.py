"""The PiecesOS runtime around the model APIs: health, version, readiness, rediscovery,
and the two endpoints the spec leaves out (scores) plus `Models.find`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp import web

from aiopieces import (
    AsyncPiecesClient,
    ModelLookupError,
    PiecesAPIError,
    PiecesConnectionError,
    PiecesTimeoutError,
    SeededScore,
    SeededScoreIncrement,
)
from aiopieces._config import DISCOVERY_PORTS
from aiopieces.testing import PiecesOSEmulator

from .conftest import ServeApp
from .helpers import model_id

BOUND = 10


async def test_health_and_version(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    pieces_emulator.version = "10.1.2"
    assert (await pieces_client.health()).startswith("ok")
    assert await pieces_client.version() == "10.1.2"


async def test_wait_until_ready_polls_until_healthy(serve_app: ServeApp) -> None:
    hits = 0

    async def health(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        if hits < 4:  # a desktop app still starting
            return web.Response(status=503, text="starting", content_type="text/plain")
        return web.Response(text="ok", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    url = await serve_app(app)
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url) as c:
            await c.wait_until_ready(timeout=BOUND)
    assert hits == 4


async def test_wait_until_ready_gives_up_after_its_timeout(serve_app: ServeApp) -> None:
    async def health(request: web.Request) -> web.Response:
        return web.Response(status=503, text="starting", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    url = await serve_app(app)
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url) as c:
            with pytest.raises(PiecesTimeoutError, match=r"not ready within 0\.3 s"):
                await c.wait_until_ready(timeout=0.3)


@pytest.fixture
async def movable_emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[PiecesOSEmulator]:
    """An emulator where PiecesOS listens (39300-39333), for discovery to find; no
    `PIECES_OS_URL`, so that clients look for it."""
    monkeypatch.delenv("PIECES_OS_URL", raising=False)
    emulator = PiecesOSEmulator()
    try:
        await emulator.start_in_range(DISCOVERY_PORTS)
    except OSError:
        pytest.skip("no free port in 39300-39333 on this machine")
    try:
        yield emulator
    finally:
        await emulator.stop()


async def move(emulator: PiecesOSEmulator) -> None:
    """Restart it as PiecesOS restarts: on the next free port of its range."""
    await emulator.restart([p for p in DISCOVERY_PORTS if p > (emulator.port or 0)])


async def test_a_discovered_pieces_os_is_found_again_on_another_port(
    movable_emulator: PiecesOSEmulator,
) -> None:
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient() as c:
            first = c.base_url
            assert first == movable_emulator.url
            await move(movable_emulator)
            assert (await c.list_models()).iterable
            assert c.base_url == movable_emulator.url != first


async def test_a_given_url_is_never_replaced(movable_emulator: PiecesOSEmulator) -> None:
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(movable_emulator.url, retry=None) as c:
            first = c.base_url
            await move(movable_emulator)
            with pytest.raises(PiecesConnectionError, match="cannot reach PiecesOS"):
                await c.list_models()
            assert c.base_url == first


# -- scores ----------------------------------------------------------------------------------


async def test_increment_score_says_the_model_was_used(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, "GPT-4o")
    await pieces_client.increment_model_score(target)
    path, body = pieces_emulator.request_bodies[-1]
    assert path == f"/model/{target}/scores/increment"
    assert msgspec.json.decode(body) == {"model": {"reuse": True}}
    score = (await pieces_client.get_model(target)).score
    assert score is not None and score.reuse == 1


async def test_increment_score_sends_other_keys_unchanged(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, "GPT-4o")
    other: dict[str, Any] = {"asset": {"reference": True}, "future": [1, None, "x"]}
    increment = SeededScoreIncrement(model=SeededScore(priority=True), other=other)
    await pieces_client.increment_model_score(target, increment)
    _, body = pieces_emulator.request_bodies[-1]
    assert msgspec.json.decode(body) == {"model": {"priority": True}, **other}


async def test_increment_score_of_an_unknown_model(pieces_client: AsyncPiecesClient) -> None:
    with pytest.raises(PiecesAPIError) as info:
        await pieces_client.increment_model_score("ghost")
    assert info.value.status in (410, 500)


# -- Models.find -------------------------------------------------------------------------------


async def test_find_by_id_exact_name_then_any_case(pieces_client: AsyncPiecesClient) -> None:
    models = await pieces_client.list_models()
    gpt = next(m for m in models.iterable if m.name == "GPT-4o")
    assert models.find(gpt.id) is gpt
    assert models.find("GPT-4o") is gpt
    assert models.find("gpt-4o") is gpt


def test_find_refuses_an_ambiguous_or_unknown_name() -> None:
    from aiopieces import Model, Models

    models = Models(
        iterable=[Model(id="a", name="Twin"), Model(id="b", name="twin"), Model(id="c", name="x")]
    )
    assert models.find("Twin").id == "a"  # exact first
    with pytest.raises(ModelLookupError) as info:
        models.find("TWIN")
    assert info.value.matches == ["a", "b"]
    with pytest.raises(ModelLookupError, match="no model"):
        models.find("nobody")
    assert isinstance(info.value, LookupError)


# -- found by attacking it -------------------------------------------------------------------


async def test_calls_refused_together_all_follow_pieces_os(
    movable_emulator: PiecesOSEmulator,
) -> None:
    results: list[str] = []

    async def call(c: AsyncPiecesClient) -> None:
        results.append((await c.health()).strip())

    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(retry=None) as c:
            await move(movable_emulator)
            async with anyio.create_task_group() as tg:
                for _ in range(10):
                    tg.start_soon(call, c)
    assert results == ["ok"] * 10


async def test_wait_until_ready_refuses_a_senseless_timeout(
    pieces_client: AsyncPiecesClient,
) -> None:
    for timeout in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="timeout"):
            await pieces_client.wait_until_ready(timeout=timeout)


async def test_wait_until_ready_says_what_pieces_os_answered(serve_app: ServeApp) -> None:
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="starting up", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    url = await serve_app(app)
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url) as c:
            with pytest.raises(PiecesTimeoutError, match="starting up"):
                await c.wait_until_ready(timeout=0.3)


async def test_increment_score_refuses_what_it_cannot_send(
    pieces_client: AsyncPiecesClient,
) -> None:
    with pytest.raises(TypeError, match="SeededScoreIncrement"):
        await pieces_client.increment_model_score("m", {"model": {"reuse": True}})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        await pieces_client.increment_model_score(
            "m", SeededScoreIncrement(model=SeededScore(reuse=True), other={"model": {}})
        )
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    with pytest.raises(TypeError, match="JSON"):
        await pieces_client.increment_model_score("m", SeededScoreIncrement(other=cyclic))


def test_find_refuses_an_empty_or_non_text_name() -> None:
    from aiopieces import Model, Models

    models = Models(iterable=[Model(id="a")])  # no name: it decodes as ""
    with pytest.raises(ModelLookupError):
        models.find("")
    with pytest.raises(TypeError):
        models.find(None)  # type: ignore[arg-type]
