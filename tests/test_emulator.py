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
from aiopieces.testing import PiecesOSEmulator
from aiopieces.testing._catalog import MODEL_KEY_ORDER

from .test_client import LOCAL_NOT_DOWNLOADED, free_port, model_id, seeded

LIMIT = 10


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
    with anyio.fail_after(LIMIT):
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

    with anyio.fail_after(LIMIT):
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
    with anyio.fail_after(LIMIT):
        after = await _download_then(pieces_client, pieces_emulator, target, delete=False)
        assert [event.status for event in after] == [Status.CANCELED]
        assert pieces_emulator.running_downloads() == []
        model = await pieces_client.get_model(target)
        assert not model.downloading and not model.downloaded


async def test_deleting_a_model_cancels_its_download(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    with anyio.fail_after(LIMIT):
        custom = await pieces_client.create_model(seeded(name="deleted-while-downloading"))
        after = await _download_then(pieces_client, pieces_emulator, custom.id, delete=True)
        assert [event.status for event in after] == [Status.CANCELED]
        assert pieces_emulator.running_downloads() == []
        with pytest.raises(ModelNotFoundError):
            await pieces_client.get_model(custom.id)


@pytest.mark.parametrize(
    "path", ["/models/create", "/model/update", "/models/{model}/delete/cache"]
)
@pytest.mark.parametrize(
    "body", [b'{"name":"\xff"}', b'{"id":"\xc3"}', b'{"schema":"\xed\xa0\x80"}']
)
async def test_a_body_that_is_not_utf8_is_a_400_not_a_crash(
    pieces_emulator: PiecesOSEmulator, path: str, body: bytes
) -> None:
    # Was: msgspec raised UnicodeDecodeError, which escaped as a 500 with a traceback.
    target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    with anyio.fail_after(LIMIT):
        async with (
            aiohttp.ClientSession() as http,
            http.post(pieces_emulator.url + path.format(model=target), data=body) as resp,
        ):
            text = await resp.text()
            assert resp.status == 400 and resp.content_type == "text/plain"
    assert text.startswith("invalid request body: not UTF-8") and "\n" not in text


async def test_every_bad_body_answer_is_one_line(pieces_emulator: PiecesOSEmulator) -> None:
    with anyio.fail_after(LIMIT):
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
    with anyio.fail_after(LIMIT):
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
        with anyio.fail_after(LIMIT):
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
        async with await anyio.open_process([*command, "--shape", shape]) as process:
            try:
                assert process.stdout is not None
                with anyio.fail_after(LIMIT):
                    banner = (await process.stdout.receive()).decode()
                assert f"127.0.0.1:{port}" in banner and f"({shape} shape)" in banner
                async with AsyncPiecesClient(f"http://127.0.0.1:{port}") as client:
                    models = (await client.list_models()).iterable
                assert any(m.cloud for m in models)
            finally:
                process.terminate()
                await process.wait()
