"""Emulator regressions (issue 9) and its two shapes, over real sockets.

Each test is bounded by `anyio.fail_after`; none sleeps in place of an event: downloads
are held at a percentage and released, and tests wait for the events they expect.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator

import aiohttp
import anyio
import msgspec
import pytest

from aiopieces import AsyncPiecesClient, ModelDownloadProgress, ModelNotFoundError
from aiopieces import ModelDownloadProgressStatusEnum as Status
from aiopieces.testing import DEFAULT_VERSION, PIECES_OS_PORTS, PiecesOSEmulator
from aiopieces.testing._catalog import MODEL_KEY_ORDER

from .helpers import BOUND, LOCAL_DOWNLOADED, LOCAL_NOT_DOWNLOADED, free_port, model_id, seeded


async def until(events: AsyncIterator[ModelDownloadProgress], percentage: float) -> None:
    """Read events until one reports `percentage`."""
    async for event in events:
        if event.percentage == percentage:
            return
    raise AssertionError(f"the stream ended before {percentage}%")


async def test_an_update_during_a_download_keeps_the_download_s_end_state(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    # Was: the update replaced the stored JSON, the download wrote its end into the old
    # one, and the model stayed `downloading: true, downloaded: false` for ever.
    with anyio.fail_after(BOUND):
        custom = await pieces_client.create_model(seeded(name="updated-while-downloading"))
        pieces_emulator.hold_downloads(at_percentage=30)
        async with pieces_client.download_progress(custom.id) as events:
            await pieces_client.download_model(custom.id)
            await until(events, 30)
            model = await pieces_client.get_model(custom.id)
            model.description = "changed mid-download"
            await pieces_client.update_model(model)
            pieces_emulator.release_downloads()
            statuses = [event.status async for event in events]
        assert statuses[-1] == Status.COMPLETED
        after = await pieces_client.get_model(custom.id)
        assert after.downloaded and not after.downloading
        assert after.description == "changed mid-download"
        assert pieces_emulator.running_downloads() == []


async def test_a_cancel_racing_a_new_download_leaves_nothing_uncancellable(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    # Was: the cancelled task's cleanup removed the new download's entry, so the new
    # download ran on where no cancel could reach it, and subscribers saw CANCELED
    # followed by more progress.
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    frames: list[dict[str, object]] = []

    async def collect(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            frames.append(msgspec.json.decode(msg.data))
            if frames[-1]["status"] == "COMPLETED":
                return

    with anyio.fail_after(BOUND):
        pieces_emulator.hold_downloads(at_percentage=30)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"{pieces_emulator.url}/model/{target}/download/progress") as ws,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(collect, ws)
            await pieces_emulator.wait_for_subscribers(target, 1)
            for _ in range(5):
                await pieces_client.download_model(target)
                # Both requests reach the server in one turn of its event loop.
                await asyncio.gather(
                    pieces_client.cancel_download(target), pieces_client.download_model(target)
                )
                assert len(pieces_emulator.running_downloads()) <= 1
                running = bool(pieces_emulator.running_downloads())
                assert pieces_emulator.model(target).downloading is running
                canceled = await pieces_client.cancel_download(target)
                assert not canceled.downloading and not canceled.downloaded
                assert pieces_emulator.running_downloads() == []
            pieces_emulator.release_downloads()
            await pieces_client.download_model(target)  # ends the collector at COMPLETED
    statuses = [frame["status"] for frame in frames]
    assert statuses[0] == "UNKNOWN" and statuses[-1] == "COMPLETED"
    for before, after in itertools.pairwise(statuses):
        if before == "CANCELED":
            assert after == "INITIALIZED", statuses  # only a new download follows a cancel


async def _download_then(
    client: AsyncPiecesClient, emulator: PiecesOSEmulator, target: str, delete: bool
) -> list[ModelDownloadProgress]:
    """Hold a download of `target` at 30 %, delete the model or its cache, and return the
    events that follow."""
    emulator.hold_downloads(at_percentage=30)
    async with client.download_progress(target) as events:
        await client.download_model(target)
        await until(events, 30)
        if delete:
            await client.delete_model(target)
        else:
            await client.delete_model_cache(target)
        after = [event async for event in events]
    emulator.release_downloads()
    return after


async def test_deleting_a_model_cache_cancels_its_download(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    with anyio.fail_after(BOUND):
        after = await _download_then(pieces_client, pieces_emulator, target, delete=False)
        assert [event.status for event in after] == [Status.CANCELED]
        assert pieces_emulator.running_downloads() == []
        model = await pieces_client.get_model(target)
        assert not model.downloading and not model.downloaded


async def test_deleting_a_model_cancels_its_download(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(BOUND):
        custom = await pieces_client.create_model(seeded(name="deleted-while-downloading"))
        after = await _download_then(pieces_client, pieces_emulator, custom.id, delete=True)
        assert [event.status for event in after] == [Status.CANCELED]
        assert pieces_emulator.running_downloads() == []
        with pytest.raises(ModelNotFoundError):
            await pieces_client.get_model(custom.id)


@pytest.mark.parametrize(
    "path",
    [
        "/models/create",
        "/model/update",
        "/models/{model}/delete/cache",
        "/model/{model}/scores/increment",
    ],
)
@pytest.mark.parametrize(
    "body", [b'{"name":"\xff"}', b'{"id":"\xc3"}', b'{"schema":"\xed\xa0\x80"}']
)
async def test_a_body_that_is_not_utf8_is_a_400_not_a_crash(
    pieces_emulator: PiecesOSEmulator, path: str, body: bytes
) -> None:
    # Was: msgspec raised UnicodeDecodeError, which escaped as a 500 with a traceback.
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    with anyio.fail_after(BOUND):
        async with (
            aiohttp.ClientSession() as http,
            http.post(pieces_emulator.url + path.format(model=target), data=body) as resp,
        ):
            text = await resp.text()
            assert resp.status == 400 and resp.content_type == "text/plain"
    assert text.startswith("invalid request body: not UTF-8") and "\n" not in text


async def test_every_bad_body_answer_is_one_line(pieces_emulator: PiecesOSEmulator) -> None:
    with anyio.fail_after(BOUND):
        async with aiohttp.ClientSession() as http:
            for body in [b"{not json", b'{"name": 1}', b"", b"[]", b'{"id": 1}', b"\xff"]:
                async with http.post(pieces_emulator.url + "/model/update", data=body) as resp:
                    text = await resp.text()
                    assert resp.status == 400 and resp.content_type == "text/plain"
                    assert text.startswith("invalid request body") and "\n" not in text


# -- the two shapes --------------------------------------------------------------------


def key_order(keys: list[str]) -> list[str]:
    """The known keys of a model, in PiecesOS's order."""
    return sorted((k for k in keys if k in MODEL_KEY_ORDER), key=MODEL_KEY_ORDER.index)


