"""The emulator and our client, proven against the official `pieces-os-client` 5.0.1.

The official SDK is a test-only oracle nobody here wrote: its pydantic models judge every
body and frame the emulator sends and every body our client sends, and its own
synchronous client (run in a worker thread) must get the values our client gets.

Every test runs against both shapes of the emulator. On the schema-complete shape the
official SDK must read everything. On the pieces shape, what PiecesOS really sends, it
cannot: PiecesOS leaves `cloud` (which the schema requires) out of local models, and the
official models refuse them. The tests assert that failure explicitly, and that our
types read the same bodies.
"""

from __future__ import annotations

import datetime as dt
import enum
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
from pieces_os_client.api.model_api import ModelApi
from pieces_os_client.api.models_api import ModelsApi
from pieces_os_client.api.well_known_api import WellKnownApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import BadRequestException, ServiceException
from pieces_os_client.models.model import Model as OfficialModel
from pieces_os_client.models.model_delete_cache_input import (
    ModelDeleteCacheInput as OfficialCacheInput,
)
from pieces_os_client.models.model_delete_cache_output import (
    ModelDeleteCacheOutput as OfficialCacheOutput,
)
from pieces_os_client.models.model_download_progress import (
    ModelDownloadProgress as OfficialProgress,
)
from pieces_os_client.models.models import Models as OfficialModels
from pieces_os_client.models.score import Score as OfficialScore
from pieces_os_client.models.seeded_model import SeededModel as OfficialSeededModel
from pieces_os_client.models.seeded_score import SeededScore as OfficialSeededScore
from pieces_os_client.models.seeded_score_increment import (
    SeededScoreIncrement as OfficialScoreIncrement,
)
from pieces_os_client.models.streamed_identifiers import (
    StreamedIdentifiers as OfficialIdentifiers,
)
from pydantic import ValidationError

from aiopieces import (
    AsyncPiecesClient,
    Model,
    ModelDeleteCacheInput,
    ModelNotFoundError,
    Models,
    SeededModel,
    SeededScore,
    SeededScoreIncrement,
    StreamedIdentifiers,
)
from aiopieces import ModelDownloadProgressStatusEnum as Status
from aiopieces.testing import SHAPES, PiecesOSEmulator, Shape, default_catalog

