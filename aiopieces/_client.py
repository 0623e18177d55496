"""`AsyncPiecesClient`: one session, one request path, a few lines per endpoint."""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import os
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, TypeVar

import aiohttp
import anyio
import msgspec
import yarl

from ._config import URL_ENV_VAR, Timeout, discover_pieces_os, resolve_base_url
from ._exceptions import (
    PiecesAPIError,
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesError,
    PiecesTimeoutError,
)
from ._merge import merge_into
from ._progress import DownloadProgress
from ._retry import Retry, with_retries
from ._streams import WebSocketStream
from ._transport import (
    CLOSE_TIMEOUT,
    MAX_RESPONSE_BYTES,
    decode,
    join_url,
    model_segment,
    send,
)
from ._types import (
    Model,
    ModelDeleteCacheInput,
    ModelDeleteCacheOutput,
    Models,
    SeededModel,
    SeededScore,
    SeededScoreIncrement,
)
from ._version import __version__
from ._watch import LiveModels, ModelWatch

__all__ = ["AsyncPiecesClient", "ClientState"]

logger = logging.getLogger("aiopieces")

T = TypeVar("T")

_ENCODER = msgspec.json.Encoder()
DEFAULT_TIMEOUT = Timeout()
_HEADERS = {"Accept": "application/json, text/plain", "User-Agent": f"aiopieces/{__version__}"}
_JSON_BODY = {"Content-Type": "application/json"}
DEFAULT_RETRY = Retry()


class _Unset:
    """The type of `_UNSET`: an option left as it is."""


_UNSET = _Unset()


class _Endpoint(msgspec.Struct, Generic[T], frozen=True):
    """One HTTP endpoint: method, path template and how to decode its answer."""

    method: str
    path: str
    decoder: msgspec.json.Decoder[T] | None
    #: Safe to repeat: a retry cannot do anything twice that once would not.
    idempotent: bool = False
    #: The answer is text (the runtime endpoints), returned as `str`.
    text: bool = False


_MODEL = msgspec.json.Decoder(Model)
_LIST_MODELS = _Endpoint("GET", "/models", msgspec.json.Decoder(Models), idempotent=True)
_GET_MODEL = _Endpoint("GET", "/model/{model}", _MODEL, idempotent=True)
_GET_RAW = _Endpoint("GET", "/model/{model}", msgspec.json.Decoder(msgspec.Raw), idempotent=True)
_JSON_OBJECT = msgspec.json.Decoder(dict[str, Any])
_DOWNLOAD = _Endpoint("POST", "/model/{model}/download", _MODEL)
_CANCEL_DOWNLOAD = _Endpoint("POST", "/model/{model}/download/cancel", _MODEL, idempotent=True)
_LOAD = _Endpoint("POST", "/model/{model}/load", _MODEL, idempotent=True)
_UNLOAD = _Endpoint("POST", "/model/{model}/unload", _MODEL, idempotent=True)
_UPDATE = _Endpoint("POST", "/model/update", _MODEL)
_CREATE = _Endpoint("POST", "/models/create", _MODEL)
_DELETE = _Endpoint[None]("POST", "/models/{model}/delete", None)
_DELETE_CACHE = _Endpoint(
    "POST", "/models/{model}/delete/cache", msgspec.json.Decoder(ModelDeleteCacheOutput)
)
_UNLOAD_ALL = _Endpoint[None]("POST", "/models/unload", None, idempotent=True)
_SCORE = _Endpoint[None]("POST", "/model/{model}/scores/increment", None)
_HEALTH = _Endpoint[str]("GET", "/.well-known/health", None, idempotent=True, text=True)
_VERSION = _Endpoint[str]("GET", "/.well-known/version", None, idempotent=True, text=True)
#: "This model was used": what `increment_model_score` sends when told nothing else.
_USED = SeededScoreIncrement(model=SeededScore(reuse=True))


class ClientState(enum.Enum):
    """Where a client is in its life: new, open, closing, closed (never reopened)."""

    NEW = "new"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(eq=False)