async def test_state_changes_keep_the_pieces_shape(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    stored = pieces_emulator.models[target]
    assert "downloaded" not in stored and "cloud" not in stored
    with anyio.fail_after(BOUND):
        statuses = [event.status async for event in pieces_client.download(target)]
        assert statuses[-1] == Status.COMPLETED
        # Once downloaded, PiecesOS says so, in its place among the keys.
        assert stored["downloaded"] is True
        assert list(stored) == key_order(list(stored))
        await pieces_client.load_model(target)
        await pieces_client.unload_models()
        assert stored["loaded"] is False and list(stored) == key_order(list(stored))
        await pieces_client.delete_model_cache(target)
        assert "downloaded" not in stored  # false again: left out again
        created = pieces_emulator.models[(await pieces_client.create_model(seeded())).id]
    assert "cloud" not in created and created["custom"] is True
    assert list(created) == key_order(list(created))
    assert {"schema", "cpu", "loaded", "downloading"} <= set(created)


async def test_state_changes_keep_the_schema_shape() -> None:
    async with (
        PiecesOSEmulator(shape="schema") as emulator,
        AsyncPiecesClient(emulator.url) as client,
    ):
        target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
        with anyio.fail_after(BOUND):
            emulator.hold_downloads(at_percentage=30)
            await client.download_model(target)
            await client.cancel_download(target)
            emulator.release_downloads()
            assert emulator.models[target]["downloaded"] is False
            assert emulator.models[target]["cloud"] is False
            created = emulator.models[(await client.create_model(seeded())).id]
        assert created["cloud"] is False and created["downloaded"] is False


def test_an_unknown_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        PiecesOSEmulator(shape="openapi")  # type: ignore[arg-type]


async def test_the_standalone_emulator_takes_a_shape() -> None:
    """`python -m aiopieces.testing --shape schema`, as a developer would start it."""
    for shape in ["schema", "pieces"]:
        port = free_port()
        command = [sys.executable, "-m", "aiopieces.testing", "--port", str(port)]
        command += ["--shape", shape, "--version-text", f"9.9.9-{shape}"]
        async with await anyio.open_process(command) as process:
            try:
                assert process.stdout is not None
                with anyio.fail_after(BOUND):
                    banner = (await process.stdout.receive()).decode()
                assert f"127.0.0.1:{port}" in banner and f"({shape} shape)" in banner
                async with AsyncPiecesClient(f"http://127.0.0.1:{port}") as client:
                    models = (await client.list_models()).iterable
                assert any(m.cloud for m in models)
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{port}/.well-known/version") as resp,
                ):
                    assert await resp.text() == f"9.9.9-{shape}"
            finally:
                process.terminate()
                await process.wait()


