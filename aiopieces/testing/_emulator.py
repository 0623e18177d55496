"""A PiecesOS emulator: every Model and Models endpoint, served by aiohttp.web.

It keeps models as the JSON objects PiecesOS sends (so fields it does not know survive
an update), runs downloads in the background and streams their progress to every
subscriber of the progress WebSocket, and answers errors with `text/plain` bodies.
Besides the 12 endpoints of the seeds it serves `POST /model/{model}/scores/increment`,
the WebSocket `/models/stream/identifiers`, `GET /.well-known/health` and
`GET /.well-known/version`.

A score increment (`SeededScoreIncrement`, e.g. `{"model": {"reuse": true}}`) bumps, for
each key of `body["model"]` that is `true`, the integer counter of that name in the
model's `score` object (`manual` and `automatic`, which the schema requires, start at 0
and are left alone); other keys of the body are accepted and ignored. An empty body
increments nothing, as the official SDK sends none when given none. It answers 204 with
an empty body; a body that is not JSON or not UTF-8 gets a one-line 400, and an unknown
model a 500, as every other POST on a model does (only `GET /model/{model}` and the
progress socket answer 410).

The identifier socket first sends one `StreamedIdentifiers` frame naming every model in
catalog order, then one frame per change, naming the models it changed, as
`{"model": {"id": ...}}` (`"deleted": true` added for a deleted model): a create (not a
duplicate create, which changes nothing), an update, a delete, a download that starts,
completes or fails, a cancel, a cache delete, a load, an unload, a score increment that
bumped something, `add_model`, and an unload of all models (one frame naming every model
that was loaded; none if none was). A call that acts on one model announces it even when
the model already was in that state (PiecesOS writes it back); a download call that
starts nothing announces nothing.

It speaks in one of two shapes (see `aiopieces.testing._catalog`): `"pieces"`, what
PiecesOS 10 really sends (the default), or `"schema"`, schema-complete. The shape decides
the built-in catalog, how the emulator's own writes look (in the pieces shape a flag that
turns false is left out, a new key goes to its place in PiecesOS's order) and whether a
progress socket opened with no download running first gets `{"status":"UNKNOWN"}`.
A catalog you give is served as you give it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from .._types import EmbeddedModelSchema, Model, ModelDeleteCacheInput, SeededModel
from ._catalog import SHAPES, Shape, default_catalog, in_pieces_order, is_llm, put

__all__ = ["DEFAULT_VERSION", "PIECES_OS_PORTS", "PiecesOSEmulator", "serve_emulator"]


class _SeededScore(msgspec.Struct):
    """What a score increment asks of one kind of object: which counters to bump."""

    priority: bool | None = None
    reference: bool | None = None
    reuse: bool | None = None
    searched: bool | None = None
    update: bool | None = None
    schema: EmbeddedModelSchema | None = None


class _SeededScoreIncrement(msgspec.Struct):
    """A score increment body; only its `model` part concerns models (the rest is ignored)."""

    model: _SeededScore | None = None
    schema: EmbeddedModelSchema | None = None


_MODEL = msgspec.json.Decoder(Model)
_SEEDED = msgspec.json.Decoder(SeededModel)
_CACHE_INPUT = msgspec.json.Decoder(ModelDeleteCacheInput)
_SCORE_INCREMENT = msgspec.json.Decoder(_SeededScoreIncrement)
_ENCODE = msgspec.json.encode
_DECODE_ANY = msgspec.json.Decoder()

#: The fields that make two models the same model: a create that matches an
#: existing model on all of them returns that model instead of adding a duplicate.
DUPLICATE_KEY_FIELDS = ("name", "version", "cloud", "unique")

#: How many requests the emulator remembers, so that a long-running one stays small.
_RECORDED = 1000
_SCHEMA = {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"}
#: What the pieces shape sends first on a progress socket when no download is running.
_UNKNOWN_FRAME = _ENCODE({"status": "UNKNOWN"})
#: A model's runtime state: PiecesOS's to set, whatever an update body says.
_RUNTIME_KEYS = ("downloaded", "downloading", "loaded")
#: The counters of a model's `score` that an increment can bump.
_SCORE_COUNTERS = ("priority", "reference", "reuse", "searched", "update")
#: What `GET /.well-known/version` answers unless told otherwise.
DEFAULT_VERSION = "10.1.2"
#: The ports current PiecesOS releases listen on (the first free one), for `start_in_range`.
PIECES_OS_PORTS = range(39300, 39334)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _HTTPError(Exception):
    """An error answer: a status and a text/plain body, as PiecesOS sends them."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass
