"""The hostile server, served fresh for each test, and a leak check around every test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .hostile import Hostile


@pytest.fixture
async def hostile(aiohttp_server: Any) -> AsyncIterator[tuple[Hostile, str]]:
    """A hostile server and its URL; its stalled handlers are released at teardown."""
    state = Hostile()
    server = await aiohttp_server(state.make_app(), host="127.0.0.1")
    yield state, str(server.make_url("")).rstrip("/")
    state.release.set()


@pytest.fixture(autouse=True)
async def no_task_left_behind() -> AsyncIterator[None]:
    """Every task a test's client started has ended when the test ends."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    left = {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}
    # aiohttp's test server may still be finishing a handler; ours must all be gone.
    ours = [t for t in left if "aiopieces" in repr(t.get_coro())]
    assert not ours, ours