# -- issue 10: score increments, the identifier socket, version, restart ----------------

IDENTIFIERS = "/models/stream/identifiers"
Batch = list[tuple[str, bool]]


def batch(frame: str) -> Batch:
    """A `StreamedIdentifiers` frame as (model id, deleted) pairs."""
    items = msgspec.json.decode(frame)["iterable"]
    assert all(set(item) <= {"model", "deleted"} and set(item["model"]) == {"id"} for item in items)
    return [(item["model"]["id"], item.get("deleted", False)) for item in items]


async def next_batch(ws: aiohttp.ClientWebSocketResponse) -> Batch:
    """The next identifier frame of `ws`."""
    msg = await ws.receive()
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return batch(msg.data)


async def post(
    http: aiohttp.ClientSession, url: str, body: object = None, status: int = 200
) -> bytes:
    """POST `body` (JSON, or raw bytes) to `url`; the answer must have `status`."""
    data = body if body is None or isinstance(body, bytes) else msgspec.json.encode(body)
    async with http.post(url, data=data) as resp:
        content = await resp.read()
        assert resp.status == status, content
        return content


async def test_the_first_identifier_frame_lists_every_model_in_catalog_order(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    with anyio.fail_after(BOUND):
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(pieces_emulator.url + IDENTIFIERS) as ws,
        ):
            msg = await ws.receive()
    assert msgspec.json.decode(msg.data) == {
        "iterable": [{"model": {"id": model_id}} for model_id in pieces_emulator.models]
    }