from .helpers import (
    BOUND,
    CLOUD,
    LOCAL_DOWNLOADED,
    LOCAL_NOT_DOWNLOADED,
    free_port,
    model_id,
    seeded,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(params=SHAPES)
def shape(request: pytest.FixtureRequest) -> Shape:
    """Each test runs against both shapes of the emulator."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def pieces_emulator_options(shape: Shape) -> dict[str, object]:
    """The plugin's emulator, in the shape under test."""
    return {"shape": shape}


def official_refuses(parse: Callable[[str], Any], text: str) -> None:
    """The official SDK cannot read what PiecesOS really sends: `cloud` is absent."""
    with pytest.raises(ValidationError, match="cloud"):
        parse(text)


def official_progress(frame: str) -> OfficialProgress:
    """A progress frame, as the official model reads it (it refuses what it cannot)."""
    event = OfficialProgress.from_json(frame)
    assert event is not None
    return event


def comparable(value: Any) -> Any:
    """Plain data for comparing an official pydantic model with one of ours."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    elif isinstance(value, msgspec.Struct):
        # Every field, defaults included: the official model has `cloud: false` where
        # ours leaves the default out of its JSON.
        value = {f.encode_name: getattr(value, f.name) for f in msgspec.structs.fields(value)}
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value  # enum members of either side become their plain value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return value


async def test_every_body_and_frame_of_a_lifecycle_validates(
    pieces_emulator: PiecesOSEmulator, shape: Shape
) -> None:
    """Drive the emulator with raw HTTP and judge each answer with the official models.

    On the pieces shape every answer holding a local model (all but the cache answer
    here) is one the official SDK refuses, for its missing `cloud`; ours reads it.
    """
    with anyio.fail_after(BOUND):
        url = pieces_emulator.url
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        checked: list[str] = []
        ours: dict[Callable[[str], Any], msgspec.json.Decoder[Any]] = {
            OfficialModels.from_json: msgspec.json.Decoder(Models),
            OfficialModel.from_json: msgspec.json.Decoder(Model),
        }

        async with aiohttp.ClientSession() as http:

            async def call(
                method: str, path: str, parse: Callable[[str], Any], body: Any = None
            ) -> dict[str, Any]:
                data = None if body is None else msgspec.json.encode(body)
                async with http.request(method, url + path, data=data) as resp:
                    assert resp.status == 200, await resp.text()
                    text = await resp.text()
                if shape == "pieces" and parse in ours:
                    official_refuses(parse, text)  # PiecesOS's real shape: no `cloud`
                    assert ours[parse].decode(text) is not None
                else:
                    assert parse(text) is not None
                checked.append(f"{method} {path.replace(target, '{model}')}")
                return msgspec.json.decode(text)  # type: ignore[no-any-return]

            models = await call("GET", "/models", OfficialModels.from_json)
            assert len(models["iterable"]) == len(pieces_emulator.models)
            await call("GET", f"/model/{target}", OfficialModel.from_json)

            frames: list[str] = []
            async with http.ws_connect(f"{url}/model/{target}/download/progress") as ws:
                await call("POST", f"/model/{target}/download", OfficialModel.from_json)
                async for msg in ws:
                    frames.append(msg.data)
                    status = official_progress(msg.data).status
                    if status is not None and status.value in {"COMPLETED", "FAILED", "CANCELED"}:
                        break
            # Frames are the same in both shapes, but for the pieces shape's first UNKNOWN
            # (no download known yet), which the official model reads too.
            statuses = [official_progress(f).status for f in frames]
            assert statuses[-1] == "COMPLETED"
            assert (statuses[0] == "UNKNOWN") is (shape == "pieces")

            await call("POST", f"/model/{target}/download/cancel", OfficialModel.from_json)
            await call("POST", f"/model/{target}/load", OfficialModel.from_json)
            await call("POST", f"/model/{target}/unload", OfficialModel.from_json)
            created = await call(
                "POST",
                "/models/create",
                OfficialModel.from_json,
                msgspec.to_builtins(seeded()),
            )
            created["description"] = "changed"
            await call("POST", "/model/update", OfficialModel.from_json, created)
            await call("POST", f"/models/{target}/delete/cache", OfficialCacheOutput.from_json, {})
            async with http.post(f"{url}/models/{created['id']}/delete") as resp:
                assert resp.status == 204 and await resp.read() == b""
            async with http.post(f"{url}/models/unload") as resp:
                assert resp.status == 204 and await resp.read() == b""

        assert len(checked) == 9


async def test_cancel_frames_validate(pieces_emulator: PiecesOSEmulator, shape: Shape) -> None:
    with anyio.fail_after(BOUND):
        url = pieces_emulator.url
        target = model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
        pieces_emulator.hold_downloads(at_percentage=50)
        frames: list[str] = []
        http = aiohttp.ClientSession()
        async with http, http.ws_connect(f"{url}/model/{target}/download/progress") as ws:
            async with http.post(f"{url}/model/{target}/download") as resp:
                assert resp.status == 200
            async for msg in ws:
                frames.append(msg.data)
                event = official_progress(msg.data)
                if event.percentage == 50:
                    async with http.post(f"{url}/model/{target}/download/cancel") as resp:
                        assert resp.status == 200
                if event.status == "CANCELED":
                    break
        assert [official_progress(f).status for f in frames][-1] == "CANCELED"


async def test_bad_request_bodies_answer_errors_not_crashes(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    url = pieces_emulator.url
    async with aiohttp.ClientSession() as http:
        for path, body in [
            ("/models/create", b"{not json"),
            ("/models/create", b'{"name": 1}'),
            ("/models/create", b""),
            ("/models/create", b'{"name": "\xff"}'),
            ("/model/update", b"[]"),
            ("/model/update", b'{"name": "no id"}'),  # a model needs only its id
            ("/model/update", b'{"id": 7}'),
        ]:
            async with http.post(url + path, data=body) as resp:
                assert resp.status == 400
                assert resp.content_type == "text/plain"
                assert "invalid request body" in await resp.text()
        async with http.head(url + "/.well-known/health") as resp:
            assert resp.status == 200
        async with http.get(url + "/models") as resp:
            assert resp.status == 200  # still serving


async def official_and_ours_agree(url: str, target: str, downloadable: str) -> None:
    """Every HTTP endpoint through the official synchronous client (in a worker thread)
    and through ours; both must see the same values.

    `target` is a downloaded local LLM; `downloadable` a local model not downloaded,
    whose download must still be running when it is canceled.
    """
    api_client = ApiClient(Configuration(host=url))
    model_api, models_api = ModelApi(api_client), ModelsApi(api_client)

    async def official(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: call(*args, **kwargs))

    try:
        async with AsyncPiecesClient(url) as ours:
            assert comparable(await official(models_api.models_snapshot)) == comparable(
                await ours.list_models()
            )
            assert comparable(
                await official(model_api.models_specific_model_snapshot, target)
            ) == comparable(await ours.get_model(target))

            loaded = await official(model_api.model_specific_model_load, target)
            assert loaded.loaded and comparable(loaded) == comparable(await ours.get_model(target))
            unloaded = await official(model_api.model_specific_model_unload, target)
            assert not unloaded.loaded
            assert comparable(unloaded) == comparable(await ours.load_model(target)) | {
                "loaded": False
            }
            await official(models_api.unload_models)
            assert not (await ours.get_model(target)).loaded

            started = await official(model_api.model_specific_model_download, downloadable)
            assert started.downloading
            canceled = await official(model_api.model_specific_model_download_cancel, downloadable)
            assert not canceled.downloading and not canceled.downloaded
            assert comparable(canceled) == comparable(await ours.get_model(downloadable))

            seed = OfficialSeededModel.from_json(msgspec.json.encode(seeded()).decode())
            created = await official(models_api.models_create_new_model, seeded_model=seed)
            assert created.custom
            assert comparable(created) == comparable(await ours.create_model(seeded()))
            created.description = "updated by the official SDK"
            updated = await official(model_api.model_update, model=created)
            assert comparable(updated) == comparable(await ours.get_model(created.id))

            cache = await official(
                models_api.models_delete_specific_model_cache,
                target,
                model_delete_cache_input=OfficialCacheInput(),
            )
            ours_cache = await ours.delete_model_cache(target, ModelDeleteCacheInput())
            assert comparable(cache) == comparable(ours_cache)

            await official(models_api.models_delete_specific_model, created.id)
            with pytest.raises(ModelNotFoundError):
                await ours.get_model(created.id)
    finally:
        api_client.rest_client.pool_manager.clear()


async def official_refuses_what_pieces_os_sends(url: str, local: str, cloud: str) -> None:
    """The official synchronous client against the pieces shape: it cannot list the models
    nor read a local one (no `cloud`); a cloud model, which has every required key, it
    reads as we do. Our client reads them all."""
    api_client = ApiClient(Configuration(host=url))
    model_api, models_api = ModelApi(api_client), ModelsApi(api_client)

    async def official(call: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: call(*args))

    try:
        async with AsyncPiecesClient(url) as ours:
            with pytest.raises(ValidationError, match="cloud"):
                await official(models_api.models_snapshot)
            assert len((await ours.list_models()).iterable) == len(default_catalog())
            with pytest.raises(ValidationError, match="cloud"):
                await official(model_api.models_specific_model_snapshot, local)
            assert not (await ours.get_model(local)).cloud
            assert comparable(
                await official(model_api.models_specific_model_snapshot, cloud)
            ) == comparable(await ours.get_model(cloud))
    finally:
        api_client.rest_client.pool_manager.clear()


async def test_the_official_sdk_gets_what_we_get(
    pieces_emulator: PiecesOSEmulator, shape: Shape
) -> None:
    local = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    if shape == "pieces":
        await official_refuses_what_pieces_os_sends(
            pieces_emulator.url, local, model_id(pieces_emulator, CLOUD)
        )
        return
    pieces_emulator.hold_downloads(at_percentage=30)
    await official_and_ours_agree(
        pieces_emulator.url, local, model_id(pieces_emulator, LOCAL_NOT_DOWNLOADED)
    )
    pieces_emulator.release_downloads()


async def test_the_standalone_emulator_serves_both_clients(shape: Shape) -> None:
    """`python -m aiopieces.testing --port P [--shape schema]`, as a developer starts it."""
    with anyio.fail_after(BOUND):
        port = free_port()
        command = [sys.executable, "-m", "aiopieces.testing", "--port", str(port)]
        # Downloads crawl, so the cancel below always finds one running.
        command += ["--download-interval", "60"]
        if shape == "schema":
            command += ["--shape", "schema"]  # the default is the pieces shape
        async with await anyio.open_process(command) as process:
            try:
                assert process.stdout is not None
                banner = await process.stdout.receive()  # printed once it is listening
                url = f"http://127.0.0.1:{port}"
                assert url in banner.decode()
                catalog = {m["name"]: m["id"] for m in default_catalog()}
                if shape == "schema":
                    await official_and_ours_agree(
                        url, catalog[LOCAL_DOWNLOADED], catalog[LOCAL_NOT_DOWNLOADED]
                    )
                else:
                    await official_refuses_what_pieces_os_sends(
                        url, catalog[LOCAL_DOWNLOADED], catalog[CLOUD]
                    )
                async with AsyncPiecesClient(url) as ours:
                    events = aiter(ours.download(catalog[LOCAL_NOT_DOWNLOADED]))
                    first = await anext(events)
                    if shape == "pieces":  # no download known yet, then it starts
                        assert first.status == Status.UNKNOWN
                        first = await anext(events)
                    assert first.status == Status.INITIALIZED
                    await events.aclose()  # type: ignore[attr-defined]
            finally:
                process.terminate()
                await process.wait()


async def test_every_body_our_client_sends_validates(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator, shape: Shape
) -> None:
    created = await pieces_client.create_model(seeded(description="x", unique="mine"))
    created.description = "y"
    await pieces_client.update_model(created)
    await pieces_client.delete_model_cache(
        model_id(pieces_emulator, LOCAL_DOWNLOADED), ModelDeleteCacheInput()
    )
    parsers: dict[str, tuple[Callable[[str], Any], type[msgspec.Struct]]] = {
        "/models/create": (OfficialSeededModel.from_json, SeededModel),
        "/model/update": (OfficialModel.from_json, Model),
    }
    cache_parser = (OfficialCacheInput.from_json, ModelDeleteCacheInput)
    assert len(pieces_emulator.request_bodies) == 3
    for path, body in pieces_emulator.request_bodies:
        official_parse, our_type = parsers.get(path, cache_parser)
        ours: Any = msgspec.json.decode(body, type=our_type)
        if shape == "pieces" and path == "/model/update":
            # The update sends PiecesOS back its own JSON, with only the description
            # changed: no `cloud` on this local model, so the official model refuses it.
            official_refuses(official_parse, body.decode())
            assert "cloud" not in msgspec.json.decode(body) and ours.description == "y"
            continue
        # Nothing was lost or renamed on the way: the official model reads what we meant.
        assert comparable(official_parse(body.decode())) == comparable(ours)


# -- issue 10: score increments, the identifier socket, health and version ----------------


async def in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a call of the official synchronous SDK in a worker thread."""
    return await anyio.to_thread.run_sync(lambda: call(*args, **kwargs))


async def test_the_official_sdk_increments_a_score(
    pieces_emulator: PiecesOSEmulator, shape: Shape
) -> None:
    """`ModelApi.model_scores_increment` over HTTP: 204, counted in the model's `score`,
    which the official SDK then reads back as a valid `Score` (a cloud model, which has
    every key the schema requires in both shapes)."""
    cloud = model_id(pieces_emulator, CLOUD)
    api_client = ApiClient(Configuration(host=pieces_emulator.url))
    model_api = ModelApi(api_client)
    increments = [
        OfficialScoreIncrement(model=OfficialSeededScore(reuse=True)),
        OfficialScoreIncrement(
            model=OfficialSeededScore(reuse=True, reference=True),
            asset=OfficialSeededScore(searched=True),  # not a model's: ignored
        ),
        OfficialScoreIncrement(model=OfficialSeededScore(update=False)),  # nothing true
    ]
    try:
        with anyio.fail_after(BOUND):
            for increment in increments:
                assert await in_thread(model_api.model_scores_increment, cloud, increment) is None
            assert await in_thread(model_api.model_scores_increment, cloud) is None  # no body
            scored = await in_thread(model_api.models_specific_model_snapshot, cloud)
            with pytest.raises(ServiceException) as caught:
                await in_thread(model_api.model_scores_increment, "nope", increments[0])
    finally:
        api_client.rest_client.pool_manager.clear()
    assert scored.score == OfficialScore(manual=0, automatic=0, reuse=2, reference=1)
    assert caught.value.status == 500 and "nope" in str(caught.value.body)
    # What the official SDK sent is what the schema describes, and the emulator read it.
    sent = [body for path, body in pieces_emulator.request_bodies if path.endswith("/increment")]
    assert [OfficialScoreIncrement.from_json(body.decode()) for body in sent[:3]] == increments
    ours = msgspec.json.Decoder(Model).decode(msgspec.json.encode(pieces_emulator.models[cloud]))
    assert comparable(ours.score) == comparable(scored.score)


async def test_every_identifier_frame_validates(
    pieces_emulator: PiecesOSEmulator, shape: Shape
) -> None:
    """The identifier socket, read with a raw WebSocket (the official SDK generates it as a
    plain GET), each frame judged by the official `StreamedIdentifiers`; ours reads the
    same values."""
    url = pieces_emulator.url
    target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    frames: list[OfficialIdentifiers] = []
    decode_ours = msgspec.json.Decoder(StreamedIdentifiers)
    with anyio.fail_after(BOUND):
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url + "/models/stream/identifiers") as ws,
        ):

            async def frame() -> OfficialIdentifiers:
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                parsed = OfficialIdentifiers.from_json(msg.data)
                assert parsed is not None
                assert comparable(parsed) == comparable(decode_ours.decode(msg.data))
                frames.append(parsed)
                return parsed

            first = await frame()
            assert [item.model.id for item in first.iterable if item.model] == list(
                pieces_emulator.models
            )
            body = msgspec.json.encode(seeded(name="streamed"))
            async with http.post(url + "/models/create", data=body) as resp:
                created = (await resp.json())["id"]
            increment = b'{"model": {"searched": true}}'
            async with http.post(f"{url}/model/{target}/scores/increment", data=increment):
                pass
            async with http.post(f"{url}/model/{target}/load"):
                pass
            async with http.post(f"{url}/models/unload"):
                pass
            async with http.post(f"{url}/models/{created}/delete"):
                pass
            changes = [await frame() for _ in range(5)]
    ids = [[(item.model.id, item.deleted) for item in f.iterable if item.model] for f in changes]
    assert ids[:3] == [[(created, None)], [(target, None)], [(target, None)]]
    assert (target, None) in ids[3] and ids[4] == [(created, True)]
    for parsed in frames:  # a model's identifier, and nothing else
        for item in parsed.iterable:
            assert item.model is not None
            assert set(item.to_dict()) <= {"model", "deleted"}


