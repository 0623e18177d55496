"""Configuration: where the client connects (given, environment, discovery) and timeouts."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from aiopieces import AsyncPiecesClient, Timeout, discover_pieces_os
from aiopieces._config import resolve_base_url, validate_base_url

from .conftest import ServeApp
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


async def test_discovery_without_ports_probes_the_discovery_ports(
    serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiopieces import _config

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/.well-known/health", healthy)
    url = await serve_app(app)
    port = int(url.rsplit(":", 1)[1])
    monkeypatch.setattr(_config, "DISCOVERY_PORTS", [free_port(), port])
    with anyio.fail_after(BOUND):
        assert await discover_pieces_os() == f"http://127.0.0.1:{port}"
        # Ports given replace the discovery ports.
        assert await discover_pieces_os([free_port()]) is None
        # Nothing given, no environment: discovery decides, and says so in the log.
        monkeypatch.delenv("PIECES_OS_URL", raising=False)
        assert await resolve_base_url(None) == f"http://127.0.0.1:{port}"
        assert await resolve_base_url("") == f"http://127.0.0.1:{port}"


async def test_discovery_asks_for_no_keep_alive_and_has_no_connection_limit(
    serve_app: ServeApp,
) -> None:
    # More probes than aiohttp's default connection limit (100) are stuck on one port until
    # the healthy port has answered: with any limit, the healthy probe would never start.
    healthy_answered = anyio.Event()
    connection_headers: list[str | None] = []

    async def stuck(request: web.Request) -> web.Response:
        connection_headers.append(request.headers.get("Connection"))
        await healthy_answered.wait()
        return web.Response(status=503, text="starting")

    async def healthy(request: web.Request) -> web.Response:
        connection_headers.append(request.headers.get("Connection"))
        healthy_answered.set()
        return web.Response(text="ok")

    ports = []
    for handler in (stuck, healthy):
        app = web.Application()
        app.router.add_get("/.well-known/health", handler)
        ports.append(int((await serve_app(app)).rsplit(":", 1)[1]))
    stuck_port, healthy_port = ports
    with anyio.fail_after(BOUND):
        found = await discover_pieces_os([stuck_port] * 101 + [healthy_port], timeout=3)
    assert found == f"http://127.0.0.1:{healthy_port}"
    # Each probe is one request on its own connection, closed after the answer.
    assert connection_headers == ["close"] * 102


def test_timeout_to_aiohttp_maps_every_bound() -> None:
    timeout = Timeout(connect=1, read=2, total=3, pool=4)
    assert timeout.to_aiohttp() == aiohttp.ClientTimeout(
        total=3, sock_connect=1, connect=1, sock_read=2
    )
    assert Timeout(connect=None, read=None).to_aiohttp() == aiohttp.ClientTimeout(
        total=None, sock_connect=None, connect=None, sock_read=None
    )


def test_every_timeout_must_be_positive_or_none() -> None:
    for name in ["connect", "read", "total", "pool", "ws_idle"]:
        for bad in [0, -1, -0.5]:
            with pytest.raises(ValueError) as info:
                Timeout(**{name: bad})
            assert str(info.value) == f"timeout {name} must be positive or None, not {bad!r}"
        assert getattr(Timeout(**{name: 0.5}), name) == 0.5
        assert getattr(Timeout(**{name: None}), name) is None


def test_timeout_coerce_sets_connect_read_and_pool() -> None:
    no_limits = Timeout.coerce(None)
    assert (no_limits.connect, no_limits.read, no_limits.pool) == (None, None, None)
    assert (no_limits.total, no_limits.ws_idle) == (None, None)
    given = Timeout.coerce(2)
    assert (given.connect, given.read, given.pool, given.total) == (2.0, 2.0, 2.0, None)
    assert all(type(v) is float for v in (given.connect, given.read, given.pool))


VALID_URLS = [
    (" http://Host:8080/ ", "http://host:8080"),
    ("HTTPS://pieces.example", "https://pieces.example"),
    ("Http://h", "http://h"),
    ("http://h/", "http://h"),
    ("http://h/base/", "http://h/base"),
    ("http://h:1", "http://h:1"),
    ("http://h:65535", "http://h:65535"),
    ("http://[::1]:5/", "http://[::1]:5"),
    ("http://h/BOX/", "http://h/BOX"),  # only slashes are stripped
]


def test_a_valid_url_is_normalised() -> None:
    for url, normalised in VALID_URLS:
        assert validate_base_url(url) == normalised, url


INVALID_URLS = [
    (
        "ftp://x",
        "the PiecesOS URL must start with http:// or https:// and name a host: 'ftp://x'",
    ),
    (
        "http://",
        "the PiecesOS URL must start with http:// or https:// and name a host: 'http://'",
    ),
    (
        "localhost:39300",
        "must start with http:// or https:// and name a host: 'localhost:39300'",
    ),
    ("http://h:0", "invalid port 0 in the PiecesOS URL 'http://h:0'"),
    ("http://h:65536", "invalid PiecesOS URL 'http://h:65536': Port out of range 0-65535"),
]


def test_an_invalid_url_is_refused_with_the_reason() -> None:
    for url, message in INVALID_URLS:
        with pytest.raises(ValueError) as info:
            validate_base_url(url)
        assert message in str(info.value), url


async def test_resolve_logs_which_url_and_why(
    serve_app: ServeApp, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from aiopieces import _config

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/.well-known/health", healthy)
    found = await serve_app(app)
    caplog.set_level(logging.DEBUG, logger="aiopieces")
    monkeypatch.setenv("PIECES_OS_URL", "http://127.0.0.1:4/")
    with anyio.fail_after(BOUND):
        await resolve_base_url("http://127.0.0.1:2/")
        await resolve_base_url(None)
        monkeypatch.delenv("PIECES_OS_URL")
        monkeypatch.setattr(_config, "DISCOVERY_PORTS", [int(found.rsplit(":", 1)[1])])
        await resolve_base_url(None)
        monkeypatch.setattr(_config, "DISCOVERY_PORTS", [free_port()])
        await resolve_base_url(None)
    assert [r.getMessage() for r in caplog.records if r.name == "aiopieces"] == [
        "using PiecesOS at http://127.0.0.1:2/ (given)",
        "using PiecesOS at http://127.0.0.1:4/ (PIECES_OS_URL)",
        f"using PiecesOS at {found} (discovered)",
        "using PiecesOS at http://localhost:1000 (default)",
    ]