async def test_every_change_sends_one_identifier_batch_to_every_subscriber(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    """Each change, in order, to two subscribers; a change that changes nothing sends
    nothing (the batch after it is the next change's)."""
    emulator, url = pieces_emulator, pieces_emulator.url
    target = model_id(emulator, LOCAL_NOT_DOWNLOADED)
    downloaded = model_id(emulator, LOCAL_DOWNLOADED)
    with anyio.fail_after(BOUND):
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url + IDENTIFIERS) as first,
            http.ws_connect(url + IDENTIFIERS) as second,
        ):
            await emulator.wait_for_identifier_subscribers(2)
            assert emulator.identifier_subscriber_count() == 2
            sockets = [first, second]
            for ws in sockets:
                assert len(await next_batch(ws)) == len(emulator.models)

            async def expect(expected: Batch) -> None:
                for ws in sockets:
                    assert await next_batch(ws) == expected

            seed = msgspec.to_builtins(seeded(name="watched"))
            created = msgspec.json.decode(await post(http, url + "/models/create", seed))["id"]
            await expect([(created, False)])
            await post(http, url + "/models/create", seed)  # a duplicate: nothing new
            await post(http, url + "/model/update", {**emulator.models[created], "unique": "u"})
            await expect([(created, False)])

            emulator.hold_downloads(at_percentage=30)
            await post(http, f"{url}/model/{target}/download")
            await expect([(target, False)])  # downloading: true
            await post(http, f"{url}/model/{target}/download")  # already running: nothing
            await post(http, f"{url}/model/{target}/download/cancel")
            await expect([(target, False)])
            emulator.release_downloads()
            emulator.fail_download(target, at_percentage=50)
            await post(http, f"{url}/model/{target}/download")
            await expect([(target, False)])  # started
            await expect([(target, False)])  # failed
            await post(http, f"{url}/model/{target}/download")
            await expect([(target, False)])  # started
            await expect([(target, False)])  # completed
            assert emulator.model(target).downloaded

            await post(http, f"{url}/model/{target}/load")
            await expect([(target, False)])
            await post(http, f"{url}/model/{target}/unload")
            await expect([(target, False)])
            await post(http, f"{url}/model/{target}/load")
            await expect([(target, False)])
            await post(http, f"{url}/model/{downloaded}/load")
            await expect([(downloaded, False)])
            loaded = [i for i, m in emulator.models.items() if m.get("loaded")]
            assert {target, downloaded} < set(loaded)  # and the loaded internal models
            await post(http, url + "/models/unload", status=204)
            await expect([(i, False) for i in loaded])  # one batch for them all
            await post(http, url + "/models/unload", status=204)  # none loaded: nothing

            await post(http, f"{url}/models/{target}/delete/cache", {})
            await expect([(target, False)])
            await post(http, f"{url}/model/{target}/scores/increment", {"model": {}}, 204)
            await post(http, f"{url}/model/{target}/scores/increment", b"", 204)
            await post(
                http, f"{url}/model/{target}/scores/increment", {"model": {"reuse": True}}, 204
            )
            await expect([(target, False)])

            # A delete during a download: only the delete, not the cancel it implies.
            emulator.hold_downloads(at_percentage=30)
            await post(http, f"{url}/model/{created}/download")
            await expect([(created, False)])
            await post(http, f"{url}/models/{created}/delete", status=204)
            await expect([(created, True)])
            emulator.release_downloads()
            assert emulator.running_downloads() == []

            added = emulator.add_model({"id": "added-by-a-test", "name": "added"})
            await expect([(added, False)])
        await emulator.wait_for_identifier_subscribers(0)


async def test_identifier_sockets_close_when_the_emulator_stops() -> None:
    with anyio.fail_after(BOUND):
        emulator = PiecesOSEmulator()
        await emulator.start()
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(emulator.url + IDENTIFIERS) as ws,
        ):
            assert len(await next_batch(ws)) == len(emulator.models)
            await emulator.stop()
            msg = await ws.receive()
            assert msg.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
        assert emulator.identifier_subscriber_count() == 0


