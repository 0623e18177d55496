"""`AsyncPiecesClient`: one session, one request path, a few lines per endpoint."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Generic, TypeVar

import aiohttp
import anyio
import msgspec
import yarl

from ._config import Timeout, resolve_base_url
from ._exceptions import PiecesClientStateError, PiecesError
from ._merge import merge_into
from ._progress import DownloadProgress
from ._retry import Retry, with_retries
from ._transport import (
    MAX_RESPONSE_BYTES,
    api_error,
    decode,
    join_url,
    model_segment,
    read_body,
    translate_errors,
)
from ._types import Model, ModelDeleteCacheInput, ModelDeleteCacheOutput, Models, SeededModel
from ._version import __version__

__all__ = ["AsyncPiecesClient"]

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


_MODEL = msgspec.json.Decoder(Model)
_LIST_MODELS = _Endpoint("GET", "/models", msgspec.json.Decoder(Models), idempotent=True)
_GET_MODEL = _Endpoint("GET", "/model/{model}", _MODEL, idempotent=True)
_GET_RAW = _Endpoint("GET", "/model/{model}", msgspec.json.Decoder(dict[str, Any]), idempotent=True)
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
PROGRESS_PATH = "/model/{model}/download/progress"


class _Connection(msgspec.Struct):
    """What every view of one client shares: the session and the open WebSockets."""

    base_url: str | None
    session: aiohttp.ClientSession | None
    owns_session: bool
    state: str = "new"  # new -> open -> closed
    streams: set[DownloadProgress] = msgspec.field(default_factory=set)
    #: Two tasks opening one client at once must not make two sessions.
    opening: anyio.Lock = msgspec.field(default_factory=anyio.Lock)


class AsyncPiecesClient:
    """An async client for PiecesOS's Model and Models APIs; use it with `async with`."""

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
        self._conn = _Connection(base_url, session, owns_session=session is None)
        self._max_connections = max_connections
        self._max_response_bytes = max_response_bytes
        self._configure(timeout, retry)

    def _configure(self, timeout: Timeout | float | None, retry: Retry | None) -> None:
        self._timeout = Timeout.coerce(timeout)
        self._aiohttp_timeout = self._timeout.to_aiohttp()
        self._retry = Retry.coerce(retry)

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
        async with conn.opening:
            if conn.state == "new":
                await self._open_once()
            elif conn.state == "closed":
                raise PiecesClientStateError("this client is closed; create a new one")

    async def _open_once(self) -> None:
        conn = self._conn
        base_url = await resolve_base_url(conn.base_url)
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the PiecesOS URL must start with http:// or https://: {base_url!r}")
        conn.base_url = base_url
        if conn.session is None:
            conn.session = aiohttp.ClientSession(
                headers=_HEADERS,
                timeout=self._aiohttp_timeout,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
            )
        conn.state = "open"

    async def aclose(self) -> None:
        """End every open progress stream and close the session if the client made it."""
        conn = self._conn
        if conn.state == "closed":
            return
        conn.state = "closed"
        for stream in list(conn.streams):
            await stream.abort("the client was closed")
        if conn.owns_session and conn.session is not None:
            await conn.session.close()

    @property
    def base_url(self) -> str:
        """The PiecesOS URL in use (known once the client is open)."""
        if self._conn.base_url is None:
            raise PiecesClientStateError("the base URL is resolved when the client opens")
        return self._conn.base_url

    @property
    def timeout(self) -> Timeout:
        """The timeouts this client applies."""
        return self._timeout

    @property
    def retry(self) -> Retry:
        """The retry policy this client applies."""
        return self._retry

    def with_options(
        self,
        *,
        timeout: Timeout | float | _Unset | None = _UNSET,
        retry: Retry | _Unset | None = _UNSET,
    ) -> AsyncPiecesClient:
        """A view of this client, sharing its session and streams, with other options.

        For one call: `await client.with_options(timeout=600).load_model(big_model)`.
        """
        view = object.__new__(AsyncPiecesClient)
        view._conn = self._conn
        view._max_connections = self._max_connections
        view._max_response_bytes = self._max_response_bytes
        view._configure(
            self._timeout if isinstance(timeout, _Unset) else timeout,
            self._retry if isinstance(retry, _Unset) else retry,
        )
        return view

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

        The model's fields are merged into the JSON PiecesOS has now, so fields and values
        this release of aiopieces does not know survive the update instead of being erased.
        """
        current = await self._call(_GET_RAW, model.id)
        return await self._call(_UPDATE, body=merge_into(current, model))

    def download_progress(self, model_id: str) -> DownloadProgress:
        """Progress events of a model's download (WS `/model/{model}/download/progress`).

        Use as `async for event in client.download_progress(m)` or
        `async with client.download_progress(m) as events`; ends after a terminal status.
        """
        return DownloadProgress(self, model_id, start_download=False, cancel_on_exit=False)

    def download(self, model_id: str, *, cancel_on_exit: bool = False) -> DownloadProgress:
        """Subscribe to progress, start the download, and stream events to its end.

        If the consumer leaves before the end (break, cancellation or error), the download
        goes on in PiecesOS unless `cancel_on_exit=True`, which then cancels it.
        """
        return DownloadProgress(self, model_id, start_download=True, cancel_on_exit=cancel_on_exit)

    # -- the shared request path -----------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        conn = self._conn
        if conn.state != "open" or conn.session is None:
            if conn.state == "closed":
                raise PiecesClientStateError("this client is closed; create a new one")
            raise PiecesClientStateError(
                "the client is not open: use `async with AsyncPiecesClient() as client:`"
            )
        if conn.session.closed:
            raise PiecesClientStateError("the aiohttp session given to this client is closed")
        return conn.session

    def _path(self, template: str, model_id: str | None) -> str:
        return template if model_id is None else template.format(model=model_segment(model_id))

    async def _call(
        self,
        endpoint: _Endpoint[T],
        model_id: str | None = None,
        *,
        body: msgspec.Struct | dict[str, Any] | None = None,
    ) -> T:
        path = self._path(endpoint.path, model_id)
        try:
            data = None if body is None else _ENCODER.encode(body)
        except (TypeError, msgspec.EncodeError) as exc:
            raise TypeError(f"cannot send {type(body).__name__} as JSON: {exc}") from None
        return await with_retries(
            lambda: self._send(endpoint, path, data),
            idempotent=endpoint.idempotent,
            policy=self._retry,
            what=f"{endpoint.method} {path}",
        )

    async def _send(self, endpoint: _Endpoint[T], path: str, data: bytes | None) -> T:
        """One try of one request: send, read, check the status, decode."""
        session = self._session()
        url = join_url(self.base_url, path)
        headers = None if data is None else _JSON_BODY
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", endpoint.method, url)
        try:
            with translate_errors(endpoint.method, url, self._timeout):
                async with session.request(
                    endpoint.method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=self._aiohttp_timeout,
                ) as resp:
                    payload = await read_body(resp, self._max_response_bytes)
                    status = resp.status
        except PiecesError:
            if self._conn.state == "closed":
                raise PiecesClientStateError(
                    f"the client was closed while {endpoint.method} {url} was in flight"
                ) from None
            raise
        if not 200 <= status < 300:
            text = payload.decode("utf-8", "replace")
            raise api_error(status, endpoint.method, str(url), text)
        if endpoint.decoder is None:
            return None  # type: ignore[return-value]  # T is None for 204 endpoints
        return decode(endpoint.decoder, payload, f"{endpoint.method} {url}")

    def _progress_url(self, model_id: str) -> yarl.URL:
        return join_url(self.base_url, self._path(PROGRESS_PATH, model_id))
