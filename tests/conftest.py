"""Shared fixtures: the emulator and client come from aiopieces' own pytest plugin."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

ServeApp = Callable[[web.Application], Awaitable[str]]


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported lives for the whole run: `gc.freeze()` keeps it out of the
    `gc.collect()` after every test, which would otherwise scan it 900 times. Hypothesis
    registers its random generators when first imported, so it is imported before."""
    import hypothesis  # noqa: F401

    gc.freeze()


@pytest.fixture(autouse=True)
async def loop_errors_fail_the_test() -> AsyncIterator[None]:
    """What the event loop would only log (unclosed sessions, lost task errors) fails the test."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    gc.collect()
    loop.set_exception_handler(None)
    assert not errors, errors


@pytest.fixture
async def serve_app(aiohttp_server: Any) -> ServeApp:
    """Serve a hand-written aiohttp app on 127.0.0.1: a server independent of the emulator."""

    async def serve(app: web.Application) -> str:
        server = await aiohttp_server(app, host="127.0.0.1")
        return str(server.make_url("")).rstrip("/")

    return serve
