"""The one HTTP and WebSocket path every endpoint goes through, and its error mapping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
import yarl

from ._config import Timeout
from ._exceptions import (
    ModelNotFoundError,
    PiecesAPIError,
    PiecesClientStateError,
    PiecesConnectionError,
    PiecesDecodeError,
    PiecesError,
    PiecesTimeoutError,
)

T = TypeVar("T")

#: Bodies larger than this are refused rather than read into memory.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_NOT_FOUND = frozenset({404, 410})


def model_segment(model_id: str) -> str:
    """Encode a model id as exactly one path segment (`/`, `.`, `?`, `#` included)."""
    if not isinstance(model_id, str):
        raise TypeError(f"model id must be a str, not {type(model_id).__name__}")
    if not model_id:
        raise ValueError("model id must not be empty")
    # quote() leaves '.' alone, and '.' or '..' as a segment would be resolved away.
    return quote(model_id, safe="").replace(".", "%2E")


def api_error(status: int, method: str, url: str, body: str) -> PiecesAPIError:
    """The error for a non-2xx answer: `ModelNotFoundError` for 404 and 410."""
    cls = ModelNotFoundError if status in _NOT_FOUND else PiecesAPIError
    return cls(status, method, url, body)


@contextlib.contextmanager
def translate_errors(method: str, target: str | yarl.URL, timeout: Timeout) -> Iterator[None]:
    """Turn aiohttp and OS errors raised inside into the matching `PiecesError`."""
    try:
        yield
    except PiecesError:
        raise
    except Exception as exc:
        raise to_pieces_error(exc, method, str(target), timeout) from None


def to_pieces_error(exc: Exception, method: str, url: str, timeout: Timeout) -> Exception:
    """The `PiecesError` for an aiohttp or OS error; any other error is returned unchanged."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return api_error(exc.status, method, url, exc.message)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return PiecesTimeoutError(
            f"{method} {url}: no connection within {timeout.connect} s (connect timeout)"
        )
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return PiecesTimeoutError(f"{method} {url}: no data for {timeout.read} s (read timeout)")
    if isinstance(exc, TimeoutError):
        return PiecesTimeoutError(
            f"{method} {url}: no complete answer within {timeout.total} s (total timeout)"
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        # The connection itself failed: PiecesOS never saw the request.
        reason = exc.os_error.strerror or str(exc)
        return PiecesConnectionError(url, reason, request_sent=False)
    if isinstance(exc, aiohttp.TooManyRedirects):
        return PiecesConnectionError(url, f"too many redirects ({len(exc.history)})")
    if isinstance(exc, aiohttp.ClientResponseError):
        return PiecesConnectionError(url, f"{type(exc).__name__}: {exc.message}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        reason = str(exc) or type(exc).__name__
        return PiecesConnectionError(url, f"the connection failed ({reason})")
    if isinstance(exc, RuntimeError) and "closed" in str(exc).lower():
        # aiohttp's RuntimeError("Session is closed"): the session closed under us.
        return PiecesClientStateError("the HTTP session is closed")
    return exc


def decode(decoder: msgspec.json.Decoder[T], data: bytes | str, what: str) -> T:
    """Decode `data`, raising `PiecesDecodeError` with where in the payload it failed."""
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        preview = data[:200] if isinstance(data, str) else data[:200].decode("utf-8", "replace")
        raise PiecesDecodeError(f"{what}: {exc}; payload starts {preview!r}") from None


async def read_body(resp: aiohttp.ClientResponse, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """Read a response body, refusing one larger than `limit` bytes."""
    if resp.content_length is not None:
        if resp.content_length > limit:
            raise PiecesDecodeError(
                f"{resp.method} {resp.url}: body of {resp.content_length} bytes exceeds {limit}"
            )
        return await resp.read()  # the common case: a known, acceptable length
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise PiecesDecodeError(f"{resp.method} {resp.url}: body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def join_url(base_url: str, path: str) -> yarl.URL:
    """The absolute URL of an already-encoded `path`, without re-encoding or normalising it."""
    return yarl.URL(base_url + path, encoded=True)


def ws_url(url: yarl.URL) -> yarl.URL:
    """The WebSocket form of an HTTP URL (`http` → `ws`, `https` → `wss`)."""
    scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
    return url.with_scheme(scheme)