async def test_the_official_sdk_cannot_stream_identifiers(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    """`models_stream_identifiers` is a plain GET in the official SDK: a one-line 400."""
    api_client = ApiClient(Configuration(host=pieces_emulator.url))
    try:
        with anyio.fail_after(BOUND), pytest.raises(BadRequestException) as caught:
            await in_thread(ModelsApi(api_client).models_stream_identifiers)
    finally:
        api_client.rest_client.pool_manager.clear()
    assert caught.value.status == 400
    assert "WebSocket" in str(caught.value.body) and "\n" not in str(caught.value.body)
    assert pieces_emulator.identifier_subscriber_count() == 0


async def test_the_official_sdk_reads_health_and_version(
    pieces_emulator: PiecesOSEmulator,
) -> None:
    pieces_emulator.version = "10.9.8"
    api_client = ApiClient(Configuration(host=pieces_emulator.url))
    well_known = WellKnownApi(api_client)
    try:
        with anyio.fail_after(BOUND):
            health = await in_thread(well_known.get_well_known_health)
            version = await in_thread(well_known.get_well_known_version)
    finally:
        api_client.rest_client.pool_manager.clear()
    assert health.startswith("ok") and version == "10.9.8"


async def test_the_score_increment_our_client_sends_validates(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    """Whatever body `increment_model_score` sends by default, the official model reads it
    and the emulator counts what it asks."""
    increment_model_score = getattr(pieces_client, "increment_model_score", None)
    if increment_model_score is None:  # pragma: no cover - until the client has it
        pytest.skip("the client has no increment_model_score yet")
    target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    with anyio.fail_after(BOUND):
        await increment_model_score(target)
    sent = [body for path, body in pieces_emulator.request_bodies if path.endswith("/increment")]
    assert len(sent) <= 1
    if sent and sent[0]:
        ours = comparable(msgspec.json.decode(sent[0], type=SeededScoreIncrement))
        ours.pop("other", None)  # keys for other objects, which this body has none of
        assert comparable(OfficialScoreIncrement.from_json(sent[0].decode())) == ours
    asked = OfficialScoreIncrement.from_json(sent[0].decode()) if sent and sent[0] else None
    counted = pieces_emulator.models[target].get("score", {})
    expected = {
        key: 1
        for key in ["priority", "reference", "reuse", "searched", "update"]
        if asked is not None and asked.model is not None and getattr(asked.model, key)
    }
    assert {key: counted[key] for key in expected} == expected


async def test_an_explicit_score_increment_our_client_sends_validates(
    pieces_client: AsyncPiecesClient, pieces_emulator: PiecesOSEmulator
) -> None:
    """`model` and keys for other objects, as the official model reads them."""
    increment_model_score = getattr(pieces_client, "increment_model_score", None)
    if increment_model_score is None:  # pragma: no cover - until the client has it
        pytest.skip("the client has no increment_model_score yet")
    target = model_id(pieces_emulator, LOCAL_DOWNLOADED)
    increment = SeededScoreIncrement(
        model=SeededScore(reuse=True, searched=True), other={"asset": {"reuse": True}}
    )
    with anyio.fail_after(BOUND):
        await increment_model_score(target, increment)
    [body] = [body for path, body in pieces_emulator.request_bodies if path.endswith("/increment")]
    official = OfficialScoreIncrement.from_json(body.decode())
    assert official is not None and official.model is not None and official.asset is not None
    assert official.model.reuse and official.model.searched and official.asset.reuse
    assert pieces_emulator.models[target]["score"] == {
        "manual": 0,
        "automatic": 0,
        "reuse": 1,
        "searched": 1,
    }