class _Connection:
    """What every view of one client shares: the session, the open streams, the state."""

    base_url: str | None
    session: aiohttp.ClientSession | None
    owns_session: bool
    max_connections: int
    state: ClientState = ClientState.NEW
    streams: set[WebSocketStream[Any]] = field(default_factory=set)
    #: Two tasks opening one client at once must not make two sessions.
    opening: anyio.Lock = field(default_factory=anyio.Lock)
    #: Set when closing begins: waits between retries end at once.
    closing: anyio.Event = field(default_factory=anyio.Event)
    #: Set when closing is over: a second `aclose()` waits for it.
    closed: anyio.Event = field(default_factory=anyio.Event)
    #: The event loop the session belongs to.
    loop: asyncio.AbstractEventLoop | None = None
    #: Neither given nor from `PIECES_OS_URL`: found by probing, so it may move.
    rediscoverable: bool = False
    #: One search at a time: calls refused together wait for the one search.
    rediscovering: anyio.Lock = field(default_factory=anyio.Lock)
    #: Request/response calls take a slot; WebSockets do not, so that streams waiting
    #: for progress can never starve the calls that start or cancel their downloads.
    slots: anyio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = anyio.Semaphore(self.max_connections)

    async def sleep(self, seconds: float) -> None:
        """Wait between retries; a client that closes meanwhile ends the wait with an error."""
        with anyio.move_on_after(seconds):
            await self.closing.wait()
        if self.state is not ClientState.OPEN:
            raise PiecesClientStateError("the client was closed while waiting to retry")


@dataclass(frozen=True, slots=True)
class _Options:
    """What may differ between views of one client: one value, replaced as a whole."""

    timeout: Timeout
    retry: Retry
    max_response_bytes: int
    #: `timeout` as aiohttp takes it, made once rather than per call.
    aiohttp_timeout: aiohttp.ClientTimeout

    @classmethod
    def make(
        cls, timeout: Timeout | float | None, retry: Retry | None, max_response_bytes: int
    ) -> _Options:
        """Options from what a user may pass."""
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        timeout = Timeout.coerce(timeout)
        return cls(timeout, Retry.coerce(retry), max_response_bytes, timeout.to_aiohttp())


