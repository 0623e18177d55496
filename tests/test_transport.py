"""The transport: the bytes of the request line, the size limit, which statuses succeed."""

from __future__ import annotations

import anyio
import pytest
from aiohttp import web

from aiopieces import AsyncPiecesClient, PiecesAPIError, PiecesDecodeError
from aiopieces._transport import model_segment, parse_retry_after

from .conftest import ServeApp
from .helpers import BOUND


@pytest.mark.parametrize(
    ("model_id", "segment"),
    [
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("a.b", "a%2Eb"),
        ("a/b", "a%2Fb"),
        ("a?b#c", "a%3Fb%23c"),
        ("a b", "a%20b"),
        ("%2F", "%252F"),
        ("ü", "%C3%BC"),
        ("plain-id_1~", "plain-id_1~"),
    ],
)
def test_model_segment_encodes_one_segment(model_id: str, segment: str) -> None:
    assert model_segment(model_id) == segment


async def test_the_request_line_carries_the_encoded_segment(serve_app: ServeApp) -> None:
    # Neither aiohttp nor the emulator resolves dot segments, so only the raw path shows
    # whether "." and ".." went out encoded.
    raw_paths: list[str] = []

    async def record(request: web.Request) -> web.Response:
        raw_paths.append(request.raw_path)
        return web.json_response({"id": request.match_info["model"]})

    app = web.Application()
    app.router.add_get("/model/{model}", record)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            for hostile in [".", "..", "a.b", "a/b"]:
                assert (await client.get_model(hostile)).id == hostile
    assert raw_paths == ["/model/%2E", "/model/%2E%2E", "/model/a%2Eb", "/model/a%2Fb"]


def test_model_segment_refuses_what_is_not_an_id() -> None:
    with pytest.raises(ValueError, match="empty"):
        model_segment("")
    with pytest.raises(TypeError, match="must be a str, not int"):
        model_segment(7)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("0", 0.0),
        ("-1", 0.0),
        ("nan", None),
        ("3600", 3600.0),
        ("3601", None),
        ("soon", None),
        ("", None),
        (None, None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: no wait
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def _body_of(size: int) -> bytes:
    """A JSON models list of exactly `size` bytes."""
    head, tail = b'{"iterable": [], "pad": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_of_exactly_the_limit_is_read_one_more_byte_is_not(
    serve_app: ServeApp, chunked: bool
) -> None:
    limit = 4096
    size = limit

    async def sized(request: web.Request) -> web.StreamResponse:
        body = _body_of(size)
        if not chunked:  # a Content-Length to refuse on before reading
            return web.Response(body=body, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 1000):
            await response.write(body[start : start + 1000])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/models", sized)
    async with AsyncPiecesClient(
        await serve_app(app), retry=None, max_response_bytes=limit
    ) as client:
        with anyio.fail_after(BOUND):
            assert (await client.list_models()).iterable == []
            size = limit + 1
            with pytest.raises(PiecesDecodeError, match=f"exceeds {limit}"):
                await client.list_models()


@pytest.mark.parametrize("status", [300, 301, 304, 307, 399])
async def test_an_answer_outside_2xx_is_an_api_error(serve_app: ServeApp, status: int) -> None:
    async def odd(request: web.Request) -> web.Response:
        # No Location header: aiohttp has nothing to follow, and the status reaches us.
        return web.Response(status=status, body=b"" if status == 304 else b"{}")

    app = web.Application()
    app.router.add_get("/models", odd)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesAPIError) as info:
            await client.list_models()
    assert info.value.status == status


async def test_an_endpoint_without_a_body_succeeds_on_any_2xx(serve_app: ServeApp) -> None:
    answers = iter([(200, b'{"ignored": true}'), (204, b""), (202, b"")])

    async def delete(request: web.Request) -> web.Response:
        status, body = next(answers)
        return web.Response(status=status, body=body or None)

    app = web.Application()
    app.router.add_post("/models/{model}/delete", delete)
    app.router.add_post("/models/unload", delete)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            assert await client.delete_model("custom-1") is None
            assert await client.delete_model("custom-1") is None
            assert await client.unload_models() is None
