"""The hostile server, served fresh for each test, and a leak check around every test."""

from __future__ import annotations

import asyncio
import os
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


def open_sockets() -> set[str]:
    """The sockets this process holds open, as `socket:[inode]`."""
    sockets = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
        if link.startswith("socket:"):
            sockets.add(link)
    return sockets


@pytest.fixture(autouse=True)
async def nothing_left_behind() -> AsyncIterator[None]:
    """No socket and no task of the test's client outlives the test (and its server)."""
    before = asyncio.all_tasks()
    sockets = open_sockets()
    yield
    for _ in range(10):  # closed transports release their sockets on the next loop turns
        await asyncio.sleep(0)
    assert open_sockets() <= sockets
    current = asyncio.current_task()
    left = {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}
    # aiohttp's test server may still be finishing a handler; ours must all be gone.
    ours = [t for t in left if "aiopieces" in repr(t.get_coro())]
    assert not ours, ours
