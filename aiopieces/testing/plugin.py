"""pytest fixtures for apps built on aiopieces: a running emulator and a client of it.

Registered through the `pytest11` entry point. Override `pieces_emulator_options` to
configure the emulator (catalog, download speed, latency) for a module or a test.

The fixtures run on pytest-asyncio (`pip install pytest-asyncio`, or `pytest-aiohttp`,
which brings it). In its default "strict" mode it runs only the async tests marked
`@pytest.mark.asyncio`; with `asyncio_mode = "auto"` every async test. An unmarked async
test that asks for these fixtures in strict mode fails at once, saying so.
"""

from __future__ import annotations

import inspect
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


_UNMARKED = (
    "{name} is an async test that pytest-asyncio will not run: it runs only tests marked "
    "@pytest.mark.asyncio in its default 'strict' mode. Mark the test (or the module: "
    'pytestmark = pytest.mark.asyncio), or set asyncio_mode = "auto" under '
    "[tool.pytest.ini_options] in pyproject.toml."
)
_MISSING = (
    "aiopieces' fixtures run on pytest-asyncio: pip install pytest-asyncio "
    "(or pytest-aiohttp, which brings it)"
)


def _check_runs_on_asyncio(request: pytest.FixtureRequest) -> None:
    """Fail a test that pytest-asyncio will not run with what to do, not pytest's riddle."""
    test = getattr(request.node, "obj", None)
    unmarked = request.node.get_closest_marker("asyncio") is None
    if unmarked and (inspect.iscoroutinefunction(test) or inspect.isasyncgenfunction(test)):
        pytest.fail(_UNMARKED.format(name=request.node.name), pytrace=False)


if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def pieces_emulator(
        pieces_emulator_options: dict[str, Any], request: pytest.FixtureRequest
    ) -> AsyncIterator[PiecesOSEmulator]:
        """A PiecesOS emulator serving on 127.0.0.1 (its base URL is `.url`)."""
        _check_runs_on_asyncio(request)
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
        pytest.fail(_MISSING, pytrace=False)

    @pytest.fixture
    def pieces_client() -> None:
        """Fails: the async fixtures need pytest-asyncio."""
        pytest.fail(_MISSING, pytrace=False)
