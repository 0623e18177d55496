"""The PiecesOS runtime around the model APIs: health, version, readiness, rediscovery,
and the two endpoints the spec leaves out (scores) plus `Models.find`."""

from __future__ import annotations

import inspect
import logging
import socket
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
    _config,
)
from aiopieces.testing import PiecesOSEmulator

from .conftest import ServeApp
from .helpers import BOUND, free_port, model_id, seeded


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
async def findable(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[PiecesOSEmulator, int]]:
    """An emulator that discovery finds, and a spare port it may move to: discovery looks
    at these two ports only, so that nothing else on this machine can answer it."""
    monkeypatch.delenv("PIECES_OS_URL", raising=False)
    emulator = PiecesOSEmulator()
    await emulator.start()
    assert emulator.port is not None
    spare = free_port()
    monkeypatch.setattr(_config, "DISCOVERY_PORTS", [emulator.port, spare])
    try:
        yield emulator, spare
    finally:
        await emulator.stop()


async def test_a_discovered_pieces_os_is_found_again_on_another_port(
    findable: tuple[PiecesOSEmulator, int],
) -> None:
    emulator, spare = findable
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient() as c:
            first = c.base_url
            assert first == emulator.url
            await emulator.restart(spare)
            assert (await c.list_models()).iterable
            assert c.base_url == emulator.url != first


async def test_a_given_url_is_never_replaced(findable: tuple[PiecesOSEmulator, int]) -> None:
    emulator, spare = findable
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(emulator.url, retry=None) as c:
            first = c.base_url
            await emulator.restart(spare)
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
    findable: tuple[PiecesOSEmulator, int],
) -> None:
    emulator, spare = findable
    results: list[str] = []

    async def call(c: AsyncPiecesClient) -> None:
        results.append((await c.health()).strip())

    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(retry=None) as c:
            await emulator.restart(spare)
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


# -- wait_until_ready: exactly what it says, and how it polls --------------------------------


def test_wait_until_ready_waits_thirty_seconds_unless_told() -> None:
    parameter = inspect.signature(AsyncPiecesClient.wait_until_ready).parameters["timeout"]
    assert parameter.default == 30.0


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
async def test_wait_until_ready_names_the_senseless_timeout(
    pieces_client: AsyncPiecesClient, timeout: float
) -> None:
    with pytest.raises(ValueError) as info:
        await pieces_client.wait_until_ready(timeout=timeout)
    assert str(info.value) == f"timeout must be a positive number of seconds, not {timeout!r}"