class AsyncPiecesClient:
    """An async client for PiecesOS's Model and Models APIs; use it with `async with`.

    `with_options()` gives views of one client: they share its session, its streams and
    its state, so closing any of them (`aclose()`, leaving `async with`) closes them all.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: Timeout | float | None = DEFAULT_TIMEOUT,
        retry: Retry | None = DEFAULT_RETRY,
        max_connections: int = 100,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        """Configure the client; nothing connects before `async with` (or `open()`)."""
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._options = _Options.make(timeout, retry, max_response_bytes)
        self._conn = _Connection(
            base_url, session, owns_session=session is None, max_connections=max_connections
        )

    @classmethod
    def _sharing(cls, conn: _Connection, options: _Options) -> AsyncPiecesClient:
        """A view of `conn` with `options` (what `with_options` returns)."""
        view = cls.__new__(cls)
        view._conn, view._options = conn, options
        return view

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> AsyncPiecesClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Resolve the base URL and create the HTTP session; `async with` calls this."""
        conn = self._conn
        loop = _running_asyncio_loop()
        async with conn.opening:
            if conn.state is ClientState.NEW:
                conn.rediscoverable = not conn.base_url and not os.environ.get(URL_ENV_VAR)
                base_url = await resolve_base_url(conn.base_url)
                if conn.state is not ClientState.NEW:  # closed while we resolved the URL
                    raise PiecesClientStateError("the client was closed while it was opening")
                conn.base_url = base_url
                conn.loop = loop
                if conn.session is None:
                    conn.session = aiohttp.ClientSession(
                        headers=_HEADERS,
                        timeout=self._options.aiohttp_timeout,
                        # No connector limit: request/response calls are limited by
                        # `slots`, and WebSockets must not wait behind them.
                        connector=aiohttp.TCPConnector(limit=0),
                    )
                conn.state = ClientState.OPEN
            elif conn.state is not ClientState.OPEN:
                raise PiecesClientStateError("this client is closed; create a new one")

    async def aclose(self) -> None:
        """Finish every open stream as its owner asked, then close the session if ours.

        Bounded: each stream's close handshake and cancel take at most a few seconds,
        even when the server misbehaves, and they run at once. A second `aclose()` waits
        for the first; cancelling `aclose()` still closes everything first.
        """
        conn = self._conn
        if conn.state is ClientState.NEW:
            conn.state = ClientState.CLOSED  # an `open()` under way notices and gives up
            conn.closing.set()
            conn.closed.set()
            return
        if conn.state is not ClientState.OPEN:
            with anyio.CancelScope(shield=True):
                await conn.closed.wait()  # bounded: the first `aclose()` is
            return
        conn.state = ClientState.CLOSING
        conn.closing.set()
        try:
            with anyio.CancelScope(shield=True):
                try:
                    async with anyio.create_task_group() as tg:
                        for stream in list(conn.streams):
                            tg.start_soon(stream.abort, "the client was closed")
                finally:
                    if conn.owns_session and conn.session is not None:
                        with anyio.move_on_after(CLOSE_TIMEOUT):
                            await conn.session.close()
        finally:
            conn.state = ClientState.CLOSED
            conn.closed.set()

    @property
    def state(self) -> ClientState:
        """Where this client is in its life; `CLOSED` only once closing has finished."""
        return self._conn.state

    @property
    def base_url(self) -> str:
        """The PiecesOS URL in use (known once the client is open)."""
        if self._conn.base_url is None:
            raise PiecesClientStateError("the base URL is resolved when the client opens")
        return self._conn.base_url

    @property
    def timeout(self) -> Timeout:
        """The timeouts this client applies."""
        return self._options.timeout

    @property
    def retry(self) -> Retry:
        """The retry policy this client applies."""
        return self._options.retry

    def with_options(
        self,
        *,
        timeout: Timeout | float | _Unset | None = _UNSET,
        retry: Retry | _Unset | None = _UNSET,
        max_response_bytes: int | _Unset = _UNSET,
    ) -> AsyncPiecesClient:
        """A view of this client, sharing its session, streams and state, with other options.

        For one call: `await client.with_options(timeout=600).load_model(big_model)`.
        Closing the view closes the client (they are one).
        """
        old = self._options
        return self._sharing(
            self._conn,
            _Options.make(
                old.timeout if isinstance(timeout, _Unset) else timeout,
                old.retry if isinstance(retry, _Unset) else retry,
                old.max_response_bytes
                if isinstance(max_response_bytes, _Unset)
                else max_response_bytes,
            ),
        )

    # -- the Models API ----------------------------------------------------------

    async def list_models(self) -> Models:
        """Every model PiecesOS knows (`GET /models`)."""
        return await self._call(_LIST_MODELS)

    async def create_model(self, seeded_model: SeededModel) -> Model:
        """Register a custom model (`POST /models/create`); PiecesOS never makes duplicates."""
        return await self._call(_CREATE, body=seeded_model)

    async def delete_model(self, model_id: str) -> None:
        """Delete a custom model (`POST /models/{model}/delete`)."""
        await self._call(_DELETE, model_id)

    async def delete_model_cache(
        self, model_id: str, cache_input: ModelDeleteCacheInput | None = None
    ) -> ModelDeleteCacheOutput:
        """Delete the data downloaded for an LLM (`POST /models/{model}/delete/cache`)."""
        return await self._call(_DELETE_CACHE, model_id, body=cache_input)

    async def unload_models(self) -> None:
        """Unload every loaded model (`POST /models/unload`)."""
        await self._call(_UNLOAD_ALL)

    # -- the Model API -----------------------------------------------------------

    async def get_model(self, model_id: str) -> Model:
        """One model by id (`GET /model/{model}`); `ModelNotFoundError` if unknown."""
        return await self._call(_GET_MODEL, model_id)

    async def download_model(self, model_id: str) -> Model:
        """Start downloading a model (`POST /model/{model}/download`); returns at once."""
        return await self._call(_DOWNLOAD, model_id)

    async def cancel_download(self, model_id: str) -> Model:
        """Cancel a download in progress (`POST /model/{model}/download/cancel`)."""
        return await self._call(_CANCEL_DOWNLOAD, model_id)

    async def load_model(self, model_id: str) -> Model:
        """Load a downloaded model into memory (`POST /model/{model}/load`)."""
        return await self._call(_LOAD, model_id)

    async def unload_model(self, model_id: str) -> Model:
        """Unload a model from memory (`POST /model/{model}/unload`)."""
        return await self._call(_UNLOAD, model_id)

    async def update_model(self, model: Model) -> Model:
        """Update a custom model (`POST /model/update`), keeping what we cannot see.

        PiecesOS gets back the JSON it has now, with only the fields where `model` differs
        from it replaced: fields and values this release of aiopieces does not know, nulls,
        absent keys and timestamp strings reach it exactly as it sent them.
        """
        served_json: msgspec.Raw = await self._call(_GET_RAW, model.id)
        raw = bytes(served_json)  # bytes, for a decode error's preview
        path = self._path(_GET_RAW.path, model.id)  # the GET just made
        what, url = f"GET {path}", str(self._url_of(path))
        current = decode(_JSON_OBJECT, raw, what, method="GET", url=url)
        served = decode(_MODEL, raw, what, method="GET", url=url)
        return await self._call(_UPDATE, body=merge_into(current, served, model))

    def download_progress(
        self, model_id: str, *, stall_timeout: float | None = None
    ) -> DownloadProgress:
        """Progress events of a model's download (WS `/model/{model}/download/progress`).

        Use as `async for event in client.download_progress(m)` or
        `async with client.download_progress(m) as events`; ends after a terminal status.
        """
        return DownloadProgress(
            _StreamHost(self), model_id, get_model=self.get_model, stall_timeout=stall_timeout
        )

    def download(
        self,
        model_id: str,
        *,
        cancel_on_exit: bool = False,
        stall_timeout: float | None = None,
    ) -> DownloadProgress:
        """Subscribe to progress, start the download, and stream events to its end.

        If the consumer leaves before the end (break, cancellation or error), the download
        goes on in PiecesOS unless `cancel_on_exit=True`, which then cancels it.
        `stall_timeout`: `PiecesTimeoutError` (phase `stall`) after that many seconds
        without the percentage moving. The stream's `total_bytes`, `bytes_done`, `rate`
        and `eta` tell more when PiecesOS gives the model's size.
        """
        return DownloadProgress(
            _StreamHost(self),
            model_id,
            get_model=self.get_model,
            start=self.download_model,
            cancel_on_exit=self._cancel_on_exit if cancel_on_exit else None,
            stall_timeout=stall_timeout,
        )

    async def increment_model_score(
        self, model_id: str, increment: SeededScoreIncrement | None = None
    ) -> None:
        """Add usage points to a model (`POST /model/{model}/scores/increment`).

        With no `increment`, it says "this model was used" (`reuse`); PiecesOS ranks
        models by these points.
        """
        increment = _USED if increment is None else increment
        if not isinstance(increment, SeededScoreIncrement):
            raise TypeError(
                f"increment must be a SeededScoreIncrement, not {type(increment).__name__}"
            )
        try:
            body = increment.to_json_object()
        except (TypeError, msgspec.EncodeError, RecursionError) as exc:
            raise TypeError(f"cannot send this increment as JSON: {exc}") from None
        await self._call(_SCORE, model_id, body=body)

    def watch_models(self) -> ModelWatch:
        """Batches of changed model identifiers (WS `/models/stream/identifiers`).

        Use as `async for batch in client.watch_models()` or with `async with`; the first
        batch on every (re)connected socket lists every model (`stream.snapshot`).
        """
        return ModelWatch(_StreamHost(self))

    def live_models(self) -> LiveModels:
        """A dict of models kept current from `watch_models()`: `async with` it."""
        timeout = self._options.timeout
        first = None
        if timeout.connect is not None and timeout.read is not None:
            first = timeout.connect + timeout.read
        return LiveModels(self.watch_models(), self.get_model, first_batch_timeout=first)

    # -- the PiecesOS runtime ------------------------------------------------------

    async def health(self) -> str:
        """PiecesOS's health text (`GET /.well-known/health`): `ok` first when healthy."""
        return await self._call(_HEALTH)

    async def version(self) -> str:
        """The PiecesOS version (`GET /.well-known/version`), as text."""
        return (await self._call(_VERSION)).strip()

    async def wait_until_ready(self, timeout: float = 30.0) -> None:
        """Poll `health()` with backoff until PiecesOS answers "ok", for `timeout` seconds.

        The desktop app takes a few seconds to start; `PiecesTimeoutError` says what
        PiecesOS last answered when it never became ready in time.
        """
        if not 0 < timeout < math.inf:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        # One try per poll: a refused connection then also looks for PiecesOS on its
        # other ports (see `_call`), which it may have taken when it started.
        bound = min(timeout, 2.0)
        probe = self.with_options(retry=None, timeout=Timeout(connect=bound, read=bound))
        last: PiecesError | str | None = None
        delay = 0.05
        with anyio.move_on_after(timeout):
            while True:
                try:
                    answer = (await probe.health()).strip()
                    if answer.startswith("ok"):
                        return
                    last = f"health answered {answer[:80]!r}"
                except (PiecesConnectionError, PiecesTimeoutError, PiecesAPIError) as exc:
                    last = exc
                await self._conn.sleep(delay)
                delay = min(1.0, delay * 2)
        raise PiecesTimeoutError(
            f"PiecesOS at {self.base_url} was not ready within {timeout} s (last: {last})",
            phase="total",
            method="GET",
            url=str(self._url_of("/.well-known/health")),
        )

    async def _cancel_on_exit(self, model_id: str) -> None:
        """The cancel a stream owes when it ends early.

        Allowed while the client closes, and it takes no request slot: slow calls holding
        every slot must not keep a download running that its owner asked to cancel.
        """
        await self._call(_CANCEL_DOWNLOAD, model_id, internal=True)

    # -- the shared request path -----------------------------------------------

    def _session(self, *, closing_ok: bool = False) -> aiohttp.ClientSession:
        conn = self._conn
        state = conn.state
        if state is not ClientState.OPEN and not (closing_ok and state is ClientState.CLOSING):
            if state is ClientState.NEW:
                raise PiecesClientStateError(
                    "the client is not open: use `async with AsyncPiecesClient() as client:`"
                )
            raise PiecesClientStateError("this client is closed; create a new one")
        session = conn.session
        assert session is not None  # open, so it has a session
        if conn.loop is not _running_asyncio_loop():
            raise PiecesClientStateError(
                "this client was opened in another event loop; open one client per loop"
            )
        if session.closed:
            raise PiecesClientStateError("the aiohttp session given to this client is closed")
        return session

    def _path(self, template: str, model_id: str | None) -> str:
        return template if model_id is None else template.format(model=model_segment(model_id))

    async def _call(
        self,
        endpoint: _Endpoint[T],
        model_id: str | None = None,
        *,
        body: msgspec.Struct | dict[str, Any] | None = None,
        internal: bool = False,
    ) -> T:
        path = self._path(endpoint.path, model_id)
        tried = self._conn.base_url
        try:
            data = None if body is None else _ENCODER.encode(body)
        except (TypeError, msgspec.EncodeError, RecursionError) as exc:
            raise TypeError(f"cannot send {type(body).__name__} as JSON: {exc}") from None
        try:
            return await with_retries(
                lambda: self._send(endpoint, path, data, internal),
                idempotent=endpoint.idempotent,
                policy=self._options.retry,
                what=f"{endpoint.method} {path}",
                sleep=self._conn.sleep,
            )
        except PiecesConnectionError as exc:
            if exc.request_sent or not await self._rediscover(tried):
                raise
        # PiecesOS moved to another port (it takes the first free one when it starts):
        # one more go there.
        return await self._send(endpoint, path, data, internal)

    async def _rediscover(self, tried: str | None) -> bool:
        """Find PiecesOS again if it was found by probing; whether it is now elsewhere
        than `tried`, the base URL that refused."""
        conn = self._conn
        if not conn.rediscoverable or conn.state is not ClientState.OPEN:
            return False
        async with conn.rediscovering:
            if conn.base_url != tried:
                return True  # another call found it meanwhile
            found = await discover_pieces_os()
            if found is None or found == conn.base_url:
                return False
            logger.info("PiecesOS moved from %s to %s", conn.base_url, found)
            conn.base_url = found
            return True

    async def _send(
        self, endpoint: _Endpoint[T], path: str, data: bytes | None, internal: bool = False
    ) -> T:
        """One try of one request: send, read, check the status, decode."""
        session = self._session(closing_ok=internal)
        url = join_url(self.base_url, path)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", endpoint.method, url)
        try:
            payload = await send(
                session,
                None if internal else self._conn.slots,
                endpoint.method,
                url,
                data=data,
                headers=None if data is None else _JSON_BODY,
                timeout=self._options.timeout,
                aiohttp_timeout=self._options.aiohttp_timeout,
                limit=self._options.max_response_bytes,
            )
        except (PiecesError, RuntimeError) as exc:
            # A session closed under the call (by `aclose()`, or by its owner) fails it
            # in many ways; what the caller needs to know is that the client is closed.
            if self._conn.state is not ClientState.OPEN and not internal:
                raise PiecesClientStateError(
                    f"the client was closed while {endpoint.method} {url} was in flight"
                ) from exc
            if session.closed:
                raise PiecesClientStateError(
                    f"the aiohttp session was closed while {endpoint.method} {url} was in flight"
                ) from exc
            raise
        if endpoint.text:
            return payload.decode("utf-8", "replace")  # type: ignore[return-value]  # T is str
        if endpoint.decoder is None:
            return None  # type: ignore[return-value]  # T is None for no-body endpoints
        return decode(
            endpoint.decoder,
            payload,
            f"{endpoint.method} {url}",
            method=endpoint.method,
            url=str(url),
        )

    def _url_of(self, path: str) -> yarl.URL:
        """The HTTP URL of an already-encoded `path` on PiecesOS, where it is now."""
        return join_url(self.base_url, path)


class _StreamHost:
    """What a stream of one client (view) may use of it: see `StreamHost`."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncPiecesClient) -> None:
        self._client = client

    @property
    def timeout(self) -> Timeout:
        return self._client.timeout

    @property
    def retry(self) -> Retry:
        return self._client.retry

    @property
    def max_frame_bytes(self) -> int:
        return self._client._options.max_response_bytes

    def session(self) -> aiohttp.ClientSession:
        return self._client._session()

    def url(self, path: str) -> yarl.URL:
        return self._client._url_of(path)

    def attach(self, stream: WebSocketStream[Any]) -> None:
        self._client._conn.streams.add(stream)

    def detach(self, stream: WebSocketStream[Any]) -> None:
        self._client._conn.streams.discard(stream)

    async def sleep(self, seconds: float) -> None:
        await self._client._conn.sleep(seconds)

    async def rediscover(self) -> None:
        await self._client._rediscover(self._client._conn.base_url)


def _running_asyncio_loop() -> asyncio.AbstractEventLoop:
    """The running asyncio loop, or a clear error under another event loop (trio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise PiecesClientStateError(
            "aiopieces runs on asyncio (it is built on aiohttp): call it from an asyncio "
            "event loop, not from trio or from synchronous code"
        ) from None
