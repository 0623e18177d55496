"""The errors aiopieces raises; nothing from aiohttp, asyncio or msgspec escapes.

PiecesError
├── PiecesRequestError             a request was involved: .method and .url say which
│   ├── PiecesConnectionError      PiecesOS cannot be reached (not running? wrong URL?)
│   ├── PiecesTimeoutError         a configured timeout ran out; .phase says which
│   ├── PiecesAPIError             PiecesOS answered with a non-2xx status
│   │   └── ModelNotFoundError     410 or 404: no model with that id
│   ├── PiecesDecodeError          a body or WebSocket frame is not the expected type
│   └── PiecesStreamError          a download ended unseen: its stream cannot say how
├── ModelLookupError               no model, or several, by that name (also a LookupError)
└── PiecesClientStateError         the client is not open (use `async with`) or is closed

Every error raised because of an aiohttp, OS or msgspec error keeps it as `__cause__`.
"""

from __future__ import annotations

__all__ = [
    "ModelLookupError",
    "ModelNotFoundError",
    "PiecesAPIError",
    "PiecesClientStateError",
    "PiecesConnectionError",
    "PiecesDecodeError",
    "PiecesError",
    "PiecesRequestError",
    "PiecesStreamError",
    "PiecesTimeoutError",
]


class PiecesError(Exception):
    """Base of every error aiopieces raises."""


class PiecesRequestError(PiecesError):
    """An error that concerns one request: `method` and `url` say which."""

    #: The request's method (`GET` for a WebSocket handshake), when known.
    method: str | None = None
    #: The request's URL, when known.
    url: str | None = None

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None):
        self.method = method
        self.url = url
        super().__init__(message)


class PiecesConnectionError(PiecesRequestError):
    """PiecesOS could not be reached at the URL tried."""

    def __init__(
        self, url: str, reason: str, *, request_sent: bool = True, method: str | None = None
    ) -> None:
        self.reason = reason
        #: False when the connection itself failed, so PiecesOS never saw the request.
        self.request_sent = request_sent
        super().__init__(
            f"cannot reach PiecesOS at {url}: {reason}. Is PiecesOS running? "
            "Set the URL with AsyncPiecesClient(base_url) or PIECES_OS_URL.",
            method=method,
            url=url,
        )


class PiecesTimeoutError(PiecesRequestError):
    """A configured timeout ran out before PiecesOS answered; `phase` says which one."""

    def __init__(
        self, message: str, *, phase: str, method: str | None = None, url: str | None = None
    ) -> None:
        #: Which bound ran out: `connect`, `pool`, `read`, `total`, `ws_idle` or `stall`.
        self.phase = phase
        super().__init__(message, method=method, url=url)


class PiecesAPIError(PiecesRequestError):
    """PiecesOS answered with a status outside 2xx."""

    def __init__(
        self, status: int, method: str, url: str, body: str, *, retry_after: float | None = None
    ) -> None:
        import html
        import re

        self.status = status
        self.method = method
        self.url = url
        #: The whole body, as the server sent it; the message shows one line of it.
        self.body = body
        #: Seconds the server asked us to wait (`Retry-After`), when it said so.
        self.retry_after = retry_after
        # One line whatever the body: the <title> of an HTML page (a proxy, a web server
        # that is not PiecesOS), else the first non-blank line, whitespace collapsed.
        head = body[:65536].strip()
        title = re.search(r"<title[^>]*>(.*?)</title", head, re.IGNORECASE | re.DOTALL)
        is_html = re.match(r"<(!doctype\s+html|html|head|body)\b", head, re.IGNORECASE)
        if is_html or (head.startswith("<") and title):
            page = " ".join(html.unescape(title.group(1)).split()) if title else ""
            detail = f"an HTML page ({page})" if page else "an HTML page with no title"
        elif head:
            detail = " ".join(next(line for line in head.splitlines() if line.strip()).split())
        else:
            detail = "(empty body)"
        if len(detail) > 160:
            detail = detail[:157] + "..."
        super().__init__(f"{method} {url} answered {status}: {detail}", method=method, url=url)


class ModelNotFoundError(PiecesAPIError):
    """PiecesOS knows no model with the requested id (410 or 404).

    Only `GET /model/{model}` and the progress WebSocket answer so; a POST on an unknown
    model gets a 500, a plain `PiecesAPIError`.
    """


class PiecesDecodeError(PiecesRequestError):
    """A 2xx body or WebSocket frame is not the expected type; the message says where."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        preview: str | None = None,
    ) -> None:
        #: The start of what could not be decoded, when there was something.
        self.preview = preview
        super().__init__(message, method=method, url=url)


class PiecesStreamError(PiecesRequestError):
    """A download ended while its progress socket was down, and not by completing."""


class ModelLookupError(PiecesError, LookupError):
    """No model has that id or name, or the name fits several (`matches` lists their ids)."""

    def __init__(self, name_or_id: str, matches: list[str]) -> None:
        self.name_or_id = name_or_id
        #: The ids of the models the name fits, when it fits more than one.
        self.matches = matches
        if matches:
            message = (
                f"{name_or_id!r} names {len(matches)} models: use an id ({', '.join(matches)})"
            )
        else:
            message = f"no model has the id or name {name_or_id!r}"
        super().__init__(message)


class PiecesClientStateError(PiecesError):
    """The client was used before `async with` (or `open()`) or after it closed."""
