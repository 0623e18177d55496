"""The errors aiopieces raises; nothing from aiohttp, asyncio or msgspec escapes.

PiecesError
├── PiecesConnectionError      PiecesOS cannot be reached (not running? wrong URL?)
├── PiecesTimeoutError         a configured timeout ran out
├── PiecesAPIError             PiecesOS answered with a non-2xx status
│   └── ModelNotFoundError     410 or 404: no model with that id
├── PiecesDecodeError          a 2xx body or WebSocket frame is not the expected type
├── PiecesStreamError          a download ended unseen: its stream cannot say how
└── PiecesClientStateError     the client is not open (use `async with`) or is closed
"""

from __future__ import annotations

__all__ = [
    "ModelNotFoundError",
    "PiecesAPIError",
    "PiecesClientStateError",
    "PiecesConnectionError",
    "PiecesDecodeError",
    "PiecesError",
    "PiecesStreamError",
    "PiecesTimeoutError",
]

#: How much of an error body is kept on `PiecesAPIError.body`.
MAX_ERROR_BODY_CHARS = 2000


class PiecesError(Exception):
    """Base of every error aiopieces raises."""


class PiecesConnectionError(PiecesError):
    """PiecesOS could not be reached at the URL tried."""

    def __init__(self, url: str, reason: str, *, request_sent: bool = True) -> None:
        self.url = url
        self.reason = reason
        #: False when the connection itself failed, so PiecesOS never saw the request.
        self.request_sent = request_sent
        super().__init__(
            f"cannot reach PiecesOS at {url}: {reason}. Is PiecesOS running? "
            "Set the URL with AsyncPiecesClient(base_url) or PIECES_OS_URL."
        )


class PiecesTimeoutError(PiecesError):
    """A configured timeout ran out before PiecesOS answered; `phase` says which one."""

    def __init__(self, message: str, *, phase: str) -> None:
        #: Which bound ran out: `connect`, `pool`, `read`, `total` or `ws_idle`.
        self.phase = phase
        super().__init__(message)


class PiecesAPIError(PiecesError):
    """PiecesOS answered with a status outside 2xx."""

    def __init__(
        self, status: int, method: str, url: str, body: str, *, retry_after: float | None = None
    ) -> None:
        if len(body) > MAX_ERROR_BODY_CHARS:
            body = body[:MAX_ERROR_BODY_CHARS] + f"... ({len(body)} characters in all)"
        self.status = status
        self.method = method
        self.url = url
        self.body = body
        #: Seconds the server asked us to wait (`Retry-After`), when it said so.
        self.retry_after = retry_after
        detail = body.strip().splitlines()[0] if body.strip() else "(empty body)"
        super().__init__(f"{method} {url} answered {status}: {detail[:200]}")


class ModelNotFoundError(PiecesAPIError):
    """PiecesOS knows no model with the requested id (410 or 404)."""


class PiecesDecodeError(PiecesError):
    """A 2xx body or WebSocket frame is not the expected type; the message says where."""


class PiecesStreamError(PiecesError):
    """A download ended while its progress socket was down, and not by completing."""


class PiecesClientStateError(PiecesError):
    """The client was used before `async with` (or `open()`) or after it closed."""
