"""pytest fixtures for apps built on aiopieces: a running emulator and a client of it.

Registered through the `pytest11` entry point. Override `pieces_emulator_options` to
configure the emulator (catalog, download speed, latency) for a module or a test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from .._client import AsyncPiecesClient
from ._emulator import PiecesOSEmulator

try:
    import pytest_asyncio

    _HAVE_PYTEST_ASYNCIO = True
except ImportError:  # pragma: no cover - the fixtures then explain what is missing
    _HAVE_PYTEST_ASYNCIO = False

__all__ = ["pieces_client", "pieces_emulator", "pieces_emulator_options"]


@pytest.fixture
def pieces_emulator_options() -> dict[str, Any]:
    """Keyword arguments for `PiecesOSEmulator`; override this fixture to change them."""
    return {}


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def pieces_emulator(
        pieces_emulator_options: dict[str, Any],
    ) -> AsyncIterator[PiecesOSEmulator]:
        """A PiecesOS emulator serving on 127.0.0.1 (its base URL is `.url`)."""
        async with PiecesOSEmulator(**pieces_emulator_options) as emulator:
            yield emulator

    @pytest_asyncio.fixture
    async def pieces_client(
        pieces_emulator: PiecesOSEmulator,
    ) -> AsyncIterator[AsyncPiecesClient]:
        """An open `AsyncPiecesClient` connected to the `pieces_emulator` fixture."""
        async with AsyncPiecesClient(pieces_emulator.url) as client:
            yield client

else:  # pragma: no cover

    @pytest.fixture
    def pieces_emulator() -> None:
        """Fails: the async fixtures need pytest-asyncio."""
        pytest.fail("aiopieces' fixtures need pytest-asyncio: pip install 'aiopieces[test]'")

    @pytest.fixture
    def pieces_client() -> None:
        """Fails: the async fixtures need pytest-asyncio."""
        pytest.fail("aiopieces' fixtures need pytest-asyncio: pip install 'aiopieces[test]'")
