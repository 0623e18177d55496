"""The one HTTP and WebSocket path every endpoint goes through, and its error mapping.

`send()` makes one try of one request (a request slot, the size limit, the status check),
`connect_ws()` opens a WebSocket, `close_ws()` closes one within a bound; every aiohttp,
OS and msgspec error becomes the matching `PiecesError`, its cause kept.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import time
from types import TracebackType
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import anyio
import msgspec
import yarl

from ._config import Timeout
from ._exceptions import (
    ModelNotFoundError,
    PiecesAPIError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesError,
    PiecesTimeoutError,
)

T = TypeVar("T")

logger = logging.getLogger("aiopieces")

#: Bodies (after decompression) and WebSocket frames larger than this are refused.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: How long a WebSocket close handshake may take before the socket is dropped.
CLOSE_TIMEOUT = 2.0
#: Pings keep a dead PiecesOS (or a dropped network) from leaving a consumer waiting.
HEARTBEAT = 30.0
_NOT_FOUND = frozenset({404, 410})
#: A `Retry-After` longer than this is not a wait but a refusal.
_MAX_RETRY_AFTER = 3600.0


@functools.lru_cache(maxsize=4096)  # ids repeat: a bot asks for the same few models
def model_segment(model_id: str) -> str:
    """Encode a model id as exactly one path segment (`/`, `.`, `?`, `#` included)."""
    if not isinstance(model_id, str):
        raise TypeError(f"model id must be a str, not {type(model_id).__name__}")
    if not model_id:
        raise ValueError("model id must not be empty")
    # quote() leaves '.' alone, and '.' or '..' as a segment would be resolved away.
    return quote(model_id, safe="").replace(".", "%2E")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), if usable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds > _MAX_RETRY_AFTER:  # NaN, or not worth waiting
        return None
    return max(0.0, seconds)


def api_error(
    status: int, method: str, url: str, body: str, *, retry_after: float | None = None
) -> PiecesAPIError:
    """The error for a non-2xx answer: `ModelNotFoundError` for 404 and 410."""
    cls = ModelNotFoundError if status in _NOT_FOUND else PiecesAPIError
    return cls(status, method, url, body, retry_after=retry_after)


class translate_errors:
    """Turn aiohttp, OS and decoding errors raised inside into the matching `PiecesError`.

    A plain class rather than a generator-based context manager: it wraps every request,
    and this costs a fraction of one.
    """

    __slots__ = ("method", "target", "timeout")

    def __init__(self, method: str, target: str | yarl.URL, timeout: Timeout) -> None:
        self.method, self.target, self.timeout = method, target, timeout

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not isinstance(exc, Exception) or isinstance(exc, PiecesError):
            return  # nothing, ours already, or not an error (cancellation): as it is
        error = to_pieces_error(exc, self.method, str(self.target), self.timeout)
        if error is not exc:
            raise error from exc


def to_pieces_error(exc: Exception, method: str, url: str, timeout: Timeout) -> Exception:
    """The `PiecesError` for an aiohttp or OS error; any other error is returned unchanged."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        retry_after = parse_retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        return api_error(exc.status, method, url, exc.message, retry_after=retry_after)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return PiecesTimeoutError(
            f"{method} {url}: no connection within {timeout.connect} s (connect timeout: "
            "nothing accepted it, or the session's connector had no free connection)",
            phase="connect",
            method=method,
            url=url,
        )
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return PiecesTimeoutError(
            f"{method} {url}: no data for {timeout.read} s (read timeout)",
            phase="read",
            method=method,
            url=url,
        )
    if isinstance(exc, TimeoutError):
        return PiecesTimeoutError(
            f"{method} {url}: no complete answer within {timeout.total} s (total timeout)",
            phase="total",
            method=method,
            url=url,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        # The connection itself failed: PiecesOS never saw the request.
        reason = exc.os_error.strerror or str(exc)
        return PiecesConnectionError(url, reason, request_sent=False, method=method)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return PiecesConnectionError(url, f"too many redirects ({len(exc.history)})", method=method)
    if isinstance(exc, aiohttp.ClientResponseError):
        return PiecesConnectionError(url, f"{type(exc).__name__}: {exc.message}", method=method)
    if isinstance(exc, aiohttp.ClientError | OSError):
        reason = str(exc) or type(exc).__name__
        return PiecesConnectionError(url, f"the connection failed ({reason})", method=method)
    if isinstance(exc, UnicodeDecodeError | msgspec.DecodeError):
        return PiecesDecodeError(f"{method} {url}: {exc}", method=method, url=url)
    return exc


def decode(
    decoder: msgspec.json.Decoder[T],
    data: bytes | str,
    what: str,
    *,
    method: str | None = None,
    url: str | None = None,
) -> T:
    """Decode `data`, raising `PiecesDecodeError` with where in the payload it failed."""
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # msgspec raises UnicodeDecodeError for invalid UTF-8 inside a JSON string, and
        # RecursionError for arrays or objects nested thousands deep.
        preview = data[:200] if isinstance(data, str) else data[:200].decode("utf-8", "replace")
        raise PiecesDecodeError(
            f"{what}: {exc}; payload starts {preview!r}", method=method, url=url, preview=preview
        ) from exc


async def read_body(
    resp: aiohttp.ClientResponse, limit: int = MAX_RESPONSE_BYTES, idle: float | None = None
) -> bytes:
    """Read a response body, refusing one larger than `limit` bytes once decompressed.

    `idle` bounds each wait for more of the body (`Timeout.read`). aiohttp's own read
    timeout is meant to do that, but it can be dropped while reading is paused and
    resumed, and then a body that stalls half way would hang for ever.
    """
    length = resp.content_length
    if length is not None and "Content-Encoding" not in resp.headers:
        # Not compressed: the declared length is what lands in memory.
        if length > limit:
            raise PiecesDecodeError(
                f"{resp.method} {resp.url}: body of {length} bytes exceeds {limit}",
                method=resp.method,
                url=str(resp.url),
            )
        if resp.content.is_eof():
            return await resp.read()  # the common case: all of it is here already
    # Still arriving, compressed or of unknown length: count what decompression produces,
    # and bound every wait ourselves.
    chunks: list[bytes] = []
    size = 0
    while True:
        with anyio.move_on_after(idle) as scope:
            chunk = await resp.content.readany()
        if scope.cancelled_caught:
            raise PiecesTimeoutError(
                f"{resp.method} {resp.url}: no data for {idle} s (read timeout)",
                phase="read",
                method=resp.method,
                url=str(resp.url),
            )
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise PiecesDecodeError(
                f"{resp.method} {resp.url}: body exceeds {limit} bytes",
                method=resp.method,
                url=str(resp.url),
            )
        chunks.append(chunk)


async def send(
    session: aiohttp.ClientSession,
    slots: anyio.Semaphore | None,
    method: str,
    url: yarl.URL,
    *,
    data: bytes | None,
    headers: dict[str, str] | None,
    timeout: Timeout,
    aiohttp_timeout: aiohttp.ClientTimeout,
    limit: int,
) -> bytes:
    """One try of one request: a pool slot, send, read (at most `limit` bytes), check status.

    `slots=None` skips the slot: for the few calls that must not wait behind others.
    Returns the body of a 2xx answer; raises `PiecesAPIError` for any other status and
    the matching `PiecesError` for everything that goes wrong on the way.
    """
    if slots is not None:
        try:
            slots.acquire_nowait()  # the common case: a slot is free, no timer needed
        except anyio.WouldBlock:
            await _wait_for_slot(slots, method, url, timeout)
    try:
        with translate_errors(method, url, timeout):
            async with session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=aiohttp_timeout,
                # Our status handling applies, whatever the session's defaults are.
                raise_for_status=False,
            ) as resp:
                payload = await read_body(resp, limit, timeout.read)
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
    finally:
        if slots is not None:
            slots.release()
    if not 200 <= status < 300:
        text = payload.decode("utf-8", "replace")
        raise api_error(status, method, str(url), text, retry_after=parse_retry_after(retry_after))
    return payload


