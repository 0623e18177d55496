"""AsyncPiecesClient against the emulator and against hand-written servers."""

from __future__ import annotations

import logging

import aiohttp
import anyio
import pytest
from aiohttp import web

import aiopieces
from aiopieces import (
    AsyncPiecesClient,
    ClientState,
    Model,
    ModelDeleteCacheInput,
    ModelMaxTokens,
    ModelNotFoundError,
    PiecesAPIError,
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesTimeoutError,
    Timeout,
)
from aiopieces.testing import PiecesOSEmulator

from .conftest import ServeApp
from .helpers import (
    BOUND,
    CLOUD,
    FAST_RETRY,
    LOCAL_DOWNLOADED,
    LOCAL_NOT_DOWNLOADED,
    NON_LLM,
    free_port,
    model_id,
    seeded,
)

# -- every endpoint, success and error ------------------------------------------------


async def test_list_models(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    models = await pieces_client.list_models()
    assert [m.id for m in models.iterable] == list(pieces_emulator.models)
    assert any(m.cloud for m in models.iterable) and any(not m.cloud for m in models.iterable)


async def test_get_model(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    model = await pieces_client.get_model(model_id(pieces_emulator, CLOUD))
    assert model.name == CLOUD and model.cloud


async def test_get_unknown_model_is_model_not_found(pieces_client: AsyncPiecesClient) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        await pieces_client.get_model("no-such-model")
    assert info.value.status == 410 and info.value.method == "GET"
    assert info.value.url.endswith("/model/no-such-model")
    assert "was not found" in info.value.body


async def test_download_model_starts_a_download(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=30)
    model = await pieces_client.download_model(target)
    assert model.downloading and not model.downloaded
    pieces_emulator.release_downloads()


async def test_download_cloud_model_is_an_api_error(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with pytest.raises(PiecesAPIError) as info:
        await pieces_client.download_model(model_id(pieces_emulator, CLOUD))
    assert info.value.status == 500 and "cloud model" in info.value.body


async def test_cancel_download(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    pieces_emulator.hold_downloads(at_percentage=30)
    await pieces_client.download_model(target)
    model = await pieces_client.cancel_download(target)
    assert not model.downloading and not model.downloaded


async def test_cancel_download_of_unknown_model(pieces_client: AsyncPiecesClient) -> None:
    with pytest.raises(PiecesAPIError, match="was not found"):
        await pieces_client.cancel_download("ghost")


async def test_load_and_unload(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    assert (await pieces_client.load_model(target)).loaded
    assert (await pieces_client.get_model(target)).loaded
    assert not (await pieces_client.unload_model(target)).loaded


async def test_load_needs_a_download(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with pytest.raises(PiecesAPIError, match="must be downloaded"):
        await pieces_client.load_model(model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED))


async def test_unload_unknown_model(pieces_client: AsyncPiecesClient) -> None:
    with pytest.raises(PiecesAPIError) as info:
        await pieces_client.unload_model("ghost")
    assert info.value.status == 500


async def test_unload_models(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    await pieces_client.load_model(model_id(pieces_emulator, LOCAL_DOWNLOADED))
    assert await pieces_client.unload_models() is None
    assert not any(m.loaded for m in (await pieces_client.list_models()).iterable)


async def test_create_update_delete(pieces_client: AsyncPiecesClient) -> None:
    created = await pieces_client.create_model(seeded(description="v1"))
    assert created.custom and created.id and created.description == "v1"
    assert (await pieces_client.create_model(seeded(description="other"))).id == created.id

    created.description = "v2"
    updated = await pieces_client.update_model(created)
    assert updated.description == "v2"
    assert (await pieces_client.get_model(created.id)).description == "v2"

    assert await pieces_client.delete_model(created.id) is None
    with pytest.raises(ModelNotFoundError):
        await pieces_client.get_model(created.id)


async def test_fields_go_out_under_their_wire_names(serve_app: ServeApp) -> None:
    sent: list[dict[str, object]] = []

    async def create(request: web.Request) -> web.Response:
        sent.append(await request.json())
        return web.json_response({"id": "new", "maxTokens": {"total": 8192}})

    app = web.Application()
    app.router.add_post("/models/create", create)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            created = await client.create_model(
                seeded(max_tokens=ModelMaxTokens(total=8192, input=4096), cpu=None)
            )
    assert sent == [
        {
            "name": "my-finetune",
            "version": "1.0",
            "cloud": False,
            "created": {"value": "2025-06-01T00:00:00Z"},
            "type": "BALANCED",
            "usage": "CODE_CONVERSATION",
            "maxTokens": {"total": 8192, "input": 4096},
        }
    ]
    assert created.max_tokens == ModelMaxTokens(total=8192)


async def test_update_and_delete_need_a_custom_model(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    builtin = await pieces_client.get_model(model_id(pieces_emulator, CLOUD))
    with pytest.raises(PiecesAPIError, match="custom"):
        await pieces_client.update_model(builtin)
    with pytest.raises(PiecesAPIError, match="custom"):
        await pieces_client.delete_model(builtin.id)


async def test_delete_model_cache(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    out = await pieces_client.delete_model_cache(target)
    assert out.model.id == target
    out = await pieces_client.delete_model_cache(target, ModelDeleteCacheInput())
    assert out.model.id == target
    assert not (await pieces_client.get_model(target)).downloaded


async def test_delete_model_cache_only_for_llms(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with pytest.raises(PiecesAPIError, match="only available for LLMs"):
        await pieces_client.delete_model_cache(model_id(pieces_emulator, NON_LLM))


# -- model ids stay one path segment ------------------------------------------------


@pytest.mark.parametrize(
    "hostile_id",
    [
        "a/b",
        ".",
        "..",
        "../models",
        "a?b=c",
        "a#b",
        "a b",
        "ünï€ode",
        "%2F",
        "x/../../models/unload",
    ],
)
async def test_model_ids_reach_only_their_own_endpoint(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator, hostile_id: str
) -> None:
    calls = [
        pieces_client.get_model,
        pieces_client.unload_model,
        pieces_client.delete_model,
        pieces_client.load_model,
    ]
    for call in calls:
        with pytest.raises(PiecesAPIError) as info:
            await call(hostile_id)  # type: ignore[operator]
        # The server routed it to this endpoint and decoded the id back, unchanged.
        assert f"model {hostile_id!r} was not found." == info.value.body
    routes = [
        (method, path.split("/")[1], path.count("/")) for method, path in pieces_emulator.requests
    ]
    assert routes == [
        ("GET", "model", 2),
        ("POST", "model", 3),
        ("POST", "models", 3),
        ("POST", "model", 3),
    ]
    assert [path.rsplit("/", 1)[-1] for _, path in list(pieces_emulator.requests)[1:]] == [
        "unload",
        "delete",
        "load",
    ]


async def test_empty_model_id_is_refused_before_any_io(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with pytest.raises(ValueError, match="empty"):
        await pieces_client.get_model("")
    with pytest.raises(ValueError, match="empty"):
        pieces_client.download_progress("")
    assert not pieces_emulator.requests


async def test_ids_round_trip_through_an_independent_server(serve_app: ServeApp) -> None:
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.match_info["model"])
        return web.json_response({"model": {"id": request.match_info["model"]}})

    app = web.Application()
    app.router.add_post("/models/{model}/delete/cache", echo)
    async with AsyncPiecesClient(await serve_app(app)) as client:
        for hostile in ["../../x", "a/b", "..", "?#"]:
            assert (await client.delete_model_cache(hostile)).model.id == hostile
    assert seen == ["../../x", "a/b", "..", "?#"]


# -- lifecycle ------------------------------------------------------------------------


async def test_calls_outside_async_with_raise_a_library_error(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    client = AsyncPiecesClient(pieces_emulator.url)
    with pytest.raises(PiecesClientStateError, match="async with"):
        await client.list_models()
    async with client:
        await client.list_models()
    with pytest.raises(PiecesClientStateError, match="closed"):
        await client.list_models()
    with pytest.raises(PiecesClientStateError, match="closed"):
        async with client:
            pass


async def test_a_given_session_is_used_and_never_closed(pieces_emulator: PiecesOSEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with AsyncPiecesClient(pieces_emulator.url, session=session) as client:
            await client.list_models()
        assert not session.closed
        async with session.get(pieces_emulator.url + "/models") as resp:
            assert resp.status == 200


async def test_with_options_changes_only_what_it_is_given(serve_app: ServeApp) -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b" " * 5000 + b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_get("/models", big)
    parent = AsyncPiecesClient(
        await serve_app(app), timeout=Timeout(connect=3, read=7), max_response_bytes=1000
    )
    async with parent:
        quick = parent.with_options(retry=None)
        assert quick.timeout == parent.timeout == Timeout(connect=3, read=7)
        assert quick.retry.attempts == 1 and parent.retry.attempts == 3
        with pytest.raises(PiecesDecodeError, match="exceeds 1000"):
            await quick.list_models()  # the parent's size limit holds in the view
        roomy = quick.with_options(max_response_bytes=10_000, timeout=9)
        assert (await roomy.list_models()).iterable == []
        assert roomy.retry.attempts == 1 and roomy.timeout == Timeout.coerce(9)
    with pytest.raises(PiecesClientStateError, match="closed"):
        await quick.list_models()  # one client: closing the parent closed the views


async def test_closing_a_view_closes_the_client(pieces_emulator: PiecesOSEmulator) -> None:
    parent = AsyncPiecesClient(pieces_emulator.url)
    async with parent.with_options(timeout=5) as view:
        assert (await parent.list_models()).iterable  # one session, opened by the view
    assert view.state is parent.state is ClientState.CLOSED


def test_timeout_config() -> None:
    assert Timeout.coerce(2.5) == Timeout(connect=2.5, read=2.5, pool=2.5)
    assert Timeout.coerce(None) == Timeout(connect=None, read=None, pool=None)
    with pytest.raises(ValueError, match="positive"):
        Timeout(read=0)


# -- transport errors -----------------------------------------------------------------


async def test_connection_refused_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with AsyncPiecesClient(url) as client:
        with pytest.raises(PiecesConnectionError) as info:
            await client.list_models()
    assert url in str(info.value) and "Is PiecesOS running?" in str(info.value)


async def test_read_timeout(serve_app: ServeApp) -> None:
    release = anyio.Event()

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"iterable": []})

    app = web.Application()
    app.router.add_get("/models", stall)
    async with AsyncPiecesClient(await serve_app(app), timeout=Timeout(read=0.2)) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesTimeoutError, match="read timeout"):
            await client.list_models()
    release.set()


async def test_api_error_keeps_the_body_and_says_one_short_line(serve_app: ServeApp) -> None:
    async def boom(request: web.Request) -> web.Response:
        return web.Response(status=500, text="x" * 10_000, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/models", boom)
    async with AsyncPiecesClient(await serve_app(app)) as client:
        with pytest.raises(PiecesAPIError) as info:
            await client.list_models()
    assert info.value.status == 500 and info.value.body == "x" * 10_000
    message = str(info.value)
    assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"iterable": [{"id": 1}]}', "$.iterable[0].id"),
        (b'{"iterable": [', "truncated"),
        (b"", "truncated"),
        (b"null", "Expected `object`"),
    ],
)
async def test_bad_bodies_are_decode_errors(serve_app: ServeApp, body: bytes, where: str) -> None:
    async def bad(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/models", bad)
    url = await serve_app(app)
    async with AsyncPiecesClient(url) as client:
        with pytest.raises(PiecesDecodeError, match=where.replace("[", r"\[").replace("$", r"\$")):
            await client.list_models()
        with pytest.raises(PiecesDecodeError) as info:
            await client.list_models()
    assert str(info.value).startswith(f"GET {url}/models: ")
    assert str(info.value).endswith(f"; payload starts {body.decode()!r}")
    assert (info.value.method, info.value.url, info.value.preview) == (
        "GET",
        f"{url}/models",
        body.decode(),
    )


# -- base URL resolution -----------------------------------------------------------


async def test_base_url_from_the_environment(
    pieces_emulator: PiecesOSEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIECES_OS_URL", pieces_emulator.url + "/")
    async with AsyncPiecesClient() as client:
        assert client.base_url == pieces_emulator.url
        await client.list_models()


async def test_discovery_finds_the_lowest_port_answering_health(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    from aiopieces import discover_pieces_os

    port = int(pieces_emulator.url.rsplit(":", 1)[1])
    empty = free_port()
    assert await discover_pieces_os([empty, port]) == pieces_emulator.url
    assert await discover_pieces_os([empty]) is None


async def test_without_anything_the_seeds_default_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiopieces import _config

    monkeypatch.delenv("PIECES_OS_URL", raising=False)
    monkeypatch.setattr(_config, "DISCOVERY_PORTS", [free_port()])
    assert await _config.resolve_base_url(None) == "http://localhost:1000"


async def test_a_url_without_scheme_is_refused_before_any_io() -> None:
    with pytest.raises(ValueError, match="http://"):
        async with AsyncPiecesClient("localhost:39300"):
            pass


async def test_a_body_that_cannot_be_encoded_is_a_type_error(
    pieces_client: AsyncPiecesClient,
) -> None:
    bad = seeded()
    bad.description = object()  # type: ignore[assignment]
    with pytest.raises(TypeError, match="cannot send SeededModel as JSON"):
        await pieces_client.create_model(bad)


async def test_emulator_latency_meets_the_read_timeout() -> None:
    async with (
        PiecesOSEmulator(latency=30) as emulator,
        AsyncPiecesClient(emulator.url, timeout=Timeout(read=0.1), retry=None) as client,
    ):
        with pytest.raises(PiecesTimeoutError, match="read timeout"):
            await client.list_models()


async def test_opening_twice_at_once_makes_one_session(pieces_emulator: PiecesOSEmulator) -> None:
    client = AsyncPiecesClient(pieces_emulator.url)
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.open)
        tg.start_soon(client.open)
    session = client._conn.session
    async with client:
        assert client._conn.session is session
        await client.list_models()


async def test_unload_models_error_path(serve_app: ServeApp) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=500, text="a model is busy", content_type="text/plain")

    app = web.Application()
    app.router.add_post("/models/unload", refuse)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with pytest.raises(PiecesAPIError, match="a model is busy") as info:
            await client.unload_models()
    assert info.value.status == 500 and info.value.method == "POST"


# -- update_model: what it says when the model it read back is not one -------------------


@pytest.mark.parametrize(
    ("served", "error"),
    [
        (b"[1]", "Expected `object`, got `array`"),  # not even a JSON object
        (b'{"id": 5}', "Expected `str`, got `int` - at `$.id`"),  # an object, not a Model
    ],
)
async def test_update_model_names_the_get_whose_answer_it_could_not_decode(
    serve_app: ServeApp, served: bytes, error: str
) -> None:
    seen: list[tuple[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path))
        return web.Response(body=served, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None) as client:
        with anyio.fail_after(BOUND), pytest.raises(PiecesDecodeError) as info:
            await client.update_model(Model(id="x/y"))
    assert seen == [("GET", "/model/x%2Fy")]  # nothing was posted
    assert str(info.value) == f"GET /model/x%2Fy: {error}; payload starts {served.decode()!r}"
    assert (info.value.method, info.value.url) == ("GET", f"{url}/model/x%2Fy")
    assert info.value.preview == served.decode()


async def test_increment_score_names_the_type_it_refuses(pieces_client: AsyncPiecesClient) -> None:
    with pytest.raises(TypeError) as info:
        await pieces_client.increment_model_score("m", {"model": {"reuse": True}})  # type: ignore[arg-type]
    assert str(info.value) == "increment must be a SeededScoreIncrement, not dict"


# -- live_models: how long it waits for the first batch ----------------------------------


def identifiers_app(*, first_batch: bool) -> web.Application:
    """An identifier socket that sends one model's id (or nothing), then only answers pings."""

    async def identifiers(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if first_batch:
            await ws.send_str('{"iterable":[{"model":{"id":"m1"}}]}')
        async for _ in ws:
            pass
        return ws

    async def model(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["model"], "name": "One"})

    app = web.Application()
    app.router.add_get("/models/stream/identifiers", identifiers)
    app.router.add_get("/model/{model}", model)
    return app


@pytest.mark.parametrize(
    "timeout", [Timeout(connect=None, read=5), Timeout(connect=5, read=None), Timeout.coerce(None)]
)
async def test_live_models_without_a_connect_or_read_bound_waits_unbounded(
    serve_app: ServeApp, timeout: Timeout
) -> None:
    url = await serve_app(identifiers_app(first_batch=True))
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url, timeout=timeout) as c, c.live_models() as live:
            assert list(live.models) == ["m1"] and live.models["m1"].name == "One"


async def test_live_models_waits_connect_plus_read_for_the_first_batch(
    serve_app: ServeApp,
) -> None:
    url = await serve_app(identifiers_app(first_batch=False))
    with anyio.fail_after(BOUND):
        async with AsyncPiecesClient(url, timeout=Timeout(connect=0.125, read=0.0625)) as c:
            with pytest.raises(PiecesTimeoutError) as info:
                async with c.live_models():
                    pass
    assert str(info.value) == "no model identifiers within 0.1875 s of connecting"
    assert info.value.phase == "read" and info.value.method == "GET"
    assert info.value.url == f"{url}/models/stream/identifiers"


async def test_a_view_keeps_the_retry_policy_it_is_not_given(serve_app: ServeApp) -> None:
    hits = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        if hits == 1:
            return web.Response(status=503, text="restarting", content_type="text/plain")
        return web.json_response({"iterable": []})

    app = web.Application()
    app.router.add_get("/models", flaky)
    async with AsyncPiecesClient(await serve_app(app), retry=FAST_RETRY) as parent:
        view = parent.with_options(timeout=9)
        assert view.retry == FAST_RETRY and view.timeout == Timeout.coerce(9)
        with anyio.fail_after(BOUND):
            assert (await view.list_models()).iterable == []
    assert hits == 2  # the view retried the 503, as its parent would


async def test_closing_the_client_ends_a_wait_to_retry(
    serve_app: ServeApp, caplog: pytest.LogCaptureFixture
) -> None:
    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy", headers={"Retry-After": "10"})

    app = web.Application()
    app.router.add_get("/models", busy)
    waiting = anyio.Event()

    class Retrying(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("retrying GET /models in 10.00 s"):
                waiting.set()

    handler = Retrying()
    logging.getLogger("aiopieces").addHandler(handler)
    caplog.set_level(logging.DEBUG, logger="aiopieces")
    errors: list[BaseException] = []
    try:
        async with AsyncPiecesClient(await serve_app(app), retry=FAST_RETRY) as client:

            async def call() -> None:
                try:
                    await client.list_models()
                except PiecesClientStateError as exc:
                    errors.append(exc)

            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await waiting.wait()  # it got its 503 and waits 10 s to try again
                    await client.aclose()
    finally:
        logging.getLogger("aiopieces").removeHandler(handler)
    assert [str(e) for e in errors] == ["the client was closed while waiting to retry"]


# -- what a misused client says -------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_connections": 0}, "max_connections must be at least 1"),
        ({"max_response_bytes": 0}, "max_response_bytes must be at least 1"),
    ],
)
def test_limits_below_one_are_refused(options: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as info:
        AsyncPiecesClient("http://127.0.0.1:1", **options)  # type: ignore[arg-type]
    assert str(info.value) == message
    with pytest.raises(ValueError) as info:
        AsyncPiecesClient("http://127.0.0.1:1").with_options(max_response_bytes=0)
    assert str(info.value) == "max_response_bytes must be at least 1"


async def test_limits_of_one_are_enough(serve_app: ServeApp) -> None:
    async def two(request: web.Request) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application()
    app.router.add_get("/models", two)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, max_connections=1, max_response_bytes=2) as client:
        with anyio.fail_after(BOUND):
            assert (await client.list_models()).iterable == []
            with pytest.raises(PiecesDecodeError) as info:
                await client.with_options(max_response_bytes=1).list_models()
    assert str(info.value) == f"GET {url}/models: body of 2 bytes exceeds 1"


async def test_every_misuse_of_the_lifecycle_says_what_to_do(serve_app: ServeApp) -> None:
    async def empty(request: web.Request) -> web.Response:
        return web.json_response({"iterable": []})

    app = web.Application()
    app.router.add_get("/models", empty)
    url = await serve_app(app)
    with pytest.raises(PiecesClientStateError) as info:
        AsyncPiecesClient().base_url  # noqa: B018
    assert str(info.value) == "the base URL is resolved when the client opens"
    client = AsyncPiecesClient(url)
    with pytest.raises(PiecesClientStateError) as info:
        await client.list_models()
    assert str(info.value) == (
        "the client is not open: use `async with AsyncPiecesClient() as client:`"
    )
    assert client.state.value == "new"
    async with client:
        assert client.state.value == "open" and client.base_url == url
        assert (await client.list_models()).iterable == []
    assert client.state is ClientState.CLOSED
    for misuse in (client.list_models, client.open):
        with pytest.raises(PiecesClientStateError) as info:
            await misuse()
        assert str(info.value) == "this client is closed; create a new one"


async def test_a_given_session_closed_by_its_owner_is_named(serve_app: ServeApp) -> None:
    arrived, release = anyio.Event(), anyio.Event()

    async def stall(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"iterable": []})

    app = web.Application()
    app.router.add_get("/models", stall)
    url = await serve_app(app)
    session = aiohttp.ClientSession()
    errors: list[BaseException] = []
    try:
        async with AsyncPiecesClient(url, session=session, retry=None) as client:

            async def call() -> None:
                try:
                    await client.list_models()
                except PiecesClientStateError as exc:
                    errors.append(exc)

            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await arrived.wait()
                    await session.close()  # by its owner, under the call
            with pytest.raises(PiecesClientStateError) as info:
                await client.list_models()
    finally:
        release.set()
        await session.close()
    assert [str(e) for e in errors] == [
        f"the aiohttp session was closed while GET {url}/models was in flight"
    ]
    assert str(info.value) == "the aiohttp session given to this client is closed"


async def test_closing_the_client_under_a_call_is_named(serve_app: ServeApp) -> None:
    arrived, release = anyio.Event(), anyio.Event()

    async def stall(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/model/{model}/load", stall)
    url = await serve_app(app)
    errors: list[BaseException] = []
    try:
        async with AsyncPiecesClient(url, retry=None) as client:

            async def call() -> None:
                try:
                    await client.load_model("a/b")
                except PiecesClientStateError as exc:
                    errors.append(exc)

            with anyio.fail_after(BOUND):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await arrived.wait()
                    await client.aclose()
    finally:
        release.set()
    assert [str(e) for e in errors] == [
        f"the client was closed while POST {url}/model/a%2Fb/load was in flight"
    ]


def test_outside_an_asyncio_loop_the_client_says_so() -> None:
    client = AsyncPiecesClient("http://127.0.0.1:1")
    opening = client.open()
    with pytest.raises(PiecesClientStateError) as info:
        opening.send(None)  # as a synchronous caller (or trio) would drive it
    assert str(info.value) == (
        "aiopieces runs on asyncio (it is built on aiohttp): call it from an asyncio "
        "event loop, not from trio or from synchronous code"
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert client.state is ClientState.NEW


# -- what goes on the wire, and what comes back as text ------------------------------------


async def test_headers_say_who_we_are_and_json_only_with_a_body(serve_app: ServeApp) -> None:
    sent: list[tuple[str, str, str | None, str | None, str | None, bytes]] = []

    async def record(request: web.Request) -> web.Response:
        h = request.headers
        body = await request.read()
        sent.append(
            (
                request.method,
                request.raw_path,
                h.get("Accept"),
                h.get("User-Agent"),
                h.get("Content-Type"),
                body,
            )
        )
        return web.json_response({"model": {"id": "m"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with AsyncPiecesClient(await serve_app(app), retry=None) as client:
        with anyio.fail_after(BOUND):
            await client.delete_model_cache("m")
            await client.delete_model_cache("m", ModelDeleteCacheInput())
            await client.unload_models()
    accept, agent = "application/json, text/plain", f"aiopieces/{aiopieces.__version__}"
    assert [(m, p, a, u, b) for m, p, a, u, _, b in sent] == [
        ("POST", "/models/m/delete/cache", accept, agent, b""),
        ("POST", "/models/m/delete/cache", accept, agent, b"{}"),
        ("POST", "/models/unload", accept, agent, b""),
    ]
    # JSON is declared only for a JSON body (aiohttp may name a type for none at all).
    assert [t == "application/json" for *_, t, _ in sent] == [False, True, False]


async def test_runtime_text_with_invalid_utf8_is_replaced_not_refused(serve_app: ServeApp) -> None:
    async def health(request: web.Request) -> web.Response:
        return web.Response(body=b"ok \xff", content_type="text/plain")

    async def version(request: web.Request) -> web.Response:
        return web.Response(body=b" 10.\xfe1 \n", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/.well-known/health", health)
    app.router.add_get("/.well-known/version", version)
    async with AsyncPiecesClient(await serve_app(app)) as client:
        with anyio.fail_after(BOUND):
            assert await client.health() == "ok \ufffd"
            assert await client.version() == "10.\ufffd1"


# -- which timeout applies where -----------------------------------------------------------


def stalling_app(path: str, release: anyio.Event) -> web.Application:
    """An app whose `path` takes the request and never answers until `release`."""

    async def stall(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get(path, stall)
    return app


async def test_a_view_s_read_timeout_applies_though_the_session_has_none(
    serve_app: ServeApp,
) -> None:
    release = anyio.Event()
    url = await serve_app(stalling_app("/models", release))
    try:
        async with AsyncPiecesClient(url, timeout=None, retry=None) as client:
            quick = client.with_options(timeout=Timeout(read=0.125))
            with anyio.fail_after(BOUND), pytest.raises(PiecesTimeoutError) as info:
                await quick.list_models()
    finally:
        release.set()
    assert str(info.value) == f"GET {url}/models: no data for 0.125 s (read timeout)"
    assert info.value.phase == "read"


async def test_a_websocket_handshake_gets_the_client_s_read_timeout(serve_app: ServeApp) -> None:
    release = anyio.Event()
    url = await serve_app(stalling_app("/models/stream/identifiers", release))
    timeout = Timeout(connect=0.25, read=0.125)
    try:
        async with AsyncPiecesClient(url, timeout=timeout, retry=None) as client:
            with anyio.fail_after(BOUND), pytest.raises(PiecesTimeoutError) as info:
                async with client.watch_models():
                    pass
    finally:
        release.set()
    assert info.value.phase == "read"
    assert str(info.value) == (
        f"GET {url}/models/stream/identifiers: no data for 0.125 s (read timeout)"
    )


async def test_closing_the_client_ends_its_streams_with_one_reason(serve_app: ServeApp) -> None:
    url = await serve_app(identifiers_app(first_batch=True))
    errors: list[BaseException] = []
    async with AsyncPiecesClient(url) as client:
        reading = anyio.Event()

        async def consume() -> None:
            try:
                async for _ in client.watch_models():
                    reading.set()
            except PiecesClientStateError as exc:
                errors.append(exc)

        with anyio.fail_after(BOUND):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await reading.wait()
                await client.aclose()
    assert [str(e) for e in errors] == ["the client was closed"]


async def test_a_stream_started_while_the_client_closes_is_refused(serve_app: ServeApp) -> None:
    closing, release = anyio.Event(), anyio.Event()

    async def identifiers(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoclose=False)
        await ws.prepare(request)
        await ws.send_str('{"iterable":[]}')
        while (await ws.receive()).type is not aiohttp.WSMsgType.CLOSE:
            pass
        closing.set()  # the client is closing, waiting for our side of the handshake
        await release.wait()
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/models/stream/identifiers", identifiers)
    url = await serve_app(app)
    async with AsyncPiecesClient(url, retry=None) as client:
        stream = client.watch_models()
        with anyio.fail_after(BOUND):
            async with stream as batches, anyio.create_task_group() as tg:
                await anext(batches)
                tg.start_soon(client.aclose)
                await closing.wait()
                assert client.state is ClientState.CLOSING
                try:
                    with pytest.raises(PiecesClientStateError) as info:
                        async with client.watch_models():
                            pass
                finally:
                    release.set()
    assert str(info.value) == "this client is closed; create a new one"