class _Download:
    task: asyncio.Task[None]
    last_event: bytes | None = None


class _Subscriber:
    """One WebSocket (progress or identifiers), with its own queue so frames keep their order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def send_frames(self) -> None:
        """Send queued events until the socket closes (or this task is cancelled)."""
        while True:
            frame = await self.queue.get()
            try:
                await self.ws.send_str(frame.decode())
            except (ConnectionError, RuntimeError):
                return  # the client went away; the handler cleans up


@dataclass
class _Faults:
    fail_at: dict[str, float] = field(default_factory=dict)
    hold_at: float | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)


class PiecesOSEmulator:
    """A PiecesOS stand-in with state: catalog, downloads, loads, custom models.

    `shape` is `"pieces"` (what PiecesOS really sends, the default) or `"schema"`
    (schema-complete, what the official SDK can decode). `download_interval` is the pause
    between progress events (0 for tests, about 0.2 for a demo a person watches);
    `download_steps` is how many `IN-PROGRESS` events a download sends; `latency` delays
    every HTTP answer; `version` is what `GET /.well-known/version` answers.
    """

    def __init__(
        self,
        catalog: Iterable[dict[str, Any] | Model] | None = None,
        *,
        shape: Shape = "pieces",
        download_interval: float = 0.0,
        download_steps: int = 10,
        latency: float = 0.0,
        version: str = DEFAULT_VERSION,
    ) -> None:
        """Build an emulator with `catalog` (the built-in one, in `shape`, when `None`)."""
        if download_steps < 1:
            raise ValueError("download_steps must be at least 1")
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, not {shape!r}")
        self.shape: Shape = shape
        self.download_interval = download_interval
        self.download_steps = download_steps
        self.latency = latency
        #: What `GET /.well-known/version` answers (text), e.g. `"10.1.2"`.
        self.version = version
        #: Whether `/.well-known/health` answers 200 `ok`; when false it answers 503, so
        #: discovery passes this emulator by while every other endpoint still answers.
        self.healthy = True
        #: The latest requests received, as (method, raw path): what reached the server.
        self.requests: deque[tuple[str, str]] = deque(maxlen=_RECORDED)
        #: The latest bodies received, as (raw path, body).
        self.request_bodies: deque[tuple[str, bytes]] = deque(maxlen=_RECORDED)
        self._subscribers: dict[str, set[_Subscriber]] = {}
        self._identifier_subscribers: set[_Subscriber] = set()
        self._subscribers_changed = asyncio.Event()
        self._downloads: dict[str, _Download] = {}
        #: Every download task still running, registered or not, with its model id.
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._faults = _Faults()
        self._runner: web.AppRunner | None = None
        #: While true, a shutdown of the app leaves downloads running (a restart).
        self._keep_downloads = False
        self.url = ""
        self.models: dict[str, dict[str, Any]] = {}
        for item in default_catalog(shape) if catalog is None else catalog:
            self.add_model(item)

    # -- controls for tests and demos ---------------------------------------------

    def add_model(self, model: dict[str, Any] | Model) -> str:
        """Add a model (a `Model` or its JSON object) to the catalog; returns its id."""
        raw = msgspec.to_builtins(model) if isinstance(model, Model) else copy.deepcopy(model)
        _MODEL.decode(_ENCODE(raw))  # refuse what a real PiecesOS would never send
        self.models[raw["id"]] = raw
        self._announce([raw["id"]])
        return str(raw["id"])

    def model(self, model_id: str) -> Model:
        """The current state of a model, decoded."""
        return _MODEL.decode(_ENCODE(self.models[model_id]))

    def fail_download(self, model_id: str, at_percentage: float = 50.0) -> None:
        """Make the next download of `model_id` end `FAILED` once it reaches `at_percentage`."""
        self._faults.fail_at[model_id] = at_percentage

    def hold_downloads(self, at_percentage: float) -> None:
        """Let downloads run up to `at_percentage`, then wait for `release_downloads()`."""
        self._faults.hold_at = at_percentage
        self._faults.released.clear()

    def release_downloads(self) -> None:
        """Let held downloads go on to the end."""
        self._faults.hold_at = None
        self._faults.released.set()

    def running_downloads(self) -> list[str]:
        """The ids of the models whose download task is still running, one per task."""
        return sorted(self._tasks.values())

    def subscriber_count(self, model_id: str) -> int:
        """How many progress WebSockets are open for `model_id`."""
        return len(self._subscribers.get(model_id, ()))

    async def wait_for_subscribers(self, model_id: str, count: int) -> None:
        """Wait until exactly `count` progress WebSockets are open for `model_id`."""
        while self.subscriber_count(model_id) != count:
            await self._subscribers_changed.wait()

    def identifier_subscriber_count(self) -> int:
        """How many `/models/stream/identifiers` WebSockets are open."""
        return len(self._identifier_subscribers)

    async def wait_for_identifier_subscribers(self, count: int) -> None:
        """Wait until exactly `count` `/models/stream/identifiers` WebSockets are open."""
        while self.identifier_subscriber_count() != count:
            await self._subscribers_changed.wait()

    def _subscription(
        self, subscribers: set[_Subscriber], subscriber: _Subscriber, add: bool
    ) -> None:
        if add:
            subscribers.add(subscriber)
        else:
            subscribers.discard(subscriber)
        # Wake every waiter, then give later waiters a fresh event.
        self._subscribers_changed.set()
        self._subscribers_changed = asyncio.Event()

    # -- serving -------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application; serve it yourself, or use `start()`."""
        app = web.Application(middlewares=[self._middleware])
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/.well-known/health", self._health),
            ("GET", "/.well-known/version", self._version),
            ("GET", "/models", self._list_models),
            ("GET", "/models/stream/identifiers", self._identifiers),
            ("POST", "/models/create", self._create),
            ("POST", "/models/unload", self._unload_all),
            ("POST", "/models/{model}/delete", self._delete),
            ("POST", "/models/{model}/delete/cache", self._delete_cache),
            ("POST", "/model/update", self._update),
            ("GET", "/model/{model}", self._get_model),
            ("POST", "/model/{model}/download", self._download),
            ("POST", "/model/{model}/download/cancel", self._cancel),
            ("GET", "/model/{model}/download/progress", self._progress),
            ("POST", "/model/{model}/load", self._load),
            ("POST", "/model/{model}/unload", self._unload),
            ("POST", "/model/{model}/scores/increment", self._increment_score),
        ]
        for method, path, handler in routes:
            if method == "GET":
                app.router.add_get(path, handler)  # and HEAD, as PiecesOS answers both
            else:
                app.router.add_route(method, path, handler)
        app.on_shutdown.append(self._on_shutdown)
        return app

    @property
    def port(self) -> int | None:
        """The port it serves on, or `None` when it is not serving."""
        if self._runner is None or not self._runner.addresses:
            return None
        return int(self._runner.addresses[0][1])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0 picks a free port); returns the base URL."""
        if self._runner is not None:
            raise RuntimeError("the emulator is already serving; stop() or restart() it")
        # A short grace period: a stand-in's pending answers are not worth a slow teardown.
        runner = web.AppRunner(self.make_app(), handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            with self._keeping_downloads():  # nothing was served: nothing to end
                await runner.cleanup()
            raise
        self._runner = runner
        self.url = f"http://{host}:{self.port}"
        return self.url

    async def start_in_range(self, ports: Iterable[int], host: str = "127.0.0.1") -> str:
        """Serve on the first free port of `ports` (e.g. `PIECES_OS_PORTS`); returns the URL."""
        tried = []
        for port in ports:
            try:
                return await self.start(host, port)
            except OSError:
                tried.append(port)
        raise OSError(f"no free port on {host} among {tried}")

    async def restart(self, port: int | Iterable[int] | None = None) -> str:
        """Stop serving and serve again, every model and download kept; returns the new URL.

        `port` is where to serve again: a port, several (the first free one), or `None`
        for the same port. Clients lose their connections, WebSockets included, and the
        old port answers nothing more; running downloads go on and a progress socket
        opened again first gets their latest event. If no port is free it raises
        `OSError` and is left stopped (`start()` serves it again).
        """
        if self._runner is None:
            raise RuntimeError("the emulator is not serving")
        host = str(self._runner.addresses[0][0])
        if port is None:
            port = self.port or 0
        await self._stop(keep_downloads=True)
        if isinstance(port, int):
            return await self.start(host, port)
        return await self.start_in_range(port, host)

    async def stop(self) -> None:
        """Stop serving: end every download and close every WebSocket."""
        await self._stop(keep_downloads=False)

    async def _stop(self, *, keep_downloads: bool) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            if keep_downloads:
                with self._keeping_downloads():
                    await runner.cleanup()
            else:
                await runner.cleanup()

    @contextlib.contextmanager
    def _keeping_downloads(self) -> Iterator[None]:
        self._keep_downloads = True
        try:
            yield
        finally:
            self._keep_downloads = False

    async def __aenter__(self) -> PiecesOSEmulator:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_shutdown(self, app: web.Application) -> None:
        if not self._keep_downloads:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        sockets = [self._identifier_subscribers, *self._subscribers.values()]
        for subscriber in [s for subscribers in sockets for s in subscribers]:
            await subscriber.ws.close()

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.raw_path))
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            return await handler(request)
        except _HTTPError as exc:
            return web.Response(status=exc.status, text=exc.text, content_type="text/plain")

    # -- helpers -------------------------------------------------------------------

    def _find(self, request: web.Request, status: int = 500) -> dict[str, Any]:
        model_id = request.match_info["model"]
        model = self.models.get(model_id)
        if model is None:
            raise _HTTPError(status, f"model {model_id!r} was not found.")
        return model

    @staticmethod
    def _json(obj: Any, status: int = 200) -> web.Response:
        return web.Response(body=_ENCODE(obj), status=status, content_type="application/json")

    async def _body(
        self, request: web.Request, decoder: msgspec.json.Decoder[Any]
    ) -> dict[str, Any]:
        data = await request.read()
        self.request_bodies.append((request.raw_path, data))
        try:
            data.decode()
        except UnicodeDecodeError as exc:
            # msgspec raises UnicodeDecodeError, not DecodeError, for bad UTF-8 in a string.
            raise _HTTPError(
                400, f"invalid request body: not UTF-8 ({exc.reason} at byte {exc.start})"
            ) from None
        try:
            decoder.decode(data)
            raw = _DECODE_ANY.decode(data)
        except msgspec.DecodeError as exc:
            message = " ".join(str(exc).split())  # one line, as every error body
            raise _HTTPError(400, f"invalid request body: {message}") from None
        return raw  # type: ignore[no-any-return]  # an object, as the typed decode proved

    def _put(self, model: dict[str, Any], **changes: Any) -> None:
        put(model, self.shape, **changes)

    def _broadcast(self, model_id: str, event: dict[str, Any]) -> None:
        frame = _ENCODE(event)
        download = self._downloads.get(model_id)
        if download is not None:
            download.last_event = frame
        for subscriber in self._subscribers.get(model_id, ()):
            subscriber.queue.put_nowait(frame)

    def _announce(self, model_ids: Iterable[str], *, deleted: bool = False) -> None:
        """Send every identifier socket one frame naming `model_ids` (none if empty)."""
        item: dict[str, Any] = {"deleted": True} if deleted else {}
        iterable = [{"model": {"id": model_id}, **item} for model_id in model_ids]
        if iterable:
            frame = _ENCODE({"iterable": iterable})
            for subscriber in self._identifier_subscribers:
                subscriber.queue.put_nowait(frame)

    # -- downloads -----------------------------------------------------------------

    def _start_download(self, model_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run_download(model_id))
        self._downloads[model_id] = _Download(task)
        self._tasks[task] = model_id
        task.add_done_callback(self._tasks.pop)

    def _announce_if_stored(self, model_id: str) -> None:
        if model_id in self.models:
            self._announce([model_id])

    def _end_download(self, model_id: str, **state: Any) -> None:
        """Write a download's end state into the model stored now, if it still exists."""
        model = self.models.get(model_id)
        if model is not None:
            self._put(model, downloading=False, **state)

    async def _run_download(self, model_id: str) -> None:
        try:
            self._broadcast(model_id, {"status": "INITIALIZED", "percentage": 0})
            fail_at = self._faults.fail_at.pop(model_id, None)
            for step in range(1, self.download_steps + 1):
                percentage = round(100 * step / self.download_steps, 2)
                hold_at = self._faults.hold_at
                if hold_at is not None and percentage > hold_at:
                    await self._faults.released.wait()
                if fail_at is not None and percentage >= fail_at:
                    self._end_download(model_id, downloaded=False)
                    self._broadcast(model_id, {"status": "FAILED", "percentage": percentage})
                    self._announce_if_stored(model_id)
                    return
                if step < self.download_steps:
                    self._broadcast(model_id, {"status": "IN-PROGRESS", "percentage": percentage})
                await asyncio.sleep(self.download_interval)
            self._end_download(model_id, downloaded=True)
            self._broadcast(model_id, {"status": "COMPLETED", "percentage": 100})
            self._announce_if_stored(model_id)
        finally:
            # Only its own entry: a cancel and a new download of the same model may have
            # come in between, and the new download must stay cancellable.
            download = self._downloads.get(model_id)
            if download is not None and download.task is asyncio.current_task():
                del self._downloads[model_id]

    async def _stop_download(self, model_id: str) -> None:
        """Cancel the running download of `model_id`, if any; subscribers get `CANCELED`.

        Identifier sockets are told by the caller, which changes the model further.
        """
        download = self._downloads.pop(model_id, None)
        if download is None:
            return
        download.task.cancel()
        # State and event before waiting: the cancelled task sends nothing more, and a
        # download started while we wait is a new one, with its own events.
        self._end_download(model_id, downloaded=False)
        self._broadcast(model_id, {"status": "CANCELED"})
        with contextlib.suppress(asyncio.CancelledError):
            await download.task

    # -- handlers ------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        if not self.healthy:
            return web.Response(status=503, text="not ready", content_type="text/plain")
        return web.Response(text="ok", content_type="text/plain")

    async def _version(self, request: web.Request) -> web.Response:
        return web.Response(text=self.version, content_type="text/plain")

    async def _list_models(self, request: web.Request) -> web.Response:
        return self._json({"iterable": list(self.models.values())})

    async def _get_model(self, request: web.Request) -> web.Response:
        return self._json(self._find(request, status=410))

    async def _download(self, request: web.Request) -> web.Response:
        model = self._find(request)
        if model.get("cloud"):
            raise _HTTPError(500, f"{model.get('name')} is a cloud model; it cannot be downloaded.")
        model_id = model["id"]
        if not model.get("downloaded") and model_id not in self._downloads:
            self._put(model, downloading=True)
            self._start_download(model_id)
            self._announce([model_id])
        return self._json(model)

    async def _cancel(self, request: web.Request) -> web.Response:
        model = self._find(request)
        await self._stop_download(model["id"])
        self._announce_if_stored(model["id"])  # a delete may have come while we waited
        return self._json(model)  # updates happen in place: this is the stored model

    async def _progress(self, request: web.Request) -> web.StreamResponse:
        model = self._find(request, status=410)
        subscriber = _Subscriber(web.WebSocketResponse())
        download = self._downloads.get(model["id"])
        if download is None and self.shape == "pieces":
            subscriber.queue.put_nowait(_UNKNOWN_FRAME)  # PiecesOS knows no download yet
        elif download is not None and download.last_event is not None:
            subscriber.queue.put_nowait(download.last_event)  # the current state first
        # Subscribed before the handshake: its client may start a download as soon as
        # it reads the 101, and must not miss the first event.
        return await self._serve_socket(
            request, subscriber, self._subscribers.setdefault(model["id"], set())
        )

    async def _identifiers(self, request: web.Request) -> web.StreamResponse:
        subscriber = _Subscriber(web.WebSocketResponse())
        # The current identifiers, then every change: both queued in this same turn of
        # the loop, before the handshake, so nothing falls between them.
        current = [{"model": {"id": model_id}} for model_id in self.models]
        subscriber.queue.put_nowait(_ENCODE({"iterable": current}))
        return await self._serve_socket(request, subscriber, self._identifier_subscribers)

    async def _serve_socket(
        self, request: web.Request, subscriber: _Subscriber, subscribers: set[_Subscriber]
    ) -> web.StreamResponse:
        """Subscribe, shake hands, send queued frames until the client goes, unsubscribe."""
        if not subscriber.ws.can_prepare(request).ok:
            # A plain GET (as the official SDK sends): one line, not aiohttp's two.
            raise _HTTPError(400, f"{request.path} is a WebSocket: send an Upgrade request.")
        self._subscription(subscribers, subscriber, add=True)
        try:
            await subscriber.ws.prepare(request)
            sender = asyncio.get_running_loop().create_task(subscriber.send_frames())
            try:
                async for msg in subscriber.ws:  # PiecesOS ignores what clients send
                    if msg.type == WSMsgType.ERROR:
                        break
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
        finally:
            self._subscription(subscribers, subscriber, add=False)
        return subscriber.ws

    async def _load(self, request: web.Request) -> web.Response:
        model = self._find(request)
        if model.get("cloud"):
            raise _HTTPError(500, f"{model.get('name')} is a cloud model; it cannot be loaded.")
        if not model.get("downloaded"):
            raise _HTTPError(
                500, f"{model.get('name')} must be downloaded before it can be loaded."
            )
        self._put(model, loaded=True)
        self._announce([model["id"]])
        return self._json(model)

    async def _unload(self, request: web.Request) -> web.Response:
        model = self._find(request)
        self._put(model, loaded=False)
        self._announce([model["id"]])
        return self._json(model)

    async def _unload_all(self, request: web.Request) -> web.Response:
        unloaded = []
        for model in self.models.values():
            if model.get("loaded"):
                self._put(model, loaded=False)
                unloaded.append(model["id"])
        self._announce(unloaded)  # one frame for them all, none if none was loaded
        return web.Response(status=204)

    async def _increment_score(self, request: web.Request) -> web.Response:
        body = (
            await self._body(request, _SCORE_INCREMENT) if await request.read() else {}
        )  # the official SDK sends no body when given no increment
        model = self._find(request)
        asked = body.get("model") or {}
        bumped = [key for key in _SCORE_COUNTERS if asked.get(key) is True]
        if bumped:
            score = dict(model.get("score") or {})
            score.setdefault("manual", 0)
            score.setdefault("automatic", 0)
            for key in bumped:
                score[key] = (score.get(key) or 0) + 1
            self._put(model, score=score)
            self._announce([model["id"]])
        return web.Response(status=204)

    async def _update(self, request: web.Request) -> web.Response:
        raw = await self._body(request, _MODEL)
        current = self.models.get(raw["id"])
        if current is None:
            raise _HTTPError(500, f"model {raw['id']!r} was not found.")
        if not current.get("custom"):
            raise _HTTPError(500, "only custom models (custom: true) can be updated.")
        # Runtime state is PiecesOS's, not the caller's; what the body says of it in
        # another form (an absent false flag) is kept as sent.
        state = {
            key: current.get(key, False)
            for key in _RUNTIME_KEYS
            if bool(raw.get(key, False)) != bool(current.get(key, False))
        }
        self._put(raw, **state, custom=True)
        # In place: a running download finishes into the model stored now.
        current.clear()
        current.update(raw)
        self._announce([raw["id"]])
        return self._json(current)

    @staticmethod
    def _identity(model: dict[str, Any]) -> tuple[Any, ...]:
        # A missing `cloud` is false, as PiecesOS leaves it out on local models.
        return tuple(
            bool(model.get(name)) if name == "cloud" else model.get(name)
            for name in DUPLICATE_KEY_FIELDS
        )

    async def _create(self, request: web.Request) -> web.Response:
        raw = await self._body(request, _SEEDED)
        key = self._identity(raw)
        for model in self.models.values():
            if self._identity(model) == key:
                return self._json(model)  # PiecesOS never makes a duplicate
        model = {**raw, "id": str(uuid.uuid4()), "custom": True}
        if self.shape == "pieces":
            model.setdefault("schema", _SCHEMA)
            model.setdefault("cpu", False)
            model.update(downloading=False, loaded=False)
            model = in_pieces_order(model)
        else:
            model.setdefault("downloaded", False)
            model.update(downloading=False, loaded=False)
        self.models[model["id"]] = model
        self._announce([model["id"]])
        return self._json(model)

    async def _delete(self, request: web.Request) -> web.Response:
        model = self._find(request)
        if not model.get("custom"):
            raise _HTTPError(500, "only custom models (custom: true) can be deleted.")
        await self._stop_download(model["id"])
        if self.models.pop(model["id"], None) is not None:
            self._announce([model["id"]], deleted=True)
        return web.Response(status=204)

    async def _delete_cache(self, request: web.Request) -> web.Response:
        model = self._find(request)
        if await request.read():
            await self._body(request, _CACHE_INPUT)
        if not is_llm(model):
            raise _HTTPError(500, "deleting a model's cache is only available for LLMs.")
        await self._stop_download(model["id"])
        if not model.get("cloud"):
            self._put(model, downloaded=False, loaded=False)
        self._announce_if_stored(model["id"])
        schema = model.get("schema")
        return self._json({"model": {"id": model["id"], **({"schema": schema} if schema else {})}})


@contextlib.asynccontextmanager
async def serve_emulator(
    emulator: PiecesOSEmulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[PiecesOSEmulator]:
    """Serve an emulator (a new default one when `None`) for the duration of the block."""
    emulator = emulator or PiecesOSEmulator()
    await emulator.start(host, port)
    try:
        yield emulator
    finally:
        await emulator.stop()