async def _wait_for_slot(
    slots: anyio.Semaphore, method: str, url: yarl.URL, timeout: Timeout
) -> None:
    try:
        # asyncio's own timeout: hundreds of calls may queue here, and it costs a fraction
        # of a cancel scope (aiopieces runs on asyncio only, see the README).
        async with asyncio.timeout(timeout.pool):
            await slots.acquire()
    except TimeoutError:
        raise PiecesTimeoutError(
            f"{method} {url}: every request slot of this client (max_connections) stayed "
            f"busy for {timeout.pool} s (pool timeout)",
            phase="pool",
            method=method,
            url=str(url),
        ) from None


async def connect_ws(
    session: aiohttp.ClientSession, url: yarl.URL, timeout: Timeout, *, max_msg_size: int
) -> aiohttp.ClientWebSocketResponse:
    """Open a WebSocket to the `http(s)` URL `url`: the one place a socket is opened.

    The handshake is bounded by `connect + read`; frames over `max_msg_size` are refused;
    pings every `HEARTBEAT` seconds find a dead peer. Errors are `PiecesError`s.
    """
    handshake = None
    if timeout.connect is not None and timeout.read is not None:
        handshake = timeout.connect + timeout.read
    try:
        with anyio.fail_after(handshake), translate_errors("GET", url, timeout):
            return await session.ws_connect(
                ws_url(url),
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
                heartbeat=HEARTBEAT,
                max_msg_size=max_msg_size,
            )
    except AssertionError as exc:
        # aiohttp asserts the transport is still there after the handshake; a peer that
        # drops the connection at that moment trips it. A failed connect, retryable.
        raise PiecesConnectionError(
            str(url), "the connection closed during the WebSocket handshake", method="GET"
        ) from exc
    except TimeoutError:  # ours: aiohttp's timeouts are PiecesTimeoutError by now
        raise PiecesTimeoutError(
            f"GET {url}: no WebSocket handshake within {handshake} s (connect + read)",
            phase="connect",
            method="GET",
            url=str(url),
        ) from None


async def close_ws(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Close a WebSocket within `CLOSE_TIMEOUT`, even when cancelled or the peer never answers.

    aiohttp's `close()` waits for the peer's CLOSE frame and restarts its timer on every
    other frame, so a peer that keeps sending could hold it for ever; the bound here is
    absolute, and aiohttp drops the connection when its close is cut short.
    """
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT) as scope:
        await ws.close()
    if scope.cancelled_caught:
        logger.debug("the peer did not finish the close handshake in %s s", CLOSE_TIMEOUT)
    if not ws.closed:
        # Cut short while another task was still reading: drop the connection, since
        # aiohttp offers no public abort for a client WebSocket.
        ws._response.close()


def join_url(base_url: str, path: str) -> yarl.URL:
    """The absolute URL of an already-encoded `path`, without re-encoding or normalising it."""
    return yarl.URL(base_url + path, encoded=True)


def ws_url(url: yarl.URL) -> yarl.URL:
    """The WebSocket form of an HTTP URL (`http` → `ws`, `https` → `wss`)."""
    scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
    return url.with_scheme(scheme)
