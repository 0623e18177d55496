"""One test per fault: the exact library error, a time bound, and nothing leaked.

Time bounds are `anyio.fail_after` guards: they fail a test that hangs, they measure
nothing. Retries use a tiny backoff so the suite stays fast.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest

from aiopieces import (
    AsyncPiecesClient,
    DownloadProgress,
    ModelNotFoundError,
    PiecesAPIError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesTimeoutError,
    Timeout,
)

from ..helpers import BOUND, free_port, seeded
from ..helpers import fast_client as client
from .hostile import Hostile


def assert_connections_released(c: AsyncPiecesClient) -> None:
    # Every request slot is back: a finished call, however it failed, holds none. (The
    # sockets themselves are checked by the leak guard of this folder's conftest.)
    assert c._conn.slots.value == c._conn.max_connections


# -- HTTP faults -----------------------------------------------------------------------------


async def test_connection_refused_retries_then_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesConnectionError) as info:
                await c.list_models()
            # Refused means never sent: even a create may be retried, and fails the same.
            with pytest.raises(PiecesConnectionError):
                await c.create_model(seeded())
    assert url in str(info.value) and "Is PiecesOS running?" in str(info.value)
    assert info.value.request_sent is False


async def test_reset_mid_body_retries_idempotent_calls(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "reset_mid_body"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesConnectionError, match="the connection failed"):
                await c.list_models()
            assert state.hits["/models"] == 3
            with pytest.raises(PiecesConnectionError):
                await c.create_model(seeded())
            assert state.hits["/models/create"] == 1  # it may have reached the server
            assert_connections_released(c)


async def test_a_server_that_never_answers_is_a_read_timeout(
    hostile: tuple[Hostile, str],
) -> None:
    state, url = hostile
    state.fault = "never_answer"
    with anyio.fail_after(BOUND):
        async with client(url, timeout=Timeout(read=0.2), retry=None) as c:
            with pytest.raises(PiecesTimeoutError, match=r"no data for 0.2 s \(read timeout\)"):
                await c.list_models()
            assert_connections_released(c)


async def test_a_body_that_stalls_is_a_read_timeout(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "stall_body"
    with anyio.fail_after(BOUND):
        async with client(url, timeout=Timeout(read=0.2), retry=None) as c:
            with pytest.raises(PiecesTimeoutError, match="read timeout"):
                await c.list_models()


async def test_total_timeout(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "stall_body"
    with anyio.fail_after(BOUND):
        async with client(url, timeout=Timeout(read=None, total=0.3), retry=None) as c:
            with pytest.raises(PiecesTimeoutError, match="total timeout"):
                await c.list_models()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("truncated_json", "truncated"),
        ("empty_200", "truncated"),
        ("null_body", "Expected `object`, got `null`"),
        ("wrong_shape", r"Expected `array`, got `object` - at `\$.iterable`"),
    ],
)
async def test_bad_2xx_bodies_are_decode_errors(
    hostile: tuple[Hostile, str], fault: str, message: str
) -> None:
    state, url = hostile
    state.fault = fault
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesDecodeError, match=message):
                await c.list_models()
            assert state.hits["/models"] == 1  # a bad body is not retried
            assert_connections_released(c)


async def test_html_502_from_a_proxy(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "html_502"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesAPIError) as info:
                await c.list_models()
            assert state.hits["/models"] == 3  # retried: idempotent
            with pytest.raises(PiecesAPIError):
                await c.create_model(seeded())
            assert state.hits["/models/create"] == 1  # not retried: not idempotent
    assert info.value.status == 502 and "502 Bad Gateway" in info.value.body


#: Every call, by whether repeating it is safe: (call, path, tries on a retryable status).
_CALLS_BY_IDEMPOTENCE = [
    (lambda c: c.list_models(), "/models", 3),
    (lambda c: c.get_model("m"), "/model/m", 3),
    (lambda c: c.cancel_download("m"), "/model/m/download/cancel", 3),
    (lambda c: c.load_model("m"), "/model/m/load", 3),
    (lambda c: c.unload_model("m"), "/model/m/unload", 3),
    (lambda c: c.unload_models(), "/models/unload", 3),
    (lambda c: c.health(), "/.well-known/health", 3),
    (lambda c: c.version(), "/.well-known/version", 3),
    (lambda c: c.download_model("m"), "/model/m/download", 1),
    (lambda c: c.create_model(seeded()), "/models/create", 1),
    (lambda c: c.delete_model("m"), "/models/m/delete", 1),
    (lambda c: c.delete_model_cache("m"), "/models/m/delete/cache", 1),
    (lambda c: c.increment_model_score("m"), "/model/m/scores/increment", 1),
]


@pytest.mark.parametrize(
    ("call", "path", "tries"), _CALLS_BY_IDEMPOTENCE, ids=lambda v: v if isinstance(v, str) else ""
)
@pytest.mark.parametrize("fault", ["html_502", "reset_mid_body"])
async def test_only_idempotent_calls_are_repeated_once_the_request_went_out(
    hostile: tuple[Hostile, str],
    call: Callable[[AsyncPiecesClient], Awaitable[object]],
    path: str,
    tries: int,
    fault: str,
) -> None:
    state, url = hostile
    state.fault = fault
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises((PiecesAPIError, PiecesConnectionError)):
                await call(c)
    assert state.hits == {path: tries}


async def test_500_with_a_plain_text_body(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "plain_500"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesAPIError, match="answered 500: database is locked") as info:
                await c.load_model("m")
    assert info.value.body == "database is locked" and info.value.method == "POST"
    assert state.hits["/model/m/load"] == 1


async def test_503_then_success_is_retried(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "503_then_ok"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            assert (await c.load_model("m")).id == "m"
    assert state.hits["/model/m/load"] == 2


async def test_retries_can_be_disabled(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "503_then_ok"
    with anyio.fail_after(BOUND):
        async with client(url, retry=None) as c:
            with pytest.raises(PiecesAPIError) as info:
                await c.load_model("m")
    assert info.value.status == 503 and state.hits["/model/m/load"] == 1


async def test_410_is_model_not_found(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "gone_410"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(ModelNotFoundError, match="model was not found"):
                await c.get_model("m")
    assert state.hits["/model/m"] == 1


async def test_a_redirect_is_followed(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "redirect_once"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            assert (await c.get_model("m")).id == "m"
    assert state.hits == {"/model/m": 1, "/moved/model/m": 1}


async def test_a_redirect_loop_is_a_connection_error(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "redirect_loop"
    with anyio.fail_after(BOUND):
        async with client(url, retry=None) as c:
            with pytest.raises(PiecesConnectionError, match="too many redirects"):
                await c.get_model("m")


@pytest.mark.parametrize("fault", ["huge_known", "huge_chunked"])
async def test_a_huge_body_is_refused(hostile: tuple[Hostile, str], fault: str) -> None:
    state, url = hostile
    state.fault = fault
    with anyio.fail_after(BOUND):
        async with client(url, max_response_bytes=1_000_000) as c:
            with pytest.raises(PiecesDecodeError, match="exceeds 1000000"):
                await c.list_models()
            assert_connections_released(c)


# -- cancellation and closing ------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["never_answer", "stall_body"])  # before and in the body
async def test_cancelling_an_in_flight_call_leaves_the_client_usable(
    hostile: tuple[Hostile, str], fault: str
) -> None:
    state, url = hostile
    state.fault = fault
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            async with anyio.create_task_group() as tg:
                tg.start_soon(c.list_models)
                await (state.body_started if fault == "stall_body" else state.received).wait()
                tg.cancel_scope.cancel()
            assert_connections_released(c)
            state.fault = "none"
            assert (await c.get_model("m")).id == "m"


async def test_closing_the_client_ends_in_flight_calls_with_a_clear_error(
    hostile: tuple[Hostile, str],
) -> None:
    from aiopieces import PiecesClientStateError

    state, url = hostile
    state.fault = "never_answer"
    errors: list[BaseException] = []

    async def call(c: AsyncPiecesClient) -> None:
        try:
            await c.list_models()
        except PiecesClientStateError as exc:
            errors.append(exc)

    with anyio.fail_after(BOUND):
        c = client(url)
        await c.open()
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, c)
            await state.received.wait()
            await c.aclose()
    assert len(errors) == 1 and "closed while GET" in str(errors[0])


# -- WebSocket faults ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error"), [("ws_404", ModelNotFoundError), ("ws_500", PiecesAPIError)]
)
async def test_handshake_refused(
    hostile: tuple[Hostile, str], fault: str, error: type[Exception]
) -> None:
    state, url = hostile
    state.fault = fault
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(error) as info:
                async for _ in c.download_progress("m"):
                    pass
    assert isinstance(info.value, PiecesAPIError)
    assert info.value.status == int(fault[-3:]) and info.value.method == "GET"
    assert state.ws_connections == 1  # neither 404 nor 500 is retried


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("ws_text_not_json", "malformed"),
        ("ws_binary_garbage", "malformed"),
        ("ws_wrong_shape", r"Expected `str \| null`, got `int` - at `\$.status`"),
    ],
)
async def test_bad_frames_are_decode_errors(
    hostile: tuple[Hostile, str], fault: str, message: str
) -> None:
    state, url = hostile
    state.fault = fault
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            seen = []
            with pytest.raises(PiecesDecodeError, match=message):
                async for event in c.download_progress("m"):
                    seen.append(event)
            assert len(seen) == 1
            await state.ws_closed.wait()  # our side closed the socket


async def test_a_binary_frame_of_json_is_read_like_text(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_binary_json"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            statuses = [e.status async for e in c.download_progress("m")]
    assert statuses == ["INITIALIZED", "COMPLETED"]


async def test_close_with_an_error_code(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_close_1011"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesConnectionError, match="code 1011: internal error"):
                async for _ in c.download_progress("m"):
                    pass
    assert state.ws_connections == 1


async def test_a_drop_before_the_end_reconnects_and_goes_on(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_drop_once"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            stream = c.download_progress("m")
            percentages = [e.percentage async for e in stream]
    assert percentages == [0, 40, 0, 60, 100]  # the new socket starts with the current state
    assert stream.reconnects == 1 and state.ws_connections == 2


async def test_a_restarting_server_is_reconnected(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_restart_1012"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            stream = c.download_progress("m")
            statuses = [e.status async for e in stream]
    assert statuses == ["INITIALIZED", "INITIALIZED", "COMPLETED"] and stream.reconnects == 1


async def test_reconnects_are_bounded(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_drop_always"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            stream: DownloadProgress = c.download_progress("m")
            with pytest.raises(PiecesConnectionError, match="gave up after 10 reconnects"):
                async for _ in stream:
                    pass
    assert state.ws_connections == 11


async def test_no_reconnect_when_retries_are_off(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_drop_always"
    with anyio.fail_after(BOUND):
        async with client(url, retry=None) as c:
            with pytest.raises(PiecesConnectionError, match=r"dropped .*close code 1006"):
                async for _ in c.download_progress("m"):
                    pass
    assert state.ws_connections == 1


async def test_a_silent_socket_hits_the_idle_timeout(hostile: tuple[Hostile, str]) -> None:
    state, url = hostile
    state.fault = "ws_silent"
    with anyio.fail_after(BOUND):
        async with client(url, timeout=Timeout(ws_idle=0.2)) as c:
            with pytest.raises(PiecesTimeoutError, match=r"no progress event for 0.2 s"):
                async for _ in c.download_progress("m"):
                    pass
            await state.ws_closed.wait()


async def test_a_consumer_leaving_an_endless_stream_closes_it(
    hostile: tuple[Hostile, str],
) -> None:
    state, url = hostile
    state.fault = "ws_endless"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            count = 0
            async with c.download_progress("m") as events:
                async for _ in events:
                    count += 1
                    if count == 500:
                        break
            await state.ws_closed.wait()
            assert (await c.get_model("m")).id == "m"  # still usable
    assert count == 500


async def test_cancel_on_exit_also_cancels_when_the_stream_fails(
    hostile: tuple[Hostile, str],
) -> None:
    state, url = hostile
    state.fault = "ws_text_not_json"
    with anyio.fail_after(BOUND):
        async with client(url) as c:
            with pytest.raises(PiecesDecodeError):
                async for _ in c.download("m", cancel_on_exit=True):
                    pass
    assert state.hits["/model/m/download"] == 1
    assert state.hits["/model/m/download/cancel"] == 1