async def test_a_score_increment_counts_in_the_model_s_score(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    path = f"{pieces_emulator.url}/model/{target}/scores/increment"
    assert "score" not in pieces_emulator.models[target]
    with anyio.fail_after(BOUND):
        async with aiohttp.ClientSession() as http:
            for body in [
                {"model": {"reuse": True}},
                {"model": {"reuse": True, "reference": False}, "asset": {"reuse": True}},
                {"model": {"reference": True, "searched": True, "schema": None}, "schema": None},
                {"model": {"priority": None, "update": True}, "conversations": 7},
            ]:
                assert await post(http, path, body, status=204) == b""
            async with http.get(f"{pieces_emulator.url}/model/{target}") as resp:
                sent = msgspec.json.decode(await resp.read())
    expected = {"manual": 0, "automatic": 0, "reuse": 2, "reference": 1, "searched": 1, "update": 1}
    assert sent["score"] == expected
    score = pieces_emulator.model(target).score
    assert score is not None and score.reuse == 2 and score.priority is None
    assert list(sent) == key_order(list(sent))  # `score` in its place (pieces shape)


async def test_a_score_increment_keeps_what_the_score_had() -> None:
    catalog = [
        {"id": "scored", "name": "scored", "score": {"manual": 3, "automatic": 4, "reuse": 5}}
    ]
    async with PiecesOSEmulator(catalog) as emulator, aiohttp.ClientSession() as http:
        with anyio.fail_after(BOUND):
            body = {"model": {"reuse": True, "priority": True}}
            await post(http, f"{emulator.url}/model/scored/scores/increment", body, 204)
    expected = {"manual": 3, "automatic": 4, "reuse": 6, "priority": 1}
    assert emulator.models["scored"]["score"] == expected


async def test_score_increment_errors_are_text(pieces_emulator: PiecesOSEmulator) -> None:
    url = pieces_emulator.url
    target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    with anyio.fail_after(BOUND):
        async with aiohttp.ClientSession() as http:
            for body in [
                b"{not json",
                b"[]",
                b"null",
                b'{"model": 1}',
                b'{"model": {"reuse": "yes"}}',
                b'{"schema": 3}',
                b"\xff",
                b'{"model": {"reuse": true}, "x": "\xc3"}',
            ]:
                async with http.post(f"{url}/model/{target}/scores/increment", data=body) as resp:
                    text = await resp.text()
                    assert resp.status == 400 and resp.content_type == "text/plain", body
                    assert text.startswith("invalid request body") and "\n" not in text
            body = msgspec.json.encode({"model": {"reuse": True}})
            async with http.post(f"{url}/model/nope/scores/increment", data=body) as resp:
                assert resp.status == 500 and resp.content_type == "text/plain"
                assert "nope" in await resp.text()
    assert "score" not in pieces_emulator.models[target]


async def test_a_plain_get_on_a_websocket_endpoint_is_a_one_line_400(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    with anyio.fail_after(BOUND):
        async with aiohttp.ClientSession() as http:
            for path in [IDENTIFIERS, f"/model/{target}/download/progress"]:
                async with http.get(pieces_emulator.url + path) as resp:
                    text = await resp.text()
                    assert resp.status == 400 and resp.content_type == "text/plain"
                    assert "WebSocket" in text and "\n" not in text
            async with http.get(pieces_emulator.url + "/model/nope/download/progress") as resp:
                assert resp.status == 410  # an unknown model first
    assert pieces_emulator.identifier_subscriber_count() == 0
    assert pieces_emulator.subscriber_count(target) == 0


async def test_version_and_health_are_text(pieces_emulator: PiecesOSEmulator) -> None:
    url = pieces_emulator.url
    with anyio.fail_after(BOUND):
        async with aiohttp.ClientSession() as http:
            for version in [DEFAULT_VERSION, "11.0.0-beta.3"]:
                pieces_emulator.version = version
                async with http.get(url + "/.well-known/version") as resp:
                    assert resp.status == 200 and resp.content_type == "text/plain"
                    assert await resp.text() == version
            async with http.head(url + "/.well-known/version") as resp:
                assert resp.status == 200
            async with http.get(url + "/.well-known/health") as resp:
                assert resp.status == 200 and (await resp.text()).startswith("ok")
            pieces_emulator.healthy = False  # not ready: health only says so
            async with http.get(url + "/.well-known/health") as resp:
                assert resp.status == 503 and resp.content_type == "text/plain"
            async with http.head(url + "/.well-known/health") as resp:
                assert resp.status == 503
            async with http.get(url + "/models") as resp:
                assert resp.status == 200
            pieces_emulator.healthy = True
            async with http.get(url + "/.well-known/health") as resp:
                assert resp.status == 200
    assert DEFAULT_VERSION.count(".") == 2


async def test_a_restart_keeps_state_and_moves_the_url() -> None:
    """Models, scores and a running download survive; sockets close; the old port is dead."""
    target_name = LOCAL_NOT_DOWNLOADED
    async with PiecesOSEmulator() as emulator, aiohttp.ClientSession() as http:
        target = model_id(emulator, target_name)
        old_url, old_port = emulator.url, emulator.port
        with anyio.fail_after(BOUND):
            created = msgspec.json.decode(
                await post(http, old_url + "/models/create", msgspec.to_builtins(seeded()))
            )["id"]
            body = {"model": {"reuse": True}}
            await post(http, f"{old_url}/model/{created}/scores/increment", body, 204)
            emulator.hold_downloads(at_percentage=30)
            async with (
                http.ws_connect(old_url + IDENTIFIERS) as ids,
                http.ws_connect(f"{old_url}/model/{target}/download/progress") as progress,
            ):
                await post(http, f"{old_url}/model/{target}/download")
                while (await progress.receive_json()).get("percentage") != 30:
                    pass
                new_port = free_port()
                new_url = await emulator.restart(port=new_port)
                for ws in [ids, progress]:  # every socket was closed by the restart
                    while (await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                        pass
            assert new_url == emulator.url == f"http://127.0.0.1:{new_port}" != old_url
            assert emulator.port == new_port != old_port
            with pytest.raises(aiohttp.ClientConnectionError):
                async with http.get(old_url + "/models"):
                    pass
            async with http.get(new_url + "/models") as resp:
                ids_now = [m["id"] for m in msgspec.json.decode(await resp.read())["iterable"]]
            assert ids_now == list(emulator.models) and created in ids_now
            assert emulator.models[created]["score"]["reuse"] == 1
            assert emulator.running_downloads() == [target]  # the download went on
            async with http.ws_connect(f"{new_url}/model/{target}/download/progress") as ws:
                assert await ws.receive_json() == {"status": "IN-PROGRESS", "percentage": 30}
                emulator.release_downloads()
                while (await ws.receive_json())["status"] != "COMPLETED":
                    pass
            assert emulator.model(target).downloaded
            await emulator.restart()  # the same port again
            assert emulator.url == new_url
            async with http.get(new_url + "/models") as resp:
                assert resp.status == 200


async def test_start_in_range_takes_the_first_free_port_and_restarts_within_it() -> None:
    """Two emulators in PiecesOS's ports, as discovery sees them; one moves to another."""
    with anyio.fail_after(BOUND):
        async with PiecesOSEmulator() as placeholder:  # a busy port
            first, second = PiecesOSEmulator(), PiecesOSEmulator()
            try:
                await first.start_in_range(PIECES_OS_PORTS)
                await second.start_in_range(PIECES_OS_PORTS)
                assert first.port in PIECES_OS_PORTS and second.port in PIECES_OS_PORTS
                assert first.port is not None and second.port is not None
                assert first.port < second.port
                old = first.port
                await first.restart([p for p in PIECES_OS_PORTS if p != old])
                assert first.port in PIECES_OS_PORTS and first.port not in {old, second.port}
                assert first.url == f"http://127.0.0.1:{first.port}"
                busy = [placeholder.port or 0, second.port]
                with pytest.raises(OSError, match="no free port"):
                    await first.restart(busy)  # nowhere to go: it is not serving any more
                assert first.port is None
                with pytest.raises(RuntimeError, match="not serving"):
                    await first.restart()
                await first.start()  # nothing was left half started
                with pytest.raises(RuntimeError, match="already serving"):
                    await first.start()
            finally:
                await first.stop()
                await second.stop()


async def test_wait_for_subscribers_returns_when_the_count_is_reached_and_not_before(
    pieces_emulator: PiecesOSEmulator, pieces_client: AsyncPiecesClient
) -> None:
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    assert PiecesOSEmulator().url == ""  # no URL until it serves
    with anyio.move_on_after(0.05) as early:
        await pieces_emulator.wait_for_subscribers(target, 1)
    assert early.cancelled_caught  # nobody subscribed: it keeps waiting
    with anyio.fail_after(BOUND):
        async with pieces_client.download_progress(target):
            await pieces_emulator.wait_for_subscribers(target, 1)
            assert pieces_emulator.subscriber_count(target) == 1
        await pieces_emulator.wait_for_subscribers(target, 0)