async def test_wait_until_ready_on_a_silent_health_says_nothing_came(serve_app: ServeApp) -> None:
    release = anyio.Event()

    async def health(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    url = await serve_app(app)
    try:
        with anyio.fail_after(BOUND):
            async with AsyncPiecesClient(url) as c:
                with pytest.raises(PiecesTimeoutError) as info:
                    await c.wait_until_ready(timeout=0.2)
    finally:
        release.set()
    assert str(info.value) == f"PiecesOS at {url} was not ready within 0.2 s (last: None)"
    assert (info.value.phase, info.value.method) == ("total", "GET")
    assert info.value.url == f"{url}/.well-known/health"


async def test_wait_until_ready_polls_once_a_try_with_backoff_and_says_the_last_error(
    serve_app: ServeApp,
) -> None:
    hits = 0

    async def health(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        # A Retry-After the client's own retry policy would wait for: polls do not retry.
        return web.Response(
            status=503, text="starting", content_type="text/plain", headers={"Retry-After": "10"}
        )

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    url = await serve_app(app)
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url) as c:
            with pytest.raises(PiecesTimeoutError) as info:
                await c.wait_until_ready(timeout=0.3)
    health_url = f"{url}/.well-known/health"
    assert str(info.value) == (
        f"PiecesOS at {url} was not ready within 0.3 s "
        f"(last: GET {health_url} answered 503: starting)"
    )
    # Polls at 0, after 0.05 s, then 0.1 s more: a third may start, a fourth cannot.
    assert 2 <= hits <= 3


async def test_wait_until_ready_shows_what_health_answered_up_to_80_characters(
    serve_app: ServeApp,
) -> None:
    async def health(request: web.Request) -> web.Response:
        return web.Response(text="x" * 100, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    url = await serve_app(app)
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url) as c:
            with pytest.raises(PiecesTimeoutError) as info:
                await c.wait_until_ready(timeout=0.2)
    assert str(info.value) == (
        f"PiecesOS at {url} was not ready within 0.2 s (last: health answered {'x' * 80!r})"
    )


async def test_a_poll_that_hangs_gives_up_after_two_seconds_and_polls_again(
    serve_app: ServeApp,
) -> None:
    """One poll must not eat the whole wait: each is bounded by 2 s to connect and to read.
    (The one test here that takes over 2 s: no shorter wait can tell the bound apart.)"""
    release = anyio.Event()

    async def health(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    silent_url = await serve_app(app)
    # A port that never accepts: its one-place queue is full, so connecting hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        refused_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        fillers = [socket.socket() for _ in range(2)]
        messages: dict[str, str] = {}

        async def wait(url: str) -> None:
            async with AsyncPiecesClient(url) as c:
                with pytest.raises(PiecesTimeoutError) as info:
                    await c.wait_until_ready(timeout=2.25)
            messages[url] = str(info.value)

        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait, silent_url)
                    tg.start_soon(wait, refused_url)
        finally:
            release.set()
            for filler in fillers:
                filler.close()
    within = "was not ready within 2.25 s (last: GET"
    assert messages[silent_url] == (
        f"PiecesOS at {silent_url} {within} {silent_url}/.well-known/health: "
        "no data for 2.0 s (read timeout))"
    )
    assert messages[refused_url].startswith(
        f"PiecesOS at {refused_url} {within} {refused_url}/.well-known/health: "
        "no connection within 2.0 s (connect timeout"
    )


# -- rediscovery -----------------------------------------------------------------------------


async def test_moving_is_logged(
    findable: tuple[PiecesOSEmulator, int], caplog: pytest.LogCaptureFixture
) -> None:
    emulator, spare = findable
    caplog.set_level(logging.INFO, logger="aiopieces")
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(retry=None) as c:
            first = c.base_url
            assert first == emulator.url
            await emulator.restart(spare)
            assert (await c.health()).startswith("ok")
            assert c.base_url == emulator.url == f"http://127.0.0.1:{spare}"
    moves = [r for r in caplog.records if r.getMessage().startswith("PiecesOS moved")]
    assert [(r.levelno, r.getMessage()) for r in moves] == [
        (logging.INFO, f"PiecesOS moved from {first} to {emulator.url}")
    ]


async def test_pieces_os_gone_everywhere_is_the_refusal(
    findable: tuple[PiecesOSEmulator, int],
) -> None:
    emulator, _ = findable
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(retry=None) as c:
            first = c.base_url
            await emulator.stop()
            with pytest.raises(PiecesConnectionError) as info:
                await c.list_models()
            assert c.base_url == first
    assert info.value.request_sent is False
    assert (info.value.method, info.value.url) == ("GET", f"{first}/models")


async def test_pieces_os_found_again_where_it_refused_is_not_tried_again(
    findable: tuple[PiecesOSEmulator, int], serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal stands when discovery finds PiecesOS where it refused: one more try
    is only for a PiecesOS found elsewhere."""
    emulator, _ = findable
    port = emulator.port
    assert port is not None

    async def health(request: web.Request) -> web.Response:
        # Discovery asks here too: PiecesOS comes back where it was, meanwhile.
        if emulator.port is None:
            await emulator.start(port=port)
        return web.Response(status=503, text="not PiecesOS")

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    other = int((await serve_app(app)).rsplit(":", 1)[1])
    monkeypatch.setattr(_config, "DISCOVERY_PORTS", [port, other])
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(retry=None) as c:
            first = c.base_url
            await emulator.stop()
            with pytest.raises(PiecesConnectionError) as info:
                await c.list_models()
            assert info.value.url == f"{first}/models" and not info.value.request_sent
            assert c.base_url == first
            assert (await c.list_models()).iterable  # where it was, as discovery saw


async def test_a_stream_follows_pieces_os_to_its_new_port(
    findable: tuple[PiecesOSEmulator, int],
) -> None:
    emulator, spare = findable
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient() as c:
            stream = c.watch_models()
            async with stream as batches:
                first = await anext(batches)
                await emulator.restart(spare)
                again = await anext(batches)  # no call made: the stream looked for it
                assert stream.snapshot and again == first
                assert c.base_url == emulator.url == f"http://127.0.0.1:{spare}"


async def test_a_call_sent_again_after_a_move_carries_its_body(
    findable: tuple[PiecesOSEmulator, int],
) -> None:
    emulator, spare = findable
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(retry=None) as c:
            await emulator.restart(spare)
            created = await c.create_model(seeded(name="after the move"))
    assert created.name == "after the move"
    assert emulator.models[created.id]["name"] == "after the move"
