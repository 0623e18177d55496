"""Every error about a request says which (method, url), and keeps what caused it."""

from __future__ import annotations

import aiohttp
import anyio
import msgspec
import pytest

from aiopieces import (
    PiecesAPIError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesRequestError,
    PiecesTimeoutError,
    Timeout,
)

from ..helpers import BOUND, free_port
from ..helpers import fast_client as client
from .hostile import Hostile


async def test_a_refused_connection_says_which_request_and_keeps_the_os_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with anyio.fail_after(BOUND):
        async with client(url, retry=None) as c:
            with pytest.raises(PiecesConnectionError) as info:
                await c.load_model("m")
    error = info.value
    assert isinstance(error, PiecesRequestError)
    assert (error.method, error.url) == ("POST", f"{url}/model/m/load")
    assert error.request_sent is False
    assert isinstance(error.__cause__, aiohttp.ClientConnectorError)
    assert isinstance(error.__cause__.os_error, ConnectionRefusedError)


async def test_a_read_timeout_says_its_phase(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "never_answer"
    with anyio.fail_after(BOUND):
        async with client(url, timeout=Timeout(read=0.2), retry=None) as c:
            with pytest.raises(PiecesTimeoutError) as info:
                await c.get_model("m")
    error = info.value
    assert (error.phase, error.method, error.url) == ("read", "GET", f"{url}/model/m")
    assert isinstance(error.__cause__, TimeoutError)


async def test_a_total_timeout_says_its_phase(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "stall_body"
    with anyio.fail_after(BOUND):
        async with client(url, timeout=Timeout(read=None, total=0.3), retry=None) as c:
            with pytest.raises(PiecesTimeoutError) as info:
                await c.list_models()
    assert (info.value.phase, info.value.method) == ("total", "GET")


async def test_a_bad_body_keeps_a_preview_and_the_decoder_error(
    hostile: tuple[Hostile, str],
) -> None:
    state, url = hostile
    state.fault = "truncated_json"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesDecodeError) as info:
                await c.list_models()
    error = info.value
    assert (error.method, error.url) == ("GET", f"{url}/models")
    assert error.preview == '{"iterable": [{"id": "m"'
    assert isinstance(error.__cause__, msgspec.DecodeError)


async def test_a_bad_frame_says_which_socket(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_text_not_json"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesDecodeError) as info:
                async for _ in c.download_progress("m"):
                    pass
    error = info.value
    assert (error.method, error.url) == ("GET", f"{url}/model/m/download/progress")
    assert error.preview == "<html>oops</html>"


async def test_an_api_error_says_which_request(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "plain_500"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesAPIError) as info:
                await c.unload_model("m")
    error = info.value
    assert (error.status, error.method, error.url) == (500, "POST", f"{url}/model/m/unload")
    assert error.body == "database is locked"


async def test_a_refused_handshake_says_which_socket(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_500"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesAPIError) as info:
                async for _ in c.download_progress("m"):
                    pass
    assert (info.value.status, info.value.method) == (500, "GET")
    assert info.value.url == f"{url}/model/m/download/progress"
    assert isinstance(info.value.__cause__, aiohttp.WSServerHandshakeError)
