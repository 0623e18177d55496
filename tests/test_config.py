"""Configuration: where the client connects (given, environment, discovery) and timeouts."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from aiohttp import web

from aiopieces import AsyncPiecesClient, Timeout, discover_pieces_os
from aiopieces._config import resolve_base_url

from .helpers import BOUND, free_port


async def test_an_explicit_url_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIECES_OS_URL", "http://127.0.0.1:1")
    assert await resolve_base_url("http://127.0.0.1:2/") == "http://127.0.0.1:2"
    async with AsyncPiecesClient("http://127.0.0.1:3") as client:
        assert client.base_url == "http://127.0.0.1:3"


async def test_the_environment_wins_over_discovery(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIECES_OS_URL", "http://127.0.0.1:4")
    assert await resolve_base_url(None) == "http://127.0.0.1:4"
    monkeypatch.setenv("PIECES_OS_URL", "")  # set but empty: as if unset
    from aiopieces import _config

    monkeypatch.setattr(_config, "DISCOVERY_PORTS", [free_port()])
    assert await resolve_base_url(None) == _config.DEFAULT_BASE_URL


async def test_discovery_takes_the_lowest_healthy_port_not_the_first_to_answer(
    aiohttp_server: Any,
) -> None:
    # The lowest port answers last, and a lower one still answers 503: neither the first
    # answer nor any answer is enough, only the lowest that is healthy.
    higher_answered = anyio.Event()

    def health_app(status: int, wait: bool) -> web.Application:
        async def health(request: web.Request) -> web.Response:
            if wait:
                await higher_answered.wait()
            else:
                higher_answered.set()
            return web.Response(status=status, text="ok" if status == 200 else "starting")

        app = web.Application()
        app.router.add_get("/.well-known/health", health)
        return app

    servers = [await aiohttp_server(web.Application(), host="127.0.0.1") for _ in range(3)]
    ports = sorted(server.port for server in servers)
    for server in servers:
        await server.close()
    unhealthy, lowest, higher = ports
    for port, status, wait in [(unhealthy, 503, False), (lowest, 200, True), (higher, 200, False)]:
        await aiohttp_server(health_app(status, wait), host="127.0.0.1", port=port)
    with anyio.fail_after(BOUND):
        found = await discover_pieces_os([higher, free_port(), lowest, unhealthy], timeout=3)
    assert found == f"http://127.0.0.1:{lowest}"


def test_timeout_coerce_and_bounds() -> None:
    assert Timeout.coerce(Timeout(read=1)) == Timeout(read=1)
    assert Timeout.coerce(3) == Timeout(connect=3, read=3, pool=3)
    for bad in [0, -1]:
        with pytest.raises(ValueError, match="positive"):
            Timeout(connect=bad)
        with pytest.raises(ValueError, match="positive"):
            Timeout(total=bad)
